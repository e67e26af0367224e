//! What `/status.json` says: the daemon's header and one row per flake. The same structs are
//! serialized by the daemon, rendered into the page, and read back by `snowflake status`, so the
//! three can never disagree about a field.
//!
//! Times are RFC 3339 UTC; durations are milliseconds or seconds as their names say. A field
//! whose value is not known is `null` (never a made-up zero).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Everything `/status.json` answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub header: Header,
    /// Sorted by flake name.
    pub flakes: Vec<FlakeRow>,
}

/// The daemon as a whole.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Header {
    pub version: String,
    /// When this snapshot was taken.
    pub generated: DateTime<Utc>,
    pub started: DateTime<Utc>,
    pub uptime_seconds: u64,
    /// False when the scheduler stalled or the spool cannot be written (`/healthz`'s findings).
    pub healthy: bool,
    /// `/healthz`'s lines other than `ok`.
    pub health_findings: Vec<String>,
    pub flake_files: FlakeFiles,
    pub spool: SpoolStatus,
    /// The last PutMetricData request; `null` before the first.
    pub last_put: Option<PutStatus>,
    /// The last alarm reconcile; `null` before the first ended.
    pub alarm_reconcile: Option<ReconcileStatus>,
    /// The last dashboard reconcile; `null` before the first ended.
    pub dashboard_reconcile: Option<ReconcileStatus>,
    pub cluster: ClusterStatus,
}

/// The flakes directory as last read.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FlakeFiles {
    /// Flakes loaded (running, disabled, or alarms only).
    pub loaded: usize,
    /// Files with errors: each keeps its last good version running, if it had one.
    pub broken: Vec<BrokenFile>,
    /// The directory could not be read on the last rescan.
    pub dir_missing: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BrokenFile {
    pub path: String,
    /// `field: message`, as `snowflake check` prints them.
    pub problems: Vec<String>,
}

/// Datapoints not yet delivered.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SpoolStatus {
    /// Datapoints waiting in the spool.
    pub datapoints: u64,
    pub bytes: u64,
    /// Scheduled time of the oldest datapoint not yet delivered; `null` when none waits.
    pub oldest_undelivered: Option<DateTime<Utc>>,
    pub oldest_undelivered_age_seconds: Option<f64>,
    /// Dropped by the spool's age or size limit since start.
    pub dropped: u64,
    /// Rejected by CloudWatch as invalid since start.
    pub rejected: u64,
    /// False while the spool cannot be written.
    pub writable: bool,
}

/// One PutMetricData request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PutStatus {
    pub at: DateTime<Utc>,
    /// `ok`, `throttled`, `unavailable`, `credentials` or `invalid` (as in `/metrics`).
    pub result: String,
    pub latency_ms: f64,
}

/// One alarm or dashboard reconcile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReconcileStatus {
    /// When it ended.
    pub at: DateTime<Utc>,
    /// Writes made: creates, updates, tags, deletes.
    pub changes: usize,
    /// What failed (tried again next time); a reconcile that could not start has one entry.
    pub failures: Vec<String>,
}

/// The cluster this daemon belongs to (SPEC 15); empty without `--cluster`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClusterStatus {
    pub members: Vec<String>,
}

/// One flake.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlakeRow {
    pub name: String,
    /// `metric`, `job`, `scrape` or `alarms`.
    #[serde(rename = "type")]
    pub kind: String,
    pub schedule: String,
    pub enabled: bool,
    pub file: String,
    /// The next scheduled time; `null` when it will not fire (disabled, alarms only, `@reboot`).
    pub next: Option<DateTime<Utc>>,
    /// Seconds from `generated` to `next`.
    pub next_in_seconds: Option<i64>,
    /// When the run going now started; `null` when none is going.
    pub running_since: Option<DateTime<Utc>>,
    pub last_run: Option<LastRun>,
    /// The last value this flake handed to the publisher (kept when later runs fail).
    pub last_value: Option<PublishedValue>,
    /// Since the daemon started (kept across edits of the file).
    pub runs: u64,
    /// Runs that did not end `ok` or `partial`.
    pub failures: u64,
    /// Firings not run: the previous run was still going, or a later firing was already due.
    pub skips: u64,
    /// A monitored job's state (SPEC 9); `null` for other flakes.
    pub monitor: Option<MonitorStatus>,
    /// Its alarms, as the last alarm reconcile read them.
    pub alarms: Vec<AlarmStatus>,
    /// The cluster member running it; `null` means this daemon.
    pub member: Option<String>,
}

/// The last run that ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LastRun {
    pub scheduled: DateTime<Utc>,
    /// `ok`, `partial`, `failed`, `rejected`, `timeout`, `stopped` or `error` (as in the logs).
    pub result: String,
    /// Why it did not succeed (`exit status 3`, `timed out after 5s`, ...), redacted.
    pub reason: Option<String>,
    pub duration_ms: f64,
}

/// What a run handed to the publisher.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PublishedValue {
    /// The run's scheduled time: the datapoints' timestamp.
    pub at: DateTime<Utc>,
    /// A `number` flake's value.
    pub value: Option<f64>,
    /// A multi-metric flake's series count.
    pub series: Option<usize>,
    /// A multi-metric flake's first few values, in output order.
    pub first: Vec<SeriesValue>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeriesValue {
    /// `MetricName{Dim=value,...}`.
    pub series: String,
    pub value: f64,
}

/// `up`: not yet past its next fire time plus its time limit; `late`: past that, within the
/// grace; `down`: past the deadline (`JobOverdueSeconds` above zero).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MonitorStatus {
    pub state: String,
    pub deadline: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlarmStatus {
    pub name: String,
    /// `OK`, `ALARM` or `INSUFFICIENT_DATA`; `null` when it was not read yet (just created).
    pub state: Option<String>,
    /// When the reconcile that read it ended.
    pub read_at: Option<DateTime<Utc>>,
}

impl FlakeRow {
    /// Its last run did not end `ok` or `partial`.
    pub fn is_failing(&self) -> bool {
        self.last_run.as_ref().is_some_and(|run| !matches!(run.result.as_str(), "ok" | "partial"))
    }

    /// A monitored job past its next fire time and time limit.
    pub fn is_late(&self) -> bool {
        self.monitor.as_ref().is_some_and(|monitor| monitor.state != "up")
    }
}
