//! Flakes in their own images (SPEC 14), against a real podman API service that each test starts
//! on a socket of its own (`podman system service`, the Docker Engine API): a value from inside
//! the image reaches LocalStack; `flakeBuild` builds once and again on a change; a timed-out
//! run's container is gone within 10 s; a daemon stopped mid-run removes the run's container
//! before it exits; a restarted daemon removes what a `kill -9`ed one left, and only that; 50
//! runs leave no container; an engine that is down fails only the image flakes, naming the
//! socket; an image without /bin/sh fails the run and says so.
//!
//! Needs podman and mmdebstrap (scripts/deps.sh installs them), and LocalStack for the first
//! test (scripts/localstack.sh); without them these tests fail, never pass silently.

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::json;

use common::{Daemon, Workspace, endpoint, repo_path, run, sdk, unique, with_aws};

const OWNER_LABEL: &str = "dev.specialsnowflake.owner";
const FLAKE_LABEL: &str = "dev.specialsnowflake.flake";

fn podman() -> Command {
    let mut command = Command::new("podman");
    if std::env::var_os("CONTAINERS_CONF").is_none() {
        command.env("CONTAINERS_CONF", repo_path("scripts/containers.conf"));
    }
    command
}

/// The Debian base image (made once per machine by scripts/podman-base.sh).
fn base_image() -> &'static str {
    static BASE: OnceLock<String> = OnceLock::new();
    BASE.get_or_init(|| {
        let (code, stdout, stderr) = run(&mut Command::new(repo_path("scripts/podman-base.sh")));
        assert_eq!(code, 0, "no base image (scripts/deps.sh installs podman and mmdebstrap):\n{stdout}{stderr}");
        stdout.trim().to_string()
    })
}

/// A podman API service of this test's own, stopped when dropped.
struct Engine {
    child: Child,
    dir: tempfile::TempDir,
}

impl Engine {
    fn start() -> Engine {
        base_image();
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("podman.sock");
        let log = std::fs::File::create(dir.path().join("service.log")).unwrap();
        let child = podman()
            // Builds through the API run like scripts/podman-image.sh's: no user namespaces here.
            .env("BUILDAH_ISOLATION", "chroot")
            .args(["--runtime", "runc", "--cgroup-manager", "cgroupfs", "system", "service", "--time=0"])
            .arg(format!("unix://{}", socket.display()))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("podman is not installed; scripts/deps.sh installs it");
        let engine = Engine { child, dir };
        let started = Instant::now();
        while !engine.answers() {
            assert!(started.elapsed() < Duration::from_secs(30), "podman's API service did not answer:\n{}", engine.service_log());
            std::thread::sleep(Duration::from_millis(100));
        }
        engine
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("podman.sock")
    }

    fn answers(&self) -> bool {
        std::os::unix::net::UnixStream::connect(self.socket()).is_ok()
    }

    fn service_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("service.log")).unwrap_or_default()
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// IDs of the containers (running or not) carrying `label` (`key=value`).
fn containers_with(label: &str) -> Vec<String> {
    let (code, stdout, stderr) = run(podman().args(["ps", "--all", "--quiet", "--filter", &format!("label={label}")]));
    assert_eq!(code, 0, "podman ps: {stderr}");
    stdout.lines().map(str::to_string).filter(|line| !line.is_empty()).collect()
}

