//! When drift checks happen: the rule that keeps a fleet's reconciles from arriving together.
//!
//! A fleet shares CloudWatch's account-wide quotas (DescribeAlarms 9/s), and a fleet-wide restart
//! starts every host's clock at the same moment. So after the start-up reconcile the first drift
//! check comes at a random point between half an interval and one and a half, and later ones
//! every interval ±10%: the hosts' checks spread evenly over the interval, at hosts / interval a
//! second, instead of arriving in step. Used by the daemon's reconcile loop and by the fleet
//! simulation (`examples/fleet_sim`).

use std::time::Duration;

/// The wait before the first drift check after start, for a uniform `random` in [0, 1).
pub fn first_check_after(interval: Duration, random: f64) -> Duration {
    interval.mul_f64(0.5 + random.clamp(0.0, 1.0))
}

/// The wait between later drift checks, for a uniform `random` in [0, 1): the interval ±10%, so
/// hosts do not fall into step again.
pub fn next_check_after(interval: Duration, random: f64) -> Duration {
    interval.mul_f64(0.9 + random.clamp(0.0, 1.0) * 0.2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_checks_of_hosts_started_together_cover_an_interval_evenly() {
        let (hosts, interval) = (10_000, Duration::from_secs(3600));
        let mut per_tenth = [0usize; 10];
        for host in 0..hosts {
            let wait = first_check_after(interval, host as f64 / hosts as f64);
            assert!(wait >= interval / 2 && wait < interval * 3 / 2);
            per_tenth[((wait - interval / 2).as_secs_f64() / interval.as_secs_f64() * 10.0) as usize] += 1;
        }
        assert!(per_tenth.iter().all(|&count| count == hosts / 10), "{per_tenth:?}");
    }

    #[test]
    fn later_checks_stay_within_ten_percent() {
        let interval = Duration::from_secs(3600);
        assert_eq!(next_check_after(interval, 0.0), Duration::from_secs(3240));
        assert!(next_check_after(interval, 0.999_999) < Duration::from_secs(3960));
    }
}
