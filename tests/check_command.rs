//! `snowflake check`: every malformed file of the corpus is reported with its own field and
//! message, valid files are reported valid, and the exit code says whether all were valid.

mod common;

use common::{repo_path, run, snowflake};

/// (file, field, part of the message) for every file of `tests/fixtures/malformed`.
const EXPECTED: &[(&str, &str, &str)] = &[
    ("alarm-bad-arn", "flakeAlarms[0].alarmEndpoints.ok", "is not an action ARN"),
    ("alarm-bad-operator", "flakeAlarms[0].alarmOperator", "\"=>\" is not a comparison"),
    ("alarm-bad-statistic", "flakeAlarms[0].alarmStatistic", "\"Median\" is not a statistic"),
    ("alarm-bad-treat-missing", "flakeAlarms[0].alarmTreatMissingData", "not a missing-data treatment"),
    ("alarm-datapoints-over-periods", "flakeAlarms[0].alarmDatapoints", "must be at most alarmPeriods"),
    ("alarm-duplicate-name", "flakeAlarms[1].alarmName", "declared twice"),
    ("alarm-missing-threshold", "flakeAlarms[0].alarmThreshold", "is required"),
    ("alarm-name-too-long", "flakeAlarms[0].alarmName", "would be 273 characters"),
    ("alarm-not-object", "flakeAlarms[0]", "must be an object"),
    ("alarm-period-45", "flakeAlarms[0].alarmPeriodLength", "45 is not a valid period: use 10, 20, 30 or a multiple of 60"),
    ("alarm-reserved-tag", "flakeAlarms[0].alarmTags.aws:owner", "reserved \"aws:\""),
    ("alarm-six-arns", "flakeAlarms[0].alarmEndpoints.alarm", "has 6 actions; CloudWatch allows at most 5"),
    ("alarm-threshold-not-number", "flakeAlarms[0].alarmThreshold", "must be a number"),
    ("alarm-window-over-a-day", "flakeAlarms[0].alarmPeriods", "= 90000 s, over CloudWatch's limit of 86400 s"),
    ("alarms-not-list", "flakeAlarms", "must be a list"),
    ("alarm-rule-unknown-name", "flakeAlarms[1].alarmRule", "alarm \"mute\": names \"maintenance\", which this flake does not declare"),
    ("alarm-rule-cycle", "flakeAlarms[1].alarmRule", "alarm \"loop\": the rules form a cycle: loop -> loop"),
    ("alarm-math-eleven-metrics", "flakeAlarms[1].alarmMetrics", "has 11 metrics; a metric-math alarm uses 1 to 10"),
    ("alarm-band-with-threshold", "flakeAlarms[1].alarmThreshold", "does not apply to an anomaly-band alarm"),
    ("alarm-endpoint-not-arn", "flakeAlarms[1].alarmEndpoints.alarm", "\"recover\" is not an action ARN"),
    ("alarms-flake-with-command", "flakeCommand", "an alarms flake runs nothing"),
    ("bad-json-trailing-comma", "file", "invalid JSON at line 4, column 1: trailing comma"),
    ("bad-json-unquoted-key", "file", "invalid JSON at line 2, column 3"),
    ("bad-region", "flakeRegion", "not an AWS region name"),
    ("bad-type", "flakeType", "use \"metric\", \"job\" or \"scrape\""),
    ("bad-unit", "flakeUnit", "\"Secs\" is not a CloudWatch unit"),
    ("cron-bad-macro", "flakeCronstring", "not a schedule macro"),
    ("cron-bad-zone", "flakeCronstring", "\"Mars/Base\" is not a time zone"),
    ("cron-every-millis", "flakeCronstring", "unknown unit \"ms\""),
    ("cron-out-of-range", "flakeCronstring", "not a valid crontab schedule"),
    ("cron-six-fields", "flakeCronstring", "has 6 fields"),
    ("dimensions-not-object", "flakeDimensions", "must be an object"),
    ("duplicate-of-valid", "flakeName", "duplicate flakeName \"corpus-valid\""),
    ("empty-command", "flakeCommand", "is empty"),
    ("enabled-not-bool", "flakeEnabled", "must be true or false"),
    ("environment-not-object", "flakeEnvironment", "must be an object"),
    ("header-bad-name", "flakeHeaders.Bad Header", "is not an HTTP header name"),
    ("many-problems", "flakeUnit", "\"Secs\" is not a CloudWatch unit"),
    ("max-series-zero", "flakeMaxSeries", "0 is out of range"),
    ("metrics-bad-regex", "flakeMetrics.include[0]", "\"node_(cpu\" is not a regular expression"),
    ("missing-command", "flakeCommand", "is required"),
    ("missing-cronstring", "flakeCronstring", "is required"),
    ("missing-name", "flakeName", "is required"),
    ("multi-metric-alarm", "flakeAlarms[0]", "say which one the alarm watches with alarmMetricName"),
    ("name-path-traversal", "flakeName", "\"../../etc/x\" is not a valid flake name"),
    ("name-with-dotdot", "flakeName", "\"a..b\" is not a valid flake name"),
    ("name-with-slash", "flakeName", "\"a/b\" is not a valid flake name"),
    ("name-with-space", "flakeName", "\"disk free\" is not a valid flake name"),
    ("name-wrong-type", "flakeName", "must be a string, got 42"),
    ("namespace-aws", "flakeMetricNamespace", "reserved for AWS services"),
    ("namespace-missing", "flakeMetricNamespace", "is required"),
    ("not-an-object", "file", "must hold one JSON object"),
    ("output-unknown", "flakeOutput", "\"xml\" is not an output format"),
    ("scope-cluster-reboot", "flakeScope", "\"cluster\" with flakeCronstring \"@reboot\", which would run nowhere"),
    ("scope-unknown", "flakeScope", "\"everywhere\"; use \"host\" (every daemon runs it) or \"cluster\""),
    ("scrape-bad-url", "flakeUrl", "must start with http:// or https://"),
    ("scrape-with-command", "flakeCommand", "a scrape flake GETs flakeUrl"),
    ("storage-resolution-30", "flakeStorageResolution", "30 is not a storage resolution"),
    ("timeout-negative", "flakeTimeout", "out of range"),
    ("timeout-not-a-number", "flakeTimeout", "must be a number"),
    ("too-many-dimensions", "flakeDimensions", "has 31 dimensions"),
    ("unknown-placeholder", "flakeAlarms[0].alarmName", "${hostnme} is not a known placeholder"),
    (
        "unresolvable-aws-placeholder",
        "flakeDimensions.Instance",
        "${aws:InstanceId}: the instance metadata service (IMDSv2) did not answer",
    ),
    (
        "unresolvable-env-placeholder",
        "flakeDimensions.Stage",
        "${env:SNOWFLAKE_CORPUS_SURELY_UNSET}: environment variable SNOWFLAKE_CORPUS_SURELY_UNSET is not set",
    ),
];

