//! The values a monitored job publishes (SPEC 9): `JobSuccess` and `JobDuration` per run,
//! `JobOverdueSeconds` once a minute, all with the flake's dimensions plus `Job=<flakeName>`.
//!
//! How a run's outcome counts: a run that exits 0 is a success; a non-zero exit, a failure to
//! start, a time-out and an overlap skip (the previous run still going) are failures, because a
//! job that never finishes is not a success. A run cut short by the daemon's own shutdown is
//! neither: it publishes nothing, so every restart does not set off the failed alarm (a job kept
//! from running too long still goes overdue). A skipped run did not run, so it has no duration.
//!
//! When: `JobSuccess` and `JobDuration` are timestamped at the scheduled time (SPEC 9) when the
//! run ended within one failed-alarm period (60 s) of it, and when the run ended otherwise. The
//! failed alarm has a 60 s period, and CloudWatch evaluates an alarm over a short range of recent
//! periods only: a value stamped at the start of a 20-minute run arrives 20 minutes in the past,
//! outside that range, and a failed backup would never set the alarm off. (LocalStack, which
//! looks back three periods, behaves the same way; `tests/monitor_localstack.rs` shows it.) A run
//! that ends within the period lands in time either way, so it keeps the scheduled time, like the
//! flake's own value. The scheduled time always is what the deadline counts from: it is the last
//! success kept in the state.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::outcome::RunResult;
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
    /// How the monitor counts a run that ended with `result` (a job is never `Rejected`; were it,
    /// it would not be a success).
    pub fn of_result(result: RunResult) -> JobOutcome {
        match result {
            // A partial run's job succeeded; only some of its output's entries were rejected.
            RunResult::Ok | RunResult::Partial => JobOutcome::Succeeded,
            RunResult::Failed | RunResult::Error | RunResult::Rejected => JobOutcome::Failed,
            RunResult::Timeout => JobOutcome::TimedOut,
            RunResult::Stopped => JobOutcome::Stopped,
        }
    }

    /// Whether the run counts as the job's last success (and so moves its deadline on).
    pub fn is_success(self) -> bool {
        self == JobOutcome::Succeeded
    }

    /// The words for the flake's log line (`monitor="failure (timed out)"`), so it says how the
    /// monitor counted the run.
    pub fn describe(self) -> &'static str {
        match self {
            JobOutcome::Succeeded => "success",
            JobOutcome::Failed => "failure",
            JobOutcome::TimedOut => "failure (timed out)",
            JobOutcome::SkippedOverlap => "failure (skipped, the previous run was still going)",
            JobOutcome::Stopped => "not counted (stopped by the daemon's shutdown)",
        }
    }
}

/// One firing of a monitored job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobRun {
    pub outcome: JobOutcome,
    /// The scheduled fire time: the last success when it succeeded.
    pub scheduled: DateTime<Utc>,
    /// When the run ended (for a skip: when the firing was skipped).
    pub ended: DateTime<Utc>,
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

/// A run that ends within this long of its scheduled time reaches the 60 s failed alarm in time
/// with the scheduled time as its timestamp.
const STAMPED_AT_SCHEDULED_WITHIN: chrono::TimeDelta = chrono::TimeDelta::seconds(60);

/// The timestamp of a run's values: the scheduled time, unless the run ended too long after it
/// for the failed alarm to see a value stamped then.
fn run_timestamp(run: &JobRun) -> DateTime<Utc> {
    if run.ended - run.scheduled <= STAMPED_AT_SCHEDULED_WITHIN { run.scheduled } else { run.ended }
}

/// `JobSuccess` and `JobDuration` for a run (only `JobSuccess` for a skip, nothing for a stop).
pub fn run_values(run: &JobRun) -> Vec<MonitorValue> {
    let timestamp = run_timestamp(run);
    let success = |value: f64| MonitorValue { metric_name: JOB_SUCCESS, unit: "None", value, timestamp };
    let duration = MonitorValue { metric_name: JOB_DURATION, unit: "Seconds", value: run.duration.as_secs_f64(), timestamp };
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
        JobRun {
            outcome,
            scheduled: at("2026-05-04T03:00:00Z"),
            ended: at("2026-05-04T03:20:12.500Z"),
            duration: Duration::from_millis(12_500),
        }
    }

    fn named(values: &[MonitorValue]) -> Vec<(&'static str, f64, &'static str)> {
        values.iter().map(|value| (value.metric_name, value.value, value.unit)).collect()
    }

    #[test]
    fn a_run_that_ends_within_a_minute_keeps_its_scheduled_time() {
        let quick = JobRun { ended: at("2026-05-04T03:00:59.900Z"), ..run(JobOutcome::Failed) };
        assert!(run_values(&quick).iter().all(|value| value.timestamp == at("2026-05-04T03:00:00Z")));
        let slow = JobRun { ended: at("2026-05-04T03:01:00.100Z"), ..run(JobOutcome::Failed) };
        assert!(run_values(&slow).iter().all(|value| value.timestamp == at("2026-05-04T03:01:00.100Z")));
    }

    #[test]
    fn a_success_publishes_one_and_its_duration_when_the_run_ended() {
        let values = run_values(&run(JobOutcome::Succeeded));
        assert_eq!(named(&values), vec![("JobSuccess", 1.0, "None"), ("JobDuration", 12.5, "Seconds")]);
        assert!(values.iter().all(|value| value.timestamp == at("2026-05-04T03:20:12.500Z")), "not at the scheduled 03:00");
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
    fn run_results_map_to_monitor_outcomes() {
        assert_eq!(JobOutcome::of_result(RunResult::Ok), JobOutcome::Succeeded);
        for result in [RunResult::Failed, RunResult::Error, RunResult::Rejected] {
            assert_eq!(JobOutcome::of_result(result), JobOutcome::Failed, "{result:?}");
        }
        assert_eq!(JobOutcome::of_result(RunResult::Timeout), JobOutcome::TimedOut);
        assert_eq!(JobOutcome::of_result(RunResult::Stopped), JobOutcome::Stopped);
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
        assert_eq!(success.timestamp_ms, at("2026-05-04T03:20:12.500Z").timestamp_millis());
        assert_eq!(
            (points[1].series.metric_name.as_str(), points[1].value, points[1].series.unit.as_str()),
            ("JobDuration", 12.5, "Seconds")
        );
    }
}
