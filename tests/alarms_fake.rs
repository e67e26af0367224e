//! Alarm reconciliation against the in-memory CloudWatch: paging, batching, normalisation,
//! retries, tags, ownership and the rules that keep it from deleting what it must not.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use specialsnowflake::alarms::{DesiredAlarm, ManagedFile, ReconcileConfig, Reconciler, Scope, desired_alarms};
use specialsnowflake::cloudwatch::fake::{FakeCloudWatch, Operation};
use specialsnowflake::cloudwatch::{CallError, DescribedAlarm, ErrorKind};
use specialsnowflake::flake::{Context, Flake, parse_flake};
use specialsnowflake::metrics::Metrics;
use specialsnowflake::placeholders::HostFacts;

const REGION: &str = "us-east-1";

fn flake(path: &str, value: serde_json::Value) -> Arc<Flake> {
    let facts = HostFacts::local();
    let context = Context { default_zone: chrono_tz::Tz::UTC, facts: &facts };
    let (flake, problems) = parse_flake(Path::new(path), &value.to_string(), &context);
    Arc::new(flake.unwrap_or_else(|| panic!("{problems:?}")))
}

/// A flake with `count` alarms named a0, a1, ... with threshold `threshold`.
fn flake_with_alarms(name: &str, count: usize, threshold: f64) -> Arc<Flake> {
    let alarms: Vec<serde_json::Value> =
        (0..count).map(|i| json!({"alarmName": format!("a{i}"), "alarmThreshold": threshold, "alarmOperator": ">"})).collect();
    flake(
        &format!("flakes/{name}.json"),
        json!({"flakeName": name, "flakeCronstring": "* * * * *", "flakeCommand": "echo 1", "flakeMetricNamespace": "N", "flakeAlarms": alarms}),
    )
}

struct Harness {
    fake: FakeCloudWatch,
    reconciler: Reconciler<FakeCloudWatch>,
    _state: tempfile::TempDir,
}

fn harness() -> Harness {
    let fake = FakeCloudWatch::new();
    let state = tempfile::tempdir().unwrap();
    let config = ReconcileConfig {
        describe_rate: 10_000.0,
        write_rate: 10_000.0,
        backoff_min: Duration::from_millis(5),
        ..ReconcileConfig::default()
    };
    let reconciler = Reconciler::new(Arc::new(fake.clone()), ManagedFile::new(state.path()), config, Arc::new(Metrics::new()));
    Harness { fake, reconciler, _state: state }
}

fn all() -> Scope {
    Scope::All { deletes_allowed: true, broken_files: Vec::new() }
}

fn desired(flakes: &[Arc<Flake>]) -> Vec<DesiredAlarm> {
    let (desired, skipped) = desired_alarms(flakes, Some(REGION));
    assert!(skipped.is_empty(), "{skipped:?}");
    desired
}

fn writes(fake: &FakeCloudWatch) -> usize {
    [Operation::PutMetricAlarm, Operation::PutCompositeAlarm, Operation::DeleteAlarms, Operation::TagResource, Operation::UntagResource]
        .iter()
        .map(|op| fake.calls(*op))
        .sum()
}

#[tokio::test]
async fn creates_then_a_second_reconcile_writes_nothing() {
    let h = harness();
    let wanted = desired(&[flake_with_alarms("disk", 3, 90.0)]);
    let applied = h.reconciler.reconcile(&wanted, &all()).await.unwrap();
    assert_eq!(applied.created, 3);
    assert_eq!(h.fake.alarm_names(REGION), ["FL-disk-a0", "FL-disk-a1", "FL-disk-a2"]);
    let before = writes(&h.fake);
    let applied = h.reconciler.reconcile(&wanted, &all()).await.unwrap();
    assert_eq!(applied.writes(), 0);
    assert_eq!(writes(&h.fake), before, "an unchanged alarm never causes a write");
}

