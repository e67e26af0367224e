//! `flakeOutput: prometheus` (SPEC 8.2): Prometheus text exposition (0.0.4) or OpenMetrics text,
//! read into samples ready to publish.
//!
//! Types come from `# TYPE` (untyped and OpenMetrics `unknown`, `stateset` and `info` are
//! gauges). Counters and the `_sum` and `_count` of histograms and summaries are marked
//! [`Kind::Cumulative`]: the caller turns them into increases with
//! [`CounterState`](super::counters::CounterState). OpenMetrics `_created` samples, exemplars
//! and timestamps are dropped; NaN and infinite samples are skipped silently (they are legal
//! there). `flakeMetrics` is a [`Selection`]: which sample names, which labels, whether
//! histogram buckets. A line that does not parse is rejected alone with its line number.

use std::collections::HashMap;

use regex::Regex;

use super::entry::{Dimension, Entry, EntryRules, Rejection, Rejections, Unreadable, excerpt};
use super::exposition::{self, Line};
use super::series_guard::SeriesCap;

/// How a sample's value becomes a datapoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Published as it is.
    Gauge,
    /// A running total: published as the increase since the previous run.
    Cumulative,
}

/// A sample's identity before labels were dropped: what a counter's previous value is kept by.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SeriesKey {
    pub name: String,
    pub labels: Vec<(String, String)>,
}

/// One selected sample: its entry (published name, raw value, unit, dimensions) and kind.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub entry: Entry,
    pub kind: Kind,
    pub series: SeriesKey,
}

/// Everything one exposition yielded, before counters become increases.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Scrape {
    pub samples: Vec<Sample>,
    pub rejections: Rejections,
}

/// Which labels become dimensions (`flakeMetrics.labels`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum LabelRule {
    #[default]
    All,
    Keep(Vec<String>),
    Drop(Vec<String>),
}

/// `flakeMetrics`: which samples are published and with which labels.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    include: Vec<Regex>,
    exclude: Vec<Regex>,
    labels: LabelRule,
    buckets: bool,
}

impl Selection {
    /// Compiles `include` and `exclude`, each matched against the whole sample name.
    pub fn new(include: &[String], exclude: &[String], labels: LabelRule, buckets: bool) -> Result<Self, String> {
        let compile = |field: &str, patterns: &[String]| {
            patterns
                .iter()
                .map(|pattern| {
                    Regex::new(&format!("^(?:{pattern})$"))
                        .map_err(|error| format!("flakeMetrics.{field} pattern {pattern:?} is not a regular expression: {error}"))
                })
                .collect::<Result<Vec<_>, _>>()
        };
        Ok(Self { include: compile("include", include)?, exclude: compile("exclude", exclude)?, labels, buckets })
    }

    fn selects(&self, name: &str) -> bool {
        (self.include.is_empty() || self.include.iter().any(|pattern| pattern.is_match(name)))
            && !self.exclude.iter().any(|pattern| pattern.is_match(name))
    }

    /// Whether a label becomes a dimension; `always` (`le`, `quantile`) survives any rule.
    fn keeps(&self, label: &str, always: Option<&str>) -> bool {
        if always == Some(label) {
            return true;
        }
        match &self.labels {
            LabelRule::All => true,
            LabelRule::Keep(kept) => kept.iter().any(|name| name == label),
            LabelRule::Drop(dropped) => !dropped.iter().any(|name| name == label),
        }
    }
}

/// A metric family's declared type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FamilyType {
    Counter,
    Gauge,
    Histogram,
    GaugeHistogram,
    Summary,
    Untyped,
    StateSet,
    Info,
}

impl FamilyType {
    fn parse(kind: &str) -> Option<Self> {
        Some(match kind {
            "counter" => Self::Counter,
            "gauge" => Self::Gauge,
            "histogram" => Self::Histogram,
            "gaugehistogram" => Self::GaugeHistogram,
            "summary" => Self::Summary,
            "untyped" | "unknown" => Self::Untyped,
            "stateset" => Self::StateSet,
            "info" => Self::Info,
            _ => return None,
        })
    }
}

