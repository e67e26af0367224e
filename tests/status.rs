//! `snowflake status`, `/status.json` and the page against real daemon processes (dry runs: no
//! CloudWatch needed): the Nagios exit codes for each of the four states, `--status-page off`,
//! and that no `creds.json` value or scrape header value reaches the page, the JSON or the
//! command's output. The browser test with LocalStack is `tests/status_browser.rs`.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Workspace, run};
use serde_json::{Value, json};

/// A daemon process (dry run) listening on its own port; killed when dropped.
struct Daemon {
    child: Child,
    port: u16,
}

impl Daemon {
    fn start(ws: &Workspace, extra: &[&str]) -> Daemon {
        let port = common::free_port();
        let listen = format!("127.0.0.1:{port}");
        let child = ws
            .snowflake()
            .env("AWS_REGION", "us-east-1")
            .args(["--dry-run", "run", "--listen", &listen, "--rescan-interval", "500ms"])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the daemon starts");
        let daemon = Daemon { child, port };
        wait_for("the listener to answer", Duration::from_secs(30), || get(port, "/healthz").is_some());
        daemon
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn status(&self) -> Value {
        let (code, body) = get(self.port, "/status.json").expect("/status.json answers");
        assert_eq!(code, 200, "{body}");
        serde_json::from_str(&body).unwrap_or_else(|error| panic!("{error}: {body}"))
    }

    fn flake(&self, name: &str) -> Value {
        self.status()["flakes"].as_array().unwrap().iter().find(|row| row["name"] == name).cloned().unwrap_or(Value::Null)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// (status code, body) of a GET, or `None` when nothing answers.
fn get(port: u16, path: &str) -> Option<(u16, String)> {
    common::http_get(port, path).map(|(code, _, body)| (code, body))
}

fn wait_for(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < within, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `snowflake status` with `args`: (exit code, stdout).
fn status_command(ws: &Workspace, args: &[&str]) -> (i32, String) {
    let (code, stdout, stderr) = run(ws.snowflake().env_remove("SNOWFLAKE_LISTEN").arg("status").args(args));
    assert!(!stdout.is_empty(), "status prints a status line; stderr: {stderr}");
    (code, stdout)
}

fn metric(name: &str, schedule: &str, command: &str) -> Value {
    json!({"flakeName": name, "flakeCronstring": schedule, "flakeCommand": command, "flakeType": "metric",
           "flakeMetricNamespace": "StatusTest", "flakeMetricName": name})
}

#[test]
fn no_answer_is_unknown() {
    let ws = Workspace::new();
    let port = common::free_port();
    let (code, stdout) = status_command(&ws, &["--url", &format!("http://127.0.0.1:{port}")]);
    assert_eq!(code, 3, "{stdout}");
    assert!(stdout.starts_with("SNOWFLAKE UNKNOWN - no answer from"), "{stdout}");
    // The default URL is the --listen address of the environment.
    let (code, stdout, _) = run(ws.snowflake().env("SNOWFLAKE_LISTEN", format!("0.0.0.0:{port}")).arg("status"));
    assert_eq!(code, 3);
    assert!(stdout.contains(&format!("http://127.0.0.1:{port}/status.json")), "{stdout}");
}

#[test]
fn all_well_then_a_failing_flake_is_a_warning() {
    let ws = Workspace::new();
    ws.add("fine", metric("fine", "@every 1s", "echo 42"));
    let daemon = Daemon::start(&ws, &[]);
    wait_for("a run of the fine flake", Duration::from_secs(30), || daemon.flake("fine")["last_run"]["result"] == "ok");
    let row = daemon.flake("fine");
    assert_eq!(row["last_value"]["value"], 42.0, "{row}");
    assert_eq!(row["type"], "metric");
    assert_eq!(row["schedule"], "@every 1s");
    assert!(row["next"].is_string() && row["member"].is_null(), "{row}");
    let (code, stdout) = status_command(&ws, &["--url", &daemon.url()]);
    assert_eq!(code, 0, "{stdout}");
    assert!(stdout.starts_with("SNOWFLAKE OK - 1 flakes"), "{stdout}");
    let table: Vec<&str> = stdout.lines().collect();
    assert!(table.iter().any(|line| line.starts_with("NEXT") && line.contains("LEFT") && line.contains("PASSED")), "{stdout}");
    assert!(table.iter().any(|line| line.contains(" ok ") && line.contains("fine")), "{stdout}");
    assert!(!stdout.contains('\x1b'), "no colour when not on a terminal: {stdout}");

    ws.add("broken-command", metric("broken-command", "@every 1s", "echo oops >&2; exit 3"));
    wait_for("the failing flake's run", Duration::from_secs(30), || daemon.flake("broken-command")["last_run"]["result"] == "failed");
    let row = daemon.flake("broken-command");
    assert_eq!(row["last_run"]["reason"], "exit status 3", "{row}");
    assert!(row["failures"].as_u64().unwrap() >= 1, "{row}");
    let (code, stdout) = status_command(&ws, &["--url", &daemon.url(), "-o", "wide"]);
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.starts_with("SNOWFLAKE WARNING - 2 flakes, 1 failing (broken-command)"), "{stdout}");
    assert!(stdout.contains("exit status 3"), "wide shows the reason: {stdout}");
    let (code, json_out) = status_command(&ws, &["--url", &daemon.url(), "-o", "json"]);
    assert_eq!(code, 1);
    let parsed: Value = serde_json::from_str(&json_out).unwrap();
    assert_eq!(parsed["flakes"].as_array().unwrap().len(), 2);
}

/// A tmpfs mounted for the test, unmounted when dropped.
struct SmallDisk(std::path::PathBuf);

impl SmallDisk {
    fn mount(at: &Path, size: &str) -> SmallDisk {
        let (code, _, stderr) = run(Command::new("mount").args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"]).arg(at));
        assert_eq!(code, 0, "this test mounts a small tmpfs to fill it up, which needs root: {stderr}");
        SmallDisk(at.to_path_buf())
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_spool_that_cannot_be_written_makes_the_daemon_critical() {
    let ws = Workspace::new();
    ws.add("fine", metric("fine", "@every 1s", "echo 7"));
    let _disk = SmallDisk::mount(&ws.state(), "4m");
    // Not a dry run: the spool is on the small disk.
    let port = common::free_port();
    let mut command = ws.snowflake();
    common::with_aws(&mut command, "http://127.0.0.1:9");
    let child =
        command.args(["run", "--listen", &format!("127.0.0.1:{port}")]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let daemon = Daemon { child, port };
    wait_for("the listener", Duration::from_secs(30), || get(port, "/healthz").is_some());
    wait_for("a run", Duration::from_secs(30), || daemon.flake("fine")["runs"].as_u64().unwrap_or(0) >= 1);
    let (code, stdout) = status_command(&ws, &["--url", &daemon.url()]);
    assert_eq!(code, 0, "healthy before the disk fills: {stdout}");
    // Fill the disk: every spool write now fails with ENOSPC.
    let filler = ws.state().join("filler");
    let mut file = std::fs::File::create(&filler).unwrap();
    let block = vec![0u8; 64 * 1024];
    while file.write_all(&block).is_ok() {}
    let _ = file.sync_all();
    wait_for("the daemon to report the spool", Duration::from_secs(30), || daemon.status()["header"]["healthy"] == false);
    let status = daemon.status();
    assert_eq!(status["header"]["spool"]["writable"], false, "{status}");
    let (code, stdout) = status_command(&ws, &["--url", &daemon.url()]);
    assert_eq!(code, 2, "{stdout}");
    assert!(stdout.starts_with("SNOWFLAKE CRITICAL - 1 flakes, daemon: spool: degraded"), "{stdout}");
    drop(daemon);
}

#[test]
fn status_page_off_leaves_healthz_and_metrics() {
    let ws = Workspace::new();
    ws.add("fine", metric("fine", "@every 1s", "echo 1"));
    let daemon = Daemon::start(&ws, &["--status-page", "off"]);
    assert_eq!(get(daemon.port, "/healthz").unwrap().0, 200);
    assert_eq!(get(daemon.port, "/metrics").unwrap().0, 200);
    assert_eq!(get(daemon.port, "/status.json").unwrap().0, 404);
    assert_eq!(get(daemon.port, "/").unwrap().0, 404);
    let (code, stdout) = status_command(&ws, &["--url", &daemon.url()]);
    assert_eq!(code, 3, "{stdout}");
    assert!(stdout.contains("--status-page off"), "{stdout}");
}

/// A server that answers every GET with Prometheus text holding the request's headers as label
/// values: whatever secret a scrape sends comes back in its series.
fn echo_server() -> (Daemon, u16) {
    let port = common::free_port();
    let script = format!(
        r#"
import http.server
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = 'echo{{auth="%s",key="%s"}} 1\n' % (self.headers.get('Authorization', ''), self.headers.get('X-Api-Key', ''))
        self.send_response(200)
        self.send_header('Content-Type', 'text/plain; version=0.0.4')
        self.end_headers()
        self.wfile.write(body.encode())
    def log_message(self, *args):
        pass
http.server.HTTPServer(('127.0.0.1', {port}), H).serve_forever()
"#
    );
    let child = Command::new("python3").args(["-c", &script]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("python3 runs");
    // Killed when dropped, like a daemon.
    let server = Daemon { child, port };
    wait_for("the echo server", Duration::from_secs(10), || TcpStream::connect(("127.0.0.1", port)).is_ok());
    (server, port)
}

#[test]
fn no_secret_reaches_the_page_the_json_or_the_command() {
    const CREDS_SECRET: &str = "s3cret-Pa55word-xyz";
    const CREDS_TOKEN: &str = "tok-creds-abc123";
    const LITERAL_HEADER: &str = "literal-header-value-987";
    let ws = Workspace::new();
    std::fs::write(ws.root.path().join("creds.json"), json!({"DB_PASSWORD": CREDS_SECRET, "API_TOKEN": CREDS_TOKEN}).to_string()).unwrap();
    let (_server, server_port) = echo_server();
    // A command that prints a secret into its series and its failure.
    ws.add(
        "leaky",
        json!({"flakeName": "leaky", "flakeCronstring": "@every 1s", "flakeType": "metric", "flakeMetricNamespace": "StatusTest",
               "flakeOutput": "prometheus", "flakeCommand": "printf 'leak{pw=\"%s\"} 1\\n' \"$DB_PASSWORD\""}),
    );
    ws.add(
        "leaky-fail",
        json!({"flakeName": "leaky-fail", "flakeCronstring": "@every 1s", "flakeType": "metric", "flakeMetricNamespace": "StatusTest",
               "flakeMetricName": "x", "flakeCommand": "echo \"$DB_PASSWORD\"; echo \"$DB_PASSWORD\" >&2; exit 4"}),
    );
    ws.add(
        "scraped",
        json!({"flakeName": "scraped", "flakeCronstring": "@every 1s", "flakeType": "scrape", "flakeMetricNamespace": "StatusTest",
               "flakeUrl": format!("http://127.0.0.1:{server_port}/metrics"),
               "flakeHeaders": {"Authorization": "Bearer ${env:API_TOKEN}", "X-Api-Key": LITERAL_HEADER}}),
    );
    let daemon = Daemon::start(&ws, &[]);
    wait_for("every flake's run", Duration::from_secs(40), || {
        let status = daemon.status();
        let rows = status["flakes"].as_array().unwrap();
        rows.len() == 3
            && rows.iter().all(|row| row["last_run"].is_object())
            && rows.iter().filter(|row| row["last_value"]["series"].is_number()).count() == 2
    });
    let status = daemon.status();
    let text = status.to_string();
    // The secrets were there to leak, and were masked.
    let leaky =
        &status["flakes"].as_array().unwrap().iter().find(|row| row["name"] == "leaky").unwrap()["last_value"]["first"][0]["series"];
    assert_eq!(leaky, "leak{pw=********}", "{status}");
    let scraped = status["flakes"].as_array().unwrap().iter().find(|row| row["name"] == "scraped").unwrap().clone();
    assert_eq!(scraped["last_value"]["first"][0]["series"], "echo{auth=********,key=********}", "{scraped}");
    let page = get(daemon.port, "/").unwrap().1;
    let (_, wide) = status_command(&ws, &["--url", &daemon.url(), "-o", "wide"]);
    let (_, json_out) = status_command(&ws, &["--url", &daemon.url(), "-o", "json"]);
    for secret in [CREDS_SECRET, CREDS_TOKEN, LITERAL_HEADER] {
        for (what, shown) in [("/status.json", &text), ("the page", &page), ("status -o wide", &wide), ("status -o json", &json_out)] {
            assert!(!shown.contains(secret), "{what} shows {secret}: {shown}");
        }
    }
    assert!(page.contains("********") && wide.contains("********"));
}
