//! Whether the scheduler is alive: it records every pass of its loop (at least once a second);
//! `/healthz` fails once it has not for `STALL_AFTER`.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

/// The scheduler wakes at least every second; ten missed passes mean it is stuck.
pub const STALL_AFTER: Duration = Duration::from_secs(10);

#[derive(Default)]
pub struct Health {
    /// Monotonic milliseconds since `start` of the scheduler's last pass.
    last_tick_ms: AtomicI64,
    start: std::sync::OnceLock<std::time::Instant>,
}

impl Health {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alive_after_a_tick_and_stalled_once_ticks_stop() {
        let health = Health::default();
        health.tick();
        assert!(health.is_alive());
        // As if the scheduler's last pass were STALL_AFTER ago.
        let stalled_at = health.now_ms() - STALL_AFTER.as_millis() as i64 - 1;
        health.last_tick_ms.store(stalled_at, Ordering::Relaxed);
        assert!(!health.is_alive());
        assert!(health.since_last_tick() > STALL_AFTER);
        health.tick();
        assert!(health.is_alive(), "a new pass makes it healthy again");
    }
}
