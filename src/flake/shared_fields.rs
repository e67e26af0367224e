//! Field parsers that several parts of a flake share: dimensions and namespaces (the flake, its
//! alarms, its alarms on other metrics), periods and statistics (metric and metric-math alarms),
//! actions and tags (`flakeAlarms` entries and `flakeMonitor`). Below `alarm`, `alarm_kinds`,
//! `monitor` and `validate`, so none of them imports another for these (no import cycle).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::context::Context;
use super::endpoints::check_endpoint;
use super::fields::{Fields, describe, shorten};
use super::keys::{ENDPOINT_KEYS, warn_unknown};
use super::model::Statistic;
use super::problem::Problems;

pub(super) const MAX_ALARM_NAME: usize = 255;
const MAX_DIMENSIONS: usize = 30;
const MAX_ACTIONS_PER_STATE: usize = 5;
const MAX_TAGS: usize = 50;
const STATISTICS: [&str; 5] = ["Average", "Sum", "Minimum", "Maximum", "SampleCount"];

/// Why CloudWatch would not accept `namespace`: 1-255 printable ASCII, not starting with `:` or
/// the reserved `AWS/`.
pub fn namespace_problem(namespace: &str) -> Option<String> {
    if namespace.starts_with("AWS/") {
        return Some(format!(
            "\"{}\" starts with AWS/, which is reserved for AWS services; use your own prefix such as \"MyCompany/App\"",
            shorten(namespace, 60)
        ));
    }
    alarm_namespace_problem(namespace)
}

/// Why CloudWatch would not accept `namespace` in an alarm, where `AWS/` namespaces are allowed
/// (they only may not be published to).
pub fn alarm_namespace_problem(namespace: &str) -> Option<String> {
    if namespace.is_empty() || namespace.len() > 255 {
        Some("must be 1-255 characters".to_string())
    } else if !namespace.bytes().all(|b| (0x20..=0x7e).contains(&b)) {
        Some("may hold only printable ASCII characters".to_string())
    } else if namespace.starts_with(':') {
        Some("must not start with \":\"".to_string())
    } else {
        None
    }
}

/// A dimensions object (`flakeDimensions`, `alarmDimensions`, ...), placeholders expanded.
pub(super) fn parse_dimensions(fields: &Fields, key: &str, context: &Context, problems: &mut Problems) -> Option<BTreeMap<String, String>> {
    let Some(object) = fields.object(key, problems) else {
        return if fields.raw(key).is_some() { None } else { Some(BTreeMap::new()) };
    };
    let mut ok = true;
    if object.len() > MAX_DIMENSIONS {
        problems.error(fields.path(key), format!("has {} dimensions; CloudWatch allows at most {MAX_DIMENSIONS}", object.len()));
        ok = false;
    }
    let dimension_fields = Fields::new(object, format!("{}.", fields.path(key)));
    let mut dimensions = BTreeMap::new();
    for key in object.keys() {
        let path = dimension_fields.path(key);
        if key.is_empty() || key.chars().count() > 255 || key.starts_with(':') || !key.is_ascii() {
            problems.error(path.clone(), "dimension names must be 1-255 ASCII characters and must not start with \":\"");
            ok = false;
        }
        let Some(template) = dimension_fields.text(key, problems) else {
            ok = false;
            continue;
        };
        match context.expand(&template, &path, problems) {
            Ok(value) if value.is_empty() || value.chars().count() > 1024 => {
                problems.error(path, format!("\"{}\" must be 1-1024 characters after placeholders", shorten(&template, 40)));
                ok = false;
            }
            Ok(value) => {
                dimensions.insert(key.clone(), value);
            }
            Err(reason) => {
                problems.error(path, reason);
                ok = false;
            }
        }
    }
    ok.then_some(dimensions)
}

pub(super) fn parse_period(fields: &Fields, key: &str, resolution: i32, problems: &mut Problems) -> Option<i32> {
    let period = match fields.raw(key) {
        None => 60,
        Some(_) => fields.integer(key, problems)?,
    };
    let valid = matches!(period, 10 | 20 | 30) || (period > 0 && period % 60 == 0 && period <= 604_800);
    if !valid {
        problems.error(fields.path(key), format!("{period} is not a valid period: use 10, 20, 30 or a multiple of 60 seconds"));
        return None;
    }
    if period < 60 && resolution != 1 {
        problems.warning(
            fields.path(key),
            format!(
                "a {period} s period needs a high-resolution metric; set flakeStorageResolution to 1, or the alarm will often see no data"
            ),
        );
    }
    Some(period as i32)
}

