//! SPEC 15, a cluster flake's alarms belong to the cluster, with real processes: two `snowflake
//! run` daemons share one cluster flake with an alarm through LocalStack's S3 and CloudWatch.
//! The member holding the flake creates the alarm; when one member's flake files drop the flake
//! (a rollout in progress) the alarm stays, and that member says why it does not delete it; when
//! both dropped it the alarm is deleted, by one member, once. The flake's graph is on the
//! dashboard of the member running it only, and moves with it.

mod common;

use std::time::{Duration, Instant};

use common::{Daemon, Workspace, aws, endpoint, unique, with_aws};
use serde_json::json;

fn alarm_exists(endpoint: &str, name: &str) -> bool {
    let found = aws(endpoint, &["cloudwatch", "describe-alarms", "--alarm-names", name]);
    found["MetricAlarms"].as_array().is_some_and(|alarms| !alarms.is_empty())
}

/// The body of dashboard `name`, if it exists.
fn dashboard(endpoint: &str, name: &str) -> Option<String> {
    let listed = aws(endpoint, &["cloudwatch", "list-dashboards", "--dashboard-name-prefix", name]);
    let exists = listed["DashboardEntries"].as_array().is_some_and(|entries| entries.iter().any(|entry| entry["DashboardName"] == name));
    exists.then(|| {
        aws(endpoint, &["cloudwatch", "get-dashboard", "--dashboard-name", name])["DashboardBody"].as_str().unwrap_or_default().to_string()
    })
}

/// Whether the dashboard draws the cluster flake (its namespace's graph, its alarm in the list).
fn draws(endpoint: &str, name: &str, alarm: &str) -> bool {
    dashboard(endpoint, name).is_some_and(|body| body.contains("SnowflakeClusterTest") && body.contains(alarm))
}

fn objects(endpoint: &str, bucket: &str, prefix: &str) -> Vec<String> {
    let listed = aws(endpoint, &["s3api", "list-objects-v2", "--bucket", bucket, "--prefix", prefix]);
    listed["Contents"]
        .as_array()
        .map(|objects| objects.iter().filter_map(|object| Some(object["Key"].as_str()?.to_string())).collect())
        .unwrap_or_default()
}