#[tokio::test]
async fn reads_cost_in_proportion_to_this_hosts_alarms_not_the_fleets() {
    // The same host, alone in its region and among 300 other hosts with 4 alarms each.
    let mut describes = Vec::new();
    for other_hosts in [0, 300] {
        let h = harness();
        for host in 0..other_hosts {
            for alarm in 0..4 {
                h.fake.insert_alarm(REGION, DescribedAlarm { name: format!("FL-host{host:03}-a{alarm}"), ..DescribedAlarm::default() });
            }
        }
        let wanted = desired(&[flake_with_alarms("disk", 4, 1.0)]);
        let applied = h.reconciler.reconcile(&wanted, &all()).await.unwrap();
        assert_eq!(applied.created, 4);
        let plan = h.reconciler.plan(&wanted, &all()).await.unwrap();
        assert!(!plan.render().contains("FL-host"), "other hosts' alarms are not listed:\n{}", plan.render());
        describes.push(h.fake.calls(Operation::DescribeAlarms));
        assert_eq!(h.fake.alarm_names(REGION).len(), other_hosts * 4 + 4, "nothing of the others was touched");
    }
    assert_eq!(describes, [2, 2], "one DescribeAlarms per reconcile and per plan, whatever the region holds");
}

#[tokio::test]
async fn its_own_alarms_are_read_one_hundred_names_a_call() {
    let h = harness();
    let wanted = desired(&[flake_with_alarms("many", 250, 1.0)]);
    h.reconciler.reconcile(&wanted, &all()).await.unwrap();
    assert_eq!(h.fake.calls(Operation::DescribeAlarms), 3, "250 names: 3 calls of at most 100");
    let plan = h.reconciler.plan(&wanted, &all()).await.unwrap();
    assert_eq!(plan.unchanged, 250);
    // Removed from the flake, still managed: they are read by name too, and deleted.
    let applied = h.reconciler.reconcile(&desired(&[flake_with_alarms("many", 50, 1.0)]), &all()).await.unwrap();
    assert_eq!(applied.deleted, 200);
    assert_eq!(h.fake.alarm_names(REGION).len(), 50);
}

#[tokio::test(start_paused = true)]
async fn throttling_is_retried_until_it_goes_through() {
    // A fleet-wide restart: far more throttled answers than the attempts allowed for outages.
    let h = harness();
    let throttled = CallError::new(ErrorKind::Throttling, Some("Throttling"), "Rate exceeded");
    h.fake.fail_next(Operation::DescribeAlarms, 20, throttled.clone());
    h.fake.fail_next(Operation::PutMetricAlarm, 20, throttled);
    let applied = h.reconciler.reconcile(&desired(&[flake_with_alarms("a", 1, 1.0)]), &all()).await.unwrap();
    assert_eq!(applied.created, 1);
    assert!(applied.failures.is_empty(), "{:?}", applied.failures);
    assert_eq!((h.fake.calls(Operation::DescribeAlarms), h.fake.calls(Operation::PutMetricAlarm)), (21, 21));
}

#[tokio::test(start_paused = true)]
async fn other_failures_give_up_after_the_attempts_and_are_reported() {
    let h = harness();
    h.fake.set_down(Operation::DescribeAlarms, CallError::new(ErrorKind::Unavailable, None, "connection refused"));
    let error = h.reconciler.reconcile(&desired(&[flake_with_alarms("a", 1, 1.0)]), &all()).await.unwrap_err();
    assert!(error.contains("connection refused"), "{error}");
    assert_eq!(h.fake.calls(Operation::DescribeAlarms), ReconcileConfig::default().attempts);
}

#[tokio::test]
async fn one_hundred_fifty_deletions_take_two_calls() {
    let h = harness();
    h.reconciler.reconcile(&desired(&[flake_with_alarms("many", 150, 1.0)]), &all()).await.unwrap();
    assert_eq!(h.fake.alarm_names(REGION).len(), 150);
    let keep = flake_with_alarms("other", 1, 1.0);
    let applied = h.reconciler.reconcile(&desired(&[keep]), &all()).await.unwrap();
    assert_eq!(applied.deleted, 150);
    assert_eq!(h.fake.calls(Operation::DeleteAlarms), 2);
    assert_eq!(h.fake.alarm_names(REGION), ["FL-other-a0"]);
}

