//! Running commands: process groups, timeouts, bounded capture, quiet waiting.

use std::path::PathBuf;
use std::time::Duration;

use specialsnowflake::runner::{CAPTURE_LIMIT, CommandSpec, Termination, run_command};
use tokio::sync::watch;

fn spec(command: &str, timeout: Duration) -> CommandSpec {
    CommandSpec {
        command: command.to_string(),
        working_directory: PathBuf::from("/tmp"),
        environment: Vec::new(),
        timeout,
        nice: None,
        stdout_limit: CAPTURE_LIMIT,
    }
}

fn never_stop() -> watch::Receiver<bool> {
    let (sender, receiver) = watch::channel(false);
    std::mem::forget(sender);
    receiver
}

/// True while `pid` exists and is not a zombie.
fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat.rsplit(')').next().unwrap_or("").trim_start().starts_with('Z'),
        Err(_) => false,
    }
}

#[tokio::test]
async fn a_timeout_kills_the_whole_process_group_grandchildren_included() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("grandchild.pid");
    let command = format!("sleep 1000 & echo $! > {}; sleep 1000", pidfile.display());
    let outcome = run_command(&spec(&command, Duration::from_secs(1)), never_stop()).await;
    assert_eq!(outcome.termination, Termination::TimedOut);
    assert!(outcome.duration < Duration::from_secs(20), "{:?}", outcome.duration);
    let grandchild: i32 = std::fs::read_to_string(&pidfile).unwrap().trim().parse().unwrap();
    for _ in 0..50 {
        if !alive(grandchild) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("grandchild {grandchild} survived the timeout");
}

#[tokio::test]
async fn a_group_ignoring_sigterm_gets_sigkill() {
    let outcome = run_command(&spec("trap '' TERM; sleep 1000", Duration::from_millis(300)), never_stop()).await;
    assert_eq!(outcome.termination, Termination::TimedOut);
    assert!(outcome.duration >= Duration::from_secs(5), "SIGKILL follows SIGTERM after the 5 s grace: {:?}", outcome.duration);
}

#[tokio::test]
async fn ten_megabytes_on_stderr_do_not_hang_and_are_cut_at_64_kib() {
    let outcome = run_command(&spec("head -c 10000000 /dev/zero | tr '\\0' x >&2; echo 5", Duration::from_secs(30)), never_stop()).await;
    assert_eq!(outcome.termination, Termination::Exited(0));
    assert_eq!(outcome.stdout.bytes, b"5\n");
    assert_eq!(outcome.stderr.bytes.len(), CAPTURE_LIMIT);
    assert!(outcome.stderr.truncated);
    assert!(!outcome.stdout.truncated);
}

fn cpu_seconds_of_this_process() -> f64 {
    let usage = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_SELF).unwrap();
    let seconds = |tv: nix::sys::time::TimeVal| tv.tv_sec() as f64 + tv.tv_usec() as f64 / 1e6;
    seconds(usage.user_time()) + seconds(usage.system_time())
}

#[tokio::test]
async fn a_child_that_closes_stdout_and_sleeps_costs_no_cpu() {
    let before = cpu_seconds_of_this_process();
    let outcome = run_command(&spec("exec >&- 2>&-; sleep 2; exit 0", Duration::from_secs(30)), never_stop()).await;
    let used = cpu_seconds_of_this_process() - before;
    assert_eq!(outcome.termination, Termination::Exited(0));
    assert!(outcome.duration >= Duration::from_secs(2));
    // A busy loop over closed pipes would burn about two seconds here; waiting burns nothing.
    assert!(used < 0.3, "waiting on a quiet child used {used:.3} s of CPU");
}

#[tokio::test]
async fn exit_status_and_output_are_both_reported() {
    let outcome = run_command(&spec("echo 7; echo oops >&2; exit 3", Duration::from_secs(10)), never_stop()).await;
    assert_eq!(outcome.termination, Termination::Exited(3));
    assert_eq!(outcome.stdout.text(), "7\n");
    assert_eq!(outcome.stderr.text(), "oops\n");
}

#[tokio::test]
async fn stdin_is_empty_and_the_working_directory_is_used() {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = spec("pwd; cat; echo end", Duration::from_secs(10));
    spec.working_directory = dir.path().to_path_buf();
    let outcome = run_command(&spec, never_stop()).await;
    let expected = format!("{}\nend\n", dir.path().canonicalize().unwrap().display());
    assert_eq!(outcome.stdout.text(), expected, "cat reads /dev/null and returns at once");
}

#[tokio::test]
async fn a_missing_working_directory_is_a_clear_failure() {
    let mut spec = spec("echo 1", Duration::from_secs(10));
    spec.working_directory = PathBuf::from("/nonexistent/dir");
    let outcome = run_command(&spec, never_stop()).await;
    match outcome.termination {
        Termination::SpawnFailed(reason) => assert!(reason.contains("/nonexistent/dir"), "{reason}"),
        other => panic!("expected a spawn failure, got {other:?}"),
    }
}

#[tokio::test]
async fn leftover_processes_holding_output_are_ended_at_the_timeout_but_the_exit_status_stands() {
    let outcome = run_command(&spec("sleep 1000 & echo 4", Duration::from_millis(500)), never_stop()).await;
    assert_eq!(outcome.termination, Termination::Exited(0));
    assert!(outcome.lingered);
    assert_eq!(outcome.stdout.text(), "4\n");
}

#[tokio::test]
async fn stopping_ends_the_run_early() {
    let (stop, receiver) = watch::channel(false);
    let run = tokio::spawn(async move { run_command(&spec("sleep 1000", Duration::from_secs(600)), receiver).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.send(true).unwrap();
    let outcome = run.await.unwrap();
    assert_eq!(outcome.termination, Termination::Stopped);
    assert!(outcome.duration < Duration::from_secs(10));
}

#[tokio::test]
async fn a_process_that_escaped_the_group_cannot_hang_the_run() {
    // `setsid` puts the sleeper in a session of its own, out of reach of the group's signals,
    // while it keeps the command's stdout open.
    let outcome = run_command(&spec("setsid sleep 987654 & echo 5; sleep 1000", Duration::from_secs(1)), never_stop()).await;
    let _ = std::process::Command::new("pkill").args(["-f", "sleep 987654"]).status();
    assert_eq!(outcome.termination, Termination::TimedOut);
    assert!(outcome.duration < Duration::from_secs(15), "the run was abandoned after SIGKILL, not waited on: {:?}", outcome.duration);
    assert_eq!(outcome.stdout.text(), "5\n", "what was read before is kept");
}

#[tokio::test]
async fn commands_can_run_at_a_lower_priority() {
    let mut spec = spec("sleep 0.2; cut -d' ' -f19 /proc/$$/stat", Duration::from_secs(10));
    spec.nice = specialsnowflake::runner::command_niceness(7);
    let outcome = run_command(&spec, never_stop()).await;
    let expected = spec.nice.unwrap();
    assert_eq!(outcome.stdout.text().trim(), expected.to_string(), "the shell runs at niceness {expected}");
}
