//! `flakeMonitor`'s two alarms go through the one desired -> plan -> reconcile path, against the
//! in-memory CloudWatch: created with SPEC 9's fields, owned and listed like any other alarm,
//! repaired when edited, deleted when `failedAlarm` turns false or `flakeMonitor` goes.

use std::path::Path;
use std::sync::Arc;

use serde_json::{Value, json};
use specialsnowflake::alarms::{DesiredAlarm, ManagedFile, ReconcileConfig, Reconciler, Scope, desired_alarms};
use specialsnowflake::cloudwatch::DescribedAlarm;
use specialsnowflake::cloudwatch::fake::FakeCloudWatch;
use specialsnowflake::flake::{Context, Flake, parse_flake};
use specialsnowflake::metrics::Metrics;
use specialsnowflake::placeholders::HostFacts;

const REGION: &str = "us-east-1";
const TOPIC: &str = "arn:aws:sns:us-east-1:000000000000:ops";

fn flake(value: Value) -> Arc<Flake> {
    let facts = HostFacts::local();
    let context = Context { default_zone: chrono_tz::Tz::UTC, facts: &facts };
    let (flake, problems) = parse_flake(Path::new("flakes/backup.json"), &value.to_string(), &context);
    Arc::new(flake.unwrap_or_else(|| panic!("{problems:?}")))
}

fn backup(monitor: Option<Value>) -> Arc<Flake> {
    let mut value = json!({
        "flakeName": "backup",
        "flakeType": "job",
        "flakeCronstring": "0 3 * * *",
        "flakeCommand": "true",
        "flakeTimeout": 3600,
        "flakeMetricNamespace": "Ops/Jobs",
        "flakeDimensions": {"Host": "db1"},
        "flakeAlarms": [{"alarmName": "slow", "alarmThreshold": 100, "alarmOperator": ">"}],
    });
    if let Some(monitor) = monitor {
        value["flakeMonitor"] = monitor;
    }
    flake(value)
}

fn desired(flakes: &[Arc<Flake>]) -> Vec<DesiredAlarm> {
    let (desired, skipped) = desired_alarms(flakes, Some(REGION));
    assert!(skipped.is_empty(), "{skipped:?}");
    desired
}

fn reconciler(fake: &FakeCloudWatch, state: &Path) -> Reconciler<FakeCloudWatch> {
    let config = ReconcileConfig { describe_rate: 10_000.0, write_rate: 10_000.0, ..ReconcileConfig::default() };
    Reconciler::new(Arc::new(fake.clone()), ManagedFile::new(state), config, Arc::new(Metrics::new()))
}

fn all() -> Scope {
    Scope::All { deletes_allowed: true, broken_files: Vec::new() }
}

fn dimensions(alarm: &DescribedAlarm) -> Vec<(String, String)> {
    let mut dimensions = alarm.dimensions.clone();
    dimensions.sort();
    dimensions
}

