//! Regression tests for what an adversarial test of the daemon found (issue 12): a closed pipe,
//! symlink loops and missing working directories in `check`, a stray directory and a damaged
//! segment in the spool, idle and descriptor-exhausting HTTP clients, a stalled scheduler, and
//! processes that escape their run's process group.
//!
//! The daemons here make no AWS call that must succeed: they run with `--dry-run`, or point the
//! SDK at a closed local port when the durable spool is under test.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{Daemon, Workspace, run, snowflake};
use serde_json::json;

/// A pipe whose reading end is already closed: every write to the other end fails with EPIPE.
fn pipe_without_reader() -> OwnedFd {
    let (reader, writer) = nix::unistd::pipe().unwrap();
    drop(reader);
    writer
}

#[test]
fn next_into_a_closed_pipe_exits_quietly() {
    let output = snowflake()
        .args(["next", "* * * * *", "--count", "100000"])
        .stdout(Stdio::from(pipe_without_reader()))
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "stderr: {stderr}");
    assert!(stderr.is_empty(), "nothing on stderr, no backtrace: {stderr}");
}

#[test]
fn check_into_a_closed_pipe_exits_quietly() {
    let workspace = Workspace::new();
    for index in 0..20 {
        workspace.add(&format!("f{index}"), json!({"flakeName": format!("f{index}"), "flakeCronstring": "* * * * *", "flakeCommand": "echo 1", "flakeMetricNamespace": "T"}));
    }
    let output = workspace.snowflake().arg("check").stdout(Stdio::from(pipe_without_reader())).stderr(Stdio::piped()).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn check_reports_a_symlink_loop_once_and_no_bogus_duplicates() {
    let workspace = Workspace::new();
    workspace.add("a", json!({"flakeName": "a", "flakeCronstring": "* * * * *", "flakeCommand": "echo 1", "flakeMetricNamespace": "T"}));
    std::fs::create_dir(workspace.flakes().join("sub")).unwrap();
    std::os::unix::fs::symlink("..", workspace.flakes().join("sub/loop")).unwrap();
    let (code, stdout, stderr) = run(workspace.snowflake().arg("check"));
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert_eq!(stdout.matches("symbolic link loop").count(), 1, "{stdout}");
    assert!(!stdout.contains("duplicate flakeName"), "{stdout}");
    assert!(stderr.contains("1 file(s) checked: 1 valid"), "{stderr}");
}

#[test]
fn check_warns_about_a_working_directory_that_does_not_exist() {
    let workspace = Workspace::new();
    std::fs::create_dir(workspace.root.path().join("there")).unwrap();
    for (name, dir) in [("missing", "not-there"), ("present", "there")] {
        workspace.add(
            name,
            json!({"flakeName": name, "flakeCronstring": "* * * * *", "flakeCommand": "echo 1", "flakeMetricNamespace": "T", "flakeWorkingDirectory": dir}),
        );
    }
    let (code, stdout, stderr) = run(workspace.snowflake().arg("check").arg("--workdir").arg(workspace.root.path()));
    assert_eq!(code, 0, "a warning, not an error: {stdout}{stderr}");
    let warnings: Vec<&str> = stdout.lines().filter(|line| line.contains("flakeWorkingDirectory: warning:")).collect();
    assert_eq!(warnings.len(), 1, "{stdout}");
    assert!(warnings[0].contains("missing.json") && warnings[0].contains("not-there"), "{stdout}");
    assert!(warnings[0].contains("relative to --workdir"), "{stdout}");
}

/// A daemon that keeps its durable spool (not `--dry-run`); its AWS calls go to a closed port.
fn durable_daemon(workspace: &Workspace, args: &[&str]) -> Daemon {
    let mut command = workspace.snowflake();
    command
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env_remove("AWS_PROFILE");
    Daemon::start(&mut command, workspace, args)
}

#[test]
fn a_stray_directory_in_the_spool_does_not_stop_the_daemon() {
    let workspace = Workspace::new();
    let stray = workspace.state().join("spool").join(format!("{:020}.seg", 7));
    std::fs::create_dir_all(&stray).unwrap();
    let daemon = durable_daemon(&workspace, &[]);
    daemon.wait_for(Duration::from_secs(10), "the stray entry to be reported", || daemon.log().contains("left alone"));
    assert!(stray.is_dir());
    let (status, _) = daemon.stop(Duration::from_secs(30));
    assert!(status.success());
}

#[test]
fn a_damaged_spool_segment_is_counted_in_metrics_and_kept_aside() {
    use specialsnowflake::publish::spool::Spool;
    use specialsnowflake::publish::spool::disk::DiskSpool;
    use specialsnowflake::publish::{Datapoint, Series};
    let workspace = Workspace::new();
    let series = std::sync::Arc::new(Series {
        flake: "f".into(),
        region: "us-east-1".into(),
        namespace: "T".into(),
        metric_name: "m".into(),
        dimensions: vec![],
        unit: "None".into(),
        storage_resolution: 60,
        aggregate_seconds: None,
    });
    let now = chrono::Utc::now().timestamp_millis();
    let (mut spool, _) = DiskSpool::open(&workspace.state(), 1 << 20, now).unwrap();
    let points: Vec<Datapoint> = (0..15).map(|i| Datapoint { series: series.clone(), value: f64::from(i), timestamp_ms: now }).collect();
    spool.append(&points).unwrap();
    drop(spool);
    let segment = std::fs::read_dir(workspace.state().join("spool"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .find(|path| path.extension().is_some_and(|extension| extension == "seg"))
        .unwrap();
    let mut bytes = std::fs::read(&segment).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x20;
    std::fs::write(&segment, &bytes).unwrap();

    let daemon = durable_daemon(&workspace, &[]);
    assert_eq!(daemon.metric("snowflake_spool_corrupt_segments_total"), Some(1.0), "{}", daemon.metrics());
    assert!(daemon.log().contains("recovered=14"), "all but the damaged record are recovered: {}", daemon.log());
    assert!(workspace.state().join("spool/corrupt").join(segment.file_name().unwrap()).exists());
    assert!(daemon.log().contains("spool segment is corrupt"), "{}", daemon.log());
}

/// The daemon's CPU time so far (user + system), from /proc.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat.rsplit_once(')').unwrap().1.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // SAFETY: sysconf reads a constant.
    let per_second = unsafe { nix::libc::sysconf(nix::libc::_SC_CLK_TCK) } as u64;
    Duration::from_millis(ticks * 1000 / per_second)
}

fn resident_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|line| line.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// True if the server closed the connection (EOF or reset), waiting at most `limit`.
fn closed_within(mut stream: &TcpStream, limit: Duration) -> bool {
    stream.set_read_timeout(Some(limit)).unwrap();
    let mut byte = [0u8; 1];
    match stream.read(&mut byte) {
        Ok(0) => true,
        Ok(_) => false,
        Err(error) => !matches!(error.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut),
    }
}

#[test]
fn idle_connections_are_capped_and_timed_out_and_healthz_keeps_answering() {
    let workspace = Workspace::new();
    let daemon = Daemon::start(workspace.snowflake().arg("--dry-run"), &workspace, &[]);
    let pid = daemon.child.id();
    let rss_before = resident_kib(pid);

    // Fewer than the cap: they are held, and /healthz still answers beside them.
    let mut idle: Vec<TcpStream> = (0..200).map(|_| TcpStream::connect(("127.0.0.1", daemon.port)).unwrap()).collect();
    // A half-sent request, too: slow headers are no way to keep a connection.
    idle[0].write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").unwrap();
    assert_eq!(daemon.get("/healthz").map(|(status, _)| status), Some(200));
    // Past the cap (256), new connections are closed at once.
    let excess: Vec<TcpStream> = (0..100).map(|_| TcpStream::connect(("127.0.0.1", daemon.port)).unwrap()).collect();
    std::thread::sleep(Duration::from_secs(2));
    let refused = excess.iter().filter(|stream| closed_within(stream, Duration::from_millis(20))).count();
    assert!(refused >= 44, "only {refused} of 100 connections past the cap were closed");

    // Idle ones are closed once the header-read timeout (5 s) passes; the daemon does not spin meanwhile.
    let cpu_before = cpu_time(pid);
    let waited = Instant::now();
    std::thread::sleep(Duration::from_secs(8));
    let still_open = idle.iter().filter(|stream| !closed_within(stream, Duration::from_millis(20))).count();
    assert_eq!(still_open, 0, "idle connections must be closed by the server");
    let cpu = cpu_time(pid) - cpu_before;
    assert!(cpu < waited.elapsed() / 4, "{cpu:?} of CPU in {:?} while connections sat idle", waited.elapsed());
    assert_eq!(daemon.get("/healthz").map(|(status, _)| status), Some(200));
    // 300 connections: 256 ordinary slots, 16 reserved one-request slots (closed after 1 s
    // without a request, so counted as closed above), and at least 28 refused outright.
    assert!(daemon.metric("snowflake_http_connections_refused_total").unwrap_or(0.0) >= 28.0, "{}", daemon.metrics());
    drop(excess);
    let grown = resident_kib(pid).saturating_sub(rss_before);
    assert!(grown < 50 * 1024, "RSS grew by {grown} KiB for 300 connections");
}

#[test]
fn out_of_descriptors_the_listener_backs_off_and_a_run_that_cannot_start_is_logged() {
    let workspace = Workspace::new();
    workspace.add("tick", json!({"flakeName": "tick", "flakeCronstring": "@every 1s", "flakeCommand": "echo 1", "flakeType": "job"}));
    let mut command = workspace.snowflake();
    command.arg("--dry-run");
    // SAFETY: setrlimit is async-signal-safe and touches no memory of the parent.
    unsafe {
        command.pre_exec(|| {
            let limit = nix::libc::rlimit { rlim_cur: 64, rlim_max: 64 };
            if nix::libc::setrlimit(nix::libc::RLIMIT_NOFILE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let daemon = Daemon::start(&mut command, &workspace, &[]);
    let pid = daemon.child.id();
    daemon.wait_for(Duration::from_secs(10), "a first run", || workspace.log_of("tick").contains(" ok "));

    // More connections than the daemon has descriptors left.
    let held: Vec<TcpStream> = (0..100).filter_map(|_| TcpStream::connect(("127.0.0.1", daemon.port)).ok()).collect();
    assert!(held.len() >= 80, "the kernel queues connections the daemon cannot accept");
    let cpu_before = cpu_time(pid);
    let started = Instant::now();
    daemon.wait_for(Duration::from_secs(10), "a run that cannot start to be logged", || daemon.log().contains("a run could not start"));
    std::thread::sleep(Duration::from_secs(3).saturating_sub(started.elapsed()));
    let cpu = cpu_time(pid) - cpu_before;
    assert!(cpu < started.elapsed() / 3, "{cpu:?} of CPU in {:?}: the accept loop spins", started.elapsed());
    assert!(daemon.log().contains("cannot accept connections"), "{}", daemon.log());
    assert!(daemon.log().contains("cannot write flake log"), "the flake log's failure is reported: {}", daemon.log());
    assert!(!daemon.log().contains("panicked"), "{}", daemon.log());

    // Once the idle connections time out, the daemon serves again.
    drop(held);
    daemon
        .wait_for(Duration::from_secs(20), "/healthz to answer again", || daemon.get("/healthz").is_some_and(|(status, _)| status == 200));
    let (status, _) = daemon.stop(Duration::from_secs(30));
    assert!(status.success());
}

#[test]
fn firings_missed_while_the_daemon_was_stopped_are_not_called_overlaps() {
    let workspace = Workspace::new();
    workspace.add("tick", json!({"flakeName": "tick", "flakeCronstring": "@every 1s", "flakeCommand": "echo 1", "flakeType": "job"}));
    let daemon = Daemon::start(workspace.snowflake().arg("--dry-run"), &workspace, &[]);
    daemon.wait_for(Duration::from_secs(10), "a first run", || workspace.log_of("tick").contains(" ok "));
    let pid = nix::unistd::Pid::from_raw(daemon.child.id() as i32);
    // A stalled loop, as a blocked runtime thread once caused: nothing runs for 5 s.
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGSTOP).unwrap();
    std::thread::sleep(Duration::from_secs(5));
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGCONT).unwrap();
    daemon.wait_for(Duration::from_secs(10), "the missed firings to be logged", || workspace.log_of("tick").contains("held up"));
    std::thread::sleep(Duration::from_secs(2));
    let log = workspace.log_of("tick");
    assert!(!log.contains("previous run is still going"), "no run was going: {log}");
    assert!(log.matches("held up").count() >= 3, "{log}");
}

/// True while `pid` is a live process (a zombie is not).
fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !matches!(stat.rsplit_once(')').map(|(_, rest)| rest.trim_start().as_bytes()[0]), Some(b'Z' | b'X')),
        Err(_) => false,
    }
}

#[test]
fn a_grandchild_that_calls_setsid_does_not_survive_the_timeout() {
    let workspace = Workspace::new();
    let pidfile = workspace.root.path().join("escaped.pid");
    // The escaped process keeps the run's stdout open, as a careless daemonising script does.
    let command = format!("setsid sh -c 'echo $$ > {}; exec sleep 300' & sleep 300", pidfile.display());
    workspace.add(
        "escape",
        json!({"flakeName": "escape", "flakeCronstring": "@reboot", "flakeCommand": command, "flakeType": "job", "flakeTimeout": 1}),
    );
    let daemon = Daemon::start(workspace.snowflake().arg("--dry-run"), &workspace, &[]);
    daemon.wait_for(Duration::from_secs(10), "the escaped process to start", || {
        std::fs::read_to_string(&pidfile).is_ok_and(|text| text.trim().parse::<i32>().is_ok())
    });
    let escaped: i32 = std::fs::read_to_string(&pidfile).unwrap().trim().parse().unwrap();
    let stat = std::fs::read_to_string(format!("/proc/{escaped}/stat")).unwrap();
    assert!(stat.contains("(sleep)"), "{stat}");
    daemon.wait_for(Duration::from_secs(20), "the run to time out", || workspace.log_of("escape").contains("timeout"));
    daemon.wait_for(Duration::from_secs(10), "the escaped process to be ended", || !alive(escaped));
    assert!(!daemon.log().contains("no longer reading"), "the escaped process was ended, not abandoned: {}", daemon.log());
    let (status, _) = daemon.stop(Duration::from_secs(30));
    assert!(status.success());
}

/// The zombie children of a running process, by reading its threads' `children` lists.
fn zombie_children(pid: u32) -> Vec<u32> {
    let mut zombies = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap().filter_map(Result::ok) {
        let children = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
        for child in children.split_whitespace().filter_map(|child| child.parse::<u32>().ok()) {
            let stat = std::fs::read_to_string(format!("/proc/{child}/stat")).unwrap_or_default();
            if stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')) {
                zombies.push(child);
            }
        }
    }
    zombies
}

#[test]
fn an_escaped_process_that_leads_its_own_group_is_ended_and_reaped() {
    // GNU timeout puts itself in a process group of its own: the run's group signals miss it, it
    // is handed to the daemon, ended by its marker, and then its zombie must be reaped too.
    let workspace = Workspace::new();
    let pidfile = workspace.root.path().join("own-group.pid");
    let command = format!("timeout 600 sh -c 'echo $$ > {}; exec sleep 600'; echo 1", pidfile.display());
    workspace.add(
        "own-group",
        json!({"flakeName": "own-group", "flakeCronstring": "@reboot", "flakeCommand": command, "flakeType": "job", "flakeTimeout": 1}),
    );
    let daemon = Daemon::start(workspace.snowflake().arg("--dry-run"), &workspace, &[]);
    daemon.wait_for(Duration::from_secs(10), "the command to start", || {
        std::fs::read_to_string(&pidfile).is_ok_and(|text| text.trim().parse::<i32>().is_ok())
    });
    let sleeper: i32 = std::fs::read_to_string(&pidfile).unwrap().trim().parse().unwrap();
    daemon.wait_for(Duration::from_secs(20), "the run to time out", || workspace.log_of("own-group").contains("timeout"));
    daemon.wait_for(Duration::from_secs(15), "the escaped process to be ended", || !alive(sleeper));
    daemon.wait_for(Duration::from_secs(10), "no zombie child left with the daemon", || zombie_children(daemon.child.id()).is_empty());
    let (status, _) = daemon.stop(Duration::from_secs(30));
    assert!(status.success());
}
