//! `snowflake once` against LocalStack: what it publishes is read back from the peer.

mod common;

use common::{LocalStack, Workspace, endpoint, run, sdk, unique, with_aws};
use serde_json::json;
use specialsnowflake::cloudwatch::CloudWatch;
use specialsnowflake::cloudwatch::sdk::MetricQuery;

fn scheduled_of(log: &str) -> chrono::DateTime<chrono::Utc> {
    let text = log.split("scheduled=").nth(1).and_then(|rest| rest.split_whitespace().next()).expect("scheduled= in the log line");
    chrono::DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&chrono::Utc)
}

#[tokio::test]
async fn once_publishes_value_unit_dimensions_and_scheduled_time() {
    let endpoint = endpoint();
    let workspace = Workspace::new();
    let namespace = unique("Once");
    workspace.add(
        "latency",
        json!({
            "flakeName": "latency",
            "flakeCronstring": "@hourly",
            "flakeCommand": "echo 123.25",
            "flakeUnit": "milliseconds",
            "flakeMetricNamespace": namespace,
            "flakeDimensions": {"Service": "checkout", "Host": "${hostname}"},
            "flakeStorageResolution": 1
        }),
    );
    let (code, stdout, stderr) = run(with_aws(&mut workspace.snowflake(), &endpoint).args(["once", "latency"]));
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("latency: ok value=123.25"), "{stdout}");
    assert!(stdout.contains("published: 1 of 1 value(s) in 1 PutMetricData call(s)"), "{stdout}");

    let scheduled = scheduled_of(&workspace.log_of("latency"));
    let hostname = nix::unistd::gethostname().unwrap().into_string().unwrap();
    let dimensions = vec![("Host".to_string(), hostname), ("Service".to_string(), "checkout".to_string())];
    let second = scheduled.timestamp() * 1000;
    let query = MetricQuery {
        namespace: &namespace,
        metric_name: "latency",
        dimensions: &dimensions,
        start_ms: second - 60_000,
        end_ms: second + 60_000,
        period_seconds: 1,
    };
    let buckets = sdk(&endpoint).await.statistics("us-east-1", &query).await.unwrap();
    assert_eq!(buckets.len(), 1, "{buckets:?}");
    assert_eq!(buckets[0].timestamp_ms, second, "the datapoint carries the scheduled time");
    assert_eq!(buckets[0].sample_count, 1.0);
    assert_eq!(buckets[0].maximum, 123.25);
    assert_eq!(buckets[0].unit.as_deref(), Some("Milliseconds"));
}

#[tokio::test]
async fn twenty_five_hundred_flakes_need_three_put_metric_data_calls_and_every_value_arrives() {
    // An instance of its own, so its request log counts only this test's calls.
    let localstack = LocalStack::start();
    let workspace = Workspace::new();
    let namespace = unique("Bulk");
    for i in 0..2500 {
        workspace.add(
            &format!("bulk-{i:04}"),
            json!({
                "flakeName": format!("bulk-{i:04}"),
                "flakeCronstring": "* * * * *",
                "flakeCommand": format!("echo {i}"),
                "flakeMetricNamespace": namespace,
                "flakeMetricName": "Value"
            }),
        );
    }
    let before = localstack.requests("PutMetricData");
    let (code, stdout, stderr) =
        run(with_aws(&mut workspace.snowflake(), &localstack.endpoint()).args(["once", "--max-concurrent-runs", "64"]));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout.lines().filter(|line| line.contains(": ok value=")).count(), 2500);
    let summary = stdout.lines().last().unwrap();
    let calls: usize = summary.split(" in ").nth(1).and_then(|rest| rest.split_whitespace().next()).unwrap().parse().unwrap();
    assert!(summary.starts_with("published: 2500 of 2500 value(s)"), "{summary}");
    assert!(calls <= 3, "the publisher's own count: {summary}");
    let counted = localstack.requests("PutMetricData") - before;
    assert_eq!(counted, calls, "LocalStack's request log agrees with the publisher's count");

    let now = chrono::Utc::now().timestamp_millis();
    let query = MetricQuery {
        namespace: &namespace,
        metric_name: "Value",
        dimensions: &[],
        start_ms: now - 600_000,
        end_ms: now + 60_000,
        period_seconds: 3600,
    };
    let buckets = sdk(&localstack.endpoint()).await.statistics("us-east-1", &query).await.unwrap();
    let count: f64 = buckets.iter().map(|bucket| bucket.sample_count).sum();
    let sum: f64 = buckets.iter().map(|bucket| bucket.sum).sum();
    assert_eq!(count, 2500.0, "{buckets:?}");
    assert_eq!(sum, (0..2500).sum::<i64>() as f64, "every value 0..2499 arrived once");
}

