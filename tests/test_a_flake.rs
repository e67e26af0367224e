//! `test-a-flake.sh`: `--local` runs the same `snowflake once` path as the image, and Docker
//! mode hands credentials over by name only (checked with a stand-in `docker` on PATH, since no
//! Docker engine runs on the test machines).

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use common::{endpoint, repo_path, run, with_aws};

fn script() -> Command {
    let mut command = Command::new(repo_path("test-a-flake.sh"));
    command.env("SNOWFLAKE_BIN", env!("CARGO_BIN_EXE_snowflake")).env("SNOWFLAKE_TIMEZONE", "UTC");
    command
}

#[test]
fn local_dry_run_runs_the_example_flake() {
    let logs = tempfile::tempdir().unwrap();
    let (code, stdout, stderr) = run(script().args(["--local", "--dry-run", "example-hourly"]).env("SNOWFLAKE_LOG_DIR", logs.path()));
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("example-hourly: ok value="), "{stdout}");
    assert!(stdout.contains("\"dryRun\":\"PutMetricData\""), "{stdout}");
    assert!(logs.path().join("example-hourly.log").exists());
}

#[test]
fn local_publishes_to_cloudwatch() {
    let logs = tempfile::tempdir().unwrap();
    let (code, stdout, stderr) =
        run(with_aws(&mut script(), &endpoint()).args(["--local", "example-per-host"]).env("SNOWFLAKE_LOG_DIR", logs.path()));
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("published: 1 of 1 value(s) in 1 PutMetricData call(s)"), "{stdout}");
}

#[test]
fn unknown_options_are_usage_errors() {
    let (code, _, stderr) = run(script().arg("--frobnicate"));
    assert_eq!(code, 2);
    assert!(stderr.contains("unknown option --frobnicate"), "{stderr}");
}

#[test]
fn docker_mode_builds_then_passes_credentials_by_name_only() {
    let bin = tempfile::tempdir().unwrap();
    let record = bin.path().join("docker-calls");
    let docker = bin.path().join("docker");
    std::fs::write(
        &docker,
        format!("#!/bin/sh\nfor a in \"$@\"; do printf '%s\\n' \"$a\"; done >> {}\necho --- >> {}\n", record.display(), record.display()),
    )
    .unwrap();
    std::fs::set_permissions(&docker, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", bin.path().display(), std::env::var("PATH").unwrap());
    let (code, stdout, stderr) = run(script()
        .args(["my flake; rm -rf /"])
        .env("PATH", path)
        .env("HOME", bin.path())
        .env("AWS_ACCESS_KEY_ID", "AKIAEXAMPLEKEYID")
        .env("AWS_SECRET_ACCESS_KEY", "very/secret+key")
        .env("AWS_REGION", "eu-west-1")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_PROFILE"));
    assert_eq!(code, 0, "{stdout}{stderr}");
    let calls = std::fs::read_to_string(&record).unwrap();
    let calls: Vec<Vec<&str>> = calls.split("---\n").filter(|call| !call.is_empty()).map(|call| call.lines().collect()).collect();
    assert_eq!(calls[0], ["build", "--tag", "specialsnowflake:test", "."]);
    let run_args = &calls[1];
    assert_eq!(&run_args[..2], ["run", "--rm"]);
    for name in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION"] {
        assert!(run_args.windows(2).any(|pair| pair == ["--env", name]), "{name} passed by name: {run_args:?}");
    }
    assert!(!run_args.iter().any(|arg| arg.contains("very/secret+key") || arg.contains("AKIAEXAMPLEKEYID")), "no values: {run_args:?}");
    assert!(!run_args.contains(&"AWS_SESSION_TOKEN"), "unset variables are not passed");
    assert_eq!(run_args[run_args.len() - 4..], ["snowflake", "once", "--", "my flake; rm -rf /"], "the pattern is one argument");
}
