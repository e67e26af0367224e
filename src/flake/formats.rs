//! The flake fields of SPEC 8 and 8.3: how a run's output becomes metrics (`flakeOutput`,
//! `flakeMetricPrefix`, `flakeMetrics`, `flakeMaxSeries`) and where a scrape flake reads it from
//! (`flakeUrl`, `flakeHeaders`), each checked with the field's path and what to write instead.
//!
//! Header values are kept as templates: their `${env:NAME}` placeholders are resolved at each
//! run (they may name `creds.json` keys, which only the run context holds), so no secret is
//! stored in a [`Flake`](super::Flake), and no message here ever quotes a header value.

use hyper::Uri;
use hyper::header::{HeaderName, HeaderValue};
use serde_json::{Map, Value};

use super::context::Context;
use super::fields::{Fields, describe, shorten};
use super::keys::warn_unknown;
use super::problem::Problems;
use crate::output::prometheus::{LabelRule, Selection};

/// How many series a flake may publish unless `flakeMaxSeries` says otherwise (SPEC 8).
pub const DEFAULT_MAX_SERIES: usize = 200;
/// The most `flakeMaxSeries` may allow: each series is a custom metric billed monthly, and ten
/// thousand from one flake is a mistake, not a plan.
pub const MAX_MAX_SERIES: i64 = 10_000;
/// Keys of `flakeMetrics`.
pub const METRICS_KEYS: &[&str] = &["include", "exclude", "labels", "buckets"];
/// Keys of `flakeMetrics.labels`: one of them.
const LABELS_KEYS: &[&str] = &["keep", "drop"];

/// `flakeOutput`: how stdout (or a scraped body) is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutputFormat {
    /// One number, one datapoint (SPEC 2.2).
    #[default]
    Number,
    Json,
    Nagios,
    Prometheus,
}

impl OutputFormat {
    pub const ALL: [OutputFormat; 4] = [OutputFormat::Number, OutputFormat::Json, OutputFormat::Nagios, OutputFormat::Prometheus];

    pub fn as_str(self) -> &'static str {
        match self {
            OutputFormat::Number => "number",
            OutputFormat::Json => "json",
            OutputFormat::Nagios => "nagios",
            OutputFormat::Prometheus => "prometheus",
        }
    }

    /// Every format but `number` yields metrics named by the output, possibly many.
    pub fn is_multi_metric(self) -> bool {
        self != OutputFormat::Number
    }
}

/// `flakeMetrics` as written; [`MetricsSpec::selection`] compiles it (validation has already
/// compiled it once, so that cannot fail for a loaded flake).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MetricsSpec {
    pub include: Vec<String>,
    pub exclude: Vec<String>,
    pub labels: LabelRule,
    pub buckets: bool,
}

impl MetricsSpec {
    pub fn selection(&self) -> Result<Selection, String> {
        Selection::new(&self.include, &self.exclude, self.labels.clone(), self.buckets)
    }
}

/// How a flake's output becomes entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputSpec {
    pub format: OutputFormat,
    /// `flakeMetricPrefix`, prepended as is to every name the output gives.
    pub metric_prefix: String,
    pub metrics: MetricsSpec,
    pub max_series: usize,
}

impl Default for OutputSpec {
    fn default() -> Self {
        OutputSpec {
            format: OutputFormat::Number,
            metric_prefix: String::new(),
            metrics: MetricsSpec::default(),
            max_series: DEFAULT_MAX_SERIES,
        }
    }
}

/// One `flakeHeaders` entry: a header name and a value template whose `${env:NAME}`
/// placeholders are filled at each run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderTemplate {
    pub name: String,
    pub template: String,
}

/// Where a `scrape` flake reads its exposition from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScrapeTarget {
    /// `flakeUrl` after placeholders.
    pub url: String,
    pub headers: Vec<HeaderTemplate>,
}

