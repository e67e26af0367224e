//! `snowflake schema`: the JSON Schema of a flake file, for editors and CI linters.
//!
//! These types exist only to describe the format; validation is in `validate` and `alarm`, which
//! also accept what a schema cannot express (numbers as strings, names in any case). A test keeps
//! the two in step by comparing the schema's property names with the validator's known keys.

#![allow(dead_code)]

use std::borrow::Cow;
use std::collections::BTreeMap;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};

/// The JSON Schema of a flake file.
pub fn flake_schema() -> Schema {
    let mut schema = schemars::schema_for!(FlakeFile);
    schema.insert("$id".to_string(), "https://specialsnowflake.dev/schema/flake.json".into());
    schema
}

/// A number written as a JSON number or as a numeric string (`60` or `"60"`).
struct NumberOrString;

impl JsonSchema for NumberOrString {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> Cow<'static, str> {
        "NumberOrString".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({"anyOf": [{"type": "number"}, {"type": "string", "pattern": r"^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$"}]})
    }
}

/// `true`/`false`, or the strings `"true"`/`"false"`.
struct BoolOrString;

impl JsonSchema for BoolOrString {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> Cow<'static, str> {
        "BoolOrString".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({"anyOf": [{"type": "boolean"}, {"type": "string", "pattern": "^(?i)(true|false)$"}]})
    }
}

/// A string, or a number that is used as its text.
struct StringOrNumber;

impl JsonSchema for StringOrNumber {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> Cow<'static, str> {
        "StringOrNumber".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({"type": ["string", "number"]})
    }
}

/// One ARN, or a list of at most five.
struct Actions;

impl JsonSchema for Actions {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> Cow<'static, str> {
        "Actions".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({"anyOf": [
            {"type": "string", "pattern": "^arn:"},
            {"type": "array", "items": {"type": "string", "pattern": "^arn:"}, "maxItems": 5}
        ]})
    }
}

#[derive(JsonSchema)]
#[serde(rename_all = "lowercase")]
enum FlakeType {
    Metric,
    Job,
    Alarms,
    Scrape,
}

#[derive(JsonSchema)]
#[serde(rename_all = "lowercase")]
enum FlakeScopeName {
    Host,
    Cluster,
}

#[derive(JsonSchema)]
#[serde(rename_all = "lowercase")]
enum FlakeOutput {
    Number,
    Json,
    Nagios,
    Prometheus,
}

/// Which Prometheus series are published, and with which labels as dimensions.
#[derive(JsonSchema)]
struct FlakeMetrics {
    /// Regular expressions matched against whole sample names; default: every sample.
    include: Option<Vec<String>>,
    /// Regular expressions of sample names not to publish.
    exclude: Option<Vec<String>>,
    /// Which labels become dimensions: `keep` or `drop` (one of them), lists of label names.
    labels: Option<Labels>,
    /// Publish histogram `_bucket` series (as increases, with the `le` label); default false.
    buckets: Option<BoolOrString>,
}

#[derive(JsonSchema)]
struct Labels {
    keep: Option<Vec<String>>,
    drop: Option<Vec<String>>,
}

