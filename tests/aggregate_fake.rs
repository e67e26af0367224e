//! `flakeAggregate` (SPEC 8.1) against the in-memory CloudWatch: the publisher folds a window's
//! values into few datums whose values and counts are exactly the values sent one by one (so every
//! statistic, percentiles included, is the same), and the whole daemon publishes an aggregated
//! flake's runs as one datum per window, at the window's start, losing none at a stop.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use specialsnowflake::catalog::Loader;
use specialsnowflake::cloudwatch::Datum;
use specialsnowflake::cloudwatch::fake::{FakeCloudWatch, Operation};
use specialsnowflake::creds::{Creds, Redactor};
use specialsnowflake::daemon::{self, DaemonConfig, Services};
use specialsnowflake::flakelog::FlakeLogs;
use specialsnowflake::metrics::Metrics;
use specialsnowflake::placeholders::HostFacts;
use specialsnowflake::publish::spool::MemorySpool;
use specialsnowflake::publish::{Datapoint, PublisherConfig, Series, spawn_publisher};

const REGION: &str = "us-east-1";

fn series(name: &str, aggregate_seconds: Option<u32>) -> Arc<Series> {
    Arc::new(Series {
        flake: name.to_string(),
        region: REGION.to_string(),
        namespace: "Agg".to_string(),
        metric_name: name.to_string(),
        dimensions: vec![("Host".to_string(), "h1".to_string())],
        unit: "Milliseconds".to_string(),
        storage_resolution: 60,
        aggregate_seconds,
    })
}

/// Every value a metric received, expanded by its counts, sorted: the multiset CloudWatch computes
/// statistics over. With the datum timestamps, truncated to `period_ms`.
fn samples(data: &[Datum], metric: &str, period_ms: i64) -> Vec<(i64, u64)> {
    let mut samples: Vec<(i64, u64)> = data
        .iter()
        .filter(|datum| datum.metric_name == metric)
        .flat_map(|datum| {
            let period = datum.timestamp_ms - datum.timestamp_ms.rem_euclid(period_ms);
            datum.samples().into_iter().flat_map(move |(value, count)| std::iter::repeat_n((period, value.to_bits()), count as usize))
        })
        .collect();
    samples.sort_unstable();
    samples
}

/// The nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank - 1]
}

