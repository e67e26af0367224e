//! The CPU cost of a scrape flake (SPEC 8.3), side by side with its floor in one run, against a
//! LIVE prometheus-node-exporter (Debian package prometheus-node-exporter) started here with
//! extra collectors for more series:
//!
//! - floor: GET the exposition and decode its gzip (`scrape::scrape`): reading the same bytes;
//! - parse: the same, then read it as Prometheus text (counters as increases, series guard);
//! - full run: `execution::execute` of the scrape flake, as the daemon runs it: GET, parse,
//!   datapoints, the publisher with its (in-memory) spool, the flake log line, and delivery to the
//!   in-memory CloudWatch (no SDK encoding or network: that cost is the publisher's, per datum,
//!   measured elsewhere).
//!
//! CPU is this process's user + system time (getrusage), so the exporter's own work is not in
//! it. Run: `cargo bench --bench scrape`. Prints a Markdown table of medians over several rounds.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use nix::sys::resource::{UsageWho, getrusage};
use serde_json::json;
use specialsnowflake::cloudwatch::fake::FakeCloudWatch;
use specialsnowflake::creds::{Creds, Redactor};
use specialsnowflake::execution::{Prepared, RunContext, execute};
use specialsnowflake::flake::{Context, parse_flake};
use specialsnowflake::flakelog::FlakeLogs;
use specialsnowflake::metrics::Metrics;
use specialsnowflake::placeholders::HostFacts;
use specialsnowflake::publish::spool::MemorySpool;
use specialsnowflake::publish::{PublisherConfig, spawn_publisher};
use specialsnowflake::scrape::{request_headers, scrape};
use tokio::sync::watch;

const NODE_EXPORTER: &str = "/usr/bin/prometheus-node-exporter";
const ROUNDS: usize = 5;
const SCRAPES: usize = 100;

fn cpu_seconds() -> f64 {
    let usage = getrusage(UsageWho::RUSAGE_SELF).unwrap();
    let seconds = |time: nix::sys::time::TimeVal| time.tv_sec() as f64 + time.tv_usec() as f64 / 1e6;
    seconds(usage.user_time()) + seconds(usage.system_time())
}

fn median(mut samples: Vec<f64>) -> (f64, f64, f64) {
    samples.sort_by(f64::total_cmp);
    (samples[0], samples[samples.len() / 2], samples[samples.len() - 1])
}

