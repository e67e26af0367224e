//! Validating `flakeMonitor` (SPEC 9): a job flake watched as a cron monitor. The notification
//! fields are `flakeAlarms`' own (`alarmEndpoints`, `alarmTags`, `alarmActionsEnabled`), read by
//! the same code; what the two alarms and the values are lives in `crate::monitor`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use super::context::Context;
use super::fields::{Fields, describe, shorten};
use super::keys::{MONITOR_KEYS, warn_unknown};
use super::model::{Alarm, FlakeKind};
use super::problem::Problems;
use super::shared_fields::{MAX_ALARM_NAME, parse_endpoints, parse_tags};
use crate::monitor::{DEFAULT_GRACE, JOB_DIMENSION, OVERDUE, declared_alarms};
use crate::schedule::parse_duration;

/// CloudWatch's limit on a metric's dimensions, the `Job` dimension included.
const MAX_DIMENSIONS: usize = 30;

/// `flakeMonitor` of a job flake, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct FlakeMonitor {
    /// How late a run may be beyond its next fire time and time limit.
    pub grace: Duration,
    /// `false` leaves `FL-<flake>-failed` out.
    pub failed_alarm: bool,
    /// Sorted and without duplicates, as for `flakeAlarms`.
    pub ok_actions: Vec<String>,
    pub alarm_actions: Vec<String>,
    pub insufficient_data_actions: Vec<String>,
    pub actions_enabled: bool,
    pub tags: BTreeMap<String, String>,
}

/// What `flakeMonitor` is checked against in the rest of the file.
pub struct MonitoredFlake<'a> {
    pub name: Option<&'a str>,
    pub kind: FlakeKind,
    pub dimensions: Option<&'a BTreeMap<String, String>>,
}

/// `None` when the flake has no `flakeMonitor`, or when it is invalid (the problems say why).
pub fn parse_monitor(fields: &Fields, flake: &MonitoredFlake, context: &Context, problems: &mut Problems) -> Option<FlakeMonitor> {
    let object = fields.object("flakeMonitor", problems)?;
    let prefix = "flakeMonitor.";
    warn_unknown(object, MONITOR_KEYS, prefix, problems);
    let monitor_fields = Fields::new(object, prefix);
    let mut ok = true;

    if flake.kind != FlakeKind::Job {
        problems.error(
            "flakeMonitor",
            "watches a job's runs, and this is a metric flake: set \"flakeType\": \"job\", or remove flakeMonitor \
             (put alarms on a metric in flakeAlarms)",
        );
        ok = false;
    }
    if fields.raw("flakeMetricNamespace").is_none() {
        problems.error(
            "flakeMetricNamespace",
            "is required with flakeMonitor: the namespace JobSuccess, JobDuration and JobOverdueSeconds go to, such as \"Ops/Jobs\"",
        );
        ok = false;
    }
    ok &= check_dimensions(flake.dimensions, problems);
    if let Some(name) = flake.name {
        ok &= check_alarm_name_length(name, problems);
    }

    let grace = parse_grace(&monitor_fields, problems);
    let failed_alarm = monitor_fields.boolean("failedAlarm", problems);
    let failed_alarm = if monitor_fields.raw("failedAlarm").is_some() { failed_alarm } else { Some(true) };
    let actions_enabled = monitor_fields.boolean("alarmActionsEnabled", problems);
    let actions_enabled = if monitor_fields.raw("alarmActionsEnabled").is_some() { actions_enabled } else { Some(true) };
    let endpoints = parse_endpoints(&monitor_fields, context, problems);
    let tags = parse_tags(&monitor_fields, problems);

    let (ok_actions, alarm_actions, insufficient_data_actions) = endpoints?;
    ok.then_some(())?;
    Some(FlakeMonitor {
        grace: grace?,
        failed_alarm: failed_alarm?,
        ok_actions,
        alarm_actions,
        insufficient_data_actions,
        actions_enabled: actions_enabled?,
        tags: tags?,
    })
}

