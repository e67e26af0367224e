//! Body generation against golden files (`tests/fixtures/dashboards/*.json`): the shipped examples,
//! annotations of both kinds, a metric with many series, and CloudWatch's limits. Set
//! `UPDATE_GOLDEN=1` to rewrite the files after a deliberate change, then read the diff.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{Value, json};

use super::*;
use crate::alarms::desired_alarms;
use crate::flake::{Context, Flake, parse_flake};
use crate::placeholders::tests::FixedFacts;

const REGION: &str = "eu-west-1";

fn account() -> Account {
    Account { partition: "aws".to_string(), id: "123456789012".to_string() }
}

fn flake_of(path: &Path, text: &str) -> Arc<Flake> {
    let context = Context { default_zone: chrono_tz::Tz::UTC, facts: &FixedFacts };
    let (flake, problems) = parse_flake(path, text, &context);
    Arc::new(flake.unwrap_or_else(|| panic!("{}: {problems:?}", path.display())))
}

fn flake(value: Value) -> Arc<Flake> {
    let name = value["flakeName"].as_str().unwrap().to_string();
    flake_of(Path::new(&format!("flakes/{name}.json")), &value.to_string())
}

/// The shipped example flakes, in directory order.
fn examples() -> Vec<Arc<Flake>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("flakes");
    // Flake files only: an example's flakeBuild directory lives beside them.
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|extension| extension == "json"))
        .collect();
    paths.sort();
    paths.iter().map(|path| flake_of(path, &std::fs::read_to_string(path).unwrap())).collect()
}

fn generate(flakes: &[Arc<Flake>]) -> Body {
    let (alarms, skipped) = desired_alarms(flakes, Some(REGION));
    assert!(skipped.is_empty(), "{skipped:?}");
    body(&dashboard_input(flakes, &alarms, "web-1", Some(REGION)), Some(&account()))
}

/// Compares with the golden file, or writes it with `UPDATE_GOLDEN=1`.
fn golden(name: &str, body: &Body) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/dashboards").join(name);
    let text = serde_json::to_string_pretty(&body.json).unwrap() + "\n";
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &text).unwrap();
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{}: {error}; run with UPDATE_GOLDEN=1", path.display()));
    assert_eq!(text, expected, "{} differs; if the change is deliberate, run with UPDATE_GOLDEN=1 and review the diff", path.display());
}

fn widgets(body: &Body) -> &Vec<Value> {
    body.json["widgets"].as_array().unwrap()
}

fn graph<'a>(body: &'a Body, title: &str) -> &'a Value {
    widgets(body).iter().find(|widget| widget["properties"]["title"] == title).unwrap_or_else(|| panic!("no graph {title}"))
}

#[test]
fn the_shipped_examples_every_metric_on_a_graph_with_its_thresholds() {
    let flakes = examples();
    let body = generate(&flakes);
    golden("examples.json", &body);
    // Every single-metric example's metric has a graph, and every threshold alarm's threshold is on
    // the graph of the metric it watches (the host-alarms example's are on AWS/EC2's and its own).
    for flake in flakes.iter().filter(|flake| !flake.output.format.is_multi_metric()) {
        if let Some(metric) = &flake.metric {
            graph(&body, &format!("{} ({})", metric.metric_name, metric.namespace));
        }
        for alarm in &flake.alarms {
            let crate::flake::Watch::Metric(watched) = &alarm.watch else { continue };
            let graph = graph(&body, &format!("{} ({})", watched.metric_name, watched.namespace));
            let lines = graph["properties"]["annotations"]["horizontal"].as_array().unwrap();
            assert!(lines.iter().any(|line| line["label"] == alarm.name.as_str() && line["value"] == alarm.threshold), "{graph}");
        }
    }
    // A multi-metric example's names are known only at run time: one SEARCH graph finds them,
    // shared by the examples with the same namespace and dimension values.
    for flake in flakes.iter().filter(|flake| flake.output.format.is_multi_metric()) {
        let metric = flake.metric.as_ref().unwrap();
        let suffix = format!(" (every metric, {})", metric.namespace);
        let graphs: Vec<&Value> = widgets(&body)
            .iter()
            .filter(|widget| {
                let title = widget["properties"]["title"].as_str().unwrap_or_default();
                title.ends_with(&suffix) && title.trim_end_matches(&suffix).split(", ").any(|name| name == flake.name)
            })
            .collect();
        assert_eq!(graphs.len(), 1, "{} is on one search graph", flake.name);
        let expression = graphs[0]["properties"]["metrics"][0][0]["expression"].as_str().unwrap();
        assert!(expression.starts_with(&format!("SEARCH('Namespace=\"{}\"", metric.namespace)), "{expression}");
    }
    let header = &widgets(&body)[0]["properties"]["markdown"];
    assert!(header.as_str().unwrap().contains("**web-1**") && header.as_str().unwrap().contains("overwritten"), "{header}");
    let listed = widgets(&body)[1]["properties"]["alarms"].as_array().unwrap();
    let (desired, _) = desired_alarms(&flakes, Some(REGION));
    assert_eq!(listed.len(), desired.len());
    // A monitored job's three values have their graphs, with the overdue and failed thresholds.
    let monitored: Vec<_> = flakes.iter().filter(|flake| flake.monitor.is_some()).collect();
    assert!(!monitored.is_empty(), "an example flake uses flakeMonitor");
    for flake in monitored {
        let namespace = &flake.metric.as_ref().unwrap().namespace;
        for (metric_name, alarm) in [("JobSuccess", Some("failed")), ("JobDuration", None), ("JobOverdueSeconds", Some("overdue"))] {
            let graph = graph(&body, &format!("{metric_name} ({namespace})"));
            let metrics = graph["properties"]["metrics"].to_string();
            assert!(metrics.contains(&format!("\"Job\",\"{}\"", flake.name)), "{graph}");
            if let Some(alarm) = alarm {
                let lines = graph["properties"]["annotations"]["horizontal"].as_array().unwrap();
                let name = format!("FL-{}-{alarm}", flake.name);
                assert!(lines.iter().any(|line| line["label"] == name.as_str()), "{graph}");
            }
        }
    }
    assert!(listed.contains(&json!("arn:aws:cloudwatch:eu-west-1:123456789012:alarm:FL-example-per-host-low-memory-web-1")));
}

