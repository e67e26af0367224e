//! Hot reload: the flakes directory is watched (inotify, debounced) and also rescanned every few
//! seconds in case watching is unavailable (some network and container file systems deliver no
//! events); [`ReloadHandle::reread_all`] (SIGHUP, in the CLI) forces a full re-read. Each rescan's
//! changes go to the scheduler, and a snapshot of the catalog goes to the alarm reconciler.
//!
//! Rescans run on tokio's blocking pool: reading and validating thousands of files, or one huge
//! one, must not hold a runtime thread that scheduling, `/healthz` and delivery need.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::{Notify, mpsc, watch};

use super::shutdown::Shutdown;
use crate::catalog::{Catalog, Changes, FileReport};
use crate::flake::{Flake, Problem};
use crate::metrics::Metrics;
use crate::monitor::SharedMonitors;
use crate::status::StatusBoard;

/// Editors write a file in several steps; wait for them to settle before reading.
const DEBOUNCE: Duration = Duration::from_millis(250);

/// What the alarm reconciler needs to know about the catalog.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub flakes: Vec<Arc<Flake>>,
    pub broken_files: Vec<PathBuf>,
    pub dir_missing: bool,
}

impl Snapshot {
    pub fn of(catalog: &Catalog) -> Snapshot {
        Snapshot { flakes: catalog.flakes(), broken_files: catalog.broken_files(), dir_missing: catalog.dir_missing() }
    }

    /// The status page's view of the catalog: flakes loaded, each broken file's problems.
    pub fn report_files(catalog: &Catalog, status: &StatusBoard) {
        let broken = catalog
            .reports()
            .filter(|report| report.has_errors())
            .map(|report| {
                let problems = report.problems.iter().filter(|problem| problem.is_error()).map(ToString::to_string).collect();
                (report.path.display().to_string(), problems)
            })
            .collect();
        status.set_files(catalog.flakes().len(), broken, catalog.dir_missing());
    }

    pub fn count_into(&self, metrics: &Metrics) {
        let enabled = self.flakes.iter().filter(|flake| flake.enabled).count();
        metrics.set_flakes(self.flakes.len(), enabled, self.broken_files.len());
    }
}

/// Logs each file's problems once, and again only when they change.
#[derive(Default)]
pub struct ProblemReporter {
    reported: HashMap<PathBuf, Vec<Problem>>,
}

impl ProblemReporter {
    pub fn report(&mut self, catalog: &Catalog, broken: &[FileReport]) {
        let mut current: HashMap<PathBuf, Vec<Problem>> = HashMap::new();
        for report in catalog.reports().filter(|report| !report.problems.is_empty()) {
            current.insert(report.path.clone(), report.problems.clone());
        }
        // Built once: a thousand broken files must not rebuild the flake map a thousand times.
        let broken_now: HashSet<&PathBuf> = broken.iter().map(|report| &report.path).collect();
        let running = catalog.flakes();
        let running_from: HashSet<&PathBuf> = running.iter().map(|flake| &flake.source).collect();
        // Only alarms were rejected: the latest version runs, without them.
        let latest_runs: HashSet<&PathBuf> = catalog.reports().filter(|report| report.flake.is_some()).map(|report| &report.path).collect();
        for (path, problems) in &current {
            if self.reported.get(path) == Some(problems) {
                continue;
            }
            let keeps_running = broken_now.contains(path) && running_from.contains(path);
            for problem in problems {
                let file = path.display();
                if problem.is_error() && latest_runs.contains(path) {
                    tracing::error!("{file}: {problem} (this alarm is left out; the flake and its other alarms run)");
                } else if problem.is_error() && keeps_running {
                    tracing::error!("{file}: {problem} (its last good version keeps running)");
                } else if problem.is_error() {
                    tracing::error!("{file}: {problem}");
                } else {
                    tracing::warn!("{file}: {problem}");
                }
            }
        }
        self.reported = current;
    }
}

/// The catalog and what has been said about it, moved to the blocking pool for each rescan.
pub struct LoadedCatalog {
    pub catalog: Catalog,
    pub reporter: ProblemReporter,
}

