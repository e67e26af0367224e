//! One firing of one flake: run its command (or scrape its URL), judge the outcome, publish the
//! value or the output's entries (durably), record the run in the flake's log. Shared by
//! `snowflake once` and the daemon's scheduler.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use tokio::sync::watch;

use crate::container::{ImageKeeper, NotReady};
use crate::creds::{Creds, Redactor};
use crate::flake::{Flake, FlakeKind, OutputFormat, ScrapeTarget};
use crate::flakelog::{Event, FlakeLogs, LOGGED_REJECTIONS, ReadoutLine, RunLine};
use crate::metrics::Metrics;
use crate::monitor::{self, JobOutcome, JobRun, SharedMonitors, run_values};
use crate::outcome::RunResult;
use crate::output::parse_value;
use crate::publish::{Accepted, Datapoint, PublisherHandle, Series};
use crate::readout::{OUTPUT_LIMIT, OutputReader, Readout, datapoints, off_runtime, up_entry};
use crate::runner::{CAPTURE_LIMIT, Captured, CommandSpec, ContainerSpec, RunOutcome, Termination, run_command, run_in_container};
use crate::scrape::{ScrapeError, request_headers, scrape};

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
    /// The image keeper and its engine, for flakes with `flakeImage` or `flakeBuild` (SPEC 14);
    /// `None` where no container may run (such a flake's runs then fail and say so).
    pub images: Option<Arc<ImageKeeper>>,
}

/// A flake ready to run: the flake and the series its values go to (computed once per load).
#[derive(Debug, Clone)]
pub struct Prepared {
    pub flake: Arc<Flake>,
    /// `None` for a job that publishes nothing; `Err` if it should publish but cannot (no region).
    pub series: Result<Option<Arc<Series>>, String>,
    /// Reads a multi-metric output and keeps its counters across runs; `None` for `number`.
    pub reader: Option<Arc<OutputReader>>,
}

impl Prepared {
    pub fn new(flake: Arc<Flake>, default_region: Option<&str>) -> Prepared {
        let series = Series::of_flake(&flake, default_region);
        let reader = OutputReader::of_flake(&flake);
        Prepared { flake, series, reader }
    }

    /// For `snowflake once`: runs also report Prometheus counters' raw totals.
    pub fn reporting_raw_counters(mut self) -> Prepared {
        self.reader = self.reader.map(|reader| Arc::new(reader.with_raw_counters()));
        self
    }
}

/// How a run went.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// A metric's value, or a job's (if its output was one number).
    Ok { value: Option<f64> },
    /// A multi-metric output was read: `partial` if some entries were rejected.
    Read(Box<Readout>),
    /// Never [`RunResult::Ok`].
    Failed { result: RunResult, reason: String },
}

impl Verdict {
    pub fn result(&self) -> RunResult {
        match self {
            Verdict::Ok { .. } => RunResult::Ok,
            Verdict::Read(readout) if readout.rejections.is_empty() => RunResult::Ok,
            Verdict::Read(_) => RunResult::Partial,
            Verdict::Failed { result, .. } => *result,
        }
    }

    /// Ok, and nothing rejected.
    pub fn is_ok(&self) -> bool {
        self.result() == RunResult::Ok
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
    /// A multi-metric run's first few datapoints as `MetricName{Dim=value}` and value (for the
    /// status page); empty otherwise.
    pub first_values: Vec<(String, f64)>,
}

/// How many of a multi-metric run's values the status page shows.
const FIRST_VALUES: usize = 3;

/// `MetricName{Dim=value,...}` of a datapoint.
fn series_label(point: &Datapoint) -> String {
    let series = &point.series;
    if series.dimensions.is_empty() {
        return series.metric_name.clone();
    }
    let dimensions: Vec<String> = series.dimensions.iter().map(|(name, value)| format!("{name}={value}")).collect();
    format!("{}{{{}}}", series.metric_name, dimensions.join(","))
}

impl RunReport {
    /// `name: ok value=42 (12 ms)` or `name: failed: exit status 3`, with untrusted text bounded
    /// but no secret known to mask; what `snowflake once` prints is [`shown`](Self::shown).
    pub fn summary(&self) -> String {
        self.shown(&Redactor::default())
    }

