//! The scheduler: one loop over a min-heap of next fire times.
//!
//! Each next time is computed from the previous *scheduled* time, never from "now", so firings
//! never drift; runs are separate tasks, so a slow run never delays the loop. A flake whose
//! previous run is still going skips that firing (counted and logged). A wall-clock jump (the
//! wall clock and the monotonic clock disagree) re-plans every flake from the new time instead
//! of firing a burst of catch-up runs.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinSet;

use super::health::Health;
use super::shutdown::Shutdown;
use crate::catalog::Changes;
use crate::execution::{Prepared, RunContext, execute};
use crate::flake::Flake;

/// The loop wakes at least this often: for health, for clock checks, for changes.
const MAX_SLEEP: Duration = Duration::from_secs(1);
/// Wall and monotonic clocks disagreeing by more than this is a clock jump, not jitter.
const CLOCK_JUMP: Duration = Duration::from_secs(5);
/// A firing found due later than this (the loop could not run) is skipped, not run late.
const CATCH_UP: chrono::TimeDelta = chrono::TimeDelta::seconds(60);

struct Entry {
    prepared: Prepared,
    /// Heap items carrying an older generation belong to a replaced version and are ignored.
    generation: u64,
    /// True while a run of this flake is going; shared across versions of the flake.
    running: Arc<AtomicBool>,
}

/// Resets a flake's running flag when its run ends, however it ends.
struct RunningGuard(Arc<AtomicBool>);

impl Drop for RunningGuard {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

pub struct Scheduler {
    entries: HashMap<String, Entry>,
    heap: BinaryHeap<Reverse<(DateTime<Utc>, String, u64)>>,
    next_generation: u64,
    context: Arc<RunContext>,
    default_region: Option<String>,
    slots: Arc<Semaphore>,
    runs: JoinSet<()>,
    stop_runs: watch::Receiver<bool>,
    health: Arc<Health>,
}

impl Scheduler {
    pub fn new(
        context: Arc<RunContext>,
        default_region: Option<String>,
        max_concurrent_runs: usize,
        stop_runs: watch::Receiver<bool>,
        health: Arc<Health>,
    ) -> Scheduler {
        Scheduler {
            entries: HashMap::new(),
            heap: BinaryHeap::new(),
            next_generation: 0,
            context,
            default_region,
            slots: Arc::new(Semaphore::new(max_concurrent_runs)),
            runs: JoinSet::new(),
            stop_runs,
            health,
        }
    }

    /// Takes added, changed and removed flakes into the plan.
    pub fn apply(&mut self, changes: Changes, now: DateTime<Utc>) {
        for flake in changes.removed {
            self.entries.remove(&flake.name);
            self.context.metrics.forget_flake(&flake.name);
            tracing::info!(flake = flake.name, "flake removed");
        }
        for (_, flake) in changes.changed {
            tracing::info!(flake = flake.name, "flake changed");
            self.plan(flake, now, false);
        }
        for flake in changes.added {
            self.plan(flake, now, true);
        }
    }

    fn plan(&mut self, flake: Arc<Flake>, now: DateTime<Utc>, first_load: bool) {
        let prepared = Prepared::new(flake.clone(), self.default_region.as_deref());
        if let Err(reason) = &prepared.series {
            tracing::error!(flake = flake.name, "its values cannot be published: {reason}");
        }
        self.next_generation += 1;
        let generation = self.next_generation;
        let running = self.entries.get(&flake.name).map(|entry| entry.running.clone()).unwrap_or_default();
        self.entries.insert(flake.name.clone(), Entry { prepared, generation, running });
        if !flake.enabled {
            tracing::info!(flake = flake.name, "flake loaded, disabled (flakeEnabled is false)");
            return;
        }
        if flake.schedule.is_reboot() {
            if first_load {
                self.fire(&flake.name, now);
            }
            return;
        }
        match flake.schedule.next_after(now) {
            Some(next) => {
                self.heap.push(Reverse((next, flake.name.clone(), generation)));
                if first_load {
                    tracing::debug!(flake = flake.name, next = %next.to_rfc3339_opts(SecondsFormat::Secs, true), "flake loaded");
                }
            }
            None => tracing::warn!(flake = flake.name, "its schedule never fires"),
        }
    }

