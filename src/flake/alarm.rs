//! Validating `flakeAlarms` entries by CloudWatch's own rules for PutMetricAlarm.

use serde_json::Value;

use super::alarm_kinds::{FlakeMetric, Kind, forbid, parse_band_operator, parse_watch};
use super::composite;
use super::context::Context;
use super::fields::{Fields, describe, shorten};
use super::formats::{OutputFormat, alarm_metric_problem};
use super::keys::{ALARM_KEYS, warn_unknown};
use super::model::{Alarm, MetricTarget, Statistic, Watch};
use super::problem::Problems;
use super::shared_fields::{MAX_ALARM_NAME, parse_endpoints, parse_period, parse_statistic, parse_tags};

const MAX_DESCRIPTION: usize = 1024;

const COMPARISONS: [(&str, &str); 4] = [
    ("GreaterThanThreshold", ">"),
    ("GreaterThanOrEqualToThreshold", ">="),
    ("LessThanThreshold", "<"),
    ("LessThanOrEqualToThreshold", "<="),
];
const TREAT_MISSING: [&str; 4] = ["missing", "breaching", "notBreaching", "ignore"];

/// Every valid alarm of `flakeAlarms`; problems are recorded for the invalid ones.
pub fn parse_alarms(
    fields: &Fields,
    flake_name: Option<&str>,
    metric: Option<&MetricTarget>,
    output: Option<OutputFormat>,
    context: &Context,
    problems: &mut Problems,
) -> Vec<Alarm> {
    let Some(items) = fields.list("flakeAlarms", problems) else {
        return Vec::new();
    };
    let flake_metric = match metric {
        Some(metric) => FlakeMetric::Published(metric),
        // Its errors are reported already, and make the flake invalid.
        None if fields.raw("flakeMetricNamespace").is_some()
            && !fields.raw("flakeType").and_then(|t| t.as_str()).is_some_and(|t| t.trim().eq_ignore_ascii_case("alarms")) =>
        {
            FlakeMetric::Broken
        }
        None => FlakeMetric::Nothing,
    };
    let mut alarms: Vec<(usize, Alarm)> = Vec::new();
    // alarmName as written of each entry left out here, so a composite naming one is told why.
    let mut left_out: Vec<String> = Vec::new();
    for (index, item) in items.iter().enumerate() {
        let prefix = format!("flakeAlarms[{index}].");
        let Value::Object(object) = item else {
            problems.error(
                format!("flakeAlarms[{index}]"),
                format!("must be an object with alarmName, alarmThreshold, alarmOperator, ...; got {}", describe(item)),
            );
            continue;
        };
        warn_unknown(object, ALARM_KEYS, &prefix, problems);
        // SPEC 8: on a flake that yields several metrics an alarm must say which it watches.
        let names_metric = ["alarmMetricName", "alarmExpression", "alarmRule"].iter().any(|key| object.contains_key(*key));
        let written_name = object.get("alarmName").and_then(Value::as_str).map(str::to_string);
        if let Some(reason) = output.and_then(|format| alarm_metric_problem(format, names_metric)) {
            problems.error(format!("flakeAlarms[{index}]"), reason);
            left_out.extend(written_name);
            continue;
        }
        let alarm_fields = Fields::new(object, prefix);
        let parsed = parse_alarm(&alarm_fields, flake_name, flake_metric, context, problems);
        if parsed.is_none() {
            left_out.extend(written_name);
        }
        if let Some(alarm) = parsed {
            if alarms.iter().any(|(_, other)| other.name == alarm.name) {
                problems.error(
                    alarm_fields.path("alarmName"),
                    format!("\"{}\" is declared twice in this flake; alarm names must be unique", alarm.name),
                );
            } else {
                alarms.push((index, alarm));
            }
        }
    }
    match flake_name {
        Some(flake_name) => composite::resolve(alarms, &left_out, flake_name, problems),
        None => Vec::new(),
    }
}