#[tokio::test]
async fn a_window_of_values_goes_as_few_datums_with_identical_statistics() {
    let fake = FakeCloudWatch::new();
    let logs = tempfile::tempdir().unwrap();
    let flake_logs = Arc::new(FlakeLogs::open(logs.path(), 7, Redactor::default()).unwrap());
    let metrics = Arc::new(Metrics::new());
    let config = PublisherConfig { flush_interval: Duration::from_millis(50), max_put_rate: 1000.0, ..PublisherConfig::default() };
    let (handle, _task) =
        spawn_publisher(Arc::new(fake.clone()), Box::new(MemorySpool::default()), Vec::new(), config, metrics.clone(), flake_logs);

    // Ten closed minutes of `@every 5s` latencies, skewed and with repeats, and a few minutes
    // of 400 runs each (more than 150 distinct values a window).
    let minute = (chrono::Utc::now().timestamp_millis() / 60_000 - 30) * 60_000;
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut times: Vec<i64> = (0..120).map(|i| minute + i * 5_000).collect();
    times.extend((0..1200).map(|i| minute + 600_000 + i * 150));
    let values: Vec<f64> = times.iter().map(|_| ((next() % 1000) as f64 / 4.0).powf(1.5).round()).collect();
    let (aggregated, plain) = (series("agg", Some(60)), series("plain", None));
    // As a daemon restarted after the windows closed would replay them from its spool: at once.
    let mut points = Vec::new();
    for (time, value) in times.iter().zip(&values) {
        points.push(Datapoint { series: aggregated.clone(), value: *value, timestamp_ms: *time });
        points.push(Datapoint { series: plain.clone(), value: *value, timestamp_ms: *time });
    }
    assert!(handle.publish(points).await);
    let report = handle.drain(Duration::from_secs(20)).await;
    assert_eq!((report.delivered, report.pending, report.rejected), (2 * times.len() as u64, 0, 0), "{report:?}");

    let data = fake.data(REGION, "Agg");
    let datums = |metric: &str| data.iter().filter(|datum| datum.metric_name == metric).count();
    assert_eq!(datums("plain"), times.len());
    // One datum a minute, or more for every further 150 distinct values.
    let mut distinct = std::collections::BTreeMap::<i64, std::collections::BTreeSet<u64>>::new();
    for (time, value) in times.iter().zip(&values) {
        distinct.entry(time - time % 60_000).or_default().insert(value.to_bits());
    }
    let expected: usize = distinct.values().map(|set| set.len().div_ceil(150)).sum();
    assert!(expected > distinct.len(), "some minute needs more than one datum");
    let folded = datums("agg");
    assert_eq!(folded, expected, "{folded} datums for {} values", times.len());
    assert!(data.iter().filter(|d| d.metric_name == "agg").all(|d| d.timestamp_ms % 60_000 == 0 && d.counted_values.len() <= 150));
    assert!(times.len() >= 5 * folded, "at least 5 times fewer datums");

    // Per minute, the same values with the same counts: every statistic is the same.
    assert_eq!(samples(&data, "agg", 60_000), samples(&data, "plain", 60_000));
    let sorted = |metric: &str| {
        let mut values: Vec<f64> = samples(&data, metric, 60_000).into_iter().map(|(_, bits)| f64::from_bits(bits)).collect();
        values.sort_by(f64::total_cmp);
        values
    };
    let (agg, plain_values) = (sorted("agg"), sorted("plain"));
    for p in [50.0, 90.0, 99.0, 99.9] {
        assert_eq!(percentile(&agg, p), percentile(&plain_values, p), "p{p}");
    }
    let encoded = metrics.encode();
    assert!(encoded.contains(&format!("snowflake_folded_datums_total {folded}")), "{encoded}");
    assert!(encoded.contains(&format!("snowflake_folded_datapoints_total {}", times.len())), "{encoded}");
    assert!(encoded.contains(&format!("snowflake_datapoints_published_total {}", 2 * times.len())), "{encoded}");
}

#[tokio::test]
async fn an_open_window_waits_and_a_rejected_folded_datum_drops_and_logs_each_of_its_values() {
    let fake = FakeCloudWatch::new();
    let logs = tempfile::tempdir().unwrap();
    let flake_logs = Arc::new(FlakeLogs::open(logs.path(), 7, Redactor::default()).unwrap());
    let config = PublisherConfig { flush_interval: Duration::from_millis(50), max_put_rate: 1000.0, ..PublisherConfig::default() };
    let (handle, _task) =
        spawn_publisher(Arc::new(fake.clone()), Box::new(MemorySpool::default()), Vec::new(), config, Arc::new(Metrics::new()), flake_logs);
    let open = series("open", Some(3600));
    let now = chrono::Utc::now().timestamp_millis();
    handle.publish(vec![Datapoint { series: open.clone(), value: 1.0, timestamp_ms: now }]).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(fake.calls(Operation::PutMetricData), 0, "the hour's window is still open");

    fake.reject_datums(|datum| (datum.sample_count() > 1).then(|| "no Values here".to_string()));
    handle.publish(vec![Datapoint { series: open.clone(), value: 2.0, timestamp_ms: now }]).await;
    let report = handle.drain(Duration::from_secs(10)).await;
    assert_eq!((report.delivered, report.rejected, report.pending), (0, 2, 0), "a drain sends open windows: {report:?}");
    let log = std::fs::read_to_string(logs.path().join("open.log")).unwrap();
    assert_eq!(log.matches("no Values here").count(), 2, "{log}");
}