/// `flakeOutput`, `flakeMetricPrefix`, `flakeMetrics` and `flakeMaxSeries`. A scrape flake always
/// reads Prometheus text.
pub fn parse_output(fields: &Fields, scrape: bool, problems: &mut Problems) -> Option<OutputSpec> {
    let format = match fields.strict_text("flakeOutput", problems) {
        None if scrape => Some(OutputFormat::Prometheus),
        None => Some(OutputFormat::Number),
        Some(text) => match OutputFormat::ALL.into_iter().find(|format| format.as_str().eq_ignore_ascii_case(text.trim())) {
            Some(OutputFormat::Prometheus) => Some(OutputFormat::Prometheus),
            Some(_) if scrape => {
                problems.error("flakeOutput", "a scrape flake reads Prometheus text; remove flakeOutput or set it to \"prometheus\"");
                None
            }
            Some(format) => Some(format),
            None => {
                problems.error(
                    "flakeOutput",
                    format!(
                        "\"{}\" is not an output format; use \"number\" (the default), \"json\", \"nagios\" or \"prometheus\"",
                        shorten(&text, 40)
                    ),
                );
                None
            }
        },
    };
    let multi = format.is_none_or(OutputFormat::is_multi_metric);
    let prometheus = format.is_none_or(|format| format == OutputFormat::Prometheus);

    let metric_prefix = match fields.strict_text("flakeMetricPrefix", problems) {
        None => Some(String::new()),
        Some(prefix) if prefix.chars().count() > 254 || prefix.chars().any(|c| !c.is_ascii() || c.is_ascii_control()) => {
            problems.error(
                "flakeMetricPrefix",
                "must be at most 254 printable ASCII characters (the metric's own name follows it, within CloudWatch's 255)",
            );
            None
        }
        Some(prefix) => {
            if !multi {
                problems.warning("flakeMetricPrefix", "is ignored: with flakeOutput \"number\" the one metric is named by flakeMetricName");
            }
            Some(prefix)
        }
    };
    if multi && fields.raw("flakeMetricName").is_some() {
        problems.warning("flakeMetricName", "is ignored: the output names each metric (use flakeMetricPrefix to prefix them)");
    }

    let metrics = match fields.object("flakeMetrics", problems) {
        None if fields.raw("flakeMetrics").is_some() => None,
        None => Some(MetricsSpec::default()),
        Some(object) => {
            if !prometheus {
                problems.warning("flakeMetrics", "is ignored: it selects Prometheus series, and flakeOutput is not \"prometheus\"");
            }
            parse_metrics(object, problems)
        }
    };

    let max_series = match fields.integer("flakeMaxSeries", problems) {
        None if fields.raw("flakeMaxSeries").is_some() => None,
        None => Some(DEFAULT_MAX_SERIES),
        Some(count @ 1..=MAX_MAX_SERIES) => {
            if !multi {
                problems.warning("flakeMaxSeries", "is ignored: flakeOutput \"number\" publishes one series");
            }
            Some(count as usize)
        }
        Some(count) => {
            problems.error(
                "flakeMaxSeries",
                format!(
                    "{count} is out of range; use 1 to {MAX_MAX_SERIES} (each series is a CloudWatch custom metric, billed monthly; default {DEFAULT_MAX_SERIES})"
                ),
            );
            None
        }
    };
    Some(OutputSpec { format: format?, metric_prefix: metric_prefix?, metrics: metrics?, max_series: max_series? })
}

fn parse_metrics(object: &Map<String, Value>, problems: &mut Problems) -> Option<MetricsSpec> {
    warn_unknown(object, METRICS_KEYS, "flakeMetrics.", problems);
    let fields = Fields::new(object, "flakeMetrics.");
    let include = patterns(&fields, "include", problems);
    let exclude = patterns(&fields, "exclude", problems);
    let labels = match fields.object("labels", problems) {
        None if fields.raw("labels").is_some() => None,
        None => Some(LabelRule::All),
        Some(labels) => parse_labels(labels, problems),
    };
    let buckets = match fields.boolean("buckets", problems) {
        None if fields.raw("buckets").is_some() => None,
        flag => Some(flag.unwrap_or(false)),
    };
    Some(MetricsSpec { include: include?, exclude: exclude?, labels: labels?, buckets: buckets? })
}

