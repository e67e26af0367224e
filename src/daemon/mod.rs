//! `snowflake run`: the daemon. Wires the catalog, scheduler, runner, publisher, alarm
//! reconciler, HTTP endpoint and heartbeat together, and stops them in order.
//!
//! Stopping (SIGTERM or SIGINT): no new runs; running commands get `--shutdown-grace`, then their
//! process groups are terminated; the publisher sends what it can within a few seconds and leaves
//! the rest in the spool; exit status 0. A second signal skips the grace.

mod health;
mod heartbeat;
mod http;
mod reconcile_loop;
mod reload;
mod scheduler;
pub mod shutdown;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::{Notify, mpsc, watch};

use crate::alarms::{ManagedFile, ReconcileConfig, Reconciler};
use crate::catalog::{Catalog, Loader};
use crate::cloudwatch::Backend;
use crate::creds::Creds;
use crate::execution::RunContext;
use crate::flakelog::FlakeLogs;
use crate::metrics::Metrics;
use crate::publish::spool::disk::DiskSpool;
use crate::publish::spool::{MemorySpool, Spool};
use crate::publish::{PublisherConfig, Replay, spawn_publisher};
use health::Health;
use reload::{ProblemReporter, Reloader, Snapshot};
use scheduler::Scheduler;

/// How long stopped runs may take to end: the runner's SIGKILL grace and abandon delay, with room.
const RUNS_END_WITHIN: Duration = Duration::from_secs(15);

/// Everything the daemon is configured with (the command line, resolved).
pub struct DaemonConfig {
    pub flakes_dir: std::path::PathBuf,
    pub state_dir: std::path::PathBuf,
    pub workdir: std::path::PathBuf,
    pub dry_run: bool,
    pub listen: Option<SocketAddr>,
    pub reconcile_interval: Duration,
    pub rescan_interval: Duration,
    pub shutdown_grace: Duration,
    pub spool_max_bytes: u64,
    pub heartbeat_namespace: Option<String>,
    pub max_concurrent_runs: usize,
    /// Niceness added to flake commands.
    pub command_nice: i32,
    pub publisher: PublisherConfig,
}

