//! Issue 18: a command started without `/bin/sh` behaves as through the shell. Every command of
//! a corpus runs both ways and the two outcomes are compared: stdout, stderr, exit status or
//! timeout, environment and working directory. Needs dash as `/bin/sh` (as on Debian and Ubuntu);
//! elsewhere direct starts are off and the test says so by failing.

use std::path::{Path, PathBuf};
use std::time::Duration;

use specialsnowflake::runner::{CommandSpec, RUN_MARKER, RunOutcome, Termination, run_command_via};
use tokio::sync::watch;

fn never_stop() -> watch::Receiver<bool> {
    let (sender, receiver) = watch::channel(false);
    std::mem::forget(sender);
    receiver
}

fn spec(command: &str, dir: &Path, environment: &[(&str, &str)]) -> CommandSpec {
    CommandSpec {
        command: command.to_string(),
        working_directory: dir.to_path_buf(),
        environment: environment.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        timeout: Duration::from_secs(10),
        nice: None,
        stdout_limit: specialsnowflake::runner::CAPTURE_LIMIT,
    }
}

/// What a person or a parser could see of a run. The environment's order is not kept by
/// either path in any documented way, so `env` output is compared as a set; the run marker
/// differs per run by design.
fn observed(outcome: &RunOutcome, sort_lines: bool) -> (Termination, String, String) {
    let mut stdout = outcome.stdout.text();
    if sort_lines {
        let mut lines: Vec<&str> = stdout.lines().filter(|line| !line.starts_with(&format!("{RUN_MARKER}="))).collect();
        lines.sort();
        stdout = lines.join("\n");
    }
    (outcome.termination.clone(), stdout, outcome.stderr.text())
}

async fn both_ways(spec: &CommandSpec, sort_lines: bool) -> (RunOutcome, RunOutcome) {
    let shell = run_command_via(spec, never_stop(), false).await;
    let auto = run_command_via(spec, never_stop(), true).await;
    assert!(!shell.direct);
    assert_eq!(
        observed(&shell, sort_lines),
        observed(&auto, sort_lines),
        "{:?} differs between the shell and a direct start",
        spec.command
    );
    (shell, auto)
}

/// A command, its working directory and environment, and whether it should start directly.
type Case<'a> = (&'a str, &'a PathBuf, &'a [(&'a str, &'a str)], bool);

#[tokio::test]
async fn the_corpus_behaves_the_same_both_ways() {
    assert!(
        std::fs::canonicalize("/bin/sh").unwrap().to_string_lossy().contains("dash"),
        "/bin/sh is not dash: direct starts are off on this machine, and this comparison cannot run"
    );
    let dir = tempfile::tempdir().unwrap();
    let real = dir.path().join("real");
    std::fs::create_dir(&real).unwrap();
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    // A script without #!: exec fails (ENOEXEC) and the shell runs it as a script.
    std::fs::write(real.join("noshebang"), "echo from a script; exit 4\n").unwrap();
    std::fs::set_permissions(real.join("noshebang"), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    std::fs::write(real.join("plain"), "not a program\n").unwrap();

    let weird_environment =
        [("A-B", "dropped by dash"), ("1X", "also dropped"), ("IFS", ":"), ("OPTIND", "9"), ("PPID", "1"), ("GOOD", "kept value")];
    let corpus: Vec<Case> = vec![
        ("date +%Y", &real, &[], true),
        ("expr 1 + 2", &real, &[], true),
        ("expr 1 + a", &real, &[], true),
        ("ls /nonexistent/path", &real, &[], true),
        ("cat noshebang", &real, &[], true),
        ("  cat\tnoshebang  ", &real, &[], true),
        ("/usr/bin/printf %s,%s one two", &real, &[], true),
        ("head -c 100000 /dev/zero", &real, &[], true),
        ("sh -c exit", &real, &[], true),
        ("id -u", &real, &[], true),
        ("/bin/pwd", &link, &[], true),
        ("/bin/pwd -L", &link, &[], true),
        ("/bin/pwd -L", &link, &[("PWD", "/tmp")], true),
        ("./noshebang", &real, &[], false),
        ("./plain", &real, &[], false),
        ("no-such-command-anywhere --flag", &real, &[], false),
        ("echo plain words", &real, &[], false),
        ("printf %s x", &real, &[], false),
        ("date +%Y --utc", &real, &[("PATH", "")], false),
    ];
    for (command, dir, environment, expect_direct) in corpus {
        let (_, auto) = both_ways(&spec(command, dir, environment), false).await;
        assert_eq!(auto.direct, expect_direct, "{command:?} direct start");
    }

    for (dir, environment) in [(&real, &[][..]), (&link, &[("PWD", link.to_str().unwrap())][..]), (&link, &weird_environment[..])] {
        let (_, auto) = both_ways(&spec("env", dir, environment), true).await;
        assert!(auto.direct, "env is a program");
    }
}

#[tokio::test]
async fn timeouts_end_a_direct_start_as_they_end_the_shell() {
    let dir = tempfile::tempdir().unwrap();
    let spec = CommandSpec { timeout: Duration::from_millis(300), ..spec("sleep 30", dir.path(), &[]) };
    let (shell, auto) = both_ways(&spec, false).await;
    assert!(auto.direct);
    assert_eq!(shell.termination, Termination::TimedOut);
    assert!(auto.duration < Duration::from_secs(5), "{:?}", auto.duration);
}