#[tokio::test]
async fn a_changed_threshold_updates_only_that_alarm() {
    let h = harness();
    h.reconciler.reconcile(&desired(&[flake_with_alarms("a", 1, 1.0), flake_with_alarms("b", 1, 1.0)]), &all()).await.unwrap();
    let puts = h.fake.calls(Operation::PutMetricAlarm);
    let plan = h.reconciler.plan(&desired(&[flake_with_alarms("a", 1, 5.0), flake_with_alarms("b", 1, 1.0)]), &all()).await.unwrap();
    assert_eq!(plan.updates.len(), 1);
    assert_eq!(
        plan.updates[0].changes.iter().map(|c| (c.field, c.old.as_str(), c.new.as_str())).collect::<Vec<_>>(),
        [("threshold", "1", "5")]
    );
    let applied =
        h.reconciler.reconcile(&desired(&[flake_with_alarms("a", 1, 5.0), flake_with_alarms("b", 1, 1.0)]), &all()).await.unwrap();
    assert_eq!((applied.updated, applied.created), (1, 0));
    assert_eq!(h.fake.calls(Operation::PutMetricAlarm), puts + 1);
    assert_eq!(h.fake.alarm(REGION, "FL-a-a0").unwrap().threshold, Some(5.0));
}

#[tokio::test]
async fn drift_is_corrected_and_a_deleted_alarm_recreated() {
    let h = harness();
    let wanted = desired(&[flake_with_alarms("a", 2, 1.0)]);
    h.reconciler.reconcile(&wanted, &all()).await.unwrap();
    let mut edited = h.fake.alarm(REGION, "FL-a-a0").unwrap();
    edited.threshold = Some(99.0);
    edited.treat_missing_data = Some("breaching".into());
    h.fake.insert_alarm(REGION, edited);
    h.fake.delete_alarms_now(REGION, &["FL-a-a1"]);
    let applied = h.reconciler.reconcile(&wanted, &all()).await.unwrap();
    assert_eq!((applied.updated, applied.created), (1, 1));
    assert_eq!(h.fake.alarm(REGION, "FL-a-a0").unwrap().threshold, Some(1.0));
    assert!(h.fake.alarm(REGION, "FL-a-a1").is_some());
}

#[tokio::test]
async fn cloudwatch_defaults_left_out_are_not_drift() {
    let h = harness();
    let wanted = desired(&[flake_with_alarms("a", 1, 1.0)]);
    h.reconciler.reconcile(&wanted, &all()).await.unwrap();
    // As CloudWatch would describe it: defaults omitted, dimensions and actions reordered.
    let mut sparse = h.fake.alarm(REGION, "FL-a-a0").unwrap();
    sparse.treat_missing_data = None;
    sparse.datapoints_to_alarm = None;
    sparse.actions_enabled = None;
    sparse.description = None;
    h.fake.insert_alarm(REGION, sparse);
    let applied = h.reconciler.reconcile(&wanted, &all()).await.unwrap();
    assert_eq!(applied.writes(), 0);
}

#[tokio::test]
async fn throttling_is_retried() {
    let h = harness();
    let throttled = CallError::new(ErrorKind::Throttling, Some("Throttling"), "Rate exceeded");
    h.fake.fail_next(Operation::DescribeAlarms, 2, throttled.clone());
    h.fake.fail_next(Operation::PutMetricAlarm, 3, throttled);
    let applied = h.reconciler.reconcile(&desired(&[flake_with_alarms("a", 1, 1.0)]), &all()).await.unwrap();
    assert_eq!(applied.created, 1);
    assert!(applied.failures.is_empty(), "{:?}", applied.failures);
    assert_eq!(h.fake.calls(Operation::PutMetricAlarm), 4);
}

#[tokio::test]
async fn an_invalid_alarm_fails_alone() {
    let h = harness();
    h.fake.fail_next(Operation::PutMetricAlarm, 1, CallError::new(ErrorKind::Invalid, Some("InvalidParameterValue"), "bad"));
    let applied = h.reconciler.reconcile(&desired(&[flake_with_alarms("a", 2, 1.0)]), &all()).await.unwrap();
    assert_eq!(applied.created, 1);
    assert_eq!(applied.failures.len(), 1);
    assert!(applied.failures[0].contains("FL-a-a0: create: InvalidParameterValue: bad"), "{:?}", applied.failures);
}

