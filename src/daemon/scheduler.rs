//! The scheduler: one loop over a min-heap of next fire times.
//!
//! Each next time is computed from the previous *scheduled* time, never from "now", so firings
//! never drift; runs are separate tasks, so a slow run never delays the loop. A flake whose
//! previous run is still going skips that firing (counted and logged). With `--splay`, a run's
//! task waits for the flake's offset (see [`super::splay`]) before it starts, and from the
//! firing until it hands over its datapoint it holds partial batches back in the publisher, so
//! the firing's datapoints leave together.
//!
//! Wall-clock jumps (the wall clock and the monotonic clock disagree) are handled as cronie
//! does: forward, firings up to a minute late still run and older ones are skipped (one warning
//! per flake, no burst of catch-up runs); backward by less than three hours, nothing that already
//! ran runs again; backward further, every flake is planned afresh from the new time.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::health::Health;
use super::shutdown::Shutdown;
use super::splay::Splay;
use crate::catalog::Changes;
use crate::cluster::{Gate, flake_version};
use crate::execution::{Prepared, RunContext, execute, skip_overlapping};
use crate::flake::{Flake, FlakeKind, FlakeScope};
use crate::flakelog::Event;
use crate::status::{FlakeCell, StatusBoard};

/// The loop wakes at least this often: for health, for clock checks, for changes.
const MAX_SLEEP: Duration = Duration::from_secs(1);
/// Wall and monotonic clocks disagreeing by more than this is a clock jump, not jitter.
const CLOCK_JUMP: Duration = Duration::from_secs(5);
/// A firing found due later than this (the loop could not run) is skipped, not run late.
const CATCH_UP: chrono::TimeDelta = chrono::TimeDelta::seconds(60);
/// A backward jump shorter than this never repeats a firing (cronie's rule); a longer one
/// re-plans from the new time, so the daemon is not silent for hours.
const BACKWARD_NO_REPEAT: chrono::TimeDelta = chrono::TimeDelta::hours(3);
/// A run holds partial batches back for at most this long after its process started (not after
/// the run began: in a burst, spawns wait their turn): a long-running command must not delay
/// every other flake's datapoints until the publisher's `max_hold`.
const RUN_HOLDS_BATCHES_FOR: Duration = Duration::from_secs(2);

struct Entry {
    prepared: Prepared,
    /// How long after each scheduled time its runs start (`--splay`).
    offset: Duration,
    /// Heap items carrying an older generation belong to a replaced version and are ignored.
    generation: u64,
    /// A cluster flake's version while there is a cluster: its firings run only where the
    /// cluster gate says so.
    cluster_version: Option<String>,
    /// Where the status page reads its next firing, runs and results.
    cell: Arc<FlakeCell>,
}

/// What outlives a version of a flake, and its removal while a run is still going.
#[derive(Default)]
struct History {
    /// True while a run of this flake is going.
    running: Arc<AtomicBool>,
    /// The scheduled time of its last firing.
    last_fired: Option<DateTime<Utc>>,
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
    history: HashMap<String, History>,
    heap: BinaryHeap<Reverse<(DateTime<Utc>, String, u64)>>,
    next_generation: u64,
    context: Arc<RunContext>,
    default_region: Option<String>,
    slots: Arc<Semaphore>,
    runs: JoinSet<()>,
    stop_runs: watch::Receiver<bool>,
    /// Turns true once shutdown begins: runs still waiting for their offset or a slot do not start.
    stopping: watch::Sender<bool>,
    health: Arc<Health>,
    splay: Splay,
    /// `--cluster`: asked before each firing of a cluster flake (SPEC 15).
    cluster: Option<Arc<Gate>>,
    status: Arc<StatusBoard>,
}

impl Scheduler {
    pub fn new(
        context: Arc<RunContext>,
        default_region: Option<String>,
        max_concurrent_runs: usize,
        stop_runs: watch::Receiver<bool>,
        health: Arc<Health>,
        splay: Splay,
        status: Arc<StatusBoard>,
    ) -> Scheduler {
        Scheduler {
            entries: HashMap::new(),
            history: HashMap::new(),
            heap: BinaryHeap::new(),
            next_generation: 0,
            context,
            default_region,
            slots: Arc::new(Semaphore::new(max_concurrent_runs)),
            runs: JoinSet::new(),
            stop_runs,
            stopping: watch::Sender::new(false),
            health,
            splay,
            cluster: None,
            status,
        }
    }

    /// Cluster flakes run only when `gate` says this daemon holds them.
    pub fn with_cluster_gate(mut self, gate: Option<Arc<Gate>>) -> Scheduler {
        self.cluster = gate;
        self
    }