pub(super) fn parse_statistic(fields: &Fields, key: &str, problems: &mut Problems) -> Option<Statistic> {
    let Some(text) = fields.strict_text(key, problems) else {
        return Some(Statistic::Standard("Average"));
    };
    let text = text.trim();
    if let Some(name) = STATISTICS.iter().copied().find(|name| name.eq_ignore_ascii_case(text)) {
        return Some(Statistic::Standard(name));
    }
    if let Some(number) = text.strip_prefix(['p', 'P'])
        && number.chars().all(|c| c.is_ascii_digit() || c == '.')
        && number.parse::<f64>().is_ok_and(|value| (0.0..=100.0).contains(&value))
    {
        return Some(Statistic::Percentile(format!("p{number}")));
    }
    problems.error(
        fields.path(key),
        format!(
            "\"{}\" is not a statistic; use Average, Sum, Minimum, Maximum, SampleCount or a percentile p0 to p100 (such as p99)",
            shorten(text, 40)
        ),
    );
    None
}

/// OK, ALARM and INSUFFICIENT_DATA actions.
pub(super) type Actions = (Vec<String>, Vec<String>, Vec<String>);

/// `alarmEndpoints` of `fields`: shared by `flakeAlarms` entries and `flakeMonitor`.
pub(super) fn parse_endpoints(fields: &Fields, context: &Context, problems: &mut Problems) -> Option<Actions> {
    let Some(object) = fields.object("alarmEndpoints", problems) else {
        return if fields.raw("alarmEndpoints").is_some() { None } else { Some(Default::default()) };
    };
    let prefix = fields.path("alarmEndpoints.");
    warn_unknown(object, ENDPOINT_KEYS, &prefix, problems);
    let endpoint_fields = Fields::new(object, prefix);
    let ok = actions(&endpoint_fields, "ok", context, problems);
    let alarm = actions(&endpoint_fields, "alarm", context, problems);
    let insufficient = actions(&endpoint_fields, "insufficient_data", context, problems);
    Some((ok?, alarm?, insufficient?))
}

/// One state's actions: an ARN, or a list of at most five.
fn actions(fields: &Fields, key: &str, context: &Context, problems: &mut Problems) -> Option<Vec<String>> {
    let items: Vec<&Value> = match fields.raw(key) {
        None => return Some(Vec::new()),
        Some(Value::Array(items)) => items.iter().collect(),
        Some(single) => vec![single],
    };
    let mut arns = BTreeSet::new();
    let mut ok = true;
    for item in items {
        match item {
            Value::String(template) => {
                match context.expand(template, &fields.path(key), problems).and_then(|arn| check_endpoint(&arn).map(|()| arn)) {
                    Ok(arn) => {
                        arns.insert(arn);
                    }
                    Err(reason) => {
                        problems.error(fields.path(key), reason);
                        ok = false;
                    }
                }
            }
            other => {
                problems.error(
                    fields.path(key),
                    format!("{} is not an action ARN; write an ARN such as \"arn:aws:sns:eu-west-1:123456789012:ops\"", describe(other)),
                );
                ok = false;
            }
        }
    }
    if arns.len() > MAX_ACTIONS_PER_STATE {
        problems.error(
            fields.path(key),
            format!("has {} actions; CloudWatch allows at most {MAX_ACTIONS_PER_STATE} per alarm state", arns.len()),
        );
        ok = false;
    }
    ok.then(|| arns.into_iter().collect())
}

/// `alarmTags` of `fields`: shared by `flakeAlarms` entries and `flakeMonitor`.
pub(super) fn parse_tags(fields: &Fields, problems: &mut Problems) -> Option<BTreeMap<String, String>> {
    let Some(object) = fields.object("alarmTags", problems) else {
        return if fields.raw("alarmTags").is_some() { None } else { Some(BTreeMap::new()) };
    };
    let tag_fields = Fields::new(object, fields.path("alarmTags."));
    let mut ok = object.len() <= MAX_TAGS;
    if !ok {
        problems.error(fields.path("alarmTags"), format!("has {} tags; CloudWatch allows at most {MAX_TAGS}", object.len()));
    }
    let mut tags = BTreeMap::new();
    for key in object.keys() {
        if key.is_empty() || key.chars().count() > 128 || key.to_ascii_lowercase().starts_with("aws:") {
            problems.error(tag_fields.path(key), "tag keys must be 1-128 characters and must not start with the reserved \"aws:\"");
            ok = false;
        }
        match tag_fields.text(key, problems) {
            Some(value) if value.chars().count() > 256 => {
                problems.error(tag_fields.path(key), "tag values must be at most 256 characters");
                ok = false;
            }
            Some(value) => {
                tags.insert(key.clone(), value);
            }
            None => ok = false,
        }
    }
    ok.then_some(tags)
}
