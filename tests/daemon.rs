//! `snowflake run` end to end: scheduled firings reach CloudWatch, hot reload, the overlap guard,
//! graceful shutdown, and the HTTP endpoint.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chrono::Utc;
use common::{Daemon, Workspace, endpoint, sdk, unique, venv_python, with_aws};
use serde_json::json;
use specialsnowflake::cloudwatch::CloudWatch;
use specialsnowflake::cloudwatch::sdk::MetricQuery;
use specialsnowflake::publish::spool::disk::DiskSpool;

fn count(text: &str, needle: &str) -> usize {
    text.matches(needle).count()
}

/// Parses /metrics with the reference OpenMetrics parser (Python prometheus_client).
fn parse_with_reference_parser(text: &str) -> usize {
    let script = "import sys\nfrom prometheus_client.openmetrics.parser import text_string_to_metric_families as parse\nprint(len(list(parse(sys.stdin.read()))))";
    let mut child = Command::new(venv_python())
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), text.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "not valid OpenMetrics text: {}\n{text}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).trim().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_firing_reaches_cloudwatch_with_its_scheduled_time_and_lateness_is_recorded() {
    let endpoint = endpoint();
    let workspace = Workspace::new();
    let namespace = unique("Daemon");
    workspace.add(
        "tick",
        json!({"flakeName": "tick", "flakeCronstring": "@every 1s", "flakeCommand": "date -u -d \"$SNOWFLAKE_SCHEDULED_TIME\" +%s",
               "flakeMetricNamespace": namespace, "flakeStorageResolution": 1}),
    );
    workspace.add(
        "minutely",
        json!({"flakeName": "minutely", "flakeCronstring": "* * * * *", "flakeCommand": "echo 5", "flakeMetricNamespace": namespace}),
    );
    let daemon = Daemon::start(with_aws(&mut workspace.snowflake(), &endpoint).arg("--flush-interval").arg("500ms"), &workspace, &[]);
    let started = Utc::now();
    // The minute may turn a second after start-up, so the per-second flake's own count is waited for too.
    daemon.wait_for(Duration::from_secs(80), "the per-minute flake to run and ten ticks", || {
        workspace.log_of("minutely").contains(" ok ") && daemon.metric("snowflake_run_lateness_seconds_count").unwrap_or(0.0) >= 10.0
    });
    std::thread::sleep(Duration::from_secs(2));

    let metrics = daemon.metrics();
    assert!(daemon.metric("snowflake_run_lateness_seconds_count").unwrap_or(0.0) >= 10.0, "{metrics}");
    assert!(parse_with_reference_parser(&metrics) >= 10, "every family parses");
    assert!(metrics.contains("snowflake_runs_total{flake=\"tick\",result=\"ok\"}"), "{metrics}");
    assert_eq!(daemon.get("/healthz").unwrap().0, 200);
    let (status, _) = daemon.stop(Duration::from_secs(30));
    assert!(status.success(), "exit status {status}");
    let stopped = Utc::now();

    let cloudwatch = sdk(&endpoint).await;
    let query = MetricQuery {
        namespace: &namespace,
        metric_name: "tick",
        dimensions: &[],
        start_ms: started.timestamp_millis() - 5_000,
        end_ms: stopped.timestamp_millis() + 5_000,
        period_seconds: 1,
    };
    let buckets = cloudwatch.statistics("us-east-1", &query).await.unwrap();
    // Every second between start-up and shutdown fired once, carrying its own scheduled second.
    let first = started.timestamp() + 2;
    let last = stopped.timestamp() - 3;
    for second in first..=last {
        let bucket = buckets
            .iter()
            .find(|b| b.timestamp_ms == second * 1000)
            .unwrap_or_else(|| panic!("no datapoint for second {second}: {buckets:?}"));
        assert_eq!(bucket.sample_count, 1.0, "second {second} fired more than once");
        assert_eq!(bucket.maximum, second as f64, "the value is the scheduled second");
    }
    // One-second buckets, so the datapoint's own timestamp shows: the top of a minute.
    let query = MetricQuery { metric_name: "minutely", ..query };
    let minutely = cloudwatch.statistics("us-east-1", &query).await.unwrap();
    assert!(minutely.iter().any(|b| b.maximum == 5.0 && b.timestamp_ms % 60_000 == 0), "{minutely:?}");
}

fn alarm_exists(region: &str, name: &str) -> bool {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async { sdk(&endpoint()).await.describe_alarms_named(region, &[name.to_string()]).await.unwrap().len() == 1 })
}

