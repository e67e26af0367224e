//! The container image, built and run for real with podman (SPEC sections 7 and 12): the
//! Dockerfile's runtime stage unchanged, with the binary this test run built in place of the
//! compiling stage (scripts/podman-image.sh). The daemon in the image publishes the example flakes
//! to LocalStack, answers /healthz and its HEALTHCHECK, runs as its non-root user on a read-only
//! root file system, exits 0 on SIGTERM through tini, reaps the orphans flakes leave, delivers
//! after `kill -9` what it spooled, and `test-a-flake.sh` works with podman.
//!
//! Needs podman and mmdebstrap (scripts/deps.sh installs them) and LocalStack (scripts/test.sh);
//! without them these tests fail, they never pass silently.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::json;

use common::{LocalStack, endpoint, repo_path, run, unique, write_flake};

/// The image's user (Dockerfile: `useradd --uid 10001`).
const IMAGE_UID: u32 = 10001;

/// Each container gets its own network namespace (so every one may listen on 9731, as the image's
/// HEALTHCHECK expects) and reaches this machine's loopback, where LocalStack listens, at 10.0.2.2.
const NETWORK: &str = "slirp4netns:allow_host_loopback=true";

fn podman() -> Command {
    let mut command = Command::new("podman");
    if std::env::var_os("CONTAINERS_CONF").is_none() {
        command.env("CONTAINERS_CONF", repo_path("scripts/containers.conf"));
    }
    command
}

/// LocalStack's endpoint as a container sees it.
fn from_container(endpoint: &str) -> String {
    endpoint.replace("127.0.0.1", "10.0.2.2")
}

/// The image under test, built once per test run (the first build of a machine also makes the
/// Debian base with mmdebstrap, about a minute; later ones take seconds).
fn image() -> &'static str {
    static IMAGE: OnceLock<String> = OnceLock::new();
    IMAGE.get_or_init(|| {
        remove_images_of_finished_runs();
        let tag = format!("localhost/specialsnowflake:test-{}", std::process::id());
        let started = Instant::now();
        let (code, stdout, stderr) = run(Command::new(repo_path("scripts/podman-image.sh")).arg(&tag).arg(env!("CARGO_BIN_EXE_snowflake")));
        assert_eq!(code, 0, "the image did not build (scripts/deps.sh installs podman and mmdebstrap):\n{stdout}{stderr}");
        eprintln!("built {tag} in {:?}", started.elapsed());
        tag
    })
}

/// Earlier runs leave their image behind (no test can clean up after the last one); remove
/// those whose test process is gone, so images do not pile up.
fn remove_images_of_finished_runs() {
    let (_, stdout, _) = run(podman().args(["images", "--format", "{{.Repository}}:{{.Tag}}", "localhost/specialsnowflake"]));
    for tag in stdout.lines() {
        let Some(pid) = tag.strip_prefix("localhost/specialsnowflake:test-").and_then(|pid| pid.parse::<u32>().ok()) else { continue };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            run(podman().args(["rmi", "--force", tag]));
        }
    }
}

/// A directory the image's user may write to, for a state or log volume.
fn volume_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::chown(dir.path(), Some(IMAGE_UID), Some(IMAGE_UID))
        .expect("chown a volume to the image's user (the container tests run as root, like rootful podman)");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

/// A running container, removed when dropped.
struct Container {
    name: String,
}

impl Container {
    /// `podman run --detach` with the production defaults (read-only root file system, a scratch
    /// /tmp, the image's entrypoint and user) plus `args` (volumes, environment, image, command).
    fn start(args: &[&str]) -> Container {
        let name = unique("snowflake");
        let (code, stdout, stderr) = run(podman()
            .args(["run", "--detach", "--name", &name, "--read-only", "--tmpfs", "/tmp", "--network", NETWORK])
            .args(["--env", "AWS_ACCESS_KEY_ID=test", "--env", "AWS_SECRET_ACCESS_KEY=test", "--env", "AWS_REGION=us-east-1"])
            // No instance metadata service here: fail at once rather than wait on 169.254.169.254.
            .args(["--env", "AWS_EC2_METADATA_SERVICE_ENDPOINT=http://127.0.0.1:9"])
            .args(args));
        assert_eq!(code, 0, "podman run failed:\n{stdout}{stderr}");
        Container { name }
    }

