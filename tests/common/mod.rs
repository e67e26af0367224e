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
        .env("SNOWFLAKE_LOG_LEVEL", "warn")
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