    /// The summary as the terminal shows it: every piece of untrusted text (a reason, a plugin's
    /// text, a rejected entry) redacted, then bounded.
    pub fn shown(&self, redactor: &Redactor) -> String {
        let millis = self.duration.as_millis();
        match &self.verdict {
            Verdict::Ok { value: Some(value) } => format!("{}: ok value={value} ({millis} ms)", self.flake),
            Verdict::Ok { value: None } => format!("{}: ok ({millis} ms)", self.flake),
            Verdict::Read(readout) => readout_summary(&self.flake, self.verdict.result(), readout, self.published, millis, redactor),
            Verdict::Failed { result, reason } => {
                format!("{}: {}: {} ({millis} ms)", self.flake, result.as_str(), redactor.show(reason))
            }
        }
    }
}

/// `name: partial series=12 datapoints=12 rejected=1 (8 ms)`, then a line per rejection and per
/// raw counter.
fn readout_summary(flake: &str, result: RunResult, readout: &Readout, datapoints: usize, millis: u128, redactor: &Redactor) -> String {
    let mut text = format!("{flake}: {} series={} datapoints={datapoints}", result.as_str(), readout.series);
    if let Some((state, summary)) = &readout.nagios {
        text.push_str(&format!(" state={} text={:?}", state.name(), redactor.show(summary)));
    }
    if readout.dropped_series > 0 {
        text.push_str(&format!(" dropped_series={} (flakeMaxSeries)", readout.dropped_series));
    }
    if !readout.rejections.is_empty() {
        text.push_str(&format!(" rejected={}", readout.rejections.total()));
    }
    text.push_str(&format!(" ({millis} ms)"));
    for rejection in readout.rejections.iter().take(LOGGED_REJECTIONS) {
        text.push_str(&format!("\n  rejected {}: {}", redactor.show(&rejection.entry), redactor.show(&rejection.reason)));
    }
    if !readout.raw_counters.is_empty() {
        text.push_str(&format!(
            "\n  {} counter series, raw totals not published (a counter is published as its increase between two runs):",
            readout.raw_counters.len()
        ));
        for counter in &readout.raw_counters {
            let dimensions: Vec<String> = counter.dimensions.iter().map(|d| format!("{}={}", d.name, d.value)).collect();
            let shown = redactor.show(&format!("{}{{{}}}", counter.name, dimensions.join(",")));
            text.push_str(&format!("\n  counter {shown} {}", counter.value));
        }
    }
    text
}

/// Runs `prepared` for the firing at `scheduled`; `stop` ends the run early (daemon shutdown).
pub async fn execute(prepared: &Prepared, scheduled: DateTime<Utc>, context: &RunContext, stop: watch::Receiver<bool>) -> RunReport {
    let flake = &prepared.flake;
    let started = Utc::now();
    let (outcome, mut verdict) = match &flake.scrape {
        Some(target) => scrape_run(flake, target, prepared.reader.clone(), context, stop).await,
        None => {
            let spec = command_spec(flake, prepared.reader.is_some(), scheduled, context);
            let outcome = match flake.container.is_some() {
                false => run_command(&spec, stop).await,
                true => match container_run(flake, &spec, context, stop).await {
                    Ok(outcome) => outcome,
                    Err(reason) => return skip_without_image(flake, scheduled, reason, context).await,
                },
            };
            match prepared.reader.clone() {
                // A multi-metric output may be 16 MiB of text: read it off the runtime's threads.
                Some(reader) => {
                    let flake = flake.clone();
                    off_runtime(move || {
                        let verdict = judge(&flake, Some(&reader), &outcome);
                        (outcome, verdict)
                    })
                    .await
                }
                None => {
                    let verdict = judge(flake, None, &outcome);
                    (outcome, verdict)
                }
            }
        }
    };
    let lateness = (started - scheduled).to_std().unwrap_or_default();

    // How the monitor counts the run is decided by the command alone, before publishing.
    let job_run = flake.monitor.as_ref().map(|_| JobRun {
        outcome: JobOutcome::of_result(verdict.result()),
        scheduled,
        ended: Utc::now(),
        duration: outcome.duration,
    });
    let has_values = flake.scrape.is_some() || job_run.is_some() || matches!(verdict, Verdict::Ok { value: Some(_) } | Verdict::Read(_));
    let mut points = Vec::new();
    let mut first_values = Vec::new();
    if let Ok(Some(series)) = &prepared.series {
        let timestamp_ms = scheduled.timestamp_millis();
        match &mut verdict {
            Verdict::Ok { value: Some(value) } => points.push(Datapoint { series: series.clone(), value: *value, timestamp_ms }),
            Verdict::Read(readout) => {
                let entries = std::mem::take(&mut readout.entries);
                points = match &prepared.reader {
                    Some(reader) => reader.datapoints(series, entries, timestamp_ms),
                    None => datapoints(series, entries, timestamp_ms),
                };
                first_values = points.iter().take(FIRST_VALUES).map(|point| (series_label(point), point.value)).collect();
            }
            _ => {}
        }
        if flake.scrape.is_some() {
            let up = up_entry(&flake.output.metric_prefix, !matches!(verdict, Verdict::Failed { .. }));
            points.extend(datapoints(series, vec![up], timestamp_ms));
        }
        points.extend(job_run.iter().flat_map(|run| monitor::datapoints(series, &run_values(run))));
    }
    let mut published = 0;
    let mut sent_without_spool = false;
    // Only a run with something to publish fails for want of a region.
    if let Err(reason) = &prepared.series
        && has_values
        && !matches!(verdict, Verdict::Failed { .. })
    {
        verdict = Verdict::Failed { result: RunResult::Error, reason: reason.clone() };
    }
    if !points.is_empty() {
        let count = points.len();
        // Waits for the spool, so "ok" in the log means the values survive a crash.
        match context.publisher.publish_durably(points).await {
            Accepted::Durably => published = count,
            Accepted::WithoutSpool => (published, sent_without_spool) = (count, true),
            Accepted::No if !matches!(verdict, Verdict::Failed { .. }) => {
                verdict =
                    Verdict::Failed { result: RunResult::Error, reason: "the publisher has stopped; the value was not taken".to_string() }
            }
            Accepted::No => {}
        }
    }
    if let (Some(run), Some(monitors)) = (&job_run, &context.monitors) {
        monitors.record_run(&flake.name, *run).await;
    }

    let report = RunReport { flake: flake.name.clone(), scheduled, lateness, duration: outcome.duration, verdict, published, first_values };
    context.metrics.run(&flake.name, report.verdict.result());
    context.metrics.run_duration.observe(outcome.duration.as_secs_f64());
    if let Verdict::Read(readout) = &report.verdict {
        context.metrics.series(&flake.name, readout.series, readout.dropped_series);
    }
    let line = RunLine {
        result: report.verdict.result(),
        scheduled,
        duration: outcome.duration,
        value: match report.verdict {
            Verdict::Ok { value } => value,
            Verdict::Read(_) | Verdict::Failed { .. } => None,
        },
        failure: match &report.verdict {
            Verdict::Failed { reason, .. } => Some(reason.as_str()),
            Verdict::Ok { .. } | Verdict::Read(_) => None,
        },
        stdout: &outcome.stdout,
        stderr: &outcome.stderr,
        lingered: outcome.lingered,
        copy_output: flake.kind == FlakeKind::Job,
        sent_without_spool,
        readout: readout_line(&report, flake),
        monitor: job_run.map(|run| run.outcome.describe()),
    };
    context.logs.record(&flake.name, Event::Run(&line)).await;
    report
}

/// The multi-metric part of a run's log line.
fn readout_line<'a>(report: &'a RunReport, flake: &Flake) -> Option<ReadoutLine<'a>> {
    let up = flake.scrape.is_some().then_some(!matches!(report.verdict, Verdict::Failed { .. }));
    match &report.verdict {
        Verdict::Read(readout) => Some(ReadoutLine {
            datapoints: report.published,
            series: readout.series,
            dropped_series: readout.dropped_series,
            nagios: readout.nagios.as_ref().map(|(state, text)| (state.name(), text.as_str())),
            rejections: &readout.rejections,
            rejected: readout.rejections.total(),
            up,
        }),
        _ if up.is_some() => {
            Some(ReadoutLine { datapoints: report.published, series: 0, dropped_series: 0, nagios: None, rejections: &[], rejected: 0, up })
        }
        _ => None,
    }
}

