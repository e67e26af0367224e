//! Turning the text of one flake file into a [`Flake`], or into every problem it has.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Map, Value};

use super::aggregate::{check_alarm_periods, parse_aggregate};
use super::alarm::parse_alarms;
use super::alarm_kinds::check_alarms_flake;
use super::annotations::parse_annotations;
use super::container::parse_container;
use super::context::Context;
use super::fields::{Fields, shorten};
use super::formats::{parse_output, parse_scrape};
use super::keys::{FLAKE_KEYS, warn_unknown};
use super::model::{Alarm, Flake, FlakeKind, FlakeScope, MetricTarget, Watch};
use super::monitor::{MonitoredFlake, drop_alarms_named_like_the_monitors, parse_monitor};
use super::problem::{Problem, Problems};
use super::shared_fields::{namespace_problem, parse_dimensions};
use super::units::{UNITS, canonical_unit};
use crate::schedule::Schedule;

/// Longest `flakeTimeout` accepted: a day. Longer runs are not what a metric schedule is for.
const MAX_TIMEOUT_SECONDS: f64 = 86_400.0;
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// The validation result of one file: the flake if it has no errors, and every finding.
pub fn parse_flake(path: &Path, text: &str, context: &Context) -> (Option<Flake>, Vec<Problem>) {
    let mut problems = Problems::default();
    let value: Value = match serde_json::from_str(text) {
        Ok(value) => value,
        Err(error) => {
            problems.error("file", json_error_message(&error));
            return (None, problems.into_vec());
        }
    };
    let Value::Object(object) = value else {
        problems.error("file", "must hold one JSON object, { \"flakeName\": ..., ... }");
        return (None, problems.into_vec());
    };
    let flake = validate_object(path, &object, context, &mut problems);
    let flake = if problems.has_flake_errors() { None } else { flake };
    (flake, problems.into_vec())
}

/// `invalid JSON at line 3, column 5: expected ...`, without serde_json's own position suffix.
fn json_error_message(error: &serde_json::Error) -> String {
    let text = error.to_string();
    let reason = text.rsplit_once(" at line ").map_or(text.as_str(), |(reason, _)| reason);
    format!("invalid JSON at line {}, column {}: {reason}", error.line(), error.column())
}

