//! When a monitored job is late: its deadline, computed from its own schedule, and how far past
//! it the job is now (SPEC 9, `JobOverdueSeconds`).
//!
//! The deadline is the first fire time strictly after the scheduled time of the job's last
//! success, plus the grace, plus the run's own time limit (`flakeTimeout`): the next run may
//! start at that fire time, may legitimately take the whole time limit, and the grace absorbs
//! publishing and scheduling delays. A job never seen to succeed counts from when the daemon
//! first loaded it. Fire times come from [`Schedule::next_after`], so every schedule the project
//! supports (crontab, macros, `@every`, `CRON_TZ=` zones with their DST gaps and repeats) gets
//! a deadline that knows it: a monthly job is not late a minute after its run.
//!
//! `@reboot` has no next fire time. Its single run happens when this daemon process loads the
//! flake, so it is overdue when it has not succeeded since then within grace plus time limit
//! (it hung, or never started), and never overdue once it has: nothing else is expected of it
//! until the next start. A crontab line that can never fire (`0 0 30 2 *`) has no deadline.
//!
//! Clocks: overdue seconds are `max(0, now - deadline)`, never negative. A recorded time later
//! than `now` (the clock went backwards) is taken as `now`, so the deadline stays at most one
//! interval plus grace and limit ahead and the job is not exempt from monitoring until the clock
//! catches up. A forward jump makes the job overdue only by how far `now` is past the deadline.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use crate::schedule::Schedule;

/// `flakeMonitor.grace` when the flake gives none.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(5 * 60);

/// How much lateness a job is allowed beyond its next fire time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allowance {
    /// `flakeMonitor.grace`.
    pub grace: Duration,
    /// The run's own time limit (`flakeTimeout`).
    pub time_limit: Duration,
}

impl Allowance {
    pub fn new(grace: Duration, time_limit: Duration) -> Allowance {
        Allowance { grace, time_limit }
    }

    fn total(&self) -> TimeDelta {
        TimeDelta::from_std(self.grace.saturating_add(self.time_limit)).unwrap_or(TimeDelta::MAX)
    }
}

/// The times a deadline is counted from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobTimes {
    /// The scheduled time of the last successful run, as kept in the state directory.
    pub last_success: Option<DateTime<Utc>>,
    /// When the daemon first loaded the job, as kept in the state directory.
    pub first_loaded: DateTime<Utc>,
    /// When this daemon process loaded the job: when a `@reboot` job fires. A success scheduled
    /// at or after it is this start's run.
    pub loaded_this_process: DateTime<Utc>,
}

/// The moment after which the job is overdue; `None` when it cannot be (a `@reboot` job that has
/// succeeded since this process loaded it, a crontab line that never fires).
pub fn deadline(schedule: &Schedule, times: &JobTimes, allowance: Allowance, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    if schedule.is_reboot() {
        let fired = times.loaded_this_process.min(now);
        if times.last_success.is_some_and(|success| success >= times.loaded_this_process) {
            return None;
        }
        return fired.checked_add_signed(allowance.total());
    }
    let anchor = times.last_success.unwrap_or(times.first_loaded).min(now);
    schedule.next_after(anchor)?.checked_add_signed(allowance.total())
}