/// A scrape flake's run: GET, then read the body as Prometheus text. The body stands in for
/// stdout in the log's excerpts when it cannot be read.
async fn scrape_run(
    flake: &Flake,
    target: &ScrapeTarget,
    reader: Option<Arc<OutputReader>>,
    context: &RunContext,
    stop: watch::Receiver<bool>,
) -> (RunOutcome, Verdict) {
    let started = Instant::now();
    let failed = |result, reason: String| Verdict::Failed { result, reason };
    let fetched = match request_headers(target, &context.creds, context.logs.redactor()) {
        Ok(headers) => scrape(&target.url, headers, flake.timeout, stop).await,
        Err(reason) => Err(ScrapeError::Failed(reason)),
    };
    let mut outcome = RunOutcome {
        termination: Termination::Exited(0),
        stdout: Captured::default(),
        stderr: Captured::default(),
        duration: Duration::ZERO,
        lingered: false,
        direct: false,
    };
    let verdict = match fetched {
        Err(ScrapeError::Failed(reason)) => failed(RunResult::Failed, reason),
        Err(ScrapeError::TimedOut) => {
            failed(RunResult::Timeout, format!("no complete answer from {} within {:?}", target.url, flake.timeout))
        }
        Err(ScrapeError::Stopped) => failed(RunResult::Stopped, "stopped because the daemon is shutting down".to_string()),
        Ok(body) => {
            let (body, read) = match reader {
                Some(reader) => {
                    off_runtime(move || {
                        let read = reader.read(&body, Some(0), false);
                        (body, Some(read))
                    })
                    .await
                }
                None => (body, None),
            };
            outcome.stdout.bytes = body;
            match read {
                Some(Ok(readout)) => Verdict::Read(Box::new(readout)),
                Some(Err(unreadable)) => failed(RunResult::Rejected, unreadable.0),
                None => failed(RunResult::Error, "a scrape flake has no Prometheus reader".to_string()),
            }
        }
    };
    outcome.duration = started.elapsed();
    (outcome, verdict)
}