#[test]
fn hot_reload_adds_edits_keeps_a_broken_file_running_and_removes() {
    let endpoint = endpoint();
    let workspace = Workspace::new();
    let name = unique("hot");
    let alarm = format!("FL-{name}-high");
    // Another valid flake keeps the directory non-empty, so deleting the last flake may delete alarms.
    workspace.add(
        "anchor",
        json!({"flakeName": unique("anchor"), "flakeCronstring": "@daily", "flakeCommand": "echo 1", "flakeMetricNamespace": "Hot"}),
    );
    let daemon = Daemon::start(with_aws(&mut workspace.snowflake(), &endpoint), &workspace, &[]);
    let flake = |command: &str| {
        json!({"flakeName": name, "flakeCronstring": "@every 1s", "flakeCommand": command, "flakeMetricNamespace": "Hot",
               "flakeAlarms": [{"alarmName": "high", "alarmThreshold": 10, "alarmOperator": ">"}]})
    };
    // Written the way editors do: a temporary file renamed over the target.
    let write = |text: String| {
        let temporary = workspace.flakes().join(".hot.json.tmp");
        std::fs::write(&temporary, text).unwrap();
        std::fs::rename(&temporary, workspace.flakes().join("hot.json")).unwrap();
    };

    let added = Instant::now();
    write(flake("echo 1").to_string());
    daemon.wait_for(Duration::from_secs(5), "the added flake to run", || workspace.log_of(&name).contains("value=1"));
    println!("added flake ran after {:?}", added.elapsed());
    daemon.wait_for(Duration::from_secs(20), "its alarm to be created", || alarm_exists("us-east-1", &alarm));

    write(flake("echo 2").to_string());
    daemon.wait_for(Duration::from_secs(5), "the edited command to run", || workspace.log_of(&name).contains("value=2"));
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(daemon.metric("snowflake_alarm_changes_total{action=\"create\"}"), Some(1.0), "an edit must not recreate the alarm");
    assert_eq!(daemon.metric("snowflake_alarm_changes_total{action=\"delete\"}"), Some(0.0));

    write("{ \"flakeName\": ".to_string());
    daemon.wait_for(Duration::from_secs(5), "the broken file to be reported", || daemon.log().contains("hot.json: file: invalid JSON"));
    let runs_before = count(&workspace.log_of(&name), "value=2");
    std::thread::sleep(Duration::from_secs(3));
    assert!(count(&workspace.log_of(&name), "value=2") > runs_before, "the last good version keeps running");
    assert!(daemon.log().contains("its last good version keeps running"), "{}", daemon.log());
    assert!(alarm_exists("us-east-1", &alarm), "a broken file's alarms are kept");

    std::fs::remove_file(workspace.flakes().join("hot.json")).unwrap();
    daemon.wait_for(Duration::from_secs(20), "the removed flake's alarm to be deleted", || !alarm_exists("us-east-1", &alarm));
    let runs = workspace.log_of(&name).lines().count();
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(workspace.log_of(&name).lines().count(), runs, "a removed flake no longer runs");
    let (status, _) = daemon.stop(Duration::from_secs(30));
    assert!(status.success());
}

#[test]
fn a_slow_flake_runs_once_at_a_time_and_skips_are_counted() {
    let workspace = Workspace::new();
    let lock = workspace.root.path().join("running");
    let command = format!("if [ -e {0} ]; then exit 9; fi; touch {0}; sleep 3; rm {0}; echo 1", lock.display());
    workspace.add("slow", json!({"flakeName": "slow", "flakeCronstring": "@every 1s", "flakeCommand": command, "flakeTimeout": 10, "flakeMetricNamespace": "Slow"}));
    let daemon = Daemon::start(workspace.snowflake().arg("--dry-run"), &workspace, &[]);
    std::thread::sleep(Duration::from_secs(10));
    let skipped = daemon.metric("snowflake_skipped_overlaps_total{flake=\"slow\"}").unwrap_or(0.0);
    daemon.stop(Duration::from_secs(30));
    let log = workspace.log_of("slow");
    assert!(!log.contains("exit status 9"), "two runs overlapped:\n{log}");
    let ok = count(&log, " ok ");
    assert!((2..=4).contains(&ok), "about one run per 3 s, got {ok}:\n{log}");
    assert!(skipped >= 5.0, "skipped firings are counted: {skipped}");
    assert_eq!(count(&log, " skipped "), skipped as usize, "and logged in the flake's log");
}

fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|stat| !stat.rsplit(')').next().unwrap_or("").trim_start().starts_with('Z'))
}

