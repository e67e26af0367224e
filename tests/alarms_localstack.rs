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
        ..AlarmConfig::default()
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
    // A fresh LocalStack, as an operator trying the examples would have, and an instance metadata
    // service for the host-alarms example.
    let localstack = common::LocalStack::start();
    let imds = common::FakeImds::start();
    let workspace = Workspace::new();
    let snowflake = || {
        let mut command = workspace.snowflake();
        with_aws(imds.serve(&mut command), &localstack.endpoint())
            .env("SNOWFLAKE_FLAKES", common::repo_path("flakes"))
            .env("SNOWFLAKE_WORKDIR", common::repo_path(""));
        command
    };
    let (code, plan, stderr) = run(snowflake().arg("plan"));
    assert_eq!(code, 0, "{stderr}");
    for alarm in [
        "FL-example-host-alarms-status-check",
        "FL-example-host-alarms-cpu-high-outside-maintenance",
        "FL-example-perminute-high-load",
        "FL-example-hourly-disk-nearly-full",
        "FL-example-liveness-process-down-",
        "FL-example-per-host-low-memory-",
    ] {
        assert!(plan.lines().any(|line| line.starts_with(&format!("+ create {alarm}"))), "{alarm} missing from:\n{plan}");
    }
    // Every alarm the examples declare is created (and tagged where it has tags), nothing else.
    let created = plan.lines().filter(|line| line.starts_with("+ create FL-example-")).count();
    let retagged = plan.lines().filter(|line| line.starts_with("~ tags FL-example-")).count();
    assert!(plan.contains(&format!("Plan: {created} to create, 0 to update, {retagged} to retag, 0 to delete, 0 unchanged.")), "{plan}");

    let (code, stdout, stderr) = run(snowflake().args(["once", "example"]));
    // No NGINX exporter listens here, so the scrape example's run fails (and `once` exits 1);
    // every other run succeeds, and the alarms are reconciled all the same.
    let failed: Vec<&str> = stdout.lines().filter(|line| line.contains(": failed")).collect();
    assert!(failed.iter().all(|line| line.starts_with("example-nginx-scrape: failed")), "{stdout}{stderr}");
    assert_eq!(code, if failed.is_empty() { 0 } else { 1 }, "{stdout}{stderr}");
    assert!(stdout.contains(&format!("alarms: {created} created, 0 updated, {retagged} retagged, 0 deleted, 0 failed")), "{stdout}");

    let (code, plan, _) = run(snowflake().arg("plan"));
    assert_eq!(code, 0);
    assert_eq!(
        plan.trim(),
        format!("Plan: 0 to create, 0 to update, 0 to retag, 0 to delete, {created} unchanged."),
        "nothing left to change"
    );
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

// ---- SPEC 10: alarms on any metric, metric math, anomaly bands, composites ----

/// Every alarm whose name starts with `prefix`, of both types, read back with the AWS CLI.
fn read_back(endpoint: &str, prefix: &str) -> (Vec<serde_json::Value>, Vec<serde_json::Value>) {
    let found = common::aws(
        endpoint,
        &["cloudwatch", "describe-alarms", "--alarm-name-prefix", prefix, "--alarm-types", "MetricAlarm", "CompositeAlarm"],
    );
    let list = |key: &str| found[key].as_array().cloned().unwrap_or_default();
    (list("MetricAlarms"), list("CompositeAlarms"))
}

/// Alarm writes LocalStack logged: the independent count of what a reconcile changed.
fn alarm_writes(localstack: &common::LocalStack) -> usize {
    ["PutMetricAlarm", "PutCompositeAlarm", "DeleteAlarms", "TagResource", "UntagResource"].iter().map(|op| localstack.requests(op)).sum()
}

