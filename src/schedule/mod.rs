//! When a flake fires: five-field crontab lines, the `@` macros, `@reboot`, `@every <duration>`,
//! and an optional `CRON_TZ=<zone>` prefix.
//!
//! Crontab matching is croner's (it agrees with Python croniter, the reference; the `cron` crate
//! does not). Time zones are applied here rather than inside croner: croner walks naive wall-clock
//! time and each match is then placed in the zone, which gives cronie's rule directly: a wall-clock
//! time that does not exist (spring forward) is skipped, a repeated one (fall back) fires once.

mod duration;
mod shared;
mod zone;

pub use duration::{parse_duration, parse_flag_duration};
pub use zone::{host_zone, parse_zone};

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, LocalResult, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};

/// The shortest `@every` interval.
const MIN_EVERY: Duration = Duration::from_secs(1);
/// The longest `@every` interval: 365 days (8760h). Longer ones are almost surely typos, and
/// rarer runs read better as a crontab line (`@yearly`). Far below what the millisecond
/// arithmetic of [`Schedule::next_after`] could overflow (issue 22.2).
pub const MAX_EVERY: Duration = Duration::from_secs(365 * 24 * 3600);

/// A parsed schedule.
#[derive(Clone)]
pub enum Schedule {
    /// A crontab line in a time zone.
    /// The pattern is shared by every flake with the same text (see [`shared`]).
    Cron { cron: Arc<Cron>, zone: Tz, expression: String },
    /// Fires at every multiple of the interval since the Unix epoch.
    Every(Duration),
    /// Fires once, when the daemon starts or first loads the flake.
    Reboot,
    /// Never fires: a `flakeType: "alarms"` flake, which has no command.
    Never,
}

impl Schedule {
    /// Parses a `flakeCronstring`; `default_zone` applies unless the text starts with `CRON_TZ=`.
    pub fn parse(text: &str, default_zone: Tz) -> Result<Schedule, String> {
        let text = text.trim();
        let (zone, expression) = match text.strip_prefix("CRON_TZ=") {
            Some(rest) => {
                let (name, expression) = rest.split_once(char::is_whitespace).ok_or_else(|| {
                    format!("\"{text}\" has a CRON_TZ= prefix but no schedule after it; write e.g. \"CRON_TZ=Europe/Berlin 0 9 * * *\"")
                })?;
                (parse_zone(name).map_err(|reason| format!("CRON_TZ={name}: {reason}"))?, expression.trim())
            }
            None => (default_zone, text),
        };
        if let Some(name) = expression.strip_prefix('@') {
            return parse_macro(name, zone);
        }
        parse_crontab(expression, expression, zone)
    }

    /// The first fire time strictly after `after`; `None` for `@reboot` (and for crontab lines
    /// that can never match, such as `0 0 30 2 *`).
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Schedule::Reboot | Schedule::Never => None,
            Schedule::Every(interval) => {
                // Checked all the way: a cast that wraps would go backwards in time or divide by
                // zero. Parsing bounds the interval; this keeps any other value from wrapping.
                let step = i64::try_from(interval.as_millis()).ok().filter(|step| *step > 0)?;
                let millis = after.timestamp_millis();
                DateTime::from_timestamp_millis(millis.div_euclid(step).checked_add(1)?.checked_mul(step)?)
            }
            Schedule::Cron { cron, zone, .. } => next_cron(cron, *zone, after),
        }
    }

    /// The longest run time that fits between two firings: the interval of `@every`, else a
    /// minute (crontab has minute resolution, and `flakeTimeout` defaults to at most 60 s).
    pub fn interval(&self) -> Option<Duration> {
        match self {
            Schedule::Every(interval) => Some(*interval),
            Schedule::Cron { .. } => Some(Duration::from_secs(60)),
            Schedule::Reboot | Schedule::Never => None,
        }
    }

    pub fn is_reboot(&self) -> bool {
        matches!(self, Schedule::Reboot)
    }
}

impl PartialEq for Schedule {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Schedule::Cron { zone: a, expression: x, .. }, Schedule::Cron { zone: b, expression: y, .. }) => a == b && x == y,
            (Schedule::Every(a), Schedule::Every(b)) => a == b,
            (Schedule::Reboot, Schedule::Reboot) | (Schedule::Never, Schedule::Never) => true,
            _ => false,
        }
    }
}

impl fmt::Debug for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Schedule::Cron { zone, expression, .. } => write!(f, "Cron({expression:?} in {zone})"),
            Schedule::Every(interval) => write!(f, "Every({interval:?})"),
            Schedule::Reboot => write!(f, "Reboot"),
            Schedule::Never => write!(f, "Never"),
        }
    }
}

