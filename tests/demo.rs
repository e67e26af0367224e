//! `scripts/demo.sh`, the newcomer's first look (README quick start): it runs the daemon on the
//! example flakes against a LocalStack of its own, shows the metrics, the alarms with the
//! liveness example in ALARM, and the flake logs, and stops everything it started.
//! Needs the test venv (scripts/test.sh); fails loudly without it.

mod common;

use std::process::Command;

use common::{repo_path, run};

#[test]
fn the_demo_shows_what_landed_and_stops_everything_it_started() {
    let demo = tempfile::tempdir().unwrap();
    let venv = common::venv_python();
    let (code, stdout, stderr) = run(Command::new(repo_path("scripts/demo.sh"))
        .args(["--minutes", "1.2"])
        .env("SNOWFLAKE_BIN", env!("CARGO_BIN_EXE_snowflake"))
        .env("SNOWFLAKE_DEMO_DIR", demo.path())
        .env("SNOWFLAKE_TIMEZONE", "UTC")
        // The demo installs nothing new: the suite's venv is the one it uses.
        .env("SNOWFLAKE_TEST_CACHE", venv.parent().unwrap().parent().unwrap().parent().unwrap()));
    assert_eq!(code, 0, "{stdout}{stderr}");

    // The examples that fire every minute have datapoints, read back with their latest values...
    for metric in ["example-perminute", "example-hourly", "MemoryAvailablePercent{Host="] {
        let line =
            stdout.lines().find(|line| line.contains(&format!("  {metric}"))).unwrap_or_else(|| panic!("{metric} missing:\n{stdout}"));
        assert!(line.contains("latest="), "{line}");
    }
    // ...every example alarm is listed with its state, and the liveness one is in ALARM...
    let alarms: Vec<&str> = stdout.lines().filter(|line| line.trim_start().starts_with("FL-example-")).collect();
    // Four on the examples' own metrics, two of example-backup's flakeMonitor (overdue and
    // failed), four of the host-alarms example (three metric alarms on the stand-in instance
    // and the composite), and one each on a metric of the Nagios and the scrape examples.
    assert_eq!(alarms.len(), 12, "{stdout}");
    assert!(alarms.iter().any(|line| line.contains("FL-example-backup-overdue")), "{alarms:#?}");
    assert!(alarms.iter().any(|line| line.contains("FL-example-backup-failed")), "{alarms:#?}");
    assert!(alarms.iter().any(|line| line.contains("FL-example-host-alarms-cpu-high-outside-maintenance")), "{alarms:#?}");
    assert!(alarms.iter().any(|line| line.contains("FL-example-liveness-process-down-") && line.contains("  ALARM  ")), "{alarms:#?}");
    // ...and the flake logs are where it says, with a line per run.
    assert!(stdout.contains(&format!("== Flake logs in {}/logs", demo.path().display())), "{stdout}");
    let liveness = std::fs::read_to_string(demo.path().join("logs/example-liveness.log")).unwrap();
    assert!(liveness.lines().count() >= 2 && liveness.contains(" failed "), "{liveness}");

    // Everything it started is stopped: the daemon and LocalStack's whole process group.
    for (what, prefix) in [("the daemon", "demo.sh: stopped the daemon (pid "), ("LocalStack", "demo.sh: stopped LocalStack (pid ")] {
        let pid: i32 = stdout
            .lines()
            .find_map(|line| line.strip_prefix(prefix)?.strip_suffix(')')?.parse().ok())
            .unwrap_or_else(|| panic!("{what} not reported stopped:\n{stdout}"));
        let alive = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok();
        assert!(!alive, "{what} (pid {pid}) still runs");
        if what == "LocalStack" {
            assert!(nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid), None).is_err(), "LocalStack's process group is gone");
        }
    }
    let port: u16 = stdout
        .lines()
        .find_map(|line| line.strip_prefix("demo.sh: LocalStack is ready on 127.0.0.1:")?.split_whitespace().next()?.parse().ok())
        .expect("the demo says where LocalStack listens");
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err(), "nothing listens on LocalStack's port any more");
}

#[test]
fn an_interrupted_demo_still_stops_everything_it_started() {
    use std::io::{BufRead, BufReader};
    let demo = tempfile::tempdir().unwrap();
    let venv = common::venv_python();
    use std::os::unix::process::CommandExt;
    let mut child = Command::new(repo_path("scripts/demo.sh"))
        .process_group(0)
        .args(["--minutes", "10"])
        .env("SNOWFLAKE_BIN", env!("CARGO_BIN_EXE_snowflake"))
        .env("SNOWFLAKE_DEMO_DIR", demo.path())
        .env("SNOWFLAKE_TEST_CACHE", venv.parent().unwrap().parent().unwrap().parent().unwrap())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut localstack = None;
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(rest) = line.strip_prefix("demo.sh: LocalStack is ready on 127.0.0.1:") {
            localstack = rest.split("(pid ").nth(1).and_then(|pid| pid.trim_end_matches(')').parse::<i32>().ok());
        }
        let daemon_started = line.starts_with("== snowflake run");
        seen.push(line);
        if daemon_started {
            break;
        }
    }
    let localstack = localstack.unwrap_or_else(|| panic!("no LocalStack pid in:\n{}", seen.join("\n")));
    std::thread::sleep(std::time::Duration::from_secs(2));
    // Ctrl-C, as a terminal sends it to the foreground process group.
    nix::sys::signal::killpg(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGINT).unwrap();
    let rest: Vec<String> = lines.map(|line| line.unwrap()).collect();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{rest:?}");
    assert!(rest.iter().any(|line| line.starts_with("demo.sh: stopped LocalStack")), "{rest:?}");
    assert!(nix::sys::signal::killpg(nix::unistd::Pid::from_raw(localstack), None).is_err(), "LocalStack's process group is gone");
    let daemon = std::fs::read_to_string(demo.path().join("daemon.log")).unwrap();
    assert!(daemon.contains("stopped"), "the daemon stopped gracefully:\n{daemon}");
}
