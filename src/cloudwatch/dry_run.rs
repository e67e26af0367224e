//! `--dry-run`: no AWS call at all. Every write is printed to stdout as one JSON object per line,
//! and remembered in memory so the next reconcile sees it and does not print it again.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, SecondsFormat};
use serde_json::{Value, json};

use super::fake::FakeCloudWatch;
use super::{AlarmConfig, CallError, CloudWatch, Datum, DescribedAlarm};
use crate::creds::Redactor;

/// Prints writes; answers reads from what it printed before.
#[derive(Clone)]
pub struct DryRun {
    memory: FakeCloudWatch,
    out: Arc<Mutex<Box<dyn Write + Send>>>,
    /// Every printed line passes through it: a dimension value may carry a secret.
    redactor: Redactor,
}

impl DryRun {
    /// Prints to standard output.
    pub fn stdout() -> Self {
        Self::to_writer(Box::new(std::io::stdout()))
    }

    pub fn to_writer(out: Box<dyn Write + Send>) -> Self {
        DryRun { memory: FakeCloudWatch::new(), out: Arc::new(Mutex::new(out)), redactor: Redactor::default() }
    }

    /// The same, masking what `redactor` knows (the flake logs' one) in every printed line.
    pub fn redacting(self, redactor: &Redactor) -> Self {
        DryRun { redactor: redactor.clone(), ..self }
    }

    fn print(&self, line: Value) {
        let mut out = self.out.lock().expect("dry-run output poisoned");
        // A closed stdout (e.g. `| head`) must not stop the daemon; the line is simply lost.
        let _ = writeln!(out, "{}", self.redactor.redact(&line.to_string()));
        let _ = out.flush();
    }
}

fn datum_json(datum: &Datum) -> Value {
    let timestamp = DateTime::from_timestamp_millis(datum.timestamp_ms).map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true));
    let dimensions: BTreeMap<&str, &str> = datum.dimensions.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut line = json!({
        "metricName": datum.metric_name,
        "dimensions": dimensions,
        "value": datum.value,
        "timestamp": timestamp,
        "unit": datum.unit,
        "storageResolution": datum.storage_resolution,
    });
    if !datum.counted_values.is_empty() {
        line.as_object_mut().expect("an object").remove("value");
        line["values"] = datum.counted_values.iter().map(|(value, _)| *value).collect();
        line["counts"] = datum.counted_values.iter().map(|(_, count)| *count).collect();
    }
    line
}

impl CloudWatch for DryRun {
    async fn put_metric_data(&self, region: &str, namespace: &str, data: &[Datum]) -> Result<(), CallError> {
        self.print(json!({
            "dryRun": "PutMetricData",
            "region": region,
            "namespace": namespace,
            "metricData": data.iter().map(datum_json).collect::<Vec<_>>(),
        }));
        Ok(())
    }

    async fn describe_alarms_named(&self, region: &str, names: &[String]) -> Result<Vec<DescribedAlarm>, CallError> {
        self.memory.describe_alarms_named(region, names).await
    }

    async fn put_metric_alarm(&self, region: &str, alarm: &AlarmConfig) -> Result<(), CallError> {
        match &alarm.rule {
            // Only what PutCompositeAlarm takes: the metric fields are empty for a composite.
            Some(rule) => self.print(json!({"dryRun": "PutCompositeAlarm", "region": region, "alarm": {
                "name": alarm.name,
                "description": alarm.description,
                "rule": rule,
                "okActions": alarm.ok_actions,
                "alarmActions": alarm.alarm_actions,
                "insufficientDataActions": alarm.insufficient_data_actions,
                "actionsEnabled": alarm.actions_enabled,
            }})),
            None => self.print(json!({"dryRun": "PutMetricAlarm", "region": region, "alarm": alarm})),
        }
        self.memory.put_metric_alarm(region, alarm).await
    }

    async fn delete_alarms(&self, region: &str, names: &[String]) -> Result<(), CallError> {
        self.print(json!({"dryRun": "DeleteAlarms", "region": region, "alarmNames": names}));
        self.memory.delete_alarms(region, names).await
    }

    async fn tag_resource(&self, region: &str, arn: &str, tags: &BTreeMap<String, String>) -> Result<(), CallError> {
        self.print(json!({"dryRun": "TagResource", "region": region, "resourceArn": arn, "tags": tags}));
        self.memory.tag_resource(region, arn, tags).await
    }

    async fn untag_resource(&self, region: &str, arn: &str, keys: &[String]) -> Result<(), CallError> {
        self.print(json!({"dryRun": "UntagResource", "region": region, "resourceArn": arn, "tagKeys": keys}));
        self.memory.untag_resource(region, arn, keys).await
    }

    async fn get_dashboard(&self, region: &str, name: &str) -> Result<Option<String>, CallError> {
        self.memory.get_dashboard(region, name).await
    }

    async fn put_dashboard(&self, region: &str, name: &str, body: &str) -> Result<Vec<String>, CallError> {
        // The body as JSON, not as a string of JSON, so that `jq` can read it.
        let body_json: Value = serde_json::from_str(body).unwrap_or_else(|_| Value::String(body.to_string()));
        self.print(json!({"dryRun": "PutDashboard", "region": region, "dashboardName": name, "dashboardBody": body_json}));
        self.memory.put_dashboard(region, name, body).await
    }

    async fn delete_dashboards(&self, region: &str, names: &[String]) -> Result<(), CallError> {
        self.print(json!({"dryRun": "DeleteDashboards", "region": region, "dashboardNames": names}));
        self.memory.delete_dashboards(region, names).await
    }
}