fn every_kind(name: &str, threshold: f64) -> Arc<Flake> {
    let value = json!({"flakeName": name, "flakeType": "alarms", "flakeAlarms": [
        {"alarmName": "page", "alarmRule": "ALARM(mute-cpu) OR ALARM(status)", "alarmDescription": "composite of a composite"},
        {"alarmName": "mute-cpu", "alarmRule": "ALARM(cpu) AND NOT ALARM(error-ratio)"},
        {"alarmName": "status", "alarmNamespace": "AWS/EC2", "alarmMetricName": "StatusCheckFailed_System",
         "alarmDimensions": {"InstanceId": "i-1"}, "alarmStatistic": "Maximum", "alarmThreshold": 0, "alarmOperator": ">", "alarmPeriods": 2,
         "alarmEndpoints": {"alarm": "arn:aws:automate:us-east-1:ec2:recover"}},
        {"alarmName": "cpu", "alarmNamespace": "AWS/EC2", "alarmMetricName": "CPUUtilization", "alarmDimensions": {"InstanceId": "i-1"},
         "alarmAnomalyBand": 2, "alarmOperator": "outside", "alarmPeriodLength": 300, "alarmStatistic": "p90"},
        {"alarmName": "error-ratio", "alarmExpression": "100 * errors / requests", "alarmThreshold": threshold, "alarmOperator": ">",
         "alarmMetrics": {"errors": {"namespace": "App", "metricName": "Errors", "statistic": "Sum"},
                          "requests": {"namespace": "App", "metricName": "Requests", "statistic": "SampleCount", "dimensions": {"Tier": "web"}}}}
    ]});
    let facts = HostFacts::local();
    let context = Context { default_zone: chrono_tz::Tz::UTC, facts: &facts };
    let (flake, problems) = parse_flake(Path::new(&format!("flakes/{name}.json")), &value.to_string(), &context);
    Arc::new(flake.unwrap_or_else(|| panic!("{problems:?}")))
}

