//! Reading a metric back from CloudWatch (GetMetricStatistics): how the integration tests check
//! what landed. Compiled only for tests (the `test-support` feature), never into the binary.

use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{Dimension, Statistic};

use super::{SdkCloudWatch, classify};
use crate::cloudwatch::CallError;

/// Which metric and time range to read back with [`SdkCloudWatch::statistics`].
#[derive(Debug, Clone)]
pub struct MetricQuery<'a> {
    pub namespace: &'a str,
    pub metric_name: &'a str,
    pub dimensions: &'a [(String, String)],
    pub start_ms: i64,
    pub end_ms: i64,
    pub period_seconds: i32,
}

/// One bucket of GetMetricStatistics.
#[derive(Debug, Clone, PartialEq)]
pub struct StatisticsBucket {
    pub timestamp_ms: i64,
    pub sample_count: f64,
    pub sum: f64,
    pub minimum: f64,
    pub maximum: f64,
    pub unit: Option<String>,
}

impl SdkCloudWatch {
    /// Reads back what CloudWatch holds for one metric: used by tests.
    pub async fn statistics(&self, region: &str, query: &MetricQuery<'_>) -> Result<Vec<StatisticsBucket>, CallError> {
        let output = self
            .client(region)
            .get_metric_statistics()
            .namespace(query.namespace)
            .metric_name(query.metric_name)
            .set_dimensions(Some(
                query.dimensions.iter().map(|(name, value)| Dimension::builder().name(name).value(value).build()).collect(),
            ))
            .start_time(DateTime::from_millis(query.start_ms))
            .end_time(DateTime::from_millis(query.end_ms))
            .period(query.period_seconds)
            .statistics(Statistic::SampleCount)
            .statistics(Statistic::Sum)
            .statistics(Statistic::Minimum)
            .statistics(Statistic::Maximum)
            .send()
            .await
            .map_err(classify)?;
        let mut buckets: Vec<StatisticsBucket> = output
            .datapoints()
            .iter()
            .map(|point| StatisticsBucket {
                timestamp_ms: point.timestamp().and_then(|t| t.to_millis().ok()).unwrap_or_default(),
                sample_count: point.sample_count().unwrap_or_default(),
                sum: point.sum().unwrap_or_default(),
                minimum: point.minimum().unwrap_or_default(),
                maximum: point.maximum().unwrap_or_default(),
                unit: point.unit().map(|unit| unit.as_str().to_string()),
            })
            .collect();
        buckets.sort_by_key(|bucket| bucket.timestamp_ms);
        Ok(buckets)
    }
}