/// A list of regular expressions (one string is a list of one), each compiled to check it.
fn patterns(fields: &Fields, key: &str, problems: &mut Problems) -> Option<Vec<String>> {
    let items: Vec<&Value> = match fields.raw(key) {
        None => return Some(Vec::new()),
        Some(Value::Array(items)) => items.iter().collect(),
        Some(single @ Value::String(_)) => vec![single],
        Some(other) => {
            problems.error(
                fields.path(key),
                format!("must be a list of regular expressions such as [\"node_cpu_.*\"], got {}", describe(other)),
            );
            return None;
        }
    };
    let mut patterns = Vec::with_capacity(items.len());
    let mut ok = true;
    for (index, item) in items.into_iter().enumerate() {
        let path = format!("{}[{index}]", fields.path(key));
        match item {
            Value::String(pattern) => match regex::Regex::new(&format!("^(?:{pattern})$")) {
                Ok(_) => patterns.push(pattern.clone()),
                Err(error) => {
                    let first_line = error.to_string().lines().last().unwrap_or_default().trim().to_string();
                    problems.error(
                        path,
                        format!("\"{}\" is not a regular expression ({first_line}); write one matching whole sample names, such as \"node_cpu_.*\"", shorten(pattern, 60)),
                    );
                    ok = false;
                }
            },
            other => {
                problems.error(path, format!("must be a string (a regular expression), got {}", describe(other)));
                ok = false;
            }
        }
    }
    ok.then_some(patterns)
}

fn parse_labels(object: &Map<String, Value>, problems: &mut Problems) -> Option<LabelRule> {
    warn_unknown(object, LABELS_KEYS, "flakeMetrics.labels.", problems);
    let fields = Fields::new(object, "flakeMetrics.labels.");
    let names = |key: &str, problems: &mut Problems| -> Option<Option<Vec<String>>> {
        let Some(items) = fields.list(key, problems) else {
            return if fields.raw(key).is_some() { None } else { Some(None) };
        };
        let mut names = Vec::with_capacity(items.len());
        for (index, item) in items.iter().enumerate() {
            match item {
                Value::String(name) if crate::output::exposition::is_label_name(name) => names.push(name.clone()),
                other => {
                    problems.error(
                        format!("{}[{index}]", fields.path(key)),
                        format!("must be a Prometheus label name such as \"device\" ([a-zA-Z_][a-zA-Z0-9_]*), got {}", describe(other)),
                    );
                    return None;
                }
            }
        }
        Some(Some(names))
    };
    let keep = names("keep", problems);
    let drop = names("drop", problems);
    match (keep?, drop?) {
        (Some(_), Some(_)) => {
            problems
                .error("flakeMetrics.labels", "has both keep and drop; use one: keep lists the labels to publish, drop the ones not to");
            None
        }
        (Some(keep), None) => Some(LabelRule::Keep(keep)),
        (None, Some(drop)) => Some(LabelRule::Drop(drop)),
        (None, None) => Some(LabelRule::All),
    }
}

/// `flakeUrl` and `flakeHeaders` of a scrape flake; for any other flake they are errors.
pub fn parse_scrape(fields: &Fields, scrape: bool, context: &Context, problems: &mut Problems) -> Option<ScrapeTarget> {
    if !scrape {
        for key in ["flakeUrl", "flakeHeaders"] {
            if fields.raw(key).is_some() {
                problems.error(key, "belongs to scrape flakes; set \"flakeType\": \"scrape\" (and remove flakeCommand), or remove it");
            }
        }
        return None;
    }
    if fields.raw("flakeCommand").is_some() {
        problems.error("flakeCommand", "a scrape flake GETs flakeUrl instead of running a command; remove flakeCommand");
    }
    let template = fields.strict_text("flakeUrl", problems);
    let template = fields.require("flakeUrl", template, "the exporter's address, such as \"http://localhost:9100/metrics\"", problems);
    let url = template.and_then(|template| match context.expand(&template, "flakeUrl", problems) {
        Err(reason) => {
            problems.error("flakeUrl", reason);
            None
        }
        // Before anything quotes the URL: a password in it must not reach `check`'s output.
        Ok(url) if has_user_info(&url) => {
            problems.error(
                "flakeUrl",
                "holds a user name or password (user:password@), which would be logged with every failed scrape and is not \
                 sent as Basic auth; remove it and send it as a header from creds.json: \
                 \"flakeHeaders\": {\"Authorization\": \"Basic ${env:EXPORTER_AUTH}\"} with EXPORTER_AUTH set to the \
                 base64 of user:password",
            );
            None
        }
        Ok(url) => match url_problem(&url) {
            Some(reason) => {
                problems.error("flakeUrl", format!("\"{}\" {reason}", shorten(&template, 80)));
                None
            }
            None => Some(url),
        },
    });
    let headers = parse_headers(fields, problems);
    Some(ScrapeTarget { url: url?, headers: headers? })
}

