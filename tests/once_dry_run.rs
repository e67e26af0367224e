//! `snowflake once --dry-run`: the whole run path without AWS. Environment order, credentials,
//! secrets kept out of logs, hostile flake names, job output, and no network use at all.

mod common;

use common::{Workspace, run};
use serde_json::json;

/// A dry run with AWS pointed at a closed port and no credentials: any AWS call would fail.
fn dry_once(workspace: &Workspace, pattern: &str) -> (i32, String, String) {
    run(workspace
        .snowflake()
        .args(["--dry-run", "once", pattern])
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env("AWS_REGION", "eu-central-1"))
}

#[test]
fn dry_run_prints_the_batch_and_makes_no_network_call() {
    let workspace = Workspace::new();
    workspace.add(
        "m",
        json!({"flakeName": "m", "flakeCronstring": "@hourly", "flakeCommand": "echo 2.5", "flakeUnit": "Percent", "flakeMetricNamespace": "Dry/Run",
               "flakeAlarms": [{"alarmName": "high", "alarmThreshold": 90, "alarmOperator": ">"}]}),
    );
    let (code, stdout, stderr) = dry_once(&workspace, "m");
    assert_eq!(code, 0, "{stdout}{stderr}");
    let line = stdout.lines().find(|line| line.starts_with('{')).expect("a JSON line");
    let batch: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(batch["dryRun"], "PutMetricData");
    assert_eq!(batch["region"], "eu-central-1");
    assert_eq!(batch["namespace"], "Dry/Run");
    assert_eq!(batch["metricData"][0]["value"], 2.5);
    assert_eq!(batch["metricData"][0]["unit"], "Percent");
    assert!(stdout.contains("printed (dry run): 1 of 1 value(s) in 1 PutMetricData call(s)"), "{stdout}");
    let alarm = stdout.lines().find(|line| line.contains("\"dryRun\":\"PutMetricAlarm\"")).expect("the alarm change, printed");
    let alarm: serde_json::Value = serde_json::from_str(alarm).unwrap();
    assert_eq!(alarm["alarm"]["name"], "FL-m-high");
    assert_eq!(alarm["alarm"]["threshold"], 90.0);
    assert!(stdout.contains("alarms (dry run, printed above, nothing changed): 1 created"), "{stdout}");
    assert!(!stderr.contains("INFO"), "one-shot commands log warnings only by default: {stderr}");
}

#[test]
fn environment_is_daemon_then_creds_then_flake_then_snowflake_variables() {
    let workspace = Workspace::new();
    std::fs::write(
        workspace.root.path().join("creds.json"),
        r#"{"LAYER_A": "from-creds", "LAYER_B": "from-creds", "DB_PASSWORD": "hunter2-very-secret"}"#,
    )
    .unwrap();
    // Written to a file: the flake log would (rightly) mask the creds.json value.
    let seen = workspace.root.path().join("seen-environment");
    workspace.add(
        "env",
        json!({
            "flakeName": "env",
            "flakeCronstring": "@daily",
            "flakeType": "job",
            "flakeCommand": format!("echo \"$LAYER_A $LAYER_B $LAYER_C $SNOWFLAKE_FLAKE_NAME $SNOWFLAKE_SCHEDULED_TIME\" > {}", seen.display()),
            "flakeEnvironment": {"LAYER_B": "from-flake", "SNOWFLAKE_FLAKE_NAME": "overridden"}
        }),
    );
    let (code, stdout, stderr) =
        run(workspace.snowflake().args(["--dry-run", "once", "env"]).env("LAYER_A", "from-daemon").env("LAYER_C", "from-daemon"));
    assert_eq!(code, 0, "{stdout}{stderr}");
    let output = std::fs::read_to_string(&seen).unwrap();
    let output = output.trim_end();
    let words: Vec<&str> = output.split(' ').collect();
    assert_eq!(&words[..4], ["from-creds", "from-flake", "from-daemon", "env"], "{output}");
    assert!(chrono::DateTime::parse_from_rfc3339(words[4]).is_ok(), "SNOWFLAKE_SCHEDULED_TIME is RFC 3339: {output}");
    assert!(words[4].ends_with('Z'), "in UTC: {output}");
}