fn validate_object(path: &Path, object: &Map<String, Value>, context: &Context, problems: &mut Problems) -> Option<Flake> {
    warn_unknown(object, FLAKE_KEYS, "", problems);
    let fields = Fields::new(object, "");

    let name = fields.strict_text("flakeName", problems);
    let name = fields.require("flakeName", name, "a unique name such as \"disk-free-root\"", problems);
    let name = name.filter(|name| check_flake_name(name, problems));

    let kind = parse_kind(&fields, problems);
    let scraping = kind == FlakeKind::Scrape;
    let (schedule, command, metric) = if kind == FlakeKind::Alarms {
        let nothing_runs = check_alarms_flake(&fields, problems);
        (nothing_runs.then_some(Schedule::Never), nothing_runs.then(String::new), None)
    } else {
        let schedule = parse_schedule(&fields, context, problems);
        // A scrape flake GETs flakeUrl instead of running a command.
        let command = if scraping { Some(String::new()) } else { parse_command(&fields, problems) };
        (schedule, command, parse_metric_target(&fields, name.as_deref(), kind, context, problems))
    };
    let output = parse_output(&fields, scraping, problems);
    let scrape = parse_scrape(&fields, scraping, context, problems);
    let region = parse_region(&fields, problems);
    let timeout = parse_timeout(&fields, schedule.as_ref(), problems);
    let environment = parse_environment(&fields, problems);
    let working_directory = fields.strict_text("flakeWorkingDirectory", problems).and_then(|dir| {
        if dir.trim().is_empty() {
            problems.error("flakeWorkingDirectory", "is empty; remove it to use the daemon's --workdir, or name a directory");
            None
        } else {
            Some(PathBuf::from(dir))
        }
    });
    let enabled = fields.boolean("flakeEnabled", problems).unwrap_or(true);
    let container = parse_container(&fields, path, kind, working_directory.as_deref(), problems);
    let scope = parse_scope(&fields, problems);
    if scope == Some(FlakeScope::Cluster) && schedule.as_ref().is_some_and(Schedule::is_reboot) {
        // A member holds no claim yet when its daemon starts, so a cluster @reboot flake would
        // run nowhere: refused rather than silently never run.
        problems.error(
            "flakeScope",
            "is \"cluster\" with flakeCronstring \"@reboot\", which would run nowhere (a daemon holds no cluster flake when it starts); \
             use \"host\" to run it as each daemon starts, or give it a schedule",
        );
    }
    if scope == Some(FlakeScope::Cluster) {
        warn_of_member_specific_placeholders(&fields, problems);
    }
    if scope == Some(FlakeScope::Cluster) && kind == FlakeKind::Alarms {
        // Nothing of it runs, so no member claims it: its alarms stay every member's, as a host's.
        problems.warning(
            "flakeScope",
            "\"cluster\" has no effect on an alarms-only flake: nothing runs, so no member holds it and every daemon keeps its \
             alarms as a host flake's; remove it, or put the alarms on the cluster flake whose metric they watch",
        );
    }
    let alarms = parse_alarms(&fields, name.as_deref(), metric.as_ref(), output.as_ref().map(|output| output.format), context, problems);
    if let Some(metric) = &metric
        && let Some(window) = metric.aggregate_seconds
    {
        // Only alarms on what this flake publishes see its windows.
        let own: Vec<Alarm> = alarms
            .iter()
            .filter(|alarm| matches!(&alarm.watch, Watch::Metric(watched) if watched.namespace == metric.namespace))
            .cloned()
            .collect();
        check_alarm_periods(window, &own, problems);
    }
    let annotations = parse_annotations(&fields, problems);
    let monitored = MonitoredFlake { name: name.as_deref(), kind, dimensions: metric.as_ref().map(|metric| &metric.dimensions) };
    let monitor = parse_monitor(&fields, &monitored, context, problems);
    let mut alarms = alarms;
    if let (Some(_), Some(name)) = (&monitor, &name) {
        drop_alarms_named_like_the_monitors(name, &mut alarms, problems);
    }

    Some(Flake {
        name: name?,
        source: path.to_path_buf(),
        schedule: schedule?,
        command: command?,
        kind,
        output: output?,
        scrape,
        metric,
        region,
        alarms,
        timeout: timeout?,
        environment: environment?,
        working_directory,
        enabled,
        annotations: annotations?,
        monitor,
        container: container.ok()?,
        scope: scope?,
    })
}

/// A cluster flake runs on whichever member holds it: a placeholder that differs by member in
/// its dimensions or alarms gives other series and other alarms each time it moves.
fn warn_of_member_specific_placeholders(fields: &Fields, problems: &mut Problems) {
    for key in ["flakeDimensions", "flakeAlarms"] {
        let Some(value) = fields.raw(key) else { continue };
        if let Some(placeholder) = crate::placeholders::member_specific_placeholder(&value.to_string()) {
            problems.warning(
                key,
                format!(
                    "uses {placeholder}, which differs on each member, in a cluster flake: it runs on whichever member holds it, \
                     so its series and alarms change each time it moves; use values all members share"
                ),
            );
        }
    }
}

fn parse_scope(fields: &Fields, problems: &mut Problems) -> Option<FlakeScope> {
    match fields.strict_text("flakeScope", problems).as_deref() {
        None if fields.raw("flakeScope").is_some() => None,
        None | Some("host") => Some(FlakeScope::Host),
        Some("cluster") => Some(FlakeScope::Cluster),
        Some(other) => {
            problems.error(
                "flakeScope",
                format!(
                    "is \"{}\"; use \"host\" (every daemon runs it) or \"cluster\" (one member of --cluster runs it)",
                    shorten(other, 40)
                ),
            );
            None
        }
    }
}