#[tokio::test]
async fn alarms_it_never_created_are_never_deleted() {
    let h = harness();
    h.fake.insert_alarm(REGION, DescribedAlarm { name: "FL-someone-else".into(), ..DescribedAlarm::default() });
    let plan = h.reconciler.plan(&desired(&[flake_with_alarms("a", 1, 1.0)]), &all()).await.unwrap();
    assert!(!plan.render().contains("FL-someone-else"), "it is not even read:\n{}", plan.render());
    h.reconciler.reconcile(&desired(&[flake_with_alarms("a", 1, 1.0)]), &all()).await.unwrap();
    assert!(h.fake.alarm(REGION, "FL-someone-else").is_some());
    assert_eq!(h.fake.calls(Operation::DeleteAlarms), 0);
}

#[tokio::test]
async fn nothing_is_deleted_when_the_directory_is_missing_or_a_file_is_broken() {
    let h = harness();
    h.reconciler.reconcile(&desired(&[flake_with_alarms("a", 1, 1.0), flake_with_alarms("b", 1, 1.0)]), &all()).await.unwrap();
    let missing_dir = Scope::All { deletes_allowed: false, broken_files: Vec::new() };
    let applied = h.reconciler.reconcile(&[], &missing_dir).await.unwrap();
    assert_eq!(applied.deleted, 0);
    let broken = Scope::All { deletes_allowed: true, broken_files: vec![PathBuf::from("flakes/a.json")] };
    let plan = h.reconciler.plan(&desired(&[flake_with_alarms("other", 1, 1.0)]), &broken).await.unwrap();
    assert_eq!(plan.deletes.iter().map(|d| d.name.as_str()).collect::<Vec<_>>(), ["FL-b-a0"]);
    assert!(plan.kept.iter().any(|(_, name, reason)| name == "FL-a-a0" && reason.contains("does not validate")));
}

#[tokio::test]
async fn tags_are_applied_on_create_and_changed_only_when_declared_tags_change() {
    let h = harness();
    let tagged = |tags: serde_json::Value| {
        flake(
            "flakes/t.json",
            json!({"flakeName": "t", "flakeCronstring": "* * * * *", "flakeCommand": "echo 1", "flakeMetricNamespace": "N",
            "flakeAlarms": [{"alarmName": "x", "alarmThreshold": 1, "alarmOperator": ">", "alarmTags": tags}]}),
        )
    };
    h.reconciler.reconcile(&desired(&[tagged(json!({"team": "a", "tier": "1"}))]), &all()).await.unwrap();
    assert_eq!(h.fake.tags(REGION, "FL-t-x").into_iter().collect::<Vec<_>>(), [("team".into(), "a".into()), ("tier".into(), "1".into())]);
    h.reconciler.reconcile(&desired(&[tagged(json!({"team": "a", "tier": "1"}))]), &all()).await.unwrap();
    assert_eq!(h.fake.calls(Operation::TagResource), 1, "unchanged tags are not written again");
    h.reconciler.reconcile(&desired(&[tagged(json!({"team": "b"}))]), &all()).await.unwrap();
    assert_eq!(h.fake.tags(REGION, "FL-t-x").into_iter().collect::<Vec<_>>(), [("team".into(), "b".into())]);
    assert_eq!((h.fake.calls(Operation::TagResource), h.fake.calls(Operation::UntagResource)), (2, 1));
}

#[tokio::test]
async fn once_scope_touches_only_its_flakes() {
    let h = harness();
    h.reconciler.reconcile(&desired(&[flake_with_alarms("a", 2, 1.0), flake_with_alarms("b", 1, 1.0)]), &all()).await.unwrap();
    let only_a = Scope::Flakes(BTreeSet::from(["a".to_string()]));
    let applied = h.reconciler.reconcile(&desired(&[flake_with_alarms("a", 1, 1.0)]), &only_a).await.unwrap();
    assert_eq!(applied.deleted, 1, "a's dropped alarm is deleted");
    assert_eq!(h.fake.alarm_names(REGION), ["FL-a-a0", "FL-b-a0"], "b is out of scope");
}

