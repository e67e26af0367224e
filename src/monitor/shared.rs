//! The daemon's [`Monitors`], shared by the runs that record successes, the reloader that says
//! which jobs are monitored, and the once-a-minute overdue tick. Saving fsyncs, so every call that
//! may save runs on the blocking pool; the lock is held for one save at most.

use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};

use crate::flake::Flake;

use super::metrics::{JobRun, MonitorValue};
use super::monitors::{MonitoredJob, Monitors};

#[derive(Clone)]
pub struct SharedMonitors(Arc<Mutex<Monitors>>);

impl SharedMonitors {
    pub fn new(monitors: Monitors) -> SharedMonitors {
        SharedMonitors(Arc::new(Mutex::new(monitors)))
    }

    /// After a catalog load or reload: the enabled flakes with `flakeMonitor` are the monitored
    /// jobs. A failed save is logged; the jobs are watched anyway, and the next save retries.
    pub async fn set_jobs(&self, flakes: &[Arc<Flake>], now: DateTime<Utc>) {
        let jobs: Vec<MonitoredJob> = flakes.iter().filter_map(|flake| MonitoredJob::of_flake(flake)).collect();
        let shared = self.clone();
        let saved = tokio::task::spawn_blocking(move || shared.lock().set_jobs(jobs, now)).await;
        if let Ok(Err(reason)) = saved {
            tracing::error!("job monitors: {reason}");
        }
    }

    /// Keeps a run's success. A failed save is logged: the success is still known to this
    /// process, but a restart before the next successful save would not know it.
    pub async fn record_run(&self, name: &str, run: JobRun) {
        let (shared, name) = (self.clone(), name.to_string());
        let saved = tokio::task::spawn_blocking(move || shared.lock().record_run(&name, &run, Utc::now())).await;
        if let Ok(Err(reason)) = saved {
            tracing::error!("job monitors: {reason}; the success is kept in memory only until the next save works");
        }
    }

    /// `JobOverdueSeconds` of every monitored job at `now` (no disk access).
    pub fn overdue(&self, now: DateTime<Utc>) -> Vec<(String, MonitorValue)> {
        self.lock().overdue(now)
    }

    /// When `name` is overdue after, if it can be.
    pub fn deadline(&self, name: &str, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.lock().deadline(name, now)
    }

    /// Every monitored job's deadline at `now` (for the status page; no disk access).
    pub fn deadlines(&self, now: DateTime<Utc>) -> std::collections::HashMap<String, Option<DateTime<Utc>>> {
        self.lock().deadlines(now)
    }

    fn lock(&self) -> MutexGuard<'_, Monitors> {
        // A panic while holding the lock leaves plain data behind, still usable.
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
