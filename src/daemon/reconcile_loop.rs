//! When alarms and the dashboard are reconciled: at start, soon after flake files change, and
//! every `--reconcile-interval` to correct drift made outside the daemon, on the fleet-spreading
//! cadence of `alarms::cadence`. The dashboard comes after the alarms, whose ARNs it lists.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, watch};

use super::reload::Snapshot;
use super::shutdown::Shutdown;
use crate::alarms::{Reconciler, Scope, cadence, desired_alarms};
use crate::cloudwatch::CloudWatch;
use crate::dashboard::{DashboardReconciler, dashboard_input, host_label};
use crate::status::StatusBoard;

/// Changes often come in bursts (a deploy writes many files); reconcile once they settle.
const SETTLE: Duration = Duration::from_secs(1);

// The loop's inputs, each from a different owner; a struct for them would be used only here.
#[allow(clippy::too_many_arguments)]
pub async fn run<C: CloudWatch>(
    reconciler: Reconciler<C>,
    dashboards: DashboardReconciler<C>,
    snapshot: watch::Receiver<Snapshot>,
    changed: Arc<Notify>,
    interval: Duration,
    default_region: Option<String>,
    status: Arc<StatusBoard>,
    mut shutdown: Shutdown,
) {
    let mut wait = cadence::first_check_after(interval, fastrand::f64());
    let host = host_label();
    loop {
        let current = snapshot.borrow().clone();
        reconcile(&reconciler, &dashboards, &host, &current, default_region.as_deref(), &status).await;
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = changed.notified() => tokio::time::sleep(SETTLE).await,
            _ = shutdown.recv() => return,
        }
        wait = cadence::next_check_after(interval, fastrand::f64());
    }
}
async fn reconcile<C: CloudWatch>(
    reconciler: &Reconciler<C>,
    dashboards: &DashboardReconciler<C>,
    host: &str,
    snapshot: &Snapshot,
    default_region: Option<&str>,
    status: &StatusBoard,
) {
    let (desired, skipped) = desired_alarms(&snapshot.flakes, default_region);
    for skip in &skipped {
        tracing::error!(flake = skip.flake, alarm = skip.alarm, "alarm skipped: {}", skip.reason);
    }
    let scope = Scope::all(snapshot.dir_missing, snapshot.flakes.len(), snapshot.broken_files.clone());
    let result = reconciler.reconcile(&desired, &scope).await;
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
    let input = dashboard_input(&snapshot.flakes, &desired, host, default_region);
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
