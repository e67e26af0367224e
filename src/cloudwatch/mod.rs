//! Everything SpecialSnowflake asks of CloudWatch, as one small trait.
//!
//! [`sdk::SdkCloudWatch`] is the real thing and the only user of `aws-sdk-cloudwatch`;
//! [`fake::FakeCloudWatch`] is an in-memory stand-in for fast unit tests and for failures a real
//! peer will not produce on demand; [`dry_run::DryRun`] prints what would be sent and sends
//! nothing. [`Backend`] picks one at run time.

mod backend;
pub mod dry_run;
mod error;
pub mod fake;
pub mod sdk;

pub use backend::Backend;
pub use error::{CallError, ErrorKind};

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;

use serde::{Deserialize, Serialize};

/// One datum for PutMetricData: a single `value`, or several (`Values` and `Counts`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Datum {
    pub metric_name: String,
    /// Sorted by name.
    pub dimensions: Vec<(String, String)>,
    /// The value, unless `counted_values` holds the datum's values.
    pub value: f64,
    /// (value, how many times), at most 150 distinct values: several datapoints of one series and
    /// timestamp in one datum. Empty for a single value.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub counted_values: Vec<(f64, f64)>,
    /// Milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
    /// Canonical CloudWatch unit name.
    pub unit: String,
    /// 60 or 1.
    pub storage_resolution: i32,
}

impl Datum {
    /// Every value with its count: what CloudWatch computes statistics over.
    pub fn samples(&self) -> Vec<(f64, f64)> {
        if self.counted_values.is_empty() { vec![(self.value, 1.0)] } else { self.counted_values.clone() }
    }

    /// How many datapoints this datum carries (the sum of its counts).
    pub fn sample_count(&self) -> u64 {
        self.samples().iter().map(|(_, count)| *count as u64).sum()
    }
}

/// `Statistic` or `ExtendedStatistic` on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum AlarmStatistic {
    Standard(String),
    Extended(String),
}

/// A metric alarm in the shape PutMetricAlarm takes it and comparisons need it: defaults filled,
/// actions as sets, dimensions as a map.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AlarmConfig {
    pub name: String,
    pub description: String,
    pub namespace: String,
    pub metric_name: String,
    pub dimensions: BTreeMap<String, String>,
    pub statistic: AlarmStatistic,
    pub period: i32,
    pub evaluation_periods: i32,
    pub datapoints_to_alarm: i32,
    pub threshold: f64,
    pub comparison: String,
    pub treat_missing_data: String,
    pub ok_actions: BTreeSet<String>,
    pub alarm_actions: BTreeSet<String>,
    pub insufficient_data_actions: BTreeSet<String>,
    pub actions_enabled: bool,
    /// Always `None` for alarms we write; an alarm edited to carry a unit differs from ours.
    pub unit: Option<String>,
}

/// A metric alarm as DescribeAlarms reports it: what CloudWatch may leave out is an `Option`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DescribedAlarm {
    pub name: String,
    pub arn: Option<String>,
    pub description: Option<String>,
    pub namespace: Option<String>,
    pub metric_name: Option<String>,
    pub dimensions: Vec<(String, String)>,
    pub statistic: Option<String>,
    pub extended_statistic: Option<String>,
    pub period: Option<i32>,
    pub evaluation_periods: Option<i32>,
    pub datapoints_to_alarm: Option<i32>,
    pub threshold: Option<f64>,
    pub comparison: Option<String>,
    pub treat_missing_data: Option<String>,
    pub ok_actions: Vec<String>,
    pub alarm_actions: Vec<String>,
    pub insufficient_data_actions: Vec<String>,
    pub actions_enabled: Option<bool>,
    pub unit: Option<String>,
    /// Metric math, anomaly bands or query criteria: shapes we never write, so never equal.
    pub has_foreign_shape: bool,
    /// `OK`, `ALARM` or `INSUFFICIENT_DATA`.
    pub state: Option<String>,
}

/// The CloudWatch calls SpecialSnowflake makes. Regions are explicit on every call.
pub trait CloudWatch: Send + Sync + 'static {
    fn put_metric_data(&self, region: &str, namespace: &str, data: &[Datum]) -> impl Future<Output = Result<(), CallError>> + Send;

    /// Metric alarms by exact name (at most 100 names).
    fn describe_alarms_named(&self, region: &str, names: &[String]) -> impl Future<Output = Result<Vec<DescribedAlarm>, CallError>> + Send;

    fn put_metric_alarm(&self, region: &str, alarm: &AlarmConfig) -> impl Future<Output = Result<(), CallError>> + Send;

    /// At most 100 names per call.
    fn delete_alarms(&self, region: &str, names: &[String]) -> impl Future<Output = Result<(), CallError>> + Send;

    fn tag_resource(&self, region: &str, arn: &str, tags: &BTreeMap<String, String>) -> impl Future<Output = Result<(), CallError>> + Send;

    fn untag_resource(&self, region: &str, arn: &str, keys: &[String]) -> impl Future<Output = Result<(), CallError>> + Send;

    /// A dashboard's body as CloudWatch stores it; `None` if there is no dashboard of that name.
    fn get_dashboard(&self, region: &str, name: &str) -> impl Future<Output = Result<Option<String>, CallError>> + Send;

    /// Creates or replaces a dashboard; returns CloudWatch's validation messages (warnings it
    /// accepted the body with).
    fn put_dashboard(&self, region: &str, name: &str, body: &str) -> impl Future<Output = Result<Vec<String>, CallError>> + Send;

    /// Deletes dashboards; a name that does not exist is not an error.
    fn delete_dashboards(&self, region: &str, names: &[String]) -> impl Future<Output = Result<(), CallError>> + Send;
}
