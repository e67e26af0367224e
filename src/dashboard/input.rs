//! The small, neutral model a dashboard is drawn from: graphs (metric lines or a `SEARCH`, and
//! horizontal annotations) and the alarms to list. [`dashboard_input`] builds it from the catalog
//! and the desired alarms; the body generator (`body`) knows nothing of flakes.
//!
//! New kinds of metrics and alarms reach the dashboard by adding graphs, lines or annotations
//! here, in one function, never by touching the layout.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::alarms::DesiredAlarm;
use crate::flake::Flake;
use crate::monitor;

/// More lines than this on one graph are drawn as one `SEARCH` expression: the graph stays
/// readable and the body small however many series a flake publishes.
pub const MAX_LINES: usize = 10;
/// CloudWatch's console default; used for graphs no alarm sets a period for.
const DEFAULT_PERIOD: i32 = 300;
const DEFAULT_STAT: &str = "Average";

/// Everything one host's dashboard shows.
#[derive(Debug, Clone, PartialEq)]
pub struct DashboardInput {
    /// Who maintains the dashboard, for the header.
    pub host: String,
    /// Sorted by (region, namespace, metric name): the order on the dashboard.
    pub graphs: Vec<Graph>,
    /// Every alarm this host manages, sorted by (region, name).
    pub alarms: Vec<AlarmRef>,
}

/// One graph widget.
#[derive(Debug, Clone, PartialEq)]
pub struct Graph {
    pub title: String,
    pub region: String,
    pub stat: String,
    pub period: i32,
    pub series: Series,
    /// Sorted by (value, label), without repeats.
    pub annotations: Vec<Annotation>,
}

/// What a graph draws.
#[derive(Debug, Clone, PartialEq)]
pub enum Series {
    /// One line per metric, sorted.
    Lines(Vec<MetricLine>),
    /// Every series CloudWatch finds for a query (`SEARCH`), for metrics with many series.
    Search(Search),
}

/// One metric: namespace, name and dimensions.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct MetricLine {
    pub namespace: String,
    pub metric_name: String,
    pub dimensions: BTreeMap<String, String>,
}

/// A `SEARCH` over one namespace: the metric name if known, the dimension names if every series
/// has the same ones (CloudWatch's schema form), and the values all series share, which keep a
/// host's dashboard to its own series in a fleet.
#[derive(Debug, Clone, PartialEq)]
pub struct Search {
    pub namespace: String,
    pub metric_name: Option<String>,
    pub dimension_names: Option<Vec<String>>,
    pub fixed: BTreeMap<String, String>,
}

/// A labelled horizontal line: an alarm threshold or a declared limit.
#[derive(Debug, Clone, PartialEq)]
pub struct Annotation {
    pub label: String,
    pub value: f64,
    pub fill: Fill,
}

/// The side of a threshold that alarms, shaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fill {
    Above,
    Below,
    None,
}