#[test]
fn every_malformed_file_is_reported_with_its_field_and_reason() {
    let dir = repo_path("tests/fixtures/malformed");
    // --resolve: the two unresolvable-placeholder files are errors here, as in the daemon.
    let (code, stdout, stderr) = run(off_ec2(&mut snowflake()).args(["check", "--resolve"]).arg(&dir));
    assert_eq!(code, 1, "check must fail on the corpus\n{stderr}");

    let files = std::fs::read_dir(&dir).unwrap().count();
    assert!(files >= 30, "the corpus must hold at least 30 files, has {files}");
    assert_eq!(EXPECTED.len() + 1, files, "every malformed file needs an expectation (plus corpus-valid.json)");

    for (file, field, message) in EXPECTED {
        let prefix = format!("{}/{file}.json: {field}: ", dir.display());
        let found = stdout.lines().any(|line| line.starts_with(&prefix) && line.contains(message));
        assert!(found, "expected a line starting {prefix:?} containing {message:?}; check printed:\n{stdout}");
        let ok_line = format!("{}/{file}.json: ok", dir.display());
        assert!(!stdout.contains(&ok_line), "{file} must not be reported valid");
    }
    assert!(stderr.contains(&format!("{files} file(s) checked: 1 valid, {} invalid", files - 1)), "{stderr}");
    // A bad alarm is left out; the flake and its good alarm go on.
    for file in
        ["alarm-rule-unknown-name", "alarm-rule-cycle", "alarm-math-eleven-metrics", "alarm-band-with-threshold", "alarm-endpoint-not-arn"]
    {
        let line = format!("{}/{file}.json: invalid alarms left out; flake {file} and its other alarms run", dir.display());
        assert!(stdout.contains(&line), "{line}\n{stdout}");
    }
}

/// `command` on a host without instance metadata: the IMDS endpoint is a closed local port, so
/// the test never reaches a real metadata service (or waits on 169.254.169.254).
fn off_ec2(command: &mut std::process::Command) -> &mut std::process::Command {
    let closed = common::free_port();
    command
        .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", format!("http://127.0.0.1:{closed}"))
        .env_remove("AWS_EC2_METADATA_DISABLED")
        .env_remove("SNOWFLAKE_CORPUS_SURELY_UNSET")
}