/// CPU and wall seconds per scrape of `SCRAPES` calls of `step`.
async fn measure<F: std::future::Future<Output = ()>>(mut step: impl FnMut(usize) -> F) -> (f64, f64) {
    let (cpu, wall) = (cpu_seconds(), Instant::now());
    for index in 0..SCRAPES {
        step(index).await;
    }
    ((cpu_seconds() - cpu) / SCRAPES as f64, wall.elapsed().as_secs_f64() / SCRAPES as f64)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    assert!(Path::new(NODE_EXPORTER).exists(), "{NODE_EXPORTER} is missing: install the Debian package prometheus-node-exporter");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut exporter = Command::new(NODE_EXPORTER)
        .args([
            &format!("--web.listen-address=127.0.0.1:{port}"),
            "--collector.interrupts",
            "--collector.processes",
            "--collector.tcpstat",
            "--collector.cpu.info",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("node_exporter starts");
    let url = format!("http://127.0.0.1:{port}/metrics");
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(started.elapsed() < Duration::from_secs(20), "node_exporter did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }

    let dir = tempfile::tempdir().unwrap();
    let flake_text = json!({
        "flakeName": "node", "flakeType": "scrape", "flakeCronstring": "@every 10s", "flakeUrl": url,
        "flakeMetricNamespace": "Bench/Scrape", "flakeDimensions": {"Host": "bench-host"}, "flakeMaxSeries": 10000
    })
    .to_string();
    let facts = HostFacts::local();
    let (flake, problems) = parse_flake(Path::new("node.json"), &flake_text, &Context { default_zone: chrono_tz::UTC, facts: &facts });
    let flake = Arc::new(flake.unwrap_or_else(|| panic!("{problems:?}")));
    let prepared = Prepared::new(flake.clone(), Some("us-east-1"));
    let reader = Prepared::new(flake.clone(), Some("us-east-1")).reader.unwrap();
    let target = flake.scrape.clone().unwrap();
    let headers = request_headers(&target, &Creds::default(), &Redactor::default()).unwrap();

    let fake = FakeCloudWatch::new();
    let metrics = Arc::new(Metrics::new());
    let logs = Arc::new(FlakeLogs::open(&dir.path().join("logs"), 7, Redactor::default()).unwrap());
    let (publisher, _task) = spawn_publisher(
        Arc::new(fake.clone()),
        Box::new(MemorySpool::default()),
        Vec::new(),
        PublisherConfig { max_put_rate: 1e6, ..PublisherConfig::default() },
        metrics.clone(),
        logs.clone(),
    );
    let context = RunContext {
        workdir: dir.path().to_path_buf(),
        creds: Creds::default(),
        logs,
        publisher: publisher.clone(),
        metrics,
        command_nice: None,
        monitors: None,
        images: None,
    };
    let (_keep, stop) = watch::channel(false);

    // Warm-up: connections, the counters' first sight, page cache.
    let body = scrape(&url, headers.clone(), Duration::from_secs(10), stop.clone()).await.unwrap();
    let _ = reader.read(&body, Some(0), false).unwrap();
    let readout = reader.read(&body, Some(0), false).unwrap();
    let series = readout.series;
    let base = Utc::now().timestamp() / 60 * 60 - 3600;
    let _ = execute(&prepared, chrono::DateTime::from_timestamp(base, 0).unwrap(), &context, stop.clone()).await;

    let (mut floor, mut parse, mut full) = (Vec::new(), Vec::new(), Vec::new());
    let (mut floor_wall, mut full_wall) = (Vec::new(), Vec::new());
    let mut datapoints = 0;
    for round in 0..ROUNDS {
        let (cpu, wall) = measure(|_| {
            let (url, headers, stop) = (&url, headers.clone(), stop.clone());
            async move {
                let body = scrape(url, headers, Duration::from_secs(10), stop).await.unwrap();
                std::hint::black_box(body);
            }
        })
        .await;
        floor.push(cpu);
        floor_wall.push(wall);
        let (cpu, _) = measure(|_| {
            let (url, headers, stop, reader) = (&url, headers.clone(), stop.clone(), &reader);
            async move {
                let body = scrape(url, headers, Duration::from_secs(10), stop).await.unwrap();
                std::hint::black_box(reader.read(&body, Some(0), false).unwrap());
            }
        })
        .await;
        parse.push(cpu);
        let (cpu, wall) = measure(|index| {
            let (prepared, context, stop) = (&prepared, &context, stop.clone());
            let scheduled = chrono::DateTime::from_timestamp(base + 10 * (1 + round * SCRAPES + index) as i64, 0).unwrap();
            async move {
                let report = execute(prepared, scheduled, context, stop).await;
                assert!(report.verdict.is_ok(), "{}", report.summary());
                std::hint::black_box(report);
            }
        })
        .await;
        full.push(cpu);
        full_wall.push(wall);
        let drained = publisher.drain(Duration::from_secs(60)).await;
        assert_eq!(drained.pending, 0);
        datapoints = fake.data("us-east-1", "Bench/Scrape").len();
    }
    let _ = exporter.kill();
    let _ = exporter.wait();

    println!(
        "Scrape flake CPU, {ROUNDS} rounds of {SCRAPES} scrapes of a live node_exporter: {} bytes of exposition, {series} series per run, {datapoints} datapoints delivered.",
        body.len()
    );
    println!();
    println!("| per scrape | CPU ms (median) | min | max | CPU µs per series (median) |");
    println!("|---|---:|---:|---:|---:|");
    for (name, samples) in [
        ("GET and gunzip the body (floor)", floor),
        ("GET, gunzip, read as Prometheus text", parse),
        ("full run: GET, read, publish, log (daemon)", full),
    ] {
        let (min, mid, max) = median(samples);
        println!("| {name} | {:.2} | {:.2} | {:.2} | {:.2} |", mid * 1e3, min * 1e3, max * 1e3, mid * 1e6 / series as f64);
    }
    println!();
    println!(
        "Wall time per scrape (median): floor {:.2} ms, full run {:.2} ms (includes the exporter's own work).",
        median(floor_wall).1 * 1e3,
        median(full_wall).1 * 1e3
    );
}