fn parse_macro(name: &str, zone: Tz) -> Result<Schedule, String> {
    let (word, argument) = match name.split_once(char::is_whitespace) {
        Some((word, argument)) => (word, argument.trim()),
        None => (name, ""),
    };
    let expansion = match word.to_ascii_lowercase().as_str() {
        "yearly" | "annually" => "0 0 1 1 *",
        "monthly" => "0 0 1 * *",
        "weekly" => "0 0 * * 0",
        "daily" | "midnight" => "0 0 * * *",
        "hourly" => "0 * * * *",
        "reboot" => "",
        "every" => {
            let interval = parse_duration(argument, false).map_err(|reason| format!("@every: {reason}"))?;
            if interval < MIN_EVERY {
                return Err(format!("@every {argument}: the interval must be at least 1s"));
            }
            if interval > MAX_EVERY {
                return Err(format!(
                    "@every {argument}: the interval must be at most 8760h (365 days); for rarer runs use a crontab line such as @yearly"
                ));
            }
            return Ok(Schedule::Every(interval));
        }
        _ => {
            return Err(format!(
                "\"@{name}\" is not a schedule macro; use @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly, @reboot or @every <duration>"
            ));
        }
    };
    if !argument.is_empty() {
        return Err(format!("\"@{word}\" takes no argument, but \"{argument}\" follows it"));
    }
    if word.eq_ignore_ascii_case("reboot") {
        return Ok(Schedule::Reboot);
    }
    parse_crontab(expansion, &format!("@{}", word.to_ascii_lowercase()), zone)
}

fn parse_crontab(expression: &str, shown_as: &str, zone: Tz) -> Result<Schedule, String> {
    let fields = expression.split_whitespace().count();
    if fields == 6 || fields == 7 {
        return Err(format!(
            "\"{expression}\" has {fields} fields, but schedules have minute resolution: write five fields \
             (minute hour day-of-month month day-of-week); for sub-minute schedules use \"@every 10s\""
        ));
    }
    if fields != 5 {
        return Err(format!(
            "\"{expression}\" has {fields} field(s); a crontab schedule has five: minute hour day-of-month month day-of-week (e.g. \"*/5 * * * *\")"
        ));
    }
    let cron = shared::shared_pattern(expression, || {
        CronParser::builder().seconds(Seconds::Disallowed).year(Year::Disallowed).sloppy_ranges(true).build().parse(expression)
    })
    .map_err(|error| format!("\"{expression}\" is not a valid crontab schedule: {error}"))?;
    Ok(Schedule::Cron { cron, zone, expression: shown_as.to_string() })
}

/// Upper bound on matches examined before giving up; a DST gap skips at most an hour's worth.
const MAX_CANDIDATES: usize = 200;