/// What one sample is within its family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role<'a> {
    Gauge,
    Counter,
    /// A histogram's or summary's `_sum` or `_count`; `family` names the unit.
    Aggregate {
        family: &'a str,
        sum: bool,
    },
    /// A gauge histogram's `_gsum` (or `_gcount`, with `sum` false).
    GaugeAggregate {
        family: &'a str,
        sum: bool,
    },
    Bucket {
        cumulative: bool,
    },
    Quantile,
    /// OpenMetrics `_created`: when the series started, not a value to publish.
    Created,
}

/// The samples `body` holds, or why it cannot be read at all.
pub fn parse(body: &[u8], truncated: bool, selection: &Selection, rules: &EntryRules) -> Result<Scrape, Unreadable> {
    parse_capped(body, truncated, selection, rules, &mut SeriesCap::new(usize::MAX))
}

/// Like [`parse`], keeping only the samples of the series `cap` lets through as they are read,
/// so an exposition of a million series costs memory for the kept ones, not for all (issue 22).
pub fn parse_capped(
    body: &[u8],
    truncated: bool,
    selection: &Selection,
    rules: &EntryRules,
    cap: &mut SeriesCap,
) -> Result<Scrape, Unreadable> {
    if truncated {
        return Err(Unreadable("output was cut short at the size limit, so the exposition is incomplete".to_string()));
    }
    let text = std::str::from_utf8(body).map_err(|_| Unreadable("output is not UTF-8 text, so it is not Prometheus text".to_string()))?;
    let lines = read_lines(text);
    if lines.understood == 0 && !lines.rejections.is_empty() {
        let first = &lines.rejections[0];
        return Err(Unreadable(format!(
            "output is not Prometheus text: none of its {} lines is a sample or a # line ({}: {})",
            lines.rejections.total(),
            first.entry,
            first.reason
        )));
    }
    let mut scrape = Scrape { samples: Vec::new(), rejections: lines.rejections };
    let types = lines.types;
    // The second pass: the sample lines again (the first kept only their types and errors, so
    // no line is held twice), each selected sample offered to the cap.
    for (index, line) in text.lines().enumerate() {
        let sample = match exposition::parse_line(line) {
            Ok(Line::Sample(sample)) => sample,
            Ok(Line::Eof) => break,
            Ok(_) | Err(_) => continue,
        };
        match read_sample(&sample, &types, selection, rules) {
            Ok(Some(selected)) => {
                if cap.admit(&selected.entry) {
                    scrape.samples.push(selected);
                    cap.prune(&mut scrape.samples, |sample| &sample.entry);
                }
            }
            Ok(None) => {}
            Err(reason) => scrape.rejections.push(Rejection { entry: format!("line {} ({})", index + 1, excerpt(sample.name)), reason }),
        }
    }
    cap.finish(&mut scrape.samples, |sample| &sample.entry);
    Ok(scrape)
}

/// The first pass over an exposition: its families' types, the lines that do not parse, and how
/// many lines did.
struct Lines<'a> {
    types: HashMap<&'a str, FamilyType>,
    rejections: Rejections,
    understood: usize,
}

fn read_lines(text: &str) -> Lines<'_> {
    let mut lines = Lines { types: HashMap::new(), rejections: Rejections::default(), understood: 0 };
    let mut numbered = text.lines().enumerate();
    for (index, line) in numbered.by_ref() {
        let number = index + 1;
        let rejected = |reason| Rejection { entry: format!("line {number}"), reason };
        let parsed = exposition::parse_line(line);
        if parsed.is_ok() && !line.trim().is_empty() {
            lines.understood += 1;
        }
        match parsed {
            Ok(Line::Ignored) => {}
            Ok(Line::Eof) => break,
            Ok(Line::Type { family, kind }) => match FamilyType::parse(kind) {
                Some(_) if lines.types.contains_key(family) => {
                    lines.rejections.push(rejected(format!("{family} has a second # TYPE; the first one stands")));
                }
                Some(family_type) => {
                    lines.types.insert(family, family_type);
                }
                None => lines.rejections.push(rejected(format!(
                    "{family} has the unknown type {:?}; its samples are read as gauges (types: counter, gauge, histogram, gaugehistogram, summary, stateset, info, unknown, untyped)",
                    excerpt(kind)
                ))),
            },
            Ok(Line::Sample(_)) => {}
            Err(reason) => lines.rejections.push(rejected(reason)),
        }
    }
    let after_eof = numbered.filter(|(_, line)| !line.trim().is_empty()).count();
    if after_eof > 0 {
        lines.rejections.push(Rejection {
            entry: "after # EOF".to_string(),
            reason: format!("{after_eof} lines follow # EOF, which ends an OpenMetrics exposition; they were not read"),
        });
    }
    lines
}

