//! Regression tests for issue 22 (items 1, 2, 6 and 9): hostile flake files, a damaged state
//! directory and odd exporter bodies never take the daemon down or stop the other flakes.
//!
//! The daemons here run with `--dry-run` (no AWS call) unless a test says otherwise.

mod common;

use std::time::Duration;

use common::{Daemon, Workspace, run};
use serde_json::{Value, json};

/// A flake that runs every second, to show the daemon still runs flakes.
fn canary() -> Value {
    json!({"flakeName": "canary", "flakeCronstring": "@every 1s", "flakeCommand": "echo 1", "flakeMetricNamespace": "T"})
}

/// An alarms flake with one composite whose rule is `depth` parentheses deep.
fn nested_rule(name: &str, depth: usize) -> Value {
    let rule = format!("{}ALARM(cpu){}", "(".repeat(depth), ")".repeat(depth));
    json!({"flakeName": name, "flakeType": "alarms", "flakeAlarms": [
        {"alarmName": "cpu", "alarmNamespace": "AWS/EC2", "alarmMetricName": "CPUUtilization", "alarmThreshold": 90, "alarmOperator": ">"},
        {"alarmName": "deep", "alarmRule": rule}
    ]})
}

/// An alarms flake of `length` composites, each naming the next; the last names the first when
/// `closed` (a cycle), or a metric alarm otherwise.
fn composite_chain(name: &str, length: usize, closed: bool) -> Value {
    let mut alarms: Vec<Value> = (0..length)
        .map(|index| {
            let next = if index + 1 < length {
                format!("c{}", index + 1)
            } else if closed {
                "c0".to_string()
            } else {
                "cpu".to_string()
            };
            json!({"alarmName": format!("c{index}"), "alarmRule": format!("ALARM({next})")})
        })
        .collect();
    alarms.push(json!({"alarmName": "cpu", "alarmNamespace": "AWS/EC2", "alarmMetricName": "CPUUtilization", "alarmThreshold": 90, "alarmOperator": ">"}));
    json!({"flakeName": name, "flakeType": "alarms", "flakeAlarms": alarms})
}

fn sighup(daemon: &Daemon) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(daemon.child.id() as i32), nix::sys::signal::Signal::SIGHUP).unwrap();
}

/// Runs of the canary so far, from its flake log.
fn canary_runs(workspace: &Workspace) -> usize {
    workspace.log_of("canary").lines().count()
}

/// Issue 22.1: a 3,800-deep rule passed `check` and aborted the daemon; a 100k-deep one aborted
/// `check` too. Both are now refused with file, field and the bound.
#[test]
fn deeply_nested_alarm_rules_are_refused_by_check_with_the_bound() {
    let workspace = Workspace::new();
    workspace.add("deep", nested_rule("deep", 3_800));
    workspace.add("deeper", nested_rule("deeper", 100_000));
    let (code, stdout, stderr) = run(workspace.snowflake().arg("check"));
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(!stderr.contains("overflow"), "{stderr}");
    assert!(
        stdout.contains("deep.json: flakeAlarms[1].alarmRule: \"") && stdout.contains("more than 100 levels deep"),
        "file, field and bound: {stdout}"
    );
    let deeper = stdout.lines().find(|line| line.contains("deeper.json: flakeAlarms[1].alarmRule: ")).expect("deeper.json is reported");
    assert!(deeper.contains("the rule is 200010 characters; CloudWatch allows 10240"), "{deeper}");
    assert!(deeper.len() < 400, "the rule is shortened in the message: {} bytes", deeper.len());
    assert!(stdout.contains("deep.json: invalid alarms left out; flake deep and its other alarms run"), "{stdout}");
}

/// Issue 22.1: 20,000 composites naming each other: a chain is fine, a cycle is refused with a
/// short message, and neither overflows the stack.
#[test]
fn a_chain_of_twenty_thousand_composites_is_checked_without_overflow() {
    let workspace = Workspace::new();
    workspace.add("chain", composite_chain("chain", 20_000, false));
    workspace.add("ring", composite_chain("ring", 20_000, true));
    let (code, stdout, stderr) = run(workspace.snowflake().arg("check"));
    assert_eq!(code, 1, "{stderr}");
    assert!(stdout.contains("chain.json: ok (chain)"), "{}", &stdout[..stdout.len().min(2000)]);
    let cycle = stdout.lines().find(|line| line.contains("ring.json: flakeAlarms[0].alarmRule: ")).expect("the cycle is reported");
    assert!(cycle.contains("the rules form a cycle: c0 -> c1 -> c2 -> c3 -> c4 -> ... (20001 in all) ..."), "{cycle}");
    assert!(cycle.len() < 400, "one line does not grow with the file: {} bytes", cycle.len());
}