fn wait_until(limit: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let started = Instant::now();
    while !condition() {
        assert!(started.elapsed() < limit, "waited {limit:?} for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn image_flake(name: &str, command: &str) -> serde_json::Value {
    json!({"flakeName": name, "flakeCronstring": "@every 2s", "flakeCommand": command, "flakeMetricNamespace": "Test/Containers",
           "flakeImage": base_image(), "flakeImagePull": "never"})
}

/// A job in the image, due every second, whose run lasts as long as `command` (timeout 900 s): a
/// container that is running when the test ends the daemon.
fn long_job_flake(name: &str, command: &str) -> serde_json::Value {
    let mut flake = image_flake(name, command);
    flake["flakeType"] = json!("job");
    flake["flakeTimeout"] = json!(900);
    flake["flakeCronstring"] = json!("@every 1s");
    flake
}

/// Prints 42 only from inside a container, without the daemon's AWS credentials, without the
/// engine's socket, on a read-only root.
/// (The repository, where the host runs the tests, is not in the image.)
const INSIDE_AND_SAFE: &str = "if [ ! -e \"$REPO/Cargo.toml\" ] && [ -z \"$AWS_SECRET_ACCESS_KEY\" ] \
     && [ ! -e /var/run/docker.sock ] && [ ! -e /run/podman/podman.sock ] && ! touch /probe 2>/dev/null \
     && [ \"$FROM_FLAKE\" = yes ] && [ \"$SNOWFLAKE_FLAKE_NAME\" = inside ]; then echo 42; else echo 0; fi";

#[tokio::test(flavor = "multi_thread")]
async fn a_metric_flakes_value_reaches_localstack_from_inside_its_own_image() {
    let endpoint = endpoint();
    let engine = Engine::start();
    let workspace = Workspace::new();
    let namespace = unique("Containers");
    let mut flake = image_flake("inside", INSIDE_AND_SAFE);
    flake["flakeMetricNamespace"] = json!(namespace);
    flake["flakeEnvironment"] = json!({"FROM_FLAKE": "yes", "REPO": env!("CARGO_MANIFEST_DIR")});
    flake["flakeContainer"] = json!({"memory": "128MiB", "cpus": 0.5, "network": "none"});
    workspace.add("inside", flake);
    let started = chrono::Utc::now();
    let daemon = Daemon::start(
        with_aws(&mut workspace.snowflake(), &endpoint).arg("--container-engine").arg(engine.socket()).arg("--flush-interval").arg("500ms"),
        &workspace,
        &[],
    );
    daemon.wait_for(Duration::from_secs(60), "a run in the image", || workspace.log_of("inside").contains(" ok "));
    let log = workspace.log_of("inside");
    assert!(log.contains("value=42"), "the run did not see itself in a safe container:\n{log}");
    assert!(daemon.metric("snowflake_container_starts_total{outcome=\"ok\"}").unwrap_or(0.0) >= 1.0, "{}", daemon.metrics());
    assert!(daemon.metric("snowflake_container_start_latency_seconds_count").unwrap_or(0.0) >= 1.0, "{}", daemon.metrics());
    let (status, _) = daemon.stop(Duration::from_secs(30));
    assert!(status.success());
    assert!(containers_with(&format!("{FLAKE_LABEL}=inside")).is_empty(), "a container outlived the daemon");

    let cloudwatch = sdk(&endpoint).await;
    let query = specialsnowflake::cloudwatch::sdk::MetricQuery {
        namespace: &namespace,
        metric_name: "inside",
        dimensions: &[],
        start_ms: started.timestamp_millis() - 60_000,
        end_ms: chrono::Utc::now().timestamp_millis() + 60_000,
        period_seconds: 60,
    };
    let buckets = cloudwatch.statistics("us-east-1", &query).await.unwrap();
    assert!(buckets.iter().any(|bucket| bucket.maximum == 42.0), "no 42 in LocalStack: {buckets:?}");
}

#[test]
fn flake_build_builds_once_and_again_when_a_file_changes() {
    let engine = Engine::start();
    let workspace = Workspace::new();
    let build = workspace.flakes().join("tool");
    std::fs::create_dir(&build).unwrap();
    std::fs::write(build.join("Dockerfile"), format!("FROM {}\nCOPY value /opt/value\n", base_image())).unwrap();
    std::fs::write(build.join("value"), "7\n").unwrap();
    let name = unique("built").to_ascii_lowercase();
    workspace.add(
        &name,
        json!({"flakeName": name, "flakeCronstring": "@every 1s", "flakeCommand": "cat /opt/value", "flakeMetricNamespace": "Test/Containers",
               "flakeBuild": "tool"}),
    );
    let daemon = Daemon::start(workspace.snowflake().arg("--dry-run").arg("--container-engine").arg(engine.socket()), &workspace, &[]);
    daemon.wait_for(Duration::from_secs(180), "two runs of the built image", || workspace.log_of(&name).matches("value=7").count() >= 2);
    assert_eq!(daemon.metric("snowflake_image_builds_total{outcome=\"ok\"}"), Some(1.0), "built once:\n{}", workspace.log_of(&name));
    std::fs::write(build.join("value"), "8\n").unwrap();
    daemon.wait_for(Duration::from_secs(180), "a run of the rebuilt image", || workspace.log_of(&name).contains("value=8"));
    assert_eq!(daemon.metric("snowflake_image_builds_total{outcome=\"ok\"}"), Some(2.0), "rebuilt once:\n{}", workspace.log_of(&name));

    // A broken Dockerfile: the build fails, the last built image keeps running.
    std::fs::write(build.join("Dockerfile"), "FROM localhost/no-such-base:never\n").unwrap();
    daemon.wait_for(Duration::from_secs(120), "the failed build in the log", || workspace.log_of(&name).contains("could not build"));
    let failed_at = workspace.log_of(&name).len();
    daemon.wait_for(Duration::from_secs(30), "a run after the failed build", || workspace.log_of(&name)[failed_at..].contains("value=8"));
    let builds_failed = daemon.metric("snowflake_image_builds_total{outcome=\"failed\"}");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        daemon.metric("snowflake_image_builds_total{outcome=\"failed\"}"),
        builds_failed,
        "a failed build is not retried until its files change"
    );
    let (status, _) = daemon.stop(Duration::from_secs(30));
    assert!(status.success());
    // The images this test built are its own to remove.
    let log = workspace.log_of(&name);
    let tags = log.lines().filter_map(|line| line.split("image \"built ").nth(1).map(|rest| rest.split(' ').next().unwrap().to_string()));
    for tag in tags {
        run(podman().args(["rmi", "--force", &tag]));
    }
}

#[test]
fn a_timed_out_runs_container_is_gone_within_ten_seconds() {
    let engine = Engine::start();
    let workspace = Workspace::new();
    let name = unique("stuck");
    let mut flake = image_flake(&name, "trap '' TERM; sleep 300");
    flake["flakeType"] = json!("job");
    flake["flakeTimeout"] = json!(2);
    workspace.add(&name, flake);
    let started = Instant::now();
    let (code, stdout, stderr) =
        run(workspace.snowflake().arg("--dry-run").arg("--container-engine").arg(engine.socket()).args(["once", &name]));
    let elapsed = started.elapsed();
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(stdout.contains("timeout"), "{stdout}{stderr}");
    assert!(containers_with(&format!("{FLAKE_LABEL}={name}")).is_empty(), "the container outlived its run");
    // The timeout is 2 s; the container must be gone within 10 s of it (SIGTERM ignored, so
    // SIGKILL after 5 s, then removal).
    assert!(elapsed < Duration::from_secs(2 + 10), "the run and its container took {elapsed:?} to end");
}

#[test]
fn after_kill_9_a_restarted_daemon_removes_the_leftover_and_only_it() {
    let engine = Engine::start();
    let workspace = Workspace::new();
    let name = unique("left");
    let mut flake = long_job_flake(&name, "sleep 600");
    workspace.add(&name, flake.clone());
    // Another owner's container with our labels' keys: it must survive.
    let decoy_flake = unique("decoy");
    let (code, _, stderr) = run(podman().args(["run", "-d", "--label", &format!("{OWNER_LABEL}=another-host:/var/lib/snowflake")]).args([
        "--label",
        &format!("{FLAKE_LABEL}={decoy_flake}"),
        base_image(),
        "sleep",
        "600",
    ]));
    assert_eq!(code, 0, "the decoy did not start: {stderr}");

    let daemon = Daemon::start(workspace.snowflake().arg("--dry-run").arg("--container-engine").arg(engine.socket()), &workspace, &[]);
    daemon.wait_for(Duration::from_secs(60), "the run's container", || !containers_with(&format!("{FLAKE_LABEL}={name}")).is_empty());
    daemon.kill9();
    let left = containers_with(&format!("{FLAKE_LABEL}={name}"));
    assert_eq!(left.len(), 1, "kill -9 leaves the run's container behind");

    // The flake is disabled now: whatever is removed was left, not started anew.
    flake["flakeEnabled"] = json!(false);
    workspace.add(&name, flake);
    let daemon = Daemon::start(workspace.snowflake().arg("--dry-run").arg("--container-engine").arg(engine.socket()), &workspace, &[]);
    wait_until(Duration::from_secs(30), "the leftover's removal", || containers_with(&format!("{FLAKE_LABEL}={name}")).is_empty());
    assert!(daemon.log().contains("removed containers a previous daemon on this host left"), "{}", daemon.log());
    let decoys = containers_with(&format!("{FLAKE_LABEL}={decoy_flake}"));
    assert_eq!(decoys.len(), 1, "another owner's container was removed");
    run(podman().args(["rm", "--force", "--time", "0", &decoys[0]]));
    drop(daemon);
    drop(engine);
}

#[test]
fn a_daemon_stopped_mid_run_removes_the_runs_container_before_it_exits() {
    let engine = Engine::start();
    let workspace = Workspace::new();
    let name = unique("stopping");
    // Ignores SIGTERM, so the stop path's SIGKILL and removal are what end it.
    let flake = long_job_flake(&name, "trap '' TERM; sleep 600");
    workspace.add(&name, flake);
    let daemon = Daemon::start(workspace.snowflake().arg("--dry-run").arg("--container-engine").arg(engine.socket()), &workspace, &[]);
    let label = format!("{FLAKE_LABEL}={name}");
    daemon.wait_for(Duration::from_secs(60), "the run's container running", || {
        let (code, stdout, stderr) =
            run(podman().args(["ps", "--quiet", "--filter", &format!("label={label}"), "--filter", "status=running"]));
        assert_eq!(code, 0, "podman ps: {stderr}");
        !stdout.trim().is_empty()
    });
    let running = containers_with(&label);
    assert_eq!(running.len(), 1, "one run, one container: {running:?}");

    let (status, _) = daemon.stop(Duration::from_secs(60));
    assert!(status.success(), "the daemon's stop failed: {status:?}");
    // At once, not eventually: nobody is left to remove it once the daemon has exited.
    assert!(containers_with(&label).is_empty(), "the daemon exited and left its run's container behind");
    let (code, _, _) = run(podman().args(["container", "exists", &running[0]]));
    assert_eq!(code, 1, "container {} still exists", running[0]);
}

#[test]
fn fifty_runs_leave_no_container() {
    let engine = Engine::start();
    let workspace = Workspace::new();
    let prefix = unique("fifty");
    for index in 0..10 {
        // Successes, failures and output past the capture limit alike.
        let command = match index % 3 {
            0 => "echo 1".to_string(),
            1 => "echo broken >&2; exit 3".to_string(),
            _ => "head -c 200000 /dev/zero | tr '\\0' x; echo".to_string(),
        };
        workspace.add(&format!("{prefix}-{index}"), image_flake(&format!("{prefix}-{index}"), &command));
    }
    let mut runs = 0;
    for _ in 0..5 {
        let (_, stdout, stderr) =
            run(workspace.snowflake().arg("--dry-run").arg("--container-engine").arg(engine.socket()).args(["once", &prefix]));
        runs += stdout.lines().filter(|line| line.starts_with(&prefix) && !line.contains("runs in a container")).count();
        assert!(stdout.contains(": ok value=1"), "{stdout}{stderr}");
        assert!(stdout.contains("exit status 3"), "{stdout}{stderr}");
    }
    assert_eq!(runs, 50);
    let (_, stdout, _) = run(podman().args(["ps", "--all", "--format", "{{.Labels}}"]));
    let ours = stdout.lines().filter(|labels| labels.contains(&prefix)).count();
    assert_eq!(ours, 0, "containers left behind:\n{stdout}");
}

#[test]
fn an_engine_that_is_down_fails_only_the_image_flakes_and_names_the_socket() {
    let workspace = Workspace::new();
    let socket = workspace.root.path().join("no-engine.sock");
    let prefix = unique("down");
    workspace.add(&format!("{prefix}-host"), json!({"flakeName": format!("{prefix}-host"), "flakeCronstring": "@every 2s", "flakeCommand": "echo 5", "flakeMetricNamespace": "Test/Containers"}));
    workspace.add(&format!("{prefix}-image"), image_flake(&format!("{prefix}-image"), "echo 6"));
    let (code, stdout, stderr) = run(workspace.snowflake().arg("--dry-run").arg("--container-engine").arg(&socket).args(["once", &prefix]));
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(stdout.contains(&format!("{prefix}-host: ok value=5")), "{stdout}{stderr}");
    let image_line = stdout.lines().find(|line| line.starts_with(&format!("{prefix}-image: error"))).unwrap_or_else(|| panic!("{stdout}"));
    assert!(image_line.contains(&socket.display().to_string()) && image_line.contains("--container-engine"), "{image_line}");

    // `check` warns, and still passes.
    let (code, stdout, stderr) = run(workspace.snowflake().arg("--container-engine").arg(&socket).arg("check"));
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("warning") && stdout.contains(&socket.display().to_string()), "{stdout}{stderr}");

    // The daemon runs the host flake all the same.
    let daemon = Daemon::start(workspace.snowflake().arg("--dry-run").arg("--container-engine").arg(&socket), &workspace, &[]);
    daemon.wait_for(Duration::from_secs(30), "the host flake and the failed image flake", || {
        workspace.log_of(&format!("{prefix}-host")).contains(" ok ") && workspace.log_of(&format!("{prefix}-image")).contains(" error ")
    });
    assert!(workspace.log_of(&format!("{prefix}-image")).contains(&socket.display().to_string()));
}