/// A sample as published, `None` when it is not selected (or must be skipped silently).
fn read_sample(
    sample: &exposition::Sample<'_>,
    types: &HashMap<&str, FamilyType>,
    selection: &Selection,
    rules: &EntryRules,
) -> Result<Option<Sample>, String> {
    let name = sample.name;
    let role = role(name, types);
    let kind = match role {
        Role::Created => return Ok(None),
        Role::Bucket { .. } if !selection.buckets => return Ok(None),
        Role::Counter | Role::Aggregate { .. } | Role::Bucket { cumulative: true } => Kind::Cumulative,
        Role::Gauge | Role::GaugeAggregate { .. } | Role::Bucket { cumulative: false } | Role::Quantile => Kind::Gauge,
    };
    if !sample.value.is_finite() || !selection.selects(name) {
        return Ok(None);
    }
    let always_kept = match role {
        Role::Bucket { .. } => Some("le"),
        Role::Quantile => Some("quantile"),
        _ => None,
    };
    let mut labels: Vec<(String, String)> =
        sample.labels.iter().filter(|(_, value)| !value.is_empty()).map(|(label, value)| ((*label).to_string(), value.clone())).collect();
    labels.sort();
    let mut dimensions: Vec<Dimension> = labels
        .iter()
        .filter(|(label, _)| selection.keeps(label, always_kept))
        .map(|(label, value)| Dimension::new(label.clone(), value.clone()))
        .collect();
    dimensions.sort();
    rules.dimensions(&dimensions)?;
    let unit = match role {
        Role::Counter => unit_by_name(name).or(Some("Count")),
        Role::Aggregate { family, sum: true } => unit_by_name(family).or(Some("Count")),
        Role::Aggregate { sum: false, .. } | Role::Bucket { .. } => Some("Count"),
        Role::GaugeAggregate { family, sum: true } => unit_by_name(family),
        Role::GaugeAggregate { sum: false, .. } => Some("Count"),
        Role::Gauge | Role::Quantile | Role::Created => unit_by_name(name),
    };
    let entry = Entry { name: rules.metric_name(name)?, value: rules.value(sample.value)?, unit, dimensions };
    Ok(Some(Sample { entry, kind, series: SeriesKey { name: name.to_string(), labels } }))
}

/// The sample's role from its family's `# TYPE`: the exact name first, then the name without a
/// suffix its family's type gives its samples.
fn role<'a>(name: &'a str, types: &HashMap<&str, FamilyType>) -> Role<'a> {
    match types.get(name) {
        Some(FamilyType::Counter) => return Role::Counter,
        Some(FamilyType::Summary) => return Role::Quantile,
        Some(_) => return Role::Gauge,
        None => {}
    }
    for suffix in ["_total", "_created", "_bucket", "_sum", "_count", "_gsum", "_gcount", "_info"] {
        let Some(family) = name.strip_suffix(suffix) else { continue };
        let Some(family_type) = types.get(family) else { continue };
        let role = match (family_type, suffix) {
            (FamilyType::Counter, "_total") => Role::Counter,
            (FamilyType::Counter | FamilyType::Histogram | FamilyType::Summary, "_created") => Role::Created,
            (FamilyType::Histogram, "_bucket") => Role::Bucket { cumulative: true },
            (FamilyType::Histogram | FamilyType::Summary, "_sum") => Role::Aggregate { family, sum: true },
            (FamilyType::Histogram | FamilyType::Summary, "_count") => Role::Aggregate { family, sum: false },
            (FamilyType::GaugeHistogram, "_bucket") => Role::Bucket { cumulative: false },
            (FamilyType::GaugeHistogram, "_gsum") => Role::GaugeAggregate { family, sum: true },
            (FamilyType::GaugeHistogram, "_gcount") => Role::GaugeAggregate { family, sum: false },
            (FamilyType::Info, "_info") => Role::Gauge,
            _ => continue,
        };
        return role;
    }
    Role::Gauge
}