/// SPEC 18: `check` judges files for wherever they will run. Off EC2, the README's own
/// `snowflake check flakes/` passes, with a warning naming the placeholder and the reason;
/// `--resolve` judges as the daemon here would and fails.
#[test]
fn shipped_examples_pass_off_ec2_and_fail_with_resolve() {
    let (code, stdout, stderr) = run(off_ec2(&mut snowflake()).arg("check").arg(repo_path("flakes")));
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert_eq!(stdout.lines().filter(|line| line.contains(": ok (")).count(), example_count(), "{stdout}");
    let warning = stdout
        .lines()
        .find(|line| {
            line.contains("example-host-alarms.flake.json: flakeAlarms[0].alarmDimensions.InstanceId: warning: ${aws:InstanceId}: ")
        })
        .unwrap_or_else(|| panic!("a warning naming the field and the placeholder: {stdout}"));
    assert!(warning.contains("the instance metadata service (IMDSv2) did not answer"), "the reason: {warning}");
    assert!(stdout.contains("flakeAlarms[0].alarmEndpoints.alarm: warning: ${aws:Region}: "), "{stdout}");
    assert!(stderr.contains("0 invalid"), "{stderr}");

    let (code, stdout, stderr) = run(off_ec2(&mut snowflake()).args(["check", "--resolve"]).arg(repo_path("flakes")));
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(stdout.contains("flakeAlarms[0].alarmDimensions.InstanceId: ${aws:InstanceId}: the instance metadata service"), "{stdout}");
    assert!(stdout.contains("example-host-alarms.flake.json: invalid alarms left out"), "{stdout}");
}

/// An unset variable is a warning without --resolve; unknown and malformed placeholders stay errors.
#[test]
fn unset_variables_warn_but_unknown_placeholders_stay_errors() {
    let dir = repo_path("tests/fixtures/malformed");
    let (code, stdout, _) = run(off_ec2(&mut snowflake()).arg("check").arg(dir.join("unresolvable-env-placeholder.json")));
    assert_eq!(code, 0, "{stdout}");
    assert!(
        stdout.contains("flakeDimensions.Stage: warning: ${env:SNOWFLAKE_CORPUS_SURELY_UNSET}: environment variable SNOWFLAKE_CORPUS_SURELY_UNSET is not set"),
        "{stdout}"
    );
    let (code, stdout, _) = run(off_ec2(&mut snowflake()).arg("check").arg(dir.join("unresolvable-aws-placeholder.json")));
    assert_eq!(code, 0, "{stdout}");
    assert!(stdout.contains("flakeDimensions.Instance: warning: ${aws:InstanceId}: "), "{stdout}");
    let (code, stdout, _) = run(off_ec2(&mut snowflake()).arg("check").arg(dir.join("unknown-placeholder.json")));
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("flakeAlarms[0].alarmName: ${hostnme} is not a known placeholder"), "{stdout}");
    let malformed = tempfile::tempdir().unwrap();
    let file = malformed.path().join("open.json");
    std::fs::write(
        &file,
        r#"{"flakeName": "open", "flakeCronstring": "* * * * *", "flakeCommand": "echo 1", "flakeMetricNamespace": "N", "flakeDimensions": {"Stage": "${env:STAGE"}}"#,
    )
    .unwrap();
    let (code, stdout, _) = run(off_ec2(&mut snowflake()).arg("check").arg(&file));
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("flakeDimensions.Stage: ") && stdout.contains("never closes it"), "{stdout}");
}

#[test]
fn the_valid_file_beside_broken_ones_is_reported_valid_with_its_warning() {
    let dir = repo_path("tests/fixtures/malformed");
    let (_, stdout, _) = run(snowflake().arg("check").arg(&dir));
    let path = format!("{}/corpus-valid.json", dir.display());
    assert!(stdout.contains(&format!("{path}: ok (corpus-valid)")), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "{path}: flakeConstring: warning: unknown key \"flakeConstring\" is ignored; did you mean \"flakeCronstring\"?"
        )),
        "{stdout}"
    );
}

