//! A spool that cannot be written (a full disk) during an outage: values are still sent without
//! a durable copy, `/healthz` and `/metrics` say the spool is degraded while it lasts, and the
//! stop counts what stays in the spool apart from what is lost (issue 12, item 7: the stop
//! message used to count values that had no durable copy as left in the spool).

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use specialsnowflake::cloudwatch::fake::{FakeCloudWatch, Operation};
use specialsnowflake::cloudwatch::{CallError, ErrorKind};
use specialsnowflake::creds::Redactor;
use specialsnowflake::daemon::Health;
use specialsnowflake::flakelog::FlakeLogs;
use specialsnowflake::metrics::Metrics;
use specialsnowflake::publish::spool::{Dropped, MemorySpool, Spool, SpoolStats};
use specialsnowflake::publish::{Accepted, Datapoint, PublisherConfig, Series, spawn_publisher};

/// A memory spool on a disk that can fill up: while `full`, every write fails with ENOSPC.
struct FillingDisk {
    kept: MemorySpool,
    full: Arc<AtomicBool>,
}

impl FillingDisk {
    fn check(&self) -> io::Result<()> {
        if self.full.load(Ordering::SeqCst) { Err(io::Error::from_raw_os_error(nix::libc::ENOSPC)) } else { Ok(()) }
    }
}

impl Spool for FillingDisk {
    fn append(&mut self, points: &[Datapoint]) -> io::Result<u64> {
        self.check()?;
        self.kept.append(points)
    }

    fn ack(&mut self, seqs: &[u64]) -> io::Result<()> {
        self.check()?;
        self.kept.ack(seqs)
    }

    fn enforce_limits(&mut self, now_ms: i64) -> Dropped {
        self.kept.enforce_limits(now_ms)
    }

    fn stats(&self) -> SpoolStats {
        self.kept.stats()
    }
}

fn point(value: f64) -> Datapoint {
    let series = Arc::new(Series {
        flake: "f".to_string(),
        region: "us-east-1".to_string(),
        namespace: "Full".to_string(),
        metric_name: "f".to_string(),
        dimensions: Vec::new(),
        unit: "None".to_string(),
        storage_resolution: 60,
        aggregate_seconds: None,
    });
    Datapoint { series, value, timestamp_ms: chrono::Utc::now().timestamp_millis() }
}

#[tokio::test]
async fn a_full_disk_during_an_outage_is_reported_and_the_stop_counts_only_what_is_on_disk() {
    let fake = FakeCloudWatch::new();
    fake.set_down(Operation::PutMetricData, CallError::new(ErrorKind::Unavailable, None, "outage"));
    let logs = tempfile::tempdir().unwrap();
    let flake_logs = Arc::new(FlakeLogs::open(logs.path(), 7, Redactor::default()).unwrap());
    let metrics = Arc::new(Metrics::new());
    let health = Health::new(metrics.clone());
    health.tick();
    let full = Arc::new(AtomicBool::new(false));
    let spool = FillingDisk { kept: MemorySpool::default(), full: full.clone() };
    let config = PublisherConfig { flush_interval: Duration::from_millis(50), max_put_rate: 1000.0, ..PublisherConfig::default() };
    let (publisher, task) = spawn_publisher(Arc::new(fake), Box::new(spool), Vec::new(), config, metrics.clone(), flake_logs);

    for value in 0..3 {
        assert_eq!(publisher.publish_durably(vec![point(f64::from(value))]).await, Accepted::Durably);
    }
    assert!(health.report().healthy);
    assert_eq!(health.report().body, "ok\n");

    full.store(true, Ordering::SeqCst);
    for value in 3..5 {
        assert_eq!(publisher.publish_durably(vec![point(f64::from(value))]).await, Accepted::WithoutSpool);
    }
    let report = health.report();
    assert!(report.healthy, "the scheduler still works: degraded, not down");
    assert!(report.body.contains("spool: degraded"), "{}", report.body);
    assert!(metrics.encode().contains("snowflake_spool_write_failing 1"), "{}", metrics.encode());

    drop(publisher);
    let stopped = task.await.unwrap();
    assert_eq!(stopped.delivered, 0);
    assert_eq!(stopped.pending, 5, "{stopped:?}");
    assert_eq!(stopped.unspooled, 2, "two values never reached the disk: {stopped:?}");
    assert_eq!(stopped.left_in_spool(), 3, "only what is on disk is left in the spool: {stopped:?}");
}

