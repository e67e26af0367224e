//! Jobs as cron monitors (SPEC 9): a job flake with `flakeMonitor` publishes whether each run
//! succeeded and how long it took, and once a minute how far past its deadline it is; two
//! declared alarms turn those into "failed" and "overdue" notifications, inside CloudWatch.
//!
//! - [`deadline`]: when a job is late, from its own schedule; `JobOverdueSeconds`.
//! - [`state`]: each job's last success and first load, kept in `<state-dir>/monitors.json`.
//! - [`metrics`]: the run's outcome as `JobSuccess` and `JobDuration`, the `Job` dimension.
//! - [`alarms`]: `FL-<flake>-overdue` and `FL-<flake>-failed` as plain data and `AlarmConfig`.
//! - [`monitors`]: the daemon's set of monitored jobs, tying the above together.
//! - [`shared`]: the daemon's one `Monitors`, shared by runs, reloads and the overdue tick.
//!
//! # How it plugs in
//!
//! - Flake format: `flakeMonitor` is parsed by `flake::monitor` into `Flake::monitor`;
//!   [`MonitoredJob::of_flake`] gives the name, schedule and [`Allowance`] (grace and
//!   `flakeTimeout`).
//! - Daemon start: [`Monitors::open`] on `--state-dir` (in memory for `--dry-run`), shared as
//!   [`SharedMonitors`]; the initial load and every reload call [`SharedMonitors::set_jobs`]
//!   before the scheduler hears of the flakes.
//! - Execution (`crate::execution`): each run of a monitored job becomes a [`JobRun`]; its
//!   [`run_values`] go to the publisher with the run's own value as [`datapoints`] on the flake's
//!   series plus `Job=<flakeName>`; [`JobOutcome::describe`] goes in the flake's log line; the
//!   daemon's runs then [`SharedMonitors::record_run`]. An overlap skip publishes `JobSuccess` 0
//!   (`execution::skip_overlapping`). `snowflake once` publishes the values and keeps no state.
//! - Once a minute (`daemon::overdue`): [`Monitors::overdue`] gives one `JobOverdueSeconds` per
//!   job, published the same way.
//! - Alarm reconciliation: `alarms::desired` adds [`flake_alarms`] (built from
//!   [`declared_alarms`], [`MonitorAlarm::config`] and [`job_dimensions`]) beside the flake's own
//!   alarms, so they are planned, reconciled and deleted like any other.
//!
//! Outcome mapping from the execution's verdicts: ok -> `Succeeded`; failed (exit status or
//! signal) and error (could not start) -> `Failed`; timeout -> `TimedOut`; stopped ->
//! `Stopped`; a firing skipped because the previous run is still going -> `SkippedOverlap`.
//! (rejected never happens to a job: its success is its exit status, SPEC 2.3.)

pub mod alarms;
pub mod deadline;
pub mod metrics;
pub mod monitors;
pub mod shared;
pub mod state;

pub use alarms::{AlarmActions, FAILED, MonitorAlarm, OVERDUE, declared_alarms, flake_alarms};
pub use deadline::{Allowance, DEFAULT_GRACE, JobTimes};
pub use metrics::{
    JOB_DIMENSION, JOB_DURATION, JOB_OVERDUE_SECONDS, JOB_SUCCESS, JobOutcome, JobRun, MonitorValue, datapoints, job_dimensions,
    job_series, run_values,
};
pub use monitors::{MonitoredJob, Monitors};
pub use shared::SharedMonitors;
pub use state::{JobRecord, MonitorState, MonitorStateFile};