    /// Takes added, changed and removed flakes into the plan.
    pub fn apply(&mut self, changes: Changes, now: DateTime<Utc>) {
        for flake in changes.removed {
            self.entries.remove(&flake.name);
            // A run still going keeps its flag, so re-adding the flake cannot overlap it.
            if self.history.get(&flake.name).is_some_and(|history| !history.running.load(Ordering::Acquire)) {
                self.history.remove(&flake.name);
            }
            self.context.metrics.forget_flake(&flake.name);
            self.status.remove(&flake.name);
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
        self.history.entry(flake.name.clone()).or_default();
        let offset = self.splay.offset(&flake.name, &flake.schedule);
        let cluster_version = (self.cluster.is_some() && flake.scope == FlakeScope::Cluster).then(|| flake_version(&flake));
        let cell = self.status.flake(&flake);
        cell.set_next(None);
        self.entries.insert(flake.name.clone(), Entry { prepared, offset, generation, cluster_version, cell: cell.clone() });
        if !flake.enabled {
            tracing::info!(flake = flake.name, "flake loaded, disabled (flakeEnabled is false)");
            return;
        }
        if let Some(images) = &self.context.images {
            // Pulls and builds happen when a flake loads or changes, not in its runs' time.
            images.flake_loaded(&flake);
        }
        if flake.kind == FlakeKind::Alarms {
            tracing::debug!(flake = flake.name, "flake loaded: it only declares alarms, nothing runs");
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
                cell.set_next(Some(next));
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
        // Loading thousands of flakes leaves parse buffers with the allocator; idle RSS is what stays.
        release_freed_memory();
        let mut last_wall = Utc::now();
        let mut last_monotonic = tokio::time::Instant::now();
        loop {
            let now = Utc::now();
            let monotonic = tokio::time::Instant::now();
            let monotonic_elapsed = chrono::TimeDelta::from_std(monotonic - last_monotonic).unwrap_or_default();
            let jump = (now - last_wall) - monotonic_elapsed;
            if jump.abs() > chrono::TimeDelta::from_std(CLOCK_JUMP).unwrap_or_default() {
                tracing::warn!(jump_seconds = jump.num_milliseconds() as f64 / 1000.0, "the wall clock jumped");
                self.context.metrics.clock_jumps.inc();
                if jump < chrono::TimeDelta::zero() {
                    self.replan_after_backward_jump(now, -jump);
                }
            }
            (last_wall, last_monotonic) = (now, monotonic);

            self.fire_due(now);
            let had_runs = !self.runs.is_empty();
            while self.runs.try_join_next().is_some() {}
            if had_runs && self.runs.is_empty() {
                release_freed_memory();
            }
            self.health.tick();

            let sleep = self.heap.peek().map_or(MAX_SLEEP, |Reverse((at, _, _))| (*at - now).to_std().unwrap_or_default().min(MAX_SLEEP));
            tokio::select! {
                _ = tokio::time::sleep(sleep) => {}
                received = changes.recv() => match received {
                    Some(received) => {
                        // What fell due while we waited runs by the old plan before the new one.
                        let now = Utc::now();
                        self.fire_due(now);
                        self.apply(received, now);
                    }
                    None => break,
                },
                _ = shutdown.recv() => break,
            }
        }
        self.stopping.send_replace(true);
        self.runs
    }

    fn fire_due(&mut self, now: DateTime<Utc>) {
        while let Some(Reverse((at, _, _))) = self.heap.peek()
            && *at <= now
        {
            let Reverse((at, name, generation)) = self.heap.pop().expect("peeked");
            let Some(entry) = self.entries.get(&name).filter(|entry| entry.generation == generation) else { continue };
            let schedule = &entry.prepared.flake.schedule;
            let cell = entry.cell.clone();
            let next = if now - at > CATCH_UP {
                tracing::warn!(flake = name, scheduled = %at.to_rfc3339_opts(SecondsFormat::Secs, true), "firing skipped: found due more than a minute late; planning from now");
                schedule.next_after(now)
            } else {
                let next = schedule.next_after(at);
                if next.is_some_and(|next| next <= now) {
                    // The loop was held up past this firing and the flake's next one is due too:
                    // run the latest only. This is no overlap, and must not be logged as one.
                    self.skip_superseded(&name, at);
                } else {
                    self.fire(&name, at);
                }
                next
            };
            cell.set_next(next);
            if let Some(next) = next {
                self.heap.push(Reverse((next, name, generation)));
            }
        }
    }

    /// Starts one run of `name` for the firing at `scheduled` (after its splay offset), unless
    /// one is still going then.
    fn fire(&mut self, name: &str, scheduled: DateTime<Utc>) {
        let Some(entry) = self.entries.get(name) else { return };
        if let (Some(gate), Some(version)) = (&self.cluster, &entry.cluster_version)
            && !gate.may_run(name, version, scheduled)
        {
            // Another member runs it (or nobody may, for now): not a skip of this daemon's.
            return;
        }
        let history = self.history.entry(name.to_string()).or_default();
        history.last_fired = Some(scheduled);
        let running = history.running.clone();
        let (prepared, offset, cell, status) = (entry.prepared.clone(), entry.offset, entry.cell.clone(), self.status.clone());
        let hold = self.context.publisher.hold();
        let start_at = Instant::now() + (scheduled + offset - Utc::now()).to_std().unwrap_or_default();
        let (context, slots, stop, mut stopping) =
            (self.context.clone(), self.slots.clone(), self.stop_runs.clone(), self.stopping.subscribe());
        // A waiting run is this small future; the run itself is boxed only once it starts, so
        // ten thousand runs waiting for their offset or a slot cost little memory.
        self.runs.spawn(async move {
            tokio::select! {
                () = tokio::time::sleep_until(start_at) => {}
                _ = stopping.wait_for(|stopping| *stopping) => return,
            }
            if running.swap(true, Ordering::AcqRel) {
                drop(hold);
                cell.skipped();
                context.metrics.skipped_overlap(&prepared.flake.name);
                skip_overlapping(&prepared, scheduled, &context).await;
                return;
            }
            let _guard = RunningGuard(running);
            let Ok(_slot) = slots.acquire_owned().await else { return };
            if *stopping.borrow() {
                return;
            }
            cell.run_started();
            let started = Arc::new(tokio::sync::Notify::new());
            let run = Box::pin(crate::runner::telling_start(started.clone(), execute(&prepared, scheduled, &context, stop)));
            let report = holding_batches_while(run, hold, &started).await;
            cell.run_ended(&report, &status.redactor);
            context.metrics.lateness.observe(report.lateness.saturating_sub(offset).as_secs_f64());
        });
    }

    /// Logs a firing passed over because a later firing of the same flake was already due.
    fn skip_superseded(&mut self, name: &str, scheduled: DateTime<Utc>) {
        tracing::debug!(flake = name, scheduled = %scheduled.to_rfc3339_opts(SecondsFormat::Secs, true), "firing skipped: the scheduler was held up and a later firing is due");
        if let Some(entry) = self.entries.get(name) {
            entry.cell.skipped();
        }
        let (logs, name) = (self.context.logs.clone(), name.to_string());
        self.runs.spawn(async move {
            let reason = "the daemon was held up past this firing; the flake's next firing, already due, runs instead";
            logs.record(&name, Event::Skipped { scheduled, reason }).await;
        });
    }

    /// After the wall clock went back by `by`: plan each flake from the later of `now` and its
    /// last firing, so nothing runs twice; after a very long jump, from `now` for all.
    fn replan_after_backward_jump(&mut self, now: DateTime<Utc>, by: chrono::TimeDelta) {
        self.heap.clear();
        for (name, entry) in &self.entries {
            let flake = &entry.prepared.flake;
            let last_fired = self.history.get(name).and_then(|history| history.last_fired);
            let from = plan_base(now, last_fired, by);
            if flake.enabled
                && let Some(next) = flake.schedule.next_after(from)
            {
                entry.cell.set_next(Some(next));
                self.heap.push(Reverse((next, name.clone(), entry.generation)));
            }
        }
    }
}

/// Runs `run`, holding partial batches back until it ends or for [`RUN_HOLDS_BATCHES_FOR`] after
/// its process started.
async fn holding_batches_while<T>(
    run: impl std::future::Future<Output = T>,
    hold: crate::publish::Hold,
    started: &tokio::sync::Notify,
) -> T {
    tokio::pin!(run);
    let long_run = async {
        started.notified().await;
        tokio::time::sleep(RUN_HOLDS_BATCHES_FOR).await;
    };
    tokio::select! {
        output = &mut run => output,
        () = long_run => {
            drop(hold);
            run.await
        }
    }
}

/// A burst of runs leaves freed memory with the allocator; hand it back to the system, so the
/// daemon's resident size between firings is what it actually uses.
fn release_freed_memory() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only walks the allocator's own free lists.
    unsafe {
        nix::libc::malloc_trim(0);
    }
}

/// Where planning resumes after the clock went back by `by`.
fn plan_base(now: DateTime<Utc>, last_fired: Option<DateTime<Utc>>, by: chrono::TimeDelta) -> DateTime<Utc> {
    match last_fired {
        Some(last) if by < BACKWARD_NO_REPEAT => last.max(now),
        _ => now,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn a_short_backward_jump_never_repeats_a_firing() {
        let fired = at("2026-01-01T12:00:00Z");
        let now = at("2026-01-01T11:59:59.999Z");
        assert_eq!(plan_base(now, Some(fired), chrono::TimeDelta::milliseconds(5)), fired);
        assert_eq!(plan_base(at("2026-01-01T11:00:00Z"), Some(fired), chrono::TimeDelta::hours(1)), fired);
    }

    #[test]
    fn a_long_backward_jump_plans_from_the_new_time() {
        let fired = at("2026-01-01T12:00:00Z");
        let now = at("2026-01-01T06:00:00Z");
        assert_eq!(plan_base(now, Some(fired), chrono::TimeDelta::hours(6)), now);
        assert_eq!(plan_base(now, None, chrono::TimeDelta::seconds(10)), now);
    }
}