#[tokio::test]
async fn an_alarm_made_elsewhere_under_a_declared_name_is_corrected_but_never_deleted() {
    let h = harness();
    // Another host (or a person) made the alarm a flake here also declares.
    h.reconciler.reconcile(&desired(&[flake_with_alarms("a", 1, 1.0)]), &all()).await.unwrap();
    let made_elsewhere = h.fake.alarm(REGION, "FL-a-a0").unwrap();
    let other = harness();
    other.fake.insert_alarm(REGION, DescribedAlarm { threshold: Some(42.0), ..made_elsewhere });
    let plan = other.reconciler.plan(&desired(&[flake_with_alarms("a", 1, 1.0)]), &all()).await.unwrap();
    assert_eq!(plan.adopted, 1);
    assert!(plan.render().contains("= 1 declared alarm(s) exist that this host did not create"), "{}", plan.render());
    let applied = other.reconciler.reconcile(&desired(&[flake_with_alarms("a", 1, 1.0)]), &all()).await.unwrap();
    assert_eq!((applied.updated, applied.created), (1, 0), "drift is corrected");
    assert_eq!(other.fake.alarm(REGION, "FL-a-a0").unwrap().threshold, Some(1.0));
    // The flake goes away here: the alarm was never this host's, so it stays.
    let applied = other.reconciler.reconcile(&desired(&[flake_with_alarms("b", 1, 1.0)]), &all()).await.unwrap();
    assert_eq!(applied.deleted, 0);
    assert!(other.fake.alarm(REGION, "FL-a-a0").is_some());
}

#[tokio::test]
async fn a_region_that_cannot_be_read_changes_nothing_there_and_the_others_go_on() {
    let h = harness();
    let regional = |name: &str, region: &str| {
        flake(
            &format!("flakes/{name}.json"),
            json!({"flakeName": name, "flakeCronstring": "* * * * *", "flakeCommand": "echo 1", "flakeMetricNamespace": "N",
            "flakeRegion": region, "flakeAlarms": [{"alarmName": "x", "alarmThreshold": 1, "alarmOperator": ">"}]}),
        )
    };
    h.reconciler.reconcile(&desired(&[regional("west", "eu-west-1"), regional("east", REGION)]), &all()).await.unwrap();
    h.fake.break_region("eu-west-1", CallError::new(ErrorKind::Unavailable, None, "no route to eu-west-1"));
    // The west flake is gone from the files, and a new one appears in the east.
    let applied = h.reconciler.reconcile(&desired(&[regional("east", REGION), regional("new", REGION)]), &all()).await.unwrap();
    assert_eq!(applied.created, 1, "the readable region is reconciled: {applied:?}");
    assert_eq!(applied.deleted, 0, "nothing is deleted where the state is unknown");
    assert!(applied.failures.iter().any(|failure| failure.contains("eu-west-1") && failure.contains("no route")), "{:?}", applied.failures);
    assert_eq!(h.fake.alarm_names("eu-west-1"), ["FL-west-x"]);
    let plan = h.reconciler.plan(&desired(&[regional("east", REGION)]), &all()).await.unwrap();
    assert!(plan.render().contains("! region eu-west-1 could not be read"), "{}", plan.render());
}

// ---- Every alarm kind of SPEC 10 through the one desired -> plan -> reconcile path ----

/// An alarms flake with one alarm of each kind, and two composites, one naming the other.
fn every_kind(name: &str, band_width: f64) -> Arc<Flake> {
    flake(
        &format!("flakes/{name}.json"),
        json!({"flakeName": name, "flakeType": "alarms", "flakeAlarms": [
            {"alarmName": "page", "alarmRule": "ALARM(mute-cpu) OR ALARM(status)"},
            {"alarmName": "mute-cpu", "alarmRule": "ALARM(cpu) AND NOT ALARM(maintenance)"},
            {"alarmName": "status", "alarmNamespace": "AWS/EC2", "alarmMetricName": "StatusCheckFailed_System",
             "alarmDimensions": {"InstanceId": "i-1"}, "alarmStatistic": "Maximum", "alarmThreshold": 0, "alarmOperator": ">",
             "alarmEndpoints": {"alarm": "arn:aws:automate:us-east-1:ec2:recover"}},
            {"alarmName": "cpu", "alarmNamespace": "AWS/EC2", "alarmMetricName": "CPUUtilization", "alarmDimensions": {"InstanceId": "i-1"},
             "alarmAnomalyBand": band_width, "alarmOperator": "above", "alarmPeriodLength": 300},
            {"alarmName": "maintenance", "alarmExpression": "100 * errors / requests", "alarmThreshold": 5, "alarmOperator": ">",
             "alarmMetrics": {"errors": {"namespace": "App", "metricName": "Errors", "statistic": "Sum"},
                              "requests": {"namespace": "App", "metricName": "Requests", "statistic": "Sum"}}}
        ]}),
    )
}