#[test]
fn an_image_without_bin_sh_fails_the_run_and_says_so() {
    let engine = Engine::start();
    let workspace = Workspace::new();
    let image = format!("localhost/snowflake-test-no-shell:{}", std::process::id());
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("hello"), "not a shell\n").unwrap();
    let tarball = root.path().join("root.tar");
    let (code, _, stderr) = run(Command::new("tar").arg("-cf").arg(&tarball).arg("-C").arg(root.path()).arg("hello"));
    assert_eq!(code, 0, "{stderr}");
    let (code, _, stderr) = run(podman().arg("import").arg("--quiet").arg(&tarball).arg(&image));
    assert_eq!(code, 0, "{stderr}");
    let name = unique("noshell");
    let mut flake = image_flake(&name, "echo 1");
    flake["flakeImage"] = json!(image);
    workspace.add(&name, flake);
    let (code, stdout, stderr) =
        run(workspace.snowflake().arg("--dry-run").arg("--container-engine").arg(engine.socket()).args(["once", &name]));
    run(podman().args(["rmi", "--force", &image]));
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(stdout.contains("has no /bin/sh"), "{stdout}{stderr}");
    assert!(containers_with(&format!("{FLAKE_LABEL}={name}")).is_empty());
}

#[test]
fn test_a_flake_runs_an_image_flake() {
    let engine = Engine::start();
    let workspace = Workspace::new();
    let name = unique("tried");
    workspace.add(&name, image_flake(&name, "echo 17"));
    let (code, stdout, stderr) = run(Command::new(repo_path("test-a-flake.sh"))
        .args(["--local", "--dry-run", &name])
        .env("SNOWFLAKE_BIN", env!("CARGO_BIN_EXE_snowflake"))
        .env("SNOWFLAKE_CONTAINER_ENGINE", engine.socket())
        .env("SNOWFLAKE_FLAKES", workspace.flakes())
        .env("SNOWFLAKE_LOG_DIR", workspace.logs())
        .env("SNOWFLAKE_STATE_DIR", workspace.state())
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.0.1:9"));
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains(&format!("{name}: ok value=17")), "{stdout}{stderr}");
    assert!(containers_with(&format!("{FLAKE_LABEL}={name}")).is_empty());
}

