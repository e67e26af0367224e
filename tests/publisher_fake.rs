//! The publisher against the in-memory CloudWatch: batching, grouping, flush timing, retries with
//! backoff, and isolation of rejected datums. Fast; no LocalStack needed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use specialsnowflake::cloudwatch::fake::{FakeCloudWatch, Operation};
use specialsnowflake::cloudwatch::{CallError, ErrorKind};
use specialsnowflake::creds::Redactor;
use specialsnowflake::flakelog::FlakeLogs;
use specialsnowflake::metrics::Metrics;
use specialsnowflake::publish::spool::MemorySpool;
use specialsnowflake::publish::{Datapoint, PublisherConfig, PublisherHandle, Series, spawn_publisher};

struct Harness {
    fake: FakeCloudWatch,
    handle: PublisherHandle,
    metrics: Arc<Metrics>,
    logs: tempfile::TempDir,
}

fn harness(config: PublisherConfig) -> Harness {
    let fake = FakeCloudWatch::new();
    let logs = tempfile::tempdir().unwrap();
    let flake_logs = Arc::new(FlakeLogs::open(logs.path(), 7, Redactor::default()).unwrap());
    let metrics = Arc::new(Metrics::new());
    let (handle, _task) =
        spawn_publisher(Arc::new(fake.clone()), Box::new(MemorySpool::default()), Vec::new(), config, metrics.clone(), flake_logs);
    Harness { fake, handle, metrics, logs }
}

fn fast() -> PublisherConfig {
    PublisherConfig { flush_interval: Duration::from_millis(200), max_put_rate: 1000.0, ..PublisherConfig::default() }
}

fn series(flake: &str, region: &str, namespace: &str) -> Arc<Series> {
    Arc::new(Series {
        flake: flake.to_string(),
        region: region.to_string(),
        namespace: namespace.to_string(),
        metric_name: flake.to_string(),
        dimensions: vec![("Host".to_string(), "h1".to_string())],
        unit: "Count".to_string(),
        storage_resolution: 60,
        aggregate_seconds: None,
    })
}

fn points(count: usize, region: &str, namespace: &str) -> Vec<Datapoint> {
    let now = chrono::Utc::now().timestamp_millis();
    (0..count).map(|i| Datapoint { series: series(&format!("f{i}"), region, namespace), value: i as f64, timestamp_ms: now }).collect()
}

#[tokio::test]
async fn twenty_five_hundred_datapoints_take_three_calls() {
    let h = harness(fast());
    for chunk in points(2500, "us-east-1", "N").chunks(7) {
        assert!(h.handle.publish(chunk.to_vec()).await);
    }
    let report = h.handle.drain(Duration::from_secs(10)).await;
    assert_eq!((report.delivered, report.pending, report.rejected), (2500, 0, 0));
    assert_eq!(h.fake.put_sizes(), [1000, 1000, 500]);
    assert_eq!(h.metrics.put_calls("ok"), 3);
    let mut values: Vec<f64> = h.fake.data("us-east-1", "N").iter().map(|d| d.value).collect();
    values.sort_by(f64::total_cmp);
    assert_eq!(values, (0..2500).map(|i| i as f64).collect::<Vec<_>>());
}

#[tokio::test]
async fn batches_are_per_region_and_namespace() {
    let h = harness(fast());
    let mut all = points(3, "us-east-1", "A");
    all.extend(points(2, "eu-west-1", "A"));
    all.extend(points(4, "us-east-1", "B"));
    h.handle.publish(all).await;
    h.handle.drain(Duration::from_secs(10)).await;
    assert_eq!(h.fake.data("us-east-1", "A").len(), 3);
    assert_eq!(h.fake.data("eu-west-1", "A").len(), 2);
    assert_eq!(h.fake.data("us-east-1", "B").len(), 4);
    assert_eq!(h.fake.calls(Operation::PutMetricData), 3);
}

