//! Multi-metric flakes against LocalStack with live peer programs (SPEC 8, 8.3): a LIVE
//! prometheus-node-exporter scraped by `snowflake once` and by the daemon (counters as
//! increases), and the real `check_load` Nagios plugin; every value is read back from the peer.
//! A missing peer program fails the test with the Debian package to install (scripts/deps.sh).

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Daemon, Workspace, endpoint, free_port, run, sdk, unique, with_aws};
use serde_json::json;
use specialsnowflake::cloudwatch::CloudWatch;
use specialsnowflake::cloudwatch::sdk::{MetricQuery, StatisticsBucket};

const REGION: &str = "us-east-1";
const NODE_EXPORTER: &str = "/usr/bin/prometheus-node-exporter";
const CHECK_LOAD: &str = "/usr/lib/nagios/plugins/check_load";

/// A node_exporter on a free port, killed when dropped.
struct NodeExporter {
    child: Child,
    url: String,
}

impl NodeExporter {
    fn start() -> NodeExporter {
        assert!(
            Path::new(NODE_EXPORTER).exists(),
            "{NODE_EXPORTER} is missing: install the Debian package prometheus-node-exporter (scripts/deps.sh does)"
        );
        let port = free_port();
        let child = Command::new(NODE_EXPORTER)
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("node_exporter starts");
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(started.elapsed() < Duration::from_secs(20), "node_exporter did not listen on port {port} within 20 s");
            std::thread::sleep(Duration::from_millis(100));
        }
        NodeExporter { child, url: format!("http://127.0.0.1:{port}/metrics") }
    }
}

impl Drop for NodeExporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn hostname() -> String {
    nix::unistd::gethostname().unwrap().into_string().unwrap()
}

async fn read_back(endpoint: &str, namespace: &str, metric: &str, dimensions: &[(String, String)]) -> Vec<StatisticsBucket> {
    let now = chrono::Utc::now().timestamp_millis();
    let query =
        MetricQuery { namespace, metric_name: metric, dimensions, start_ms: now - 3_600_000, end_ms: now + 120_000, period_seconds: 60 };
    sdk(endpoint).await.statistics("us-east-1", &query).await.unwrap()
}

fn mem_total_bytes() -> f64 {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap();
    let kilobytes: f64 =
        meminfo.lines().find(|line| line.starts_with("MemTotal:")).unwrap().split_whitespace().nth(1).unwrap().parse().unwrap();
    kilobytes * 1024.0
}

#[tokio::test]
async fn once_scrapes_a_live_node_exporter_into_cloudwatch() {
    let endpoint = endpoint();
    let exporter = NodeExporter::start();
    let workspace = Workspace::new();
    let namespace = unique("Scrape");
    workspace.add(
        "node",
        json!({
            "flakeName": "node", "flakeType": "scrape", "flakeCronstring": "* * * * *", "flakeUrl": exporter.url,
            "flakeMetricPrefix": "node.", "flakeMetricNamespace": namespace, "flakeDimensions": {"Host": "${hostname}"},
            "flakeMetrics": {"include": ["node_memory_MemTotal_bytes", "node_load1", "node_cpu_seconds_total"]},
            "flakeAlarms": [
                {"alarmName": "load-high", "alarmMetricName": "node.node_load1", "alarmThreshold": 50, "alarmOperator": ">"},
                {"alarmName": "exporter-down", "alarmMetricName": "node.up", "alarmThreshold": 1, "alarmOperator": "<",
                 "alarmStatistic": "Minimum", "alarmTreatMissingData": "breaching"}
            ]
        }),
    );
    let (code, stdout, stderr) = run(with_aws(&mut workspace.snowflake(), &endpoint).args(["once", "node"]));
    assert_eq!(code, 0, "{stdout}{stderr}");
    // Two gauges; the CPU counters are shown as raw totals and not published.
    assert!(stdout.contains("node: ok series=2 datapoints=3"), "{stdout}");
    assert!(stdout.contains("counter node.node_cpu_seconds_total{cpu=0,mode=idle} "), "{stdout}");

    let host = vec![("Host".to_string(), hostname())];
    let mem = read_back(&endpoint, &namespace, "node.node_memory_MemTotal_bytes", &host).await;
    assert_eq!(mem.len(), 1, "{mem:?}");
    assert_eq!(mem[0].maximum, mem_total_bytes(), "MemTotal as node_exporter reports it from /proc/meminfo");
    assert_eq!(mem[0].unit.as_deref(), Some("Bytes"));
    let up = read_back(&endpoint, &namespace, "node.up", &host).await;
    assert_eq!((up.len(), up[0].maximum), (1, 1.0), "{up:?}");
    let load = read_back(&endpoint, &namespace, "node.node_load1", &host).await;
    assert_eq!(load.len(), 1, "{load:?}");
    assert!(load[0].maximum >= 0.0);
    let mut cpu = host.clone();
    cpu.extend([("cpu".to_string(), "0".to_string()), ("mode".to_string(), "idle".to_string())]);
    assert!(read_back(&endpoint, &namespace, "node.node_cpu_seconds_total", &cpu).await.is_empty(), "once publishes no counter");

    // Alarms on chosen metrics of the scrape: on the series as published, prefix and Host included.
    let alarms = sdk(&endpoint).await.describe_alarms_named(REGION, &["FL-node-load-high".into(), "FL-node-exporter-down".into()]).await;
    let alarms = alarms.unwrap();
    let watched: Vec<_> =
        alarms.iter().map(|alarm| (alarm.name.as_str(), alarm.metric_name.as_deref(), alarm.namespace.as_deref())).collect();
    assert!(watched.contains(&("FL-node-load-high", Some("node.node_load1"), Some(namespace.as_str()))), "{watched:?}");
    assert!(watched.contains(&("FL-node-exporter-down", Some("node.up"), Some(namespace.as_str()))), "{watched:?}");
    assert!(alarms.iter().all(|alarm| alarm.dimensions == host), "{alarms:?}");
}