fn next_cron(cron: &Cron, zone: Tz, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let mut cursor: NaiveDateTime = after.with_timezone(&zone).naive_local();
    for _ in 0..MAX_CANDIDATES {
        let candidate = cron.find_next_occurrence(&cursor, false).ok()?;
        let instant = match zone.from_local_datetime(&candidate) {
            LocalResult::Single(instant) => Some(instant),
            // A repeated wall-clock time fires once: at its first occurrence.
            LocalResult::Ambiguous(first, _) => Some(first),
            // A wall-clock time that does not exist is skipped.
            LocalResult::None => None,
        };
        if let Some(instant) = instant.map(|instant| instant.with_timezone(&Utc))
            && instant > after
        {
            return Some(instant);
        }
        cursor = candidate;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
    }

    fn next_n(schedule: &str, zone: Tz, after: &str, count: usize) -> Vec<String> {
        let schedule = Schedule::parse(schedule, zone).unwrap();
        let mut cursor = at(after);
        let mut out = Vec::new();
        for _ in 0..count {
            cursor = schedule.next_after(cursor).unwrap();
            out.push(cursor.format("%Y-%m-%dT%H:%M:%SZ").to_string());
        }
        out
    }

    #[test]
    fn weekdays_at_nine() {
        assert_eq!(
            next_n("0 9 * * 1-5", Tz::UTC, "2026-01-01T00:00:00Z", 5),
            ["2026-01-01T09:00:00Z", "2026-01-02T09:00:00Z", "2026-01-05T09:00:00Z", "2026-01-06T09:00:00Z", "2026-01-07T09:00:00Z"]
        );
    }

    #[test]
    fn seven_is_sunday() {
        assert_eq!(next_n("30 2 * * 7", Tz::UTC, "2026-01-01T00:00:00Z", 2), ["2026-01-04T02:30:00Z", "2026-01-11T02:30:00Z"]);
    }

    #[test]
    fn every_is_epoch_aligned() {
        assert_eq!(next_n("@every 1m30s", Tz::UTC, "2026-01-01T00:00:01Z", 2), ["2026-01-01T00:01:30Z", "2026-01-01T00:03:00Z"]);
    }

    #[test]
    fn cron_tz_prefix_wins_over_default_zone() {
        assert_eq!(next_n("CRON_TZ=Asia/Kolkata 0 9 * * *", Tz::UTC, "2026-01-01T00:00:00Z", 1), ["2026-01-01T03:30:00Z"]);
    }

    #[test]
    fn spring_forward_skips_the_missing_time() {
        // 2026-03-08 02:30 does not exist in New York.
        assert_eq!(
            next_n("30 2 * * *", Tz::America__New_York, "2026-03-07T00:00:00Z", 3),
            ["2026-03-07T07:30:00Z", "2026-03-09T06:30:00Z", "2026-03-10T06:30:00Z"]
        );
    }

    #[test]
    fn fall_back_fires_the_repeated_time_once() {
        // 2026-11-01 01:30 happens twice in New York; only the first (EDT, 05:30Z) fires.
        assert_eq!(
            next_n("30 * * * *", Tz::America__New_York, "2026-11-01T04:00:00Z", 3),
            ["2026-11-01T04:30:00Z", "2026-11-01T05:30:00Z", "2026-11-01T07:30:00Z"]
        );
    }

    #[test]
    fn a_daily_time_in_the_repeated_hour_fires_once() {
        // 01:30 happens twice in New York on 2026-11-01 (05:30Z EDT, 06:30Z EST): croniter
        // fires both; the contract fires the first only.
        assert_eq!(
            next_n("30 1 * * *", Tz::America__New_York, "2026-10-31T12:00:00Z", 3),
            ["2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z", "2026-11-03T06:30:00Z"]
        );
    }

    #[test]
    fn six_fields_are_rejected_with_a_reason() {
        let error = Schedule::parse("* * * * * *", Tz::UTC).unwrap_err();
        assert!(error.contains("6 fields") && error.contains("@every"), "{error}");
    }

    #[test]
    fn other_errors_say_what_to_write() {
        assert!(Schedule::parse("* * *", Tz::UTC).unwrap_err().contains("five"));
        assert!(Schedule::parse("@fortnightly", Tz::UTC).unwrap_err().contains("@every"));
        assert!(Schedule::parse("@every 0s", Tz::UTC).unwrap_err().contains("at least 1s"));
        // Issue 22.2: intervals that wrapped around (backwards in time, or a division by zero).
        for huge in ["18446744073709551615s", "9223372036854775808s", "8761h", "31536001s"] {
            let error = Schedule::parse(&format!("@every {huge}"), Tz::UTC).unwrap_err();
            assert!(error.contains("at most 8760h (365 days)"), "{huge}: {error}");
        }
        assert_eq!(Schedule::parse("@every 8760h", Tz::UTC).unwrap().interval(), Some(MAX_EVERY));
        // No interval wraps, whatever built it.
        let after = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z").unwrap().with_timezone(&Utc);
        assert_eq!(Schedule::Every(Duration::from_secs(u64::MAX)).next_after(after), None);
        assert_eq!(Schedule::Every(Duration::from_millis(1u64 << 63)).next_after(after), None);
        assert!(Schedule::Every(MAX_EVERY).next_after(after).is_some_and(|next| next > after));
        assert!(Schedule::parse("CRON_TZ=Nowhere/City * * * * *", Tz::UTC).unwrap_err().contains("IANA"));
        assert!(Schedule::parse("61 * * * *", Tz::UTC).unwrap_err().contains("not a valid crontab"));
    }

    #[test]
    fn reboot_has_no_next_time() {
        let schedule = Schedule::parse("@reboot", Tz::UTC).unwrap();
        assert!(schedule.is_reboot());
        assert_eq!(schedule.next_after(Utc::now()), None);
    }

    #[test]
    fn default_timeout_interval() {
        assert_eq!(Schedule::parse("@every 10s", Tz::UTC).unwrap().interval(), Some(Duration::from_secs(10)));
        assert_eq!(Schedule::parse("*/5 * * * *", Tz::UTC).unwrap().interval(), Some(Duration::from_secs(60)));
    }
}
