//! `--heartbeat-namespace`: `SnowflakeHeartbeat` = 1 every minute with a `Host` dimension, so an
//! alarm treating missing data as breaching notices a dead daemon (see docs/operations.md).

use std::sync::Arc;

use chrono::{DurationRound, TimeDelta, Utc};

use super::shutdown::Shutdown;
use crate::publish::{Datapoint, PublisherHandle, Series};

pub const METRIC_NAME: &str = "SnowflakeHeartbeat";
/// Rejected heartbeats are logged under this name in the log directory.
const LOG_NAME: &str = "snowflake-heartbeat";

pub async fn run(namespace: String, region: String, host: String, publisher: PublisherHandle, mut shutdown: Shutdown) {
    let series = Arc::new(Series {
        flake: LOG_NAME.to_string(),
        region,
        namespace,
        metric_name: METRIC_NAME.to_string(),
        dimensions: vec![("Host".to_string(), host)],
        unit: "Count".to_string(),
        storage_resolution: 60,
        aggregate_seconds: None,
    });
    while let Some(minute) = next_minute(&mut shutdown).await {
        let point = Datapoint { series: series.clone(), value: 1.0, timestamp_ms: minute.timestamp_millis() };
        if !publisher.publish(vec![point]).await {
            return;
        }
    }
}

/// Waits for the start of the next wall-clock minute and returns it; `None` once the daemon is
/// stopping. The heartbeat and the jobs' overdue values are published on the minute.
pub(super) async fn next_minute(shutdown: &mut Shutdown) -> Option<chrono::DateTime<Utc>> {
    let now = Utc::now();
    let minute = now.duration_trunc(TimeDelta::minutes(1)).unwrap_or(now) + TimeDelta::minutes(1);
    let wait = (minute - now).to_std().unwrap_or_default();
    tokio::select! {
        _ = tokio::time::sleep(wait) => Some(minute),
        _ = shutdown.recv() => None,
    }
}
