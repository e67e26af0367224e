//! One firing of one flake: run its command, judge the outcome, publish the value (durably),
//! record the run in the flake's log. Shared by `snowflake once` and the daemon's scheduler.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use tokio::sync::watch;

use crate::creds::Creds;
use crate::flake::{Flake, FlakeKind};
use crate::flakelog::{Event, FlakeLogs, RunLine};
use crate::metrics::Metrics;
use crate::monitor::{self, JobOutcome, JobRun, SharedMonitors, run_values};
use crate::outcome::RunResult;
use crate::output::parse_value;
use crate::publish::{Accepted, Datapoint, PublisherHandle, Series};
use crate::runner::{CommandSpec, RunOutcome, Termination, run_command};

/// What every run needs besides its flake.
pub struct RunContext {
    /// Relative `flakeWorkingDirectory` values are relative to this (`--workdir`).
    pub workdir: PathBuf,
    pub creds: Creds,
    pub logs: Arc<FlakeLogs>,
    pub publisher: PublisherHandle,
    pub metrics: Arc<Metrics>,
    /// Niceness of commands (see `runner::command_niceness`).
    pub command_nice: Option<i32>,
    /// The daemon's job monitors, which keep each monitored job's last success; `None` for
    /// `snowflake once`, which publishes a monitored job's values but keeps no state.
    pub monitors: Option<SharedMonitors>,
}

/// A flake ready to run: the flake and the series its values go to (computed once per load).
#[derive(Debug, Clone)]
pub struct Prepared {
    pub flake: Arc<Flake>,
    /// `None` for a job that publishes nothing; `Err` if it should publish but cannot (no region).
    pub series: Result<Option<Arc<Series>>, String>,
}

impl Prepared {
    pub fn new(flake: Arc<Flake>, default_region: Option<&str>) -> Prepared {
        let series = Series::of_flake(&flake, default_region);
        Prepared { flake, series }
    }
}

/// How a run went.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// A metric's value, or a job's (if its output was one number).
    Ok { value: Option<f64> },
    /// Never [`RunResult::Ok`].
    Failed { result: RunResult, reason: String },
}

impl Verdict {
    pub fn result(&self) -> RunResult {
        match self {
            Verdict::Ok { .. } => RunResult::Ok,
            Verdict::Failed { result, .. } => *result,
        }
    }

    pub fn is_ok(&self) -> bool {
        matches!(self, Verdict::Ok { .. })
    }
}

/// The record of one run.
#[derive(Debug, Clone)]
pub struct RunReport {
    pub flake: String,
    pub scheduled: DateTime<Utc>,
    /// Command start minus scheduled time.
    pub lateness: Duration,
    pub duration: Duration,
    pub verdict: Verdict,
    /// How many datapoints went to the publisher: the value, and a monitored job's `JobSuccess`
    /// and `JobDuration`.
    pub published: usize,
}

impl RunReport {
    /// `name: ok value=42 (12 ms)` or `name: failed: exit status 3`, for `snowflake once`.
    pub fn summary(&self) -> String {
        let millis = self.duration.as_millis();
        match &self.verdict {
            Verdict::Ok { value: Some(value) } => format!("{}: ok value={value} ({millis} ms)", self.flake),
            Verdict::Ok { value: None } => format!("{}: ok ({millis} ms)", self.flake),
            Verdict::Failed { result, reason } => format!("{}: {result}: {reason} ({millis} ms)", self.flake, result = result.as_str()),
        }
    }
}