fn parse_schedule(fields: &Fields, context: &Context, problems: &mut Problems) -> Option<Schedule> {
    let cronstring = fields.strict_text("flakeCronstring", problems);
    let cronstring = fields.require("flakeCronstring", cronstring, "a schedule such as \"*/5 * * * *\" or \"@every 1m\"", problems);
    cronstring
        .and_then(|text| Schedule::parse(&text, context.default_zone).map_err(|reason| problems.error("flakeCronstring", reason)).ok())
}

/// `^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$` and no `..`: the name becomes a file name and a metric name.
fn check_flake_name(name: &str, problems: &mut Problems) -> bool {
    let bytes = name.as_bytes();
    let valid = !bytes.is_empty()
        && bytes.len() <= 200
        && bytes[0].is_ascii_alphanumeric()
        && bytes.iter().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        && !name.contains("..");
    if !valid {
        problems.error(
            "flakeName",
            format!(
                "\"{}\" is not a valid flake name: use 1-200 characters from A-Z a-z 0-9 . _ - starting with a letter or digit, \
                 without \"..\" (it names the metric, the log file and the alarms)",
                shorten(name, 60)
            ),
        );
    }
    valid
}

fn parse_command(fields: &Fields, problems: &mut Problems) -> Option<String> {
    let command = fields.strict_text("flakeCommand", problems);
    let command = fields.require("flakeCommand", command, "a shell command such as \"df --output=pcent / | tail -1\"", problems);
    command.filter(|command| {
        let blank = command.trim().is_empty();
        if blank {
            problems.error("flakeCommand", "is empty; write the shell command to run");
        }
        !blank
    })
}

fn parse_kind(fields: &Fields, problems: &mut Problems) -> FlakeKind {
    match fields.strict_text("flakeType", problems) {
        None => FlakeKind::Metric,
        Some(text) if text.trim().eq_ignore_ascii_case("metric") => FlakeKind::Metric,
        Some(text) if text.trim().eq_ignore_ascii_case("job") => FlakeKind::Job,
        Some(text) if text.trim().eq_ignore_ascii_case("alarms") => FlakeKind::Alarms,
        Some(text) if text.trim().eq_ignore_ascii_case("scrape") => FlakeKind::Scrape,
        Some(text) => {
            problems.error(
                "flakeType",
                format!(
                    "\"{}\" is not a flake type; use \"metric\", \"job\" or \"scrape\" (or \"alarms\" for a flake that only declares alarms)",
                    shorten(&text, 40)
                ),
            );
            FlakeKind::Metric
        }
    }
}

fn parse_metric_target(
    fields: &Fields,
    flake_name: Option<&str>,
    kind: FlakeKind,
    context: &Context,
    problems: &mut Problems,
) -> Option<MetricTarget> {
    let namespace = fields.strict_text("flakeMetricNamespace", problems);
    if namespace.is_none() {
        if kind != FlakeKind::Job {
            fields.require::<()>(
                "flakeMetricNamespace",
                None,
                "the CloudWatch namespace to publish to, such as \"MyCompany/Hosts\"",
                problems,
            );
        } else {
            for key in ["flakeUnit", "flakeMetricName", "flakeDimensions", "flakeStorageResolution", "flakeAggregate"] {
                if fields.raw(key).is_some() {
                    problems.warning(key, "is ignored: this job has no flakeMetricNamespace, so its output is never published");
                }
            }
        }
        return None;
    }
    let namespace = namespace.filter(|namespace| check_namespace(namespace, problems));

    let unit = match fields.strict_text("flakeUnit", problems) {
        None => Some("None"),
        Some(text) => canonical_unit(&text).or_else(|| {
            problems.error("flakeUnit", format!("\"{}\" is not a CloudWatch unit; use one of {}", shorten(&text, 40), UNITS.join(", ")));
            None
        }),
    };

    let metric_name = match fields.strict_text("flakeMetricName", problems) {
        Some(name) if name.is_empty() || name.chars().count() > 255 || name.chars().any(char::is_control) => {
            problems.error("flakeMetricName", "must be 1-255 characters without control characters; remove it to use flakeName");
            None
        }
        Some(name) => Some(name),
        None => flake_name.map(str::to_string),
    };

    let storage_resolution = match fields.integer("flakeStorageResolution", problems) {
        None => Some(60),
        Some(value @ (1 | 60)) => Some(value as i32),
        Some(value) => {
            problems
                .error("flakeStorageResolution", format!("{value} is not a storage resolution; use 60 (standard) or 1 (high resolution)"));
            None
        }
    };

    let aggregate_seconds = parse_aggregate(fields, storage_resolution, problems);
    let dimensions = parse_dimensions(fields, "flakeDimensions", context, problems);
    Some(MetricTarget {
        namespace: namespace?,
        metric_name: metric_name?,
        dimensions: dimensions?,
        unit: unit?,
        storage_resolution: storage_resolution?,
        aggregate_seconds: aggregate_seconds?,
    })
}

