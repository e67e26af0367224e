//! The scheduler's one question: may this daemon run this cluster flake for this scheduled time?
//!
//! The member loop ([`super::member`]) writes what it holds here; the scheduler only reads. A
//! claim counts only while the member trusts its lease: until its own monotonic clock passes the
//! moment it *sent* its last successful renewal plus [`super::Timings::trust`], which ends well
//! before any other member may judge the lease expired by S3's clock.

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use tokio::time::Instant;

/// A claim this member holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    /// The flake version the claim names: a member holding another version does not run it.
    pub version: String,
    /// This host's wall time when the claim was won: only later scheduled times run under it, so
    /// a firing the previous holder may have run is never run again here.
    pub since: DateTime<Utc>,
}

#[derive(Default)]
struct State {
    /// Until when the lease is trusted (`None`: never renewed, or given up).
    trusted_until: Option<Instant>,
    held: HashMap<String, Held>,
}

/// Shared by the member loop (writer) and the scheduler (reader).
#[derive(Default)]
pub struct Gate {
    state: Mutex<State>,
}

impl Gate {
    /// May this daemon run `flake` (at `version`) for the firing at `scheduled`, now?
    pub fn may_run(&self, flake: &str, version: &str, scheduled: DateTime<Utc>) -> bool {
        let state = self.state.lock().expect("gate lock");
        state.trusted_until.is_some_and(|until| Instant::now() < until)
            && state.held.get(flake).is_some_and(|held| held.version == version && scheduled > held.since)
    }

    /// The lease was renewed: trust it until `until`.
    pub(super) fn trust_until(&self, until: Instant) {
        self.state.lock().expect("gate lock").trusted_until = Some(until);
    }

    /// Stops trusting every claim at once (lease lapsed, shutdown).
    pub(super) fn distrust(&self) {
        let mut state = self.state.lock().expect("gate lock");
        state.trusted_until = None;
        state.held.clear();
    }

    pub(super) fn hold(&self, flake: &str, held: Held) {
        self.state.lock().expect("gate lock").held.insert(flake.to_string(), held);
    }

    pub(super) fn drop_claim(&self, flake: &str) {
        self.state.lock().expect("gate lock").held.remove(flake);
    }

    /// The version of `flake` this member holds a trusted claim on, if it does.
    pub fn holding(&self, flake: &str) -> Option<String> {
        let state = self.state.lock().expect("gate lock");
        if state.trusted_until.is_some_and(|until| Instant::now() < until) {
            state.held.get(flake).map(|held| held.version.clone())
        } else {
            None
        }
    }

    /// Whether this member's lease is trusted now: it may act for the cluster.
    pub fn trusted(&self) -> bool {
        self.state.lock().expect("gate lock").trusted_until.is_some_and(|until| Instant::now() < until)
    }

    /// How many claims are held and trusted now.
    pub fn held_count(&self) -> usize {
        let state = self.state.lock().expect("gate lock");
        if state.trusted_until.is_some_and(|until| Instant::now() < until) { state.held.len() } else { 0 }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_claim_counts_only_while_trusted_for_later_firings_and_its_version() {
        let gate = Gate::default();
        let since = Utc::now();
        gate.hold("x", Held { version: "v1".into(), since });
        let later = since + chrono::TimeDelta::seconds(2);
        assert!(!gate.may_run("x", "v1", later), "never renewed");
        gate.trust_until(Instant::now() + Duration::from_secs(35));
        assert!(gate.may_run("x", "v1", later));
        assert!(!gate.may_run("x", "v1", since), "a firing at or before the claim is the previous holder's");
        assert!(!gate.may_run("x", "v2", later), "another version of the flake");
        assert!(!gate.may_run("y", "v1", later), "not claimed");
        tokio::time::advance(Duration::from_secs(35)).await;
        assert!(!gate.may_run("x", "v1", later), "trust ran out");
        gate.trust_until(Instant::now() + Duration::from_secs(35));
        gate.distrust();
        gate.trust_until(Instant::now() + Duration::from_secs(35));
        assert!(!gate.may_run("x", "v1", later), "claims are forgotten when trust is given up");
    }
}
