//! The slow, end-to-end guarantees, in one test binary so they run side by side: a 30 s
//! CloudWatch outage and a `kill -9` lose nothing, 1,000 flakes each fire once a minute, and a
//! silent flake's breaching alarm goes to ALARM.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use common::{Daemon, LocalStack, Workspace, endpoint, sdk, unique, with_aws};
use serde_json::json;
use specialsnowflake::cloudwatch::CloudWatch;
use specialsnowflake::cloudwatch::sdk::MetricQuery;

/// A flake that publishes, every second, its own scheduled second as its value.
fn add_ticker(workspace: &Workspace, namespace: &str) {
    workspace.add(
        "tick",
        json!({"flakeName": "tick", "flakeCronstring": "@every 1s", "flakeCommand": "date -u -d \"$SNOWFLAKE_SCHEDULED_TIME\" +%s",
               "flakeMetricNamespace": namespace, "flakeStorageResolution": 1}),
    );
}

/// A workspace with the ticker, and a daemon publishing it to `localstack` that has delivered a few.
fn ticking(localstack: &LocalStack, prefix: &str) -> (Workspace, String, Daemon) {
    let workspace = Workspace::new();
    let namespace = unique(prefix);
    add_ticker(&workspace, &namespace);
    let daemon = Daemon::start(with_aws(&mut workspace.snowflake(), &localstack.endpoint()), &workspace, &[]);
    daemon.wait_for(Duration::from_secs(20), "datapoints to be delivered", || {
        daemon.metric("snowflake_datapoints_published_total").unwrap_or(0.0) >= 3.0
    });
    (workspace, namespace, daemon)
}

/// Seconds whose tick run was logged ok, between `from` and `to` inclusive.
fn logged_seconds(workspace: &Workspace, from: i64, to: i64) -> Vec<i64> {
    workspace
        .log_of("tick")
        .lines()
        .filter(|line| line.contains(" ok "))
        .filter_map(|line| line.split("scheduled=").nth(1)?.split_whitespace().next().map(str::to_string))
        .filter_map(|text| DateTime::parse_from_rfc3339(&text).ok().map(|time| time.timestamp()))
        .filter(|second| (from..=to).contains(second))
        .collect()
}

/// second -> (sample count, value) as CloudWatch holds it.
async fn delivered(endpoint: &str, namespace: &str, from: i64, to: i64) -> BTreeMap<i64, (f64, f64)> {
    let query =
        MetricQuery { namespace, metric_name: "tick", dimensions: &[], start_ms: from * 1000, end_ms: (to + 1) * 1000, period_seconds: 1 };
    let buckets = sdk(endpoint).await.statistics("us-east-1", &query).await.unwrap();
    buckets.into_iter().map(|bucket| (bucket.timestamp_ms / 1000, (bucket.sample_count, bucket.maximum))).collect()
}

