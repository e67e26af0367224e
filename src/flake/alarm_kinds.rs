//! What an alarm of `flakeAlarms` watches (SPEC 10): the flake's own metric, any other metric
//! (`alarmNamespace`, `alarmMetricName`, `alarmDimensions`), metric math (`alarmExpression` with
//! `alarmMetrics`), an anomaly band (`alarmAnomalyBand`) or other alarms (`alarmRule`), and the
//! `flakeType: "alarms"` flake that only declares alarms.

use std::collections::BTreeMap;

use serde_json::Value;

use super::context::Context;
use super::fields::{Fields, describe, shorten};
use super::keys::{MATH_METRIC_KEYS, warn_unknown};
use super::model::{MathMetric, MetricRef, MetricTarget, Statistic, Watch};
use super::problem::Problems;
use super::shared_fields::{alarm_namespace_problem, parse_dimensions, parse_period, parse_statistic};

/// CloudWatch's limit on the metrics of one metric-math alarm.
pub const MAX_MATH_METRICS: usize = 10;
const MAX_EXPRESSION: usize = 1024;
/// The id of a math alarm's expression in `Metrics`, so no metric may have it.
pub const EXPRESSION_ID: &str = "expression";

/// The anomaly-band operators: the flake's word and CloudWatch's name.
pub const BAND_OPERATORS: [(&str, &str); 3] =
    [("outside", "LessThanLowerOrGreaterThanUpperThreshold"), ("above", "GreaterThanUpperThreshold"), ("below", "LessThanLowerThreshold")];

/// The flake's own metric, which alarms watch unless they name another.
#[derive(Debug, Clone, Copy)]
pub enum FlakeMetric<'a> {
    Published(&'a MetricTarget),
    /// An alarms flake, or a job without `flakeMetricNamespace`: every alarm names its metric.
    Nothing,
    /// The flake's metric fields have errors, already reported: alarms on it are not judged again.
    Broken,
}

impl<'a> FlakeMetric<'a> {
    pub fn target(self) -> Option<&'a MetricTarget> {
        match self {
            FlakeMetric::Published(metric) => Some(metric),
            _ => None,
        }
    }
}

/// The kind of an alarm, from the keys it has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Metric,
    Math,
    AnomalyBand,
    Composite,
}

impl Kind {
    pub fn of(fields: &Fields) -> Kind {
        if fields.raw("alarmRule").is_some() {
            Kind::Composite
        } else if fields.raw("alarmAnomalyBand").is_some() {
            Kind::AnomalyBand
        } else if fields.raw("alarmExpression").is_some() || fields.raw("alarmMetrics").is_some() {
            Kind::Math
        } else {
            Kind::Metric
        }
    }

    fn text(self) -> &'static str {
        match self {
            Kind::Metric => "a single-metric alarm",
            Kind::Math => "a metric-math alarm (alarmExpression)",
            Kind::AnomalyBand => "an anomaly-band alarm (alarmAnomalyBand)",
            Kind::Composite => "a composite alarm (alarmRule)",
        }
    }
}

/// Reports every key of `keys` present in an alarm of `kind`, which has no use for it; false if any.
pub fn forbid(fields: &Fields, kind: Kind, keys: &[&str], why: &str, problems: &mut Problems) -> bool {
    let mut ok = true;
    for key in keys {
        if fields.raw(key).is_some() {
            problems.error(fields.path(key), format!("does not apply to {}: {why}; remove it", kind.text()));
            ok = false;
        }
    }
    ok
}

/// `outside`, `above` or `below` (or CloudWatch's own names) for an anomaly band.
pub fn parse_band_operator(fields: &Fields, problems: &mut Problems) -> Option<&'static str> {
    let text = fields.strict_text("alarmOperator", problems);
    let text = fields.require("alarmOperator", text, "outside, above or below the band", problems)?;
    let found = BAND_OPERATORS.iter().find(|(word, name)| word.eq_ignore_ascii_case(text.trim()) || name.eq_ignore_ascii_case(text.trim()));
    if found.is_none() {
        problems.error(
            fields.path("alarmOperator"),
            format!("\"{}\" is not an anomaly-band operator; use outside, above or below", shorten(&text, 40)),
        );
    }
    found.map(|(_, name)| *name)
}