#[test]
fn sigterm_ends_a_long_command_after_the_grace_and_keeps_undelivered_data_in_the_spool() {
    let workspace = Workspace::new();
    let pids = workspace.root.path().join("pids");
    workspace.add(
        "long",
        json!({"flakeName": "long", "flakeCronstring": "@reboot", "flakeCommand": format!("sleep 30 & echo $$ $! > {}; wait; echo 1", pids.display()),
               "flakeTimeout": 60, "flakeMetricNamespace": "Long"}),
    );
    workspace.add(
        "tick",
        json!({"flakeName": "tick", "flakeCronstring": "@every 1s", "flakeCommand": "echo 7", "flakeMetricNamespace": "Long"}),
    );
    // CloudWatch unreachable: everything produced must end up in the spool.
    let daemon = Daemon::start(with_aws(&mut workspace.snowflake(), "http://127.0.0.1:9"), &workspace, &["--shutdown-grace", "2s"]);
    daemon.wait_for(Duration::from_secs(10), "the long command to start", || pids.exists());
    daemon.wait_for(Duration::from_secs(10), "a few ticks", || count(&workspace.log_of("tick"), " ok ") >= 3);
    let (status, took) = daemon.stop(Duration::from_secs(20));
    assert!(status.success(), "exit status {status}");
    // 2 s of grace, then the group is terminated; CloudWatch being unreachable, the publisher
    // leaves the rest in the spool at once instead of waiting out its flush timeout.
    assert!(took < Duration::from_secs(8), "stopped after {took:?}: the 30 s command must not hold the exit");
    let text = std::fs::read_to_string(&pids).unwrap();
    for pid in text.split_whitespace().map(|pid| pid.parse::<i32>().unwrap()) {
        assert!(!alive(pid), "process {pid} of the command's group survived");
    }
    assert!(workspace.log_of("long").contains(" stopped "), "{}", workspace.log_of("long"));

    let ticks = count(&workspace.log_of("tick"), " ok ");
    let (_spool, recovered) = DiskSpool::open(&workspace.state(), 1 << 30, Utc::now().timestamp_millis()).unwrap();
    assert_eq!(recovered.points.len(), ticks, "every value produced is in the spool");
    assert!(recovered.points.iter().all(|(_, point)| point.value == 7.0));
}

#[test]
fn healthz_and_metrics_answer_and_other_paths_do_not() {
    let workspace = Workspace::new();
    workspace.add("a", json!({"flakeName": "a", "flakeCronstring": "@every 1s", "flakeCommand": "echo 1", "flakeMetricNamespace": "H"}));
    let daemon = Daemon::start(workspace.snowflake().arg("--dry-run"), &workspace, &[]);
    daemon.wait_for(Duration::from_secs(10), "a run", || daemon.metric("snowflake_runs_total{flake=\"a\",result=\"ok\"}").is_some());
    let (status, body) = daemon.get("/healthz").unwrap();
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    assert_eq!(daemon.get("/nope").unwrap().0, 404);
    let metrics = daemon.metrics();
    for family in [
        "snowflake_runs",
        "snowflake_run_duration_seconds",
        "snowflake_run_lateness_seconds",
        "snowflake_datapoints_published",
        "snowflake_put_metric_data_calls",
        "snowflake_spool_bytes",
        "snowflake_alarm_changes",
    ] {
        assert!(metrics.contains(&format!("# TYPE {family} ")), "{family} missing:\n{metrics}");
    }
    daemon.stop(Duration::from_secs(30));
}

#[test]
fn a_second_daemon_on_the_same_state_dir_refuses_to_start() {
    let workspace = Workspace::new();
    workspace.add("a", json!({"flakeName": "a", "flakeCronstring": "@hourly", "flakeCommand": "echo 1", "flakeMetricNamespace": "H"}));
    let first = Daemon::start(with_aws(&mut workspace.snowflake(), "http://127.0.0.1:9"), &workspace, &[]);
    let output = with_aws(&mut workspace.snowflake(), "http://127.0.0.1:9").args(["run", "--listen", "off"]).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("in use by another snowflake daemon"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    first.stop(Duration::from_secs(30));
}

#[test]
fn runs_waiting_for_a_slot_do_not_start_once_stopping() {
    let workspace = Workspace::new();
    for name in ["first", "second"] {
        let marker = workspace.root.path().join(format!("{name}-started"));
        workspace.add(
            name,
            json!({"flakeName": name, "flakeCronstring": "@reboot", "flakeCommand": format!("touch {}; sleep 3; echo 1", marker.display()), "flakeMetricNamespace": "Q"}),
        );
    }
    let daemon = Daemon::start(workspace.snowflake().args(["--dry-run", "--max-concurrent-runs", "1"]), &workspace, &[]);
    let started = |name: &str| workspace.root.path().join(format!("{name}-started")).exists();
    daemon.wait_for(Duration::from_secs(10), "one run to start", || started("first") || started("second"));
    let (status, _) = daemon.stop(Duration::from_secs(30));
    assert!(status.success());
    assert!(started("first") != started("second"), "exactly one run started: the queued one must not start after SIGTERM");
}