#[tokio::test]
async fn a_partial_batch_waits_for_the_flush_interval() {
    let h = harness(PublisherConfig { flush_interval: Duration::from_secs(3), ..fast() });
    h.handle.publish(points(5, "us-east-1", "N")).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(h.fake.calls(Operation::PutMetricData), 0, "5 datapoints are not a full batch: they wait for the interval");
    let started = Instant::now();
    while h.fake.calls(Operation::PutMetricData) == 0 {
        assert!(started.elapsed() < Duration::from_secs(20), "the interval passed but nothing was sent");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(h.fake.put_sizes(), [5]);
}

#[tokio::test]
async fn a_full_batch_goes_at_once() {
    let h = harness(PublisherConfig { flush_interval: Duration::from_secs(60), ..fast() });
    h.handle.publish(points(1000, "us-east-1", "N")).await;
    let started = Instant::now();
    while h.fake.calls(Operation::PutMetricData) == 0 {
        assert!(started.elapsed() < Duration::from_secs(20), "a full batch must not wait for the 60 s interval");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(h.fake.put_sizes(), [1000]);
}

#[tokio::test]
async fn throttling_is_retried_with_backoff_and_nothing_is_lost() {
    let h = harness(fast());
    h.fake.fail_next(Operation::PutMetricData, 3, CallError::new(ErrorKind::Throttling, Some("Throttling"), "Rate exceeded"));
    let started = Instant::now();
    h.handle.publish(points(10, "us-east-1", "N")).await;
    let report = h.handle.drain(Duration::from_secs(30)).await;
    let elapsed = started.elapsed();
    assert_eq!((report.delivered, report.pending), (10, 0));
    assert_eq!(h.fake.calls(Operation::PutMetricData), 4);
    assert_eq!(h.metrics.put_calls("throttled"), 3);
    // Backoff starts at 250 ms and doubles: three waits of at least 250 + 500 + 1000 ms.
    assert!(elapsed >= Duration::from_millis(1750), "retries must back off, took only {elapsed:?}");
}

#[tokio::test]
async fn an_outage_keeps_data_and_the_backlog_drains_in_full_batches() {
    let h = harness(fast());
    h.fake.fail_next(Operation::PutMetricData, 4, CallError::new(ErrorKind::Unavailable, None, "connection refused"));
    for chunk in points(2300, "us-east-1", "N").chunks(100) {
        h.handle.publish(chunk.to_vec()).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let report = h.handle.drain(Duration::from_secs(60)).await;
    assert_eq!((report.delivered, report.pending), (2300, 0));
    assert_eq!(h.metrics.put_calls("unavailable"), 4);
    let sizes = h.fake.put_sizes();
    assert_eq!(sizes.iter().sum::<usize>(), 2300);
    assert!(sizes.len() <= 4, "the backlog goes out in full batches: {sizes:?}");
}

#[tokio::test]
async fn three_bad_datums_in_a_thousand_are_isolated_and_logged() {
    let h = harness(fast());
    let bad = [17.0, 500.0, 999.0];
    h.fake.reject_datums(move |datum| bad.contains(&datum.value).then(|| format!("The value {} is invalid for this metric", datum.value)));
    h.handle.publish(points(1000, "us-east-1", "N")).await;
    let report = h.handle.drain(Duration::from_secs(30)).await;
    assert_eq!((report.delivered, report.rejected, report.pending), (997, 3, 0));
    let delivered: Vec<f64> = h.fake.data("us-east-1", "N").iter().map(|d| d.value).collect();
    assert_eq!(delivered.len(), 997);
    assert!(bad.iter().all(|value| !delivered.contains(value)));
    assert_eq!(h.metrics.datapoints_rejected.get(), 3);
    for value in bad {
        let log = std::fs::read_to_string(h.logs.path().join(format!("f{value}.log"))).unwrap();
        assert!(log.contains("dropped") && log.contains(&format!("The value {value} is invalid")), "{log}");
    }
    // Bisection costs about 2·k·log2(n) requests, not one per datum.
    assert!(h.fake.calls(Operation::PutMetricData) < 70, "{} calls", h.fake.calls(Operation::PutMetricData));
}

#[tokio::test]
async fn requests_are_paced_to_the_configured_rate() {
    let h = harness(PublisherConfig { max_put_rate: 5.0, ..fast() });
    h.handle.publish(points(6000, "us-east-1", "N")).await;
    let started = Instant::now();
    let report = h.handle.drain(Duration::from_secs(30)).await;
    assert_eq!(report.delivered, 6000);
    assert_eq!(h.fake.put_sizes(), [1000; 6]);
    // Six requests at five per second: the last starts a second after the first.
    assert!(started.elapsed() >= Duration::from_millis(950), "{:?}", started.elapsed());
}

mod with_disk_spool {
    use super::*;
    use specialsnowflake::publish::spool::disk::DiskSpool;

    fn open(state: &std::path::Path) -> (DiskSpool, Vec<(u64, Datapoint)>) {
        let (spool, recovered) = DiskSpool::open(state, 1 << 24, chrono::Utc::now().timestamp_millis()).unwrap();
        (spool, recovered.points)
    }

    #[tokio::test]
    async fn an_abrupt_stop_during_an_outage_loses_nothing_and_duplicates_nothing() {
        let state = tempfile::tempdir().unwrap();
        let logs = tempfile::tempdir().unwrap();
        let flake_logs = Arc::new(FlakeLogs::open(logs.path(), 7, Redactor::default()).unwrap());
        let down = FakeCloudWatch::new();
        down.set_down(Operation::PutMetricData, CallError::new(ErrorKind::Unavailable, None, "connection refused"));

        let (spool, replay) = open(state.path());
        assert!(replay.is_empty());
        let (handle, task) =
            spawn_publisher(Arc::new(down.clone()), Box::new(spool), replay, fast(), Arc::new(Metrics::new()), flake_logs.clone());
        let sent = points(1500, "us-east-1", "N");
        for chunk in sent.chunks(100) {
            handle.publish(chunk.to_vec()).await;
        }
        // Let everything reach the disk (50 ms commit window) and a few sends fail.
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert!(down.calls(Operation::PutMetricData) >= 1);
        // The moral equivalent of kill -9: the task is dropped mid-flight, no shutdown runs.
        task.abort();
        let _ = task.await;
        drop(handle);

        let (spool, replay) = open(state.path());
        assert_eq!(replay.len(), 1500, "every accepted datapoint is in the spool");
        let up = FakeCloudWatch::new();
        let (handle, _task) = spawn_publisher(Arc::new(up.clone()), Box::new(spool), replay, fast(), Arc::new(Metrics::new()), flake_logs);
        let report = handle.drain(Duration::from_secs(30)).await;
        assert_eq!((report.delivered, report.pending), (1500, 0));
        let mut values: Vec<f64> = up.data("us-east-1", "N").iter().map(|d| d.value).collect();
        values.sort_by(f64::total_cmp);
        assert_eq!(values, (0..1500).map(|i| i as f64).collect::<Vec<_>>(), "each value exactly once");
        assert_eq!(up.data("us-east-1", "N")[0].timestamp_ms, sent[0].timestamp_ms, "original timestamps");
        drop(handle);
        tokio::time::sleep(Duration::from_millis(100)).await;
        let (_, replay) = open(state.path());
        assert!(replay.is_empty(), "delivered datapoints are acknowledged in the spool");
    }
}

#[tokio::test]
async fn a_send_task_that_panics_does_not_wedge_its_queue() {
    let h = harness(fast());
    h.fake.panic_next_puts(1);
    h.handle.publish(points(5, "us-east-1", "N")).await;
    let report = h.handle.drain(Duration::from_secs(40)).await;
    assert_eq!((report.delivered, report.pending), (5, 0), "the batch is retried after the failed task");
    assert_eq!(h.fake.data("us-east-1", "N").len(), 5);
}

/// Issue 18: a firing whose runs take longer than the flush interval (a busy host, a splay) still
/// leaves in one call: while runs hold partial batches back, the interval does not split them.
#[tokio::test]
async fn a_firing_longer_than_the_flush_interval_takes_one_call() {
    let h = harness(fast());
    let started = Instant::now();
    // 100 runs, as the scheduler starts them: each holds from the firing until its value is in
    // the spool; they end over about a second, five flush intervals.
    let runs: Vec<_> = points(100, "us-east-1", "N")
        .into_iter()
        .enumerate()
        .map(|(index, point)| {
            let (handle, hold) = (h.handle.clone(), h.handle.hold());
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(10 * index as u64)).await;
                handle.publish_durably(vec![point]).await;
                drop(hold);
            })
        })
        .collect();
    for run in runs {
        run.await.unwrap();
    }
    assert!(started.elapsed() > Duration::from_millis(900));
    let waited = Instant::now();
    while h.fake.calls(Operation::PutMetricData) == 0 {
        assert!(waited.elapsed() < Duration::from_secs(5), "nothing was sent after the last hold was released");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(waited.elapsed() < Duration::from_millis(500), "the batch leaves once the last run is done: {:?}", waited.elapsed());
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(h.fake.put_sizes(), [100]);
}

/// A run that never ends holds nothing back beyond `max_hold`.
#[tokio::test]
async fn a_hold_never_delays_a_batch_beyond_max_hold() {
    let h = harness(PublisherConfig { max_hold: Duration::from_millis(700), ..fast() });
    let _forever = h.handle.hold();
    let started = Instant::now();
    h.handle.publish(points(3, "us-east-1", "N")).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(h.fake.calls(Operation::PutMetricData), 0, "held past the 200 ms flush interval");
    while h.fake.calls(Operation::PutMetricData) == 0 {
        assert!(started.elapsed() < Duration::from_secs(5), "max_hold passed but nothing was sent");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(started.elapsed() >= Duration::from_millis(700));
    assert_eq!(h.fake.put_sizes(), [3]);
}

/// Without holds (a sparse schedule, `snowflake once`), the flush interval alone decides.
#[tokio::test]
async fn without_holds_a_partial_batch_leaves_after_the_flush_interval() {
    let h = harness(PublisherConfig { max_hold: Duration::from_secs(60), ..fast() });
    let started = Instant::now();
    h.handle.publish(points(2, "us-east-1", "N")).await;
    while h.fake.calls(Operation::PutMetricData) == 0 {
        assert!(started.elapsed() < Duration::from_secs(5), "the flush interval passed but nothing was sent");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(started.elapsed() >= Duration::from_millis(200));
}