/// A SpecialSnowflake flake: a shell command run on a schedule whose number is published to
/// CloudWatch, with the alarms on that metric. Keys starting with `_` or ending in `_comment` are
/// comments; other unknown keys are reported as warnings.
#[derive(JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(title = "SpecialSnowflake flake file")]
#[schemars(extend(
    "if" = {"properties": {"flakeType": {"const": "alarms"}}, "required": ["flakeType"]},
    "then" = {"not": {"anyOf": [{"required": ["flakeCommand"]}, {"required": ["flakeCronstring"]}]}},
    "else" = {
        "required": ["flakeCronstring"],
        "if": {"properties": {"flakeType": {"const": "scrape"}}, "required": ["flakeType"]},
        "then": {"required": ["flakeUrl"]},
        "else": {"required": ["flakeCommand"]}
    }
))]
struct FlakeFile {
    /// Unique name: metric name (unless flakeMetricName), log file name, alarm name prefix.
    #[schemars(regex(pattern = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$"))]
    flake_name: String,
    /// Five-field crontab line, a macro (@hourly, @daily, @reboot, ...) or "@every 1m30s"; optional "CRON_TZ=<zone> " prefix.
    /// Required, except in an "alarms" flake, which must not have one.
    flake_cronstring: Option<String>,
    /// Shell command, run with /bin/sh -c. Required, except for scrape flakes, which take flakeUrl, and "alarms" flakes,
    /// which must not have one.
    flake_command: Option<String>,
    /// "metric" (default): stdout must be one number. "job": success is the exit status. "scrape": GET flakeUrl.
    /// "alarms": no command and no schedule, only alarms that each name their metric (alarmNamespace, alarmMetricName),
    /// or are math, bands or composites.
    flake_type: Option<FlakeType>,
    /// How stdout is read: "number" (default), "json", "nagios" or "prometheus" (scrape flakes: prometheus).
    flake_output: Option<FlakeOutput>,
    /// Prepended as is to every metric name the output gives.
    #[schemars(length(max = 254))]
    flake_metric_prefix: Option<String>,
    /// Prometheus series selection: include/exclude patterns, labels keep/drop, buckets.
    flake_metrics: Option<FlakeMetrics>,
    /// Most distinct series (metric name and dimensions) one run may publish; default 200.
    flake_max_series: Option<NumberOrString>,
    /// Scrape flakes: the http:// or https:// address of the exposition; placeholders allowed.
    #[schemars(regex(pattern = r"^https?://"))]
    flake_url: Option<String>,
    /// Scrape flakes: extra request headers; values may use ${env:NAME} (creds.json keys too) and are never logged.
    flake_headers: Option<BTreeMap<String, String>>,
    /// A CloudWatch unit such as Seconds, Bytes, Percent, Count (any case); default None.
    flake_unit: Option<String>,
    /// CloudWatch namespace; required for metric flakes. Must not start with "AWS/" or ":".
    #[schemars(length(min = 1, max = 255))]
    flake_metric_namespace: Option<String>,
    /// Region for the metric and its alarms; default: the AWS SDK's region chain.
    flake_region: Option<String>,
    /// Alarms on this flake's metric, each named FL-<flakeName>-<alarmName>.
    flake_alarms: Option<Vec<AlarmEntry>>,
    /// Metric name, if not flakeName.
    #[schemars(length(min = 1, max = 255))]
    flake_metric_name: Option<String>,
    /// Dimension name -> value (at most 30); values may hold ${hostname}, ${env:NAME}, ${aws:InstanceId}, ...
    flake_dimensions: Option<BTreeMap<String, StringOrNumber>>,
    /// 60 (default) or 1 for a high-resolution metric.
    flake_storage_resolution: Option<NumberOrString>,
    /// Seconds a run may take; default 60, or the @every interval if shorter.
    flake_timeout: Option<NumberOrString>,
    /// Extra environment variables for the command.
    flake_environment: Option<BTreeMap<String, StringOrNumber>>,
    /// Working directory of the command; default the daemon's --workdir.
    flake_working_directory: Option<String>,
    /// false keeps the file loaded and validated but never runs it.
    flake_enabled: Option<BoolOrString>,
    /// "host" (default): every daemon runs it; "cluster": one member of the daemons sharing --cluster runs it.
    flake_scope: Option<FlakeScopeName>,
    /// Send the values of each window as one datum (Values/Counts) at the window's start, once it
    /// closed: "60s", "5m", ... a multiple of 60 s (of 1 s with flakeStorageResolution 1), at most 1h.
    flake_aggregate: Option<Duration>,
    /// Declared limits drawn as labelled horizontal lines on this flake's dashboard graph (at most 20).
    #[schemars(length(max = 20))]
    flake_annotations: Option<Vec<AnnotationEntry>>,
    /// Job flakes only: watch the job as a cron monitor (JobSuccess, JobDuration, JobOverdueSeconds and two alarms); needs flakeMetricNamespace.
    flake_monitor: Option<MonitorEntry>,
    /// Metric and job flakes: run the command in a container of this image (e.g. "mysql:8.4"), through the
    /// container engine's API; not with flakeBuild.
    #[schemars(length(min = 1, max = 4096))]
    flake_image: Option<String>,
    /// Metric and job flakes: a directory holding a Dockerfile, relative to this file; built by the engine and tagged
    /// snowflake-<flakeName>:<hash of its contents>. Not with flakeImage.
    #[schemars(length(min = 1))]
    flake_build: Option<String>,
    /// With flakeImage: "missing" (default: pull when absent), "always" (before every run) or "never".
    flake_image_pull: Option<PullPolicy>,
    /// With flakeImage or flakeBuild: limits and the container's few permissions.
    flake_container: Option<ContainerEntry>,
}

