//! A simulation of a cluster on the in-memory store, in tokio's paused time: real member loops,
//! a controllable S3 clock, members killed (`kill -9`: the loop ends, nothing is released) or
//! cut off from S3. Every simulated second it asks every running member's gate about every
//! flake's scheduled time and counts the times more than one member would run: duplicates.
//! Used by the unit tests and by `docs/cluster.md`'s numbers.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use tokio::sync::watch;
use tokio::time::Instant;

use super::memory::MemoryStore;
use super::{Cluster, LocalFlakes, Location, Timings, WallClock};
use crate::metrics::Metrics;

/// Every flake fires this often (in the simulation).
pub const EVERY: i64 = 2;

struct Running {
    cluster: Cluster,
    store: MemoryStore,
}

/// A simulated cluster.
pub struct Simulation {
    bucket: MemoryStore,
    epoch: DateTime<Utc>,
    wall: WallClock,
    timings: Timings,
    flakes: BTreeMap<String, String>,
    members: BTreeMap<String, Running>,
    flake_tx: HashMap<String, watch::Sender<LocalFlakes>>,
    /// (flake, scheduled second) -> members that ran it.
    ran: HashMap<(String, i64), u32>,
    pub duplicates: u64,
    /// Last scheduled time run, per flake.
    pub last_run: HashMap<String, DateTime<Utc>>,
    /// Runs per member since the last [`Simulation::reset_runs`].
    pub runs_by_member: BTreeMap<String, u64>,
    checked_until: i64,
}

impl Simulation {
    /// A cluster of no members yet, sharing `flakes` cluster flakes (all at version "v1").
    pub fn new(flakes: usize, timings: Timings) -> Simulation {
        let epoch = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z").expect("a date").with_timezone(&Utc);
        let flakes = (0..flakes).map(|index| (format!("flake-{index:04}"), "v1".to_string())).collect();
        Simulation {
            bucket: MemoryStore::new(epoch),
            epoch,
            wall: WallClock::following_tokio(epoch),
            timings,
            flakes,
            members: BTreeMap::new(),
            flake_tx: HashMap::new(),
            ran: HashMap::new(),
            duplicates: 0,
            last_run: HashMap::new(),
            runs_by_member: BTreeMap::new(),
            checked_until: 0,
        }
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.wall.now()
    }

    /// Starts a member named `name` holding `flakes` (default: the shared set).
    pub fn start(&mut self, name: &str) {
        self.start_with(name, self.flakes.clone());
    }

    pub fn start_with(&mut self, name: &str, flakes: BTreeMap<String, String>) {
        let store = self.bucket.handle();
        let (flake_tx, flake_rx) = watch::channel(LocalFlakes::complete(flakes));
        let location = Location { bucket: "simulated".to_string(), prefix: String::new() };
        let cluster = Cluster::spawn_with_clock(
            store.clone(),
            &location,
            name.to_string(),
            self.timings,
            Arc::new(Metrics::new()),
            flake_rx,
            self.wall,
        );
        self.flake_tx.insert(name.to_string(), flake_tx);
        self.members.insert(name.to_string(), Running { cluster, store });
    }

    /// Changes a member's flake versions (a rollout).
    pub fn set_flakes(&mut self, name: &str, flakes: BTreeMap<String, String>) {
        if let Some(sender) = self.flake_tx.get(name) {
            sender.send_replace(LocalFlakes::complete(flakes));
        }
    }

    pub fn flakes(&self) -> &BTreeMap<String, String> {
        &self.flakes
    }

    /// `kill -9`: its loop ends, nothing is released, and it runs nothing more.
    pub fn kill(&mut self, name: &str) {
        if let Some(running) = self.members.remove(name) {
            running.cluster.kill();
        }
    }

    /// Stops a member the orderly way (SIGTERM).
    pub async fn stop(&mut self, name: &str) {
        if let Some(running) = self.members.remove(name) {
            running.cluster.leave().await;
        }
    }

    pub fn cut_off(&self, name: &str, cut: bool) {
        if let Some(running) = self.members.get(name) {
            running.store.cut_off(cut);
        }
    }

    /// S3 requests made by a member so far.
    pub fn requests(&self, name: &str) -> u64 {
        self.members.get(name).map_or(0, |running| running.store.requests())
    }

    pub fn held(&self, name: &str) -> usize {
        self.members.get(name).map_or(0, |running| running.cluster.gate.held_count())
    }

    pub fn reset_runs(&mut self) {
        self.runs_by_member.clear();
    }

    /// Runs the simulation for `duration`, a second at a time, checking every firing.
    pub async fn run_for(&mut self, duration: Duration) {
        let until = Instant::now() + duration;
        while Instant::now() < until {
            tokio::time::sleep(Duration::from_secs(1)).await;
            // Let the member loops settle after the clock moved.
            for _ in 0..20 {
                tokio::task::yield_now().await;
            }
            self.check_firings();
        }
    }

    /// Every scheduled time of every flake (each `EVERY` seconds) up to now, asked of every
    /// running member's gate, as the scheduler would at that time.
    fn check_firings(&mut self) {
        let now = (self.now() - self.epoch).num_seconds();
        let mut second = self.checked_until + 1;
        while second <= now {
            if second % EVERY == 0 {
                let scheduled = self.epoch + TimeDelta::seconds(second);
                for (flake, version) in &self.flakes {
                    let mut runners = 0;
                    for (name, running) in &self.members {
                        if running.cluster.gate.may_run(flake, version, scheduled) {
                            runners += 1;
                            *self.runs_by_member.entry(name.clone()).or_default() += 1;
                        }
                    }
                    if runners > 0 {
                        *self.ran.entry((flake.clone(), second)).or_default() += runners;
                        self.last_run.insert(flake.clone(), scheduled);
                    }
                    if runners > 1 {
                        self.duplicates += 1;
                    }
                }
            }
            second += 1;
        }
        self.checked_until = now;
        self.ran.retain(|(_, at), _| *at > now - 10);
    }

    /// How long after `since` every flake ran again (the worst flake), if all have.
    pub fn all_running_since(&self, since: DateTime<Utc>) -> bool {
        self.flakes.keys().all(|flake| self.last_run.get(flake).is_some_and(|last| *last > since))
    }
}