/// Whether `url` names a user (`http://user:password@host/`): credentials belong in a header.
fn has_user_info(url: &str) -> bool {
    let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = after_scheme.split(['/', '?', '#']).next().unwrap_or("");
    authority.contains('@')
}

/// Why `url` is not one the scraper can GET.
fn url_problem(url: &str) -> Option<String> {
    let Ok(uri) = url.parse::<Uri>() else {
        return Some("is not a URL; write one such as \"http://localhost:9100/metrics\"".to_string());
    };
    if !matches!(uri.scheme_str(), Some("http" | "https")) {
        return Some("must start with http:// or https://".to_string());
    }
    if uri.host().is_none_or(str::is_empty) {
        return Some("names no host; write one such as \"http://localhost:9100/metrics\"".to_string());
    }
    None
}

fn parse_headers(fields: &Fields, problems: &mut Problems) -> Option<Vec<HeaderTemplate>> {
    let Some(object) = fields.object("flakeHeaders", problems) else {
        return if fields.raw("flakeHeaders").is_some() { None } else { Some(Vec::new()) };
    };
    let header_fields = Fields::new(object, "flakeHeaders.");
    let mut headers = Vec::with_capacity(object.len());
    let mut ok = true;
    for (name, value) in object {
        let path = header_fields.path(name);
        if HeaderName::from_bytes(name.as_bytes()).is_err() {
            problems.error(path.clone(), "is not an HTTP header name; use letters, digits and - such as \"Authorization\"");
            ok = false;
            continue;
        }
        if name.eq_ignore_ascii_case("accept-encoding") {
            problems.error(path, "is set by the daemon (it asks for gzip and decodes it); remove it");
            ok = false;
            continue;
        }
        // The value is never quoted back: it may be a secret written in the file.
        let Value::String(template) = value else {
            problems.error(path, "must be a string (use \"${env:NAME}\" for a secret from creds.json or the environment)");
            ok = false;
            continue;
        };
        match header_template_problem(template) {
            Some(reason) => {
                problems.error(path, reason);
                ok = false;
            }
            None => headers.push(HeaderTemplate { name: name.clone(), template: template.clone() }),
        }
    }
    ok.then_some(headers)
}

/// Why a header value template cannot become a header, without quoting it.
fn header_template_problem(template: &str) -> Option<String> {
    match fill_header(template, |_| Some("x".to_string())) {
        Err(reason) => Some(reason),
        Ok(text) if HeaderValue::from_str(&text).is_err() => {
            Some("holds a character HTTP headers do not allow (a control character or non-ASCII text)".to_string())
        }
        Ok(_) => None,
    }
}

/// `template` with each `${env:NAME}` replaced by `lookup(NAME)`. Errors name the placeholder,
/// never a value.
pub fn fill_header(template: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut filled = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("${") {
        filled.push_str(&rest[..start]);
        let Some(end) = rest[start..].find('}') else {
            return Err("opens a placeholder with ${ but never closes it with }".to_string());
        };
        let inner = &rest[start + 2..start + end];
        let Some(variable) = inner.strip_prefix("env:").filter(|name| !name.is_empty()) else {
            return Err(format!("${{{}}} is not allowed here; header values take only ${{env:NAME}} placeholders", shorten(inner, 40)));
        };
        let value =
            lookup(variable).ok_or_else(|| format!("${{env:{variable}}} is set neither in creds.json nor in the daemon's environment"))?;
        filled.push_str(&value);
        rest = &rest[start + end + 1..];
    }
    filled.push_str(rest);
    Ok(filled)
}

