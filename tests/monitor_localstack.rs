//! Jobs as cron monitors (SPEC 9) against LocalStack, which evaluates alarms itself: a failing job
//! sets off `FL-<flake>-failed`, a hanging one `FL-<flake>-overdue`, and both return to OK when
//! the job succeeds again; `kill -9` neither resets nor forgets a last success; `once` publishes
//! JobSuccess and JobDuration only; and why the values are stamped when the run ended.
//! Fails loudly without LocalStack (run under `scripts/localstack.sh with` or scripts/test.sh).
//!
//! How fast LocalStack evaluates (localstack/services/cloudwatch/alarm_scheduler.py, 4.13): every
//! `Period × EvaluationPeriods` seconds from when the alarm was put, over the last three periods
//! (`EvaluationPeriods + max(EvaluationPeriods / 3, 2)`), and with 1 of 1 any breaching value in
//! them alarms. A 60 s alarm thus alarms within a minute of a bad value and clears three minutes
//! after the last one. The overdue alarm's 300 s period would take 5 minutes to alarm and 15 to
//! clear, so the alarms test checks the alarm as declared, then puts it again with a 60 s period
//! (everything else as declared) and runs the daemon with an hour between reconciles, so that
//! LocalStack evaluates the same alarm on the same values five times as often.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use common::{Daemon, Workspace, endpoint, sdk, unique, with_aws};
use serde_json::{Value, json};
use specialsnowflake::cloudwatch::sdk::{MetricQuery, SdkCloudWatch};
use specialsnowflake::cloudwatch::{AlarmConfig, CloudWatch, Datum};
use specialsnowflake::monitor::{FAILED, OVERDUE, job_dimensions};

const REGION: &str = "us-east-1";

fn monitored_job(name: &str, namespace: &str, command: &str, ok_file: &Path, extra: Value) -> Value {
    let mut flake = json!({
        "flakeName": name,
        "flakeType": "job",
        "flakeCronstring": "* * * * *",
        "flakeCommand": command,
        "flakeTimeout": 5,
        "flakeMetricNamespace": namespace,
        "flakeEnvironment": {"OK_FILE": ok_file.display().to_string()},
        "flakeMonitor": {"grace": "1m"},
    });
    for (key, value) in extra.as_object().unwrap() {
        flake[key] = value.clone();
    }
    flake
}

async fn state_of(cloudwatch: &SdkCloudWatch, name: &str) -> Option<String> {
    cloudwatch.describe_alarms_named(REGION, &[name.to_string()]).await.unwrap().pop().and_then(|alarm| alarm.state)
}