#[test]
fn a_file_with_many_problems_reports_them_all() {
    let file = repo_path("tests/fixtures/malformed/many-problems.json");
    let (code, stdout, _) = run(snowflake().arg("check").arg(&file));
    assert_eq!(code, 1);
    let problems: Vec<&str> = stdout.lines().collect();
    assert_eq!(problems.len(), 3, "{stdout}");
    assert!(problems[0].contains(": flakeName: "), "{stdout}");
    assert!(problems[1].contains(": flakeUnit: "), "{stdout}");
    assert!(problems[2].contains(": flakeAlarms[0].alarmOperator: "), "{stdout}");
}

/// How many example flakes flakes/ holds: each must check ok.
fn example_count() -> usize {
    let names = std::fs::read_dir(repo_path("flakes")).unwrap().map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned());
    names.filter(|name| name.ends_with(".json")).count()
}

#[test]
fn shipped_examples_are_valid() {
    // The host-alarms example reads the instance id from the instance metadata service.
    let imds = common::FakeImds::start();
    let (code, stdout, stderr) = run(imds.serve(&mut snowflake()).arg("check").arg(repo_path("flakes")));
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert_eq!(stdout.lines().filter(|line| line.contains(": ok (")).count(), example_count(), "{stdout}");
    assert!(!stdout.contains("warning"), "examples should be clean: {stdout}");
}

#[test]
fn files_in_the_original_tools_format_load_unchanged() {
    let (code, stdout, stderr) = run(snowflake().arg("check").arg(repo_path("tests/fixtures/original-tool")));
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("mysql/zq-mysql-uptime.flake.json: ok (zq-mysql-uptime)"), "subdirectories are searched: {stdout}");
    assert_eq!(stdout.lines().count(), 4, "no warnings for the original format: {stdout}");
}

#[test]
fn one_broken_file_fails_the_check_but_the_others_are_still_reported() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(repo_path("flakes/example-hourly.flake.json"), dir.path().join("a.json")).unwrap();
    std::fs::write(
        dir.path().join("b.json"),
        r#"{"flakeName": "b", "flakeCronstring": "* * * *", "flakeCommand": "echo 1", "flakeMetricNamespace": "N"}"#,
    )
    .unwrap();
    std::fs::write(dir.path().join(".hidden.json"), "not even json").unwrap();
    std::fs::write(dir.path().join("notes.txt"), "not a flake").unwrap();
    let (code, stdout, _) = run(snowflake().arg("check").arg(dir.path()));
    assert_eq!(code, 1);
    assert!(stdout.contains("a.json: ok (example-hourly)"), "{stdout}");
    assert!(stdout.contains("b.json: flakeCronstring: \"* * * *\" has 4 field(s)"), "{stdout}");
    assert_eq!(stdout.lines().count(), 2, "hidden and non-JSON files are ignored: {stdout}");
}

#[test]
fn check_without_paths_uses_the_flakes_directory_and_missing_paths_fail() {
    let imds = common::FakeImds::start();
    let (code, stdout, _) = run(imds.serve(&mut snowflake()).arg("check").env("SNOWFLAKE_FLAKES", repo_path("flakes")));
    assert_eq!(code, 0);
    assert_eq!(stdout.lines().count(), example_count());
    let (code, _, stderr) = run(snowflake().arg("check").arg("/nonexistent/flakes"));
    assert_eq!(code, 1);
    assert!(stderr.contains("/nonexistent/flakes"), "{stderr}");
}

#[test]
fn next_prints_the_documented_examples() {
    let (code, stdout, _) = run(snowflake().args(["next", "0 9 * * 1-5", "--after", "2026-01-01T00:00:00Z", "--count", "5"]));
    assert_eq!(code, 0);
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        ["2026-01-01T09:00:00Z", "2026-01-02T09:00:00Z", "2026-01-05T09:00:00Z", "2026-01-06T09:00:00Z", "2026-01-07T09:00:00Z"]
    );
    let (code, stdout, _) = run(snowflake().args(["next", "30 2 * * 7", "--after", "2026-01-01T00:00:00Z", "--count", "3"]));
    assert_eq!(code, 0);
    for line in stdout.lines() {
        let day = chrono::DateTime::parse_from_rfc3339(line).unwrap();
        assert_eq!(chrono::Datelike::weekday(&day), chrono::Weekday::Sun, "{line}");
    }
    let (code, _, stderr) = run(snowflake().args(["next", "* * * * * *"]));
    assert_eq!(code, 1);
    assert!(stderr.contains("6 fields"), "{stderr}");
    let (code, _, _) = run(snowflake().args(["next", "* * * * *", "--after", "yesterday"]));
    assert_eq!(code, 2, "a malformed flag is a usage error");
}