#[test]
fn an_image_removed_under_a_running_daemon_is_looked_for_again() {
    let engine = Engine::start();
    let workspace = Workspace::new();
    let image = format!("localhost/snowflake-test-gone:{}", std::process::id());
    let (code, _, stderr) = run(podman().args(["tag", base_image(), &image]));
    assert_eq!(code, 0, "{stderr}");
    let name = unique("gone");
    let mut flake = image_flake(&name, "echo 3");
    flake["flakeImage"] = json!(image);
    flake["flakeCronstring"] = json!("@every 1s");
    workspace.add(&name, flake);
    let daemon = Daemon::start(workspace.snowflake().arg("--dry-run").arg("--container-engine").arg(engine.socket()), &workspace, &[]);
    daemon.wait_for(Duration::from_secs(60), "a run", || workspace.log_of(&name).contains("value=3"));
    run(podman().args(["untag", &image, &image]));
    daemon.wait_for(Duration::from_secs(60), "runs skipped for want of the image", || {
        workspace.log_of(&name).contains("skipped") && workspace.log_of(&name).contains("flakeImagePull is \\\"never\\\"")
    });
    let (code, _, stderr) = run(podman().args(["tag", base_image(), &image]));
    assert_eq!(code, 0, "{stderr}");
    let before = workspace.log_of(&name).len();
    // A failed look is retried a minute later at the earliest.
    daemon.wait_for(Duration::from_secs(90), "a run once the image is back", || workspace.log_of(&name)[before..].contains("value=3"));
    run(podman().args(["untag", &image]));
}