/// A container flake's run: its image from the keeper (a pull or build is not part of the run's
/// time), then the runner's container start. `Err` when the run is skipped for want of an image;
/// an engine that does not answer fails the run instead, naming its socket.
async fn container_run(flake: &Flake, spec: &CommandSpec, context: &RunContext, stop: watch::Receiver<bool>) -> Result<RunOutcome, String> {
    let container = flake.container.as_ref().expect("a container flake");
    let spawn_failed = |reason: String| RunOutcome {
        termination: Termination::SpawnFailed(reason),
        stdout: Captured::default(),
        stderr: Captured::default(),
        duration: Duration::ZERO,
        lingered: false,
        direct: false,
    };
    let Some(images) = &context.images else {
        return Ok(spawn_failed("this command runs no containers; the flake's image cannot be used here".to_string()));
    };
    let image = match images.image_for_run(flake).await {
        Ok(image) => image,
        Err(NotReady::Skip(reason)) => return Err(reason),
        Err(NotReady::Engine(reason)) => {
            context.metrics.container_starts.get_or_create(&crate::metrics::ContainerLabels { outcome: "failed" }).inc();
            return Ok(spawn_failed(reason));
        }
    };
    let engine = images.engine();
    let mut binds = Vec::new();
    for mount in &container.mounts {
        let source = context.workdir.join(&mount.source);
        let source = std::fs::canonicalize(&source).unwrap_or(source);
        // The engine's socket never goes inside, not even inside a declared directory.
        let socket = std::fs::canonicalize(engine.socket()).unwrap_or_else(|_| engine.socket().to_path_buf());
        if socket.starts_with(&source) {
            return Ok(spawn_failed(format!(
                "flakeContainer.mounts: {} holds the container engine's socket {}, which never goes into a flake's container; mount a directory without it",
                source.display(),
                socket.display()
            )));
        }
        binds.push(format!("{}:{}:ro", source.display(), mount.target));
    }
    let container_spec = ContainerSpec {
        image,
        flake: flake.name.clone(),
        working_dir: flake.working_directory.as_ref().map(|dir| dir.display().to_string()),
        user: container.user.clone(),
        memory_bytes: container.memory_bytes,
        cpus: container.cpus,
        network: container.network.clone(),
        read_only: container.read_only,
        binds,
    };
    let (outcome, start_latency) = run_in_container(spec, &container_spec, engine, stop).await;
    if let Termination::SpawnFailed(reason) = &outcome.termination
        && reason.contains("answered 404")
    {
        images.forget(&flake.name);
    }
    let outcome_label = if start_latency.is_some() { "ok" } else { "failed" };
    context.metrics.container_starts.get_or_create(&crate::metrics::ContainerLabels { outcome: outcome_label }).inc();
    if let Some(latency) = start_latency {
        context.metrics.container_start_latency.observe(latency.as_secs_f64());
    }
    Ok(outcome)
}

