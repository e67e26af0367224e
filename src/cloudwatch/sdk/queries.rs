//! The `Metrics` of a metric-math or anomaly-band alarm, between our [`MetricQuery`] and the SDK's
//! `MetricDataQuery`, both ways.

use aws_sdk_cloudwatch::types::{Dimension, Metric, MetricDataQuery, MetricStat as SdkMetricStat};

use crate::cloudwatch::{MetricQuery, MetricStat};

pub fn to_sdk_query(query: &MetricQuery) -> MetricDataQuery {
    let metric_stat = query.metric.as_ref().map(|stat| {
        let metric = Metric::builder()
            .namespace(&stat.namespace)
            .metric_name(&stat.metric_name)
            .set_dimensions(Some(
                stat.dimensions.iter().map(|(name, value)| Dimension::builder().name(name).value(value).build()).collect(),
            ))
            .build();
        SdkMetricStat::builder().metric(metric).stat(&stat.stat).period(stat.period).build()
    });
    MetricDataQuery::builder()
        .id(&query.id)
        .set_metric_stat(metric_stat)
        .set_expression(query.expression.clone())
        .return_data(query.return_data)
        .build()
}

/// As DescribeAlarms reports it. A missing `ReturnData` is CloudWatch's default, true.
pub fn from_sdk_query(query: &MetricDataQuery) -> MetricQuery {
    MetricQuery {
        id: query.id().unwrap_or_default().to_string(),
        metric: query.metric_stat().map(|stat| {
            let metric = stat.metric();
            MetricStat {
                namespace: metric.and_then(Metric::namespace).unwrap_or_default().to_string(),
                metric_name: metric.and_then(Metric::metric_name).unwrap_or_default().to_string(),
                dimensions: metric
                    .map(|metric| {
                        metric
                            .dimensions()
                            .iter()
                            .map(|d| (d.name().unwrap_or_default().to_string(), d.value().unwrap_or_default().to_string()))
                            .collect()
                    })
                    .unwrap_or_default(),
                stat: stat.stat().unwrap_or_default().to_string(),
                period: stat.period().unwrap_or_default(),
            }
        }),
        expression: query.expression().map(str::to_string),
        return_data: query.return_data().unwrap_or(true),
    }
}
