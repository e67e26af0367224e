//! The fleet: N hosts, each running the project's real `Reconciler` (on the daemon's cadence of
//! `alarms::cadence`) and real publisher, against one [`Account`] on tokio's paused clock.
//!
//! A simulated run: the hosts start, brand new, within the first minute (no alarm exists yet);
//! each publishes its flakes' values every minute (`* * * * *`) and reconciles its alarms at start
//! and then every interval; at `restart_at` every host restarts within one minute (its reconcile
//! starts afresh; its spool carries the data across, so publishing goes on); at the end the
//! publishers drain and what CloudWatch accepted is compared with what the hosts produced.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use specialsnowflake::alarms::{DesiredAlarm, ManagedFile, ReconcileConfig, Reconciler, Scope, cadence, desired_alarms};
use specialsnowflake::creds::Redactor;
use specialsnowflake::flake::{Context, parse_flake};
use specialsnowflake::flakelog::FlakeLogs;
use specialsnowflake::metrics::Metrics;
use specialsnowflake::placeholders::HostFacts;
use specialsnowflake::publish::spool::MemorySpool;
use specialsnowflake::publish::{Datapoint, PublisherConfig, PublisherHandle, Series, spawn_publisher};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::account::{Account, Api, Tally};

pub const REGION: &str = "us-east-1";
const NAMESPACE: &str = "Fleet/Sim";

/// What to simulate.
#[derive(Debug, Clone)]
pub struct Params {
    pub hosts: usize,
    pub flakes_per_host: usize,
    pub alarms_per_host: usize,
    pub duration: Duration,
    /// When every host restarts (within one minute).
    pub restart_at: Duration,
    pub reconcile_interval: Duration,
    pub seed: u64,
}

/// What happened.
pub struct Report {
    pub params: Params,
    pub tallies: Vec<(Api, Tally)>,
    /// Seconds of the steady-state window: after convergence, before the restart.
    pub steady: (usize, usize),
    pub converged_after: Option<Duration>,
    pub settled_after_restart: Option<Duration>,
    pub produced: u64,
    pub delivered: u64,
    pub later_than_a_minute: u64,
    pub max_delay: Duration,
    pub wall: std::time::Duration,
}

impl Report {
    pub fn lost(&self) -> u64 {
        self.produced.saturating_sub(self.delivered)
    }
}

/// One host's alarms and metric series.
struct Host {
    desired: Vec<DesiredAlarm>,
    series: Vec<Arc<Series>>,
    reconciler: Arc<Reconciler<Account>>,
}

/// Runs the simulation on a single-threaded runtime whose clock only moves when every task waits.
pub fn simulate(params: Params, scratch: &Path) -> Report {
    let wall = std::time::Instant::now();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build().expect("runtime");
    let mut report = runtime.block_on(run(params, scratch));
    report.wall = wall.elapsed();
    report
}

