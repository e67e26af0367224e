//! `snowflake run` as a library: the daemon wires the catalog, scheduler, runner, publisher,
//! alarm reconciler, HTTP endpoint and heartbeat together, and stops them in order.
//!
//! In the style of mini-redis's `server::run(listener, shutdown)`: [`start`] is fallible and
//! opens and validates everything (heartbeat region, spool, listen address) before any flake
//! runs, `@reboot` ones included; [`Daemon::stop`] ends it. [`run`] is both around a shutdown
//! future. It is generic over [`CloudWatch`], so tests run the whole daemon in process on the
//! fake; signals belong to the caller (`cli::run`).
//!
//! Stopping: no new runs; running commands get `--shutdown-grace` (or less, if `hurry` completes
//! first), then their process groups are terminated; the publisher sends what it can within a
//! few seconds and leaves the rest in the spool.

mod health;
mod heartbeat;
mod http;
mod overdue;
mod reconcile_loop;
mod reload;
mod scheduler;
pub mod shutdown;
mod splay;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinHandle;

use crate::alarms::{ManagedFile, ReconcileConfig, Reconciler};
use crate::catalog::{Catalog, Loader};
use crate::cloudwatch::CloudWatch;
use crate::creds::Creds;
use crate::dashboard::{DashboardReconciler, Target};
use crate::execution::RunContext;
use crate::flakelog::FlakeLogs;
use crate::metrics::Metrics;
use crate::monitor::{Monitors, SharedMonitors};
use crate::publish::spool::disk::DiskSpool;
use crate::publish::spool::{MemorySpool, Spool};
use crate::publish::{DrainReport, PublisherConfig, Replay, spawn_publisher};
use crate::status::StatusBoard;
pub use health::{Health, HealthReport};
pub use reload::ReloadHandle;
use reload::{LoadedCatalog, Reloader, Snapshot};
use scheduler::Scheduler;

/// How long stopped runs may take to end: the runner's SIGKILL grace and abandon delay, with room.
const RUNS_END_WITHIN: Duration = Duration::from_secs(15);

/// Everything the daemon is configured with (the command line, resolved).
pub struct DaemonConfig {
    pub flakes_dir: PathBuf,
    pub state_dir: PathBuf,
    pub workdir: PathBuf,
    /// Keeps the spool in memory: a dry run must not touch the daemon's state.
    pub dry_run: bool,
    pub listen: Option<SocketAddr>,
    /// Serve `/status.json` and the status page at `/` on the listener (`--status-page`).
    pub status_page: bool,
    pub reconcile_interval: Duration,
    pub rescan_interval: Duration,
    pub shutdown_grace: Duration,
    pub spool_max_bytes: u64,
    pub heartbeat_namespace: Option<String>,
    /// `--dashboard`, placeholders expanded: the dashboard to keep (SPEC 11). Without it, a
    /// dashboard this host created earlier is deleted.
    pub dashboard: Option<String>,
    pub max_concurrent_runs: usize,
    /// Niceness added to flake commands.
    pub command_nice: i32,
    /// Runs of one fire time start spread over up to this long (`--splay`; zero: all at once).
    pub splay: Duration,
    pub publisher: PublisherConfig,
}

/// What the daemon works with, built by its caller: the CLI, or a test with the fake.
pub struct Services<C> {
    pub cloudwatch: Arc<C>,
    /// The region of flakes that name none (the SDK's chain); `None` if there is none.
    pub default_region: Option<String>,
    pub creds: Creds,
    pub logs: Arc<FlakeLogs>,
    pub loader: Loader,
}

/// A running daemon: everything is open, flakes are scheduled.
pub struct Daemon {
    stop_new_runs: shutdown::Trigger,
    stop_running: shutdown::Trigger,
    shutdown_grace: Duration,
    scheduler: JoinHandle<tokio::task::JoinSet<()>>,
    publisher: JoinHandle<DrainReport>,
    /// Reload, reconcile, HTTP and heartbeat: they end at `stop_new_runs`.
    helpers: Vec<JoinHandle<()>>,
    health: Arc<Health>,
    metrics: Arc<Metrics>,
    reload: ReloadHandle,
    status: Arc<http::StatusSources>,
}

/// Starts the daemon, runs it until `shutdown` completes, then stops it (`hurry` cuts the grace
/// of running commands short). Errors are start-up failures, worded for the operator.
pub async fn run<C: CloudWatch>(
    config: DaemonConfig,
    services: Services<C>,
    shutdown: impl Future<Output = ()>,
    hurry: impl Future<Output = ()>,
) -> Result<DrainReport, String> {
    let daemon = start(config, services).await?;
    shutdown.await;
    Ok(daemon.stop(hurry).await)
}

