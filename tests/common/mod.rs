//! Helpers shared by the integration tests: running the `snowflake` binary, and reaching the
//! LocalStack instance that `scripts/test.sh` starts.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The `snowflake` binary under test, with a predictable environment: UTC schedules, no IMDS
/// lookups that hang, logs quiet unless asked.
pub fn snowflake() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_snowflake"));
    command
        .env("SNOWFLAKE_TIMEZONE", "UTC")
        .env_remove("SNOWFLAKE_LOG_LEVEL")
        // A closed port: IMDS lookups fail at once instead of waiting on 169.254.169.254.
        .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.0.1:9");
    command
}

/// Runs a command and returns (exit code, stdout, stderr).
pub fn run(command: &mut Command) -> (i32, String, String) {
    let Output { status, stdout, stderr } = command.output().expect("snowflake binary runs");
    (status.code().unwrap_or(-1), String::from_utf8_lossy(&stdout).into_owned(), String::from_utf8_lossy(&stderr).into_owned())
}

/// A path inside the repository.
pub fn repo_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

/// The shared LocalStack that `scripts/test.sh` started. Integration tests fail loudly without it.
pub fn endpoint() -> String {
    std::env::var("SNOWFLAKE_TEST_ENDPOINT").unwrap_or_else(|_| {
        panic!(
            "SNOWFLAKE_TEST_ENDPOINT is not set: this integration test needs LocalStack. \
             Run the suite with scripts/test.sh, which installs and starts it."
        )
    })
}

/// Points a `snowflake` command at a LocalStack endpoint with test credentials.
pub fn with_aws<'c>(command: &'c mut Command, endpoint: &str) -> &'c mut Command {
    command
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN")
}

/// The real SDK client, talking to `endpoint`.
pub async fn sdk(endpoint: &str) -> specialsnowflake::cloudwatch::sdk::SdkCloudWatch {
    // SAFETY of the environment: tests only ever set these to the same test values.
    for (key, value) in [("AWS_ACCESS_KEY_ID", "test"), ("AWS_SECRET_ACCESS_KEY", "test"), ("AWS_REGION", "us-east-1")] {
        assert!(std::env::var(key).as_deref() == Ok(value), "{key} must be {value:?} (scripts/test.sh sets it)");
    }
    specialsnowflake::cloudwatch::sdk::SdkCloudWatch::with_endpoint(endpoint).await
}

/// Writes a flake file `name.json` into `dir`.
pub fn write_flake(dir: &Path, name: &str, flake: &serde_json::Value) -> PathBuf {
    let path = dir.join(format!("{name}.json"));
    std::fs::write(&path, serde_json::to_string_pretty(flake).unwrap()).unwrap();
    path
}

/// A temporary working area with `flakes/`, `logs/` and `state/` for one `snowflake` invocation.
pub struct Workspace {
    pub root: tempfile::TempDir,
}

impl Workspace {
    pub fn new() -> Workspace {
        let root = tempfile::tempdir().unwrap();
        for dir in ["flakes", "logs", "state"] {
            std::fs::create_dir(root.path().join(dir)).unwrap();
        }
        Workspace { root }
    }

    pub fn flakes(&self) -> PathBuf {
        self.root.path().join("flakes")
    }

    pub fn logs(&self) -> PathBuf {
        self.root.path().join("logs")
    }

    pub fn state(&self) -> PathBuf {
        self.root.path().join("state")
    }

    pub fn add(&self, name: &str, flake: serde_json::Value) -> PathBuf {
        write_flake(&self.flakes(), name, &flake)
    }

    /// `snowflake` with this workspace's directories.
    pub fn snowflake(&self) -> Command {
        let mut command = snowflake();
        command
            .current_dir(self.root.path())
            .env("SNOWFLAKE_FLAKES", self.flakes())
            .env("SNOWFLAKE_LOG_DIR", self.logs())
            .env("SNOWFLAKE_STATE_DIR", self.state())
            .env("SNOWFLAKE_CREDS", self.root.path().join("creds.json"));
        command
    }