#[tokio::test(flavor = "multi_thread")]
async fn every_alarm_kind_lands_as_declared_then_nothing_is_written_drift_is_repaired_and_removal_deletes_it_all() {
    let localstack = common::LocalStack::start();
    let endpoint = localstack.endpoint();
    let cloudwatch = Arc::new(sdk(&endpoint).await);
    let state = tempfile::tempdir().unwrap();
    let reconciler =
        Reconciler::new(cloudwatch.clone(), ManagedFile::new(state.path()), ReconcileConfig::default(), Arc::new(Metrics::new()));
    let name = unique("kinds");
    let declared = |threshold: f64| desired_alarms(&[every_kind(&name, threshold)], Some(REGION)).0;
    let full = |alarm: &str| format!("FL-{name}-{alarm}");

    let applied = reconciler.reconcile(&declared(5.0), &all()).await.unwrap();
    assert_eq!((applied.created, applied.failures.clone()), (5, Vec::<String>::new()));

    // What landed, read back with the AWS CLI.
    let (metric_alarms, composites) = read_back(&endpoint, &format!("FL-{name}-"));
    let by_name = |list: &[serde_json::Value], alarm: &str| {
        list.iter().find(|a| a["AlarmName"] == full(alarm)).cloned().unwrap_or_else(|| panic!("{alarm} did not land: {list:#?}"))
    };
    assert_eq!((metric_alarms.len(), composites.len()), (3, 2));
    let status = by_name(&metric_alarms, "status");
    assert_eq!(status["Namespace"], "AWS/EC2");
    assert_eq!(status["MetricName"], "StatusCheckFailed_System");
    assert_eq!(status["Dimensions"], json!([{"Name": "InstanceId", "Value": "i-1"}]));
    assert_eq!(status["AlarmActions"], json!(["arn:aws:automate:us-east-1:ec2:recover"]));
    assert_eq!((status["Statistic"].as_str(), status["EvaluationPeriods"].as_i64()), (Some("Maximum"), Some(2)));
    let band = by_name(&metric_alarms, "cpu");
    assert_eq!(band["ThresholdMetricId"], "ad1");
    assert_eq!(band["ComparisonOperator"], "LessThanLowerOrGreaterThanUpperThreshold");
    let band_metrics = band["Metrics"].as_array().unwrap();
    assert!(band_metrics.iter().any(|m| m["Id"] == "ad1" && m["Expression"] == "ANOMALY_DETECTION_BAND(m1, 2)"), "{band_metrics:#?}");
    assert!(
        band_metrics.iter().any(|m| m["Id"] == "m1" && m["MetricStat"]["Stat"] == "p90" && m["MetricStat"]["Period"] == 300),
        "{band_metrics:#?}"
    );
    let ratio = by_name(&metric_alarms, "error-ratio");
    assert_eq!(ratio["Threshold"], 5.0);
    let ratio_metrics = ratio["Metrics"].as_array().unwrap();
    assert!(
        ratio_metrics.iter().any(|m| m["Id"] == "expression" && m["Expression"] == "100 * errors / requests" && m["ReturnData"] == true)
    );
    assert!(ratio_metrics.iter().any(|m| m["Id"] == "requests"
        && m["ReturnData"] == false
        && m["MetricStat"]["Stat"] == "SampleCount"
        && m["MetricStat"]["Metric"]["Dimensions"] == json!([{"Name": "Tier", "Value": "web"}])));
    assert!(ratio.get("Namespace").is_none_or(serde_json::Value::is_null), "math alarms have no single metric: {ratio:#?}");
    let page = by_name(&composites, "page");
    assert_eq!(page["AlarmRule"], format!("ALARM(\"{}\") OR ALARM(\"{}\")", full("mute-cpu"), full("status")));
    assert_eq!(page["AlarmDescription"], "composite of a composite");
    assert_eq!(
        by_name(&composites, "mute-cpu")["AlarmRule"],
        format!("ALARM(\"{}\") AND NOT ALARM(\"{}\")", full("cpu"), full("error-ratio"))
    );

    // A second pass writes nothing: LocalStack's own log counts no write.
    let before = alarm_writes(&localstack);
    let applied = reconciler.reconcile(&declared(5.0), &all()).await.unwrap();
    assert_eq!((applied.writes(), alarm_writes(&localstack) - before), (0, 0), "{applied:?}");

    // Drift made outside is repaired: a composite's rule, a math alarm's metrics.
    let mut edited_rule = declared(5.0).into_iter().find(|a| a.config.name == full("mute-cpu")).unwrap().config;
    edited_rule.rule = Some(format!("ALARM(\"{}\")", full("cpu")));
    cloudwatch.put_metric_alarm(REGION, &edited_rule).await.unwrap();
    let mut edited_math = declared(5.0).into_iter().find(|a| a.config.name == full("error-ratio")).unwrap().config;
    for query in &mut edited_math.metrics {
        if let Some(stat) = query.metric.as_mut().filter(|_| query.id == "requests") {
            stat.stat = "Sum".into();
        }
    }
    cloudwatch.put_metric_alarm(REGION, &edited_math).await.unwrap();
    let plan = reconciler.plan(&declared(5.0), &all()).await.unwrap();
    let mut updated: Vec<&str> = plan.updates.iter().map(|u| u.alarm.config.name.as_str()).collect();
    updated.sort();
    assert_eq!(updated, [full("error-ratio"), full("mute-cpu")], "{}", plan.render());
    let applied = reconciler.reconcile(&declared(5.0), &all()).await.unwrap();
    assert_eq!((applied.updated, applied.failures.len()), (2, 0), "{applied:?}");
    assert_eq!(reconciler.plan(&declared(5.0), &all()).await.unwrap().updates.len(), 0);
    // A declared change (the math threshold) is one update.
    let applied = reconciler.reconcile(&declared(7.5), &all()).await.unwrap();
    assert_eq!(applied.updated, 1);
    assert_eq!(by_name(&read_back(&endpoint, &full("error-ratio")).0, "error-ratio")["Threshold"], 7.5);

    // Removal: everything is deleted, composites first and one a call.
    let before = localstack.requests("DeleteAlarms");
    let applied =
        reconciler.reconcile(&desired_alarms(&[flake(&unique("other"), untagged(&["a"]))], Some(REGION)).0, &all()).await.unwrap();
    assert_eq!((applied.deleted, applied.failures.clone()), (5, Vec::<String>::new()));
    assert_eq!(localstack.requests("DeleteAlarms") - before, 3, "page, then mute-cpu, then the three metric alarms together");
    let (left, left_composites) = read_back(&endpoint, &format!("FL-{name}-"));
    assert!(left.is_empty() && left_composites.is_empty(), "{left:#?} {left_composites:#?}");
}