impl LoadedCatalog {
    pub fn new(catalog: Catalog) -> LoadedCatalog {
        LoadedCatalog { catalog, reporter: ProblemReporter::default() }
    }

    /// Rescans (reads, validates, diffs, reports problems) on the blocking pool.
    pub async fn rescan(mut self, force: bool) -> (LoadedCatalog, Changes) {
        let runtime = tokio::runtime::Handle::current();
        let rescanned = tokio::task::spawn_blocking(move || {
            // IMDS lookups inside the rescan still use the runtime's I/O driver.
            let changes = runtime.block_on(self.catalog.rescan(force));
            self.reporter.report(&self.catalog, &changes.broken);
            (self, changes)
        })
        .await;
        rescanned.unwrap_or_else(|error| std::panic::resume_unwind(error.into_panic()))
    }
}

/// Asks the reload task for a full re-read (every file, changed or not).
#[derive(Clone, Default)]
pub struct ReloadHandle {
    reread: Arc<Notify>,
}

impl ReloadHandle {
    pub fn reread_all(&self) {
        self.reread.notify_one();
    }
}

pub struct Reloader {
    pub loaded: LoadedCatalog,
    pub changes: mpsc::Sender<Changes>,
    pub snapshot: watch::Sender<Snapshot>,
    pub reconcile: Arc<Notify>,
    pub rescan_every: Duration,
    pub metrics: Arc<Metrics>,
    pub reread: ReloadHandle,
    pub monitors: SharedMonitors,
    pub status: Arc<StatusBoard>,
}

impl Reloader {
    pub async fn run(mut self, mut shutdown: Shutdown) {
        let (events_tx, mut events) = mpsc::channel::<()>(1);
        let mut watcher = self.watch(events_tx.clone());
        let mut rescans = tokio::time::interval(self.rescan_every);
        rescans.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        rescans.tick().await;
        let reread = self.reread.reread.clone();
        loop {
            let force = tokio::select! {
                Some(()) = events.recv() => {
                    tokio::time::sleep(DEBOUNCE).await;
                    while events.try_recv().is_ok() {}
                    false
                }
                _ = rescans.tick() => {
                    if watcher.is_none() {
                        watcher = self.watch(events_tx.clone());
                    }
                    false
                }
                _ = reread.notified() => {
                    tracing::info!("re-reading every flake file");
                    true
                }
                _ = shutdown.recv() => return,
            };
            self = self.rescan(force).await;
        }
    }

    async fn rescan(mut self, force: bool) -> Self {
        let changes;
        (self.loaded, changes) = self.loaded.rescan(force).await;
        let changed = !changes.is_empty();
        if changed {
            // Before the scheduler hears of a new job, so its first run is already watched.
            self.monitors.set_jobs(&self.loaded.catalog.flakes(), chrono::Utc::now()).await;
        }
        if changed && self.changes.send(changes).await.is_err() {
            return self;
        }
        let snapshot = Snapshot::of(&self.loaded.catalog);
        let broken_changed =
            self.snapshot.borrow().broken_files != snapshot.broken_files || self.snapshot.borrow().dir_missing != snapshot.dir_missing;
        if changed || broken_changed {
            Snapshot::report_files(&self.loaded.catalog, &self.status);
            snapshot.count_into(&self.metrics);
            self.snapshot.send_replace(snapshot);
        }
        if changed {
            self.reconcile.notify_one();
        }
        self
    }

    /// Starts watching the flakes directory; `None` (with a warning) if it cannot.
    fn watch(&self, events: mpsc::Sender<()>) -> Option<notify::RecommendedWatcher> {
        let handler = move |event: notify::Result<notify::Event>| {
            if event.is_ok_and(|event| !event.kind.is_access()) {
                let _ = events.try_send(());
            }
        };
        let dir = self.loaded.catalog.dir();
        let watched = notify::recommended_watcher(handler).and_then(|mut watcher| {
            watcher.watch(dir, RecursiveMode::Recursive)?;
            Ok(watcher)
        });
        match watched {
            Ok(watcher) => Some(watcher),
            Err(error) => {
                tracing::warn!(dir = %dir.display(), every = ?self.rescan_every, "cannot watch the flakes directory ({error}); changes are picked up by rescans instead");
                None
            }
        }
    }
}