    pub fn log_of(&self, flake: &str) -> String {
        std::fs::read_to_string(self.logs().join(format!("{flake}.log"))).unwrap_or_default()
    }
}

/// A name no other test (or earlier run against the same LocalStack) uses.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    format!("{prefix}-{}-{nanos:x}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// A LocalStack instance of a test's own, for tests that stop and restart it.
pub struct LocalStack {
    pub port: u16,
    pid: Option<u32>,
    dir: tempfile::TempDir,
}

impl LocalStack {
    pub fn start() -> LocalStack {
        let dir = tempfile::tempdir().expect("temp dir");
        let (port, pid) = Self::launch(dir.path(), None);
        LocalStack { port, pid: Some(pid), dir }
    }

    fn launch(dir: &Path, port: Option<u16>) -> (u16, u32) {
        let mut command = Command::new(repo_path("scripts/localstack.sh"));
        command.arg("start").arg(dir.join("instance"));
        if let Some(port) = port {
            command.arg(port.to_string());
        }
        let (code, stdout, stderr) = run(&mut command);
        assert_eq!(code, 0, "LocalStack did not start: {stderr}");
        let mut words = stdout.split_whitespace();
        let port = words.next().and_then(|w| w.parse().ok()).expect("port");
        let pid = words.next().and_then(|w| w.parse().ok()).expect("pid");
        (port, pid)
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// How many requests of `operation` (e.g. "PutMetricData") this instance has logged: a count
    /// independent of SpecialSnowflake's own.
    pub fn requests(&self, operation: &str) -> usize {
        let log = std::fs::read_to_string(self.dir.path().join("instance/localstack.log")).unwrap_or_default();
        let needle = format!("AWS cloudwatch.{operation} => ");
        log.lines().filter(|line| line.contains(&needle)).count()
    }

    pub fn stop(&mut self) {
        if let Some(pid) = self.pid.take() {
            run(Command::new(repo_path("scripts/localstack.sh")).arg("stop").arg(pid.to_string()));
        }
    }

    /// Starts again on the same port (its data from before is gone: LocalStack wipes it).
    pub fn restart(&mut self) {
        self.stop();
        let (_, pid) = Self::launch(self.dir.path(), Some(self.port));
        self.pid = Some(pid);
    }
}

impl Drop for LocalStack {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A stand-in instance metadata service (`scripts/fake-imds.py`), for flakes that use `${aws:...}`
/// placeholders, such as the shipped host-alarms example. Stopped when dropped.
pub struct FakeImds {
    child: std::process::Child,
    pub endpoint: String,
    pub instance_id: String,
}

impl FakeImds {
    pub fn start() -> FakeImds {
        use std::io::BufRead;
        let instance_id = "i-0fa4e0ddc0ffee123".to_string();
        let mut child = Command::new("python3")
            .arg(repo_path("scripts/fake-imds.py"))
            .args(["--instance-id", &instance_id, "--region", "us-east-1"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("python3 runs scripts/fake-imds.py: the tests need python3");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let port: u16 = line.trim().parse().unwrap_or_else(|_| panic!("fake-imds.py printed {line:?}, not its port"));
        FakeImds { child, endpoint: format!("http://127.0.0.1:{port}"), instance_id }
    }

    /// Points `command` at this metadata service.
    pub fn serve<'c>(&self, command: &'c mut Command) -> &'c mut Command {
        command.env("AWS_EC2_METADATA_SERVICE_ENDPOINT", &self.endpoint)
    }
}

impl Drop for FakeImds {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free loopback port (racy in theory, fine for tests).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A `snowflake run` daemon under test, with its output captured in the workspace.
pub struct Daemon {
    pub child: std::process::Child,
    pub port: u16,
    pub output: PathBuf,
}

impl Daemon {
    /// Starts `command` (a `snowflake` with its environment set) as `run` with extra arguments.
    pub fn start(command: &mut Command, workspace: &Workspace, args: &[&str]) -> Daemon {
        let port = free_port();
        let output = workspace.root.path().join(format!("daemon-{port}.log"));
        let log = std::fs::File::create(&output).unwrap();
        let child = command
            .env("SNOWFLAKE_LOG_LEVEL", "info")
            .arg("run")
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(args)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("daemon starts");
        let daemon = Daemon { child, port, output };
        daemon.wait_for(std::time::Duration::from_secs(30), "/healthz to answer", || {
            daemon.get("/healthz").is_some_and(|(status, _)| status == 200)
        });
        daemon
    }

