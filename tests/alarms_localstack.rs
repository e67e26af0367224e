//! Alarms as code against LocalStack: plan, apply through `once`, zero writes when nothing
//! changed, drift corrected, removals deleted, and other people's alarms left alone.

mod common;

use std::path::Path;
use std::sync::Arc;

use common::{Workspace, endpoint, run, sdk, unique, with_aws};
use serde_json::json;
use specialsnowflake::alarms::{ManagedFile, ReconcileConfig, Reconciler, Scope, desired_alarms};
use specialsnowflake::cloudwatch::sdk::SdkCloudWatch;
use specialsnowflake::cloudwatch::{AlarmConfig, AlarmStatistic, CloudWatch, DescribedAlarm};
use specialsnowflake::flake::{Context, Flake, parse_flake};
use specialsnowflake::metrics::Metrics;
use specialsnowflake::placeholders::HostFacts;

const REGION: &str = "us-east-1";

fn flake(name: &str, alarms: serde_json::Value) -> Arc<Flake> {
    let value = json!({"flakeName": name, "flakeCronstring": "* * * * *", "flakeCommand": "echo 1", "flakeMetricNamespace": "AlarmTests",
                       "flakeDimensions": {"Host": "web-1"}, "flakeAlarms": alarms});
    let facts = HostFacts::local();
    let context = Context { default_zone: chrono_tz::Tz::UTC, facts: &facts };
    let (flake, problems) = parse_flake(Path::new(&format!("flakes/{name}.json")), &value.to_string(), &context);
    Arc::new(flake.unwrap_or_else(|| panic!("{problems:?}")))
}

fn alarms(thresholds: &[(&str, f64)]) -> serde_json::Value {
    thresholds
        .iter()
        .map(|(name, threshold)| json!({"alarmName": name, "alarmThreshold": threshold, "alarmOperator": ">", "alarmPeriods": 3, "alarmDatapoints": 2,
                                         "alarmStatistic": "p90", "alarmTreatMissingData": "notBreaching",
                                         "alarmEndpoints": {"alarm": ["arn:aws:sns:us-east-1:000000000000:b", "arn:aws:sns:us-east-1:000000000000:a"]},
                                         "alarmTags": {"team": "platform"}}))
        .collect()
}

async fn reconciler(state: &Path) -> Reconciler<SdkCloudWatch> {
    Reconciler::new(Arc::new(sdk(&endpoint()).await), ManagedFile::new(state), ReconcileConfig::default(), Arc::new(Metrics::new()))
}

fn all() -> Scope {
    Scope::All { deletes_allowed: true, broken_files: Vec::new() }
}

async fn describe(name: &str) -> Option<DescribedAlarm> {
    sdk(&endpoint()).await.describe_alarms_named(REGION, &[name.to_string()]).await.unwrap().pop()
}

#[tokio::test]
async fn reconcile_creates_then_writes_nothing_then_corrects_drift_and_deletes_removals() {
    let state = tempfile::tempdir().unwrap();
    let reconciler = reconciler(state.path()).await;
    let name = unique("alarmed");
    let (first, second) = (format!("FL-{name}-high"), format!("FL-{name}-higher"));
    let declared = |high: f64| {
        let (desired, skipped) = desired_alarms(&[flake(&name, alarms(&[("high", high), ("higher", 100.0)]))], Some(REGION));
        assert!(skipped.is_empty());
        desired
    };

    let applied = reconciler.reconcile(&declared(50.0), &all()).await.unwrap();
    assert_eq!((applied.created, applied.tagged), (2, 2), "{applied:?}");
    let created = describe(&first).await.expect("created");
    assert_eq!(created.extended_statistic.as_deref(), Some("p90"));
    assert_eq!(created.datapoints_to_alarm, Some(2));

    let applied = reconciler.reconcile(&declared(50.0), &all()).await.unwrap();
    assert_eq!(applied.writes(), 0, "the second reconcile writes nothing: {applied:?}");

    let applied = reconciler.reconcile(&declared(60.0), &all()).await.unwrap();
    assert_eq!((applied.updated, applied.created, applied.tagged), (1, 0, 0), "only the changed alarm is written");
    assert_eq!(describe(&first).await.unwrap().threshold, Some(60.0));
    assert_eq!(describe(&second).await.unwrap().threshold, Some(100.0));

    // Someone edits the alarm in the console...
    let cloudwatch = sdk(&endpoint()).await;
    let mut edited = declared(60.0).into_iter().find(|alarm| alarm.config.name == first).unwrap().config;
    edited.threshold = 1.0;
    edited.treat_missing_data = "breaching".to_string();
    cloudwatch.put_metric_alarm(REGION, &edited).await.unwrap();
    // ...and deletes the other one.
    cloudwatch.delete_alarms(REGION, std::slice::from_ref(&second)).await.unwrap();
    let applied = reconciler.reconcile(&declared(60.0), &all()).await.unwrap();
    assert_eq!((applied.updated, applied.created), (1, 1), "{applied:?}");
    let restored = describe(&first).await.unwrap();
    assert_eq!((restored.threshold, restored.treat_missing_data.as_deref()), (Some(60.0), Some("notBreaching")));
    assert!(describe(&second).await.is_some(), "the deleted alarm is recreated");

    // The flake drops one alarm: it is deleted.
    let (fewer, _) = desired_alarms(&[flake(&name, alarms(&[("high", 60.0)]))], Some(REGION));
    let applied = reconciler.reconcile(&fewer, &all()).await.unwrap();
    assert_eq!(applied.deleted, 1);
    assert!(describe(&second).await.is_none());
    assert!(describe(&first).await.is_some());
}

