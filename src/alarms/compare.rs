//! Comparing an alarm as CloudWatch describes it with the alarm a flake declares.
//!
//! CloudWatch leaves out what is at its default, orders lists as it likes, and reports
//! dimensions as a list; normalising both sides first means an unchanged alarm never causes a
//! write, and a changed one lists exactly the fields that differ.

use std::collections::{BTreeMap, BTreeSet};

use crate::cloudwatch::{AlarmConfig, AlarmStatistic, DescribedAlarm, MetricQuery};

/// A described alarm with CloudWatch's defaults filled in: missing TreatMissingData is
/// `missing`, missing DatapointsToAlarm is EvaluationPeriods, missing ActionsEnabled is true,
/// a missing description is empty, actions are sets and dimensions a map.
pub fn normalize(described: &DescribedAlarm) -> AlarmConfig {
    let evaluation_periods = described.evaluation_periods.unwrap_or(0);
    AlarmConfig {
        name: described.name.clone(),
        description: described.description.clone().unwrap_or_default(),
        namespace: described.namespace.clone().unwrap_or_default(),
        metric_name: described.metric_name.clone().unwrap_or_default(),
        dimensions: described.dimensions.iter().cloned().collect::<BTreeMap<_, _>>(),
        statistic: match &described.extended_statistic {
            Some(extended) => AlarmStatistic::Extended(extended.clone()),
            None => AlarmStatistic::Standard(described.statistic.clone().unwrap_or_default()),
        },
        period: described.period.unwrap_or(0),
        evaluation_periods,
        datapoints_to_alarm: described.datapoints_to_alarm.unwrap_or(evaluation_periods),
        // No threshold (an anomaly-band alarm) never equals a declared one.
        threshold: described.threshold.unwrap_or(f64::NAN),
        comparison: described.comparison.clone().unwrap_or_default(),
        treat_missing_data: described.treat_missing_data.clone().unwrap_or_else(|| "missing".to_string()),
        ok_actions: described.ok_actions.iter().cloned().collect::<BTreeSet<_>>(),
        alarm_actions: described.alarm_actions.iter().cloned().collect(),
        insufficient_data_actions: described.insufficient_data_actions.iter().cloned().collect(),
        actions_enabled: described.actions_enabled.unwrap_or(true),
        unit: described.unit.clone(),
        metrics: sorted_by_id(&described.metrics),
        threshold_metric_id: described.threshold_metric_id.clone(),
        rule: described.rule.clone(),
    }
}

/// `Metrics` compared by id: the order of the entries carries no meaning.
fn sorted_by_id(metrics: &[MetricQuery]) -> Vec<MetricQuery> {
    let mut sorted = metrics.to_vec();
    sorted.sort_by(|a, b| a.id.cmp(&b.id));
    sorted
}

/// One field that differs, old value first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldChange {
    pub field: &'static str,
    pub old: String,
    pub new: String,
}

