//! Once a minute, `JobOverdueSeconds` of every monitored job (SPEC 9), through the same publisher
//! and spool as every other value. Published on the minute, like the heartbeat, so each 60 s
//! period of CloudWatch holds one value per job.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::sync::watch;

use super::reload::Snapshot;
use super::shutdown::Shutdown;
use crate::monitor::{self, SharedMonitors};
use crate::publish::{Datapoint, PublisherHandle, Series};

pub async fn run(
    monitors: SharedMonitors,
    snapshot: watch::Receiver<Snapshot>,
    default_region: Option<String>,
    publisher: PublisherHandle,
    mut shutdown: Shutdown,
) {
    while let Some(minute) = super::heartbeat::next_minute(&mut shutdown).await {
        let points = overdue_points(&monitors, &snapshot.borrow(), default_region.as_deref(), minute);
        if !points.is_empty() && !publisher.publish(points).await {
            return;
        }
    }
}

/// One `JobOverdueSeconds` per monitored job at `now`, on its flake's series. A job whose values
/// cannot be published (no region) was already reported when it was loaded.
fn overdue_points(monitors: &SharedMonitors, snapshot: &Snapshot, default_region: Option<&str>, now: DateTime<Utc>) -> Vec<Datapoint> {
    let values = monitors.overdue(now);
    let series_of = |name: &str| -> Option<Arc<Series>> {
        let flake = snapshot.flakes.iter().find(|flake| flake.name == name)?;
        Series::of_flake(flake, default_region).ok().flatten()
    };
    values.into_iter().filter_map(|(name, value)| series_of(&name).map(|series| monitor::datapoints(&series, &[value]))).flatten().collect()
}