/// Issue 22.1 in the daemon: hostile rules at start and on hot reload leave their files out;
/// the daemon keeps running the other flakes.
#[test]
fn hostile_alarm_rules_leave_the_daemon_running_other_flakes() {
    let workspace = Workspace::new();
    workspace.add("canary", canary());
    workspace.add("deep", nested_rule("deep", 3_800));
    workspace.add("chain", composite_chain("chain", 20_000, false));
    let daemon = Daemon::start(workspace.snowflake().arg("--dry-run"), &workspace, &[]);
    daemon.wait_for(Duration::from_secs(30), "the canary to run", || canary_runs(&workspace) >= 2);
    assert!(daemon.log().contains("more than 100 levels deep"), "the rejection is logged: {}", daemon.log());

    workspace.add("deeper", nested_rule("deeper", 100_000));
    workspace.add("ring", composite_chain("ring", 20_000, true));
    sighup(&daemon);
    daemon.wait_for(Duration::from_secs(60), "the reload to report the new files", || {
        let log = daemon.log();
        log.contains("CloudWatch allows 10240") && log.contains("the rules form a cycle")
    });
    let before = canary_runs(&workspace);
    daemon.wait_for(Duration::from_secs(30), "the canary to go on running", || canary_runs(&workspace) >= before + 2);
    assert_eq!(daemon.get("/healthz").map(|(status, _)| status), Some(200));
    let (status, _) = daemon.stop(Duration::from_secs(30));
    assert!(status.success(), "{}", daemon_log_hint(&workspace));
}

fn daemon_log_hint(workspace: &Workspace) -> String {
    format!("canary log: {}", workspace.log_of("canary"))
}

/// A flake firing `@every <interval>`.
fn every(name: &str, interval: &str) -> Value {
    json!({"flakeName": name, "flakeCronstring": format!("@every {interval}"), "flakeCommand": "echo 1", "flakeMetricNamespace": "T"})
}

/// Issue 22.2: `next '@every 18446744073709551615s'` went backwards in time; 2^63 s divided by
/// zero. Both are refused with the bound; the bound itself still works.
#[test]
fn next_refuses_intervals_beyond_a_year() {
    for huge in ["18446744073709551615s", "9223372036854775808s", "8761h"] {
        let (code, stdout, stderr) = run(common::snowflake().args(["next", &format!("@every {huge}")]));
        assert_eq!(code, 1, "{huge}: {stdout}{stderr}");
        assert!(stdout.is_empty(), "{stdout}");
        assert!(stderr.contains("at most 8760h (365 days)"), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    let (code, stdout, _) = run(common::snowflake().args(["next", "@every 8760h", "--after", "2026-01-01T00:00:00Z", "--count", "2"]));
    assert_eq!(code, 0);
    let times: Vec<&str> = stdout.lines().collect();
    assert_eq!(times.len(), 2, "{stdout}");
    assert!(times[0] > "2026-01-01T00:00:00Z" && times[1] > times[0], "forwards in time: {stdout}");
}

/// Issue 22.2 in the daemon: at start and on hot reload, the huge intervals are refused for
/// their file; the other flakes keep running, the log does not grow, `/healthz` stays 200.
#[test]
fn huge_intervals_leave_the_daemon_running_other_flakes() {
    let workspace = Workspace::new();
    workspace.add("canary", canary());
    workspace.add("wraps", every("wraps", "18446744073709551615s"));
    let daemon = Daemon::start(workspace.snowflake().arg("--dry-run"), &workspace, &[]);
    daemon.wait_for(Duration::from_secs(30), "the canary to run", || canary_runs(&workspace) >= 2);
    assert!(daemon.log().contains("at most 8760h (365 days)"), "{}", daemon.log());

    workspace.add("zero", every("zero", "9223372036854775808s"));
    sighup(&daemon);
    daemon.wait_for(Duration::from_secs(30), "the reload to refuse zero.json", || daemon.log().matches("at most 8760h").count() >= 2);
    let before = canary_runs(&workspace);
    daemon.wait_for(Duration::from_secs(30), "the canary to go on running", || canary_runs(&workspace) >= before + 2);
    assert_eq!(daemon.get("/healthz").map(|(status, _)| status), Some(200));
    assert!(!daemon.log().contains("firing skipped"), "no spinning: {}", daemon.log().len());
    assert!(std::fs::metadata(&daemon.output).unwrap().len() < 1 << 20, "the log stays small");
    let (status, _) = daemon.stop(Duration::from_secs(30));
    assert!(status.success());
}