    /// `GET path` on the daemon's listener: (status, body).
    pub fn get(&self, path: &str) -> Option<(u16, String)> {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        stream.set_read_timeout(Some(std::time::Duration::from_secs(5))).ok()?;
        write!(stream, "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).ok()?;
        let status = response.split_whitespace().nth(1)?.parse().ok()?;
        let body = response.split_once("\r\n\r\n").map(|(_, body)| body.to_string()).unwrap_or_default();
        Some((status, body))
    }

    pub fn metrics(&self) -> String {
        self.get("/metrics").map(|(_, body)| body).unwrap_or_default()
    }

    /// The value of a metric line starting with `prefix` (name and labels), if present.
    pub fn metric(&self, prefix: &str) -> Option<f64> {
        self.metrics().lines().find(|line| line.starts_with(prefix)).and_then(|line| line.rsplit(' ').next()?.parse().ok())
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.output).unwrap_or_default()
    }

    /// Polls `condition` every 200 ms until it holds; fails the test with the daemon's log if not.
    pub fn wait_for(&self, limit: std::time::Duration, what: &str, mut condition: impl FnMut() -> bool) {
        let started = std::time::Instant::now();
        while !condition() {
            assert!(started.elapsed() < limit, "waited {limit:?} for {what}; daemon log:\n{}", self.log());
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    }

    /// SIGTERM, then waits for the exit status (failing after `limit`).
    pub fn stop(mut self, limit: std::time::Duration) -> (std::process::ExitStatus, std::time::Duration) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.id() as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
        let started = std::time::Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status, started.elapsed());
            }
            if started.elapsed() > limit {
                let _ = self.child.kill();
                panic!("the daemon did not stop within {limit:?} of SIGTERM; log:\n{}", self.log());
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// `kill -9`: no shutdown code runs.
    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The Python venv `scripts/test.sh` installed (LocalStack, croniter, prometheus-client).
pub fn venv_python() -> PathBuf {
    let venv = std::env::var("SNOWFLAKE_TEST_VENV")
        .unwrap_or_else(|_| panic!("SNOWFLAKE_TEST_VENV is not set: run the suite with scripts/test.sh"));
    Path::new(&venv).join("bin/python")
}

/// An AWS CLI call against `endpoint` in us-east-1 (the independent client from the test venv),
/// as JSON; the call must succeed.
pub fn aws(endpoint: &str, args: &[&str]) -> serde_json::Value {
    let (code, stdout, stderr) = run(Command::new(venv_python().with_file_name("aws"))
        .args(["--endpoint-url", endpoint, "--region", "us-east-1", "--output", "json"])
        .args(args)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test"));
    assert_eq!(code, 0, "aws {args:?}: {stderr}");
    serde_json::from_str(&stdout).unwrap()
}

/// A plain HTTP/1.0 GET on a loopback port (no chunked body to undo): (status code, head, body),
/// or `None` when nothing answers.
pub fn http_get(port: u16, path: &str) -> Option<(u16, String, String)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(std::time::Duration::from_secs(10))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    let (head, body) = answer.split_once("\r\n\r\n")?;
    let code = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((code, head.to_string(), body.to_string()))
}
