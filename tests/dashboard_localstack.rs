//! Dashboards as code against LocalStack: `snowflake run --dashboard snowflake-${hostname}` on the
//! shipped examples creates a dashboard with every example's metric and alarm thresholds, writes
//! nothing more while nothing changes (PutDashboard counted in LocalStack's own request log), and
//! undoes a hand edit at the next reconcile; a rename deletes the old dashboard, a removed flag
//! deletes it too, and a dashboard this host did not create is never deleted.

mod common;

use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{LocalStack, Workspace, repo_path, run, sdk, with_aws};
use serde_json::Value;
use specialsnowflake::alarms::{ManagedFile, ReconcileConfig, Reconciler, Scope, desired_alarms};
use specialsnowflake::catalog::{Catalog, Loader};
use specialsnowflake::cloudwatch::CloudWatch;
use specialsnowflake::cloudwatch::sdk::SdkCloudWatch;
use specialsnowflake::dashboard::{DashboardReconciler, Target, dashboard_input, dashboard_name};
use specialsnowflake::metrics::Metrics;
use specialsnowflake::placeholders::HostFacts;

const REGION: &str = "us-east-1";

/// The daemon on the shipped examples, reconciling every 4 s (jittered: 2-6 s for the first check).
fn daemon(workspace: &Workspace, endpoint: &str, dashboard: &str) -> Child {
    let mut command = workspace.snowflake();
    with_aws(&mut command, endpoint)
        .current_dir(repo_path(""))
        .env("SNOWFLAKE_FLAKES", repo_path("flakes"))
        .env("SNOWFLAKE_WORKDIR", repo_path(""))
        .args(["run", "--listen", "off", "--reconcile-interval", "4s", "--dashboard", dashboard])
        .stdout(Stdio::from(std::fs::File::create(workspace.root.path().join("daemon.log")).unwrap()))
        .stderr(Stdio::inherit());
    command.spawn().expect("snowflake run starts")
}

fn stop(mut child: Child) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
    assert!(child.wait().unwrap().success());
}

