//! The `cloudwatch` module against a real CloudWatch protocol peer (LocalStack): what we put is
//! what we read back.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::{endpoint, sdk, unique};
use specialsnowflake::cloudwatch::sdk::MetricQuery;
use specialsnowflake::cloudwatch::{AlarmConfig, AlarmStatistic, CloudWatch, Datum, ErrorKind};

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis() / 1000 * 1000
}

#[tokio::test]
async fn put_metric_data_then_read_it_back() {
    let cloudwatch = sdk(&endpoint()).await;
    let namespace = unique("RoundTrip");
    let timestamp = now_ms() - 60_000;
    let dimensions = vec![("Host".to_string(), "web-1".to_string())];
    let datum = Datum {
        metric_name: "Latency".to_string(),
        dimensions: dimensions.clone(),
        value: 42.5,
        counted_values: Vec::new(),
        timestamp_ms: timestamp,
        unit: "Milliseconds".to_string(),
        storage_resolution: 60,
    };
    cloudwatch.put_metric_data("us-east-1", &namespace, &[datum]).await.expect("PutMetricData");

    let query = MetricQuery {
        namespace: &namespace,
        metric_name: "Latency",
        dimensions: &dimensions,
        start_ms: timestamp - 60_000,
        end_ms: timestamp + 60_000,
        period_seconds: 60,
    };
    let buckets = cloudwatch.statistics("us-east-1", &query).await.expect("GetMetricStatistics");
    assert_eq!(buckets.len(), 1, "{buckets:?}");
    assert_eq!(buckets[0].sample_count, 1.0);
    assert_eq!(buckets[0].maximum, 42.5);
    assert_eq!(buckets[0].unit.as_deref(), Some("Milliseconds"));
}

fn alarm(name: &str, namespace: &str) -> AlarmConfig {
    AlarmConfig {
        name: name.to_string(),
        description: "round trip".to_string(),
        namespace: namespace.to_string(),
        metric_name: "Latency".to_string(),
        dimensions: BTreeMap::from([("Host".to_string(), "web-1".to_string())]),
        statistic: AlarmStatistic::Extended("p99".to_string()),
        period: 60,
        evaluation_periods: 3,
        datapoints_to_alarm: 2,
        threshold: 250.0,
        comparison: "GreaterThanThreshold".to_string(),
        treat_missing_data: "breaching".to_string(),
        ok_actions: BTreeSet::new(),
        alarm_actions: BTreeSet::from(["arn:aws:sns:us-east-1:000000000000:ops".to_string()]),
        insufficient_data_actions: BTreeSet::new(),
        actions_enabled: true,
        unit: None,
    }
}

#[tokio::test]
async fn put_metric_alarm_then_describe_tag_and_delete_it() {
    let cloudwatch = sdk(&endpoint()).await;
    let name = unique("FL-roundtrip");
    let config = alarm(&name, "RoundTrip");
    cloudwatch.put_metric_alarm("us-east-1", &config).await.expect("PutMetricAlarm");

    let found = cloudwatch.describe_alarms_named("us-east-1", std::slice::from_ref(&name)).await.expect("DescribeAlarms");
    let described = found.into_iter().find(|alarm| alarm.name == name).expect("the alarm is described");
    assert_eq!(described.namespace.as_deref(), Some("RoundTrip"));
    assert_eq!(described.extended_statistic.as_deref(), Some("p99"));
    assert_eq!(described.statistic, None);
    assert_eq!(described.evaluation_periods, Some(3));
    assert_eq!(described.datapoints_to_alarm, Some(2));
    assert_eq!(described.threshold, Some(250.0));
    assert_eq!(described.treat_missing_data.as_deref(), Some("breaching"));
    assert_eq!(described.alarm_actions, vec!["arn:aws:sns:us-east-1:000000000000:ops".to_string()]);
    assert_eq!(described.dimensions, vec![("Host".to_string(), "web-1".to_string())]);
    let arn = described.arn.clone().expect("ARN");

    let tags = BTreeMap::from([("team".to_string(), "platform".to_string())]);
    cloudwatch.tag_resource("us-east-1", &arn, &tags).await.expect("TagResource");
    let named = cloudwatch.describe_alarms_named("us-east-1", std::slice::from_ref(&name)).await.expect("DescribeAlarms by name");
    assert_eq!(named.len(), 1, "tagging must not break DescribeAlarms");

    cloudwatch.delete_alarms("us-east-1", std::slice::from_ref(&name)).await.expect("DeleteAlarms");
    let named = cloudwatch.describe_alarms_named("us-east-1", &[name]).await.expect("DescribeAlarms by name");
    assert!(named.is_empty());
}

#[tokio::test]
async fn an_unreachable_endpoint_is_a_retryable_failure() {
    let cloudwatch = sdk("http://127.0.0.1:9").await;
    let datum = Datum {
        metric_name: "M".to_string(),
        dimensions: vec![],
        value: 1.0,
        counted_values: Vec::new(),
        timestamp_ms: now_ms(),
        unit: "None".to_string(),
        storage_resolution: 60,
    };
    let error = cloudwatch.put_metric_data("us-east-1", "N", &[datum]).await.unwrap_err();
    assert_eq!(error.kind, ErrorKind::Unavailable, "{error}");
    assert!(error.is_retryable());
}