#[tokio::test]
async fn the_spool_is_healthy_again_once_a_write_works() {
    let metrics = Arc::new(Metrics::new());
    let health = Health::new(metrics.clone());
    health.tick();
    let full = Arc::new(AtomicBool::new(true));
    let spool = FillingDisk { kept: MemorySpool::default(), full: full.clone() };
    let logs = tempfile::tempdir().unwrap();
    let flake_logs = Arc::new(FlakeLogs::open(logs.path(), 7, Redactor::default()).unwrap());
    let (publisher, _task) = spawn_publisher(
        Arc::new(FakeCloudWatch::new()),
        Box::new(spool),
        Vec::new(),
        PublisherConfig::default(),
        metrics.clone(),
        flake_logs,
    );
    assert_eq!(publisher.publish_durably(vec![point(1.0)]).await, Accepted::WithoutSpool);
    assert!(health.report().body.contains("spool: degraded"));
    full.store(false, Ordering::SeqCst);
    assert_eq!(publisher.publish_durably(vec![point(2.0)]).await, Accepted::Durably);
    assert_eq!(health.report().body, "ok\n");
    assert!(metrics.encode().contains("snowflake_spool_write_failing 0"));
}

/// Issue 22, item 8: with the disk full and CloudWatch down, the datapoints the spool cannot
/// store waited in memory without bound. They are bounded like the spool now: beyond
/// `unspooled_max_bytes` (`--spool-max-bytes`) the oldest are dropped and counted.
#[tokio::test]
async fn datapoints_the_spool_cannot_store_are_bounded_in_memory_and_drops_are_counted() {
    let fake = FakeCloudWatch::new();
    fake.set_down(Operation::PutMetricData, CallError::new(ErrorKind::Unavailable, None, "outage"));
    let logs = tempfile::tempdir().unwrap();
    let flake_logs = Arc::new(FlakeLogs::open(logs.path(), 7, Redactor::default()).unwrap());
    let metrics = Arc::new(Metrics::new());
    let spool = FillingDisk { kept: MemorySpool::default(), full: Arc::new(AtomicBool::new(true)) };
    let limit = 100 * 1024;
    let config = PublisherConfig {
        flush_interval: Duration::from_millis(50),
        max_put_rate: 1000.0,
        unspooled_max_bytes: limit,
        ..PublisherConfig::default()
    };
    let (publisher, task) = spawn_publisher(Arc::new(fake), Box::new(spool), Vec::new(), config, metrics.clone(), flake_logs);

    let published: u32 = 20_000;
    for batch in 0..published / 1000 {
        let points = (0..1000u32).map(|index| point(f64::from(batch * 1000 + index))).collect();
        assert_eq!(publisher.publish_durably(points).await, Accepted::WithoutSpool);
    }
    let report = publisher.drain(Duration::from_millis(100)).await;
    // A point of this series takes about 140 bytes as a spool record: some 730 fit the bound.
    assert!(report.pending > 100 && report.pending <= 800, "in memory: {report:?}");
    assert_eq!(report.unspooled, report.pending, "{report:?}");
    let text = metrics.encode();
    let dropped: u64 = text
        .lines()
        .find(|line| line.starts_with("snowflake_spool_dropped_datapoints_total{reason=\"size\"}"))
        .and_then(|line| line.rsplit(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no size drops counted: {text}"));
    assert_eq!(dropped + report.pending, u64::from(published), "every datapoint is delivered, waiting or counted as dropped");
    drop(publisher);
    let stopped = task.await.unwrap();
    assert_eq!(stopped.unspooled, report.pending, "{stopped:?}");
}
