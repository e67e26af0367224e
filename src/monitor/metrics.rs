//! The values a monitored job publishes (SPEC 9): `JobSuccess` and `JobDuration` per run,
//! `JobOverdueSeconds` once a minute, all with the flake's dimensions plus `Job=<flakeName>`.
//!
//! How a run's outcome counts: a run that exits 0 is a success; a non-zero exit, a failure to
//! start, a time-out and an overlap skip (the previous run still going) are failures, because a
//! job that never finishes is not a success. A run cut short by the daemon's own shutdown is
//! neither: it publishes nothing, so every restart does not set off the failed alarm (a job kept
//! from running too long still goes overdue). A skipped run did not run, so it has no duration.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::publish::{Datapoint, Series};

/// 1 for a successful run, 0 for any other.
pub const JOB_SUCCESS: &str = "JobSuccess";
/// How long the command ran, in seconds.
pub const JOB_DURATION: &str = "JobDuration";
/// How far past its deadline the job is, in seconds, else 0.
pub const JOB_OVERDUE_SECONDS: &str = "JobOverdueSeconds";
/// The dimension naming the job; its value is the flake's name.
pub const JOB_DIMENSION: &str = "Job";

/// How one firing of a monitored job ended, as far as the monitor is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobOutcome {
    /// Exit status 0.
    Succeeded,
    /// A non-zero exit status, a signal, or a command that could not start.
    Failed,
    /// Killed at its time limit (`flakeTimeout`).
    TimedOut,
    /// Not started because the previous run was still going.
    SkippedOverlap,
    /// Cut short by the daemon's shutdown.
    Stopped,
}

impl JobOutcome {
    /// Whether the run counts as the job's last success (and so moves its deadline on).
    pub fn is_success(self) -> bool {
        self == JobOutcome::Succeeded
    }

    /// The words for the flake's log line, so it says how the monitor counted the run.
    pub fn describe(self) -> &'static str {
        match self {
            JobOutcome::Succeeded => "monitor: success",
            JobOutcome::Failed => "monitor: failure",
            JobOutcome::TimedOut => "monitor: failure (timed out)",
            JobOutcome::SkippedOverlap => "monitor: failure (skipped, the previous run was still going)",
            JobOutcome::Stopped => "monitor: not counted (stopped by the daemon's shutdown)",
        }
    }
}

/// One firing of a monitored job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobRun {
    pub outcome: JobOutcome,
    /// The scheduled fire time: the values' timestamp, and the last success when it succeeded.
    pub scheduled: DateTime<Utc>,
    /// How long the command ran (up to its kill at the time limit); unused for a skip.
    pub duration: Duration,
}

/// One value to publish for a monitored job, before it is given its series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MonitorValue {
    pub metric_name: &'static str,
    /// A CloudWatch unit name.
    pub unit: &'static str,
    pub value: f64,
    pub timestamp: DateTime<Utc>,
}

/// `JobSuccess` and `JobDuration` for a run (only `JobSuccess` for a skip, nothing for a stop).
pub fn run_values(run: &JobRun) -> Vec<MonitorValue> {
    let success = |value: f64| MonitorValue { metric_name: JOB_SUCCESS, unit: "None", value, timestamp: run.scheduled };
    let duration = MonitorValue { metric_name: JOB_DURATION, unit: "Seconds", value: run.duration.as_secs_f64(), timestamp: run.scheduled };
    match run.outcome {
        JobOutcome::Succeeded => vec![success(1.0), duration],
        JobOutcome::Failed | JobOutcome::TimedOut => vec![success(0.0), duration],
        JobOutcome::SkippedOverlap => vec![success(0.0)],
        JobOutcome::Stopped => Vec::new(),
    }
}

/// `JobOverdueSeconds` at `now`.
pub fn overdue_value(overdue_seconds: u64, now: DateTime<Utc>) -> MonitorValue {
    MonitorValue { metric_name: JOB_OVERDUE_SECONDS, unit: "Seconds", value: overdue_seconds as f64, timestamp: now }
}

/// The flake's dimensions plus `Job=<flakeName>`, which replaces a flake dimension of that name
/// (flake validation should reject one on a monitored job). The alarms use the same dimensions,
/// so they watch exactly the series the values go to.
pub fn job_dimensions(flake_dimensions: &BTreeMap<String, String>, flake_name: &str) -> BTreeMap<String, String> {
    let mut dimensions = flake_dimensions.clone();
    dimensions.insert(JOB_DIMENSION.to_string(), flake_name.to_string());
    dimensions
}

