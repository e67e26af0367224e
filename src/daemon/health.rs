//! What `/healthz` says. Unhealthy (503) when the scheduler is stuck: it records every pass of
//! its loop (at least once a second) and fails once it has not for `STALL_AFTER`. Degraded, but
//! still 200, while the spool cannot be written: the body says so (see docs/durability.md for why
//! the status code stays).

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use crate::metrics::Metrics;

/// The scheduler wakes at least every second; ten missed passes mean it is stuck.
pub const STALL_AFTER: Duration = Duration::from_secs(10);

pub struct Health {
    /// Monotonic milliseconds since `start` of the scheduler's last pass.
    last_tick_ms: AtomicI64,
    start: std::sync::OnceLock<std::time::Instant>,
    /// Where the publisher reports a spool that cannot be written.
    metrics: Arc<Metrics>,
}

/// The answer to `/healthz`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthReport {
    /// False answers 503.
    pub healthy: bool,
    pub body: String,
}

impl Health {
    pub fn new(metrics: Arc<Metrics>) -> Health {
        Health { last_tick_ms: AtomicI64::new(0), start: std::sync::OnceLock::new(), metrics }
    }

    fn now_ms(&self) -> i64 {
        self.start.get_or_init(std::time::Instant::now).elapsed().as_millis() as i64
    }

    pub fn tick(&self) {
        self.last_tick_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    /// Time since the scheduler's last pass.
    pub fn since_last_tick(&self) -> Duration {
        Duration::from_millis((self.now_ms() - self.last_tick_ms.load(Ordering::Relaxed)).max(0) as u64)
    }

    pub fn is_alive(&self) -> bool {
        self.since_last_tick() < STALL_AFTER
    }

    /// True while the last spool write failed.
    pub fn spool_degraded(&self) -> bool {
        self.metrics.spool_write_failing.get() != 0
    }

    /// Status and body of `/healthz`: a line per finding, `ok` first when healthy.
    pub fn report(&self) -> HealthReport {
        let mut body =
            if self.is_alive() { "ok\n".to_string() } else { format!("scheduler stalled: no pass for {:?}\n", self.since_last_tick()) };
        if self.spool_degraded() {
            body.push_str("spool: degraded: cannot write; datapoints are sent without a durable copy\n");
        }
        HealthReport { healthy: self.is_alive(), body }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alive_after_a_tick_and_stalled_once_ticks_stop() {
        let health = Health::new(Arc::new(Metrics::new()));
        health.tick();
        assert!(health.is_alive());
        // As if the scheduler's last pass were STALL_AFTER ago.
        let stalled_at = health.now_ms() - STALL_AFTER.as_millis() as i64 - 1;
        health.last_tick_ms.store(stalled_at, Ordering::Relaxed);
        assert!(!health.is_alive());
        assert!(health.since_last_tick() > STALL_AFTER);
        assert!(!health.report().healthy);
        health.tick();
        assert!(health.is_alive(), "a new pass makes it healthy again");
    }

    #[test]
    fn a_spool_that_cannot_be_written_is_reported_but_stays_200() {
        let metrics = Arc::new(Metrics::new());
        let health = Health::new(metrics.clone());
        health.tick();
        assert_eq!(health.report(), HealthReport { healthy: true, body: "ok\n".to_string() });
        metrics.spool_write_failing.set(1);
        let report = health.report();
        assert!(report.healthy);
        assert_eq!(report.body, "ok\nspool: degraded: cannot write; datapoints are sent without a durable copy\n");
        metrics.spool_write_failing.set(0);
        assert_eq!(health.report().body, "ok\n");
    }
}