/// Whole seconds `now` is past the job's deadline, else 0.
pub fn overdue_seconds(schedule: &Schedule, times: &JobTimes, allowance: Allowance, now: DateTime<Utc>) -> u64 {
    match deadline(schedule, times, allowance, now) {
        Some(deadline) if now > deadline => u64::try_from((now - deadline).num_seconds()).unwrap_or(0),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::Tz;

    const UTC: Tz = chrono_tz::UTC;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap_or_else(|error| panic!("{text}: {error}")).with_timezone(&Utc)
    }

    fn schedule(text: &str) -> Schedule {
        Schedule::parse(text, UTC).unwrap_or_else(|error| panic!("{text}: {error}"))
    }

    /// The default grace and the default one-minute time limit: 6 minutes after the next fire time.
    fn usual() -> Allowance {
        Allowance::new(DEFAULT_GRACE, Duration::from_secs(60))
    }

    fn succeeded_at(last_success: &str) -> JobTimes {
        JobTimes {
            last_success: Some(at(last_success)),
            first_loaded: at("2020-01-01T00:00:00Z"),
            loaded_this_process: at("2020-01-01T00:00:00Z"),
        }
    }

    fn deadline_of(text: &str, last_success: &str, now: &str) -> Option<DateTime<Utc>> {
        deadline(&schedule(text), &succeeded_at(last_success), usual(), at(now))
    }

    #[test]
    fn every_minute_is_due_a_minute_later_plus_grace_and_time_limit() {
        assert_eq!(deadline_of("* * * * *", "2026-05-04T10:00:00Z", "2026-05-04T10:00:30Z"), Some(at("2026-05-04T10:07:00Z")));
        let times = succeeded_at("2026-05-04T10:00:00Z");
        let job = schedule("* * * * *");
        assert_eq!(overdue_seconds(&job, &times, usual(), at("2026-05-04T10:06:59Z")), 0);
        assert_eq!(overdue_seconds(&job, &times, usual(), at("2026-05-04T10:07:00Z")), 0);
        assert_eq!(overdue_seconds(&job, &times, usual(), at("2026-05-04T10:07:00.999Z")), 0, "whole seconds only");
        assert_eq!(overdue_seconds(&job, &times, usual(), at("2026-05-04T10:07:01.500Z")), 1);
        assert_eq!(overdue_seconds(&job, &times, usual(), at("2026-05-04T11:07:00Z")), 3600);
    }

    #[test]
    fn the_grace_and_the_time_limit_both_add_to_the_deadline() {
        let job = schedule("*/15 * * * *");
        let times = succeeded_at("2026-05-04T10:00:00Z");
        let generous = Allowance::new(Duration::from_secs(3600), Duration::from_secs(600));
        assert_eq!(deadline(&job, &times, generous, at("2026-05-04T10:01:00Z")), Some(at("2026-05-04T11:25:00Z")));
        let tight = Allowance::new(Duration::ZERO, Duration::from_secs(1));
        assert_eq!(deadline(&job, &times, tight, at("2026-05-04T10:01:00Z")), Some(at("2026-05-04T10:15:01Z")));
    }

    #[test]
    fn weekdays_at_nine_are_not_late_over_the_weekend() {
        // 2026-05-08 is a Friday: the next run is Monday the 11th.
        let job = "0 9 * * 1-5";
        assert_eq!(deadline_of(job, "2026-05-08T09:00:00Z", "2026-05-09T12:00:00Z"), Some(at("2026-05-11T09:06:00Z")));
        let times = succeeded_at("2026-05-08T09:00:00Z");
        assert_eq!(overdue_seconds(&schedule(job), &times, usual(), at("2026-05-10T23:59:00Z")), 0);
        assert_eq!(overdue_seconds(&schedule(job), &times, usual(), at("2026-05-11T09:16:00Z")), 600);
    }

    #[test]
    fn monthly_jobs_have_a_month_before_they_are_late() {
        assert_eq!(deadline_of("@monthly", "2026-01-01T00:00:00Z", "2026-01-20T00:00:00Z"), Some(at("2026-02-01T00:06:00Z")));
        assert_eq!(deadline_of("0 3 1 * *", "2026-02-01T03:00:00Z", "2026-02-01T03:00:05Z"), Some(at("2026-03-01T03:06:00Z")));
        assert_eq!(deadline_of("@yearly", "2026-01-01T00:00:00Z", "2026-06-01T00:00:00Z"), Some(at("2027-01-01T00:06:00Z")));
    }

    #[test]
    fn monthly_on_the_31st_skips_the_short_months() {
        // January 31st -> March 31st (February has no 31st); March 31st -> May 31st (not April).
        assert_eq!(deadline_of("0 3 31 * *", "2026-01-31T03:00:00Z", "2026-02-28T03:00:00Z"), Some(at("2026-03-31T03:06:00Z")));
        assert_eq!(deadline_of("0 3 31 * *", "2026-03-31T03:00:00Z", "2026-04-30T03:00:00Z"), Some(at("2026-05-31T03:06:00Z")));
        assert_eq!(deadline_of("0 3 31 * *", "2026-07-31T03:00:00Z", "2026-08-01T00:00:00Z"), Some(at("2026-08-31T03:06:00Z")));
    }

    #[test]
    fn every_interval_counts_from_the_next_multiple_since_the_epoch() {
        // 2026-01-01T00:00:00Z is 1767225600 s since the epoch, a multiple of 90.
        let job = schedule("@every 90s");
        let times = succeeded_at("2026-01-01T00:00:00Z");
        let allowance = Allowance::new(Duration::from_secs(30), Duration::from_secs(90));
        assert_eq!(deadline(&job, &times, allowance, at("2026-01-01T00:00:10Z")), Some(at("2026-01-01T00:03:30Z")));
        // A success scheduled off the grid (it should not happen, but a hand-edited state may say so)
        // still counts from the next grid point.
        let times = succeeded_at("2026-01-01T00:00:45Z");
        assert_eq!(deadline(&job, &times, allowance, at("2026-01-01T00:01:00Z")), Some(at("2026-01-01T00:03:30Z")));
        assert_eq!(overdue_seconds(&job, &times, allowance, at("2026-01-01T00:05:00Z")), 90);
    }

    #[test]
    fn new_york_spring_forward_skips_the_missing_half_hour() {
        // 2026-03-08 02:00 EST becomes 03:00 EDT: 02:30 does not exist that day, so after
        // 2026-03-07 02:30 EST (07:30Z) the next run is 2026-03-09 02:30 EDT (06:30Z).
        let job = "CRON_TZ=America/New_York 30 2 * * *";
        assert_eq!(deadline_of(job, "2026-03-07T07:30:00Z", "2026-03-08T12:00:00Z"), Some(at("2026-03-09T06:36:00Z")));
        let times = succeeded_at("2026-03-07T07:30:00Z");
        assert_eq!(overdue_seconds(&schedule(job), &times, usual(), at("2026-03-08T07:40:00Z")), 0, "no run was due on the 8th");
        // An hourly job across the gap: 01:00 EST (06:00Z) is followed by 03:00 EDT (07:00Z).
        assert_eq!(
            deadline_of("CRON_TZ=America/New_York 0 * * * *", "2026-03-08T06:00:00Z", "2026-03-08T06:30:00Z"),
            Some(at("2026-03-08T07:06:00Z"))
        );
    }

    #[test]
    fn new_york_fall_back_runs_the_repeated_hour_once() {
        // 2026-11-01 02:00 EDT becomes 01:00 EST: 01:30 happens twice, at 05:30Z and 06:30Z; it fires
        // at the first. A success at the first is next due on 2026-11-02 01:30 EST (06:30Z).
        let job = "CRON_TZ=America/New_York 30 1 * * *";
        assert_eq!(deadline_of(job, "2026-10-31T05:30:00Z", "2026-10-31T12:00:00Z"), Some(at("2026-11-01T05:36:00Z")));
        assert_eq!(deadline_of(job, "2026-11-01T05:30:00Z", "2026-11-01T06:40:00Z"), Some(at("2026-11-02T06:36:00Z")));
        let times = succeeded_at("2026-11-01T05:30:00Z");
        assert_eq!(overdue_seconds(&schedule(job), &times, usual(), at("2026-11-01T06:45:00Z")), 0, "the repeated 01:30 is not a run");
    }

    #[test]
    fn berlin_daylight_saving_days() {
        // 2026-03-29 02:00 CET becomes 03:00 CEST: a daily 09:00 is 23 hours after the previous one.
        let daily = "CRON_TZ=Europe/Berlin 0 9 * * *";
        assert_eq!(deadline_of(daily, "2026-03-28T08:00:00Z", "2026-03-28T09:00:00Z"), Some(at("2026-03-29T07:06:00Z")));
        // 2026-10-25 03:00 CEST becomes 02:00 CET: a daily 09:00 is 25 hours after the previous one.
        assert_eq!(deadline_of(daily, "2026-10-24T07:00:00Z", "2026-10-24T09:00:00Z"), Some(at("2026-10-25T08:06:00Z")));
        // Every 30 minutes within 02:xx: on 2026-10-25 the 02:xx hour happens twice (00:00Z-01:00Z
        // as CEST, 01:00Z-02:00Z as CET); each time fires once, at its first occurrence.
        let half_hourly = "CRON_TZ=Europe/Berlin */30 2 * * *";
        assert_eq!(deadline_of(half_hourly, "2026-10-25T00:00:00Z", "2026-10-25T00:10:00Z"), Some(at("2026-10-25T00:36:00Z")));
        assert_eq!(deadline_of(half_hourly, "2026-10-25T00:30:00Z", "2026-10-25T00:40:00Z"), Some(at("2026-10-26T01:06:00Z")));
        // On 2026-03-29 02:xx does not exist at all: the next runs are on the 30th.
        assert_eq!(deadline_of(half_hourly, "2026-03-28T01:30:00Z", "2026-03-28T02:00:00Z"), Some(at("2026-03-30T00:06:00Z")));
    }

    #[test]
    fn a_job_never_seen_to_succeed_counts_from_its_first_load() {
        let job = schedule("*/5 * * * *");
        let times =
            JobTimes { last_success: None, first_loaded: at("2026-05-04T10:00:30Z"), loaded_this_process: at("2026-05-06T00:00:00Z") };
        assert_eq!(deadline(&job, &times, usual(), at("2026-05-04T10:01:00Z")), Some(at("2026-05-04T10:11:00Z")));
        // A restart does not reset the count: the first load is what the state directory kept.
        assert_eq!(
            overdue_seconds(&job, &times, usual(), at("2026-05-06T00:00:00Z")),
            86400 + 13 * 3600 + 49 * 60,
            "10:11 on the 4th to midnight after the 5th"
        );
        // Loaded exactly on a fire time: that firing may already be under way, the next one counts.
        let times = JobTimes { first_loaded: at("2026-05-04T10:05:00Z"), ..times };
        assert_eq!(deadline(&job, &times, usual(), at("2026-05-04T10:05:00Z")), Some(at("2026-05-04T10:16:00Z")));
    }

    #[test]
    fn reboot_jobs_are_overdue_only_until_they_succeed_after_this_start() {
        let job = schedule("@reboot");
        let started = at("2026-05-04T10:00:00Z");
        let never = JobTimes { last_success: None, first_loaded: at("2026-01-01T00:00:00Z"), loaded_this_process: started };
        assert_eq!(deadline(&job, &never, usual(), at("2026-05-04T10:01:00Z")), Some(at("2026-05-04T10:06:00Z")));
        assert_eq!(overdue_seconds(&job, &never, usual(), at("2026-05-04T10:16:00Z")), 600);
        let before_this_start = JobTimes { last_success: Some(at("2026-05-01T08:00:00Z")), ..never };
        assert_eq!(
            overdue_seconds(&job, &before_this_start, usual(), at("2026-05-04T10:16:00Z")),
            600,
            "an older boot's success does not count"
        );
        let this_start = JobTimes { last_success: Some(started), ..never };
        assert_eq!(deadline(&job, &this_start, usual(), at("2026-05-04T10:01:00Z")), None);
        assert_eq!(overdue_seconds(&job, &this_start, usual(), at("2027-05-04T10:00:00Z")), 0);
    }

    #[test]
    fn a_schedule_that_never_fires_has_no_deadline() {
        assert_eq!(deadline_of("0 0 30 2 *", "2026-01-01T00:00:00Z", "2026-06-01T00:00:00Z"), None);
        assert_eq!(overdue_seconds(&schedule("0 0 30 2 *"), &succeeded_at("2026-01-01T00:00:00Z"), usual(), at("2030-01-01T00:00:00Z")), 0);
    }

    #[test]
    fn a_backward_clock_jump_is_never_negative_nor_an_exemption() {
        // The last success was recorded at 12:00, then the clock went back to 09:00.
        let job = schedule("* * * * *");
        let times = succeeded_at("2026-05-04T12:00:00Z");
        assert_eq!(overdue_seconds(&job, &times, usual(), at("2026-05-04T09:00:00Z")), 0);
        // Counted from "now", not from a success in the future: a job that then stops is overdue
        // after one interval plus grace and limit, not three hours later.
        assert_eq!(deadline(&job, &times, usual(), at("2026-05-04T09:00:00Z")), Some(at("2026-05-04T09:07:00Z")));
        assert_eq!(deadline(&job, &times, usual(), at("2026-05-04T09:30:00Z")), Some(at("2026-05-04T09:37:00Z")));
        // Far in the past (a reset hardware clock) is just as bounded.
        assert_eq!(overdue_seconds(&job, &times, usual(), at("1970-01-01T00:00:00Z")), 0);
        let reboot =
            JobTimes { last_success: None, first_loaded: at("2026-05-04T12:00:00Z"), loaded_this_process: at("2026-05-04T12:00:00Z") };
        assert_eq!(deadline(&schedule("@reboot"), &reboot, usual(), at("2026-05-04T09:00:00Z")), Some(at("2026-05-04T09:06:00Z")));
    }

    #[test]
    fn a_forward_clock_jump_counts_only_the_real_lateness() {
        let job = schedule("* * * * *");
        let times = succeeded_at("2026-05-04T10:00:00Z");
        // Three minutes ahead is within the grace.
        assert_eq!(overdue_seconds(&job, &times, usual(), at("2026-05-04T10:03:00Z")), 0);
        // Ten minutes ahead: overdue by the three minutes past the 10:07 deadline, no more.
        assert_eq!(overdue_seconds(&job, &times, usual(), at("2026-05-04T10:10:00Z")), 180);
        // And the next success puts it back to 0 at once.
        let recovered = succeeded_at("2026-05-04T10:10:00Z");
        assert_eq!(overdue_seconds(&job, &recovered, usual(), at("2026-05-04T10:10:20Z")), 0);
    }

    #[test]
    fn huge_allowances_saturate_instead_of_overflowing() {
        let job = schedule("* * * * *");
        let times = succeeded_at("2026-05-04T10:00:00Z");
        let endless = Allowance::new(Duration::MAX, Duration::MAX);
        assert_eq!(deadline(&job, &times, endless, at("2026-05-04T10:00:00Z")), None);
        assert_eq!(overdue_seconds(&job, &times, endless, at("2026-05-04T10:00:00Z")), 0);
    }

    /// The croniter-backed fixture's fire times are the reference: a success at each fire time is
    /// due at the following one plus grace and time limit, and one at `after` at the first.
    #[test]
    fn deadlines_follow_the_reference_fire_times_of_the_conformance_fixture() {
        let fixture: serde_json::Value = serde_json::from_str(include_str!("../../tests/fixtures/cron_conformance.json")).unwrap();
        let allowance = Allowance::new(Duration::from_secs(300), Duration::from_secs(45));
        let extra = TimeDelta::seconds(345);
        let mut checked = 0;
        let mut failures = Vec::new();
        for case in fixture["cases"].as_array().unwrap() {
            let text = case["schedule"].as_str().unwrap();
            let zone = crate::schedule::parse_zone(case["zone"].as_str().unwrap()).unwrap();
            let job = Schedule::parse(text, zone).unwrap();
            let mut previous = at(case["after"].as_str().unwrap());
            for next in case["next"].as_array().unwrap().iter().map(|t| at(t.as_str().unwrap())) {
                let times = JobTimes { last_success: Some(previous), first_loaded: previous, loaded_this_process: previous };
                let expected = next + extra;
                let actual = deadline(&job, &times, allowance, next);
                if actual != Some(expected) {
                    failures.push(format!("{text:?} in {zone}, success at {previous}: expected {expected}, got {actual:?}"));
                }
                let late = overdue_seconds(&job, &times, allowance, expected + TimeDelta::seconds(61));
                if late != 61 {
                    failures.push(format!("{text:?} in {zone}, success at {previous}: 61 s past the deadline reads {late}"));
                }
                previous = next;
                checked += 1;
            }
        }
        assert!(checked >= 750, "the fixture should give hundreds of fire times, gave {checked}");
        assert!(failures.is_empty(), "{} deadlines differ:\n{}", failures.len(), failures.join("\n"));
    }
}