async fn run(params: Params, scratch: &Path) -> Report {
    let epoch_ms = chrono::Utc::now().timestamp_millis();
    let account = Account::new(epoch_ms);
    let started = Instant::now();
    let mut rng = fastrand::Rng::with_seed(params.seed);
    let metrics = Arc::new(Metrics::new());
    let logs = Arc::new(FlakeLogs::open(&scratch.join("logs"), 1, Redactor::default()).expect("log dir"));
    let hosts: Vec<Arc<Host>> = (0..params.hosts).map(|index| Arc::new(host(index, &params, &account, &metrics, scratch))).collect();
    let want_alarms = params.hosts * params.alarms_per_host;

    let produced = Arc::new(AtomicU64::new(0));
    let startup_done: Arc<Mutex<Vec<Option<Instant>>>> = Arc::new(Mutex::new(vec![None; params.hosts]));
    let mut publishers = Vec::new();
    let mut feeders = Vec::new();
    let mut reconciles: Vec<JoinHandle<()>> = Vec::new();
    let end = started + params.duration;
    for (index, host) in hosts.iter().enumerate() {
        let start = started + Duration::from_millis(rng.u64(0..60_000));
        let (publisher, task) = spawn_publisher(
            Arc::new(account.clone()),
            Box::new(MemorySpool::default()),
            Vec::new(),
            PublisherConfig::default(),
            metrics.clone(),
            logs.clone(),
        );
        publishers.push(task);
        feeders.push(tokio::spawn(feed(host.clone(), publisher, account.clone(), start, end, produced.clone())));
        reconciles.push(tokio::spawn(reconcile(host.clone(), index, start, params.reconcile_interval, rng.u64(..), startup_done.clone())));
    }

    // Brand new: converged once every declared alarm exists.
    let mut converged_after = None;
    let restart = started + params.restart_at;
    let mut next_progress = started;
    while Instant::now() < restart {
        tokio::time::sleep(Duration::from_secs(10)).await;
        if converged_after.is_none() && account.alarm_count(REGION) >= want_alarms {
            converged_after = Some(started.elapsed());
            eprintln!("{} hosts: converged after {:.1} min", params.hosts, started.elapsed().as_secs_f64() / 60.0);
        }
        if Instant::now() >= next_progress {
            progress(&params, &account, started, want_alarms);
            next_progress += Duration::from_secs(1800);
        }
    }

    // Every host restarts within one minute.
    for handle in &reconciles {
        handle.abort();
    }
    startup_done.lock().unwrap().iter_mut().for_each(|done| *done = None);
    let restarted = Instant::now();
    for (index, host) in hosts.iter().enumerate() {
        let start = restarted + Duration::from_millis(rng.u64(0..60_000));
        reconciles.push(tokio::spawn(reconcile(host.clone(), index, start, params.reconcile_interval, rng.u64(..), startup_done.clone())));
    }
    let mut settled_after_restart = None;
    while Instant::now() < end {
        tokio::time::sleep(Duration::from_secs(10)).await;
        if settled_after_restart.is_none() {
            let done = startup_done.lock().unwrap();
            if done.iter().all(Option::is_some) {
                settled_after_restart = done.iter().flatten().max().map(|last| *last - restarted);
            }
        }
    }

    for feeder in feeders {
        let _ = feeder.await;
    }
    for handle in &reconciles {
        handle.abort();
    }
    // Handles are gone with the feeders: each publisher delivers what it holds and stops.
    for publisher in publishers {
        let _ = publisher.await;
    }
    let deliveries = account.deliveries();
    let steady_from = converged_after.map_or(usize::MAX, |at| (at + params.reconcile_interval * 3 / 2).as_secs() as usize);
    Report {
        tallies: Api::ALL.iter().map(|&api| (api, account.tally(api))).collect(),
        steady: (steady_from, params.restart_at.as_secs() as usize),
        converged_after,
        settled_after_restart,
        produced: produced.load(Ordering::Relaxed),
        delivered: deliveries.datums,
        later_than_a_minute: deliveries.later_than_a_minute,
        max_delay: Duration::from_millis(deliveries.max_delay_ms.max(0) as u64),
        wall: std::time::Duration::ZERO,
        params,
    }
}