/// What a metric, math or band alarm watches; composites are resolved by [`super::composite`].
pub fn parse_watch(
    kind: Kind,
    fields: &Fields,
    flake_metric: FlakeMetric,
    statistic: Option<&Statistic>,
    period: Option<i32>,
    context: &Context,
    problems: &mut Problems,
) -> Option<Watch> {
    match kind {
        Kind::Metric => {
            forbid(fields, kind, &["alarmMetrics"], "name the metric with alarmNamespace and alarmMetricName", problems);
            Some(Watch::Metric(alarm_metric(fields, flake_metric, context, problems)?))
        }
        Kind::AnomalyBand => {
            let ok = forbid(fields, kind, &["alarmExpression", "alarmMetrics"], "a band is drawn around one metric", problems);
            let width = fields.number("alarmAnomalyBand", problems);
            let width = width.filter(|width| {
                let valid = *width > 0.0 && *width <= 100.0;
                if !valid {
                    problems.error(
                        fields.path("alarmAnomalyBand"),
                        format!("{width} is not a band width; use a number of standard deviations above 0, such as 2"),
                    );
                }
                valid
            });
            let metric = alarm_metric(fields, flake_metric, context, problems);
            ok.then_some(())?;
            Some(Watch::AnomalyBand { metric: metric?, width: width? })
        }
        Kind::Math => {
            let ok = forbid(
                fields,
                kind,
                &["alarmNamespace", "alarmMetricName", "alarmDimensions"],
                "its metrics are named in alarmMetrics",
                problems,
            );
            let expression = parse_expression(fields, problems);
            let metrics = parse_math_metrics(fields, flake_metric, statistic?, period?, context, problems);
            let (expression, metrics) = (expression?, metrics?);
            if !metrics.iter().any(|metric| mentions(&expression, &metric.id)) {
                problems.error(
                    fields.path("alarmExpression"),
                    format!("\"{}\" uses none of the metrics of alarmMetrics by their id", shorten(&expression, 60)),
                );
                return None;
            }
            ok.then_some(Watch::Math { expression, metrics })
        }
        Kind::Composite => None,
    }
}

/// The metric of a single-metric or band alarm: the flake's own unless `alarmNamespace` or
/// `alarmMetricName` says otherwise. In the flake's namespace `alarmDimensions` are added to
/// `flakeDimensions`; in another they are the whole dimensions.
fn alarm_metric(fields: &Fields, flake_metric: FlakeMetric, context: &Context, problems: &mut Problems) -> Option<MetricRef> {
    metric_ref(fields, ["alarmNamespace", "alarmMetricName", "alarmDimensions"], flake_metric, context, problems)
}

fn metric_ref(
    fields: &Fields,
    [namespace_key, name_key, dimensions_key]: [&str; 3],
    flake_metric: FlakeMetric,
    context: &Context,
    problems: &mut Problems,
) -> Option<MetricRef> {
    let namespace = match fields.strict_text(namespace_key, problems) {
        Some(namespace) => match alarm_namespace_problem(&namespace) {
            Some(reason) => {
                problems.error(fields.path(namespace_key), reason);
                None
            }
            None => Some(namespace),
        },
        None if fields.raw(namespace_key).is_some() => None,
        None => match flake_metric {
            FlakeMetric::Published(metric) => Some(metric.namespace.clone()),
            FlakeMetric::Broken => None,
            FlakeMetric::Nothing => {
                problems.error(
                    fields.path(namespace_key),
                    format!(
                        "is required: this flake publishes no metric (it is an alarms flake, or a job without flakeMetricNamespace), \
                         so name the metric to watch with {namespace_key} and {name_key}, such as \"AWS/EC2\" and \"CPUUtilization\""
                    ),
                );
                None
            }
        },
    };
    let flake_metric = flake_metric.target();
    let own_namespace = flake_metric.is_some_and(|metric| Some(&metric.namespace) == namespace.as_ref());
    let metric_name = match fields.strict_text(name_key, problems) {
        Some(name) if name.is_empty() || name.chars().count() > 255 || name.chars().any(char::is_control) => {
            problems.error(fields.path(name_key), "must be 1-255 characters without control characters");
            None
        }
        Some(name) => Some(name),
        None if fields.raw(name_key).is_some() => None,
        None => match flake_metric.filter(|_| own_namespace) {
            Some(metric) => Some(metric.metric_name.clone()),
            None => {
                if namespace.is_some() {
                    problems.error(fields.path(name_key), "is required: the metric of another namespace is not the flake's, name it");
                }
                None
            }
        },
    };
    let given = parse_dimensions(fields, dimensions_key, context, problems)?;
    let mut dimensions = match flake_metric.filter(|_| own_namespace) {
        Some(metric) => metric.dimensions.clone(),
        None => BTreeMap::new(),
    };
    dimensions.extend(given);
    if dimensions.len() > 30 {
        problems.error(
            fields.path(dimensions_key),
            format!("with flakeDimensions these are {} dimensions; CloudWatch allows 30", dimensions.len()),
        );
        return None;
    }
    Some(MetricRef { namespace: namespace?, metric_name: metric_name?, dimensions })
}

