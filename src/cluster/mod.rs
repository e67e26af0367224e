//! Many daemons as one (SPEC 15): cluster flakes run on exactly one member at a time, spread
//! evenly, coordinated through S3 conditional writes and nothing else.
//!
//! The scheduler asks one question, [`Gate::may_run`]; everything else here answers it. A
//! [`member::Member`] loop renews this daemon's lease in S3 (`members/<id>`), lists the members,
//! and wins, restamps or gives up claims (`claims/<flake>`) through the small [`store::Store`]
//! trait: [`s3::S3Store`] for real, [`memory::MemoryStore`] (a controllable clock, fault
//! injection) for tests and the simulation. The design and its failure analysis are in
//! docs/cluster.md.

pub mod agreement;
pub mod gate;
pub mod member;
pub mod memory;
pub mod owned;
pub mod records;
pub mod s3;
#[cfg(any(test, feature = "test-support"))]
pub mod simulation;
pub mod store;
pub mod view;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use agreement::Agreement;
pub use gate::Gate;
pub use records::{Location, check_member_name, flake_version, parse_location};
pub use view::ClusterView;

use crate::flake::{Flake, FlakeKind, FlakeScope};
use crate::metrics::Metrics;

/// The clock of the protocol. The defaults are the ones SPEC 15's guarantees are made for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timings {
    /// A lease renewal and a listing this often: two requests, four a minute.
    pub cycle: Duration,
    /// Claims are trusted this long after the last renewal was *sent* (this host's monotonic clock).
    pub trust: Duration,
    /// Others take a member's claims once S3 says its lease is older than this.
    pub expiry: Duration,
    /// After a failed round, try again this soon.
    pub retry: Duration,
}

impl Default for Timings {
    /// Takeover after a `kill -9`: a lease seen overdue (older than a cycle and 3 s) is looked at
    /// again the moment it expires (50 s + 1 s for Last-Modified's whole seconds); one seen
    /// younger is seen expired at the next listing: at most about 63 s. Trust ends 10 s before
    /// expiry, so a renewal may be answered up to 10 s late (retried every 2 s).
    fn default() -> Self {
        Timings {
            cycle: Duration::from_secs(30),
            trust: Duration::from_secs(40),
            expiry: Duration::from_secs(50),
            retry: Duration::from_secs(2),
        }
    }
}

impl Timings {
    fn expiry_delta(&self) -> chrono::TimeDelta {
        chrono::TimeDelta::from_std(self.expiry).unwrap_or(chrono::TimeDelta::MAX)
    }
}

/// This host's wall clock: the system's, or (in the simulation) one that follows tokio's paused
/// clock from a fixed start.
#[derive(Debug, Clone, Copy, Default)]
pub struct WallClock(Option<(chrono::DateTime<chrono::Utc>, tokio::time::Instant)>);

impl WallClock {
    /// A clock that reads `epoch` now and then moves with tokio's time.
    pub fn following_tokio(epoch: chrono::DateTime<chrono::Utc>) -> WallClock {
        WallClock(Some((epoch, tokio::time::Instant::now())))
    }

    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        match self.0 {
            None => chrono::Utc::now(),
            Some((epoch, started)) => epoch + (tokio::time::Instant::now() - started),
        }
    }
}

/// The cluster flakes of a flake set, name -> version: what a member announces and may claim.
pub fn cluster_flakes(flakes: &[Arc<Flake>]) -> BTreeMap<String, String> {
    flakes
        .iter()
        .filter(|flake| flake.scope == FlakeScope::Cluster && flake.enabled && flake.kind != FlakeKind::Alarms)
        .map(|flake| (flake.name.clone(), flake_version(flake)))
        .collect()
}

/// This daemon's cluster flakes, as the member loop follows them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LocalFlakes {
    /// name -> version
    pub versions: BTreeMap<String, String>,
    /// Why the list may lack flakes (the flakes directory is missing or empty, or a file does not
    /// validate): announced, so that no member deletes a cluster flake's alarms meanwhile.
    pub incomplete: Option<String>,
}

impl LocalFlakes {
    /// A complete list.
    pub fn complete(versions: BTreeMap<String, String>) -> LocalFlakes {
        LocalFlakes { versions, incomplete: None }
    }
}

/// A running member: the gate the scheduler asks, the view the status page reads, and what the
/// live members agree on (for cluster flakes' alarms).
pub struct Cluster {
    pub gate: Arc<Gate>,
    pub view: watch::Receiver<Arc<ClusterView>>,
    pub agreement: watch::Receiver<Arc<Agreement>>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Cluster {
    /// Starts this daemon's member loop on `store`; `flakes` follows the local cluster flakes.
    pub fn spawn<S: store::Store>(
        store: S,
        location: &Location,
        member_name: String,
        timings: Timings,
        metrics: Arc<Metrics>,
        flakes: watch::Receiver<LocalFlakes>,
    ) -> Cluster {
        Cluster::spawn_with_clock(store, location, member_name, timings, metrics, flakes, WallClock::default())
    }

    /// [`Cluster::spawn`] with a given wall clock (the simulation's).
    pub fn spawn_with_clock<S: store::Store>(
        store: S,
        location: &Location,
        member_name: String,
        timings: Timings,
        metrics: Arc<Metrics>,
        flakes: watch::Receiver<LocalFlakes>,
        wall: WallClock,
    ) -> Cluster {
        let gate = Arc::new(Gate::default());
        let (view_tx, view) = watch::channel(Arc::new(ClusterView { location: location.to_string(), ..ClusterView::default() }));
        let (stop, stop_rx) = watch::channel(false);
        let (agreement_tx, agreement) = watch::channel(Arc::new(Agreement::default()));
        let member = member::Member::new(store, member_name, timings, gate.clone(), metrics, view_tx, location.to_string())
            .with_wall_clock(wall)
            .with_agreement(agreement_tx);
        let task = tokio::spawn(member.run(flakes, stop_rx));
        Cluster { gate, view, agreement, stop, task }
    }

    /// Ends the member loop at once without leaving, as `kill -9` would (the simulation's).
    pub fn kill(self) {
        self.task.abort();
    }

    /// Stops running cluster flakes, releases their claims and removes the lease (bounded).
    pub async fn leave(self) {
        self.stop.send_replace(true);
        let mut task = self.task;
        if tokio::time::timeout(Duration::from_secs(10), &mut task).await.is_err() {
            tracing::warn!("leaving the cluster took too long; others take its flakes when its lease expires");
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests;