/// Host `index`: one flake with the host's alarms (on a `Host` dimension) and its metric series.
fn host(index: usize, params: &Params, account: &Account, metrics: &Arc<Metrics>, scratch: &Path) -> Host {
    let name = format!("h{index:05}");
    let alarms: Vec<serde_json::Value> = (0..params.alarms_per_host)
        .map(|alarm| serde_json::json!({"alarmName": format!("a{alarm}"), "alarmThreshold": 90, "alarmOperator": ">"}))
        .collect();
    let flake = serde_json::json!({"flakeName": name, "flakeCronstring": "* * * * *", "flakeCommand": "true",
        "flakeMetricNamespace": NAMESPACE, "flakeDimensions": {"Host": name}, "flakeAlarms": alarms});
    let facts = HostFacts::local();
    let context = Context { default_zone: chrono_tz::Tz::UTC, facts: &facts };
    let (flake, problems) = parse_flake(Path::new("flakes/host.json"), &flake.to_string(), &context);
    let flake = Arc::new(flake.unwrap_or_else(|| panic!("the simulated flake is valid: {problems:?}")));
    let (desired, skipped) = desired_alarms(&[flake], Some(REGION));
    assert!(skipped.is_empty());
    let series = (0..params.flakes_per_host)
        .map(|flake| {
            Arc::new(Series {
                flake: format!("{name}-f{flake}"),
                region: REGION.to_string(),
                namespace: NAMESPACE.to_string(),
                metric_name: format!("metric{flake}"),
                dimensions: vec![("Host".to_string(), name.clone())],
                unit: "None".to_string(),
                storage_resolution: 60,
                aggregate_seconds: None,
            })
        })
        .collect();
    let state = scratch.join("state").join(&name);
    std::fs::create_dir_all(&state).expect("state dir");
    let reconciler = Reconciler::new(Arc::new(account.clone()), ManagedFile::new(&state), ReconcileConfig::default(), metrics.clone());
    Host { desired, series, reconciler: Arc::new(reconciler) }
}

/// Every minute from `start` until `end`: one value per flake, timestamped at the minute.
async fn feed(host: Arc<Host>, publisher: PublisherHandle, account: Account, start: Instant, end: Instant, produced: Arc<AtomicU64>) {
    tokio::time::sleep_until(start).await;
    loop {
        let now_ms = account.now_ms();
        let next_ms = (now_ms / 60_000 + 1) * 60_000;
        let at = Instant::now() + Duration::from_millis((next_ms - now_ms) as u64);
        if at >= end {
            // The run is over: what is still queued (throttled at the last minute) is delivered,
            // as a daemon's spool would deliver it; whatever cannot be within the hour is lost.
            let drained = publisher.drain(Duration::from_secs(3600)).await;
            assert_eq!(drained.pending, 0, "a publisher could not deliver its last datapoints within an hour");
            return;
        }
        tokio::time::sleep_until(at).await;
        let points: Vec<Datapoint> =
            host.series.iter().map(|series| Datapoint { series: series.clone(), value: 1.0, timestamp_ms: next_ms }).collect();
        produced.fetch_add(points.len() as u64, Ordering::Relaxed);
        publisher.publish_durably(points).await;
    }
}

/// The daemon's reconcile cadence: at start, then the first check at a random point of
/// [0.5, 1.5) intervals, then every interval ±10%.
async fn reconcile(
    host: Arc<Host>,
    index: usize,
    start: Instant,
    interval: Duration,
    seed: u64,
    startup_done: Arc<Mutex<Vec<Option<Instant>>>>,
) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let scope = Scope::All { deletes_allowed: true, broken_files: Vec::new() };
    tokio::time::sleep_until(start).await;
    let mut wait = cadence::first_check_after(interval, rng.f64());
    let mut first = true;
    loop {
        if let Err(error) = host.reconciler.reconcile(&host.desired, &scope).await {
            eprintln!("host {index}: reconcile failed: {error}");
        }
        if first {
            startup_done.lock().unwrap()[index] = Some(Instant::now());
            first = false;
        }
        tokio::time::sleep(wait).await;
        wait = cadence::next_check_after(interval, rng.f64());
    }
}

/// A line on stderr every simulated half hour, so a long run shows where it is.
fn progress(params: &Params, account: &Account, started: Instant, want_alarms: usize) {
    let throttled: u64 = Api::ALL.iter().map(|&api| account.tally(api).throttled).sum();
    eprintln!(
        "{} hosts: simulated {:.1} h, {} of {want_alarms} alarms, {} datums delivered, {throttled} calls throttled",
        params.hosts,
        started.elapsed().as_secs_f64() / 3600.0,
        account.alarm_count(REGION),
        account.deliveries().datums
    );
}