fn parse_expression(fields: &Fields, problems: &mut Problems) -> Option<String> {
    let expression = fields.strict_text("alarmExpression", problems);
    let expression = fields.require(
        "alarmExpression",
        expression,
        "the metric math the alarm watches, such as \"100 * errors / requests\"",
        problems,
    )?;
    let length = expression.chars().count();
    if expression.trim().is_empty() || length > MAX_EXPRESSION {
        problems.error(fields.path("alarmExpression"), format!("must be 1-{MAX_EXPRESSION} characters, has {length}"));
        return None;
    }
    Some(expression.trim().to_string())
}

/// True if `expression` uses `id` as a whole word.
fn mentions(expression: &str, id: &str) -> bool {
    expression.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).any(|word| word == id)
}

/// `alarmMetrics`: id -> {namespace, metricName, dimensions, statistic, period}, at most ten.
fn parse_math_metrics(
    fields: &Fields,
    flake_metric: FlakeMetric,
    statistic: &Statistic,
    period: i32,
    context: &Context,
    problems: &mut Problems,
) -> Option<Vec<MathMetric>> {
    let object = fields.object("alarmMetrics", problems);
    let object = fields.require(
        "alarmMetrics",
        object,
        "the metrics the expression uses by id, such as {\"errors\": {\"metricName\": \"Errors\"}, \"requests\": {\"metricName\": \"Requests\"}}",
        problems,
    )?;
    let mut ok = true;
    if object.is_empty() || object.len() > MAX_MATH_METRICS {
        problems
            .error(fields.path("alarmMetrics"), format!("has {} metrics; a metric-math alarm uses 1 to {MAX_MATH_METRICS}", object.len()));
        ok = false;
    }
    let mut metrics = Vec::new();
    for (id, value) in object {
        let path = format!("{}.{id}", fields.path("alarmMetrics"));
        let valid_id = id.starts_with(|c: char| c.is_ascii_lowercase())
            && id.len() <= 255
            && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && id != EXPRESSION_ID;
        if !valid_id {
            problems.error(
                path.clone(),
                format!(
                    "\"{}\" is not a metric id: start with a lower-case letter, then letters, digits or _ (and not \"{EXPRESSION_ID}\")",
                    shorten(id, 40)
                ),
            );
            ok = false;
            continue;
        }
        let Value::Object(entry) = value else {
            problems.error(
                path,
                format!(
                    "must be an object such as {{\"metricName\": \"Errors\"}} (or {{}} for the flake's metric), got {}",
                    describe(value)
                ),
            );
            ok = false;
            continue;
        };
        let prefix = format!("{path}.");
        warn_unknown(entry, MATH_METRIC_KEYS, &prefix, problems);
        let entry_fields = Fields::new(entry, prefix);
        let metric = metric_ref(&entry_fields, ["namespace", "metricName", "dimensions"], flake_metric, context, problems);
        let entry_statistic = match entry_fields.raw("statistic") {
            None => Some(statistic.clone()),
            Some(_) => parse_statistic(&entry_fields, "statistic", problems),
        };
        let resolution = flake_metric.target().map_or(60, |metric| metric.storage_resolution);
        let entry_period = match entry_fields.raw("period") {
            None => Some(period),
            Some(_) => parse_period(&entry_fields, "period", resolution, problems),
        };
        match (metric, entry_statistic, entry_period) {
            (Some(metric), Some(statistic), Some(period)) => metrics.push(MathMetric { id: id.clone(), metric, statistic, period }),
            _ => ok = false,
        }
    }
    ok.then_some(metrics)
}

/// A `flakeType: "alarms"` flake runs nothing: no command, no schedule, nothing published.
/// False if it has a command or schedule (which would never run).
pub fn check_alarms_flake(fields: &Fields, problems: &mut Problems) -> bool {
    let mut ok = true;
    for key in ["flakeCommand", "flakeCronstring"] {
        if fields.raw(key).is_some() {
            problems.error(key, "an alarms flake runs nothing; remove it, or use flakeType \"metric\" or \"job\" to run a command");
            ok = false;
        }
    }
    for key in [
        "flakeMetricNamespace",
        "flakeMetricName",
        "flakeDimensions",
        "flakeUnit",
        "flakeStorageResolution",
        "flakeTimeout",
        "flakeEnvironment",
        "flakeWorkingDirectory",
        "flakeAggregate",
        "flakeAnnotations",
    ] {
        if fields.raw(key).is_some() {
            problems.warning(key, "is ignored: an alarms flake runs and publishes nothing; each alarm names its own metric");
        }
    }
    ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_found_as_whole_words() {
        assert!(mentions("100 * errors / requests", "errors"));
        assert!(!mentions("100 * errors2 / requests", "errors"));
        assert!(mentions("RATE(m1)", "m1"));
    }
}
