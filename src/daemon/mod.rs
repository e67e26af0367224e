//! `snowflake run` as a library: the daemon wires the catalog, scheduler, runner, publisher,
//! alarm reconciler, HTTP endpoint and heartbeat together, and stops them in order.
//!
//! In the style of mini-redis's `server::run(listener, shutdown)`: [`start`] is fallible and
//! opens and validates everything (heartbeat region, spool, listen address) before any flake
//! runs, `@reboot` ones included; [`Daemon::stop`] ends it. [`run`] is both around a shutdown
//! future. It is generic over [`CloudWatch`], so tests run the whole daemon in process on the
//! fake; signals belong to the caller (`cli::run`).
//!
//! A panic in an essential task is not survived silently: [`Daemon::failed`] reports it, and
//! [`run`] (and `cli::run`) then stop the daemon and fail (see [`supervise`]).
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
mod supervise;

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
use crate::cluster::memory::MemoryStore;
use crate::cluster::owned::ClusterAlarms;
use crate::cluster::store::Store;
use crate::cluster::{Cluster, ClusterView, LocalFlakes, Location, Timings, cluster_flakes};
use crate::container::{Engine, ImageKeeper, daemon_owner, remove_leftovers, resolve_socket};
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
    /// `--container-engine`: the engine's socket for flakes with their own image (SPEC 14);
    /// `None`: `DOCKER_HOST`, Docker's, or podman's.
    pub container_engine: Option<PathBuf>,
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

/// `--cluster`: where the members meet, this member's name, and the store it reaches S3 through.
pub struct ClusterJoin<S> {
    pub location: Location,
    pub member: String,
    pub timings: Timings,
    pub store: S,
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
    failures: supervise::FailureReceiver,
    /// This daemon's membership of `--cluster`, if any.
    cluster: Option<Cluster>,
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
    let mut daemon = start(config, services).await?;
    let failure = tokio::select! {
        () = shutdown => None,
        reason = daemon.failed() => Some(reason),
    };
    let report = daemon.stop(hurry).await;
    match failure {
        None => Ok(report),
        Some(reason) => Err(reason),
    }
}

/// Opens and validates everything, then loads the flakes and starts every task. Nothing has run
/// when this fails.
pub async fn start<C: CloudWatch>(config: DaemonConfig, services: Services<C>) -> Result<Daemon, String> {
    start_in_cluster::<C, MemoryStore>(config, services, None).await
}