/// Opens and validates everything, then loads the flakes and starts every task. Nothing has run
/// when this fails.
pub async fn start<C: CloudWatch>(config: DaemonConfig, services: Services<C>) -> Result<Daemon, String> {
    let Services { cloudwatch, default_region, creds, logs, loader } = services;
    if config.heartbeat_namespace.is_some() && default_region.is_none() {
        return Err("--heartbeat-namespace needs a default AWS region (AWS_REGION or a profile's region)".to_string());
    }
    if config.dashboard.is_some() && default_region.is_none() {
        return Err("--dashboard needs a default AWS region (AWS_REGION or a profile's region)".to_string());
    }
    if default_region.is_none() {
        tracing::warn!("no default AWS region (AWS_REGION, profile or IMDS): only flakes with flakeRegion can publish");
    }
    let metrics = Arc::new(Metrics::new());
    let (spool, replay) = open_spool(&config, &metrics).await?;
    let monitors = open_monitors(&config).await?;
    let health = Arc::new(Health::new(metrics.clone()));
    let board = Arc::new(StatusBoard::new(&creds));
    let status = Arc::new(http::StatusSources { board: board.clone(), monitors: Some(monitors.clone()) });
    let (stop_new_runs, shutdown) = shutdown::channel();
    let (stop_running, _) = shutdown::channel();
    let http_task = match config.listen {
        Some(address) => {
            let page = config.status_page.then(|| status.clone());
            Some(http::serve(address, health.clone(), metrics.clone(), page, shutdown.clone()).await?)
        }
        None => None,
    };
    // Nothing below fails: from here on, flakes run.

    let (publisher, publisher_task) =
        spawn_publisher(cloudwatch.clone(), spool, replay, config.publisher.clone(), metrics.clone(), logs.clone());
    let (loaded, initial) = LoadedCatalog::new(Catalog::new(config.flakes_dir.clone(), loader)).rescan(false).await;
    if loaded.catalog.dir_missing() {
        tracing::error!(dir = %config.flakes_dir.display(), "the flakes directory cannot be read; waiting for it to appear");
    }
    monitors.set_jobs(&loaded.catalog.flakes(), Utc::now()).await;
    Snapshot::report_files(&loaded.catalog, &board);
    tracing::info!(flakes = loaded.catalog.flakes().len(), invalid = loaded.catalog.broken_files().len(), dir = %config.flakes_dir.display(), "flakes loaded");

    let context = Arc::new(RunContext {
        workdir: config.workdir.clone(),
        creds,
        logs,
        publisher: publisher.clone(),
        metrics: metrics.clone(),
        command_nice: crate::runner::command_niceness(config.command_nice),
        monitors: Some(monitors.clone()),
    });
    let splay = splay::Splay::new(config.splay, host_name());
    let mut scheduler = Scheduler::new(
        context,
        default_region.clone(),
        config.max_concurrent_runs,
        stop_running.subscribe(),
        health.clone(),
        splay,
        board.clone(),
    );
    scheduler.apply(initial, Utc::now());
    let (changes_tx, changes_rx) = mpsc::channel(16);
    let scheduler_task = tokio::spawn(scheduler.run(changes_rx, shutdown.clone()));

    let snapshot = Snapshot::of(&loaded.catalog);
    snapshot.count_into(&metrics);
    let (snapshot_tx, snapshot_rx) = watch::channel(snapshot);
    let reconcile_now = Arc::new(Notify::new());
    let reload = ReloadHandle::default();
    let reloader = Reloader {
        loaded,
        changes: changes_tx,
        snapshot: snapshot_tx,
        reconcile: reconcile_now.clone(),
        rescan_every: config.rescan_interval,
        metrics: metrics.clone(),
        reread: reload.clone(),
        monitors: monitors.clone(),
        status: board.clone(),
    };
    let mut helpers = vec![
        tokio::spawn(reloader.run(shutdown.clone())),
        tokio::spawn(overdue::run(monitors, snapshot_rx.clone(), default_region.clone(), publisher.clone(), shutdown.clone())),
    ];
    let dashboard_target = config.dashboard.clone().zip(default_region.clone()).map(|(name, region)| Target { name, region });
    let dashboards = DashboardReconciler::new(cloudwatch.clone(), &config.state_dir, dashboard_target, ReconcileConfig::default());
    let reconciler = Reconciler::new(cloudwatch, ManagedFile::new(&config.state_dir), ReconcileConfig::default(), metrics.clone());
    helpers.push(tokio::spawn(reconcile_loop::run(
        reconciler,
        dashboards,
        snapshot_rx,
        reconcile_now,
        config.reconcile_interval,
        default_region.clone(),
        board.clone(),
        shutdown.clone(),
    )));
    helpers.extend(http_task);
    if let (Some(namespace), Some(region)) = (&config.heartbeat_namespace, &default_region) {
        let host = host_name();
        helpers.push(tokio::spawn(heartbeat::run(namespace.clone(), region.clone(), host, publisher.clone(), shutdown.clone())));
    }
    tracing::info!(dry_run = config.dry_run, "snowflake daemon running");
    Ok(Daemon {
        stop_new_runs,
        stop_running,
        shutdown_grace: config.shutdown_grace,
        scheduler: scheduler_task,
        publisher: publisher_task,
        helpers,
        health,
        metrics,
        reload,
        status,
    })
}

