//! `--splay`: a stable offset per flake and host within a window, so that a fleet of flakes due at
//! the same time starts spread over the window instead of all at once.
//!
//! The offset is a hash of the host name and the flake name: the same flake on the same host
//! starts at the same offset every time (its datapoints stay evenly spaced), and the same flake
//! on a thousand hosts spreads too, so a fleet's PutMetricData calls do not arrive together.
//! The offset never reaches the flake's interval (a minute for a crontab line), so a run always
//! starts before the flake's next firing is due. The run keeps its scheduled time: the datapoint's
//! timestamp and `SNOWFLAKE_SCHEDULED_TIME` are the firing's, not the delayed start's.

use std::time::Duration;

use crate::schedule::Schedule;

/// The window and what makes offsets differ between hosts.
#[derive(Debug, Clone)]
pub struct Splay {
    window: Duration,
    host: String,
}

impl Splay {
    pub fn new(window: Duration, host: impl Into<String>) -> Splay {
        Splay { window, host: host.into() }
    }

    /// How long after each scheduled time `flake` starts; zero for `@reboot`.
    pub fn offset(&self, flake: &str, schedule: &Schedule) -> Duration {
        let window = schedule.interval().map_or(Duration::ZERO, |interval| self.window.min(interval));
        let window_ms = window.as_millis() as u64;
        if window_ms == 0 {
            return Duration::ZERO;
        }
        Duration::from_millis(stable_hash(&[self.host.as_bytes(), flake.as_bytes()]) % window_ms)
    }
}

/// FNV-1a (64 bit) over the parts, each followed by a zero byte: the same on every build and
/// platform, unlike std's hasher, so an offset survives an upgrade. bench/bench.py recomputes it.
fn stable_hash(parts: &[&[u8]]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in parts.iter().flat_map(|part| part.iter().chain(std::iter::once(&0u8))) {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_minute() -> Schedule {
        Schedule::parse("* * * * *", chrono_tz::UTC).unwrap()
    }

    #[test]
    fn the_hash_is_fnv1a_and_stable() {
        // Pinned: bench/bench.py computes the same offsets to measure lateness.
        assert_eq!(stable_hash(&[b"host", b"f00001"]), 0x2c2e_b759_7a33_9700);
        assert_eq!(
            Splay::new(Duration::from_secs(20), "host").offset("f00001", &every_minute()),
            Duration::from_millis(0x2c2e_b759_7a33_9700 % 20_000)
        );
    }

    #[test]
    fn offsets_spread_over_the_window() {
        let splay = Splay::new(Duration::from_secs(20), "web-1");
        let offsets: Vec<Duration> = (0..1000).map(|i| splay.offset(&format!("f{i:05}"), &every_minute())).collect();
        assert!(offsets.iter().all(|offset| *offset < Duration::from_secs(20)));
        for second in 0..20 {
            let in_second = offsets.iter().filter(|offset| offset.as_secs() == second).count();
            assert!((25..=75).contains(&in_second), "second {second} has {in_second} of 1000 starts");
        }
    }

    #[test]
    fn hosts_get_different_offsets_for_the_same_flake() {
        let offsets: std::collections::HashSet<Duration> =
            (0..20).map(|host| Splay::new(Duration::from_secs(20), format!("host-{host}")).offset("disk", &every_minute())).collect();
        assert!(offsets.len() > 15);
    }

    #[test]
    fn the_offset_stays_within_the_interval_and_reboot_has_none() {
        let every_5s = Schedule::parse("@every 5s", chrono_tz::UTC).unwrap();
        let splay = Splay::new(Duration::from_secs(120), "h");
        for i in 0..200 {
            assert!(splay.offset(&format!("f{i}"), &every_5s) < Duration::from_secs(5));
            assert!(splay.offset(&format!("f{i}"), &every_minute()) < Duration::from_secs(60));
        }
        assert_eq!(splay.offset("f", &Schedule::Reboot), Duration::ZERO);
        assert_eq!(Splay::new(Duration::ZERO, "h").offset("f", &every_minute()), Duration::ZERO);
    }
}