/// A duration such as `"30m"` or `"1h30m"`, or a number of seconds (`300`, `"300"`).
fn parse_grace(fields: &Fields, problems: &mut Problems) -> Option<Duration> {
    let path = fields.path("grace");
    let hint = "grace is a duration such as \"90s\", \"30m\" or \"1h30m\", or a number of seconds; remove it for the default 5m";
    let seconds = match fields.raw("grace") {
        None => return Some(DEFAULT_GRACE),
        Some(Value::Number(number)) => number.as_f64(),
        Some(Value::String(text)) => match text.trim().parse::<f64>() {
            Ok(seconds) => Some(seconds),
            Err(_) => {
                return parse_duration(text, false)
                    .map_err(|reason| problems.error(path.clone(), format!("{} ({hint})", shorten(&reason, 120))))
                    .ok();
            }
        },
        Some(other) => {
            problems.error(path, format!("must be a duration, got {} ({hint})", describe(other)));
            return None;
        }
    };
    match seconds {
        Some(seconds) if seconds.is_finite() && seconds >= 0.0 && seconds <= u32::MAX as f64 => Some(Duration::from_secs_f64(seconds)),
        _ => {
            problems.error(path, format!("is not a duration of zero or more seconds ({hint})"));
            None
        }
    }
}

/// The values carry `Job=<flakeName>`: the flake cannot use that name itself, and has one
/// dimension fewer to spare.
fn check_dimensions(dimensions: Option<&BTreeMap<String, String>>, problems: &mut Problems) -> bool {
    let Some(dimensions) = dimensions else { return true };
    let mut ok = true;
    if dimensions.contains_key(JOB_DIMENSION) {
        problems.error(
            format!("flakeDimensions.{JOB_DIMENSION}"),
            "is set by flakeMonitor (Job=<flakeName> on every value and alarm); rename this dimension or remove it",
        );
        ok = false;
    }
    if dimensions.len() >= MAX_DIMENSIONS {
        problems.error(
            "flakeDimensions",
            format!(
                "has {} dimensions; with flakeMonitor's Job dimension CloudWatch allows at most {} here",
                dimensions.len(),
                MAX_DIMENSIONS - 1
            ),
        );
        ok = false;
    }
    ok
}

/// The monitor's alarm names must fit CloudWatch's limit and not be declared in `flakeAlarms` too.
fn check_alarm_name_length(flake_name: &str, problems: &mut Problems) -> bool {
    let longest = OVERDUE.name(flake_name);
    if longest.chars().count() <= MAX_ALARM_NAME {
        return true;
    }
    problems.error(
        "flakeName",
        format!(
            "flakeMonitor's alarm \"{}\" would be {} characters; CloudWatch allows {MAX_ALARM_NAME}: shorten flakeName",
            shorten(&longest, 60),
            longest.chars().count()
        ),
    );
    false
}