/// Every second logged ok in [from, to] arrived exactly once, with its value.
fn assert_each_exactly_once(logged: &[i64], held: &BTreeMap<i64, (f64, f64)>, what: &str) {
    assert!(!logged.is_empty(), "{what}: no runs were logged");
    for second in logged {
        match held.get(second) {
            Some((count, value)) => {
                assert_eq!(*count, 1.0, "{what}: second {second} arrived {count} times");
                assert_eq!(*value, *second as f64, "{what}: second {second} carries a wrong value");
            }
            None => panic!("{what}: second {second} was logged ok but never arrived; CloudWatch holds {held:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_thirty_second_outage_loses_nothing() {
    let mut localstack = LocalStack::start();
    let (workspace, namespace, daemon) = ticking(&localstack, "Outage");

    localstack.stop();
    let down = Utc::now().timestamp();
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert!(daemon.metric("snowflake_spool_datapoints").unwrap_or(0.0) >= 25.0, "the outage's datapoints wait in the spool");
    localstack.restart();
    let up = Utc::now().timestamp();
    daemon.wait_for(Duration::from_secs(60), "the spool to drain", || daemon.metric("snowflake_spool_datapoints") == Some(0.0));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (status, _) = daemon.stop(Duration::from_secs(30));
    assert!(status.success());
    let end = Utc::now().timestamp();

    // LocalStack's restart wiped what it held before; everything from the outage on must be there.
    let logged = logged_seconds(&workspace, down + 1, end);
    assert!(logged.iter().filter(|second| (down + 1..up).contains(second)).count() >= 25, "runs went on during the outage");
    assert_each_exactly_once(&logged, &delivered(&localstack.endpoint(), &namespace, down, end).await, "outage");
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_minus_nine_during_an_outage_loses_nothing() {
    let mut localstack = LocalStack::start();
    let (workspace, namespace, daemon) = ticking(&localstack, "Crash");

    localstack.stop();
    let down = Utc::now().timestamp();
    tokio::time::sleep(Duration::from_secs(12)).await;
    daemon.kill9();
    let killed = Utc::now().timestamp();
    localstack.restart();

    let daemon = Daemon::start(with_aws(&mut workspace.snowflake(), &localstack.endpoint()), &workspace, &[]);
    daemon.wait_for(Duration::from_secs(60), "the replayed spool to drain", || {
        daemon.metric("snowflake_spool_datapoints") == Some(0.0)
            && daemon.metric("snowflake_datapoints_published_total").unwrap_or(0.0) >= 10.0
    });
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (status, _) = daemon.stop(Duration::from_secs(30));
    assert!(status.success());
    let end = Utc::now().timestamp();

    // Every run logged ok before the kill (its value was on disk by then) and after the restart
    // arrived, once: replay is at-least-once, and nothing was acknowledged during the outage.
    let logged = logged_seconds(&workspace, down + 1, end);
    assert!(logged.iter().filter(|second| (down + 1..=killed).contains(second)).count() >= 9, "runs before the kill: {logged:?}");
    assert!(daemon_log_mentions_replay(&workspace), "the second daemon replayed the spool");
    assert_each_exactly_once(&logged, &delivered(&localstack.endpoint(), &namespace, down, end).await, "crash");
}

async fn wait_for_state<F, Fut>(state: &F, wanted: &str, limit: Duration)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Option<String>>,
{
    let started = std::time::Instant::now();
    loop {
        let current = state().await;
        if current.as_deref() == Some(wanted) {
            return;
        }
        assert!(started.elapsed() < limit, "the alarm is still {current:?}, not {wanted}, after {:?}", started.elapsed());
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
}

fn daemon_log_mentions_replay(workspace: &Workspace) -> bool {
    std::fs::read_dir(workspace.root.path())
        .unwrap()
        .filter_map(Result::ok)
        .filter(|entry| entry.file_name().to_string_lossy().starts_with("daemon-"))
        .any(|entry| std::fs::read_to_string(entry.path()).unwrap_or_default().contains("replaying the spool"))
}

#[test]
fn a_thousand_flakes_each_fire_once_a_minute_for_two_minutes() {
    let workspace = Workspace::new();
    for i in 0..1000 {
        workspace.add(&format!("m{i:04}"), json!({"flakeName": format!("m{i:04}"), "flakeCronstring": "* * * * *", "flakeCommand": "echo 1", "flakeMetricNamespace": "Scale"}));
    }
    let daemon = Daemon::start(workspace.snowflake().arg("--dry-run"), &workspace, &[]);
    let first = Utc::now().duration_trunc(TimeDelta::minutes(1)).unwrap() + TimeDelta::minutes(1);
    let second = first + TimeDelta::minutes(1);
    let done = second + TimeDelta::seconds(20);
    while Utc::now() < done {
        std::thread::sleep(Duration::from_millis(500));
    }
    let metrics = daemon.metrics();
    daemon.stop(Duration::from_secs(60));
    let expected: Vec<String> =
        [first, second].iter().map(|t| format!("scheduled={}", t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))).collect();
    let mut problems = Vec::new();
    for i in 0..1000 {
        let log = workspace.log_of(&format!("m{i:04}"));
        for scheduled in &expected {
            let runs = log.lines().filter(|line| line.contains(" ok ") && line.contains(scheduled.as_str())).count();
            if runs != 1 {
                problems.push(format!("m{i:04}: {runs} ok runs for {scheduled}"));
            }
        }
        if log.lines().any(|line| !line.contains(" ok ")) {
            problems.push(format!("m{i:04}: unexpected lines:\n{log}"));
        }
    }
    assert!(problems.is_empty(), "{} problems, first: {:?}", problems.len(), &problems[..problems.len().min(5)]);
    assert!(
        metrics.contains("snowflake_runs_total{flake=\"m0999\",result=\"ok\"} 2"),
        "{}",
        metrics.lines().filter(|l| l.contains("m0999")).collect::<Vec<_>>().join("\n")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flake_that_stops_reporting_sets_off_its_breaching_alarm() {
    let endpoint = endpoint();
    let workspace = Workspace::new();
    let name = unique("alive");
    let alarm = format!("FL-{name}-down");
    let heartbeat = workspace.root.path().join("process-is-up");
    std::fs::write(&heartbeat, "1\n").unwrap();
    workspace.add(
        "alive",
        json!({"flakeName": name, "flakeCronstring": "@every 10s", "flakeCommand": format!("cat {}", heartbeat.display()),
               "flakeMetricNamespace": "Liveness",
               "flakeAlarms": [{"alarmName": "down", "alarmThreshold": 1, "alarmOperator": "<", "alarmPeriodLength": 60,
                                "alarmStatistic": "Minimum", "alarmTreatMissingData": "breaching"}]}),
    );
    let daemon = Daemon::start(with_aws(&mut workspace.snowflake(), &endpoint), &workspace, &[]);
    let cloudwatch = sdk(&endpoint).await;
    let state = || async {
        cloudwatch.describe_alarms_named("us-east-1", std::slice::from_ref(&alarm)).await.unwrap().pop().and_then(|alarm| alarm.state)
    };
    // While the process reports, the alarm settles in OK...
    wait_for_state(&state, "OK", Duration::from_secs(240)).await;
    // ...then the process dies: the command fails and nothing is published any more.
    std::fs::remove_file(&heartbeat).unwrap();
    wait_for_state(&state, "ALARM", Duration::from_secs(240)).await;
    assert!(workspace.log_of(&name).contains(" failed "), "the silent runs are logged as failures");
    daemon.stop(Duration::from_secs(30));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_heartbeat_is_published_every_minute_with_a_host_dimension() {
    let endpoint = endpoint();
    let workspace = Workspace::new();
    let namespace = unique("Heartbeat");
    workspace.add(
        "quiet",
        json!({"flakeName": "quiet", "flakeCronstring": "@yearly", "flakeCommand": "echo 1", "flakeMetricNamespace": "Quiet"}),
    );
    let daemon = Daemon::start(with_aws(&mut workspace.snowflake(), &endpoint), &workspace, &["--heartbeat-namespace", &namespace]);
    let started = Utc::now();
    daemon.wait_for(Duration::from_secs(90), "a heartbeat to be delivered", || {
        daemon.metric("snowflake_datapoints_published_total").unwrap_or(0.0) >= 1.0
    });
    daemon.stop(Duration::from_secs(30));
    let host = nix::unistd::gethostname().unwrap().into_string().unwrap();
    let dimensions = vec![("Host".to_string(), host)];
    let query = MetricQuery {
        namespace: &namespace,
        metric_name: "SnowflakeHeartbeat",
        dimensions: &dimensions,
        start_ms: started.timestamp_millis() - 60_000,
        end_ms: Utc::now().timestamp_millis() + 60_000,
        period_seconds: 60,
    };
    let buckets = sdk(&endpoint).await.statistics("us-east-1", &query).await.unwrap();
    assert_eq!(buckets.iter().map(|b| b.sample_count).sum::<f64>(), 1.0, "{buckets:?}");
    assert_eq!(buckets[0].maximum, 1.0);
}