/// A firing skipped because the flake's image does not exist yet: logged with the reason; not a
/// run, so neither counted as one nor told to a job's monitor.
async fn skip_without_image(flake: &Flake, scheduled: DateTime<Utc>, reason: String, context: &RunContext) -> RunReport {
    let reason = format!("no image to run yet: {reason}");
    context.logs.record(&flake.name, Event::Skipped { scheduled, reason: &reason }).await;
    RunReport {
        flake: flake.name.clone(),
        scheduled,
        lateness: Duration::ZERO,
        duration: Duration::ZERO,
        verdict: Verdict::Failed { result: RunResult::Error, reason },
        published: 0,
        first_values: Vec::new(),
    }
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
/// then flakeEnvironment, then the two SNOWFLAKE_ variables. (A container gets all but the
/// daemon's own, which the runner adds only to host processes.)
fn command_spec(flake: &Flake, multi_metric: bool, scheduled: DateTime<Utc>, context: &RunContext) -> CommandSpec {
    let mut environment = context.creds.variables.clone();
    environment.extend(flake.environment.iter().map(|(k, v)| (k.clone(), v.clone())));
    environment.push(("SNOWFLAKE_FLAKE_NAME".to_string(), flake.name.clone()));
    environment.push(("SNOWFLAKE_SCHEDULED_TIME".to_string(), scheduled.to_rfc3339_opts(SecondsFormat::Secs, true)));
    let working_directory = match &flake.working_directory {
        Some(dir) => context.workdir.join(dir),
        None => context.workdir.clone(),
    };
    let stdout_limit = if multi_metric { OUTPUT_LIMIT } else { CAPTURE_LIMIT };
    CommandSpec {
        command: flake.command.clone(),
        working_directory,
        environment,
        timeout: flake.timeout,
        nice: context.command_nice,
        stdout_limit,
    }
}

/// Success and value by the flake's type and output format; every failure says why.
pub fn judge(flake: &Flake, reader: Option<&OutputReader>, outcome: &RunOutcome) -> Verdict {
    let failed = |result, reason: String| Verdict::Failed { result, reason };
    if let Some(reader) = reader.filter(|reader| reader.format() == OutputFormat::Nagios) {
        // Exit statuses 0-3 are the plugin's states, not failures (SPEC 8).
        let exit_code = match outcome.termination {
            Termination::Exited(code) => Some(code),
            Termination::Signaled(_) => None,
            _ => return judge_termination(flake, outcome),
        };
        return match reader.read(&outcome.stdout.bytes, exit_code, outcome.stdout.truncated) {
            Ok(readout) => Verdict::Read(Box::new(readout)),
            Err(unreadable) => failed(RunResult::Failed, unreadable.0),
        };
    }
    match (&outcome.termination, reader) {
        (Termination::Exited(0), Some(reader)) => match reader.read(&outcome.stdout.bytes, Some(0), outcome.stdout.truncated) {
            Ok(readout) => Verdict::Read(Box::new(readout)),
            Err(_) if flake.kind == FlakeKind::Job => Verdict::Ok { value: None },
            Err(unreadable) => failed(RunResult::Rejected, unreadable.0),
        },
        _ => judge_termination(flake, outcome),
    }
}

/// A `number` flake's verdict, and any run that did not end with an exit status to read.
fn judge_termination(flake: &Flake, outcome: &RunOutcome) -> Verdict {
    let failed = |result, reason: String| Verdict::Failed { result, reason };
    match &outcome.termination {
        Termination::SpawnFailed(reason) => failed(RunResult::Error, reason.clone()),
        Termination::TimedOut => {
            let ended =
                if flake.container.is_some() { "its container was stopped and removed" } else { "its process group was terminated" };
            failed(RunResult::Timeout, format!("timed out after {:?}; {ended}", flake.timeout))
        }
        Termination::Stopped => failed(RunResult::Stopped, "stopped because the daemon is shutting down".to_string()),
        Termination::Signaled(signal) => failed(RunResult::Failed, format!("killed by signal {signal}")),
        Termination::Exited(code) if *code != 0 => failed(RunResult::Failed, format!("exit status {code}")),
        Termination::Exited(_) => match (flake.kind, parse_value(&outcome.stdout.bytes, outcome.stdout.truncated)) {
            (_, Ok(value)) => Verdict::Ok { value: Some(value) },
            (FlakeKind::Job, Err(_)) => Verdict::Ok { value: None },
            (FlakeKind::Metric | FlakeKind::Scrape | FlakeKind::Alarms, Err(rejected)) => failed(RunResult::Rejected, rejected.0),
        },
    }
}
