//! `flakeAggregate` (SPEC 8.1) against LocalStack, a real CloudWatch protocol peer, with the real
//! SDK: aggregated and unaggregated copies of the same values read back with identical
//! statistics, and a daemon killed with `kill -9` sends every spooled value of an open window, or
//! of a window that closed while it was down, exactly once after its restart.
//!
//! Percentiles: LocalStack 4.13's GetMetricStatistics ignores `ExtendedStatistics` (it computes
//! only the standard statistics), so percentiles are checked on the in-memory CloudWatch instead
//! (tests/aggregate_fake.rs), where the values and counts received are compared as a multiset.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use common::{Daemon, Workspace, endpoint, sdk, unique, with_aws};
use serde_json::json;
use specialsnowflake::cloudwatch::sdk::{MetricQuery, StatisticsBucket};
use specialsnowflake::creds::Redactor;
use specialsnowflake::flakelog::FlakeLogs;
use specialsnowflake::metrics::Metrics;
use specialsnowflake::publish::spool::MemorySpool;
use specialsnowflake::publish::spool::disk::DiskSpool;
use specialsnowflake::publish::{Datapoint, PublisherConfig, Series, spawn_publisher};

const REGION: &str = "us-east-1";

fn dimensions() -> Vec<(String, String)> {
    vec![("Host".to_string(), "h1".to_string())]
}

async fn read_back(namespace: &str, metric: &str, start_ms: i64, end_ms: i64, period_seconds: i32) -> Vec<StatisticsBucket> {
    let cloudwatch = sdk(&endpoint()).await;
    let dimensions = dimensions();
    let query = MetricQuery { namespace, metric_name: metric, dimensions: &dimensions, start_ms, end_ms, period_seconds };
    cloudwatch.statistics(REGION, &query).await.expect("GetMetricStatistics")
}

#[tokio::test(flavor = "multi_thread")]
async fn aggregated_and_plain_values_read_back_with_identical_statistics() {
    let namespace = unique("Aggregate");
    let cloudwatch = Arc::new(sdk(&endpoint()).await);
    let logs = tempfile::tempdir().unwrap();
    let flake_logs = Arc::new(FlakeLogs::open(logs.path(), 7, Redactor::default()).unwrap());
    let metrics = Arc::new(Metrics::new());
    let config = PublisherConfig { flush_interval: Duration::from_millis(100), max_put_rate: 100.0, ..PublisherConfig::default() };
    let (handle, _task) = spawn_publisher(cloudwatch, Box::new(MemorySpool::default()), Vec::new(), config, metrics.clone(), flake_logs);

    let series = |name: &str, aggregate_seconds| {
        Arc::new(Series {
            flake: name.to_string(),
            region: REGION.to_string(),
            namespace: namespace.clone(),
            metric_name: name.to_string(),
            dimensions: dimensions(),
            unit: "Milliseconds".to_string(),
            storage_resolution: 60,
            aggregate_seconds,
        })
    };
    let (aggregated, plain) = (series("latency-aggregated", Some(60)), series("latency", None));
    // Five minutes of `@every 10s`, then one minute of 300 runs (more than 150 distinct values):
    // whole numbers, so the sums do not depend on the order CloudWatch adds them in.
    let first_minute = (Utc::now().timestamp_millis() / 60_000 - 10) * 60_000;
    let mut times: Vec<i64> = (0..30).map(|i| first_minute + i * 10_000).collect();
    times.extend((0..300).map(|i| first_minute + 300_000 + i * 200));
    let mut points = Vec::new();
    for (i, time) in times.iter().enumerate() {
        let value = ((i * 7919) % 997) as f64;
        points.push(Datapoint { series: aggregated.clone(), value, timestamp_ms: *time });
        points.push(Datapoint { series: plain.clone(), value, timestamp_ms: *time });
    }
    assert!(handle.publish(points).await);
    let report = handle.drain(Duration::from_secs(30)).await;
    assert_eq!((report.delivered, report.pending, report.rejected), (2 * times.len() as u64, 0, 0), "{report:?}");
    let encoded = metrics.encode();
    let folded: f64 = encoded
        .lines()
        .find_map(|line| line.strip_prefix("snowflake_folded_datums_total "))
        .and_then(|value| value.parse().ok())
        .expect("the folded datums are counted");
    assert_eq!(folded, 7.0, "5 minutes of one datum each, and 2 datums for 300 distinct values: {encoded}");

    let end = first_minute + 7 * 60_000;
    let got = read_back(&namespace, "latency-aggregated", first_minute, end, 60).await;
    let want = read_back(&namespace, "latency", first_minute, end, 60).await;
    assert_eq!(want.len(), 6, "six minutes of values: {want:?}");
    assert_eq!(want.iter().map(|bucket| bucket.sample_count).sum::<f64>(), times.len() as f64);
    assert_eq!(got, want, "SampleCount, Sum, Minimum, Maximum (and so Average) per minute");
    // Over a longer period too.
    assert_eq!(
        read_back(&namespace, "latency-aggregated", first_minute, end, 300).await,
        read_back(&namespace, "latency", first_minute, end, 300).await
    );
}