/// Runs until SIGTERM or SIGINT. Errors are start-up failures, worded for the operator.
pub async fn run(config: DaemonConfig, creds: Creds, logs: Arc<FlakeLogs>, backend: Backend, loader: Loader) -> Result<(), String> {
    let mut terminate = signal(SignalKind::terminate()).map_err(|error| format!("cannot handle SIGTERM: {error}"))?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(|error| format!("cannot handle SIGINT: {error}"))?;
    raise_open_file_limit();
    if std::process::id() == 1 {
        tracing::warn!(
            "running as PID 1 without an init: exited grandchildren of flake commands are not reaped; use the image's tini or `docker run --init`"
        );
    }

    let default_region = backend.default_region();
    if default_region.is_none() {
        tracing::warn!("no default AWS region (AWS_REGION, profile or IMDS): only flakes with flakeRegion can publish");
    }
    let metrics = Arc::new(Metrics::new());
    let (spool, replay) = open_spool(&config, &metrics)?;
    let (publisher, publisher_task) =
        spawn_publisher(Arc::new(backend.clone()), spool, replay, config.publisher.clone(), metrics.clone(), logs.clone());

    let mut catalog = Catalog::new(config.flakes_dir.clone(), loader);
    let initial = catalog.rescan(false).await;
    let mut reporter = ProblemReporter::default();
    reporter.report(&catalog, &initial.broken);
    if catalog.dir_missing() {
        tracing::error!(dir = %config.flakes_dir.display(), "the flakes directory cannot be read; waiting for it to appear");
    }
    tracing::info!(flakes = catalog.flakes().len(), invalid = catalog.broken_files().len(), dir = %config.flakes_dir.display(), "flakes loaded");

    let (stop_new_runs, shutdown) = shutdown::channel();
    let (stop_running, _) = shutdown::channel();
    let health = Arc::new(Health::default());
    let context = Arc::new(RunContext {
        workdir: config.workdir.clone(),
        creds,
        logs,
        publisher: publisher.clone(),
        metrics: metrics.clone(),
        command_nice: crate::runner::command_niceness(config.command_nice),
    });
    let mut scheduler =
        Scheduler::new(context, default_region.clone(), config.max_concurrent_runs, stop_running.subscribe(), health.clone());
    scheduler.apply(initial, Utc::now());
    let (changes_tx, changes_rx) = mpsc::channel(16);
    let scheduler_task = tokio::spawn(scheduler.run(changes_rx, shutdown.clone()));

    let snapshot = Snapshot::of(&catalog);
    snapshot.count_into(&metrics);
    let (snapshot_tx, snapshot_rx) = watch::channel(snapshot);
    let reconcile_now = Arc::new(Notify::new());
    let reloader = Reloader {
        catalog,
        reporter,
        changes: changes_tx,
        snapshot: snapshot_tx,
        reconcile: reconcile_now.clone(),
        rescan_every: config.rescan_interval,
        metrics: metrics.clone(),
    };
    let reload_task = tokio::spawn(reloader.run(shutdown.clone()));
    let reconciler =
        Reconciler::new(Arc::new(backend.clone()), ManagedFile::new(&config.state_dir), ReconcileConfig::default(), metrics.clone());
    let reconcile_task = tokio::spawn(reconcile_loop::run(
        reconciler,
        snapshot_rx,
        reconcile_now,
        config.reconcile_interval,
        default_region.clone(),
        shutdown.clone(),
    ));
    let http_task = match config.listen {
        Some(address) => Some(http::serve(address, health, metrics.clone(), shutdown.clone()).await?),
        None => None,
    };
    let heartbeat_task = match (&config.heartbeat_namespace, &default_region) {
        (Some(namespace), Some(region)) => {
            let host = crate::placeholders::HostFacts::local();
            let host = crate::placeholders::Facts::hostname(&host).unwrap_or_else(|_| "unknown".to_string());
            Some(tokio::spawn(heartbeat::run(namespace.clone(), region.clone(), host, publisher.clone(), shutdown.clone())))
        }
        (Some(_), None) => return Err("--heartbeat-namespace needs a default AWS region (AWS_REGION or a profile's region)".to_string()),
        (None, _) => None,
    };
    drop(publisher);
    tracing::info!(dry_run = config.dry_run, "snowflake daemon running");

    let signal_name = wait_for_signal(&mut terminate, &mut interrupt).await;
    tracing::info!(grace = ?config.shutdown_grace, "{signal_name}: stopping; no new runs, waiting for running commands");
    stop_new_runs.trigger();
    let mut runs = scheduler_task.await.map_err(|error| format!("the scheduler failed: {error}"))?;
    let finished_in_grace = tokio::select! {
        finished = tokio::time::timeout(config.shutdown_grace, async { while runs.join_next().await.is_some() {} }) => finished.is_ok(),
        signal = wait_for_signal(&mut terminate, &mut interrupt) => {
            tracing::info!("{signal} again: not waiting any longer");
            false
        }
    };
    if !finished_in_grace {
        tracing::warn!(running = runs.len(), "terminating the process groups of commands still running");
        stop_running.trigger();
        // Runs end within a few seconds of being stopped (SIGTERM, SIGKILL, then they stop
        // reading); this bound only guards against the unforeseen.
        let ended = tokio::time::timeout(RUNS_END_WITHIN, async { while runs.join_next().await.is_some() {} }).await;
        if ended.is_err() {
            tracing::error!(running = runs.len(), "runs did not end after being stopped; abandoning them");
            runs.shutdown().await;
        }
    }
    for task in [Some(reload_task), Some(reconcile_task), http_task, heartbeat_task].into_iter().flatten() {
        task.abort();
        let _ = task.await;
    }
    let report = publisher_task.await.map_err(|error| format!("the publisher failed: {error}"))?;
    tracing::info!(delivered = report.delivered, left_in_spool = report.pending, "stopped");
    Ok(())
}

fn open_spool(config: &DaemonConfig, metrics: &Metrics) -> Result<(Box<dyn Spool>, Replay), String> {
    if config.dry_run {
        return Ok((Box::new(MemorySpool::default()), Vec::new()));
    }
    let (spool, recovered) = DiskSpool::open(&config.state_dir, config.spool_max_bytes, Utc::now().timestamp_millis())?;
    metrics.spool_corrupt_segments.inc_by(recovered.corrupt_segments as u64);
    if !recovered.points.is_empty() {
        tracing::info!(
            datapoints = recovered.points.len(),
            torn_segments = recovered.torn_segments,
            "replaying the spool left by the previous run"
        );
    }
    Ok((Box::new(spool), recovered.points))
}

async fn wait_for_signal(terminate: &mut Signal, interrupt: &mut Signal) -> &'static str {
    tokio::select! {
        _ = terminate.recv() => "SIGTERM",
        _ = interrupt.recv() => "SIGINT",
    }
}

/// Each running command holds two pipes; thousands of flakes firing at once need more than the
/// usual soft limit of 1024 descriptors, and the hard limit is ours to take.
fn raise_open_file_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE)
        && soft < hard
        && let Err(error) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard)
    {
        tracing::warn!(soft, hard, "cannot raise the open-file limit: {error}");
    }
}