#[test]
fn the_same_flakes_in_any_order_give_the_same_bytes() {
    let flakes = examples();
    let mut reversed = flakes.clone();
    reversed.reverse();
    assert_eq!(generate(&flakes).text(), generate(&reversed).text());
}

#[test]
fn thresholds_fill_the_alarming_side_and_declared_limits_are_plain_lines() {
    let flakes = vec![flake(json!({
        "flakeName": "open-files", "flakeCronstring": "* * * * *", "flakeCommand": "echo 1", "flakeMetricNamespace": "Limits",
        "flakeDimensions": {"Host": "${hostname}"},
        "flakeAnnotations": [{"label": "hard limit (ulimit -Hn)", "value": 65536}, {"label": "soft limit", "value": "1024"}],
        "flakeAlarms": [
            {"alarmName": "near-soft-limit", "alarmThreshold": 900, "alarmOperator": ">=", "alarmStatistic": "Maximum"},
            {"alarmName": "none-open", "alarmThreshold": 1, "alarmOperator": "<", "alarmStatistic": "p10", "alarmPeriodLength": 300}
        ]
    }))];
    let body = generate(&flakes);
    golden("annotations.json", &body);
    let graph = graph(&body, "open-files (Limits)");
    assert_eq!(
        graph["properties"]["annotations"]["horizontal"],
        json!([
            {"label": "FL-open-files-none-open", "value": 1.0, "fill": "below"},
            {"label": "FL-open-files-near-soft-limit", "value": 900.0, "fill": "above"},
            {"label": "soft limit", "value": 1024.0},
            {"label": "hard limit (ulimit -Hn)", "value": 65536.0}
        ])
    );
    // The first alarm by name sets the statistic, so its line compares with what is drawn.
    assert_eq!((graph["properties"]["stat"].as_str(), graph["properties"]["period"].as_i64()), (Some("Maximum"), Some(60)));
}

#[test]
fn a_metric_with_many_series_is_one_search_graph_limited_to_this_host() {
    let flakes: Vec<Arc<Flake>> = (0..12)
        .map(|disk| {
            flake(json!({
                "flakeName": format!("disk-{disk:02}"), "flakeCronstring": "* * * * *", "flakeCommand": "echo 1",
                "flakeMetricNamespace": "Host \"Disks\"", "flakeMetricName": "UsedPercent",
                "flakeDimensions": {"Host": "${hostname}", "Device": format!("sd{disk:02}")}
            }))
        })
        .collect();
    let body = generate(&flakes);
    golden("search.json", &body);
    assert_eq!(widgets(&body).len(), 2, "one header, one graph, no alarms");
    let metrics = &widgets(&body)[1]["properties"]["metrics"];
    assert_eq!(
        metrics[0][0]["expression"],
        r#"SEARCH('{"Host \"Disks\"","Device","Host"} MetricName="UsedPercent" "Host"="web-1"', 'Average', 300)"#
    );
}