/// (window start, value) of every run the flake's log records as ok.
fn logged_runs(log: &str, window_ms: i64) -> BTreeSet<(i64, i64, u64)> {
    log.lines()
        .filter(|line| line.contains(" ok "))
        .map(|line| {
            let scheduled = line.split_whitespace().find_map(|word| word.strip_prefix("scheduled=")).expect("scheduled=");
            let value: f64 = line.rsplit_once("value=").expect("value=").1.parse().unwrap();
            let time = chrono::DateTime::parse_from_rfc3339(scheduled).unwrap().timestamp_millis();
            (time - time.rem_euclid(window_ms), time, value.to_bits())
        })
        .collect()
}

/// What the spool holds for the next start, as the same triples.
fn spooled(workspace: &Workspace, window_ms: i64) -> BTreeSet<(i64, i64, u64)> {
    let (spool, recovered) = DiskSpool::open(&workspace.state(), 1 << 30, Utc::now().timestamp_millis()).unwrap();
    drop(spool);
    recovered
        .points
        .iter()
        .map(|(_, p)| (p.timestamp_ms - p.timestamp_ms.rem_euclid(window_ms), p.timestamp_ms, p.value.to_bits()))
        .collect()
}

#[test]
fn after_kill_9_spooled_values_of_open_and_closed_windows_are_sent_exactly_once() {
    const WINDOW_MS: i64 = 10_000;
    let endpoint = endpoint();
    let workspace = Workspace::new();
    let namespace = unique("AggregateCrash");
    let flake = json!({"flakeName": "tick", "flakeCronstring": "@every 1s", "flakeCommand": "date -u -d \"$SNOWFLAKE_SCHEDULED_TIME\" +%S",
                       "flakeMetricNamespace": namespace, "flakeStorageResolution": 1, "flakeAggregate": "10s",
                       "flakeDimensions": {"Host": "h1"}});
    let started = Utc::now().timestamp_millis();
    let start = |workspace: &Workspace| {
        Daemon::start(with_aws(&mut workspace.snowflake(), &endpoint).arg("--flush-interval").arg("200ms"), workspace, &[])
    };
    let runs = |workspace: &Workspace| workspace.log_of("tick").matches(" ok ").count();

    // Life 1, killed in the middle of a window.
    workspace.add("tick", flake.clone());
    let daemon = start(&workspace);
    daemon.wait_for(Duration::from_secs(30), "three runs", || runs(&workspace) >= 3);
    daemon.kill9();
    let mut produced = logged_runs(&workspace.log_of("tick"), WINDOW_MS);
    let left = spooled(&workspace, WINDOW_MS);
    assert!(!left.is_empty(), "the open window's values are in the spool");
    produced.extend(left.iter().copied());

    // Life 2 starts while that window may still be open: the replayed values wait for it, and
    // this life's runs join them.
    let daemon = start(&workspace);
    let before = runs(&workspace);
    daemon.wait_for(Duration::from_secs(30), "three more runs", || runs(&workspace) >= before + 3);
    daemon.kill9();
    produced.extend(logged_runs(&workspace.log_of("tick"), WINDOW_MS));
    let left = spooled(&workspace, WINDOW_MS);
    assert!(!left.is_empty());
    produced.extend(left.iter().copied());

    // Life 3 starts after every window of those values has closed (window, then 5 s of grace),
    // and with no flake: it only sends what the spool held, at once.
    std::fs::remove_file(workspace.flakes().join("tick.json")).unwrap();
    let last_window_end = left.iter().map(|(window, _, _)| window + WINDOW_MS).max().unwrap();
    let wait_ms = (last_window_end + 6_000 - Utc::now().timestamp_millis()).max(0);
    std::thread::sleep(Duration::from_millis(wait_ms as u64));
    let daemon = start(&workspace);
    daemon.wait_for(Duration::from_secs(10), "the spool to be delivered", || {
        daemon.metric("snowflake_datapoints_published_total").is_some_and(|sent| sent >= left.len() as f64)
    });
    let (status, _) = daemon.stop(Duration::from_secs(30));
    assert!(status.success());
    assert!(spooled(&workspace, WINDOW_MS).is_empty(), "everything was acknowledged");

    // Each produced value once: per window, the count and the sum of what was produced.
    let mut expected: BTreeMap<i64, (f64, f64)> = BTreeMap::new();
    for (window, _, bits) in &produced {
        let entry = expected.entry(*window).or_default();
        entry.0 += 1.0;
        entry.1 += f64::from_bits(*bits);
    }
    let end = Utc::now().timestamp_millis() + 60_000;
    let begin = started - started.rem_euclid(WINDOW_MS) - WINDOW_MS;
    let buckets = tokio::runtime::Runtime::new().unwrap().block_on(read_back(&namespace, "tick", begin, end, 10));
    let got: BTreeMap<i64, (f64, f64)> = buckets.iter().map(|bucket| (bucket.timestamp_ms, (bucket.sample_count, bucket.sum))).collect();
    assert_eq!(got, expected, "per 10 s window: (SampleCount, Sum) read back vs produced");
}