/// [`start`], as a member of a cluster when `cluster` is given (SPEC 15): cluster flakes then run
/// only while this member holds their claims.
pub async fn start_in_cluster<C: CloudWatch, S: Store + Clone>(
    config: DaemonConfig,
    services: Services<C>,
    cluster: Option<ClusterJoin<S>>,
) -> Result<Daemon, String> {
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
    let board = Arc::new(StatusBoard::new(&creds, logs.redactor().clone()));
    let status = Arc::new(http::StatusSources::new(board.clone(), Some(monitors.clone())));
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

    let (watcher, failures) = supervise::channel();
    let http_task = http_task.map(|task| watcher.watch("HTTP", task));
    let (publisher, publisher_task) =
        spawn_publisher(cloudwatch.clone(), spool, replay, config.publisher.clone(), metrics.clone(), logs.clone());
    let publisher_task = watcher.watch("publisher", publisher_task);
    let (loaded, initial) = LoadedCatalog::new(Catalog::new(config.flakes_dir.clone(), loader)).rescan(false).await;
    if loaded.catalog.dir_missing() {
        tracing::error!(dir = %config.flakes_dir.display(), "the flakes directory cannot be read; waiting for it to appear");
    }
    monitors.set_jobs(&loaded.catalog.flakes(), Utc::now()).await;
    Snapshot::report_files(&loaded.catalog, &board);
    tracing::info!(flakes = loaded.catalog.flakes().len(), invalid = loaded.catalog.broken_files().len(), dir = %config.flakes_dir.display(), "flakes loaded");

    let engine = Arc::new(Engine::new(resolve_socket(config.container_engine.as_deref()), daemon_owner(&config.state_dir)));
    // Before any run of ours creates a container with the same owner label.
    let leftovers = remove_leftovers(&engine).await;
    if leftovers > 0 {
        tracing::warn!(removed = leftovers, socket = %engine.socket().display(), "removed containers a previous daemon on this host left running");
    }
    let images = Arc::new(ImageKeeper::new(engine, logs.clone(), metrics.clone()));
    let context = Arc::new(RunContext {
        images: Some(images),
        workdir: config.workdir.clone(),
        creds,
        logs,
        publisher: publisher.clone(),
        metrics: metrics.clone(),
        command_nice: crate::runner::command_niceness(config.command_nice),
        monitors: Some(monitors.clone()),
    });
    let splay = splay::Splay::new(config.splay, host_name());
    let (cluster_flakes_tx, cluster_flakes_rx) = watch::channel(local_cluster_flakes(&Snapshot::of(&loaded.catalog)));
    let mut cluster_alarms = None;
    let cluster = cluster.map(|join| {
        tracing::info!(cluster = %join.location, member = join.member, "cluster flakes run on one member of the cluster at a time");
        let cluster = Cluster::spawn(join.store.clone(), &join.location, join.member, join.timings, metrics.clone(), cluster_flakes_rx);
        cluster_alarms = Some(ClusterAlarms::new(join.store, cluster.gate.clone(), cluster.agreement.clone(), metrics.clone()));
        cluster
    });
    let mut scheduler = Scheduler::new(
        context,
        default_region.clone(),
        config.max_concurrent_runs,
        stop_running.subscribe(),
        health.clone(),
        splay,
        board.clone(),
    )
    .with_cluster_gate(cluster.as_ref().map(|cluster| cluster.gate.clone()));
    scheduler.apply(initial, Utc::now());
    let (changes_tx, changes_rx) = mpsc::channel(16);
    let scheduler_task = watcher.watch("scheduler", tokio::spawn(scheduler.run(changes_rx, shutdown.clone())));

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
        watcher.watch("cluster flakes", tokio::spawn(follow_cluster_flakes(snapshot_rx.clone(), cluster_flakes_tx))),
        watcher.watch("reload", tokio::spawn(reloader.run(shutdown.clone()))),
        watcher.watch(
            "overdue values",
            tokio::spawn(overdue::run(monitors, snapshot_rx.clone(), default_region.clone(), publisher.clone(), shutdown.clone())),
        ),
    ];
    if let Some(cluster) = &cluster {
        helpers.push(watcher.watch("cluster view", tokio::spawn(show_cluster(cluster.view.clone(), board.clone()))));
    }
    let dashboard_target = config.dashboard.clone().zip(default_region.clone()).map(|(name, region)| Target { name, region });
    let dashboards = DashboardReconciler::new(cloudwatch.clone(), &config.state_dir, dashboard_target, ReconcileConfig::default());
    let reconciler = Reconciler::new(cloudwatch, ManagedFile::new(&config.state_dir), ReconcileConfig::default(), metrics.clone());
    helpers.push(watcher.watch(
        "reconcile",
        tokio::spawn(reconcile_loop::run(
            reconciler,
            dashboards,
            snapshot_rx,
            reconcile_now,
            config.reconcile_interval,
            default_region.clone(),
            board.clone(),
            shutdown.clone(),
            cluster_alarms,
        )),
    ));
    helpers.extend(http_task);
    if let (Some(namespace), Some(region)) = (&config.heartbeat_namespace, &default_region) {
        let host = host_name();
        let heartbeat = tokio::spawn(heartbeat::run(namespace.clone(), region.clone(), host, publisher.clone(), shutdown.clone()));
        helpers.push(watcher.watch("heartbeat", heartbeat));
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
        failures,
        cluster,
        status,
    })
}

/// Hands each listing of the cluster to the status page (members, who runs which flake).
async fn show_cluster(mut views: watch::Receiver<Arc<ClusterView>>, board: Arc<StatusBoard>) {
    loop {
        board.set_cluster(views.borrow_and_update().clone());
        if views.changed().await.is_err() {
            return;
        }
    }
}

/// Keeps the cluster member's list of local cluster flakes (and their versions) current.
async fn follow_cluster_flakes(mut snapshots: watch::Receiver<Snapshot>, cluster_flakes_tx: watch::Sender<LocalFlakes>) {
    while snapshots.changed().await.is_ok() {
        let latest = local_cluster_flakes(&snapshots.borrow_and_update());
        cluster_flakes_tx.send_if_modified(|current| {
            let changed = *current != latest;
            *current = latest;
            changed
        });
    }
}

/// This daemon's cluster flakes and whether the list may lack some (SPEC 15: while it may, no
/// member deletes a cluster flake's alarms).
fn local_cluster_flakes(snapshot: &Snapshot) -> LocalFlakes {
    let incomplete = if snapshot.dir_missing {
        Some("its flakes directory cannot be read".to_string())
    } else if snapshot.flakes.is_empty() {
        Some("its flakes directory holds no valid flake".to_string())
    } else if !snapshot.broken_files.is_empty() {
        Some(format!("{} flake file(s) do not validate", snapshot.broken_files.len()))
    } else {
        None
    };
    LocalFlakes { versions: cluster_flakes(&snapshot.flakes), incomplete }
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

    /// Waits until an essential task has died (a panic), and says which and why; the owner
    /// must then [`stop`](Daemon::stop) the daemon and fail. Never completes otherwise.
    pub async fn failed(&mut self) -> String {
        self.failures.recv().await
    }

    /// The cluster as this member last saw it (`None` without `--cluster`).
    pub fn cluster_view(&self) -> Option<watch::Receiver<Arc<ClusterView>>> {
        self.cluster.as_ref().map(|cluster| cluster.view.clone())
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
        if let Some(cluster) = self.cluster {
            // Only once its runs ended: the next holder starts with no run of ours still going.
            cluster.leave().await;
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