#[test]
fn beyond_500_widgets_graphs_are_left_out_and_named() {
    let flakes: Vec<Arc<Flake>> = (0..600)
        .map(|n| {
            flake(json!({"flakeName": format!("m{n:03}"), "flakeCronstring": "* * * * *", "flakeCommand": "echo 1",
                         "flakeMetricNamespace": "Many", "flakeAlarms": [{"alarmName": "high", "alarmThreshold": n, "alarmOperator": ">"}]}))
        })
        .collect();
    let body = generate(&flakes);
    let all = widgets(&body);
    assert_eq!(all.len(), MAX_WIDGETS);
    let alarm_widgets: Vec<&Value> = all.iter().filter(|widget| widget["type"] == "alarm").collect();
    assert_eq!(alarm_widgets.len(), 6, "600 alarms, 100 a widget");
    assert!(alarm_widgets.iter().all(|widget| widget["properties"]["alarms"].as_array().unwrap().len() == MAX_ALARMS_PER_WIDGET));
    let graphs = all.iter().filter(|widget| widget["type"] == "metric").count();
    assert_eq!(graphs, MAX_WIDGETS - 1 - 6 - 1);
    assert_eq!(body.left_out, 600 - graphs);
    let note = all.last().unwrap()["properties"]["markdown"].as_str().unwrap();
    assert!(note.starts_with("## 108 graphs are not shown") && note.contains("m492 (Many)") && note.contains("and 58 more"), "{note}");
    // No two widgets overlap.
    let mut cells = std::collections::HashSet::new();
    for widget in all {
        let (x, y, w, h) = (
            widget["x"].as_u64().unwrap(),
            widget["y"].as_u64().unwrap(),
            widget["width"].as_u64().unwrap(),
            widget["height"].as_u64().unwrap(),
        );
        assert!(x + w <= 24);
        for cell in (x..x + w).flat_map(|cx| (y..y + h).map(move |cy| (cx, cy))) {
            assert!(cells.insert(cell), "widgets overlap at {cell:?}");
        }
    }
}

#[test]
fn alarms_on_a_metric_no_flake_publishes_get_a_graph_of_their_own() {
    // What a host alarm (SPEC 10) or a monitored job's overdue alarm (SPEC 9) looks like here.
    let flakes = examples();
    let (mut alarms, _) = desired_alarms(&flakes, Some(REGION));
    let mut foreign = alarms[0].clone();
    foreign.config.name = "FL-host-status-check".to_string();
    foreign.config.namespace = "AWS/EC2".to_string();
    // (the host-alarms example already draws StatusCheckFailed_System)
    foreign.config.metric_name = "StatusCheckFailed_Instance".to_string();
    foreign.config.dimensions = [("InstanceId".to_string(), "i-0abc".to_string())].into();
    foreign.config.comparison = "GreaterThanOrEqualToThreshold".to_string();
    foreign.config.threshold = 1.0;
    alarms.push(foreign.clone());
    // An anomaly band (SPEC 10) has no threshold to draw.
    foreign.config.name = "FL-host-status-band".to_string();
    foreign.config.comparison = "LessThanLowerOrGreaterThanUpperThreshold".to_string();
    alarms.push(foreign);
    let body = body(&dashboard_input(&flakes, &alarms, "web-1", Some(REGION)), Some(&account()));
    let graph = graph(&body, "StatusCheckFailed_Instance (AWS/EC2)");
    assert_eq!(graph["properties"]["metrics"], json!([["AWS/EC2", "StatusCheckFailed_Instance", "InstanceId", "i-0abc"]]));
    let lines = graph["properties"]["annotations"]["horizontal"].as_array().unwrap();
    assert_eq!((lines.len(), lines[0]["fill"].as_str()), (1, Some("above")), "{lines:?}");
}

#[test]
fn without_the_account_alarms_are_not_listed_and_bodies_compare_by_value() {
    let flakes = examples();
    let (alarms, _) = desired_alarms(&flakes, Some(REGION));
    let input = dashboard_input(&flakes, &alarms, "web-1", Some(REGION));
    let without = body(&input, None);
    assert!(widgets(&without).iter().all(|widget| widget["type"] != "alarm"));
    let with = body(&input, Some(&account()));
    assert!(!same_body(&with.json, &without.json));
    // Another JSON writer may spell 90.0 as 90: still the same dashboard.
    let respelled: Value = serde_json::from_str(&with.text().replace("90.0", "90")).unwrap();
    assert!(with.text().contains("90.0") && same_body(&with.json, &respelled));
    assert_eq!(
        Account::of_arn("arn:aws-cn:cloudwatch:cn-north-1:123:alarm:a:b"),
        Some(Account { partition: "aws-cn".into(), id: "123".into() })
    );
    assert_eq!(Account::of_arn("not an arn"), None);
}