/// Every field in which `actual` differs from `desired`; empty if they are the same alarm.
pub fn differences(actual: &DescribedAlarm, desired: &AlarmConfig) -> Vec<FieldChange> {
    let normalized = normalize(actual);
    let old = normalized.clone();
    let mut changes = Vec::new();
    let mut field = |name: &'static str, old: String, new: String| {
        if old != new {
            changes.push(FieldChange { field: name, old, new });
        }
    };
    if actual.has_foreign_shape {
        field("shape", "query alarm or composite with an actions suppressor".to_string(), "the declared alarm".to_string());
    }
    field("type", kind_text(&old).to_string(), kind_text(desired).to_string());
    field("description", format!("{:?}", old.description), format!("{:?}", desired.description));
    if desired.is_composite() {
        field("rule", old.rule.clone().unwrap_or_default(), desired.rule.clone().unwrap_or_default());
        push_action_changes(&old, desired, &mut field);
        return changes;
    }
    field("namespace", old.namespace, desired.namespace.clone());
    field("metricName", old.metric_name, desired.metric_name.clone());
    field("dimensions", map_text(&old.dimensions), map_text(&desired.dimensions));
    field("statistic", statistic_text(&old.statistic), statistic_text(&desired.statistic));
    field("period", old.period.to_string(), desired.period.to_string());
    field("evaluationPeriods", old.evaluation_periods.to_string(), desired.evaluation_periods.to_string());
    field("datapointsToAlarm", old.datapoints_to_alarm.to_string(), desired.datapoints_to_alarm.to_string());
    field("metrics", metrics_text(&old.metrics), metrics_text(&sorted_by_id(&desired.metrics)));
    field(
        "thresholdMetricId",
        old.threshold_metric_id.clone().unwrap_or_else(|| "(none)".to_string()),
        desired.threshold_metric_id.clone().unwrap_or_else(|| "(none)".to_string()),
    );
    // A band alarm has no threshold; its band is in `metrics`.
    if desired.threshold_metric_id.is_none() && old.threshold != desired.threshold {
        field("threshold", old.threshold.to_string(), desired.threshold.to_string());
    }
    field("comparisonOperator", old.comparison, desired.comparison.clone());
    field("treatMissingData", old.treat_missing_data.clone(), desired.treat_missing_data.clone());
    push_action_changes(&normalized, desired, &mut field);
    field("unit", old.unit.unwrap_or_else(|| "(none)".to_string()), desired.unit.clone().unwrap_or_else(|| "(none)".to_string()));
    changes
}

fn push_action_changes(old: &AlarmConfig, desired: &AlarmConfig, field: &mut impl FnMut(&'static str, String, String)) {
    field("okActions", set_text(&old.ok_actions), set_text(&desired.ok_actions));
    field("alarmActions", set_text(&old.alarm_actions), set_text(&desired.alarm_actions));
    field("insufficientDataActions", set_text(&old.insufficient_data_actions), set_text(&desired.insufficient_data_actions));
    field("actionsEnabled", old.actions_enabled.to_string(), desired.actions_enabled.to_string());
}

fn kind_text(config: &AlarmConfig) -> &'static str {
    match (config.is_composite(), config.threshold_metric_id.is_some(), config.metrics.is_empty()) {
        (true, _, _) => "composite",
        (false, true, _) => "anomaly band",
        (false, false, false) => "metric math",
        (false, false, true) => "single metric",
    }
}

fn metrics_text(metrics: &[MetricQuery]) -> String {
    let entries: Vec<String> = metrics
        .iter()
        .map(|query| {
            let what = match (&query.metric, &query.expression) {
                (Some(stat), _) => {
                    format!("{} {} {} {} {}", stat.namespace, stat.metric_name, map_text(&stat.dimensions), stat.stat, stat.period)
                }
                (None, Some(expression)) => expression.clone(),
                (None, None) => "(nothing)".to_string(),
            };
            let returned = if query.return_data { " (watched)" } else { "" };
            format!("{}={what}{returned}", query.id)
        })
        .collect();
    format!("[{}]", entries.join(", "))
}

fn statistic_text(statistic: &AlarmStatistic) -> String {
    match statistic {
        AlarmStatistic::Standard(name) | AlarmStatistic::Extended(name) => name.clone(),
    }
}

fn map_text(map: &BTreeMap<String, String>) -> String {
    let pairs: Vec<String> = map.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("{{{}}}", pairs.join(", "))
}