/// The series a monitor value goes to: the flake's own series (region, namespace, dimensions,
/// storage resolution) with the monitor metric's name and unit and the `Job` dimension, so the
/// values take the same publish path as every other datapoint.
pub fn job_series(flake_series: &Series, value: &MonitorValue) -> Series {
    let flake_dimensions: BTreeMap<String, String> = flake_series.dimensions.iter().cloned().collect();
    Series {
        flake: flake_series.flake.clone(),
        region: flake_series.region.clone(),
        namespace: flake_series.namespace.clone(),
        metric_name: value.metric_name.to_string(),
        dimensions: job_dimensions(&flake_dimensions, &flake_series.flake).into_iter().collect(),
        unit: value.unit.to_string(),
        storage_resolution: flake_series.storage_resolution,
        aggregate_seconds: None,
    }
}

/// The datapoints for `values`. Callers that publish often should keep the three series per job
/// (`job_series`) rather than build them per value.
pub fn datapoints(flake_series: &Series, values: &[MonitorValue]) -> Vec<Datapoint> {
    values
        .iter()
        .map(|value| Datapoint {
            series: Arc::new(job_series(flake_series, value)),
            value: value.value,
            timestamp_ms: value.timestamp.timestamp_millis(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
    }

    fn run(outcome: JobOutcome) -> JobRun {
        JobRun { outcome, scheduled: at("2026-05-04T03:00:00Z"), duration: Duration::from_millis(12_500) }
    }

    fn named(values: &[MonitorValue]) -> Vec<(&'static str, f64, &'static str)> {
        values.iter().map(|value| (value.metric_name, value.value, value.unit)).collect()
    }

    #[test]
    fn a_success_publishes_one_and_its_duration_at_the_scheduled_time() {
        let values = run_values(&run(JobOutcome::Succeeded));
        assert_eq!(named(&values), vec![("JobSuccess", 1.0, "None"), ("JobDuration", 12.5, "Seconds")]);
        assert!(values.iter().all(|value| value.timestamp == at("2026-05-04T03:00:00Z")));
        assert!(JobOutcome::Succeeded.is_success());
    }

    #[test]
    fn failures_and_timeouts_publish_zero_and_their_duration() {
        for outcome in [JobOutcome::Failed, JobOutcome::TimedOut] {
            assert_eq!(
                named(&run_values(&run(outcome))),
                vec![("JobSuccess", 0.0, "None"), ("JobDuration", 12.5, "Seconds")],
                "{outcome:?}"
            );
            assert!(!outcome.is_success());
        }
        assert!(JobOutcome::TimedOut.describe().contains("failure"));
    }

    #[test]
    fn an_overlap_skip_is_a_failure_without_a_duration() {
        assert_eq!(named(&run_values(&run(JobOutcome::SkippedOverlap))), vec![("JobSuccess", 0.0, "None")]);
        assert!(!JobOutcome::SkippedOverlap.is_success());
        assert!(JobOutcome::SkippedOverlap.describe().contains("failure"));
    }

    #[test]
    fn a_run_stopped_by_shutdown_publishes_nothing_and_is_no_success() {
        assert!(run_values(&run(JobOutcome::Stopped)).is_empty());
        assert!(!JobOutcome::Stopped.is_success());
    }

    #[test]
    fn overdue_values_are_seconds_at_the_tick() {
        let value = overdue_value(180, at("2026-05-04T10:10:00Z"));
        assert_eq!(
            (value.metric_name, value.value, value.unit, value.timestamp),
            ("JobOverdueSeconds", 180.0, "Seconds", at("2026-05-04T10:10:00Z"))
        );
    }

    #[test]
    fn values_go_to_the_flakes_series_with_the_job_dimension() {
        let flake_series = Series {
            flake: "backup".into(),
            region: "eu-west-1".into(),
            namespace: "Ops/Jobs".into(),
            metric_name: "BackupBytes".into(),
            dimensions: vec![("Host".into(), "db1".into()), ("Job".into(), "not-this".into())],
            unit: "Bytes".into(),
            storage_resolution: 60,
            aggregate_seconds: None,
        };
        let points = datapoints(&flake_series, &run_values(&run(JobOutcome::Succeeded)));
        assert_eq!(points.len(), 2);
        let success = &points[0];
        assert_eq!(success.series.metric_name, "JobSuccess");
        assert_eq!(success.series.unit, "None");
        assert_eq!((success.series.region.as_str(), success.series.namespace.as_str()), ("eu-west-1", "Ops/Jobs"));
        assert_eq!(success.series.dimensions, vec![("Host".to_string(), "db1".to_string()), ("Job".to_string(), "backup".to_string())]);
        assert_eq!(success.timestamp_ms, at("2026-05-04T03:00:00Z").timestamp_millis());
        assert_eq!(
            (points[1].series.metric_name.as_str(), points[1].value, points[1].series.unit.as_str()),
            ("JobDuration", 12.5, "Seconds")
        );
    }
}