/// Runs `prepared` for the firing at `scheduled`; `stop` ends the run early (daemon shutdown).
pub async fn execute(prepared: &Prepared, scheduled: DateTime<Utc>, context: &RunContext, stop: watch::Receiver<bool>) -> RunReport {
    let flake = &prepared.flake;
    let spec = command_spec(flake, scheduled, context);
    let started = Utc::now();
    let outcome = run_command(&spec, stop).await;
    let lateness = (started - scheduled).to_std().unwrap_or_default();

    let mut verdict = judge(flake, &outcome);
    // How the monitor counts the run is decided by the command alone, before publishing.
    let job_run = flake.monitor.as_ref().map(|_| JobRun {
        outcome: JobOutcome::of_result(verdict.result()),
        scheduled,
        ended: Utc::now(),
        duration: outcome.duration,
    });
    let value = match verdict {
        Verdict::Ok { value } => value,
        Verdict::Failed { .. } => None,
    };
    let mut points = Vec::new();
    if let Ok(Some(series)) = &prepared.series {
        points.extend(value.map(|value| Datapoint { series: series.clone(), value, timestamp_ms: scheduled.timestamp_millis() }));
        points.extend(job_run.iter().flat_map(|run| monitor::datapoints(series, &run_values(run))));
    }
    let mut published = 0;
    let mut sent_without_spool = false;
    if let Err(reason) = &prepared.series
        && verdict.is_ok()
        && (value.is_some() || job_run.is_some())
    {
        verdict = Verdict::Failed { result: RunResult::Error, reason: reason.clone() };
    }
    if !points.is_empty() {
        let count = points.len();
        // Waits for the spool, so "ok" in the log means the value survives a crash.
        match context.publisher.publish_durably(points).await {
            Accepted::Durably => published = count,
            Accepted::WithoutSpool => (published, sent_without_spool) = (count, true),
            Accepted::No if verdict.is_ok() => {
                verdict =
                    Verdict::Failed { result: RunResult::Error, reason: "the publisher has stopped; the value was not taken".to_string() }
            }
            Accepted::No => {}
        }
    }
    if let (Some(run), Some(monitors)) = (&job_run, &context.monitors) {
        monitors.record_run(&flake.name, *run).await;
    }

    let report = RunReport { flake: flake.name.clone(), scheduled, lateness, duration: outcome.duration, verdict, published };
    context.metrics.run(&flake.name, report.verdict.result());
    context.metrics.run_duration.observe(outcome.duration.as_secs_f64());
    let line = RunLine {
        result: report.verdict.result(),
        scheduled,
        duration: outcome.duration,
        value: match report.verdict {
            Verdict::Ok { value } => value,
            Verdict::Failed { .. } => None,
        },
        failure: match &report.verdict {
            Verdict::Failed { reason, .. } => Some(reason.as_str()),
            Verdict::Ok { .. } => None,
        },
        stdout: &outcome.stdout,
        stderr: &outcome.stderr,
        lingered: outcome.lingered,
        copy_output: flake.kind == FlakeKind::Job,
        sent_without_spool,
        monitor: job_run.map(|run| run.outcome.describe()),
    };
    context.logs.record(&flake.name, Event::Run(&line)).await;
    report
}

/// A firing not run because the previous run of the flake is still going: logged, and for a
/// monitored job a failure (`JobSuccess` 0), since a job that never finishes is not a success.
pub async fn skip_overlapping(prepared: &Prepared, scheduled: DateTime<Utc>, context: &RunContext) {
    let flake = &prepared.flake;
    let mut reason = "the previous run is still going".to_string();
    if flake.monitor.is_some() {
        let run = JobRun { outcome: JobOutcome::SkippedOverlap, scheduled, ended: Utc::now(), duration: Duration::ZERO };
        reason = format!("{reason}; monitor={:?}", run.outcome.describe());
        if let Ok(Some(series)) = &prepared.series {
            context.publisher.publish_durably(monitor::datapoints(series, &run_values(&run))).await;
        }
    }
    context.logs.record(&flake.name, Event::Skipped { scheduled, reason: &reason }).await;
}

/// The command with its environment in the contract's order: the daemon's own, then creds.json,
/// then flakeEnvironment, then the two SNOWFLAKE_ variables.
fn command_spec(flake: &Flake, scheduled: DateTime<Utc>, context: &RunContext) -> CommandSpec {
    let mut environment = context.creds.variables.clone();
    environment.extend(flake.environment.iter().map(|(k, v)| (k.clone(), v.clone())));
    environment.push(("SNOWFLAKE_FLAKE_NAME".to_string(), flake.name.clone()));
    environment.push(("SNOWFLAKE_SCHEDULED_TIME".to_string(), scheduled.to_rfc3339_opts(SecondsFormat::Secs, true)));
    let working_directory = match &flake.working_directory {
        Some(dir) => context.workdir.join(dir),
        None => context.workdir.clone(),
    };
    CommandSpec { command: flake.command.clone(), working_directory, environment, timeout: flake.timeout, nice: context.command_nice }
}

/// Success and value by the flake's type; every failure says why.
pub fn judge(flake: &Flake, outcome: &RunOutcome) -> Verdict {
    let failed = |result, reason: String| Verdict::Failed { result, reason };
    match &outcome.termination {
        Termination::SpawnFailed(reason) => failed(RunResult::Error, reason.clone()),
        Termination::TimedOut => {
            failed(RunResult::Timeout, format!("timed out after {:?}; its process group was terminated", flake.timeout))
        }
        Termination::Stopped => failed(RunResult::Stopped, "stopped because the daemon is shutting down".to_string()),
        Termination::Signaled(signal) => failed(RunResult::Failed, format!("killed by signal {signal}")),
        Termination::Exited(code) if *code != 0 => failed(RunResult::Failed, format!("exit status {code}")),
        Termination::Exited(_) => match (flake.kind, parse_value(&outcome.stdout.bytes, outcome.stdout.truncated)) {
            (_, Ok(value)) => Verdict::Ok { value: Some(value) },
            (FlakeKind::Job, Err(_)) => Verdict::Ok { value: None },
            (FlakeKind::Metric | FlakeKind::Alarms, Err(rejected)) => failed(RunResult::Rejected, rejected.0),
        },
    }
}
