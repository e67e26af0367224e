//! Multi-metric runs end to end in this process (SPEC 8, 8.2, 8.3): a real `/bin/sh` command or
//! a real HTTP server in the test, `execution::execute`, the real publisher, the in-memory
//! CloudWatch. Partial runs, Nagios states, counters across runs, the series guard, and scrapes
//! (gzip, non-2xx, over the limit, refused, header secrets kept out of the log).

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use serde_json::{Value, json};
use specialsnowflake::cloudwatch::Datum;
use specialsnowflake::cloudwatch::fake::FakeCloudWatch;
use specialsnowflake::creds::{Creds, Redactor};
use specialsnowflake::execution::{Prepared, RunContext, RunReport, execute};
use specialsnowflake::flake::{Context, parse_flake};
use specialsnowflake::flakelog::FlakeLogs;
use specialsnowflake::metrics::Metrics;
use specialsnowflake::outcome::RunResult;
use specialsnowflake::placeholders::HostFacts;
use specialsnowflake::publish::spool::MemorySpool;
use specialsnowflake::publish::{PublisherConfig, PublisherHandle, spawn_publisher};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::watch;

const REGION: &str = "us-east-1";
const NAMESPACE: &str = "Formats";

struct Harness {
    fake: FakeCloudWatch,
    dir: tempfile::TempDir,
    context: Arc<RunContext>,
    publisher: PublisherHandle,
    metrics: Arc<Metrics>,
}

impl Harness {
    fn new(creds: Creds) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let fake = FakeCloudWatch::new();
        let metrics = Arc::new(Metrics::new());
        let logs = Arc::new(FlakeLogs::open(&dir.path().join("logs"), 7, Redactor::new(&creds)).unwrap());
        let (publisher, _task) = spawn_publisher(
            Arc::new(fake.clone()),
            Box::new(MemorySpool::default()),
            Vec::new(),
            PublisherConfig { flush_interval: Duration::from_millis(20), max_put_rate: 1000.0, ..PublisherConfig::default() },
            metrics.clone(),
            logs.clone(),
        );
        let context = Arc::new(RunContext {
            workdir: dir.path().to_path_buf(),
            creds,
            logs,
            publisher: publisher.clone(),
            metrics: metrics.clone(),
            command_nice: None,
            monitors: None,
            images: None,
        });
        Harness { fake, dir, context, publisher, metrics }
    }

    fn prepare(&self, flake: Value) -> Prepared {
        self.prepare_in(flake, Some(REGION))
    }

    fn prepare_in(&self, flake: Value, default_region: Option<&str>) -> Prepared {
        let mut object = json!({"flakeCronstring": "@every 10s", "flakeMetricNamespace": NAMESPACE, "flakeTimeout": 5});
        object.as_object_mut().unwrap().extend(flake.as_object().unwrap().clone());
        let facts = HostFacts::local();
        let context = Context { default_zone: chrono_tz::UTC, facts: &facts };
        let (flake, problems) = parse_flake(Path::new("test.json"), &object.to_string(), &context);
        let flake = flake.unwrap_or_else(|| panic!("the test flake is valid: {problems:?}"));
        Prepared::new(Arc::new(flake), default_region)
    }

    async fn run(&self, prepared: &Prepared, second: u32) -> RunReport {
        let (_keep, stop) = watch::channel(false);
        let report = execute(prepared, scheduled(second), &self.context, stop).await;
        let drained = self.publisher.drain(Duration::from_secs(10)).await;
        assert_eq!(drained.pending, 0, "{drained:?}");
        report
    }

    fn data(&self) -> Vec<Datum> {
        self.fake.data(REGION, NAMESPACE)
    }

    fn values_of(&self, metric: &str) -> Vec<f64> {
        self.data().into_iter().filter(|datum| datum.metric_name == metric).map(|datum| datum.value).collect()
    }

    fn log(&self, flake: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("logs/{flake}.log"))).unwrap_or_default()
    }
}