#[tokio::test]
async fn the_monitors_alarms_are_reconciled_like_any_other() {
    let fake = FakeCloudWatch::new();
    let state = tempfile::tempdir().unwrap();
    let reconciler = reconciler(&fake, state.path());
    let monitored = backup(Some(json!({"grace": "30m", "alarmEndpoints": {"alarm": TOPIC, "ok": TOPIC}, "alarmTags": {"team": "dba"}})));

    let applied = reconciler.reconcile(&desired(std::slice::from_ref(&monitored)), &all()).await.unwrap();
    assert_eq!(applied.created, 3);
    assert_eq!(fake.alarm_names(REGION), ["FL-backup-failed", "FL-backup-overdue", "FL-backup-slow"]);

    let overdue = fake.alarm(REGION, "FL-backup-overdue").unwrap();
    assert_eq!((overdue.namespace.as_deref(), overdue.metric_name.as_deref()), (Some("Ops/Jobs"), Some("JobOverdueSeconds")));
    assert_eq!(dimensions(&overdue), [("Host".to_string(), "db1".to_string()), ("Job".to_string(), "backup".to_string())]);
    assert_eq!(
        (overdue.statistic.as_deref(), overdue.comparison.as_deref(), overdue.threshold),
        (Some("Maximum"), Some("GreaterThanThreshold"), Some(0.0))
    );
    assert_eq!((overdue.period, overdue.evaluation_periods, overdue.datapoints_to_alarm), (Some(300), Some(1), Some(1)));
    assert_eq!(overdue.treat_missing_data.as_deref(), Some("breaching"));
    assert_eq!(
        (overdue.alarm_actions.as_slice(), overdue.ok_actions.as_slice()),
        ([TOPIC.to_string()].as_slice(), [TOPIC.to_string()].as_slice())
    );
    assert_eq!(fake.tags(REGION, "FL-backup-overdue").get("team").map(String::as_str), Some("dba"));

    let failed = fake.alarm(REGION, "FL-backup-failed").unwrap();
    assert_eq!(
        (failed.metric_name.as_deref(), failed.statistic.as_deref(), failed.comparison.as_deref()),
        (Some("JobSuccess"), Some("Minimum"), Some("LessThanThreshold"))
    );
    assert_eq!((failed.threshold, failed.period, failed.treat_missing_data.as_deref()), (Some(1.0), Some(60), Some("notBreaching")));
    assert_eq!(dimensions(&failed), dimensions(&overdue));
    assert_eq!(fake.tags(REGION, "FL-backup-failed").get("team").map(String::as_str), Some("dba"));

    // The flake's own alarm is untouched by the monitor: its metric, no Job dimension.
    let slow = fake.alarm(REGION, "FL-backup-slow").unwrap();
    assert_eq!(dimensions(&slow), [("Host".to_string(), "db1".to_string())]);

    // Nothing to do the second time; an edit made in the console is repaired.
    let again = reconciler.reconcile(&desired(std::slice::from_ref(&monitored)), &all()).await.unwrap();
    assert_eq!(again.writes(), 0);
    fake.insert_alarm(REGION, DescribedAlarm { treat_missing_data: Some("notBreaching".to_string()), ..overdue.clone() });
    let plan = reconciler.plan(&desired(std::slice::from_ref(&monitored)), &all()).await.unwrap();
    assert!(plan.render().contains("FL-backup-overdue"), "the plan shows the drift:\n{}", plan.render());
    let repaired = reconciler.reconcile(&desired(std::slice::from_ref(&monitored)), &all()).await.unwrap();
    assert_eq!(repaired.updated, 1);
    assert_eq!(fake.alarm(REGION, "FL-backup-overdue").unwrap().treat_missing_data.as_deref(), Some("breaching"));

    // "failedAlarm": false deletes the failed alarm; removing flakeMonitor deletes the other.
    let applied = reconciler.reconcile(&desired(&[backup(Some(json!({"failedAlarm": false})))]), &all()).await.unwrap();
    assert_eq!(applied.deleted, 1);
    assert_eq!(fake.alarm_names(REGION), ["FL-backup-overdue", "FL-backup-slow"]);
    let applied = reconciler.reconcile(&desired(&[backup(None)]), &all()).await.unwrap();
    assert_eq!(applied.deleted, 1);
    assert_eq!(fake.alarm_names(REGION), ["FL-backup-slow"]);
}

#[tokio::test]
async fn a_disabled_monitored_job_declares_no_alarms_and_a_name_clash_is_skipped_with_a_reason() {
    let mut disabled = (*backup(Some(json!({})))).clone();
    disabled.enabled = false;
    assert!(desired(&[Arc::new(disabled)]).is_empty());

    // Another flake's alarm already called FL-backup-overdue: the second declaration is skipped, said so.
    let other = flake(json!({
        "flakeName": "backup-overdue-check", "flakeCronstring": "* * * * *", "flakeCommand": "echo 1", "flakeMetricNamespace": "N",
    }));
    let clash = flake(json!({
        "flakeName": "backup", "flakeCronstring": "* * * * *", "flakeCommand": "echo 1", "flakeMetricNamespace": "N",
        "flakeAlarms": [{"alarmName": "x", "alarmThreshold": 1, "alarmOperator": ">"}],
    }));
    let mut renamed = (*clash).clone();
    renamed.name = "first".to_string();
    renamed.alarms[0].name = "FL-backup-overdue".to_string();
    let (desired, skipped) = desired_alarms(&[Arc::new(renamed), backup(Some(json!({}))), other], Some(REGION));
    assert_eq!(desired.iter().filter(|alarm| alarm.config.name == "FL-backup-overdue").count(), 1);
    assert_eq!(skipped.len(), 1, "{skipped:?}");
    assert!(skipped[0].reason.contains("first already declares"), "{skipped:?}");
}