#[tokio::test]
async fn an_fl_alarm_made_outside_is_never_deleted() {
    let state = tempfile::tempdir().unwrap();
    let reconciler = reconciler(state.path()).await;
    let outsider = unique("FL-made-by-hand");
    let config = AlarmConfig {
        name: outsider.clone(),
        description: String::new(),
        namespace: "Elsewhere".into(),
        metric_name: "m".into(),
        dimensions: Default::default(),
        statistic: AlarmStatistic::Standard("Average".into()),
        period: 60,
        evaluation_periods: 1,
        datapoints_to_alarm: 1,
        threshold: 1.0,
        comparison: "GreaterThanThreshold".into(),
        treat_missing_data: "missing".into(),
        ok_actions: Default::default(),
        alarm_actions: Default::default(),
        insufficient_data_actions: Default::default(),
        actions_enabled: true,
        unit: None,
    };
    sdk(&endpoint()).await.put_metric_alarm(REGION, &config).await.unwrap();
    let (desired, _) = desired_alarms(&[flake(&unique("mine"), alarms(&[("a", 1.0)]))], Some(REGION));
    let plan = reconciler.plan(&desired, &all()).await.unwrap();
    assert!(!plan.render().contains(&outsider), "another's alarm is not even read:\n{}", plan.render());
    let applied = reconciler.reconcile(&desired, &all()).await.unwrap();
    assert_eq!(applied.deleted, 0);
    assert!(describe(&outsider).await.is_some());
}

#[test]
fn plan_lists_creates_once_applies_them_and_plan_then_has_nothing_to_do() {
    let endpoint = endpoint();
    let workspace = Workspace::new();
    let name = unique("planned");
    workspace.add(
        "planned",
        json!({"flakeName": name, "flakeCronstring": "* * * * *", "flakeCommand": "echo 3", "flakeMetricNamespace": "PlanTests",
               "flakeAlarms": [{"alarmName": "high", "alarmThreshold": 5, "alarmOperator": ">"},
                               {"alarmName": "low-${hostname}", "alarmThreshold": 1, "alarmOperator": "<", "alarmTags": {"team": "a"}}]}),
    );
    let (code, plan, stderr) = run(with_aws(&mut workspace.snowflake(), &endpoint).arg("plan"));
    assert_eq!(code, 0, "{stderr}");
    assert!(plan.contains(&format!("+ create FL-{name}-high (us-east-1)")), "{plan}");
    assert!(plan.lines().any(|line| line.starts_with(&format!("+ create FL-{name}-low-"))), "{plan}");
    assert!(plan.contains("Plan: 2 to create, 0 to update, 1 to retag, 0 to delete"), "{plan}");

    let (code, stdout, stderr) = run(with_aws(&mut workspace.snowflake(), &endpoint).args(["once", &name]));
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("alarms: 2 created, 0 updated, 1 retagged, 0 deleted, 0 failed"), "{stdout}");

    let (code, plan, _) = run(with_aws(&mut workspace.snowflake(), &endpoint).arg("plan"));
    assert_eq!(code, 0);
    assert!(plan.contains("Plan: 0 to create, 0 to update, 0 to retag, 0 to delete, 2 unchanged."), "{plan}");
    assert!(!plan.lines().any(|line| line.contains(&name) && !line.starts_with('?')), "nothing to change for our alarms:\n{plan}");

    // A changed threshold shows as an update with the field, old -> new.
    let path = workspace.flakes().join("planned.json");
    std::fs::write(&path, std::fs::read_to_string(&path).unwrap().replace("\"alarmThreshold\": 5", "\"alarmThreshold\": 7")).unwrap();
    let (_, plan, _) = run(with_aws(&mut workspace.snowflake(), &endpoint).arg("plan"));
    assert!(plan.contains(&format!("~ update FL-{name}-high (us-east-1)")) && plan.contains("    threshold: 5 -> 7"), "{plan}");
}