fn wait_until(limit: Duration, what: &str, logs: &[&Daemon], mut condition: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !condition() {
        if started.elapsed() > limit {
            let logs: Vec<String> = logs.iter().map(|daemon| daemon.log()).collect();
            panic!("waited {limit:?} for {what}; logs:\n{}", logs.join("\n-----\n"));
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    started.elapsed()
}

#[test]
fn a_cluster_flake_s_alarm_survives_a_partial_rollout_and_is_deleted_once_when_every_member_dropped_it() {
    let endpoint = endpoint();
    let bucket: String = unique("owned").to_lowercase().replace('_', "-").chars().take(63).collect();
    common::aws(&endpoint, &["s3api", "create-bucket", "--bucket", &bucket]);
    let location = format!("s3://{bucket}/snowflake");
    let shared = unique("shared");
    let alarm = format!("FL-{shared}-high");
    let cluster_flake = json!({
        "flakeName": shared, "flakeCronstring": "@every 5s", "flakeCommand": "echo 1", "flakeScope": "cluster",
        "flakeMetricNamespace": "SnowflakeClusterTest",
        "flakeAlarms": [{"alarmName": "high", "alarmThreshold": 100, "alarmOperator": ">"}]
    });
    // A host flake too: a member whose directory holds no valid flake blocks every cluster delete.
    let host_flake = json!({"flakeName": unique("local"), "flakeCronstring": "@hourly", "flakeType": "job", "flakeCommand": "true"});
    let mut members = Vec::new();
    for name in ["a", "b"] {
        let workspace = Workspace::new();
        let file = workspace.add(&shared, cluster_flake.clone());
        workspace.add("local", host_flake.clone());
        let mut command = workspace.snowflake();
        with_aws(&mut command, &endpoint);
        let dashboard = format!("{bucket}-{name}");
        let member = format!("member-{name}");
        let args = ["--cluster", &location, "--cluster-member", &member, "--rescan-interval", "1s", "--dashboard", &dashboard];
        let daemon = Daemon::start(&mut command, &workspace, &args);
        members.push((workspace, file, daemon));
    }
    let logs = |members: &[(Workspace, std::path::PathBuf, Daemon)]| -> String {
        members.iter().map(|(_, _, daemon)| daemon.log()).collect::<Vec<_>>().join("\n-----\n")
    };

    let created = wait_until(Duration::from_secs(60), "the holder to create the alarm", &[&members[0].2, &members[1].2], || {
        alarm_exists(&endpoint, &alarm)
    });
    eprintln!("alarm created {created:?} after start");
    assert_eq!(
        objects(&endpoint, &bucket, "snowflake/owned/"),
        vec![format!("snowflake/owned/{shared}")],
        "its ownership record beside the claims"
    );
    let holders: Vec<usize> =
        (0..2).filter(|index| members[*index].2.log().contains("reconciled the alarms of the cluster flakes this member holds")).collect();
    assert_eq!(holders.len(), 1, "exactly one member created it:\n{}", logs(&members));
    let dashboards = [format!("{bucket}-a"), format!("{bucket}-b")];
    let holder = holders[0];
    wait_until(Duration::from_secs(30), "both dashboards", &[&members[0].2, &members[1].2], || {
        dashboards.iter().all(|name| dashboard(&endpoint, name).is_some())
    });
    wait_until(Duration::from_secs(30), "the holder's dashboard to draw the flake", &[&members[holder].2], || {
        draws(&endpoint, &dashboards[holder], &alarm)
    });
    assert!(!draws(&endpoint, &dashboards[1 - holder], &alarm), "only the member running the flake draws it");
    for (workspace, _, _) in &members {
        let list = std::fs::read_to_string(workspace.state().join("alarms.json")).unwrap_or_default();
        assert!(!list.contains(&alarm), "a host's own list never holds a cluster flake's alarm: {list}");
    }

    // A rollout in progress: the holder's files drop the flake; the other member still has it.
    std::fs::remove_file(&members[holder].1).unwrap();
    wait_until(Duration::from_secs(90), "the member that dropped the flake to decline deleting its alarm", &[&members[holder].2], || {
        members[holder].2.log().contains("not deleting the alarms of the cluster flake this member no longer has")
    });
    wait_until(Duration::from_secs(90), "the other member to take the flake over", &[&members[1 - holder].2], || {
        members[1 - holder].2.log().contains("took the cluster flake")
    });
    wait_until(Duration::from_secs(30), "the flake's graph to move with it", &[&members[0].2, &members[1].2], || {
        draws(&endpoint, &dashboards[1 - holder], &alarm) && !draws(&endpoint, &dashboards[holder], &alarm)
    });
    assert!(alarm_exists(&endpoint, &alarm), "the alarm stays while a live member still has the flake:\n{}", logs(&members));
    let declined = members[holder].2.metric("snowflake_cluster_owned_alarms_total{action=\"declined\"}").unwrap_or(0.0);
    assert!(declined >= 1.0, "/metrics counts the declined delete");

    // Every member dropped it: deleted, by one member, once.
    std::fs::remove_file(&members[1 - holder].1).unwrap();
    let gone = wait_until(Duration::from_secs(120), "the alarm to be deleted", &[&members[0].2, &members[1].2], || {
        !alarm_exists(&endpoint, &alarm)
    });
    eprintln!("alarm deleted {gone:?} after the last member dropped the flake");
    std::thread::sleep(Duration::from_secs(35));
    let deleted: f64 =
        members.iter().map(|(_, _, daemon)| daemon.metric("snowflake_cluster_owned_alarms_total{action=\"deleted\"}").unwrap_or(0.0)).sum();
    assert_eq!(deleted, 1.0, "one alarm deleted once, by one member:\n{}", logs(&members));
    let deleters = members
        .iter()
        .filter(|(_, _, daemon)| daemon.log().contains("deleting the alarms of a cluster flake no live member has any more"))
        .count();
    assert_eq!(deleters, 1, "{}", logs(&members));
    assert!(objects(&endpoint, &bucket, "snowflake/owned/").is_empty(), "the record goes with the alarms");
    for (_, _, daemon) in members {
        daemon.stop(Duration::from_secs(30));
    }
}