fn parse_alarm(
    fields: &Fields,
    flake_name: Option<&str>,
    metric: FlakeMetric,
    context: &Context,
    problems: &mut Problems,
) -> Option<Alarm> {
    let resolution = metric.target().map_or(60, |metric| metric.storage_resolution);
    let name = parse_name(fields, flake_name, context, problems);
    let kind = Kind::of(fields);
    if kind == Kind::Composite {
        return parse_composite(fields, name, context, problems);
    }

    let description = parse_description(fields, problems);
    let description_ok = description.is_some();
    let description = description.unwrap_or_default();

    let (threshold, comparison) = if kind == Kind::AnomalyBand {
        let no_threshold = forbid(fields, kind, &["alarmThreshold"], "the band is the threshold", problems);
        (no_threshold.then_some(0.0), parse_band_operator(fields, problems))
    } else {
        parse_threshold(fields, problems)
    };

    let period = parse_period(fields, "alarmPeriodLength", resolution, problems);
    let evaluation_periods = positive(fields, "alarmPeriods", 1, problems);
    let datapoints = match fields.raw("alarmDatapoints") {
        None => evaluation_periods,
        Some(_) => positive(fields, "alarmDatapoints", 1, problems),
    };
    let counts_ok = check_evaluation_window(fields, period, evaluation_periods, datapoints, problems);

    let statistic = parse_statistic(fields, "alarmStatistic", problems);
    let watch = parse_watch(kind, fields, metric, statistic.as_ref(), period, context, problems);
    let treat_missing_data = match fields.strict_text("alarmTreatMissingData", problems) {
        None => Some("missing"),
        Some(text) => TREAT_MISSING.iter().copied().find(|known| known.eq_ignore_ascii_case(text.trim())).or_else(|| {
            problems.error(
                fields.path("alarmTreatMissingData"),
                format!("\"{}\" is not a missing-data treatment; use missing, breaching, notBreaching or ignore", shorten(&text, 40)),
            );
            None
        }),
    };
    let endpoints = parse_endpoints(fields, context, problems);
    let actions_enabled = fields.boolean("alarmActionsEnabled", problems).unwrap_or(true);
    let tags = parse_tags(fields, problems);

    let (ok_actions, alarm_actions, insufficient_data_actions) = endpoints?;
    (description_ok && counts_ok).then_some(())?;
    Some(Alarm {
        name: name?,
        description,
        threshold: threshold?,
        comparison: comparison?,
        period: period?,
        evaluation_periods: evaluation_periods?,
        datapoints_to_alarm: datapoints?,
        statistic: statistic?,
        treat_missing_data: treat_missing_data?,
        ok_actions,
        alarm_actions,
        insufficient_data_actions,
        actions_enabled,
        tags: tags?,
        watch: watch?,
    })
}

/// A composite alarm: a rule, a description, actions and tags; nothing about metrics.
fn parse_composite(fields: &Fields, name: Option<String>, context: &Context, problems: &mut Problems) -> Option<Alarm> {
    let description = parse_description(fields, problems);
    let kind = Kind::Composite;
    let no_metric = forbid(
        fields,
        kind,
        &[
            "alarmThreshold",
            "alarmOperator",
            "alarmNamespace",
            "alarmMetricName",
            "alarmDimensions",
            "alarmExpression",
            "alarmMetrics",
            "alarmAnomalyBand",
            "alarmPeriodLength",
            "alarmPeriods",
            "alarmDatapoints",
            "alarmStatistic",
            "alarmTreatMissingData",
        ],
        "it watches other alarms' states, not a metric",
        problems,
    );
    let rule = composite::parse_rule(fields, context, problems);
    let endpoints = parse_endpoints(fields, context, problems);
    let actions_enabled = fields.boolean("alarmActionsEnabled", problems).unwrap_or(true);
    let tags = parse_tags(fields, problems);
    let (ok_actions, alarm_actions, insufficient_data_actions) = endpoints?;
    no_metric.then_some(())?;
    Some(Alarm {
        name: name?,
        description: description?,
        threshold: 0.0,
        comparison: "",
        period: 0,
        evaluation_periods: 0,
        datapoints_to_alarm: 0,
        statistic: Statistic::Standard("Average"),
        treat_missing_data: "missing",
        ok_actions,
        alarm_actions,
        insufficient_data_actions,
        actions_enabled,
        tags: tags?,
        watch: Watch::Composite { rule: rule? },
    })
}