#[tokio::test]
async fn flake_region_overrides_the_default_region() {
    let endpoint = endpoint();
    let workspace = Workspace::new();
    let namespace = unique("Region");
    workspace.add(
        "regional",
        json!({"flakeName": "regional", "flakeCronstring": "@daily", "flakeCommand": "echo 9", "flakeMetricNamespace": namespace, "flakeRegion": "eu-west-2"}),
    );
    let (code, stdout, stderr) = run(with_aws(&mut workspace.snowflake(), &endpoint).args(["once"]));
    assert_eq!(code, 0, "{stdout}{stderr}");
    let now = chrono::Utc::now().timestamp_millis();
    let query = MetricQuery {
        namespace: &namespace,
        metric_name: "regional",
        dimensions: &[],
        start_ms: now - 600_000,
        end_ms: now + 60_000,
        period_seconds: 3600,
    };
    let cloudwatch = sdk(&endpoint).await;
    let there = cloudwatch.statistics("eu-west-2", &query).await.unwrap();
    assert_eq!(there.iter().map(|b| b.sample_count).sum::<f64>(), 1.0, "published to eu-west-2");
    let default = cloudwatch.statistics("us-east-1", &query).await.unwrap();
    assert!(default.is_empty(), "nothing in the default region: {default:?}");
}

#[tokio::test]
async fn once_fails_when_cloudwatch_cannot_be_reached() {
    let workspace = Workspace::new();
    workspace.add("a", json!({"flakeName": "a", "flakeCronstring": "@daily", "flakeCommand": "echo 1", "flakeMetricNamespace": "N"}));
    let (code, stdout, stderr) = run(with_aws(&mut workspace.snowflake(), "http://127.0.0.1:9").args(["once", "--publish-timeout", "2s"]));
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(stdout.contains("a: ok value=1"), "the run itself worked: {stdout}");
    assert!(stderr.contains("1 value(s) could not be delivered"), "{stderr}");
}

#[tokio::test]
async fn with_a_cluster_once_keeps_its_hands_off_a_cluster_flakes_alarms() {
    let endpoint = endpoint();
    let workspace = Workspace::new();
    let (shared, local) = (unique("shared"), unique("local"));
    let alarm = json!([{"alarmName": "high", "alarmThreshold": 9, "alarmOperator": ">"}]);
    workspace.add(
        "shared",
        json!({"flakeName": shared, "flakeCronstring": "* * * * *", "flakeCommand": "echo 3", "flakeScope": "cluster",
               "flakeMetricNamespace": "Once/Cluster", "flakeAlarms": alarm}),
    );
    workspace.add(
        "local",
        json!({"flakeName": local, "flakeCronstring": "* * * * *", "flakeCommand": "echo 4", "flakeMetricNamespace": "Once/Cluster", "flakeAlarms": alarm}),
    );
    // No S3 request is made: the location only says whose the alarms are.
    let (code, stdout, stderr) =
        run(with_aws(&mut workspace.snowflake(), &endpoint).args(["once", "--cluster", "s3://fleet-bucket/snowflake"]));
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("published: 2 of 2 value(s)"), "{stdout}");

    let names = [format!("FL-{shared}-high"), format!("FL-{local}-high")];
    let found = sdk(&endpoint).await.describe_alarms_named("us-east-1", &names).await.unwrap();
    let found: Vec<&str> = found.iter().map(|alarm| alarm.name.as_str()).collect();
    assert_eq!(found, [names[1].as_str()], "only the host flake's alarm is created");
    let managed = std::fs::read_to_string(workspace.state().join("alarms.json")).unwrap();
    assert!(managed.contains(&names[1]) && !managed.contains(&shared), "this host lists only its own alarms: {managed}");
}
