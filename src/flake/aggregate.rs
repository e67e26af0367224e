//! `flakeAggregate` (SPEC 8.1): the window whose values go to CloudWatch as one datum, and the
//! rules that keep every statistic of the metric exact.

use serde_json::Value;

use super::fields::{Fields, describe, shorten};
use super::model::Alarm;
use super::problem::Problems;
use crate::schedule::parse_duration;

const KEY: &str = "flakeAggregate";
/// The longest window: its values wait in the spool and its metric shows nothing until it closes,
/// so a longer one mostly delays alarms.
const MAX_WINDOW_SECONDS: u64 = 3600;

/// The window in seconds; `Some(None)` without the field, `None` after recording a problem.
/// `storage_resolution` is the flake's (60 or 1), `None` if that field itself was invalid.
pub fn parse_aggregate(fields: &Fields, storage_resolution: Option<i32>, problems: &mut Problems) -> Option<Option<u32>> {
    let Some(raw) = fields.raw(KEY) else { return Some(None) };
    let path = fields.path(KEY);
    let seconds = match raw {
        Value::String(text) => match parse_duration(text, false) {
            Ok(duration) => duration.as_secs(),
            Err(reason) => {
                problems.error(path, format!("{reason}; write the window such as \"60s\" or \"5m\""));
                return None;
            }
        },
        Value::Number(number) => match number.as_u64() {
            Some(seconds) => seconds,
            None => {
                problems.error(path, format!("{number} is not a whole number of seconds; write the window such as \"60s\" or \"5m\""));
                return None;
            }
        },
        other => {
            problems.error(path, format!("must be a duration such as \"60s\" or \"5m\", got {}", describe(other)));
            return None;
        }
    };
    let shown = match raw {
        Value::String(text) => shorten(text.trim(), 40),
        _ => format!("{seconds}"),
    };
    if seconds == 0 {
        problems.error(path, "is zero; write a window such as \"60s\", or remove flakeAggregate to send every value on its own");
        return None;
    }
    if seconds > MAX_WINDOW_SECONDS {
        problems.error(
            path,
            format!("\"{shown}\" is longer than an hour; use at most \"1h\" (values wait until their window closes, and so do alarms)"),
        );
        return None;
    }
    let high_resolution = storage_resolution? == 1;
    if !high_resolution && seconds % 60 != 0 {
        problems.error(
            path,
            format!(
                "\"{shown}\" ({seconds} s) is not a multiple of 60 s; a standard-resolution metric keeps one bucket a minute, \
                 so use \"60s\", \"120s\", \"5m\", ..., or set flakeStorageResolution to 1 for windows in whole seconds"
            ),
        );
        return None;
    }
    Some(Some(seconds as u32))
}

/// Warns about alarms whose period does not hold whole windows: every value of a window lands at
/// the window's start, so such an alarm sees data in some periods and none in others.
pub fn check_alarm_periods(window_seconds: u32, alarms: &[Alarm], problems: &mut Problems) {
    for alarm in alarms.iter().filter(|alarm| alarm.period % window_seconds as i32 != 0) {
        problems.warning(
            KEY,
            format!(
                "alarm {} has a {} s period, not a multiple of the {window_seconds} s window: a window's values all land at its \
                 start, so some periods get no data; use an alarmPeriodLength that is a multiple of {window_seconds}",
                alarm.name, alarm.period
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(value: Value, resolution: i32) -> (Option<Option<u32>>, Vec<String>) {
        let object = json!({ "flakeAggregate": value });
        let fields = Fields::new(object.as_object().unwrap(), "");
        let mut problems = Problems::default();
        let parsed = parse_aggregate(&fields, Some(resolution), &mut problems);
        (parsed, problems.into_vec().into_iter().map(|problem| problem.to_string()).collect())
    }

    #[test]
    fn whole_minutes_at_standard_resolution() {
        assert_eq!(parse(json!("60s"), 60).0, Some(Some(60)));
        assert_eq!(parse(json!("5m"), 60).0, Some(Some(300)));
        assert_eq!(parse(json!(120), 60).0, Some(Some(120)));
        assert_eq!(parse(json!("1h"), 60).0, Some(Some(3600)));
    }

    #[test]
    fn whole_seconds_at_high_resolution() {
        assert_eq!(parse(json!("10s"), 1).0, Some(Some(10)));
        assert_eq!(parse(json!("1s"), 1).0, Some(Some(1)));
        let (parsed, problems) = parse(json!("10s"), 60);
        assert_eq!(parsed, None);
        assert!(problems[0].starts_with("flakeAggregate: \"10s\" (10 s) is not a multiple of 60 s"), "{problems:?}");
        assert!(problems[0].contains("flakeStorageResolution to 1"), "{problems:?}");
    }

    #[test]
    fn rejections_name_the_field_and_the_fix() {
        for (value, expected) in [
            (json!("0s"), "is zero"),
            (json!("2h"), "longer than an hour"),
            (json!("500ms"), "unknown unit \"ms\""),
            (json!("soon"), "is not a duration"),
            (json!(1.5), "not a whole number of seconds"),
            (json!(true), "must be a duration"),
        ] {
            let (parsed, problems) = parse(value.clone(), 1);
            assert_eq!(parsed, None, "{value}");
            assert_eq!(problems.len(), 1, "{value}: {problems:?}");
            assert!(problems[0].starts_with("flakeAggregate: ") && problems[0].contains(expected), "{value}: {problems:?}");
        }
    }

    fn flake_file(extra: Value) -> (Option<crate::flake::Flake>, Vec<String>) {
        let mut object =
            json!({"flakeName": "lat", "flakeCronstring": "@every 10s", "flakeCommand": "echo 1", "flakeMetricNamespace": "N"});
        object.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        let facts = crate::placeholders::tests::FixedFacts;
        let context = crate::flake::Context { default_zone: chrono_tz::Tz::UTC, facts: &facts };
        let (flake, problems) = crate::flake::parse_flake(std::path::Path::new("f.json"), &object.to_string(), &context);
        (flake, problems.into_iter().map(|problem| problem.to_string()).collect())
    }

    #[test]
    fn the_window_reaches_the_series_and_alarm_periods_are_checked_against_it() {
        let (flake, problems) = flake_file(json!({"flakeAggregate": "2m", "flakeAlarms": [
            {"alarmName": "ok", "alarmOperator": ">", "alarmThreshold": 1, "alarmPeriodLength": 240},
            {"alarmName": "uneven", "alarmOperator": ">", "alarmThreshold": 1, "alarmPeriodLength": 60}]}));
        let flake = flake.unwrap();
        let series = crate::publish::Series::of_flake(&flake, Some("us-east-1")).unwrap().unwrap();
        assert_eq!(series.aggregate_seconds, Some(120));
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].starts_with("flakeAggregate: warning: alarm FL-lat-uneven has a 60 s period"), "{problems:?}");

        let (flake, problems) = flake_file(json!({"flakeAggregate": "10s", "flakeStorageResolution": 1}));
        assert_eq!(flake.unwrap().metric.unwrap().aggregate_seconds, Some(10), "{problems:?}");
        let (flake, problems) = flake_file(json!({"flakeAggregate": "10s"}));
        assert!(flake.is_none() && problems[0].starts_with("flakeAggregate: "), "{problems:?}");
    }

    #[test]
    fn absent_is_no_aggregation() {
        let object = json!({});
        let fields = Fields::new(object.as_object().unwrap(), "");
        let mut problems = Problems::default();
        assert_eq!(parse_aggregate(&fields, Some(60), &mut problems), Some(None));
        assert!(problems.into_vec().is_empty());
    }
}