/// SPEC 8: an alarm on a flake that yields more than one metric must say which. `names_metric`
/// is whether the alarm sets `alarmMetricName` (or is math or a composite, which name theirs).
pub fn alarm_metric_problem(format: OutputFormat, names_metric: bool) -> Option<&'static str> {
    (format.is_multi_metric() && !names_metric).then_some(
        "this flake yields several metrics; say which one the alarm watches with alarmMetricName (the published name, prefix included)",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flake::problem::Problem;
    use serde_json::json;

    fn output(value: Value, scrape: bool) -> (Option<OutputSpec>, Vec<Problem>) {
        let object = value.as_object().unwrap().clone();
        let fields = Fields::new(&object, "");
        let mut problems = Problems::default();
        let spec = parse_output(&fields, scrape, &mut problems);
        (spec, problems.into_vec())
    }

    fn messages(problems: &[Problem]) -> Vec<String> {
        problems.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn defaults_are_number_no_prefix_all_series_and_200() {
        let (spec, problems) = output(json!({}), false);
        assert_eq!(spec.unwrap(), OutputSpec::default());
        assert!(problems.is_empty());
        let (spec, _) = output(json!({}), true);
        assert_eq!(spec.unwrap().format, OutputFormat::Prometheus);
    }

    #[test]
    fn every_field_is_read() {
        let (spec, problems) = output(
            json!({"flakeOutput": "Prometheus", "flakeMetricPrefix": "node.", "flakeMaxSeries": "50",
                   "flakeMetrics": {"include": ["node_.*"], "exclude": "node_scrape_.*", "labels": {"drop": ["cpu"]}, "buckets": true}}),
            false,
        );
        assert!(problems.is_empty(), "{:?}", messages(&problems));
        let spec = spec.unwrap();
        assert_eq!(spec.format, OutputFormat::Prometheus);
        assert_eq!(spec.metric_prefix, "node.");
        assert_eq!(spec.max_series, 50);
        assert_eq!(spec.metrics.include, ["node_.*"]);
        assert_eq!(spec.metrics.exclude, ["node_scrape_.*"]);
        assert_eq!(spec.metrics.labels, LabelRule::Drop(vec!["cpu".to_string()]));
        assert!(spec.metrics.buckets);
        assert!(spec.metrics.selection().is_ok());
    }

    #[test]
    fn bad_values_name_the_field_and_the_fix() {
        let cases = [
            (json!({"flakeOutput": "xml"}), "flakeOutput: \"xml\" is not an output format; use \"number\""),
            (json!({"flakeMaxSeries": 0}), "flakeMaxSeries: 0 is out of range; use 1 to 10000"),
            (json!({"flakeMaxSeries": 1.5}), "flakeMaxSeries: must be a whole number"),
            (json!({"flakeOutput": "json", "flakeMetricPrefix": "tab\there"}), "flakeMetricPrefix: must be at most 254 printable ASCII"),
            (
                json!({"flakeOutput": "prometheus", "flakeMetrics": {"include": ["node_(cpu"]}}),
                "flakeMetrics.include[0]: \"node_(cpu\" is not a regular expression",
            ),
            (
                json!({"flakeOutput": "prometheus", "flakeMetrics": {"exclude": 3}}),
                "flakeMetrics.exclude: must be a list of regular expressions",
            ),
            (
                json!({"flakeOutput": "prometheus", "flakeMetrics": {"labels": {"keep": ["a"], "drop": ["b"]}}}),
                "flakeMetrics.labels: has both keep and drop",
            ),
            (
                json!({"flakeOutput": "prometheus", "flakeMetrics": {"labels": {"keep": ["bad-name"]}}}),
                "flakeMetrics.labels.keep[0]: must be a Prometheus label name",
            ),
            (json!({"flakeOutput": "prometheus", "flakeMetrics": {"buckets": "maybe"}}), "flakeMetrics.buckets: must be true or false"),
            (
                json!({"flakeOutput": "prometheus", "flakeMetrics": {"inclde": []}}),
                "flakeMetrics.inclde: warning: unknown key \"inclde\" is ignored; did you mean \"include\"?",
            ),
        ];
        for (value, expected) in cases {
            let (_, problems) = output(value.clone(), false);
            let found = messages(&problems);
            assert!(found.iter().any(|message| message.starts_with(expected)), "{value}: expected {expected:?} in {found:?}");
        }
        let (_, problems) = output(json!({"flakeOutput": "json"}), true);
        assert!(messages(&problems)[0].contains("a scrape flake reads Prometheus text"));
    }

    #[test]
    fn fields_that_do_nothing_for_the_format_are_warnings() {
        let (spec, problems) = output(json!({"flakeMetricPrefix": "x.", "flakeMaxSeries": 5, "flakeMetrics": {}}), false);
        assert!(spec.is_some());
        let found = messages(&problems);
        assert_eq!(found.len(), 3, "{found:?}");
        assert!(found.iter().all(|message| message.contains("warning: is ignored")), "{found:?}");
        let (_, problems) = output(json!({"flakeOutput": "nagios", "flakeMetricName": "x"}), false);
        assert!(messages(&problems)[0].starts_with("flakeMetricName: warning: is ignored"));
    }

    fn scrape(value: Value) -> (Option<ScrapeTarget>, Vec<String>) {
        let object = value.as_object().unwrap().clone();
        let fields = Fields::new(&object, "");
        let mut problems = Problems::default();
        let facts = crate::placeholders::HostFacts::local();
        let context = Context { facts: &facts, default_zone: chrono_tz::UTC };
        let target = parse_scrape(&fields, true, &context, &mut problems);
        (target, messages(&problems.into_vec()))
    }

    #[test]
    fn scrape_urls_and_headers_are_checked_without_quoting_values() {
        let (target, problems) =
            scrape(json!({"flakeUrl": "http://localhost:9100/metrics", "flakeHeaders": {"Authorization": "Bearer ${env:TOKEN}"}}));
        assert!(problems.is_empty(), "{problems:?}");
        let target = target.unwrap();
        assert_eq!(target.url, "http://localhost:9100/metrics");
        assert_eq!(target.headers, [HeaderTemplate { name: "Authorization".to_string(), template: "Bearer ${env:TOKEN}".to_string() }]);

        let cases = [
            (json!({}), "flakeUrl: is required"),
            (json!({"flakeUrl": "ftp://host/metrics"}), "flakeUrl: \"ftp://host/metrics\" must start with http:// or https://"),
            (json!({"flakeUrl": "not a url"}), "flakeUrl: \"not a url\" is not a URL"),
            (json!({"flakeUrl": "http://admin:hunter22@x:9100/metrics"}), "flakeUrl: holds a user name or password (user:password@)"),
            (json!({"flakeUrl": "https://token@x/metrics?a=b@c"}), "flakeUrl: holds a user name or password"),
            (json!({"flakeUrl": "http://x/", "flakeCommand": "true"}), "flakeCommand: a scrape flake GETs flakeUrl"),
            (json!({"flakeUrl": "http://x/", "flakeHeaders": {"Bad Name": "v"}}), "flakeHeaders.Bad Name: is not an HTTP header name"),
            (
                json!({"flakeUrl": "http://x/", "flakeHeaders": {"Accept-Encoding": "br"}}),
                "flakeHeaders.Accept-Encoding: is set by the daemon",
            ),
            (
                json!({"flakeUrl": "http://x/", "flakeHeaders": {"X-Key": "${hostname}"}}),
                "flakeHeaders.X-Key: ${hostname} is not allowed here",
            ),
            (
                json!({"flakeUrl": "http://x/", "flakeHeaders": {"X-Key": "s3cr3t\nvalue"}}),
                "flakeHeaders.X-Key: holds a character HTTP headers do not allow",
            ),
        ];
        for (value, expected) in cases {
            let (_, problems) = scrape(value.clone());
            assert!(problems.iter().any(|message| message.starts_with(expected)), "{value}: expected {expected:?} in {problems:?}");
            assert!(problems.iter().all(|message| !message.contains("s3cr3t") && !message.contains("hunter22")), "{problems:?}");
        }
        let (_, problems) = scrape(json!({"flakeUrl": "http://admin:hunter22@x:9100/metrics"}));
        assert!(problems[0].contains("\"Authorization\": \"Basic ${env:EXPORTER_AUTH}\""), "{problems:?}");
        let (target, problems) = scrape(json!({"flakeUrl": "http://x:9100/metrics?email=a@b"}));
        assert!(problems.is_empty() && target.is_some(), "an @ after the host is no user: {problems:?}");
    }

    #[test]
    fn header_placeholders_are_filled_at_run_time_and_misses_name_the_variable_only() {
        let lookup = |name: &str| (name == "TOKEN").then(|| "abc".to_string());
        assert_eq!(fill_header("Bearer ${env:TOKEN}", lookup).unwrap(), "Bearer abc");
        assert_eq!(fill_header("plain", lookup).unwrap(), "plain");
        let error = fill_header("${env:NOPE}", lookup).unwrap_err();
        assert!(error.contains("${env:NOPE} is set neither in creds.json"), "{error}");
        assert!(fill_header("${env:TOKEN", lookup).unwrap_err().contains("never closes"));
    }

    #[test]
    fn alarms_on_multi_metric_flakes_must_name_the_metric() {
        assert_eq!(alarm_metric_problem(OutputFormat::Number, false), None);
        assert!(alarm_metric_problem(OutputFormat::Nagios, false).unwrap().contains("alarmMetricName"));
        assert_eq!(alarm_metric_problem(OutputFormat::Prometheus, true), None);
    }
}