fn scheduled(second: u32) -> DateTime<Utc> {
    // Recent enough for CloudWatch's two weeks, distinct per run.
    let minute = Utc::now().timestamp() / 60 * 60;
    Utc.timestamp_opt(minute - 600 + i64::from(second), 0).unwrap()
}

fn dimension<'d>(datum: &'d Datum, name: &str) -> Option<&'d str> {
    datum.dimensions.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partial_run_publishes_every_good_entry_and_logs_the_bad_one_with_its_reason() {
    let h = Harness::new(Creds::default());
    let stdout = r#"[{"name": "queue.depth", "value": 12, "dimensions": {"queue": "mail"}},
                    {"name": "queue.age", "value": "soon"},
                    {"name": "queue.bytes", "value": 2048, "unit": "bytes"}]"#;
    let prepared = h.prepare(json!({
        "flakeName": "queues", "flakeOutput": "json", "flakeMetricPrefix": "app.",
        "flakeCommand": format!("cat <<'EOF'\n{stdout}\nEOF"), "flakeDimensions": {"host": "web-1"}, "flakeUnit": "Count"
    }));
    let report = h.run(&prepared, 0).await;

    assert_eq!(report.verdict.result(), RunResult::Partial, "{}", report.summary());
    assert!(report.summary().contains("series=2"), "{}", report.summary());
    let data = h.data();
    assert_eq!(data.len(), 2, "{data:?}");
    let depth = data.iter().find(|datum| datum.metric_name == "app.queue.depth").unwrap();
    assert_eq!((depth.value, depth.unit.as_str()), (12.0, "Count"));
    assert_eq!((dimension(depth, "host"), dimension(depth, "queue")), (Some("web-1"), Some("mail")));
    let bytes = data.iter().find(|datum| datum.metric_name == "app.queue.bytes").unwrap();
    assert_eq!((bytes.value, bytes.unit.as_str()), (2048.0, "Bytes"));

    let log = h.log("queues");
    assert!(log.contains(" partial scheduled="), "{log}");
    assert!(log.contains("datapoints=2 series=2 rejected=1"), "{log}");
    assert!(log.contains("  rejected| entry 2") && log.contains("not a number"), "{log}");
    assert!(h.metrics.encode().contains("snowflake_runs_total{flake=\"queues\",result=\"partial\"} 1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_lists_twenty_rejections_then_counts_the_rest() {
    let h = Harness::new(Creds::default());
    let members: Vec<String> = (0..25).map(|i| format!("\"bad{i}\": \"x\"")).chain(["\"good\": 1".to_string()]).collect();
    let prepared =
        h.prepare(json!({"flakeName": "many", "flakeOutput": "json", "flakeCommand": format!("echo '{{{}}}'", members.join(","))}));
    let report = h.run(&prepared, 0).await;
    assert_eq!(report.verdict.result(), RunResult::Partial);
    assert_eq!(h.values_of("good"), [1.0]);
    let log = h.log("many");
    assert_eq!(log.lines().filter(|line| line.starts_with("  rejected| ") && !line.contains("more")).count(), 20, "{log}");
    assert!(log.contains("  rejected| and 5 more entries"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nagios_exit_statuses_are_states_and_other_statuses_fail() {
    let h = Harness::new(Creds::default());
    let plugin = |exit: i32| {
        json!({"flakeName": format!("plugin{exit}"), "flakeOutput": "nagios",
               "flakeCommand": format!("echo 'LOAD WARNING - load average: 5.1 | load1=5.1;4;6;0 used=75%;80;90'; exit {exit}")})
    };
    for (exit, state) in [(0, "OK"), (1, "WARNING"), (2, "CRITICAL"), (3, "UNKNOWN")] {
        let report = h.run(&h.prepare(plugin(exit)), exit as u32).await;
        assert_eq!(report.verdict.result(), RunResult::Ok, "{}", report.summary());
        assert!(report.summary().contains(&format!("state={state} text=\"LOAD WARNING - load average: 5.1\"")), "{}", report.summary());
        let log = h.log(&format!("plugin{exit}"));
        assert!(log.contains(" ok scheduled=") && log.contains(&format!("state={state} text=\"LOAD WARNING")), "{log}");
    }
    assert_eq!(h.values_of("NagiosState"), [0.0, 1.0, 2.0, 3.0]);
    assert_eq!(h.values_of("load1"), [5.1; 4]);
    let used = h.data().into_iter().find(|datum| datum.metric_name == "used").unwrap();
    assert_eq!((used.value, used.unit.as_str()), (75.0, "Percent"));

    let before = h.data().len();
    let report = h.run(&h.prepare(plugin(4)), 10).await;
    assert_eq!(report.verdict.result(), RunResult::Failed, "{}", report.summary());
    assert!(report.summary().contains("exit status 4 is not a Nagios state"), "{}", report.summary());
    assert_eq!(h.data().len(), before, "a failed plugin run publishes nothing");

    // A job flake takes the four states as success too.
    let job = h.prepare(json!({"flakeName": "nagios-job", "flakeType": "job", "flakeOutput": "nagios", "flakeCommand": "echo 'DISK CRITICAL | free=1GB'; exit 2"}));
    let report = h.run(&job, 11).await;
    assert_eq!(report.verdict.result(), RunResult::Ok, "{}", report.summary());
    let free = h.data().into_iter().find(|datum| datum.metric_name == "free").unwrap();
    assert_eq!((free.value, free.unit.as_str()), (1.0, "Gigabytes"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_check_load_plugin_publishes_its_load_and_state() {
    let plugin = "/usr/lib/nagios/plugins/check_load";
    assert!(Path::new(plugin).exists(), "{plugin} is missing: install the Debian package monitoring-plugins-basic (scripts/deps.sh)");
    let h = Harness::new(Creds::default());
    let prepared = h.prepare(
        json!({"flakeName": "load", "flakeOutput": "nagios", "flakeCommand": format!("{plugin} -w 1000,1000,1000 -c 2000,2000,2000")}),
    );
    // The kernel updates the averages every 5 s: the plugin saw the one before or the one after.
    let load1_now = || -> f64 { std::fs::read_to_string("/proc/loadavg").unwrap().split_whitespace().next().unwrap().parse().unwrap() };
    let before = load1_now();
    let report = h.run(&prepared, 0).await;
    let after = load1_now();
    assert_eq!(report.verdict.result(), RunResult::Ok, "{}", report.summary());
    assert_eq!(h.values_of("NagiosState"), [0.0]);
    let load1 = h.values_of("load1");
    assert_eq!(load1.len(), 1, "{:?}", h.data());
    let (low, high) = (before.min(after) - 0.01, before.max(after) + 0.01);
    assert!((low..=high).contains(&load1[0]), "load1 {} against /proc/loadavg {before} before and {after} after", load1[0]);
    assert_eq!(h.values_of("load5").len(), 1);
    assert_eq!(h.values_of("load15").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_publish_increases_from_the_second_run_and_treat_a_decrease_as_a_reset() {
    let h = Harness::new(Creds::default());
    let total = h.dir.path().join("total");
    let prepared = h.prepare(json!({
        "flakeName": "prom", "flakeOutput": "prometheus",
        "flakeCommand": format!("printf '# TYPE requests_total counter\\nrequests_total{{code=\"200\"}} %s\\n# TYPE temperature gauge\\ntemperature 21.5\\n' $(cat {})", total.display())
    }));
    for (second, value) in [(0, "100"), (10, "130"), (20, "5")] {
        std::fs::write(&total, value).unwrap();
        let report = h.run(&prepared, second).await;
        assert_eq!(report.verdict.result(), RunResult::Ok, "{}", report.summary());
    }
    assert_eq!(h.values_of("requests_total"), [30.0, 5.0], "nothing on the first run, then the increase, then the reset's new value");
    assert_eq!(h.values_of("temperature"), [21.5, 21.5, 21.5]);
    let requests = h.data().into_iter().find(|datum| datum.metric_name == "requests_total").unwrap();
    assert_eq!((requests.unit.as_str(), dimension(&requests, "code")), ("Count", Some("200")));

    // `once` shows the raw totals and publishes none of them.
    let once = h.prepare(json!({"flakeName": "prom-once", "flakeOutput": "prometheus", "flakeCommand": "printf 'requests_total 7\\n# TYPE c_total counter\\nc_total 42\\n'"}))
        .reporting_raw_counters();
    let report = h.run(&once, 30).await;
    assert!(report.summary().contains("counter c_total{} 42"), "{}", report.summary());
    assert_eq!(h.values_of("c_total"), Vec::<f64>::new());
    assert_eq!(
        h.values_of("requests_total").len(),
        3,
        "the untyped sample is a gauge and is published: {:?}",
        h.values_of("requests_total")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_series_guard_publishes_the_first_series_in_order_and_counts_the_dropped() {
    let h = Harness::new(Creds::default());
    let prepared = h.prepare(json!({"flakeName": "wide", "flakeOutput": "json", "flakeMaxSeries": 3, "flakeCommand": "echo '{\"e\": 5, \"d\": 4, \"c\": 3, \"b\": 2, \"a\": 1}'"}));
    let report = h.run(&prepared, 0).await;
    assert_eq!(report.verdict.result(), RunResult::Ok);
    let mut names: Vec<String> = h.data().into_iter().map(|datum| datum.metric_name).collect();
    names.sort();
    assert_eq!(names, ["a", "b", "c"]);
    assert!(h.log("wide").contains("dropped_series=2 (flakeMaxSeries)"), "{}", h.log("wide"));
    let metrics = h.metrics.encode();
    assert!(metrics.contains("snowflake_series_dropped_total{flake=\"wide\"} 2"), "{metrics}");
    assert!(metrics.contains("snowflake_flake_series{flake=\"wide\"} 3"), "{metrics}");
}

/// A one-response-per-connection HTTP server; remembers each request's head.
struct Exporter {
    url: String,
    requests: Arc<Mutex<Vec<String>>>,
}

async fn exporter(status: &'static str, headers: Vec<(&'static str, String)>, body: Vec<u8>) -> Exporter {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/metrics", listener.local_addr().unwrap());
    let requests = Arc::new(Mutex::new(Vec::new()));
    let seen = requests.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else { return };
            let (seen, headers, body) = (seen.clone(), headers.clone(), body.clone());
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buffer = [0u8; 4096];
                while !head.windows(4).any(|window| window == b"\r\n\r\n") {
                    match socket.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buffer[..n]),
                    }
                }
                seen.lock().unwrap().push(String::from_utf8_lossy(&head).into_owned());
                let mut response = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n", body.len());
                for (name, value) in headers {
                    response.push_str(&format!("{name}: {value}\r\n"));
                }
                response.push_str("\r\n");
                let _ = socket.write_all(response.as_bytes()).await;
                let _ = socket.write_all(&body).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    Exporter { url, requests }
}

const EXPOSITION: &str = "# TYPE nginx_up gauge\nnginx_up 1\n# TYPE nginx_connections_active gauge\nnginx_connections_active 3\n";

fn gzip(text: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(text).unwrap();
    encoder.finish().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scrape_reads_gzip_publishes_up_and_never_logs_header_secrets() {
    const SECRET: &str = "tok-3f9a1c77e2";
    // SAFETY: only this test reads this variable.
    unsafe { std::env::set_var("SNOWFLAKE_TEST_SCRAPE_KEY", "env-secret-5d21") };
    let h = Harness::new(Creds { variables: vec![("EXPORTER_TOKEN".to_string(), SECRET.to_string())] });
    let server = exporter("200 OK", vec![("Content-Encoding", "gzip".to_string())], gzip(EXPOSITION.as_bytes())).await;
    let prepared = h.prepare(json!({
        "flakeName": "nginx", "flakeType": "scrape", "flakeUrl": server.url, "flakeMetricPrefix": "nginx.",
        "flakeDimensions": {"host": "web-1"},
        "flakeHeaders": {"Authorization": "Bearer ${env:EXPORTER_TOKEN}", "X-Key": "${env:SNOWFLAKE_TEST_SCRAPE_KEY}"}
    }));
    let report = h.run(&prepared, 0).await;
    assert_eq!(report.verdict.result(), RunResult::Ok, "{}", report.summary());
    assert_eq!(h.values_of("nginx.nginx_connections_active"), [3.0]);
    assert_eq!(h.values_of("nginx.up"), [1.0]);
    let up = h.data().into_iter().find(|datum| datum.metric_name == "nginx.up").unwrap();
    assert_eq!(dimension(&up, "host"), Some("web-1"));

    let request = server.requests.lock().unwrap()[0].to_ascii_lowercase();
    assert!(request.contains(&format!("authorization: bearer {}", SECRET.to_ascii_lowercase())), "{request}");
    assert!(request.contains("x-key: env-secret-5d21"), "{request}");
    assert!(request.contains("accept-encoding: gzip") && request.contains("accept: application/openmetrics-text"), "{request}");
    let log = h.log("nginx");
    assert!(log.contains(" ok scheduled=") && log.contains("up=1 datapoints=3 series=2"), "{log}");
    assert!(!log.contains(SECRET) && !log.contains("env-secret-5d21"), "{log}");
}

/// Issue 22.9: a body of two gzip members (valid gzip, RFC 1952) was refused with "failed to
/// write whole buffer"; its series are all read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multi_member_gzip_body_is_read_whole() {
    let h = Harness::new(Creds::default());
    let (first, second) = EXPOSITION.split_at(EXPOSITION.find("# TYPE nginx_connections").unwrap());
    let mut body = gzip(first.as_bytes());
    body.extend(gzip(second.as_bytes()));
    let server = exporter("200 OK", vec![("Content-Encoding", "gzip".to_string())], body).await;
    let prepared = h.prepare(json!({"flakeName": "members", "flakeType": "scrape", "flakeUrl": server.url}));
    let report = h.run(&prepared, 0).await;
    assert_eq!(report.verdict.result(), RunResult::Ok, "{}", report.summary());
    assert_eq!(h.values_of("nginx_up"), [1.0]);
    assert_eq!(h.values_of("nginx_connections_active"), [3.0]);
}

/// Issue 22.9, decided: an exporter that answers 2xx with no body (a 204, or an empty 200) was
/// reached and said it has nothing to expose. As in Prometheus, that is a success with `up` 1 and
/// no series; an alarm on a series that should be there sees it missing (docs/flakes.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_answer_is_a_success_with_up_one_and_no_series() {
    for status in ["204 No Content", "200 OK"] {
        let h = Harness::new(Creds::default());
        let server = exporter(status, Vec::new(), Vec::new()).await;
        let prepared = h.prepare(json!({"flakeName": "empty", "flakeType": "scrape", "flakeUrl": server.url}));
        let report = h.run(&prepared, 0).await;
        assert_eq!(report.verdict.result(), RunResult::Ok, "{status}: {}", report.summary());
        assert_eq!(h.values_of("up"), [1.0], "{status}");
        assert_eq!(h.data().len(), 1, "{status}: up is the only datapoint: {:?}", h.data());
        let log = h.log("empty");
        assert!(log.contains(" ok scheduled=") && log.contains("up=1 datapoints=1 series=0"), "{status}: {log}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_scrape_is_a_failed_run_with_up_zero() {
    let h = Harness::new(Creds::default());
    let server_error = exporter("503 Service Unavailable", Vec::new(), b"down".to_vec()).await;
    let too_big = exporter("200 OK", vec![("Content-Encoding", "gzip".to_string())], gzip(&vec![b'#'; 16 * 1024 * 1024 + 1])).await;
    let refused = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/metrics", listener.local_addr().unwrap())
    };
    let cases = [
        ("status", server_error.url.clone(), "answered 503 Service Unavailable"),
        ("big", too_big.url.clone(), "is larger than 16 MiB decoded"),
        ("refused", refused, "Connection refused"),
    ];
    for (index, (name, url, reason)) in cases.into_iter().enumerate() {
        let prepared = h.prepare(json!({"flakeName": name, "flakeType": "scrape", "flakeUrl": url}));
        let report = h.run(&prepared, index as u32).await;
        assert_eq!(report.verdict.result(), RunResult::Failed, "{}", report.summary());
        assert!(report.summary().contains(reason), "{name}: {}", report.summary());
        let log = h.log(name);
        assert!(log.contains(" failed scheduled=") && log.contains("up=0"), "{log}");
    }
    assert_eq!(h.values_of("up"), [0.0, 0.0, 0.0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_region_only_runs_with_something_to_publish_fail() {
    let h = Harness::new(Creds::default());
    let entries = h.prepare_in(json!({"flakeName": "entries", "flakeOutput": "json", "flakeCommand": "echo '{\"a\": 1}'"}), None);
    let report = h.run(&entries, 0).await;
    assert_eq!(report.verdict.result(), RunResult::Error, "{}", report.summary());
    assert!(report.summary().contains("no AWS region is configured"), "{}", report.summary());
    let quiet_job = h.prepare_in(json!({"flakeName": "job", "flakeType": "job", "flakeOutput": "json", "flakeCommand": "echo done"}), None);
    let report = h.run(&quiet_job, 1).await;
    assert_eq!(report.verdict.result(), RunResult::Ok, "a job whose output is not JSON has nothing to publish: {}", report.summary());
    assert!(h.data().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gauges_merged_by_dropping_a_label_go_out_as_one_datum_with_values() {
    let h = Harness::new(Creds::default());
    let prepared = h.prepare(json!({
        "flakeName": "sensors", "flakeOutput": "prometheus", "flakeMetrics": {"labels": {"drop": ["sensor"]}},
        "flakeCommand": "printf '# TYPE temperature gauge\\ntemperature{sensor=\"a\",room=\"lab\"} 20\\ntemperature{sensor=\"b\",room=\"lab\"} 24\\n'"
    }));
    let report = h.run(&prepared, 0).await;
    assert_eq!(report.verdict.result(), RunResult::Ok, "{}", report.summary());
    let data = h.data();
    assert_eq!(data.len(), 1, "one datum for the merged series: {data:?}");
    assert_eq!(data[0].metric_name, "temperature");
    assert_eq!(data[0].dimensions, [("room".to_string(), "lab".to_string())]);
    let mut values = data[0].counted_values.clone();
    values.sort_by(|a, b| a.0.total_cmp(&b.0));
    assert_eq!(values, [(20.0, 1.0), (24.0, 1.0)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flake_aggregate_folds_each_series_of_a_multi_metric_flake() {
    let h = Harness::new(Creds::default());
    let prepared = h.prepare(json!({
        "flakeName": "agg", "flakeOutput": "json", "flakeAggregate": "60s", "flakeCronstring": "@every 10s",
        "flakeCommand": format!("echo '{{\"a\": 1, \"b\": 2}}'")
    }));
    // Runs in the current, still open window; the drain at the end sends it. Not in a window's
    // last seconds, or it could close between the runs.
    if Utc::now().timestamp() % 60 >= 50 {
        tokio::time::sleep(Duration::from_secs(11)).await;
    }
    let window = Utc::now().timestamp() / 60 * 60;
    for second in [0, 10, 20] {
        let (_keep, stop) = watch::channel(false);
        let report = execute(&prepared, Utc.timestamp_opt(window + second, 0).unwrap(), &h.context, stop).await;
        assert_eq!(report.verdict.result(), RunResult::Ok, "{}", report.summary());
    }
    assert_eq!(h.publisher.drain(Duration::from_secs(10)).await.pending, 0);
    let data = h.data();
    assert_eq!(data.len(), 2, "one datum per series for the window: {data:?}");
    for (name, value) in [("a", 1.0), ("b", 2.0)] {
        let datum = data.iter().find(|datum| datum.metric_name == name).unwrap();
        assert_eq!(datum.counted_values, [(value, 3.0)], "{datum:?}");
        assert_eq!(datum.timestamp_ms % 60_000, 0, "stamped at the window's start");
    }
}
