//! Spacing requests so that at most `rate` start per second, across every task that shares the pace.
//!
//! Fifteen lines on tokio's clock; a rate-limiting crate (governor) would bring a dozen
//! dependencies and its own clock, which paused-time tests cannot control.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

pub struct Pace {
    interval: Duration,
    next: Mutex<Instant>,
}

impl Pace {
    /// At most `rate` starts per second (`rate` must be positive).
    pub fn per_second(rate: f64) -> Pace {
        Pace { interval: Duration::from_secs_f64(1.0 / rate.max(0.001)), next: Mutex::new(Instant::now()) }
    }

    /// Waits for the next free slot and takes it.
    pub async fn wait(&self) {
        let slot = {
            let mut next = self.next.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            let slot = (*next).max(Instant::now());
            *next = slot + self.interval;
            slot
        };
        tokio::time::sleep_until(slot).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn spaces_starts_evenly() {
        let pace = Pace::per_second(4.0);
        let start = Instant::now();
        for _ in 0..5 {
            pace.wait().await;
        }
        assert_eq!(start.elapsed(), Duration::from_secs(1), "5 starts at 4/s: the fifth waits one second");
    }
}