mod reconcile {
    use std::time::Duration;

    use super::*;
    use crate::alarms::{ReconcileConfig, Reconciler, Scope};
    use crate::cloudwatch::fake::{FakeCloudWatch, Operation};
    use crate::cloudwatch::{CallError, ErrorKind};

    fn quick() -> ReconcileConfig {
        ReconcileConfig {
            backoff_min: Duration::from_millis(1),
            throttled_backoff_max: Duration::from_millis(5),
            ..ReconcileConfig::default()
        }
    }

    fn keeper(fake: &FakeCloudWatch, state: &Path, name: Option<&str>) -> DashboardReconciler<FakeCloudWatch> {
        let target = name.map(|name| Target { name: name.to_string(), region: REGION.to_string() });
        DashboardReconciler::new(Arc::new(fake.clone()), state, target, quick())
    }

    /// Reconciles the examples' alarms, then the dashboard with `keeper`, as the daemon's loop does.
    async fn pass_with(fake: &FakeCloudWatch, state: &Path, keeper: &DashboardReconciler<FakeCloudWatch>) -> DashboardApplied {
        let flakes = examples();
        let (alarms, _) = desired_alarms(&flakes, Some(REGION));
        let alarm_reconciler = Reconciler::new(
            Arc::new(fake.clone()),
            crate::alarms::ManagedFile::new(state),
            quick(),
            Arc::new(crate::metrics::Metrics::new()),
        );
        alarm_reconciler.reconcile(&alarms, &Scope::all(false, flakes.len(), Vec::new())).await.unwrap();
        let input = dashboard_input(&flakes, &alarms, "web-1", Some(REGION));
        keeper.reconcile(&input, &alarms, true).await.unwrap()
    }

    /// One pass with a keeper of its own (a restarted daemon, or a changed --dashboard).
    async fn pass(fake: &FakeCloudWatch, state: &Path, name: Option<&str>) -> DashboardApplied {
        pass_with(fake, state, &keeper(fake, state, name)).await
    }

    #[tokio::test]
    async fn creates_then_writes_nothing_then_undoes_a_hand_edit() {
        let (fake, state) = (FakeCloudWatch::new(), tempfile::tempdir().unwrap());
        let daemon = keeper(&fake, state.path(), Some("snowflake-web-1"));
        let applied = pass_with(&fake, state.path(), &daemon).await;
        assert!(applied.created && applied.failures.is_empty(), "{applied:?}");
        let stored: Value = serde_json::from_str(&fake.dashboard(REGION, "snowflake-web-1").unwrap()).unwrap();
        let flakes = examples();
        let (alarms, _) = desired_alarms(&flakes, Some(REGION));
        let fake_account = Account { partition: "aws".to_string(), id: "000000000000".to_string() };
        let expected = body(&dashboard_input(&flakes, &alarms, "web-1", Some(REGION)), Some(&fake_account));
        assert_eq!(stored, expected.json, "the alarm widget lists the alarms by the ARNs CloudWatch gave them");

        let describes = fake.calls(Operation::DescribeAlarms);
        let applied = pass_with(&fake, state.path(), &daemon).await;
        assert_eq!(applied.writes(), 0, "{applied:?}");
        assert_eq!(fake.calls(Operation::PutDashboard), 1);
        assert_eq!(fake.calls(Operation::DescribeAlarms) - describes, 1, "the alarms' own; the account is known by now");

        fake.insert_dashboard(
            REGION,
            "snowflake-web-1",
            r#"{"widgets":[{"type":"text","x":0,"y":0,"width":6,"height":2,"properties":{"markdown":"mine now"}}]}"#,
        );
        let applied = pass_with(&fake, state.path(), &daemon).await;
        assert!(applied.updated, "{applied:?}");
        assert_eq!(serde_json::from_str::<Value>(&fake.dashboard(REGION, "snowflake-web-1").unwrap()).unwrap(), stored);
    }

