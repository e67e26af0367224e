//! A declared alarm in CloudWatch's shape, for every kind: the single-metric fields for an alarm
//! on one metric, `Metrics` for metric math (the expression returning data) and anomaly bands
//! (`ANOMALY_DETECTION_BAND(m1, width)` with `ThresholdMetricId`), the rule for a composite. What
//! CloudWatch leaves out for a kind is left empty here too, so a described alarm compares equal.

use std::collections::BTreeSet;

use crate::cloudwatch::{AlarmConfig, AlarmStatistic, MetricQuery, MetricStat};
use crate::flake::{Alarm, EXPRESSION_ID, MetricRef, Statistic, Watch};

/// Ids of the entries SpecialSnowflake adds to a band alarm's `Metrics`: the metric and the band.
pub const BAND_METRIC_ID: &str = "m1";
pub const BAND_ID: &str = "ad1";

/// PutMetricAlarm's (or PutCompositeAlarm's) shape of `alarm`.
pub fn config_of(alarm: &Alarm) -> AlarmConfig {
    let set = |actions: &[String]| actions.iter().cloned().collect::<BTreeSet<String>>();
    let common = AlarmConfig {
        name: alarm.name.clone(),
        description: alarm.description.clone(),
        ok_actions: set(&alarm.ok_actions),
        alarm_actions: set(&alarm.alarm_actions),
        insufficient_data_actions: set(&alarm.insufficient_data_actions),
        actions_enabled: alarm.actions_enabled,
        ..AlarmConfig::default()
    };
    let evaluated = AlarmConfig {
        evaluation_periods: alarm.evaluation_periods,
        datapoints_to_alarm: alarm.datapoints_to_alarm,
        threshold: alarm.threshold,
        comparison: alarm.comparison.to_string(),
        treat_missing_data: alarm.treat_missing_data.to_string(),
        ..common.clone()
    };
    match &alarm.watch {
        Watch::Composite { rule } => AlarmConfig { rule: Some(rule.clone()), ..common },
        Watch::Metric(metric) => AlarmConfig {
            namespace: metric.namespace.clone(),
            metric_name: metric.metric_name.clone(),
            dimensions: metric.dimensions.clone(),
            statistic: match &alarm.statistic {
                Statistic::Standard(name) => AlarmStatistic::Standard(name.to_string()),
                Statistic::Percentile(name) => AlarmStatistic::Extended(name.clone()),
            },
            period: alarm.period,
            ..evaluated
        },
        Watch::Math { expression, metrics } => {
            let mut queries: Vec<MetricQuery> = metrics
                .iter()
                .map(|metric| MetricQuery {
                    id: metric.id.clone(),
                    metric: Some(stat_of(&metric.metric, &metric.statistic, metric.period)),
                    expression: None,
                    return_data: false,
                })
                .collect();
            queries.push(MetricQuery {
                id: EXPRESSION_ID.to_string(),
                metric: None,
                expression: Some(expression.clone()),
                return_data: true,
            });
            with_metrics(evaluated, queries, None)
        }
        Watch::AnomalyBand { metric, width } => {
            let queries = vec![
                MetricQuery {
                    id: BAND_METRIC_ID.to_string(),
                    metric: Some(stat_of(metric, &alarm.statistic, alarm.period)),
                    expression: None,
                    return_data: true,
                },
                MetricQuery {
                    id: BAND_ID.to_string(),
                    metric: None,
                    expression: Some(format!("ANOMALY_DETECTION_BAND({BAND_METRIC_ID}, {width})")),
                    return_data: true,
                },
            ];
            with_metrics(AlarmConfig { threshold: 0.0, ..evaluated }, queries, Some(BAND_ID.to_string()))
        }
    }
}

/// Metrics sorted by id: CloudWatch may return them in any order, and they compare sorted.
fn with_metrics(config: AlarmConfig, mut metrics: Vec<MetricQuery>, threshold_metric_id: Option<String>) -> AlarmConfig {
    metrics.sort_by(|a, b| a.id.cmp(&b.id));
    AlarmConfig { metrics, threshold_metric_id, statistic: AlarmStatistic::Standard(String::new()), ..config }
}

fn stat_of(metric: &MetricRef, statistic: &Statistic, period: i32) -> MetricStat {
    MetricStat {
        namespace: metric.namespace.clone(),
        metric_name: metric.metric_name.clone(),
        dimensions: metric.dimensions.clone(),
        stat: statistic.as_str().to_string(),
        period,
    }
}