#[test]
fn the_shipped_examples_plan_apply_and_then_have_nothing_to_change() {
    // A fresh LocalStack, as an operator trying the examples would have.
    let localstack = common::LocalStack::start();
    let workspace = Workspace::new();
    let snowflake = || {
        let mut command = workspace.snowflake();
        with_aws(&mut command, &localstack.endpoint())
            .env("SNOWFLAKE_FLAKES", common::repo_path("flakes"))
            .env("SNOWFLAKE_WORKDIR", common::repo_path(""));
        command
    };
    let (code, plan, stderr) = run(snowflake().arg("plan"));
    assert_eq!(code, 0, "{stderr}");
    for alarm in [
        "FL-example-perminute-high-load",
        "FL-example-hourly-disk-nearly-full",
        "FL-example-liveness-process-down-",
        "FL-example-per-host-low-memory-",
    ] {
        assert!(plan.lines().any(|line| line.starts_with(&format!("+ create {alarm}"))), "{alarm} missing from:\n{plan}");
    }
    assert!(plan.contains("Plan: 4 to create, 0 to update, 1 to retag, 0 to delete, 0 unchanged."), "{plan}");

    let (code, stdout, stderr) = run(snowflake().args(["once", "example"]));
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("alarms: 4 created, 0 updated, 1 retagged, 0 deleted, 0 failed"), "{stdout}");

    let (code, plan, _) = run(snowflake().arg("plan"));
    assert_eq!(code, 0);
    assert_eq!(plan.trim(), "Plan: 0 to create, 0 to update, 0 to retag, 0 to delete, 4 unchanged.", "nothing left to change");
}

/// SPEC 12: one host's reconcile reads only its own alarms. A LocalStack of this test's own holds
/// 300 other hosts' `FL-` alarms; LocalStack's request log is the independent count of calls.
#[tokio::test(flavor = "multi_thread")]
async fn a_hosts_reconcile_costs_the_same_among_300_other_hosts_alarms_and_still_repairs_and_deletes() {
    let localstack = common::LocalStack::start();
    let cloudwatch = Arc::new(sdk(&localstack.endpoint()).await);
    let state = tempfile::tempdir().unwrap();
    let reconciler =
        Reconciler::new(cloudwatch.clone(), ManagedFile::new(state.path()), ReconcileConfig::default(), Arc::new(Metrics::new()));
    let host = flake("this-host", untagged(&["a", "b", "c", "d"]));
    let (declared, _) = desired_alarms(std::slice::from_ref(&host), Some(REGION));
    let reconcile_and_count = |desired: Vec<specialsnowflake::alarms::DesiredAlarm>| {
        let (reconciler, localstack) = (&reconciler, &localstack);
        async move {
            let before = localstack.requests("DescribeAlarms");
            let applied = reconciler.reconcile(&desired, &all()).await.unwrap();
            (applied, localstack.requests("DescribeAlarms") - before)
        }
    };

    let (applied, alone) = reconcile_and_count(declared.clone()).await;
    assert_eq!(applied.created, 4, "{applied:?}");

    // 300 other hosts' alarms appear in the region.
    let template = declared[0].config.clone();
    for other in 0..300 {
        let config = specialsnowflake::cloudwatch::AlarmConfig { name: format!("FL-other-host-{other:03}-disk"), ..template.clone() };
        cloudwatch.put_metric_alarm(REGION, &config).await.unwrap();
    }
    let (applied, among_others) = reconcile_and_count(declared.clone()).await;
    assert_eq!(applied.writes(), 0, "{applied:?}");
    assert_eq!(alone, 1, "one DescribeAlarms call for 4 alarms alone");
    assert_eq!(among_others, 1, "one DescribeAlarms call for 4 alarms, however many other hosts have");

    // Drift repair and recreation still work...
    let mut edited = declared[0].config.clone();
    edited.threshold = 99.0;
    cloudwatch.put_metric_alarm(REGION, &edited).await.unwrap();
    cloudwatch.delete_alarms(REGION, std::slice::from_ref(&declared[1].config.name)).await.unwrap();
    let (applied, calls) = reconcile_and_count(declared.clone()).await;
    assert_eq!((applied.updated, applied.created, calls), (1, 1, 1), "{applied:?}");
    let restored = cloudwatch.describe_alarms_named(REGION, std::slice::from_ref(&declared[0].config.name)).await.unwrap();
    assert_eq!(restored[0].threshold, Some(0.0));

    // ...and so does deletion, of this host's alarms only.
    let fewer = flake("this-host", untagged(&["a", "b"]));
    let (fewer, _) = desired_alarms(&[fewer], Some(REGION));
    let (applied, calls) = reconcile_and_count(fewer).await;
    assert_eq!((applied.deleted, calls), (2, 1), "{applied:?}");
    let names: Vec<String> = (0..300).map(|other| format!("FL-other-host-{other:03}-disk")).collect();
    let mut others = 0;
    for chunk in names.chunks(100) {
        others += cloudwatch.describe_alarms_named(REGION, chunk).await.unwrap().len();
    }
    assert_eq!(others, 300, "no other host's alarm was touched");
    let plan = reconciler.plan(&desired_alarms(&[host], Some(REGION)).0, &all()).await.unwrap();
    assert!(!plan.render().contains("FL-other-host"), "plan does not list other hosts' alarms:\n{}", plan.render());
}

/// Alarms with thresholds 0, 1, 2, ... and no tags (tagging a new alarm looks it up once more).
fn untagged(names: &[&str]) -> serde_json::Value {
    names.iter().enumerate().map(|(i, name)| json!({"alarmName": name, "alarmThreshold": i, "alarmOperator": ">"})).collect()
}