/// Records a problem if `namespace` is not one CloudWatch accepts.
fn check_namespace(namespace: &str, problems: &mut Problems) -> bool {
    let reason = namespace_problem(namespace);
    if let Some(reason) = &reason {
        problems.error("flakeMetricNamespace", reason.clone());
    }
    reason.is_none()
}

/// Region names such as `eu-west-1` or `us-gov-west-1`.
fn parse_region(fields: &Fields, problems: &mut Problems) -> Option<String> {
    let region = fields.strict_text("flakeRegion", problems)?;
    let region = region.trim().to_string();
    let valid = region.len() <= 50
        && region.starts_with(|c: char| c.is_ascii_lowercase())
        && region.ends_with(|c: char| c.is_ascii_digit())
        && region.contains('-')
        && region.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !valid {
        problems.error(
            "flakeRegion",
            format!(
                "\"{}\" is not an AWS region name; write one such as \"eu-west-1\", or remove it to use the default region",
                shorten(&region, 40)
            ),
        );
        return None;
    }
    Some(region)
}

fn parse_timeout(fields: &Fields, schedule: Option<&Schedule>, problems: &mut Problems) -> Option<Duration> {
    match fields.number("flakeTimeout", problems) {
        Some(seconds) if seconds > 0.0 && seconds <= MAX_TIMEOUT_SECONDS => Some(Duration::from_secs_f64(seconds)),
        Some(seconds) => {
            problems.error(
                "flakeTimeout",
                format!("{seconds} is out of range; use a number of seconds above 0 and at most {MAX_TIMEOUT_SECONDS}"),
            );
            None
        }
        None if fields.raw("flakeTimeout").is_some() => None,
        None => Some(schedule.and_then(Schedule::interval).map_or(DEFAULT_TIMEOUT, |interval| interval.min(DEFAULT_TIMEOUT))),
    }
}

fn parse_environment(fields: &Fields, problems: &mut Problems) -> Option<BTreeMap<String, String>> {
    let Some(object) = fields.object("flakeEnvironment", problems) else {
        return if fields.raw("flakeEnvironment").is_some() { None } else { Some(BTreeMap::new()) };
    };
    let env_fields = Fields::new(object, "flakeEnvironment.");
    let mut environment = BTreeMap::new();
    let mut ok = true;
    for key in object.keys() {
        if key.is_empty() || key.contains('=') || key.contains('\0') {
            problems.error(env_fields.path(key), "is not a valid environment variable name (it must be non-empty, without = or NUL)");
            ok = false;
        }
        match env_fields.text(key, problems) {
            Some(value) if value.contains('\0') => {
                problems.error(env_fields.path(key), "must not contain a NUL character");
                ok = false;
            }
            Some(value) => {
                environment.insert(key.clone(), value);
            }
            None => ok = false,
        }
    }
    ok.then_some(environment)
}
