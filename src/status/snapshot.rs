//! Assembling a [`Status`] from the cells of the [`StatusBoard`], the daemon's metrics, its job
//! monitors and its health, at one instant. Nothing here calls CloudWatch or touches the disk.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use strum::VariantArray;

use super::board::{FlakeReading, StatusBoard};
use super::model::{ClusterStatus, FlakeRow, Header, MonitorStatus, PutStatus, SpoolStatus, Status};
use crate::metrics::Metrics;
use crate::monitor::SharedMonitors;
use crate::outcome::DropReason;

/// The daemon's health as `/healthz` judges it.
pub struct HealthInput {
    pub healthy: bool,
    /// Lines other than `ok`.
    pub findings: Vec<String>,
}

/// The status at `now`.
pub fn snapshot(
    board: &StatusBoard,
    metrics: &Metrics,
    monitors: Option<&SharedMonitors>,
    health: HealthInput,
    now: DateTime<Utc>,
) -> Status {
    let deadlines = monitors.map(|monitors| monitors.deadlines(now)).unwrap_or_default();
    let alarm_states = board.alarm_states();
    let holders = board.cluster_holders();
    let flakes = board
        .cells()
        .iter()
        .map(|cell| {
            let reading = cell.read();
            let alarms = alarm_states.get(&reading.info.name).cloned().unwrap_or_default();
            row(reading, alarms, &deadlines, &holders, now)
        })
        .collect();
    let oldest = metrics.publishing.oldest_undelivered().and_then(DateTime::from_timestamp_millis);
    let dropped = DropReason::VARIANTS
        .iter()
        .map(|reason| metrics.spool_dropped.get_or_create(&crate::metrics::ReasonLabels { reason: reason.as_str() }).get())
        .sum();
    let header = Header {
        version: env!("CARGO_PKG_VERSION").to_string(),
        generated: now,
        started: board.started,
        uptime_seconds: (now - board.started).num_seconds().max(0) as u64,
        healthy: health.healthy,
        health_findings: health.findings,
        flake_files: (*board.files()).clone(),
        spool: SpoolStatus {
            datapoints: metrics.spool_datapoints.get().max(0) as u64,
            bytes: metrics.spool_bytes.get().max(0) as u64,
            oldest_undelivered: oldest,
            oldest_undelivered_age_seconds: oldest.map(|oldest| (now - oldest).num_milliseconds().max(0) as f64 / 1000.0),
            dropped,
            rejected: metrics.datapoints_rejected.get(),
            writable: metrics.spool_write_failing.get() == 0,
        },
        last_put: metrics.publishing.last_put().and_then(|(at, outcome, latency)| {
            Some(PutStatus {
                at: DateTime::from_timestamp_millis(at)?,
                result: outcome.as_str().to_string(),
                latency_ms: latency.as_secs_f64() * 1000.0,
            })
        }),
        alarm_reconcile: board.alarm_reconcile(),
        dashboard_reconcile: board.dashboard_reconcile(),
        cluster: ClusterStatus { members: board.members() },
    };
    Status { header, flakes }
}

fn row(
    reading: FlakeReading,
    alarms: Vec<super::model::AlarmStatus>,
    deadlines: &HashMap<String, Option<DateTime<Utc>>>,
    holders: &HashMap<String, String>,
    now: DateTime<Utc>,
) -> FlakeRow {
    let info = &reading.info;
    let monitor = info.monitor.and_then(|(grace, _)| {
        let deadline = *deadlines.get(&info.name)?;
        Some(MonitorStatus { state: monitor_state(deadline, grace, now).to_string(), deadline })
    });
    FlakeRow {
        name: info.name.clone(),
        kind: info.kind.to_string(),
        schedule: info.schedule.clone(),
        enabled: info.enabled,
        file: info.file.clone(),
        next: reading.next,
        next_in_seconds: reading.next.map(|next| (next - now).num_seconds()),
        running_since: reading.running_since,
        last_run: reading.last_run,
        last_value: reading.last_value,
        runs: reading.runs,
        failures: reading.failures,
        skips: reading.skips,
        monitor,
        alarms,
        member: holders.get(&info.name).cloned(),
    }
}

/// `up`, `late` (past the next fire time and the time limit, within the grace) or `down` (past
/// the deadline, where `JobOverdueSeconds` turns positive).
pub fn monitor_state(deadline: Option<DateTime<Utc>>, grace: std::time::Duration, now: DateTime<Utc>) -> &'static str {
    let Some(deadline) = deadline else { return "up" };
    let grace = chrono::TimeDelta::from_std(grace).unwrap_or(chrono::TimeDelta::MAX);
    if now > deadline {
        "down"
    } else if deadline.checked_sub_signed(grace).is_some_and(|late_from| now > late_from) {
        "late"
    } else {
        "up"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_job_is_late_within_its_grace_and_down_past_its_deadline() {
        let deadline = DateTime::from_timestamp(10_000, 0).unwrap();
        let grace = Duration::from_secs(300);
        let at = |seconds| DateTime::from_timestamp(seconds, 0).unwrap();
        assert_eq!(monitor_state(Some(deadline), grace, at(9_000)), "up");
        assert_eq!(monitor_state(Some(deadline), grace, at(9_700)), "up");
        assert_eq!(monitor_state(Some(deadline), grace, at(9_701)), "late");
        assert_eq!(monitor_state(Some(deadline), grace, at(10_000)), "late");
        assert_eq!(monitor_state(Some(deadline), grace, at(10_001)), "down");
        assert_eq!(monitor_state(None, grace, at(99_999)), "up");
    }
}
