//! A validated flake: typed, defaults applied, placeholders expanded, never changed afterwards.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use super::formats::{OutputSpec, ScrapeTarget};
use crate::schedule::Schedule;

/// `metric` flakes must print a number; `job` flakes succeed by exit status; `scrape` flakes GET
/// an exposition instead of running a command (SPEC 8.3); `alarms` flakes run nothing and only
/// declare alarms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlakeKind {
    Metric,
    Job,
    Alarms,
    Scrape,
}

impl FlakeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FlakeKind::Metric => "metric",
            FlakeKind::Job => "job",
            FlakeKind::Alarms => "alarms",
            FlakeKind::Scrape => "scrape",
        }
    }
}

/// Where a flake's number goes in CloudWatch (all but the region, which is per flake).
#[derive(Debug, Clone, PartialEq)]
pub struct MetricTarget {
    pub namespace: String,
    pub metric_name: String,
    /// After placeholders; sorted by name.
    pub dimensions: BTreeMap<String, String>,
    /// Canonical CloudWatch spelling.
    pub unit: &'static str,
    /// 60 (standard) or 1 (high resolution).
    pub storage_resolution: i32,
    /// `flakeAggregate` in seconds: one datum per window instead of one per value.
    pub aggregate_seconds: Option<u32>,
}

/// `Statistic` or `ExtendedStatistic` of an alarm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Statistic {
    /// `Average`, `Sum`, `Minimum`, `Maximum` or `SampleCount`.
    Standard(&'static str),
    /// A percentile such as `p99` or `p99.9`.
    Percentile(String),
}

impl Statistic {
    pub fn as_str(&self) -> &str {
        match self {
            Statistic::Standard(name) => name,
            Statistic::Percentile(name) => name,
        }
    }
}

/// A metric an alarm watches: namespace, name and dimensions, placeholders expanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricRef {
    pub namespace: String,
    pub metric_name: String,
    pub dimensions: BTreeMap<String, String>,
}

/// One metric of a metric-math alarm, by the id its expression uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MathMetric {
    pub id: String,
    pub metric: MetricRef,
    pub statistic: Statistic,
    pub period: i32,
}

/// What an alarm watches.
#[derive(Debug, Clone, PartialEq)]
pub enum Watch {
    /// One metric against `threshold`: the flake's own (the default) or any other (`alarmNamespace`).
    Metric(MetricRef),
    /// `alarmExpression` over `alarmMetrics`, against `threshold`.
    Math { expression: String, metrics: Vec<MathMetric> },
    /// An anomaly band of `width` standard deviations around the metric; `threshold` is unused.
    AnomalyBand { metric: MetricRef, width: f64 },
    /// Other alarms' states (`alarmRule`), names resolved to full `FL-` names, in canonical
    /// spelling; only name, description, actions and tags of the alarm apply.
    Composite { rule: String },
}

/// One declared alarm, in CloudWatch's terms.
#[derive(Debug, Clone, PartialEq)]
pub struct Alarm {
    /// `FL-<flakeName>-<alarmName>`, placeholders expanded.
    pub name: String,
    pub description: String,
    /// Unused (0) for anomaly-band and composite alarms: see `watch`.
    pub threshold: f64,
    /// CloudWatch's `ComparisonOperator` spelling (the band operators for an anomaly band; empty
    /// for a composite).
    pub comparison: &'static str,
    pub period: i32,
    pub evaluation_periods: i32,
    pub datapoints_to_alarm: i32,
    pub statistic: Statistic,
    /// `missing`, `breaching`, `notBreaching` or `ignore`.
    pub treat_missing_data: &'static str,
    /// Sorted and without duplicates: CloudWatch treats action lists as sets.
    pub ok_actions: Vec<String>,
    pub alarm_actions: Vec<String>,
    pub insufficient_data_actions: Vec<String>,
    pub actions_enabled: bool,
    pub tags: BTreeMap<String, String>,
    pub watch: Watch,
}

/// A declared limit drawn on the flake's dashboard graph (`flakeAnnotations`).
#[derive(Debug, Clone, PartialEq)]
pub struct Annotation {
    pub label: String,
    pub value: f64,
}

/// Where a flake runs in a cluster of daemons (SPEC 15): on every daemon, or on one member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FlakeScope {
    /// On every daemon that loads it (the default, and the only scope before SPEC 15).
    #[default]
    Host,
    /// On exactly one member of the `--cluster` at a time; locally when there is no cluster.
    Cluster,
}

impl FlakeScope {
    pub fn as_str(self) -> &'static str {
        match self {
            FlakeScope::Host => "host",
            FlakeScope::Cluster => "cluster",
        }
    }
}

/// A flake, ready to schedule, run, publish and alarm on.
#[derive(Debug, Clone, PartialEq)]
pub struct Flake {
    pub name: String,
    /// The file it was loaded from.
    pub source: PathBuf,
    pub schedule: Schedule,
    /// Empty for a scrape flake, which GETs `scrape.url` instead.
    pub command: String,
    pub kind: FlakeKind,
    /// How the output becomes metrics (`flakeOutput` and its companions).
    pub output: OutputSpec,
    /// `Some` exactly for a scrape flake.
    pub scrape: Option<ScrapeTarget>,
    /// `None` only for a job without `flakeMetricNamespace`: its output is never published.
    pub metric: Option<MetricTarget>,
    /// `None`: the AWS SDK's region chain decides.
    pub region: Option<String>,
    pub alarms: Vec<Alarm>,
    pub timeout: Duration,
    pub environment: BTreeMap<String, String>,
    /// Relative paths are relative to the daemon's `--workdir`.
    pub working_directory: Option<PathBuf>,
    pub enabled: bool,
    /// Declared limits for the dashboard graph of its metric.
    pub annotations: Vec<Annotation>,
    /// `flakeMonitor` of a job flake (SPEC 9); `None`: not monitored.
    pub monitor: Option<super::FlakeMonitor>,
    /// `flakeImage`/`flakeBuild` (SPEC 14): the command runs in a container of this image;
    /// `None`: on the host.
    pub container: Option<super::FlakeContainer>,
    /// `flakeScope`: every daemon, or one member of the cluster.
    pub scope: FlakeScope,
}