/// The done-when: the shipped host-alarms example, run with `once` against LocalStack
/// with a stand-in instance metadata service, creates exactly the declared alarms; a second
/// `once` writes nothing; removing the composite's child is refused by `check`.
#[test]
fn the_host_alarms_example_creates_exactly_its_alarms_and_a_second_once_writes_nothing() {
    let localstack = common::LocalStack::start();
    let imds = common::FakeImds::start();
    let workspace = Workspace::new();
    let example = std::fs::read_to_string(common::repo_path("flakes/example-host-alarms.flake.json")).unwrap();
    std::fs::write(workspace.flakes().join("example-host-alarms.flake.json"), &example).unwrap();
    let snowflake = || {
        let mut command = workspace.snowflake();
        with_aws(imds.serve(&mut command), &localstack.endpoint());
        command
    };

    let (code, stdout, stderr) = run(snowflake().args(["once", "example-host-alarms"]));
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("example-host-alarms: alarms only (4 declared), nothing to run"), "{stdout}");
    assert!(stdout.contains("alarms: 4 created, 0 updated, 0 retagged, 0 deleted, 0 failed"), "{stdout}");

    let (mut metric_alarms, composites) = read_back(&localstack.endpoint(), "FL-");
    metric_alarms.sort_by_key(|alarm| alarm["AlarmName"].as_str().unwrap().to_string());
    let names = |list: &[serde_json::Value]| list.iter().map(|a| a["AlarmName"].as_str().unwrap().to_string()).collect::<Vec<_>>();
    assert_eq!(
        names(&metric_alarms),
        ["FL-example-host-alarms-cpu-high", "FL-example-host-alarms-maintenance", "FL-example-host-alarms-status-check"]
    );
    assert_eq!(names(&composites), ["FL-example-host-alarms-cpu-high-outside-maintenance"]);
    let status = &metric_alarms[2];
    assert_eq!(status["Dimensions"], json!([{"Name": "InstanceId", "Value": imds.instance_id}]));
    assert_eq!(status["AlarmActions"], json!(["arn:aws:automate:us-east-1:ec2:recover"]));
    assert_eq!(
        composites[0]["AlarmRule"],
        "ALARM(\"FL-example-host-alarms-cpu-high\") AND NOT ALARM(\"FL-example-host-alarms-maintenance\")"
    );

    let before = alarm_writes(&localstack);
    let (code, stdout, stderr) = run(snowflake().args(["once", "example-host-alarms"]));
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("alarms: 0 created, 0 updated, 0 retagged, 0 deleted, 0 failed"), "{stdout}");
    assert_eq!(alarm_writes(&localstack) - before, 0, "the second once made no write call");

    // Deleting the composite's child from the flake is refused while the composite names it.
    let mut flake: serde_json::Value = serde_json::from_str(&example).unwrap();
    flake["flakeAlarms"].as_array_mut().unwrap().retain(|alarm| alarm["alarmName"] != "maintenance");
    let path = workspace.flakes().join("example-host-alarms.flake.json");
    std::fs::write(&path, flake.to_string()).unwrap();
    let (code, stdout, _) = run(imds.serve(&mut common::snowflake()).arg("check").arg(&path));
    assert_eq!(code, 1, "{stdout}");
    assert!(
        stdout.contains(
            "flakeAlarms[2].alarmRule: alarm \"cpu-high-outside-maintenance\": names \"maintenance\", which this flake does not declare"
        ),
        "{stdout}"
    );
    // ...and a reconcile keeps both alarms meanwhile: the flake's file is invalid, so nothing of it is deleted.
    let (_, plan, _) = run(snowflake().arg("plan"));
    assert!(plan.contains("= keep FL-example-host-alarms-maintenance") && plan.contains("0 to delete"), "{plan}");
}