    /// Runs the loop until shutdown; returns the runs still going, for the caller to wait on.
    pub async fn run(mut self, mut changes: mpsc::Receiver<Changes>, mut shutdown: Shutdown) -> JoinSet<()> {
        let mut last_wall = Utc::now();
        let mut last_monotonic = tokio::time::Instant::now();
        loop {
            let now = Utc::now();
            let monotonic = tokio::time::Instant::now();
            let wall_elapsed = (now - last_wall).to_std().unwrap_or_default();
            let monotonic_elapsed = monotonic - last_monotonic;
            if now < last_wall || wall_elapsed.abs_diff(monotonic_elapsed) > CLOCK_JUMP {
                let jump = (now - last_wall) - chrono::TimeDelta::from_std(monotonic_elapsed).unwrap_or_default();
                tracing::warn!(
                    jump_seconds = jump.num_milliseconds() as f64 / 1000.0,
                    "the wall clock jumped; re-planning every flake from the new time"
                );
                self.context.metrics.clock_jumps.inc();
                self.replan(now);
            }
            (last_wall, last_monotonic) = (now, monotonic);

            self.fire_due(now);
            while self.runs.try_join_next().is_some() {}
            self.health.tick();

            let sleep = self.heap.peek().map_or(MAX_SLEEP, |Reverse((at, _, _))| (*at - now).to_std().unwrap_or_default().min(MAX_SLEEP));
            tokio::select! {
                _ = tokio::time::sleep(sleep) => {}
                received = changes.recv() => match received {
                    Some(received) => self.apply(received, Utc::now()),
                    None => break,
                },
                _ = shutdown.recv() => break,
            }
        }
        self.runs
    }

    fn fire_due(&mut self, now: DateTime<Utc>) {
        while let Some(Reverse((at, _, _))) = self.heap.peek()
            && *at <= now
        {
            let Reverse((at, name, generation)) = self.heap.pop().expect("peeked");
            let Some(entry) = self.entries.get(&name).filter(|entry| entry.generation == generation) else { continue };
            let next = entry.prepared.flake.schedule.next_after(at);
            if now - at > CATCH_UP {
                tracing::warn!(flake = name, scheduled = %at.to_rfc3339_opts(SecondsFormat::Secs, true), "firing skipped: found due more than a minute late");
            } else {
                self.fire(&name, at);
            }
            if let Some(next) = next {
                self.heap.push(Reverse((next, name, generation)));
            }
        }
    }

    /// Starts one run of `name` for the firing at `scheduled`, unless one is still going.
    fn fire(&mut self, name: &str, scheduled: DateTime<Utc>) {
        let Some(entry) = self.entries.get(name) else { return };
        if entry.running.swap(true, Ordering::AcqRel) {
            self.context.metrics.skipped_overlap(name);
            let time = Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true);
            let line = format!(
                "{time} skipped scheduled={} reason=\"the previous run is still going\"",
                scheduled.to_rfc3339_opts(SecondsFormat::Secs, true)
            );
            self.context.logs.append(name, &[line]);
            return;
        }
        let guard = RunningGuard(entry.running.clone());
        let prepared = entry.prepared.clone();
        let (context, slots, stop) = (self.context.clone(), self.slots.clone(), self.stop_runs.clone());
        self.runs.spawn(async move {
            let _guard = guard;
            let Ok(_slot) = slots.acquire_owned().await else { return };
            let report = execute(&prepared, scheduled, &context, stop).await;
            context.metrics.lateness.observe(report.lateness.as_secs_f64());
        });
    }

    /// Every flake's next firing from `now`, dropping the old plan.
    fn replan(&mut self, now: DateTime<Utc>) {
        self.heap.clear();
        for (name, entry) in &self.entries {
            let flake = &entry.prepared.flake;
            if flake.enabled
                && let Some(next) = flake.schedule.next_after(now)
            {
                self.heap.push(Reverse((next, name.clone(), entry.generation)));
            }
        }
    }
}