#[derive(JsonSchema)]
#[serde(rename_all = "lowercase")]
enum PullPolicy {
    Missing,
    Always,
    Never,
}

#[derive(JsonSchema)]
#[serde(rename_all = "lowercase")]
enum Network {
    None,
    Bridge,
    Host,
}

/// `flakeContainer`: how the flake's container runs.
#[derive(JsonSchema)]
#[serde(rename_all = "camelCase")]
struct ContainerEntry {
    /// Memory limit: bytes, or a number with a unit such as "256MiB", "1GiB", "512MB".
    memory: Option<StringOrNumber>,
    /// CPU limit, such as 0.5.
    cpus: Option<NumberOrString>,
    /// Default: the engine's.
    network: Option<Network>,
    /// User (name or uid, optionally ":group"); default the image's.
    user: Option<StringOrNumber>,
    /// The root file system is read-only; default true.
    read_only: Option<BoolOrString>,
    /// Read-only bind mounts; nothing else of the host is mounted.
    #[schemars(length(max = 32))]
    mounts: Option<Vec<MountEntry>>,
}

/// A read-only bind mount.
#[derive(JsonSchema)]
struct MountEntry {
    /// A path relative to the daemon's --workdir, without "..".
    source: String,
    /// An absolute path inside the container.
    target: String,
}

/// A duration such as "60s", "5m" or "1m30s", or a whole number of seconds.
struct Duration;

impl JsonSchema for Duration {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({"anyOf": [{"type": "integer", "minimum": 0}, {"type": "string", "pattern": r"^\s*(\d+|(\d+[hms])+)\s*$"}]})
    }
}

/// One declared limit on the dashboard graph.
#[derive(JsonSchema)]
struct AnnotationEntry {
    /// Text beside the line, such as "quota".
    #[schemars(length(min = 1, max = 255))]
    label: String,
    /// Where the line is drawn.
    value: NumberOrString,
}

/// `flakeMonitor`: the alarms FL-<flakeName>-overdue and FL-<flakeName>-failed.
#[derive(JsonSchema)]
#[serde(rename_all = "camelCase")]
struct MonitorEntry {
    /// How late a run may be beyond its next fire time and flakeTimeout: a duration such as "30m" or "1h30m", or seconds; default "5m".
    grace: Option<Duration>,
    /// false leaves out FL-<flakeName>-failed; default true.
    failed_alarm: Option<BoolOrString>,
    /// Actions per alarm state, for both alarms.
    alarm_endpoints: Option<Endpoints>,
    /// Default true.
    alarm_actions_enabled: Option<BoolOrString>,
    /// Tag key -> value, at most 50, for both alarms.
    alarm_tags: Option<BTreeMap<String, StringOrNumber>>,
}

/// One CloudWatch alarm: on the flake's metric, another metric, metric math, an anomaly band, or other alarms.
#[derive(JsonSchema)]
#[serde(rename_all = "camelCase")]
struct AlarmEntry {
    /// Short name; the alarm is FL-<flakeName>-<alarmName>. May hold placeholders such as ${hostname}.
    alarm_name: String,
    #[schemars(length(max = 1024))]
    alarm_description: Option<String>,
    /// Required, except for anomaly-band and composite alarms, which have none.
    alarm_threshold: Option<NumberOrString>,
    /// GreaterThanThreshold, GreaterThanOrEqualToThreshold, LessThanThreshold, LessThanOrEqualToThreshold, or >, >=, <, <=;
    /// for an anomaly band outside, above or below. Not for a composite.
    alarm_operator: Option<String>,
    /// Seconds: 10, 20, 30 or a multiple of 60; default 60.
    alarm_period_length: Option<NumberOrString>,
    /// Evaluation periods; default 1.
    alarm_periods: Option<NumberOrString>,
    /// Datapoints to alarm (M of N); default alarmPeriods.
    alarm_datapoints: Option<NumberOrString>,
    /// Average (default), Sum, Minimum, Maximum, SampleCount, or a percentile p0..p100.
    alarm_statistic: Option<String>,
    /// missing (default), breaching, notBreaching or ignore.
    alarm_treat_missing_data: Option<String>,
    /// Actions per alarm state.
    alarm_endpoints: Option<Endpoints>,
    /// Default true.
    alarm_actions_enabled: Option<BoolOrString>,
    /// Tag key -> value, at most 50.
    alarm_tags: Option<BTreeMap<String, StringOrNumber>>,
    /// Namespace of another metric to watch (AWS/ namespaces allowed), e.g. "AWS/EC2"; default the flake's.
    #[schemars(length(min = 1, max = 255))]
    alarm_namespace: Option<String>,
    /// Metric to watch, e.g. "StatusCheckFailed_System"; default the flake's.
    #[schemars(length(min = 1, max = 255))]
    alarm_metric_name: Option<String>,
    /// Dimensions of the watched metric (placeholders allowed): added to flakeDimensions in the flake's namespace, the
    /// whole dimensions in another.
    alarm_dimensions: Option<BTreeMap<String, StringOrNumber>>,
    /// Metric math the alarm watches, e.g. "100 * errors / requests"; needs alarmMetrics.
    #[schemars(length(min = 1, max = 1024))]
    alarm_expression: Option<String>,
    /// The expression's metrics by id (at most 10); each defaults to the flake's metric, the alarm's statistic and period.
    alarm_metrics: Option<BTreeMap<String, MathMetricEntry>>,
    /// Anomaly band width in standard deviations; with alarmOperator outside, above or below and no alarmThreshold.
    alarm_anomaly_band: Option<NumberOrString>,
    /// Composite alarm rule: ALARM(x), OK(x), INSUFFICIENT_DATA(x), TRUE, FALSE, AND, OR, NOT, parentheses; a bare name is
    /// an alarmName of this flake, a full FL-... name any alarm.
    #[schemars(length(min = 1, max = 10240))]
    alarm_rule: Option<String>,
}