impl Fill {
    /// The side where an alarm with this `ComparisonOperator` fires; `None` for operators that
    /// compare with a band rather than a threshold (anomaly detection), which have no line.
    pub fn of_comparison(comparison: &str) -> Option<Fill> {
        match comparison {
            "GreaterThanThreshold" | "GreaterThanOrEqualToThreshold" => Some(Fill::Above),
            "LessThanThreshold" | "LessThanOrEqualToThreshold" => Some(Fill::Below),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct AlarmRef {
    pub region: String,
    pub name: String,
}

/// A graph being collected: lines, annotations, and the statistic of its first alarm.
#[derive(Default)]
struct Collected {
    lines: BTreeSet<MetricLine>,
    annotations: Vec<Annotation>,
    /// (alarm name, statistic, period) of the alarms on this metric; the first by name sets the
    /// graph's statistic and period, so its threshold line is comparable with what is drawn.
    alarms: Vec<(String, String, i32)>,
}

/// (region, namespace, metric name)
type GraphKey = (String, String, String);
/// (region, namespace, dimension values) of a multi-metric flake's search.
type SearchKey = (String, String, BTreeMap<String, String>);

/// The dashboard of these flakes and alarms: one graph per published metric name (its lines or a
/// `SEARCH`), every alarm threshold on its metric's graph (a graph of its own if no flake
/// publishes that metric), every `flakeAnnotations` limit on its flake's graph, every alarm listed.
pub fn dashboard_input(flakes: &[Arc<Flake>], alarms: &[DesiredAlarm], host: &str, default_region: Option<&str>) -> DashboardInput {
    let mut graphs: BTreeMap<GraphKey, Collected> = BTreeMap::new();
    let mut flake_searches: BTreeMap<SearchKey, Vec<&Flake>> = BTreeMap::new();
    for flake in flakes.iter().filter(|flake| flake.enabled) {
        let (Some(metric), Some(region)) = (&flake.metric, flake.region.as_deref().or(default_region)) else { continue };
        if flake.monitor.is_some() {
            // A monitored job's own values, each on its metric's graph beside the other jobs'.
            let dimensions = monitor::job_dimensions(&metric.dimensions, &flake.name);
            for metric_name in [monitor::JOB_SUCCESS, monitor::JOB_DURATION, monitor::JOB_OVERDUE_SECONDS] {
                let key = (region.to_string(), metric.namespace.clone(), metric_name.to_string());
                graphs.entry(key).or_default().lines.insert(MetricLine {
                    namespace: metric.namespace.clone(),
                    metric_name: metric_name.to_string(),
                    dimensions: dimensions.clone(),
                });
            }
        }
        if flake.output.format.is_multi_metric() {
            // Its metric names come from its output at run time (SPEC 8): one graph finds them
            // all, by the flake's namespace and its own dimension values. Flakes that share both
            // cannot be told apart by a search: they share the graph rather than draw the same
            // one each.
            let key = (region.to_string(), metric.namespace.clone(), metric.dimensions.clone());
            flake_searches.entry(key).or_default().push(flake);
            continue;
        }
        let graph = graphs.entry((region.to_string(), metric.namespace.clone(), metric.metric_name.clone())).or_default();
        graph.lines.insert(MetricLine {
            namespace: metric.namespace.clone(),
            metric_name: metric.metric_name.clone(),
            dimensions: metric.dimensions.clone(),
        });
        graph.annotations.extend(flake.annotations.iter().map(|limit| Annotation {
            label: limit.label.clone(),
            value: limit.value,
            fill: Fill::None,
        }));
    }
    // Math, band and composite alarms watch no single metric to draw a threshold on; they are in
    // the alarm list below.
    for alarm in alarms.iter().filter(|alarm| alarm.config.metrics.is_empty() && !alarm.config.is_composite()) {
        let config = &alarm.config;
        let graph = graphs.entry((alarm.region.clone(), config.namespace.clone(), config.metric_name.clone())).or_default();
        // An alarm on a metric no flake publishes (another flake's, or one of AWS's) still gets
        // its graph, so every threshold is drawn next to the data it is judged on.
        graph.lines.insert(MetricLine {
            namespace: config.namespace.clone(),
            metric_name: config.metric_name.clone(),
            dimensions: config.dimensions.clone(),
        });
        if let Some(fill) = Fill::of_comparison(&config.comparison) {
            graph.annotations.push(Annotation { label: config.name.clone(), value: config.threshold, fill });
        }
        let statistic = match &config.statistic {
            crate::cloudwatch::AlarmStatistic::Standard(name) | crate::cloudwatch::AlarmStatistic::Extended(name) => name.clone(),
        };
        graph.alarms.push((config.name.clone(), statistic, config.period));
    }

    let flake_searches = flake_searches.into_iter().map(|(key, flakes)| flake_search(key, &flakes));
    let graphs = graphs.into_iter().map(|(key, collected)| graph_of(key, collected)).chain(flake_searches).collect();
    let mut alarm_refs: Vec<AlarmRef> =
        alarms.iter().map(|alarm| AlarmRef { region: alarm.region.clone(), name: alarm.config.name.clone() }).collect();
    alarm_refs.sort();
    alarm_refs.dedup();
    DashboardInput { host: host.to_string(), graphs, alarms: alarm_refs }
}

/// The graph of multi-metric flakes (usually one) publishing into one namespace with the same
/// dimension values: every series there, with their declared limits. (Their alarms, which name
/// their metrics, get graphs of their own.)
fn flake_search((region, namespace, dimensions): SearchKey, flakes: &[&Flake]) -> Graph {
    let mut annotations: Vec<Annotation> = flakes
        .iter()
        .flat_map(|flake| &flake.annotations)
        .map(|limit| Annotation { label: limit.label.clone(), value: limit.value, fill: Fill::None })
        .collect();
    annotations.sort_by(|a, b| a.value.total_cmp(&b.value).then_with(|| a.label.cmp(&b.label)));
    annotations.dedup();
    let mut names: Vec<&str> = flakes.iter().map(|flake| flake.name.as_str()).collect();
    names.sort_unstable();
    Graph {
        title: format!("{} (every metric, {namespace})", names.join(", ")),
        region,
        stat: DEFAULT_STAT.to_string(),
        period: DEFAULT_PERIOD,
        series: Series::Search(Search { namespace, metric_name: None, dimension_names: None, fixed: dimensions }),
        annotations,
    }
}

fn graph_of((region, namespace, metric_name): GraphKey, mut collected: Collected) -> Graph {
    collected.alarms.sort();
    let (stat, period) =
        collected.alarms.first().map_or((DEFAULT_STAT.to_string(), DEFAULT_PERIOD), |(_, stat, period)| (stat.clone(), *period));
    collected.annotations.sort_by(|a, b| a.value.total_cmp(&b.value).then_with(|| a.label.cmp(&b.label)).then(a.fill.cmp(&b.fill)));
    collected.annotations.dedup();
    let lines: Vec<MetricLine> = collected.lines.into_iter().collect();
    let series = if lines.len() > MAX_LINES { Series::Search(search_of(&namespace, &metric_name, &lines)) } else { Series::Lines(lines) };
    Graph { title: format!("{metric_name} ({namespace})"), region, stat, period, series, annotations: collected.annotations }
}

/// The `SEARCH` that finds `lines` (and the same metric's other series of this host).
fn search_of(namespace: &str, metric_name: &str, lines: &[MetricLine]) -> Search {
    let names: BTreeSet<Vec<&String>> = lines.iter().map(|line| line.dimensions.keys().collect()).collect();
    let dimension_names = (names.len() == 1).then(|| names.into_iter().next().unwrap_or_default().into_iter().cloned().collect());
    let mut fixed = lines[0].dimensions.clone();
    fixed.retain(|name, value| lines.iter().all(|line| line.dimensions.get(name) == Some(value)));
    Search { namespace: namespace.to_string(), metric_name: Some(metric_name.to_string()), dimension_names, fixed }
}
