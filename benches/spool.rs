//! Spool throughput, side by side with its baselines in one run:
//!
//! - spool append, commits of 1000 (one write + one fdatasync per commit, as the daemon does)
//! - baseline: the naive design, one fdatasync per datapoint
//! - floor: the same bytes written raw with the same syncs (what encoding and bookkeeping cost)
//! - replay after a restart, against a raw read of the same files
//!
//! Run: `cargo bench --bench spool`. Prints a Markdown table of medians over several runs.

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use specialsnowflake::publish::spool::Spool;
use specialsnowflake::publish::spool::disk::DiskSpool;
use specialsnowflake::publish::{Datapoint, Series};

const RUNS: usize = 5;
const COMMITTED: usize = 100_000;
const PER_POINT: usize = 2_000;
const REPLAYED: usize = 200_000;

fn points(count: usize) -> Vec<Datapoint> {
    let series: Vec<Arc<Series>> = (0..100)
        .map(|i| {
            Arc::new(Series {
                flake: format!("disk-used-percent-{i}"),
                region: "us-east-1".into(),
                namespace: "MyCompany/Hosts".into(),
                metric_name: format!("disk-used-percent-{i}"),
                dimensions: vec![("Host".into(), "ip-10-0-12-34".into())],
                unit: "Percent".into(),
                storage_resolution: 60,
                aggregate_seconds: None,
            })
        })
        .collect();
    let now = chrono::Utc::now().timestamp_millis();
    (0..count)
        .map(|i| Datapoint { series: series[i % series.len()].clone(), value: i as f64 * 0.5, timestamp_ms: now - i as i64 })
        .collect()
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Datapoints per second of `count` datapoints taking `elapsed`.
fn rate(count: usize, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64()
}

fn median(mut samples: Vec<f64>) -> (f64, f64, f64) {
    samples.sort_by(f64::total_cmp);
    (samples[0], samples[samples.len() / 2], samples[samples.len() - 1])
}

fn spool_append(batch: usize, total: usize) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let (mut spool, _) = DiskSpool::open(dir.path(), 1 << 30, now_ms()).unwrap();
    let data = points(total);
    let started = Instant::now();
    for chunk in data.chunks(batch) {
        spool.append(chunk).unwrap();
    }
    rate(total, started.elapsed())
}

/// The same number of bytes and syncs as a spool commit of `batch`, without encoding or state.
fn raw_append(batch: usize, total: usize, bytes_per_point: usize) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(dir.path().join("raw")).unwrap();
    let buffer = vec![b'x'; batch * bytes_per_point];
    let started = Instant::now();
    for _ in 0..total / batch {
        file.write_all(&buffer).unwrap();
        file.sync_data().unwrap();
    }
    rate(total, started.elapsed())
}

/// Average bytes a datapoint takes in the spool.
fn bytes_per_point() -> usize {
    let dir = tempfile::tempdir().unwrap();
    let (mut spool, _) = DiskSpool::open(dir.path(), 1 << 30, now_ms()).unwrap();
    spool.append(&points(10_000)).unwrap();
    spool.stats().bytes as usize / 10_000
}

fn replay(total: usize) -> (f64, f64) {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut spool, _) = DiskSpool::open(dir.path(), 1 << 30, now_ms()).unwrap();
        for chunk in points(total).chunks(1000) {
            spool.append(chunk).unwrap();
        }
    }
    let started = Instant::now();
    let (_spool, recovered) = DiskSpool::open(dir.path(), 1 << 30, now_ms()).unwrap();
    let replay = rate(recovered.points.len(), started.elapsed());
    assert_eq!(recovered.points.len(), total);
    drop(_spool);
    let started = Instant::now();
    let mut bytes = 0;
    for entry in std::fs::read_dir(dir.path().join("spool")).unwrap() {
        bytes += std::fs::read(entry.unwrap().path()).unwrap().len();
    }
    assert!(bytes > 0);
    (replay, rate(total, started.elapsed()))
}

fn main() {
    let size = bytes_per_point();
    let mut rows: Vec<(&str, Vec<f64>)> = vec![
        ("spool append, commits of 1000 (daemon)", Vec::new()),
        ("raw write of the same bytes, sync per 1000 (floor)", Vec::new()),
        ("spool append, sync per datapoint (naive baseline)", Vec::new()),
        ("raw write, sync per datapoint (naive floor)", Vec::new()),
        ("spool replay after restart", Vec::new()),
        ("raw read of the same files (floor)", Vec::new()),
    ];
    for _ in 0..RUNS {
        rows[0].1.push(spool_append(1000, COMMITTED));
        rows[1].1.push(raw_append(1000, COMMITTED, size));
        rows[2].1.push(spool_append(1, PER_POINT));
        rows[3].1.push(raw_append(1, PER_POINT, size));
        let (replayed, read) = replay(REPLAYED);
        rows[4].1.push(replayed);
        rows[5].1.push(read);
    }
    println!("Spool throughput, {RUNS} runs, about {size} bytes per datapoint on disk.\n");
    println!("| operation | datapoints/s (median) | min | max |");
    println!("|---|---:|---:|---:|");
    for (name, samples) in rows {
        let (min, median, max) = median(samples);
        println!("| {name} | {median:.0} | {min:.0} | {max:.0} |");
    }
}