impl Daemon {
    /// The daemon's counters, as `/metrics` serves them.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// What `/healthz` answers.
    pub fn health(&self) -> &Arc<Health> {
        &self.health
    }

    /// What `/status.json` answers now.
    pub fn status(&self) -> crate::status::Status {
        self.status.status(&self.health, &self.metrics)
    }

    /// Forces a re-read of every flake file (SIGHUP).
    pub fn reload(&self) -> &ReloadHandle {
        &self.reload
    }

    /// Stops the daemon in order; returns the publisher's totals. Running commands get the
    /// shutdown grace, cut short if `hurry` completes first.
    pub async fn stop(self, hurry: impl Future<Output = ()>) -> DrainReport {
        tracing::info!(grace = ?self.shutdown_grace, "stopping; no new runs, waiting for running commands");
        self.stop_new_runs.trigger();
        let mut runs = match self.scheduler.await {
            Ok(runs) => runs,
            Err(error) => {
                tracing::error!("the scheduler failed: {error}");
                tokio::task::JoinSet::new()
            }
        };
        let finished_in_grace = tokio::select! {
            finished = tokio::time::timeout(self.shutdown_grace, async { while runs.join_next().await.is_some() {} }) => finished.is_ok(),
            () = hurry => {
                tracing::info!("asked again: not waiting any longer");
                false
            }
        };
        if !finished_in_grace {
            tracing::warn!(running = runs.len(), "terminating the process groups of commands still running");
            self.stop_running.trigger();
            // Runs end within a few seconds of being stopped (SIGTERM, SIGKILL, then they stop
            // reading); this bound only guards against the unforeseen.
            let ended = tokio::time::timeout(RUNS_END_WITHIN, async { while runs.join_next().await.is_some() {} }).await;
            if ended.is_err() {
                tracing::error!(running = runs.len(), "runs did not end after being stopped; abandoning them");
                runs.shutdown().await;
            }
        }
        for task in self.helpers {
            task.abort();
            let _ = task.await;
        }
        // The runs and helpers held the last publisher handles: it now sends what it can and ends.
        let report = self.publisher.await.unwrap_or_else(|error| {
            tracing::error!("the publisher failed: {error}");
            DrainReport::default()
        });
        if report.unspooled > 0 {
            tracing::error!(
                delivered = report.delivered,
                left_in_spool = report.left_in_spool(),
                lost = report.unspooled,
                "stopped; datapoints the spool could not store were not delivered and are lost"
            );
        } else {
            tracing::info!(delivered = report.delivered, left_in_spool = report.left_in_spool(), "stopped");
        }
        report
    }
}

/// The job monitors' state (`<state-dir>/monitors.json`); in memory for a dry run. A file that
/// cannot be understood is set aside (logged); one that cannot be read stops the start.
async fn open_monitors(config: &DaemonConfig) -> Result<SharedMonitors, String> {
    if config.dry_run {
        return Ok(SharedMonitors::new(Monitors::in_memory()));
    }
    let state_dir = config.state_dir.clone();
    let opened = tokio::task::spawn_blocking(move || Monitors::open(&state_dir))
        .await
        .map_err(|error| format!("reading the job monitors' state did not finish: {error}"))?;
    let (monitors, _set_aside) = opened?;
    Ok(SharedMonitors::new(monitors))
}

/// This host's name, for the heartbeat's dimension and the splay's offsets.
fn host_name() -> String {
    crate::placeholders::Facts::hostname(&crate::placeholders::HostFacts::local()).unwrap_or_else(|_| "unknown".to_string())
}

/// The daemon's spool and what a previous run left in it; in memory for a dry run. Opened on
/// the blocking pool: replaying a large spool reads and checks every record.
async fn open_spool(config: &DaemonConfig, metrics: &Metrics) -> Result<(Box<dyn Spool>, Replay), String> {
    if config.dry_run {
        return Ok((Box::new(MemorySpool::default()), Vec::new()));
    }
    let (state_dir, max_bytes) = (config.state_dir.clone(), config.spool_max_bytes);
    let opened = tokio::task::spawn_blocking(move || DiskSpool::open(&state_dir, max_bytes, Utc::now().timestamp_millis()))
        .await
        .map_err(|error| format!("opening the spool did not finish: {error}"))?;
    let (spool, recovered) = opened?;
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
