//! The whole daemon in this process, on the in-memory CloudWatch: scheduling, publishing, hot
//! reload, alarm reconciliation, shutdown, and a start that fails before any flake runs.
//!
//! Real time, with `@every 1s` flakes, not tokio's paused clock: the scheduler plans by the wall
//! clock (`Utc::now`, which a paused tokio clock does not move) and every run is a real
//! `/bin/sh` child, during which an auto-advancing paused clock would jump straight to the run's
//! timeout. Each test still takes only a few seconds.

use std::future::Future;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use specialsnowflake::catalog::Loader;
use specialsnowflake::cloudwatch::fake::{FakeCloudWatch, Operation};
use specialsnowflake::cloudwatch::{CallError, ErrorKind};
use specialsnowflake::creds::{Creds, Redactor};
use specialsnowflake::daemon::{self, DaemonConfig, Services};
use specialsnowflake::flakelog::FlakeLogs;
use specialsnowflake::placeholders::HostFacts;
use specialsnowflake::publish::PublisherConfig;

const REGION: &str = "us-east-1";

struct Harness {
    fake: FakeCloudWatch,
    root: tempfile::TempDir,
}

impl Harness {
    fn new() -> Harness {
        let root = tempfile::tempdir().unwrap();
        for dir in ["flakes", "logs", "state"] {
            std::fs::create_dir(root.path().join(dir)).unwrap();
        }
        Harness { fake: FakeCloudWatch::new(), root }
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.root.path().join(relative)
    }

    fn write(&self, name: &str, flake: serde_json::Value) {
        std::fs::write(self.path(&format!("flakes/{name}.json")), serde_json::to_string_pretty(&flake).unwrap()).unwrap();
    }

    fn log_of(&self, flake: &str) -> String {
        std::fs::read_to_string(self.path(&format!("logs/{flake}.log"))).unwrap_or_default()
    }

    fn config(&self) -> DaemonConfig {
        DaemonConfig {
            flakes_dir: self.path("flakes"),
            state_dir: self.path("state"),
            workdir: self.root.path().to_path_buf(),
            dry_run: false,
            listen: None,
            status_page: true,
            reconcile_interval: Duration::from_secs(600),
            rescan_interval: Duration::from_millis(200),
            shutdown_grace: Duration::from_secs(5),
            spool_max_bytes: 1 << 30,
            heartbeat_namespace: None,
            dashboard: None,
            max_concurrent_runs: 16,
            command_nice: 0,
            splay: Duration::ZERO,
            publisher: PublisherConfig { flush_interval: Duration::from_millis(100), max_put_rate: 1000.0, ..PublisherConfig::default() },
            container_engine: None,
        }
    }

    fn services(&self) -> Services<FakeCloudWatch> {
        Services {
            cloudwatch: Arc::new(self.fake.clone()),
            default_region: Some(REGION.to_string()),
            creds: Creds::default(),
            logs: Arc::new(FlakeLogs::open(&self.path("logs"), 7, Redactor::default()).unwrap()),
            loader: Loader::new(chrono_tz::Tz::UTC, HostFacts::local()),
        }
    }

    fn values(&self, namespace: &str, metric: &str) -> Vec<f64> {
        self.fake.data(REGION, namespace).into_iter().filter(|datum| datum.metric_name == metric).map(|datum| datum.value).collect()
    }
}