fn never() -> impl Future<Output = ()> {
    std::future::pending()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_sends_one_datum_per_window_and_a_stop_sends_the_open_one() {
    let root = tempfile::tempdir().unwrap();
    for dir in ["flakes", "logs", "state"] {
        std::fs::create_dir(root.path().join(dir)).unwrap();
    }
    let flake = json!({"flakeName": "tick", "flakeCronstring": "@every 1s", "flakeCommand": "date -u -d \"$SNOWFLAKE_SCHEDULED_TIME\" +%S",
                       "flakeMetricNamespace": "AggDaemon", "flakeStorageResolution": 1, "flakeAggregate": "4s"});
    std::fs::write(root.path().join("flakes/tick.json"), flake.to_string()).unwrap();
    let fake = FakeCloudWatch::new();
    let config = DaemonConfig {
        flakes_dir: root.path().join("flakes"),
        state_dir: root.path().join("state"),
        workdir: root.path().to_path_buf(),
        dry_run: false,
        listen: None,
        status_page: true,
        reconcile_interval: Duration::from_secs(600),
        rescan_interval: Duration::from_secs(600),
        shutdown_grace: Duration::from_secs(5),
        spool_max_bytes: 1 << 30,
        heartbeat_namespace: None,
        dashboard: None,
        splay: Duration::ZERO,
        max_concurrent_runs: 16,
        command_nice: 0,
        publisher: PublisherConfig { flush_interval: Duration::from_millis(100), max_put_rate: 1000.0, ..PublisherConfig::default() },
        container_engine: None,
    };
    let services = Services {
        cloudwatch: Arc::new(fake.clone()),
        default_region: Some(REGION.to_string()),
        creds: Creds::default(),
        logs: Arc::new(FlakeLogs::open(&root.path().join("logs"), 7, Redactor::default()).unwrap()),
        loader: Loader::new(chrono_tz::Tz::UTC, HostFacts::local()),
    };
    let daemon = daemon::start(config, services).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while fake.data(REGION, "AggDaemon").len() < 3 {
        assert!(tokio::time::Instant::now() < deadline, "three windows were not sent in 30 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let metrics = daemon.metrics().encode();
    let report = daemon.stop(never()).await;
    assert_eq!((report.pending, report.rejected), (0, 0), "the stop sent the open window: {report:?}");

    let log = std::fs::read_to_string(root.path().join("logs/tick.log")).unwrap();
    let runs: Vec<(i64, f64)> = log
        .lines()
        .filter(|line| line.contains(" ok "))
        .map(|line| {
            let scheduled = line.split_whitespace().find_map(|word| word.strip_prefix("scheduled=")).unwrap();
            let value = line.rsplit_once("value=").unwrap().1.parse().unwrap();
            (chrono::DateTime::parse_from_rfc3339(scheduled).unwrap().timestamp_millis(), value)
        })
        .collect();
    assert_eq!(report.delivered, runs.len() as u64, "every run's value was delivered once: {report:?}\n{log}");
    let data = fake.data(REGION, "AggDaemon");
    assert!(data.iter().all(|datum| datum.timestamp_ms % 4_000 == 0 && datum.storage_resolution == 1), "{data:?}");
    let mut windows: Vec<i64> = data.iter().map(|datum| datum.timestamp_ms).collect();
    windows.dedup();
    // Closed windows go once; only the one open at the stop may be split (a run finishing after
    // the drain started), and a run that outlasts the grace could add one more.
    assert!(windows.len() + 1 >= data.len(), "about one datum per window: {data:?}");
    let mut expected: Vec<(i64, u64)> = runs.iter().map(|(time, value)| (time - time.rem_euclid(4_000), value.to_bits())).collect();
    expected.sort_unstable();
    assert_eq!(samples(&data, "tick", 4_000), expected, "each run's value, in its window");
    assert!(metrics.contains("snowflake_folded_datums_total"), "{metrics}");
}
