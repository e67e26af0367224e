//! When alarms and the dashboard are reconciled: at start, soon after flake files change, and
//! every `--reconcile-interval` to correct drift made outside the daemon, on the fleet-spreading
//! cadence of `alarms::cadence`. The dashboard comes after the alarms, whose ARNs it lists.
//!
//! In a cluster (SPEC 15) a cluster flake's alarms and graphs are not this host's: the host's
//! list never holds them, the member holding the flake's claim keeps them (`cluster::owned`),
//! and a change of claims or of what the members announce reconciles at once.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, watch};

use super::reload::Snapshot;
use super::shutdown::Shutdown;
use crate::alarms::{DesiredAlarm, Reconciler, Scope, cadence, desired_alarms};
use crate::cloudwatch::CloudWatch;
use crate::cluster::cluster_flakes;
use crate::cluster::owned::ClusterAlarms;
use crate::cluster::store::Store;
use crate::dashboard::{DashboardReconciler, dashboard_input, host_label};
use crate::status::StatusBoard;

/// Changes often come in bursts (a deploy writes many files); reconcile once they settle.
const SETTLE: Duration = Duration::from_secs(1);

// The loop's inputs, each from a different owner; a struct for them would be used only here.
#[allow(clippy::too_many_arguments)]
pub async fn run<C: CloudWatch, S: Store>(
    reconciler: Reconciler<C>,
    dashboards: DashboardReconciler<C>,
    snapshot: watch::Receiver<Snapshot>,
    changed: Arc<Notify>,
    interval: Duration,
    default_region: Option<String>,
    status: Arc<StatusBoard>,
    mut shutdown: Shutdown,
    mut cluster: Option<ClusterAlarms<S>>,
) {
    let mut wait = cadence::first_check_after(interval, fastrand::f64());
    let host = host_label();
    loop {
        let current = snapshot.borrow().clone();
        reconcile(&reconciler, &dashboards, &host, &current, default_region.as_deref(), &status, cluster.as_mut()).await;
        let cluster_changed = async {
            match cluster.as_mut() {
                Some(cluster) => cluster.changed().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = changed.notified() => tokio::time::sleep(SETTLE).await,
            () = cluster_changed => tokio::time::sleep(SETTLE).await,
            _ = shutdown.recv() => return,
        }
        wait = cadence::next_check_after(interval, fastrand::f64());
    }
}
async fn reconcile<C: CloudWatch, S: Store>(
    reconciler: &Reconciler<C>,
    dashboards: &DashboardReconciler<C>,
    host: &str,
    snapshot: &Snapshot,
    default_region: Option<&str>,
    status: &StatusBoard,
    cluster: Option<&mut ClusterAlarms<S>>,
) {
    let (all_desired, skipped) = desired_alarms(&snapshot.flakes, default_region);
    for skip in &skipped {
        tracing::error!(flake = skip.flake, alarm = skip.alarm, "alarm skipped: {}", skip.reason);
    }
    // Without --cluster a cluster flake runs here, and its alarms are this host's as before.
    let local_cluster = if cluster.is_some() { cluster_flakes(&snapshot.flakes) } else { BTreeMap::new() };
    let (cluster_desired, desired): (Vec<DesiredAlarm>, Vec<DesiredAlarm>) =
        all_desired.iter().cloned().partition(|alarm| local_cluster.contains_key(&alarm.flake));
    if !local_cluster.is_empty() {
        let keys: BTreeSet<(String, String)> = cluster_desired.iter().map(DesiredAlarm::key).collect();
        if let Err(reason) = reconciler.hand_over(&keys).await {
            // Reconciling the host's alarms now could delete them as leftovers: wait.
            tracing::error!("alarm reconcile failed, trying again later: {reason}");
            status.alarm_reconcile_failed(&reason);
            return;
        }
    }
    let scope = Scope::all(snapshot.dir_missing, snapshot.flakes.len(), snapshot.broken_files.clone());
    let mut result = reconciler.reconcile(&desired, &scope).await;
    let mut held = BTreeSet::new();
    if let Some(cluster) = cluster {
        let cluster_applied = cluster.reconcile(reconciler, &local_cluster, &cluster_desired, &all_desired).await;
        held = cluster.held(&local_cluster);
        if let Ok(applied) = &mut result {
            applied.absorb(cluster_applied);
        }
    }
    match &result {
        Ok(applied) => status.alarms_reconciled(applied.writes(), &applied.failures, applied.states.clone()),
        Err(reason) => status.alarm_reconcile_failed(reason),
    }
    match result {
        Ok(applied) if applied.writes() > 0 || !applied.failures.is_empty() => tracing::info!(
            created = applied.created,
            updated = applied.updated,
            retagged = applied.tagged,
            deleted = applied.deleted,
            failed = applied.failures.len(),
            "alarms reconciled"
        ),
        Ok(_) => tracing::debug!(alarms = desired.len(), "alarms reconciled: nothing to change"),
        Err(reason) => tracing::error!("alarm reconcile failed, trying again later: {reason}"),
    }
    // A cluster flake's graphs and alarms are on the dashboard of the member running it only.
    let mine = |flake: &str| !local_cluster.contains_key(flake) || held.contains(flake);
    let flakes: Vec<_> = snapshot.flakes.iter().filter(|flake| mine(&flake.name)).cloned().collect();
    let desired: Vec<DesiredAlarm> = all_desired.into_iter().filter(|alarm| mine(&alarm.flake)).collect();
    let input = dashboard_input(&flakes, &desired, host, default_region);
    let allowed = !snapshot.dir_missing && !snapshot.flakes.is_empty();
    let result = dashboards.reconcile(&input, &desired, allowed).await;
    match &result {
        Ok(applied) => status.dashboard_reconciled(applied.writes(), &applied.failures),
        Err(reason) => status.dashboard_reconciled(0, std::slice::from_ref(reason)),
    }
    match result {
        Ok(applied) if applied.writes() > 0 || !applied.failures.is_empty() => tracing::info!(
            created = applied.created,
            updated = applied.updated,
            deleted = applied.deleted,
            failed = applied.failures.len(),
            "dashboard reconciled"
        ),
        Ok(_) => tracing::debug!("dashboard reconciled: nothing to change"),
        Err(reason) => tracing::error!("dashboard reconcile failed, trying again later: {reason}"),
    }
}