/// Waits (real time, polling) until `done` holds; fails the test with `what` after `within`.
async fn eventually(within: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + within;
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "timed out after {within:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn never() -> impl Future<Output = ()> {
    std::future::pending()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn firings_are_published_with_their_scheduled_second_and_logged() {
    let h = Harness::new();
    h.write(
        "tick",
        json!({"flakeName": "tick", "flakeCronstring": "@every 1s", "flakeCommand": "echo 7", "flakeMetricNamespace": "InProcess"}),
    );
    let daemon = daemon::start(h.config(), h.services()).await.unwrap();
    eventually(Duration::from_secs(10), "three values of tick", || h.values("InProcess", "tick").len() >= 3).await;

    let data = h.fake.data(REGION, "InProcess");
    assert!(data.iter().all(|datum| datum.value == 7.0), "{data:?}");
    assert!(data.iter().all(|datum| datum.timestamp_ms % 1000 == 0), "each value carries its scheduled second: {data:?}");
    let mut seconds: Vec<i64> = data.iter().map(|datum| datum.timestamp_ms).collect();
    seconds.dedup();
    assert_eq!(seconds.len(), data.len(), "no firing is published twice: {data:?}");
    assert!(daemon.health().report().healthy);
    let metrics = daemon.metrics().encode();
    assert!(metrics.contains("snowflake_runs_total{flake=\"tick\",result=\"ok\"}"), "{metrics}");

    let report = daemon.stop(never()).await;
    assert!(report.delivered >= 3, "{report:?}");
    assert_eq!((report.pending, report.unspooled, report.rejected), (0, 0, 0), "{report:?}");
    let log = h.log_of("tick");
    assert!(log.lines().filter(|line| line.contains(" ok scheduled=") && line.ends_with(" value=7")).count() >= 3, "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_adds_changes_and_removes_flakes() {
    let h = Harness::new();
    let flake = |name: &str, value: u32| json!({"flakeName": name, "flakeCronstring": "@every 1s", "flakeCommand": format!("echo {value}"), "flakeMetricNamespace": "Reload"});
    h.write("a", flake("a", 1));
    let daemon = daemon::start(h.config(), h.services()).await.unwrap();
    eventually(Duration::from_secs(10), "a value of a", || !h.values("Reload", "a").is_empty()).await;

    h.write("b", flake("b", 2));
    eventually(Duration::from_secs(10), "the added flake b to publish", || !h.values("Reload", "b").is_empty()).await;
    h.write("a", flake("a", 3));
    eventually(Duration::from_secs(10), "the changed flake a to publish 3", || h.values("Reload", "a").contains(&3.0)).await;
    std::fs::remove_file(h.path("flakes/b.json")).unwrap();
    daemon.reload().reread_all();
    eventually(Duration::from_secs(10), "b to be unloaded", || daemon.metrics().encode().contains("snowflake_flakes{state=\"loaded\"} 1"))
        .await;
    // A run of b already started may still land; after that, nothing more.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let settled = h.values("Reload", "b").len();
    tokio::time::sleep(Duration::from_millis(2200)).await;
    assert_eq!(h.values("Reload", "b").len(), settled, "a removed flake no longer runs");
    assert!(!daemon.metrics().encode().contains("flake=\"b\""), "a removed flake's series are forgotten");
    daemon.stop(never()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alarms_are_reconciled_at_start_and_after_a_change() {
    let h = Harness::new();
    let with_alarm = |threshold: u32| {
        json!({"flakeName": "disk", "flakeCronstring": "0 0 1 1 *", "flakeCommand": "echo 1", "flakeMetricNamespace": "Alarms",
               "flakeAlarms": [{"alarmName": "high", "alarmThreshold": threshold, "alarmOperator": ">"}]})
    };
    h.write("disk", with_alarm(90));
    let daemon = daemon::start(h.config(), h.services()).await.unwrap();
    eventually(Duration::from_secs(10), "the alarm to be created", || h.fake.alarm(REGION, "FL-disk-high").is_some()).await;
    assert_eq!(h.fake.alarm(REGION, "FL-disk-high").unwrap().threshold, Some(90.0));

    h.write("disk", with_alarm(95));
    eventually(Duration::from_secs(10), "the alarm to be updated", || {
        h.fake.alarm(REGION, "FL-disk-high").is_some_and(|alarm| alarm.threshold == Some(95.0))
    })
    .await;
    daemon.stop(never()).await;
    assert_eq!(h.fake.alarm_names(REGION), ["FL-disk-high"]);
}

/// An alarms flake runs nothing; its alarms are reconciled like every other, and a bad alarm
/// added later is left out while the others stay (nothing is deleted meanwhile).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alarms_flake_runs_nothing_and_its_alarms_are_reconciled() {
    let h = Harness::new();
    let cpu = json!({"alarmName": "cpu", "alarmNamespace": "AWS/EC2", "alarmMetricName": "CPUUtilization",
                     "alarmDimensions": {"InstanceId": "i-1"}, "alarmThreshold": 90, "alarmOperator": ">"});
    let mute = json!({"alarmName": "mute", "alarmRule": "ALARM(cpu) AND NOT ALARM(\"FL-elsewhere-maintenance\")"});
    h.fake.insert_alarm(
        REGION,
        specialsnowflake::cloudwatch::DescribedAlarm { name: "FL-elsewhere-maintenance".into(), ..Default::default() },
    );
    h.write("host", json!({"flakeName": "host", "flakeType": "alarms", "flakeAlarms": [cpu.clone(), mute.clone()]}));
    let daemon = daemon::start(h.config(), h.services()).await.unwrap();
    eventually(Duration::from_secs(10), "both alarms", || h.fake.alarm(REGION, "FL-host-mute").is_some()).await;
    assert_eq!(h.fake.calls(Operation::PutCompositeAlarm), 1);

    // A typo in a new composite: it is left out, the rest stays.
    let typo = json!({"alarmName": "page", "alarmRule": "ALARM(cpuu)"});
    h.write("host", json!({"flakeName": "host", "flakeType": "alarms", "flakeAlarms": [cpu, mute, typo]}));
    tokio::time::sleep(Duration::from_secs(2)).await;
    daemon.stop(never()).await;
    assert_eq!(h.fake.alarm_names(REGION), ["FL-elsewhere-maintenance", "FL-host-cpu", "FL-host-mute"]);
    assert_eq!(h.fake.calls(Operation::DeleteAlarms), 0);
    assert!(!h.path("logs/host.log").exists() || h.log_of("host").is_empty(), "nothing ran: {}", h.log_of("host"));
    assert_eq!(h.fake.calls(Operation::PutMetricData), 0, "nothing was published");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_ends_long_runs_and_hurry_cuts_the_grace_short() {
    let h = Harness::new();
    let started_mark = h.path("started");
    let command = format!("touch {}; sleep 30", started_mark.display());
    h.write("long", json!({"flakeName": "long", "flakeCronstring": "@reboot", "flakeCommand": command, "flakeMetricNamespace": "Stop"}));
    let daemon = daemon::start(h.config(), h.services()).await.unwrap();
    eventually(Duration::from_secs(5), "the @reboot run to start", || started_mark.exists()).await;
    let started = tokio::time::Instant::now();
    daemon.stop(async {}).await;
    assert!(started.elapsed() < Duration::from_secs(5), "hurry skipped the 5 s grace; took {:?}", started.elapsed());
    let log = h.log_of("long");
    assert!(log.contains(" stopped scheduled="), "{log}");
}

/// A flake that leaves a mark when it runs, to prove a failed start ran nothing.
fn reboot_marker(h: &Harness) -> PathBuf {
    let marker = h.path("ran");
    h.write("mark", json!({"flakeName": "mark", "flakeType": "job", "flakeCronstring": "@reboot", "flakeCommand": format!("touch {}", marker.display())}));
    marker
}

async fn assert_start_fails(h: &Harness, config: DaemonConfig, services: Services<FakeCloudWatch>, expected: &str, marker: &Path) {
    let error = daemon::start(config, services).await.err().expect("the start fails");
    assert!(error.contains(expected), "{error}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!marker.exists(), "no flake ran, not even an @reboot one");
    assert_eq!(h.fake.calls(Operation::PutMetricData) + h.fake.calls(Operation::DescribeAlarms), 0, "CloudWatch was not called");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_that_cannot_open_everything_runs_nothing() {
    let h = Harness::new();
    let marker = reboot_marker(&h);

    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let config = DaemonConfig { listen: Some(taken.local_addr().unwrap()), ..h.config() };
    assert_start_fails(&h, config, h.services(), "--listen", &marker).await;

    let config = DaemonConfig { heartbeat_namespace: Some("Snowflake".to_string()), ..h.config() };
    let services = Services { default_region: None, ..h.services() };
    assert_start_fails(&h, config, services, "--heartbeat-namespace needs a default AWS region", &marker).await;

    std::fs::write(h.path("not-a-dir"), "").unwrap();
    let config = DaemonConfig { state_dir: h.path("not-a-dir"), ..h.config() };
    assert_start_fails(&h, config, h.services(), "not-a-dir", &marker).await;

    // And with everything in order, the @reboot flake runs once.
    let daemon = daemon::start(h.config(), h.services()).await.unwrap();
    eventually(Duration::from_secs(5), "the @reboot flake to run", || marker.exists()).await;
    daemon.stop(never()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_keeps_values_in_the_spool_for_the_next_start() {
    let h = Harness::new();
    h.fake.set_down(Operation::PutMetricData, CallError::new(ErrorKind::Unavailable, None, "no route"));
    h.write(
        "tick",
        json!({"flakeName": "tick", "flakeCronstring": "@every 1s", "flakeCommand": "echo 4", "flakeMetricNamespace": "Outage"}),
    );
    let daemon = daemon::start(h.config(), h.services()).await.unwrap();
    eventually(Duration::from_secs(10), "two runs", || h.log_of("tick").matches(" ok ").count() >= 2).await;
    let report = daemon.stop(never()).await;
    assert_eq!(report.delivered, 0);
    assert!(report.left_in_spool() >= 2, "{report:?}");
    assert_eq!(report.unspooled, 0, "{report:?}");

    // The next start replays them once CloudWatch is back.
    let fake = FakeCloudWatch::new();
    let services = Services { cloudwatch: Arc::new(fake.clone()), ..h.services() };
    std::fs::remove_file(h.path("flakes/tick.json")).unwrap();
    let daemon = daemon::start(h.config(), services).await.unwrap();
    let spooled = report.left_in_spool() as usize;
    eventually(Duration::from_secs(10), "the spooled values to be delivered", || fake.data(REGION, "Outage").len() >= spooled).await;
    let report = daemon.stop(never()).await;
    assert_eq!((report.delivered, report.pending), (spooled as u64, 0));
}

/// Issue 12, item 2: validating a huge flake file (an unknown key of megabytes makes the
/// did-you-mean suggestion slow) used to hold a runtime thread, and a healthy flake's firings
/// were skipped as "the previous run is still going". Loading now runs on the blocking pool.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flake_file_slow_to_validate_stalls_neither_runs_nor_health() {
    let h = Harness::new();
    h.write("tick", json!({"flakeName": "tick", "flakeCronstring": "@every 1s", "flakeCommand": "echo 1", "flakeMetricNamespace": "Slow"}));
    let daemon = daemon::start(h.config(), h.services()).await.unwrap();
    eventually(Duration::from_secs(10), "a first value", || !h.values("Slow", "tick").is_empty()).await;

    let mut huge = serde_json::Map::new();
    huge.insert("flakeName".to_string(), json!("huge"));
    huge.insert("flakeCronstring".to_string(), json!("0 0 1 1 *"));
    huge.insert("flakeCommand".to_string(), json!("echo 1"));
    huge.insert("flakeMetricNamespace".to_string(), json!("Slow"));
    huge.insert("x".repeat(200 << 10), json!(1));
    // Written aside and renamed in, so no rescan reads half of it.
    std::fs::write(h.path("huge.tmp"), serde_json::to_vec(&huge).unwrap()).unwrap();
    std::fs::rename(h.path("huge.tmp"), h.path("flakes/huge.json")).unwrap();

    let mut always_healthy = true;
    eventually(Duration::from_secs(300), "the huge file to be loaded", || {
        always_healthy &= daemon.health().report().healthy;
        daemon.metrics().encode().contains("snowflake_flakes{state=\"loaded\"} 2")
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    daemon.stop(never()).await;
    assert!(always_healthy, "/healthz stayed healthy while the file was validated");
    let log = h.log_of("tick");
    assert!(!log.contains(" skipped "), "no firing was skipped while the file was validated:\n{log}");
}

/// A monitored job's every firing counts for its monitor: a run that times out and the firings
/// skipped while it ran are failures (`JobSuccess` 0, said in the log line), a run that exits 0 is
/// a success and is kept in `monitors.json`; the values carry `Job=<flakeName>`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_monitored_jobs_timeouts_and_overlap_skips_are_failures_and_its_successes_are_kept() {
    let h = Harness::new();
    let fixed = h.path("fixed");
    h.write(
        "sync",
        json!({"flakeName": "sync", "flakeType": "job", "flakeCronstring": "@every 1s", "flakeTimeout": 2.5,
               "flakeCommand": format!("test -f {} || sleep 10", fixed.display()),
               "flakeMetricNamespace": "Monitored", "flakeMonitor": {"grace": "10s"}}),
    );
    let daemon = daemon::start(h.config(), h.services()).await.unwrap();
    eventually(Duration::from_secs(15), "a time-out and a skip", || {
        let log = h.log_of("sync");
        log.contains("monitor=\"failure (timed out)\"") && log.contains("monitor=\\\"failure (skipped")
    })
    .await;
    std::fs::write(&fixed, "").unwrap();
    eventually(Duration::from_secs(15), "a success", || h.log_of("sync").contains("monitor=\"success\"")).await;
    eventually(Duration::from_secs(5), "the success to be kept", || {
        std::fs::read_to_string(h.path("state/monitors.json")).is_ok_and(|kept| kept.contains("\"lastSuccess\""))
    })
    .await;
    daemon.stop(never()).await;

    let data = h.fake.data(REGION, "Monitored");
    let success: Vec<f64> = data.iter().filter(|datum| datum.metric_name == "JobSuccess").map(|datum| datum.value).collect();
    assert!(success.contains(&0.0) && success.contains(&1.0), "{success:?}");
    let durations = data.iter().filter(|datum| datum.metric_name == "JobDuration").count();
    assert!(durations < success.len(), "skipped firings have no duration: {durations} of {}", success.len());
    assert!(data.iter().all(|datum| datum.dimensions == [("Job".to_string(), "sync".to_string())]), "{data:?}");
}

/// Issue 18: with `--splay`, runs of one fire time start spread over the window, and each keeps
/// its scheduled time in `SNOWFLAKE_SCHEDULED_TIME` and as its datapoint's timestamp; the
/// firing's datapoints still leave in one PutMetricData call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn splay_spreads_starts_and_keeps_the_scheduled_time() {
    let h = Harness::new();
    let starts = h.path("starts");
    std::fs::create_dir(&starts).unwrap();
    for i in 0..12 {
        let command = format!("echo \"$SNOWFLAKE_SCHEDULED_TIME $(date +%s%N)\" > {}/f{i}; echo {i}", starts.display());
        h.write(
            &format!("f{i}"),
            json!({"flakeName": format!("f{i}"), "flakeCronstring": "@every 4s", "flakeCommand": command, "flakeMetricNamespace": "Splay"}),
        );
    }
    let config = DaemonConfig { splay: Duration::from_secs(3), ..h.config() };
    let daemon = daemon::start(config, h.services()).await.unwrap();
    eventually(Duration::from_secs(20), "the first firing of all twelve", || h.fake.data(REGION, "Splay").len() >= 12).await;
    daemon.stop(never()).await;

    let mut offsets = Vec::new();
    for i in 0..12 {
        let text = std::fs::read_to_string(starts.join(format!("f{i}"))).unwrap();
        let (scheduled, started_ns) = text.trim().split_once(' ').unwrap();
        let scheduled = chrono::DateTime::parse_from_rfc3339(scheduled).unwrap();
        assert_eq!(scheduled.timestamp() % 4, 0, "SNOWFLAKE_SCHEDULED_TIME is the firing's time, not the start: {text}");
        offsets.push(started_ns.parse::<i64>().unwrap() / 1_000_000 - scheduled.timestamp_millis());
    }
    assert!(offsets.iter().all(|offset| (0..3_500).contains(offset)), "every run starts within the splay: {offsets:?}");
    assert!(offsets.iter().max().unwrap() - offsets.iter().min().unwrap() > 1_000, "starts are spread: {offsets:?}");
    let data = h.fake.data(REGION, "Splay");
    assert!(data.iter().all(|datum| datum.timestamp_ms % 4000 == 0), "datapoints carry the scheduled time: {data:?}");
    assert_eq!(h.fake.put_sizes()[0], 12, "one call for the firing though it spans more than the 100 ms flush interval");
}

/// Issue 22.2: a panic in an essential task (here the reconcile task, through an injected panic
/// in DescribeAlarms) stops the daemon with the reason; it never lives on running nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_in_an_essential_task_stops_the_daemon_with_the_reason() {
    let h = Harness::new();
    h.write(
        "disk",
        json!({"flakeName": "disk", "flakeCronstring": "@every 1s", "flakeCommand": "echo 1", "flakeMetricNamespace": "Panic",
               "flakeAlarms": [{"alarmName": "high", "alarmThreshold": 90, "alarmOperator": ">"}]}),
    );
    h.fake.panic_next_describes(1);
    let ended = tokio::time::timeout(Duration::from_secs(60), daemon::run(h.config(), h.services(), never(), never())).await;
    let reason = ended.expect("the daemon stops by itself").expect_err("and fails");
    assert_eq!(reason, "the reconcile task panicked: injected panic in DescribeAlarms");
}

/// Issue 22.6: damage of any kind to a file of the state directory (a byte that is not UTF-8,
/// garbage, a directory under its name) is set aside and the daemon goes on: it starts, creates
/// a newly declared alarm and the dashboard. A damaged managed-alarm list proves nothing about
/// what this host manages, so an alarm it listed is not deleted (the safe choice).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_damage_to_a_state_file_is_set_aside_and_reconciling_goes_on() {
    use specialsnowflake::cloudwatch::DescribedAlarm;
    type Damage = (&'static str, fn(&Path));
    let damages: [Damage; 3] = [
        ("a byte that is not UTF-8", |path| std::fs::write(path, b"{\"version\": 1, \"names\": [\"\xff\"]}").unwrap()),
        ("garbage", |path| std::fs::write(path, "{ not json").unwrap()),
        ("a directory", |path| std::fs::create_dir_all(path.join("inside")).unwrap()),
    ];
    for file in ["alarms.json", "monitors.json", "dashboards.json", "alarms.lock", "spool/LOCK"] {
        for (damage, make) in damages {
            let h = Harness::new();
            h.write(
                "disk",
                json!({"flakeName": "disk", "flakeCronstring": "@every 1s", "flakeCommand": "echo 1", "flakeMetricNamespace": "Damage",
                       "flakeAlarms": [{"alarmName": "high", "alarmThreshold": 90, "alarmOperator": ">"}]}),
            );
            h.fake.insert_alarm(REGION, DescribedAlarm { name: "FL-disk-old".into(), ..DescribedAlarm::default() });
            let path = h.path(&format!("state/{file}"));
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            make(&path);
            let config = DaemonConfig { dashboard: Some("damage-test".to_string()), ..h.config() };
            let case = format!("{file} holding {damage}");
            let daemon =
                daemon::start(config, h.services()).await.unwrap_or_else(|reason| panic!("{case}: the daemon must start: {reason}"));
            eventually(Duration::from_secs(20), &format!("{case}: the new alarm and the dashboard"), || {
                h.fake.alarm(REGION, "FL-disk-high").is_some() && h.fake.dashboard(REGION, "damage-test").is_some()
            })
            .await;
            eventually(Duration::from_secs(10), &format!("{case}: a value of disk"), || !h.values("Damage", "disk").is_empty()).await;
            daemon.stop(never()).await;
            assert!(h.fake.alarm(REGION, "FL-disk-old").is_some(), "{case}: an alarm not proven managed is never deleted");
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let aside = std::fs::read_dir(path.parent().unwrap())
                .unwrap()
                .filter_map(Result::ok)
                .any(|entry| entry.file_name().to_string_lossy().starts_with(&format!("{name}.unreadable-")));
            // A lock file holds nothing: only something that is not a file is in the way.
            if file.ends_with(".json") || damage == "a directory" {
                assert!(aside, "{case}: the damaged one is set aside for a person to look at");
            }
            if file.ends_with(".json") && file != "monitors.json" {
                let text = std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{case}: rewritten: {error}"));
                assert!(serde_json::from_str::<serde_json::Value>(&text).is_ok(), "{case}: {text}");
            }
        }
    }
}

/// Issue 22.6, the other way round: a file where the spool directory belongs is set aside too;
/// the daemon starts and publishes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_where_the_spool_directory_belongs_is_set_aside() {
    let h = Harness::new();
    h.write(
        "tick",
        json!({"flakeName": "tick", "flakeCronstring": "@every 1s", "flakeCommand": "echo 1", "flakeMetricNamespace": "Spool"}),
    );
    std::fs::write(h.path("state/spool"), b"\xff garbage").unwrap();
    let daemon = daemon::start(h.config(), h.services()).await.expect("the daemon starts");
    eventually(Duration::from_secs(10), "a value of tick", || !h.values("Spool", "tick").is_empty()).await;
    daemon.stop(never()).await;
    assert!(h.path("state/spool").is_dir());
    let aside = std::fs::read_dir(h.path("state")).unwrap().filter_map(Result::ok).any(|entry| {
        let name = entry.file_name().to_string_lossy().into_owned();
        name.starts_with("spool.unreadable-") && std::fs::read(entry.path()).unwrap() == b"\xff garbage"
    });
    assert!(aside, "the file is kept for a person to look at");
}