/// One metric of a metric-math alarm.
#[derive(JsonSchema)]
#[serde(rename_all = "camelCase")]
struct MathMetricEntry {
    /// Default the flake's namespace.
    namespace: Option<String>,
    /// Default the flake's metric name.
    metric_name: Option<String>,
    /// Added to flakeDimensions in the flake's namespace, the whole dimensions in another.
    dimensions: Option<BTreeMap<String, StringOrNumber>>,
    /// Default the alarm's statistic.
    statistic: Option<String>,
    /// Default the alarm's period.
    period: Option<NumberOrString>,
}

/// Actions (ARNs) run when the alarm enters each state.
#[derive(JsonSchema)]
struct Endpoints {
    ok: Option<Actions>,
    alarm: Option<Actions>,
    insufficient_data: Option<Actions>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flake::{ALARM_KEYS, ANNOTATION_KEYS, ENDPOINT_KEYS, FLAKE_KEYS, MONITOR_KEYS};

    fn property_names(schema: &serde_json::Value) -> Vec<String> {
        let mut names: Vec<String> = schema["properties"].as_object().expect("properties").keys().cloned().collect();
        names.sort();
        names
    }

    fn sorted(keys: &[&str]) -> Vec<String> {
        let mut keys: Vec<String> = keys.iter().map(|key| key.to_string()).collect();
        keys.sort();
        keys
    }

    #[test]
    fn schema_and_validator_know_the_same_keys() {
        let schema = serde_json::to_value(flake_schema()).unwrap();
        assert_eq!(property_names(&schema), sorted(FLAKE_KEYS));
        assert_eq!(property_names(&schema["$defs"]["AlarmEntry"]), sorted(ALARM_KEYS));
        assert_eq!(property_names(&schema["$defs"]["Endpoints"]), sorted(ENDPOINT_KEYS));
        assert_eq!(property_names(&schema["$defs"]["AnnotationEntry"]), sorted(ANNOTATION_KEYS));
        assert_eq!(property_names(&schema["$defs"]["MonitorEntry"]), sorted(MONITOR_KEYS));
        assert_eq!(property_names(&schema["$defs"]["ContainerEntry"]), sorted(crate::flake::CONTAINER_KEYS));
        assert_eq!(property_names(&schema["$defs"]["MountEntry"]), sorted(crate::flake::MOUNT_KEYS));
        let required: Vec<&str> = schema["required"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
        assert_eq!(required, ["flakeName"]);
        assert_eq!(property_names(&schema["$defs"]["MathMetricEntry"]), sorted(crate::flake::MATH_METRIC_KEYS));
        assert_eq!(schema["else"]["required"], serde_json::json!(["flakeCronstring"]));
        assert_eq!(schema["else"]["then"]["required"], serde_json::json!(["flakeUrl"]));
        assert_eq!(schema["else"]["else"]["required"], serde_json::json!(["flakeCommand"]));
    }
}