#[test]
fn schema_is_json_schema_with_the_flake_keys() {
    let (code, stdout, _) = run(snowflake().arg("schema"));
    assert_eq!(code, 0);
    let schema: serde_json::Value = serde_json::from_str(&stdout).expect("schema is JSON");
    assert_eq!(schema["title"], "SpecialSnowflake flake file");
    assert!(schema["$schema"].as_str().unwrap().contains("json-schema.org"));
    assert!(schema["properties"]["flakeCronstring"].is_object());
}

#[test]
fn help_and_version_work_on_every_command() {
    for args in [vec!["--help"], vec!["--version"], vec!["check", "--help"], vec!["next", "--help"], vec!["schema", "--help"]] {
        let (code, stdout, _) = run(snowflake().args(&args));
        assert_eq!(code, 0, "{args:?}");
        assert!(!stdout.is_empty(), "{args:?}");
    }
    let (code, _, _) = run(snowflake().arg("frobnicate"));
    assert_eq!(code, 2);
}

#[test]
fn check_says_a_cluster_flake_runs_locally_without_a_cluster() {
    let dir = tempfile::tempdir().unwrap();
    common::write_flake(
        dir.path(),
        "shared",
        &serde_json::json!({ "flakeName": "shared", "flakeCronstring": "* * * * *", "flakeType": "job", "flakeCommand": "true", "flakeScope": "cluster" }),
    );
    let (code, stdout, stderr) = run(snowflake().env_remove("SNOWFLAKE_CLUSTER").arg("check").arg(dir.path()));
    assert_eq!(code, 0, "a warning, not an error: {stdout}{stderr}");
    assert!(stdout.contains("flakeScope") && stdout.contains("runs it locally"), "{stdout}{stderr}");
    let (code, stdout, stderr) = run(snowflake().env("SNOWFLAKE_CLUSTER", "s3://bucket/prefix").arg("check").arg(dir.path()));
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(!stdout.contains("runs it locally"), "{stdout}{stderr}");
    assert!(format!("{stdout}{stderr}").contains("0 warning(s)"), "{stdout}{stderr}");
}

#[test]
fn check_warns_that_cluster_scope_does_nothing_on_an_alarms_only_flake() {
    let dir = tempfile::tempdir().unwrap();
    common::write_flake(
        dir.path(),
        "watchers",
        &serde_json::json!({ "flakeName": "watchers", "flakeType": "alarms", "flakeScope": "cluster",
            "flakeAlarms": [{"alarmName": "slow", "alarmNamespace": "Shop", "alarmMetricName": "Latency", "alarmOperator": ">", "alarmThreshold": 1}] }),
    );
    let (code, stdout, stderr) = run(snowflake().env("SNOWFLAKE_CLUSTER", "s3://bucket/prefix").arg("check").arg(dir.path()));
    assert_eq!(code, 0, "a warning, not an error: {stdout}{stderr}");
    assert!(stdout.contains("flakeScope: warning: \"cluster\" has no effect on an alarms-only flake"), "{stdout}{stderr}");
}

#[test]
fn check_warns_of_member_specific_placeholders_in_a_cluster_flake() {
    let dir = tempfile::tempdir().unwrap();
    let flake = |scope: &str| {
        serde_json::json!({ "flakeName": "orders", "flakeCronstring": "* * * * *", "flakeCommand": "echo 1", "flakeScope": scope,
            "flakeMetricNamespace": "Shop", "flakeMetricName": "Orders", "flakeDimensions": {"Host": "${hostname}"},
            "flakeAlarms": [{"alarmName": "none-on-${aws:InstanceId}", "alarmOperator": "<", "alarmThreshold": 1}] })
    };
    common::write_flake(dir.path(), "orders", &flake("cluster"));
    let (code, stdout, stderr) = run(snowflake().env("SNOWFLAKE_CLUSTER", "s3://bucket/prefix").arg("check").arg(dir.path()));
    assert_eq!(code, 0, "warnings, not errors: {stdout}{stderr}");
    assert!(stdout.contains("flakeDimensions: warning: uses ${hostname}, which differs on each member"), "{stdout}{stderr}");
    assert!(stdout.contains("flakeAlarms: warning: uses ${aws:InstanceId}, which differs on each member"), "{stdout}{stderr}");
    common::write_flake(dir.path(), "orders", &flake("host"));
    let (_, stdout, stderr) = run(snowflake().arg("check").arg(dir.path()));
    assert!(!stdout.contains("differs on each member"), "a host flake's are its host's: {stdout}{stderr}");
}