/// Leaves out, with an error on each, the entries of `flakeAlarms` that take the name of one of
/// flakeMonitor's own alarms: like any bad alarm, such an entry is left out while the flake, its
/// monitor and its other alarms go on.
pub fn drop_alarms_named_like_the_monitors(flake_name: &str, alarms: &mut Vec<Alarm>, problems: &mut Problems) {
    let reserved: Vec<String> = declared_alarms(true).iter().map(|declared| declared.name(flake_name)).collect();
    let mut index = 0;
    alarms.retain(|alarm| {
        let clashes = reserved.contains(&alarm.name);
        if clashes {
            problems.error(
                format!("flakeAlarms[{index}].alarmName"),
                format!("\"{}\" is one of flakeMonitor's own alarms; give this alarm another name", alarm.name),
            );
        }
        index += 1;
        !clashes
    });
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use serde_json::{Value, json};

    use crate::flake::{Context, Flake, parse_flake};
    use crate::placeholders::HostFacts;

    use super::*;

    fn parse(value: Value) -> (Option<Flake>, Vec<String>) {
        let facts = HostFacts::local();
        let context = Context { default_zone: chrono_tz::UTC, facts: &facts };
        let (flake, problems) = parse_flake(Path::new("flakes/backup.json"), &value.to_string(), &context);
        (flake, problems.into_iter().map(|problem| problem.to_string()).collect())
    }

    fn job(monitor: Value) -> Value {
        json!({
            "flakeName": "backup",
            "flakeType": "job",
            "flakeCronstring": "0 3 * * *",
            "flakeCommand": "true",
            "flakeMetricNamespace": "Ops/Jobs",
            "flakeMonitor": monitor,
        })
    }

    fn monitor_of(value: Value) -> FlakeMonitor {
        let (flake, problems) = parse(value);
        flake.unwrap_or_else(|| panic!("{problems:?}")).monitor.expect("flakeMonitor is kept")
    }

    fn errors_of(value: Value) -> Vec<String> {
        let (flake, problems) = parse(value);
        assert!(flake.is_none(), "accepted: {problems:?}");
        problems.into_iter().filter(|problem| !problem.contains(": warning: ")).collect()
    }

    fn has(errors: &[String], field: &str, words: &str) -> bool {
        errors.iter().any(|error| error.starts_with(&format!("{field}: ")) && error.contains(words))
    }

    #[test]
    fn an_empty_monitor_takes_the_defaults() {
        let monitor = monitor_of(job(json!({})));
        assert_eq!(monitor.grace, DEFAULT_GRACE);
        assert!(monitor.failed_alarm && monitor.actions_enabled);
        assert!(monitor.alarm_actions.is_empty() && monitor.tags.is_empty());
        let (flake, _) = parse(json!({"flakeName": "x", "flakeType": "job", "flakeCronstring": "@hourly", "flakeCommand": "true"}));
        assert_eq!(flake.unwrap().monitor, None, "absent means off");
    }

    #[test]
    fn every_field_is_read_and_strings_stand_for_numbers_and_booleans() {
        let monitor = monitor_of(job(json!({
            "grace": "1h30m",
            "failedAlarm": "false",
            "alarmActionsEnabled": false,
            "alarmEndpoints": {"alarm": ["arn:aws:sns:eu-west-1:123456789012:b", "arn:aws:sns:eu-west-1:123456789012:a"], "ok": "arn:aws:sns:eu-west-1:123456789012:a"},
            "alarmTags": {"team": "dba", "tier": 1},
            "_note": "comments are fine",
        })));
        assert_eq!(monitor.grace, Duration::from_secs(5400));
        assert!(!monitor.failed_alarm && !monitor.actions_enabled);
        assert_eq!(monitor.alarm_actions, ["arn:aws:sns:eu-west-1:123456789012:a", "arn:aws:sns:eu-west-1:123456789012:b"]);
        assert_eq!(monitor.ok_actions, ["arn:aws:sns:eu-west-1:123456789012:a"]);
        assert_eq!(monitor.tags.get("tier").map(String::as_str), Some("1"));
        assert_eq!(monitor_of(job(json!({"grace": 90}))).grace, Duration::from_secs(90));
        assert_eq!(monitor_of(job(json!({"grace": "120"}))).grace, Duration::from_secs(120));
        assert_eq!(monitor_of(job(json!({"grace": "0s"}))).grace, Duration::ZERO);
    }

    #[test]
    fn a_grace_that_is_not_a_duration_is_a_clear_error() {
        for grace in [json!("soon"), json!("5 minutes"), json!(-1), json!(true), json!("10d")] {
            let errors = errors_of(job(json!({"grace": grace})));
            assert!(has(&errors, "flakeMonitor.grace", "duration"), "{grace}: {errors:?}");
            assert!(errors.iter().any(|error| error.contains("30m")), "says what to write: {errors:?}");
        }
    }

    #[test]
    fn a_metric_flake_cannot_be_monitored() {
        let mut value = job(json!({}));
        value["flakeType"] = json!("metric");
        let errors = errors_of(value);
        assert!(has(&errors, "flakeMonitor", "metric flake"), "{errors:?}");
        let mut value = job(json!({}));
        value.as_object_mut().unwrap().remove("flakeType");
        assert!(has(&errors_of(value), "flakeMonitor", "flakeType"));
    }

    #[test]
    fn a_monitored_job_needs_a_namespace() {
        let mut value = job(json!({}));
        value.as_object_mut().unwrap().remove("flakeMetricNamespace");
        let errors = errors_of(value);
        assert!(has(&errors, "flakeMetricNamespace", "required with flakeMonitor"), "{errors:?}");
    }

    #[test]
    fn the_alarm_fields_are_checked_by_the_flake_alarms_rules() {
        let errors =
            errors_of(job(json!({"alarmEndpoints": {"alarm": "mailto:ops"}, "alarmTags": {"aws:x": "y"}, "failedAlarm": "maybe"})));
        assert!(has(&errors, "flakeMonitor.alarmEndpoints.alarm", "not an action ARN"), "{errors:?}");
        assert!(has(&errors, "flakeMonitor.alarmTags.aws:x", "reserved"), "{errors:?}");
        assert!(has(&errors, "flakeMonitor.failedAlarm", "true or false"), "{errors:?}");
        assert!(errors_of(job(json!("yes"))).iter().any(|error| error.starts_with("flakeMonitor: must be an object")));
        let (_, problems) = parse(job(json!({"grase": "5m"})));
        assert!(problems.iter().any(|problem| problem.contains("flakeMonitor.grase") && problem.contains("did you mean \"grace\"")));
    }

    #[test]
    fn the_job_dimension_and_the_monitors_alarm_names_are_reserved() {
        let mut value = job(json!({}));
        value["flakeDimensions"] = json!({"Job": "nightly"});
        assert!(has(&errors_of(value), "flakeDimensions.Job", "set by flakeMonitor"));

        let mut value = job(json!({}));
        value["flakeDimensions"] = Value::Object((0..30).map(|i| (format!("d{i}"), json!("v"))).collect());
        assert!(has(&errors_of(value), "flakeDimensions", "at most 29"));

        // Like any bad alarm, one named like the monitor's own is left out; the rest goes on.
        let mut value = job(json!({}));
        value["flakeAlarms"] = json!([
            {"alarmName": "overdue", "alarmThreshold": 1, "alarmOperator": ">"},
            {"alarmName": "slow", "alarmThreshold": 1, "alarmOperator": ">"}
        ]);
        let (flake, problems) = parse(value);
        assert!(problems.iter().any(|problem| problem.starts_with("flakeAlarms[0].alarmName: ") && problem.contains("flakeMonitor's own")));
        let flake = flake.expect("the flake goes on without the bad alarm");
        assert!(flake.monitor.is_some());
        assert_eq!(flake.alarms.iter().map(|alarm| alarm.name.as_str()).collect::<Vec<_>>(), ["FL-backup-slow"]);
    }

    #[test]
    fn the_longest_flake_name_still_fits_the_overdue_alarm() {
        // flakeName allows 200 characters: FL-<200>-overdue is 211, within CloudWatch's 255.
        let mut value = job(json!({}));
        value["flakeName"] = json!("b".repeat(200));
        assert_eq!(monitor_of(value).grace, DEFAULT_GRACE);
        let mut problems = Problems::default();
        assert!(!check_alarm_name_length(&"b".repeat(250), &mut problems));
        let problems: Vec<String> = problems.into_vec().into_iter().map(|problem| problem.to_string()).collect();
        assert!(problems[0].contains("261 characters") && problems[0].contains("shorten flakeName"), "{problems:?}");
    }
}