fn set_text(set: &BTreeSet<String>) -> String {
    format!("[{}]", set.iter().cloned().collect::<Vec<_>>().join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desired() -> AlarmConfig {
        AlarmConfig {
            name: "FL-disk-full".into(),
            description: String::new(),
            namespace: "N".into(),
            metric_name: "disk".into(),
            dimensions: BTreeMap::from([("Host".into(), "a".into()), ("Mount".into(), "/".into())]),
            statistic: AlarmStatistic::Standard("Average".into()),
            period: 60,
            evaluation_periods: 3,
            datapoints_to_alarm: 3,
            threshold: 90.0,
            comparison: "GreaterThanThreshold".into(),
            treat_missing_data: "missing".into(),
            ok_actions: BTreeSet::new(),
            alarm_actions: BTreeSet::from(["arn:b".into(), "arn:a".into()]),
            insufficient_data_actions: BTreeSet::new(),
            actions_enabled: true,
            ..AlarmConfig::default()
        }
    }

    /// How CloudWatch describes `desired()` when every optional field was left at its default,
    /// with lists in another order.
    fn described_with_defaults_omitted() -> DescribedAlarm {
        DescribedAlarm {
            name: "FL-disk-full".into(),
            arn: Some("arn:aws:cloudwatch:us-east-1:1:alarm:FL-disk-full".into()),
            description: None,
            namespace: Some("N".into()),
            metric_name: Some("disk".into()),
            dimensions: vec![("Mount".into(), "/".into()), ("Host".into(), "a".into())],
            statistic: Some("Average".into()),
            period: Some(60),
            evaluation_periods: Some(3),
            datapoints_to_alarm: None,
            threshold: Some(90.0),
            comparison: Some("GreaterThanThreshold".into()),
            treat_missing_data: None,
            alarm_actions: vec!["arn:a".into(), "arn:b".into()],
            actions_enabled: None,
            ..DescribedAlarm::default()
        }
    }

    #[test]
    fn defaults_and_ordering_are_not_differences() {
        assert_eq!(differences(&described_with_defaults_omitted(), &desired()), []);
    }

    #[test]
    fn each_changed_field_is_listed_old_to_new() {
        let mut actual = described_with_defaults_omitted();
        actual.threshold = Some(80.0);
        actual.treat_missing_data = Some("breaching".into());
        actual.datapoints_to_alarm = Some(2);
        actual.alarm_actions.pop();
        actual.unit = Some("Percent".into());
        let changes = differences(&actual, &desired());
        let summary: Vec<String> = changes.iter().map(|c| format!("{}: {} -> {}", c.field, c.old, c.new)).collect();
        assert_eq!(
            summary,
            [
                "datapointsToAlarm: 2 -> 3",
                "threshold: 80 -> 90",
                "treatMissingData: breaching -> missing",
                "alarmActions: [arn:a] -> [arn:a, arn:b]",
                "unit: Percent -> (none)",
            ]
        );
    }

    #[test]
    fn a_query_alarm_never_equals_a_declared_one() {
        let mut actual = described_with_defaults_omitted();
        actual.has_foreign_shape = true;
        assert_eq!(differences(&actual, &desired())[0].field, "shape");
    }

    #[test]
    fn a_math_alarm_where_a_single_metric_is_declared_differs_in_type_and_metrics() {
        let mut actual = described_with_defaults_omitted();
        actual.metrics = vec![MetricQuery { id: "e".into(), metric: None, expression: Some("m1 * 2".into()), return_data: true }];
        let fields: Vec<&str> = differences(&actual, &desired()).iter().map(|change| change.field).collect();
        assert_eq!(fields, ["type", "metrics"]);
    }

    #[test]
    fn composites_compare_by_rule_description_and_actions_only() {
        let wanted =
            AlarmConfig { name: "FL-c".into(), rule: Some("ALARM(\"FL-a\")".into()), actions_enabled: true, ..AlarmConfig::default() };
        let actual = DescribedAlarm { name: "FL-c".into(), rule: Some("ALARM(\"FL-a\")".into()), ..DescribedAlarm::default() };
        assert_eq!(differences(&actual, &wanted), []);
        let other = DescribedAlarm { rule: Some("ALARM(\"FL-b\")".into()), actions_enabled: Some(false), ..actual };
        let fields: Vec<&str> = differences(&other, &wanted).iter().map(|change| change.field).collect();
        assert_eq!(fields, ["rule", "actionsEnabled"]);
    }

    #[test]
    fn percentiles_compare_as_extended_statistics() {
        let mut wanted = desired();
        wanted.statistic = AlarmStatistic::Extended("p99".into());
        let mut actual = described_with_defaults_omitted();
        actual.statistic = None;
        actual.extended_statistic = Some("p99".into());
        assert_eq!(differences(&actual, &wanted), []);
    }
}