/// Polls the alarm's state until it is `want`; fails with what it saw and the daemon's log.
async fn wait_for_state(cloudwatch: &SdkCloudWatch, name: &str, want: &str, limit: Duration, daemon: Option<&Daemon>) {
    let started = Instant::now();
    let mut seen = Vec::new();
    loop {
        let state = state_of(cloudwatch, name).await;
        if state.as_deref() == Some(want) {
            return;
        }
        if seen.last() != Some(&state) {
            seen.push(state);
        }
        assert!(
            started.elapsed() < limit,
            "{name} not {want} after {limit:?}; states seen: {seen:?}\ndaemon log:\n{}",
            daemon.map(Daemon::log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// The largest value of `metric` for `job` between `from` and now (minute buckets: LocalStack
/// answers a long range of one-second buckets slowly).
async fn maximum(cloudwatch: &SdkCloudWatch, namespace: &str, metric: &str, job: &str, from: DateTime<Utc>) -> Option<f64> {
    let dimensions = vec![("Job".to_string(), job.to_string())];
    let query = MetricQuery {
        namespace,
        metric_name: metric,
        dimensions: &dimensions,
        start_ms: from.timestamp_millis() - 60_000,
        end_ms: Utc::now().timestamp_millis() + 60_000,
        period_seconds: 60,
    };
    let buckets = cloudwatch.statistics(REGION, &query).await.unwrap();
    buckets.iter().map(|bucket| bucket.maximum).reduce(f64::max)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_job_and_a_hanging_job_set_off_their_alarms_and_both_recover() {
    let endpoint = endpoint();
    let cloudwatch = sdk(&endpoint).await;
    let workspace = Workspace::new();
    let namespace = unique("Monitor");
    let ok_file = workspace.root.path().join("jobs-are-fixed");
    let failing = unique("failing");
    let hanging = unique("hanging");
    workspace.add("failing", monitored_job(&failing, &namespace, "test -f \"$OK_FILE\" || exit 1", &ok_file, json!({})));
    workspace.add("hanging", monitored_job(&hanging, &namespace, "test -f \"$OK_FILE\" || sleep 300", &ok_file, json!({})));
    let started = Utc::now();
    let daemon = Daemon::start(
        with_aws(&mut workspace.snowflake(), &endpoint).args(["--flush-interval", "500ms"]),
        &workspace,
        &["--reconcile-interval", "1h"],
    );

    // The daemon declared the alarms as SPEC 9 has them.
    let (failed_name, overdue_name) = (FAILED.name(&failing), OVERDUE.name(&hanging));
    let created = Instant::now();
    while cloudwatch.describe_alarms_named(REGION, &[failed_name.clone(), overdue_name.clone()]).await.unwrap().len() < 2 {
        assert!(created.elapsed() < Duration::from_secs(30), "the monitors' alarms were not created; log:\n{}", daemon.log());
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let declared = cloudwatch.describe_alarms_named(REGION, std::slice::from_ref(&overdue_name)).await.unwrap().pop().unwrap();
    assert_eq!((declared.metric_name.as_deref(), declared.statistic.as_deref()), (Some("JobOverdueSeconds"), Some("Maximum")));
    assert_eq!((declared.period, declared.evaluation_periods, declared.threshold), (Some(300), Some(1), Some(0.0)));
    assert_eq!(declared.treat_missing_data.as_deref(), Some("breaching"));
    let failed = cloudwatch.describe_alarms_named(REGION, std::slice::from_ref(&failed_name)).await.unwrap().pop().unwrap();
    assert_eq!(
        (failed.metric_name.as_deref(), failed.period, failed.treat_missing_data.as_deref()),
        (Some("JobSuccess"), Some(60), Some("notBreaching"))
    );

    // The same overdue alarm, evaluated every minute instead of every five (see the module doc).
    let job_dims = job_dimensions(&Default::default(), &hanging);
    let mut quicker: AlarmConfig = OVERDUE.config(&hanging, &namespace, &job_dims, &Default::default());
    quicker.period = 60;
    cloudwatch.put_metric_alarm(REGION, &quicker).await.unwrap();
    // While within its minute of grace the hanging job reports 0, and the alarm is OK. (Before the
    // first value, missing data is breaching, so an ALARM seen first would prove nothing.)
    wait_for_state(&cloudwatch, &overdue_name, "OK", Duration::from_secs(200), Some(&daemon)).await;

    // The failing job's first run (on the next minute) sets off its failed alarm.
    wait_for_state(&cloudwatch, &failed_name, "ALARM", Duration::from_secs(200), Some(&daemon)).await;
    assert!(workspace.log_of(&failing).contains("monitor=\"failure\""), "{}", workspace.log_of(&failing));
    assert_eq!(maximum(&cloudwatch, &namespace, "JobSuccess", &failing, started).await, Some(0.0));

    // The hanging job times out every minute and has never succeeded: once a minute of grace and
    // its 5 s limit have passed after its first fire time, it is overdue.
    wait_for_state(&cloudwatch, &overdue_name, "ALARM", Duration::from_secs(300), Some(&daemon)).await;
    assert!(workspace.log_of(&hanging).contains("monitor=\"failure (timed out)\""), "{}", workspace.log_of(&hanging));
    let late = maximum(&cloudwatch, &namespace, "JobOverdueSeconds", &hanging, started).await;
    assert!(late.is_some_and(|seconds| seconds > 0.0), "JobOverdueSeconds of {hanging}: {late:?}");

    // Both jobs are fixed: the next runs succeed, and both alarms return to OK.
    std::fs::write(&ok_file, "").unwrap();
    daemon.wait_for(Duration::from_secs(90), "both jobs to succeed", || {
        workspace.log_of(&failing).contains("monitor=\"success\"") && workspace.log_of(&hanging).contains("monitor=\"success\"")
    });
    wait_for_state(&cloudwatch, &failed_name, "OK", Duration::from_secs(300), Some(&daemon)).await;
    wait_for_state(&cloudwatch, &overdue_name, "OK", Duration::from_secs(300), Some(&daemon)).await;
    assert_eq!(maximum(&cloudwatch, &namespace, "JobSuccess", &hanging, started).await, Some(1.0));
    let (status, _) = daemon.stop(Duration::from_secs(30));
    assert!(status.success(), "exit status {status}");
}

fn kept(state_dir: &Path, job: &str) -> (String, Option<String>) {
    let text = std::fs::read_to_string(state_dir.join("monitors.json")).unwrap_or_default();
    let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    let record = &value["jobs"][job];
    (record["firstLoaded"].as_str().unwrap_or_default().to_string(), record["lastSuccess"].as_str().map(str::to_string))
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_and_a_restart_neither_reset_nor_forget_the_last_success() {
    let endpoint = endpoint();
    let workspace = Workspace::new();
    let namespace = unique("MonitorRestart");
    let job = unique("nightly");
    let ok_file = workspace.root.path().join("backup-works");
    std::fs::write(&ok_file, "").unwrap();
    // Every 3 s, no grace, a 3 s time limit: its deadline is its last success + 6 s.
    let flake = monitored_job(
        &job,
        &namespace,
        "test -f \"$OK_FILE\"",
        &ok_file,
        json!({"flakeCronstring": "@every 3s", "flakeTimeout": 3, "flakeMonitor": {"grace": 0, "failedAlarm": false}}),
    );
    workspace.add("nightly", flake);
    let start = || Daemon::start(with_aws(&mut workspace.snowflake(), &endpoint).args(["--flush-interval", "500ms"]), &workspace, &[]);

    let daemon = start();
    daemon.wait_for(Duration::from_secs(30), "a success to be kept", || kept(&workspace.state(), &job).1.is_some());
    // The job breaks; once it has failed twice, the kept success is the last one before.
    std::fs::remove_file(&ok_file).unwrap();
    daemon.wait_for(Duration::from_secs(30), "two failures", || workspace.log_of(&job).matches("monitor=\"failure\"").count() >= 2);
    let (first_loaded, last_success) = kept(&workspace.state(), &job);
    let last_success = last_success.unwrap();
    daemon.kill9();
    assert_eq!(kept(&workspace.state(), &job), (first_loaded.clone(), Some(last_success.clone())), "on disk after kill -9");

    // Restarted, still failing: neither the first load nor the last success moves.
    std::thread::sleep(Duration::from_secs(2));
    let restarted_at = Utc::now();
    let daemon = start();
    let failures = workspace.log_of(&job).matches("monitor=\"failure\"").count();
    daemon.wait_for(Duration::from_secs(30), "a failure after the restart", || {
        workspace.log_of(&job).matches("monitor=\"failure\"").count() > failures
    });
    assert_eq!(kept(&workspace.state(), &job), (first_loaded, Some(last_success.clone())), "after the restart");

    // The first JobOverdueSeconds after the restart counts from the kept success, not the restart.
    let last_success: DateTime<Utc> = last_success.parse().unwrap();
    let tick = restarted_at.duration_trunc(TimeDelta::minutes(1)).unwrap() + TimeDelta::minutes(1);
    let cloudwatch = sdk(&endpoint).await;
    let dimensions = vec![("Job".to_string(), job.clone())];
    let query = MetricQuery {
        namespace: &namespace,
        metric_name: "JobOverdueSeconds",
        dimensions: &dimensions,
        start_ms: tick.timestamp_millis(),
        end_ms: tick.timestamp_millis() + 1_000,
        period_seconds: 1,
    };
    let deadline = Instant::now() + Duration::from_secs(100);
    let bucket = loop {
        let buckets = cloudwatch.statistics(REGION, &query).await.unwrap();
        if let Some(bucket) = buckets.into_iter().next() {
            break bucket;
        }
        assert!(Instant::now() < deadline, "no JobOverdueSeconds at {tick}; log:\n{}", daemon.log());
        tokio::time::sleep(Duration::from_secs(2)).await;
    };
    let expected = (tick - (last_success + TimeDelta::seconds(6))).num_seconds() as f64;
    assert_eq!(bucket.maximum, expected, "tick {tick}, last success {last_success}");
    let (status, _) = daemon.stop(Duration::from_secs(30));
    assert!(status.success());
}

#[test]
fn once_publishes_success_and_duration_but_no_overdue_value_and_keeps_no_state() {
    let endpoint = endpoint();
    let workspace = Workspace::new();
    let namespace = unique("MonitorOnce");
    let job = unique("report");
    let flake = monitored_job(&job, &namespace, "sleep 1; echo 42", Path::new("/nonexistent"), json!({}));
    workspace.add("report", flake);
    let (code, stdout, stderr) = common::run(with_aws(&mut workspace.snowflake(), &endpoint).arg("once"));
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("published: 3 of 3 value(s)"), "the value, JobSuccess and JobDuration: {stdout}");
    assert!(!workspace.state().join("monitors.json").exists(), "once keeps no monitor state");

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let cloudwatch = sdk(&endpoint).await;
        let from = Utc::now() - TimeDelta::minutes(2);
        assert_eq!(maximum(&cloudwatch, &namespace, "JobSuccess", &job, from).await, Some(1.0));
        let duration = maximum(&cloudwatch, &namespace, "JobDuration", &job, from).await.unwrap();
        assert!((1.0..5.0).contains(&duration), "JobDuration {duration}");
        assert_eq!(maximum(&cloudwatch, &namespace, "JobOverdueSeconds", &job, from).await, None);
    });
}

/// Why `JobSuccess` is stamped when the run ended: the failed alarm (60 s, 1 of 1) is evaluated
/// over recent periods only. A failure stamped at the start of a five-minute run never sets it
/// off; the same failure stamped at its end does.
#[tokio::test(flavor = "multi_thread")]
async fn a_failure_stamped_minutes_in_the_past_is_never_seen_by_the_failed_alarm() {
    let cloudwatch = sdk(&endpoint()).await;
    let namespace = unique("MonitorLate");
    let (at_start, at_end) = (unique("stamped-at-start"), unique("stamped-at-end"));
    let now = Utc::now();
    for (job, stamped) in [(&at_start, now - TimeDelta::minutes(5)), (&at_end, now)] {
        let dimensions = job_dimensions(&Default::default(), job);
        cloudwatch.put_metric_alarm(REGION, &FAILED.config(job, &namespace, &dimensions, &Default::default())).await.unwrap();
        let datum = Datum {
            metric_name: "JobSuccess".to_string(),
            dimensions: dimensions.into_iter().collect(),
            value: 0.0,
            timestamp_ms: stamped.timestamp_millis(),
            unit: "None".to_string(),
            storage_resolution: 60,
            counted_values: Vec::new(),
        };
        cloudwatch.put_metric_data(REGION, &namespace, &[datum]).await.unwrap();
    }
    // Both alarms were put together, so LocalStack evaluates them at the same moments.
    wait_for_state(&cloudwatch, &FAILED.name(&at_end), "ALARM", Duration::from_secs(150), None).await;
    assert_ne!(state_of(&cloudwatch, &FAILED.name(&at_start)).await.as_deref(), Some("ALARM"));
    tokio::time::sleep(Duration::from_secs(65)).await;
    assert_ne!(state_of(&cloudwatch, &FAILED.name(&at_start)).await.as_deref(), Some("ALARM"), "a minute later still not");
}