fn position(order: &[(Operation, Vec<String>)], name: &str) -> usize {
    order.iter().position(|(_, names)| names.iter().any(|n| n == name)).unwrap_or_else(|| panic!("{name} was never written: {order:?}"))
}

#[tokio::test]
async fn every_kind_is_created_children_first_and_a_second_reconcile_writes_nothing() {
    let h = harness();
    let wanted = desired(&[every_kind("host", 2.0)]);
    let applied = h.reconciler.reconcile(&wanted, &all()).await.unwrap();
    assert_eq!((applied.created, applied.failures.len()), (5, 0), "{:?}", applied.failures);
    let order = h.fake.alarm_writes();
    assert!(position(&order, "FL-host-mute-cpu") > position(&order, "FL-host-cpu"));
    assert!(position(&order, "FL-host-mute-cpu") > position(&order, "FL-host-maintenance"));
    assert!(position(&order, "FL-host-page") > position(&order, "FL-host-mute-cpu"), "a composite after the composite it names");
    assert_eq!(h.fake.calls(Operation::PutCompositeAlarm), 2);

    let band = h.fake.alarm(REGION, "FL-host-cpu").unwrap();
    assert_eq!(band.threshold_metric_id.as_deref(), Some("ad1"));
    assert!(band.metrics.iter().any(|m| m.expression.as_deref() == Some("ANOMALY_DETECTION_BAND(m1, 2)")), "{:?}", band.metrics);
    assert_eq!(
        h.fake.alarm(REGION, "FL-host-page").unwrap().rule.as_deref(),
        Some("ALARM(\"FL-host-mute-cpu\") OR ALARM(\"FL-host-status\")")
    );

    let before = writes(&h.fake);
    let applied = h.reconciler.reconcile(&wanted, &all()).await.unwrap();
    assert_eq!((applied.writes(), writes(&h.fake) - before), (0, 0), "{applied:?}");
}

#[tokio::test]
async fn drift_in_every_kind_is_corrected_field_by_field() {
    let h = harness();
    let wanted = desired(&[every_kind("host", 2.0)]);
    h.reconciler.reconcile(&wanted, &all()).await.unwrap();
    let mut rule = h.fake.alarm(REGION, "FL-host-mute-cpu").unwrap();
    rule.rule = Some("ALARM(\"FL-host-cpu\")".into());
    h.fake.insert_alarm(REGION, rule);
    let mut math = h.fake.alarm(REGION, "FL-host-maintenance").unwrap();
    math.metrics.reverse(); // the order CloudWatch returns them in is not drift
    math.metrics[0].return_data = true;
    h.fake.insert_alarm(REGION, math);

    let plan = h.reconciler.plan(&wanted, &all()).await.unwrap().render();
    assert!(
        plan.contains("~ update FL-host-mute-cpu") && plan.contains("rule: ALARM(\"FL-host-cpu\") -> ALARM(\"FL-host-cpu\") AND NOT"),
        "{plan}"
    );
    assert!(plan.contains("~ update FL-host-maintenance") && plan.contains("    metrics: ["), "{plan}");
    assert!(plan.contains("Plan: 0 to create, 2 to update"), "{plan}");
    let applied = h.reconciler.reconcile(&wanted, &all()).await.unwrap();
    assert_eq!(applied.updated, 2);
    assert_eq!(h.reconciler.plan(&wanted, &all()).await.unwrap().updates.len(), 0);

    // A changed band width is an update of the band alarm only.
    let wider = desired(&[every_kind("host", 3.0)]);
    let plan = h.reconciler.plan(&wider, &all()).await.unwrap();
    assert_eq!(plan.updates.iter().map(|u| u.alarm.config.name.as_str()).collect::<Vec<_>>(), ["FL-host-cpu"]);
}