    #[tokio::test]
    async fn a_rename_or_a_removed_flag_deletes_only_what_this_host_created() {
        let (fake, state) = (FakeCloudWatch::new(), tempfile::tempdir().unwrap());
        fake.insert_dashboard(REGION, "someone-elses", r#"{"widgets":[]}"#);
        pass(&fake, state.path(), Some("old-name")).await;
        let applied = pass(&fake, state.path(), Some("new-name")).await;
        assert_eq!((applied.created, applied.deleted), (true, 1), "{applied:?}");
        assert_eq!(fake.dashboard_names(REGION), ["new-name", "someone-elses"]);

        // A dashboard this host did not create is corrected when named, but never deleted.
        let applied = pass(&fake, state.path(), Some("someone-elses")).await;
        assert_eq!((applied.updated, applied.deleted), (true, 1), "{applied:?}");
        let applied = pass(&fake, state.path(), None).await;
        assert_eq!(applied.writes(), 0, "{applied:?}");
        assert_eq!(fake.dashboard_names(REGION), ["someone-elses"]);
    }

    #[tokio::test]
    async fn nothing_is_written_or_deleted_while_the_flakes_are_missing() {
        let (fake, state) = (FakeCloudWatch::new(), tempfile::tempdir().unwrap());
        pass(&fake, state.path(), Some("kept")).await;
        let empty = dashboard_input(&[], &[], "web-1", Some(REGION));
        let plan = keeper(&fake, state.path(), None).plan(&empty, &[], false).await.unwrap();
        assert!(plan.render().contains("left as they are"), "{}", plan.render());
        let applied = keeper(&fake, state.path(), Some("other")).reconcile(&empty, &[], false).await.unwrap();
        assert_eq!(applied.writes(), 0);
        assert_eq!(fake.dashboard_names(REGION), ["kept"]);
    }

    #[tokio::test]
    async fn throttled_calls_are_retried_and_plan_says_what_it_would_do() {
        let (fake, state) = (FakeCloudWatch::new(), tempfile::tempdir().unwrap());
        let throttled = CallError::new(ErrorKind::Throttling, Some("Throttling"), "Rate exceeded");
        fake.fail_next(Operation::GetDashboard, 3, throttled.clone());
        fake.fail_next(Operation::PutDashboard, 3, throttled);
        let flakes = examples();
        let (alarms, _) = desired_alarms(&flakes, Some(REGION));
        let input = dashboard_input(&flakes, &alarms, "web-1", Some(REGION));
        let plan = keeper(&fake, state.path(), Some("d")).plan(&input, &alarms, true).await.unwrap();
        // Before the alarms exist their ARNs are unknown, so the plan has no alarm widget yet.
        let widgets = format!("+ create dashboard d (eu-west-1): {} widgets", 1 + input.graphs.len());
        assert!(plan.render().starts_with(&widgets), "{}", plan.render());
        let applied = pass(&fake, state.path(), Some("d")).await;
        assert!(applied.created, "{applied:?}");
        assert_eq!(fake.calls(Operation::PutDashboard), 4);
        let plan = keeper(&fake, state.path(), Some("e")).plan(&input, &alarms, true).await.unwrap();
        assert!(
            plan.render().contains("- delete dashboard d (eu-west-1)  [this host created it; --dashboard is now e]"),
            "{}",
            plan.render()
        );
    }
}

#[test]
fn multi_metric_flakes_a_search_cannot_tell_apart_share_one_graph() {
    let multi = |name: &str, dimensions: Value, limit: f64| {
        flake(json!({"flakeName": name, "flakeCronstring": "* * * * *", "flakeCommand": "echo '{}'", "flakeOutput": "json",
                     "flakeMetricNamespace": "Multi", "flakeDimensions": dimensions,
                     "flakeAnnotations": [{"label": format!("{name} limit"), "value": limit}]}))
    };
    let flakes = vec![
        multi("nginx", json!({"Host": "web-1"}), 1.0),
        multi("json", json!({"Host": "web-1"}), 2.0),
        multi("redis", json!({"Host": "web-1", "Role": "cache"}), 3.0),
    ];
    let body = generate(&flakes);
    let shared = graph(&body, "json, nginx (every metric, Multi)");
    let limits: Vec<&str> =
        shared["properties"]["annotations"]["horizontal"].as_array().unwrap().iter().map(|line| line["label"].as_str().unwrap()).collect();
    assert_eq!(limits, ["nginx limit", "json limit"], "both flakes' limits, by value");
    let own = graph(&body, "redis (every metric, Multi)");
    let expression = own["properties"]["metrics"][0][0]["expression"].as_str().unwrap();
    assert!(expression.contains("\"Role\"=\"cache\""), "{expression}");
    let searches =
        widgets(&body).iter().filter(|widget| widget["properties"]["title"].as_str().is_some_and(|t| t.contains("every metric"))).count();
    assert_eq!(searches, 2);
}