fn parse_description(fields: &Fields, problems: &mut Problems) -> Option<String> {
    let description = fields.text("alarmDescription", problems).unwrap_or_default();
    if description.chars().count() > MAX_DESCRIPTION {
        problems.error(
            fields.path("alarmDescription"),
            format!("is {} characters long; CloudWatch allows at most {MAX_DESCRIPTION}", description.chars().count()),
        );
        return None;
    }
    Some(description)
}

/// `alarmThreshold` and `alarmOperator` of a single-metric or metric-math alarm.
fn parse_threshold(fields: &Fields, problems: &mut Problems) -> (Option<f64>, Option<&'static str>) {
    let threshold = fields.number("alarmThreshold", problems);
    let threshold = fields.require("alarmThreshold", threshold, "the number the metric is compared with", problems);

    let comparison = fields.strict_text("alarmOperator", problems);
    let comparison = fields.require(
        "alarmOperator",
        comparison,
        "GreaterThanThreshold, GreaterThanOrEqualToThreshold, LessThanThreshold or LessThanOrEqualToThreshold (or >, >=, <, <=)",
        problems,
    );
    let comparison = comparison.and_then(|text| {
        let found = COMPARISONS.iter().find(|(name, symbol)| name.eq_ignore_ascii_case(text.trim()) || *symbol == text.trim());
        if found.is_none() {
            problems.error(
                fields.path("alarmOperator"),
                format!("\"{}\" is not a comparison; use GreaterThanThreshold (>), GreaterThanOrEqualToThreshold (>=), LessThanThreshold (<) or LessThanOrEqualToThreshold (<=)", shorten(&text, 40)),
            );
        }
        found.map(|(name, _)| *name)
    });
    (threshold, comparison)
}

fn parse_name(fields: &Fields, flake_name: Option<&str>, context: &Context, problems: &mut Problems) -> Option<String> {
    let template = fields.text("alarmName", problems);
    let template = fields.require("alarmName", template, "a short name such as \"high\" or \"down-${hostname}\"", problems)?;
    let expanded = context
        .expand(&template, &fields.path("alarmName"), problems)
        .map_err(|reason| problems.error(fields.path("alarmName"), reason))
        .ok()?;
    if expanded.is_empty() || expanded.chars().any(char::is_control) {
        problems.error(fields.path("alarmName"), "must be non-empty and free of control characters");
        return None;
    }
    let full = format!("FL-{}-{expanded}", flake_name?);
    if full.chars().count() > MAX_ALARM_NAME {
        problems.error(
            fields.path("alarmName"),
            format!(
                "the alarm name \"{}\" would be {} characters; CloudWatch allows {MAX_ALARM_NAME}: shorten flakeName or alarmName",
                shorten(&full, 60),
                full.chars().count()
            ),
        );
        return None;
    }
    Some(full)
}

fn positive(fields: &Fields, key: &str, default: i64, problems: &mut Problems) -> Option<i32> {
    let value = match fields.raw(key) {
        None => default,
        Some(_) => fields.integer(key, problems)?,
    };
    if !(1..=100_000).contains(&value) {
        problems.error(fields.path(key), format!("{value} is out of range; use a whole number of at least 1"));
        return None;
    }
    Some(value as i32)
}

/// CloudWatch's limits on the evaluation window, and M-of-N datapoints.
fn check_evaluation_window(
    fields: &Fields,
    period: Option<i32>,
    periods: Option<i32>,
    datapoints: Option<i32>,
    problems: &mut Problems,
) -> bool {
    let mut ok = true;
    if let (Some(periods), Some(datapoints)) = (periods, datapoints)
        && datapoints > periods
    {
        problems.error(
            fields.path("alarmDatapoints"),
            format!("{datapoints} datapoints to alarm is more than the {periods} evaluation period(s); it must be at most alarmPeriods"),
        );
        ok = false;
    }
    if let (Some(period), Some(periods)) = (period, periods) {
        let (limit, limit_text) = if period < 3600 { (86_400, "one day for periods under an hour") } else { (604_800, "seven days") };
        let window = i64::from(period) * i64::from(periods);
        if window > limit {
            problems.error(
                fields.path("alarmPeriods"),
                format!("alarmPeriodLength × alarmPeriods = {window} s, over CloudWatch's limit of {limit} s ({limit_text}); use fewer periods or a longer period"),
            );
            ok = false;
        }
    }
    ok
}