async fn wait_for(within: Duration, what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out after {within:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn body_of(cloudwatch: &SdkCloudWatch, name: &str) -> Option<Value> {
    cloudwatch.get_dashboard(REGION, name).await.unwrap().map(|text| serde_json::from_str(&text).unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn run_with_dashboard_draws_every_example_and_undoes_a_hand_edit_with_no_writes_in_between() {
    let localstack = LocalStack::start();
    let cloudwatch = sdk(&localstack.endpoint()).await;
    let workspace = Workspace::new();
    let name = dashboard_name("snowflake-${hostname}", &HostFacts::local()).unwrap();
    let child = daemon(&workspace, &localstack.endpoint(), "snowflake-${hostname}");

    wait_for(Duration::from_secs(60), "the dashboard", async || body_of(&cloudwatch, &name).await.is_some()).await;
    let created = body_of(&cloudwatch, &name).await.unwrap();
    let widgets = created["widgets"].as_array().unwrap();
    let text = created.to_string();
    for flake in ["example-hourly", "example-job", "example-liveness", "MemoryAvailablePercent", "example-perminute"] {
        assert!(
            widgets.iter().any(|widget| widget["properties"]["title"] == format!("{flake} (SpecialSnowflake/Examples)")),
            "{flake}: {text}"
        );
    }
    for (alarm, value, fill) in
        [("disk-nearly-full", 90.0, "above"), ("high-load", 8.0, "above"), ("low-memory-", 10.0, "below"), ("process-down-", 1.0, "below")]
    {
        let drawn =
            widgets.iter().flat_map(|widget| widget["properties"]["annotations"]["horizontal"].as_array().cloned().unwrap_or_default());
        assert!(
            drawn.clone().any(|line| line["label"].as_str().unwrap().contains(alarm) && line["value"] == value && line["fill"] == fill),
            "threshold of {alarm}: {text}"
        );
    }
    let listed = widgets.iter().find(|widget| widget["type"] == "alarm").expect("an alarm status widget")["properties"]["alarms"].clone();
    // Exactly the alarms the examples declare, as a dry-run plan of the same flakes names them.
    let (code, plan, stderr) = run(workspace.snowflake().args(["--dry-run", "--flakes"]).arg(repo_path("flakes")).arg("plan"));
    assert_eq!(code, 0, "{stderr}");
    let mut declared: Vec<String> = plan
        .lines()
        .filter_map(|line| line.strip_prefix("+ create FL-"))
        .map(|rest| format!("arn:aws:cloudwatch:us-east-1:000000000000:alarm:FL-{}", rest.split(' ').next().unwrap()))
        .collect();
    declared.sort();
    let mut listed: Vec<String> = listed.as_array().unwrap().iter().map(|arn| arn.as_str().unwrap().to_string()).collect();
    listed.sort();
    assert!(!declared.is_empty(), "{plan}");
    assert_eq!(listed, declared);

    // Two more reconciles (4 s apart, jittered) find nothing to change: no PutDashboard.
    let reads = localstack.requests("GetDashboard");
    wait_for(Duration::from_secs(30), "two more reconciles", async || localstack.requests("GetDashboard") >= reads + 2).await;
    assert_eq!(localstack.requests("PutDashboard"), 1, "a dashboard that did not change is not written again");

    // A hand edit is undone at the next reconcile.
    cloudwatch
        .put_dashboard(
            REGION,
            &name,
            r#"{"widgets":[{"type":"text","x":0,"y":0,"width":6,"height":2,"properties":{"markdown":"edited by hand"}}]}"#,
        )
        .await
        .unwrap();
    wait_for(Duration::from_secs(30), "the hand edit to be undone", async || body_of(&cloudwatch, &name).await.as_ref() == Some(&created))
        .await;
    assert_eq!(localstack.requests("PutDashboard"), 3, "the hand edit and one correction");
    stop(child);
    let state = std::fs::read_to_string(workspace.state().join("dashboards.json")).unwrap();
    assert!(state.contains(&format!("\"{name}\"")), "ownership recorded: {state}");
}

async fn reconcilers(cloudwatch: Arc<SdkCloudWatch>, state: &Path) -> Reconciler<SdkCloudWatch> {
    Reconciler::new(cloudwatch, ManagedFile::new(state), ReconcileConfig::default(), Arc::new(Metrics::new()))
}

/// One reconcile of the examples' alarms and dashboard under `name` (or none), as the daemon does.
async fn reconcile(cloudwatch: &Arc<SdkCloudWatch>, state: &Path, name: Option<&str>) -> specialsnowflake::dashboard::DashboardApplied {
    let mut catalog = Catalog::new(repo_path("flakes"), Loader::new(chrono_tz::Tz::UTC, HostFacts::local()));
    catalog.rescan(false).await;
    let flakes = catalog.flakes();
    let (alarms, _) = desired_alarms(&flakes, Some(REGION));
    reconcilers(cloudwatch.clone(), state).await.reconcile(&alarms, &Scope::all(false, flakes.len(), Vec::new())).await.unwrap();
    let target = name.map(|name| Target { name: name.to_string(), region: REGION.to_string() });
    let keeper = DashboardReconciler::new(cloudwatch.clone(), state, target, ReconcileConfig::default());
    keeper.reconcile(&dashboard_input(&flakes, &alarms, "web-1", Some(REGION)), &alarms, true).await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rename_deletes_the_old_dashboard_and_a_foreign_one_is_never_deleted() {
    let localstack = LocalStack::start();
    let cloudwatch = Arc::new(sdk(&localstack.endpoint()).await);
    let state = tempfile::tempdir().unwrap();
    cloudwatch.put_dashboard(REGION, "made-by-a-person", r#"{"widgets":[]}"#).await.unwrap();

    let applied = reconcile(&cloudwatch, state.path(), Some("first-name")).await;
    assert!(applied.created, "{applied:?}");
    let applied = reconcile(&cloudwatch, state.path(), Some("second-name")).await;
    assert_eq!((applied.created, applied.deleted), (true, 1), "{applied:?}");
    assert!(body_of(&cloudwatch, "first-name").await.is_none(), "the renamed dashboard is gone");
    assert!(body_of(&cloudwatch, "second-name").await.is_some());

    // Named, a dashboard someone else made is kept as generated; unnamed again, it stays.
    let applied = reconcile(&cloudwatch, state.path(), Some("made-by-a-person")).await;
    assert_eq!((applied.updated, applied.deleted), (true, 1), "{applied:?}");
    let applied = reconcile(&cloudwatch, state.path(), None).await;
    assert_eq!(applied.writes(), 0, "{applied:?}");
    assert!(body_of(&cloudwatch, "made-by-a-person").await.is_some(), "a dashboard this host did not create is never deleted");
    assert_eq!(localstack.requests("DeleteDashboards"), 2, "first-name and second-name, each when it stopped being wanted");
}

#[test]
fn plan_and_dashboard_commands_show_the_change_and_the_body() {
    let localstack = LocalStack::start();
    let workspace = Workspace::new();
    let snowflake = |args: &[&str]| {
        let mut command = workspace.snowflake();
        with_aws(&mut command, &localstack.endpoint()).env("SNOWFLAKE_FLAKES", repo_path("flakes")).args(args);
        run(&mut command)
    };
    let (code, body, dashboard_stderr) = snowflake(&["dashboard"]);
    assert_eq!(code, 0, "{dashboard_stderr}");
    let body: Value = serde_json::from_str(&body).unwrap();
    // Before any alarm exists its ARN is unknown, so the planned body has every widget but the alarm list.
    let without_alarm_list = body["widgets"].as_array().unwrap().iter().filter(|widget| widget["type"] != "alarm").count();
    let (code, plan, stderr) = snowflake(&["plan", "--dashboard", "plan-${hostname}"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(plan.contains("+ create dashboard plan-") && plan.contains(&format!(" {without_alarm_list} widgets")), "{plan}");
    assert!(dashboard_stderr.contains("${AWS::AccountId}"), "no alarm exists yet, so the ARNs are left to Fn::Sub: {dashboard_stderr}");
    assert!(body.to_string().contains("arn:${AWS::Partition}:cloudwatch:us-east-1:${AWS::AccountId}:alarm:FL-example-perminute-high-load"));
    let (code, _, stderr) = snowflake(&["plan", "--dashboard", "bad name"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("--dashboard \"bad name\"") && stderr.contains("letters, digits"), "{stderr}");
}