/// SPEC 8.2: `_seconds` is Seconds and `_bytes` is Bytes, once a `_total` suffix is set aside.
fn unit_by_name(name: &str) -> Option<&'static str> {
    let name = name.strip_suffix("_total").unwrap_or(name);
    if name.ends_with("_seconds") {
        Some("Seconds")
    } else if name.ends_with("_bytes") {
        Some("Bytes")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str, selection: &Selection) -> Scrape {
        parse(text.as_bytes(), false, selection, &EntryRules::default()).unwrap()
    }

    fn summary(scrape: &Scrape) -> Vec<(&str, f64, Kind, Option<&'static str>)> {
        scrape.samples.iter().map(|s| (s.entry.name.as_str(), s.entry.value, s.kind, s.entry.unit)).collect()
    }

    const EXPOSITION: &str = r#"# HELP http_requests_total Requests.
# TYPE http_requests_total counter
http_requests_total{code="200",method="get"} 1027 1395066363000
http_requests_total{code="400",method="get"} 3
# TYPE queue_bytes gauge
queue_bytes 512
# TYPE rpc_duration_seconds summary
rpc_duration_seconds{quantile="0.5"} 0.2
rpc_duration_seconds_sum 17.5
rpc_duration_seconds_count 50
# TYPE latency_seconds histogram
latency_seconds_bucket{le="0.5"} 4
latency_seconds_bucket{le="+Inf"} 9
latency_seconds_sum 3.5
latency_seconds_count 9
untyped_thing{a=""} 7
uptime_seconds_total 99
"#;

    #[test]
    fn types_kinds_and_units() {
        let scrape = read(EXPOSITION, &Selection::default());
        assert!(scrape.rejections.is_empty(), "{:?}", scrape.rejections);
        assert_eq!(
            summary(&scrape),
            [
                ("http_requests_total", 1027.0, Kind::Cumulative, Some("Count")),
                ("http_requests_total", 3.0, Kind::Cumulative, Some("Count")),
                ("queue_bytes", 512.0, Kind::Gauge, Some("Bytes")),
                ("rpc_duration_seconds", 0.2, Kind::Gauge, Some("Seconds")),
                ("rpc_duration_seconds_sum", 17.5, Kind::Cumulative, Some("Seconds")),
                ("rpc_duration_seconds_count", 50.0, Kind::Cumulative, Some("Count")),
                ("latency_seconds_sum", 3.5, Kind::Cumulative, Some("Seconds")),
                ("latency_seconds_count", 9.0, Kind::Cumulative, Some("Count")),
                ("untyped_thing", 7.0, Kind::Gauge, None),
                ("uptime_seconds_total", 99.0, Kind::Gauge, Some("Seconds")),
            ]
        );
        assert_eq!(scrape.samples[3].entry.dimensions, [Dimension::new("quantile", "0.5")]);
        assert!(scrape.samples[8].entry.dimensions.is_empty(), "an empty label value is an absent label");
    }

    #[test]
    fn include_exclude_match_whole_names() {
        let selection = Selection::new(&["http_.*".into(), "queue".into()], &[".*_count".into()], LabelRule::All, false).unwrap();
        let names: Vec<_> = read(EXPOSITION, &selection).samples.iter().map(|s| s.entry.name.clone()).collect();
        assert_eq!(names, ["http_requests_total", "http_requests_total"], "`queue` does not match queue_bytes whole");
        let selection = Selection::new(&[], &["http_requests_total|latency_.*|rpc_.*".into()], LabelRule::All, false).unwrap();
        let names: Vec<_> = read(EXPOSITION, &selection).samples.iter().map(|s| s.entry.name.clone()).collect();
        assert_eq!(names, ["queue_bytes", "untyped_thing", "uptime_seconds_total"]);
        let error = Selection::new(&["(".into()], &[], LabelRule::All, false).unwrap_err();
        assert!(error.contains("flakeMetrics.include pattern \"(\" is not a regular expression"), "{error}");
    }

    #[test]
    fn label_rules_shape_dimensions_but_not_series_identity() {
        let keep = Selection::new(&["http_requests_total".into()], &[], LabelRule::Keep(vec!["method".into()]), false).unwrap();
        let scrape = read(EXPOSITION, &keep);
        assert!(scrape.samples.iter().all(|s| s.entry.dimensions == [Dimension::new("method", "get")]));
        assert_ne!(scrape.samples[0].series, scrape.samples[1].series);
        let drop = Selection::new(&["http_requests_total".into()], &[], LabelRule::Drop(vec!["method".into()]), false).unwrap();
        let scrape = read(EXPOSITION, &drop);
        assert_eq!(scrape.samples[1].entry.dimensions, [Dimension::new("code", "400")]);
    }

    #[test]
    fn buckets_only_when_asked() {
        let selection = Selection::new(&[], &[], LabelRule::Keep(vec![]), true).unwrap();
        let scrape = read(EXPOSITION, &selection);
        let buckets: Vec<_> = scrape.samples.iter().filter(|s| s.entry.name == "latency_seconds_bucket").collect();
        assert_eq!(buckets.len(), 2);
        assert!(buckets.iter().all(|s| s.kind == Kind::Cumulative && s.entry.unit == Some("Count")));
        assert_eq!(buckets[1].entry.dimensions, [Dimension::new("le", "+Inf")]);
        let quantile = scrape.samples.iter().find(|s| s.entry.name == "rpc_duration_seconds").unwrap();
        assert_eq!(quantile.entry.dimensions, [Dimension::new("quantile", "0.5")], "quantile survives keep: []");
    }

    #[test]
    fn openmetrics_families() {
        let scrape = read(
            "# TYPE jobs counter\njobs_total 5 # {trace=\"x\"} 1\njobs_created 1.7e9\n\
             # TYPE temp gaugehistogram\ntemp_bucket{le=\"1\"} 2\ntemp_gcount 2\ntemp_gsum 1.5\n\
             # TYPE build info\nbuild_info{version=\"1\"} 1\n\
             # TYPE state stateset\nstate{state=\"up\"} 1\n# EOF\n",
            &Selection::new(&[], &[], LabelRule::All, true).unwrap(),
        );
        assert!(scrape.rejections.is_empty(), "{:?}", scrape.rejections);
        assert_eq!(
            summary(&scrape),
            [
                ("jobs_total", 5.0, Kind::Cumulative, Some("Count")),
                ("temp_bucket", 2.0, Kind::Gauge, Some("Count")),
                ("temp_gcount", 2.0, Kind::Gauge, Some("Count")),
                ("temp_gsum", 1.5, Kind::Gauge, None),
                ("build_info", 1.0, Kind::Gauge, None),
                ("state", 1.0, Kind::Gauge, None),
            ]
        );
    }

    #[test]
    fn names_take_the_prefix_and_dimensions_count_the_flakes() {
        let rules = EntryRules { metric_prefix: "node.".into(), flake_dimensions: 29 };
        let scrape = parse(b"a{x=\"1\"} 1\nb{x=\"1\",y=\"2\"} 2\n", false, &Selection::default(), &rules).unwrap();
        assert_eq!(scrape.samples.len(), 1);
        assert_eq!(scrape.samples[0].entry.name, "node.a");
        assert_eq!(scrape.rejections[0].entry, "line 2 (b)");
        assert!(scrape.rejections[0].reason.contains("31 dimensions"));
    }

    #[test]
    fn unreadable_bodies_fail_the_run() {
        let error = parse(&[0xff, b'\n'], false, &Selection::default(), &EntryRules::default()).unwrap_err();
        assert!(error.0.contains("not UTF-8"));
        let error = parse(b"a 1\n", true, &Selection::default(), &EntryRules::default()).unwrap_err();
        assert!(error.0.contains("cut short"));
        let error = parse(b"Error: connection refused\n", false, &Selection::default(), &EntryRules::default()).unwrap_err();
        assert!(error.0.contains("not Prometheus text: none of its 1 lines"), "{error}");
    }

    #[test]
    fn empty_or_comment_only_output_is_no_samples_not_a_failure() {
        for body in ["", "\n\n", "# HELP x nothing yet\n# TYPE x gauge\n", "# EOF\n"] {
            assert_eq!(read(body, &Selection::default()), Scrape::default(), "{body:?}");
        }
    }
}