#[test]
fn a_secret_the_command_prints_never_reaches_a_log() {
    let workspace = Workspace::new();
    std::fs::write(workspace.root.path().join("creds.json"), r#"{"DB_PASSWORD": "hunter2-very-secret"}"#).unwrap();
    workspace.add(
        "leaky",
        json!({"flakeName": "leaky", "flakeCronstring": "@daily", "flakeCommand": "echo \"cannot log in with $DB_PASSWORD\" >&2; echo $DB_PASSWORD; exit 1", "flakeMetricNamespace": "N"}),
    );
    workspace.add(
        "leaky-job",
        json!({"flakeName": "leaky-job", "flakeCronstring": "@daily", "flakeType": "job", "flakeCommand": "echo \"pw=$DB_PASSWORD\""}),
    );
    let (code, stdout, stderr) = dry_once(&workspace, "leaky");
    assert_eq!(code, 1, "the metric run failed");
    for text in [&workspace.log_of("leaky"), &workspace.log_of("leaky-job"), &stdout, &stderr] {
        assert!(!text.contains("hunter2-very-secret"), "secret leaked into:\n{text}");
    }
    assert!(workspace.log_of("leaky").contains("cannot log in with ********"), "{}", workspace.log_of("leaky"));
    assert!(workspace.log_of("leaky-job").contains("pw=********"));
}

#[test]
fn a_non_string_credential_is_a_clear_error_without_its_value() {
    let workspace = Workspace::new();
    std::fs::write(workspace.root.path().join("creds.json"), r#"{"PIN": 48151623}"#).unwrap();
    workspace.add("a", json!({"flakeName": "a", "flakeCronstring": "@daily", "flakeCommand": "echo 1", "flakeMetricNamespace": "N"}));
    let (code, _, stderr) = dry_once(&workspace, "a");
    assert_eq!(code, 1);
    assert!(stderr.contains("creds.json") && stderr.contains("\"PIN\" must be a string"), "{stderr}");
    assert!(!stderr.contains("48151623"), "{stderr}");
}

#[test]
fn a_path_traversal_name_never_runs_and_writes_nothing_outside_the_log_dir() {
    let workspace = Workspace::new();
    let marker = workspace.root.path().join("ran");
    workspace.add(
        "evil",
        json!({"flakeName": "../../etc/x", "flakeCronstring": "@daily", "flakeCommand": format!("touch {}; echo 1", marker.display()), "flakeMetricNamespace": "N"}),
    );
    workspace.add("good", json!({"flakeName": "good", "flakeCronstring": "@daily", "flakeCommand": "echo 1", "flakeMetricNamespace": "N"}));
    let (code, stdout, stderr) = dry_once(&workspace, ".json");
    assert_eq!(code, 0, "the valid flake still runs: {stdout}{stderr}");
    assert!(stderr.contains("evil.json: flakeName: \"../../etc/x\" is not a valid flake name"), "{stderr}");
    assert!(!marker.exists(), "the invalid flake's command ran");
    let entries: Vec<String> =
        std::fs::read_dir(workspace.logs()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert_eq!(entries, ["good.log"]);
    assert!(!workspace.root.path().join("etc").exists());
}

#[test]
fn rejected_and_failed_runs_are_logged_with_their_reason_and_fail_once() {
    let workspace = Workspace::new();
    workspace.add("seven-then-three", json!({"flakeName": "seven-then-three", "flakeCronstring": "@daily", "flakeCommand": "echo 7; exit 3", "flakeMetricNamespace": "N"}));
    workspace.add(
        "words",
        json!({"flakeName": "words", "flakeCronstring": "@daily", "flakeCommand": "echo 42 ms", "flakeMetricNamespace": "N"}),
    );
    workspace.add("slow", json!({"flakeName": "slow", "flakeCronstring": "@daily", "flakeCommand": "sleep 30", "flakeTimeout": 1, "flakeMetricNamespace": "N"}));
    let (code, stdout, _) = dry_once(&workspace, "");
    assert_eq!(code, 1);
    assert!(stdout.contains("seven-then-three: failed: exit status 3"), "{stdout}");
    assert!(stdout.contains("words: rejected: output is not a single decimal number (it holds 2 words)"), "{stdout}");
    assert!(stdout.contains("slow: timeout: timed out after 1s"), "{stdout}");
    assert!(stdout.contains("printed (dry run): 0 of 0 value(s)"), "nothing published: {stdout}");
    let log = workspace.log_of("seven-then-three");
    assert!(log.contains(" failed ") && log.contains("reason=\"exit status 3\"") && log.contains("stdout=\"7\\n\""), "{log}");
    assert!(workspace.log_of("words").contains("stdout=\"42 ms\\n\""), "{}", workspace.log_of("words"));
}

#[test]
fn a_job_succeeds_by_exit_status_and_publishes_only_a_single_number() {
    let workspace = Workspace::new();
    workspace.add("talky", json!({"flakeName": "talky", "flakeCronstring": "@daily", "flakeType": "job", "flakeCommand": "echo step one; echo step two", "flakeMetricNamespace": "N"}));
    workspace.add("counting", json!({"flakeName": "counting", "flakeCronstring": "@daily", "flakeType": "job", "flakeCommand": "echo 12", "flakeMetricNamespace": "N"}));
    let (code, stdout, _) = dry_once(&workspace, "");
    assert_eq!(code, 0, "{stdout}");
    assert!(stdout.contains("talky: ok ("), "{stdout}");
    assert!(stdout.contains("counting: ok value=12"), "{stdout}");
    assert!(stdout.contains("1 of 1 value(s)"), "{stdout}");
    assert!(workspace.log_of("talky").contains("  stdout| step two"));
}

#[test]
fn with_a_cluster_once_and_plan_leave_a_cluster_flakes_alarms_to_the_cluster() {
    let workspace = Workspace::new();
    let alarm = json!([{"alarmName": "high", "alarmThreshold": 9, "alarmOperator": ">"}]);
    workspace.add(
        "shared",
        json!({"flakeName": "shared", "flakeCronstring": "* * * * *", "flakeCommand": "echo 3", "flakeScope": "cluster",
               "flakeMetricNamespace": "Dry/Cluster", "flakeAlarms": alarm}),
    );
    workspace.add(
        "local",
        json!({"flakeName": "local", "flakeCronstring": "* * * * *", "flakeCommand": "echo 4", "flakeMetricNamespace": "Dry/Cluster", "flakeAlarms": alarm}),
    );
    let dry = |args: &[&str], cluster: Option<&str>| {
        let mut command = workspace.snowflake();
        command.args(args).env("AWS_ENDPOINT_URL", "http://127.0.0.1:9").env("AWS_REGION", "eu-central-1");
        match cluster {
            Some(location) => command.env("SNOWFLAKE_CLUSTER", location),
            None => command.env_remove("SNOWFLAKE_CLUSTER"),
        };
        run(&mut command)
    };
    let alarm_lines = |stdout: &str| -> Vec<String> {
        let mut names: Vec<String> = stdout
            .lines()
            .filter(|line| line.contains("\"dryRun\":\"PutMetricAlarm\""))
            .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap()["alarm"]["name"].as_str().unwrap().to_string())
            .collect();
        names.sort();
        names
    };

    // Without a cluster, a cluster flake is a host flake, as in a daemon without --cluster.
    let (code, stdout, stderr) = dry(&["--dry-run", "once"], None);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert_eq!(alarm_lines(&stdout), ["FL-local-high", "FL-shared-high"], "{stdout}");
    assert!(stderr.contains("shared: flakeScope is \"cluster\" but no --cluster"), "{stderr}");

    // With one, both flakes run, but only the host flake's alarm is this host's to change.
    let (code, stdout, stderr) = dry(&["--dry-run", "once"], Some("s3://shared-bucket/fleet"));
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("shared: ok value=3") && stdout.contains("local: ok value=4"), "{stdout}");
    assert_eq!(alarm_lines(&stdout), ["FL-local-high"], "{stdout}");
    assert!(stdout.contains("shared: a cluster flake: its alarms belong to the cluster at s3://shared-bucket/fleet"), "{stdout}");

    let (code, stdout, stderr) = dry(&["--dry-run", "plan", "--cluster", "s3://shared-bucket/fleet"], None);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("+ create FL-local-high"), "{stdout}");
    assert!(!stdout.contains("FL-shared-high"), "{stdout}");
    assert!(
        stdout.contains("= shared: a cluster flake: its alarms and graphs are kept by the member of s3://shared-bucket/fleet"),
        "{stdout}"
    );
}