#[tokio::test]
async fn removal_deletes_composites_first_one_a_call_then_the_rest() {
    let h = harness();
    h.reconciler.reconcile(&desired(&[every_kind("host", 2.0)]), &all()).await.unwrap();
    let keep = flake_with_alarms("other", 1, 1.0);
    let applied = h.reconciler.reconcile(&desired(&[keep]), &all()).await.unwrap();
    assert_eq!((applied.deleted, applied.failures.len()), (5, 0), "{:?}", applied.failures);
    let deletes: Vec<Vec<String>> =
        h.fake.alarm_writes().into_iter().filter(|(op, _)| *op == Operation::DeleteAlarms).map(|(_, names)| names).collect();
    assert_eq!(deletes[0], ["FL-host-page"], "the composite naming a composite goes first");
    assert_eq!(deletes[1], ["FL-host-mute-cpu"]);
    assert_eq!(deletes[2].len(), 3, "the metric alarms together: {deletes:?}");
    assert_eq!(h.fake.alarm_names(REGION), ["FL-other-a0"]);
}

#[tokio::test]
async fn many_composites_are_read_a_hundred_names_a_call_and_deleted_one_a_call() {
    let h = harness();
    let mut alarms = vec![
        json!({"alarmName": "base", "alarmNamespace": "AWS/EC2", "alarmMetricName": "CPUUtilization", "alarmThreshold": 90, "alarmOperator": ">"}),
    ];
    alarms.extend((0..120).map(|i| json!({"alarmName": format!("c{i}"), "alarmRule": "ALARM(base)"})));
    let many = flake("flakes/many.json", json!({"flakeName": "many", "flakeType": "alarms", "flakeAlarms": alarms}));
    let applied = h.reconciler.reconcile(&desired(&[many]), &all()).await.unwrap();
    assert_eq!(applied.created, 121);
    let describes = h.fake.calls(Operation::DescribeAlarms);
    assert_eq!(describes, 2, "121 names are read in two calls");
    let applied = h.reconciler.reconcile(&desired(&[flake_with_alarms("other", 1, 1.0)]), &all()).await.unwrap();
    assert_eq!((applied.deleted, applied.failures.len()), (121, 0), "{:?}", applied.failures);
    assert_eq!(h.fake.calls(Operation::DeleteAlarms), 121, "120 composites one a call, then the metric alarm");
}

#[tokio::test]
async fn an_alarm_that_becomes_a_composite_is_replaced_not_updated_in_place() {
    let h = harness();
    let metric = json!({"alarmName": "x", "alarmNamespace": "AWS/EC2", "alarmMetricName": "CPUUtilization", "alarmThreshold": 1, "alarmOperator": ">"});
    let other = json!({"alarmName": "y", "alarmNamespace": "AWS/EC2", "alarmMetricName": "CPUUtilization", "alarmThreshold": 2, "alarmOperator": ">"});
    let with =
        |x: serde_json::Value| flake("flakes/t.json", json!({"flakeName": "t", "flakeType": "alarms", "flakeAlarms": [x, other.clone()]}));
    h.reconciler.reconcile(&desired(&[with(metric.clone())]), &all()).await.unwrap();
    let composite = json!({"alarmName": "x", "alarmRule": "ALARM(y)"});
    let applied = h.reconciler.reconcile(&desired(&[with(composite)]), &all()).await.unwrap();
    assert_eq!((applied.updated, applied.failures.clone()), (1, Vec::<String>::new()));
    assert!(h.fake.alarm(REGION, "FL-t-x").unwrap().rule.is_some());
    let applied = h.reconciler.reconcile(&desired(&[with(metric)]), &all()).await.unwrap();
    assert_eq!((applied.updated, applied.failures.clone()), (1, Vec::<String>::new()));
    assert!(h.fake.alarm(REGION, "FL-t-x").unwrap().rule.is_none());
}