#[tokio::test]
async fn the_daemon_publishes_node_exporter_counters_as_increases_and_up_zero_when_it_dies() {
    let endpoint = endpoint();
    let mut exporter = NodeExporter::start();
    let workspace = Workspace::new();
    let namespace = unique("ScrapeDaemon");
    workspace.add(
        "node",
        json!({
            "flakeName": "node", "flakeType": "scrape", "flakeCronstring": "@every 2s", "flakeUrl": exporter.url,
            "flakeMetricNamespace": namespace,
            // Summed over CPUs: dropping the cpu label merges the series, and counters add.
            "flakeMetrics": {"include": ["node_cpu_seconds_total"], "labels": {"keep": ["mode"]}}
        }),
    );
    let daemon = Daemon::start(with_aws(&mut workspace.snowflake(), &endpoint), &workspace, &[]);
    daemon.wait_for(Duration::from_secs(30), "three scrapes", || {
        workspace.log_of("node").lines().filter(|l| l.contains(" ok ")).count() >= 3
    });
    exporter.child.kill().unwrap();
    exporter.child.wait().unwrap();
    daemon.wait_for(Duration::from_secs(30), "a failed scrape", || workspace.log_of("node").contains(" failed "));
    assert!(daemon.metric("snowflake_flake_series{flake=\"node\"}").is_some_and(|series| series >= 8.0), "{}", daemon.metrics());
    let (status, _) = daemon.stop(Duration::from_secs(30));
    assert!(status.success(), "{status:?}");

    let idle = read_back(&endpoint, &namespace, "node_cpu_seconds_total", &[("mode".to_string(), "idle".to_string())]).await;
    let samples: f64 = idle.iter().map(|bucket| bucket.sample_count).sum();
    assert!(samples >= 2.0, "the second and later scrapes publish increases: {idle:?}");
    let cpus = std::thread::available_parallelism().unwrap().get() as f64;
    let most = idle.iter().map(|bucket| bucket.maximum).fold(0.0, f64::max);
    // An increase over about 2 s, summed over the CPUs: never the raw total since boot.
    assert!(most >= 0.0 && most <= 10.0 * cpus, "idle seconds per 2 s scrape over {cpus} CPUs: {idle:?}");
    assert_eq!(idle[0].unit.as_deref(), Some("Seconds"));
    let up = read_back(&endpoint, &namespace, "up", &[]).await;
    assert_eq!(up.iter().map(|bucket| bucket.maximum).fold(0.0, f64::max), 1.0, "{up:?}");
    assert_eq!(up.iter().map(|bucket| bucket.minimum).fold(1.0, f64::min), 0.0, "up=0 once the exporter died: {up:?}");
}

#[tokio::test]
async fn a_check_load_nagios_flake_publishes_its_load_and_state() {
    let endpoint = endpoint();
    assert!(
        Path::new(CHECK_LOAD).exists(),
        "{CHECK_LOAD} is missing: install the Debian package monitoring-plugins-basic (scripts/deps.sh does)"
    );
    let workspace = Workspace::new();
    let namespace = unique("Nagios");
    workspace.add(
        "load",
        json!({
            "flakeName": "load", "flakeCronstring": "* * * * *", "flakeOutput": "nagios",
            "flakeCommand": format!("{CHECK_LOAD} -w 1000,1000,1000 -c 2000,2000,2000"),
            "flakeMetricPrefix": "nagios.", "flakeMetricNamespace": namespace,
            "flakeAlarms": [{"alarmName": "critical", "alarmMetricName": "nagios.NagiosState", "alarmThreshold": 2, "alarmOperator": ">=",
                             "alarmStatistic": "Maximum"}]
        }),
    );
    let before: f64 = std::fs::read_to_string("/proc/loadavg").unwrap().split_whitespace().nth(2).unwrap().parse().unwrap();
    let (code, stdout, stderr) = run(with_aws(&mut workspace.snowflake(), &endpoint).args(["once", "load"]));
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("load: ok series=4 datapoints=4 state=OK text=\"LOAD OK - "), "{stdout}");

    let state = read_back(&endpoint, &namespace, "nagios.NagiosState", &[]).await;
    assert_eq!((state.len(), state[0].maximum), (1, 0.0), "{state:?}");
    let load15 = read_back(&endpoint, &namespace, "nagios.load15", &[]).await;
    assert_eq!(load15.len(), 1, "{load15:?}");
    // The 15-minute average barely moves between reading /proc/loadavg and the plugin's run.
    assert!((load15[0].maximum - before).abs() < 2.0, "load15 {} against /proc/loadavg {before}", load15[0].maximum);
    for metric in ["nagios.load1", "nagios.load5"] {
        assert_eq!(read_back(&endpoint, &namespace, metric, &[]).await.len(), 1, "{metric}");
    }
    let alarm = sdk(&endpoint).await.describe_alarms_named(REGION, &["FL-load-critical".into()]).await.unwrap().pop();
    let alarm = alarm.expect("the alarm on NagiosState was created");
    assert_eq!((alarm.metric_name.as_deref(), alarm.threshold), (Some("nagios.NagiosState"), Some(2.0)), "{alarm:?}");
}