    fn exec(&self, command: &[&str]) -> (i32, String, String) {
        run(podman().arg("exec").arg(&self.name).args(command))
    }

    fn logs(&self) -> String {
        let (_, stdout, stderr) = run(podman().args(["logs", &self.name]));
        format!("{stdout}{stderr}")
    }

    fn inspect(&self, format: &str) -> String {
        let (_, stdout, _) = run(podman().args(["inspect", "--format", format, &self.name]));
        stdout.trim().to_string()
    }

    /// `GET path` from inside the container, as the HEALTHCHECK and a Prometheus sidecar see it.
    fn get(&self, path: &str) -> Option<String> {
        let (code, stdout, _) = self.exec(&["curl", "-fsS", "--max-time", "5", &format!("http://127.0.0.1:9731{path}")]);
        (code == 0).then_some(stdout)
    }

    fn metric(&self, prefix: &str) -> Option<f64> {
        let metrics = self.get("/metrics")?;
        metrics.lines().find(|line| line.starts_with(prefix)).and_then(|line| line.rsplit(' ').next()?.parse().ok())
    }

    fn wait_for(&self, limit: Duration, what: &str, mut condition: impl FnMut() -> bool) {
        let started = Instant::now();
        while !condition() {
            assert!(started.elapsed() < limit, "waited {limit:?} for {what}; container log:\n{}", self.logs());
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        run(podman().args(["rm", "--force", "--time", "0", &self.name]));
    }
}

/// (sample count, maximum) of a metric over the last ten minutes, read back from LocalStack.
fn read_back(endpoint: &str, namespace: &str, metric: &str, dimensions: &[(&str, &str)]) -> (f64, f64) {
    let now = chrono::Utc::now();
    let start = (now - chrono::TimeDelta::minutes(10)).to_rfc3339();
    let end = (now + chrono::TimeDelta::minutes(2)).to_rfc3339();
    let mut args = vec!["cloudwatch", "get-metric-statistics", "--namespace", namespace, "--metric-name", metric];
    args.extend(["--start-time", &start, "--end-time", &end, "--period", "60", "--statistics", "SampleCount", "Maximum"]);
    let dimensions: Vec<String> = dimensions.iter().map(|(name, value)| format!("Name={name},Value={value}")).collect();
    if !dimensions.is_empty() {
        args.push("--dimensions");
        args.extend(dimensions.iter().map(String::as_str));
    }
    let answer = common::aws(endpoint, &args);
    let points = answer["Datapoints"].as_array().unwrap();
    let count = points.iter().map(|p| p["SampleCount"].as_f64().unwrap()).sum();
    let maximum = points.iter().map(|p| p["Maximum"].as_f64().unwrap()).fold(f64::NAN, f64::max);
    (count, maximum)
}

#[test]
fn the_image_runs_the_examples_as_production_does() {
    let localstack = LocalStack::start();
    let (state, logs) = (volume_dir(), volume_dir());
    let endpoint = format!("AWS_ENDPOINT_URL={}", from_container(&localstack.endpoint()));
    let state_volume = format!("{}:/var/lib/snowflake", state.path().display());
    let logs_volume = format!("{}:/var/log/snowflake", logs.path().display());
    // The image's own command (`tini -- snowflake run`), flakes and settings.
    let container = Container::start(&["--volume", &state_volume, "--volume", &logs_volume, "--env", &endpoint, image()]);

    container.wait_for(Duration::from_secs(30), "/healthz to answer 200", || container.get("/healthz").is_some());
    let (code, stdout, stderr) = run(podman().args(["healthcheck", "run", &container.name]));
    assert_eq!(code, 0, "the image's HEALTHCHECK command passes: {stdout}{stderr}");

    // tini is PID 1 and everything runs as the image's non-root user.
    let (_, processes, _) = container.exec(&["ps", "-eo", "pid=,uid=,comm="]);
    let processes: Vec<Vec<&str>> = processes.lines().map(|line| line.split_whitespace().collect()).collect();
    assert!(processes.iter().any(|p| p[..] == ["1", "10001", "tini"]), "{processes:?}");
    assert!(processes.iter().any(|p| p[1..] == ["10001", "snowflake"]), "{processes:?}");
    assert!(processes.iter().all(|p| p[1] == "10001"), "nothing runs as root: {processes:?}");
    let (code, _, stderr) = container.exec(&["touch", "/app/flakes/written"]);
    assert_ne!(code, 0, "the root file system is read-only");
    assert!(stderr.contains("Read-only file system"), "{stderr}");

    // The example flakes that fire every minute are published at the next minute.
    container.wait_for(Duration::from_secs(100), "two datapoints to be delivered", || {
        container.metric("snowflake_datapoints_published_total").unwrap_or(0.0) >= 2.0
    });
    let (_, hostname, _) = container.exec(&["hostname"]);
    let hostname = hostname.trim();
    let (count, _) = read_back(&localstack.endpoint(), "SpecialSnowflake/Examples", "example-perminute", &[]);
    assert!(count >= 1.0, "the load average landed in LocalStack");
    let (count, alive) = read_back(&localstack.endpoint(), "SpecialSnowflake/Examples", "example-liveness", &[("Host", hostname)]);
    assert!(count >= 1.0 && alive == 1.0, "the liveness example sees the daemon running: {count} {alive}");
    let alarms = common::aws(&localstack.endpoint(), &["cloudwatch", "describe-alarms", "--alarm-name-prefix", "FL-example-"]);
    let mut names: Vec<&str> = alarms["MetricAlarms"].as_array().unwrap().iter().map(|a| a["AlarmName"].as_str().unwrap()).collect();
    names.sort();
    let liveness = format!("FL-example-liveness-process-down-{hostname}");
    let per_host = format!("FL-example-per-host-low-memory-{hostname}");
    let nagios = format!("FL-example-nagios-load-load-critical-{hostname}");
    let scrape = format!("FL-example-nginx-scrape-exporter-down-{hostname}");
    // The host-alarms example names ${aws:InstanceId}: with no instance metadata service here its
    // alarms are left out (and said so in the log), while every other example's are created.
    let mut expected = vec![
        "FL-example-backup-failed",
        "FL-example-backup-overdue",
        "FL-example-hourly-disk-nearly-full",
        liveness.as_str(),
        nagios.as_str(),
        scrape.as_str(),
        per_host.as_str(),
        "FL-example-perminute-high-load",
    ];
    expected.sort();
    assert_eq!(names, expected);

    // It wrote its state and flake logs to its volumes, and nothing failed for want of a
    // writable root file system.
    assert!(logs.path().join("example-perminute.log").exists(), "flake logs on the log volume");
    assert!(std::fs::read_dir(state.path()).unwrap().next().is_some(), "state on the state volume");
    let log = container.logs();
    assert!(!log.contains("Read-only file system"), "{log}");

    // `podman stop`: SIGTERM to tini, which hands it to the daemon; exit status 0 within the grace.
    let started = Instant::now();
    let (code, _, stderr) = run(podman().args(["stop", "--time", "30", &container.name]));
    let took = started.elapsed();
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(container.inspect("{{.State.ExitCode}}"), "0", "exit status; log:\n{}", container.logs());
    assert!(took < Duration::from_secs(15), "stopped in {took:?}, within the 10 s grace and a flush");
    assert!(container.logs().contains("SIGTERM"), "the daemon itself got SIGTERM:\n{}", container.logs());
}

#[test]
fn orphans_that_flakes_leave_behind_are_reaped() {
    let flakes = tempfile::tempdir().unwrap();
    std::fs::set_permissions(flakes.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    // The shell exits at once and leaves its background `sleep` to be adopted by PID 1.
    write_flake(
        flakes.path(),
        "orphans",
        &json!({"flakeName": "orphans", "flakeCronstring": "@every 1s", "flakeCommand": "sleep 0.2 & echo 1",
                "flakeMetricNamespace": "Orphans"}),
    );
    // And one still running when the container is stopped: it gets the grace, then is ended.
    write_flake(
        flakes.path(),
        "slow",
        &json!({"flakeName": "slow", "flakeCronstring": "@reboot", "flakeCommand": "sleep 120; echo 1",
                "flakeMetricNamespace": "Orphans", "flakeTimeout": 300}),
    );
    let logs = volume_dir();
    let flakes_volume = format!("{}:/app/flakes:ro", flakes.path().display());
    let logs_volume = format!("{}:/var/log/snowflake", logs.path().display());
    let state = volume_dir();
    let state_volume = format!("{}:/var/lib/snowflake", state.path().display());
    let container = Container::start(&[
        "--volume",
        &flakes_volume,
        "--volume",
        &logs_volume,
        "--volume",
        &state_volume,
        image(),
        "snowflake",
        "--dry-run",
        "run",
    ]);
    let runs =
        || std::fs::read_to_string(logs.path().join("orphans.log")).unwrap_or_default().lines().filter(|l| l.contains(" ok ")).count();
    container.wait_for(Duration::from_secs(60), "eight runs", || runs() >= 8);
    // A zombie lives for an instant between its exit and its reaping; one that is still there a
    // second later was never reaped. Without an init, one would pile up per run.
    let zombies = || {
        let (_, processes, _) = container.exec(&["ps", "-eo", "pid=,stat=,comm="]);
        processes
            .lines()
            .filter(|line| line.split_whitespace().nth(1).is_some_and(|stat| stat.starts_with('Z')))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let first = zombies();
    std::thread::sleep(Duration::from_secs(1));
    let lasting: Vec<String> = zombies().into_iter().filter(|zombie| first.contains(zombie)).collect();
    assert!(lasting.is_empty(), "zombies not reaped after {} runs: {lasting:?}", runs());

    // SIGTERM through tini while a command runs: the command gets the 10 s grace, the daemon
    // exits 0, well before podman's own 30 s would have resorted to SIGKILL.
    let (_, processes, _) = container.exec(&["ps", "-eo", "args="]);
    assert!(processes.contains("sleep 120"), "the slow flake is running: {processes}");
    let started = Instant::now();
    let (code, _, stderr) = run(podman().args(["stop", "--time", "30", &container.name]));
    let took = started.elapsed();
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(container.inspect("{{.State.ExitCode}}"), "0", "exit status; log:\n{}", container.logs());
    assert!(took >= Duration::from_secs(9) && took < Duration::from_secs(25), "stopped after {took:?}: the 10 s grace, then a flush");
    let slow = std::fs::read_to_string(logs.path().join("slow.log")).unwrap_or_default();
    assert!(slow.contains(" stopped "), "the slow run is logged as stopped by the shutdown: {slow}");
}

#[test]
fn a_container_killed_with_sigkill_delivers_its_spool_when_restarted() {
    let endpoint = endpoint();
    let namespace = unique("ContainerSpool");
    let flakes = tempfile::tempdir().unwrap();
    std::fs::set_permissions(flakes.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let flake =
        json!({"flakeName": "spooled", "flakeCronstring": "@every 1s", "flakeCommand": "echo 7", "flakeMetricNamespace": namespace});
    write_flake(flakes.path(), "spooled", &flake);
    let state = volume_dir();
    let flakes_volume = format!("{}:/app/flakes:ro", flakes.path().display());
    let state_volume = format!("{}:/var/lib/snowflake", state.path().display());
    let volumes = ["--volume", flakes_volume.as_str(), "--volume", state_volume.as_str()];

    // CloudWatch unreachable: every datapoint waits in the spool on the state volume.
    let unreachable = format!("AWS_ENDPOINT_URL={}", from_container("http://127.0.0.1:9"));
    let first = Container::start(&[&volumes[..], &["--env", &unreachable, image()]].concat());
    first
        .wait_for(Duration::from_secs(60), "three spooled datapoints", || first.metric("snowflake_spool_datapoints").unwrap_or(0.0) >= 3.0);
    // Stop producing, so the number spooled is known exactly when the container dies.
    let mut disabled = flake.clone();
    disabled["flakeEnabled"] = json!(false);
    write_flake(flakes.path(), "spooled", &disabled);
    first
        .wait_for(Duration::from_secs(30), "the flake to be disabled", || first.metric("snowflake_flakes{state=\"enabled\"}") == Some(0.0));
    std::thread::sleep(Duration::from_secs(2));
    let spooled = first.metric("snowflake_spool_datapoints").unwrap();
    let (code, _, stderr) = run(podman().args(["kill", "--signal", "KILL", &first.name]));
    assert_eq!(code, 0, "{stderr}");
    first.wait_for(Duration::from_secs(30), "the container to die", || first.inspect("{{.State.Running}}") == "false");
    assert_eq!(first.inspect("{{.State.ExitCode}}"), "137", "killed by SIGKILL, no shutdown code ran");

    // A new container on the same state volume, CloudWatch reachable again.
    let reachable = format!("AWS_ENDPOINT_URL={}", from_container(&endpoint));
    let second = Container::start(&[&volumes[..], &["--env", &reachable, image()]].concat());
    second.wait_for(Duration::from_secs(60), "the spool to drain", || {
        second.metric("snowflake_spool_datapoints") == Some(0.0) && second.metric("snowflake_datapoints_published_total") == Some(spooled)
    });
    let (count, maximum) = read_back(&endpoint, &namespace, "spooled", &[]);
    assert_eq!(count, spooled, "every spooled datapoint arrived, once");
    assert_eq!(maximum, 7.0);
}

#[test]
fn test_a_flake_runs_the_flake_in_the_image_with_podman() {
    let endpoint = endpoint();
    let network = format!("--network {NETWORK}");
    let (code, stdout, stderr) = run(Command::new(repo_path("test-a-flake.sh"))
        .args(["--image", image(), "example-per-host"])
        .env("DOCKER", "podman")
        .env("CONTAINERS_CONF", std::env::var_os("CONTAINERS_CONF").unwrap_or_else(|| repo_path("scripts/containers.conf").into()))
        .env("SNOWFLAKE_DOCKER_ARGS", &network)
        .env("AWS_ENDPOINT_URL", from_container(&endpoint))
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env("HOME", tempfile::tempdir().unwrap().path())
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN"));
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stderr.contains("test-a-flake.sh: using podman"), "{stderr}");
    assert!(stdout.contains("example-per-host: ok value="), "{stdout}");
    assert!(stdout.contains("published: 1 of 1 value(s) in 1 PutMetricData call(s)"), "{stdout}");
}

#[test]
fn test_a_flake_finds_podman_when_docker_is_missing() {
    // A stand-in `podman` on a PATH without docker: the script picks podman and builds with it.
    let bin = tempfile::tempdir().unwrap();
    let record = bin.path().join("calls");
    let podman = bin.path().join("podman");
    std::fs::write(&podman, format!("#!/bin/sh\nprintf '%s\\n' \"$*\" >> {}\n", record.display())).unwrap();
    std::fs::set_permissions(&podman, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path: Vec<PathBuf> = std::iter::once(bin.path().to_path_buf())
        .chain(["/usr/local/bin", "/usr/bin", "/bin"].into_iter().map(PathBuf::from))
        .filter(|dir| dir == bin.path() || !dir.join("docker").exists())
        .collect();
    let (code, stdout, stderr) = run(Command::new(repo_path("test-a-flake.sh"))
        .arg("example-hourly")
        .env("PATH", std::env::join_paths(path).unwrap())
        .env("HOME", bin.path())
        .env_remove("DOCKER"));
    assert_eq!(code, 0, "{stdout}{stderr}");
    let calls = std::fs::read_to_string(&record).unwrap();
    let calls: Vec<&str> = calls.lines().collect();
    assert_eq!(calls[0], "build --tag specialsnowflake:test .");
    assert!(calls[1].starts_with("run --rm ") && calls[1].ends_with("specialsnowflake:test snowflake once -- example-hourly"), "{calls:?}");
}
