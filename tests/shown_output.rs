//! What the daemon shows of untrusted text (issue 22, items 4 and 5): every piece a command, an
//! exporter or a server hands us is bounded before it reaches a flake log or `snowflake once`'s
//! terminal, and one redactor masks every secret there: creds.json values, header values filled
//! from the daemon's environment, and a secret's head left at a capture limit.
//!
//! Each test runs the real binary (`snowflake once --dry-run`, so no AWS call is made) against a
//! real `/bin/sh` command or a real HTTP server on loopback in the test.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;

use common::{Daemon, Workspace, run};
use serde_json::json;

/// Far more than any bounded line needs, far less than what an unbounded one wrote (16 MiB).
const BOUND: usize = 64 * 1024;

fn dry_once(workspace: &Workspace, pattern: &str, env: &[(&str, &str)]) -> (i32, String, String) {
    let mut command = workspace.snowflake();
    command
        .args(["--dry-run", "once", pattern])
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env("AWS_REGION", "eu-central-1");
    for (name, value) in env {
        command.env(name, value);
    }
    run(&mut command)
}

fn longest_line(text: &str) -> usize {
    text.lines().map(str::len).max().unwrap_or(0)
}

#[test]
fn a_huge_metric_name_a_doubled_label_and_a_long_bad_value_give_bounded_lines() {
    let workspace = Workspace::new();
    // Three hostile lines among good ones: a 14 MB metric name, a label given twice with a 0.5 MB
    // value, and a value of "1" followed by 0.5 MB of letters.
    let command = "echo 'good 1'; head -c 14000000 /dev/zero | tr '\\0' n; echo ' 1'; \
                   printf 'twice{a=\"1\",a=\"%s\"} 2\\n' \"$(head -c 500000 /dev/zero | tr '\\0' v)\"; \
                   printf 'bad 1%s\\n' \"$(head -c 500000 /dev/zero | tr '\\0' a)\"; echo 'also_good 3'";
    workspace.add(
        "hostile",
        json!({"flakeName": "hostile", "flakeCronstring": "@hourly", "flakeOutput": "prometheus", "flakeCommand": command,
               "flakeMetricNamespace": "T", "flakeTimeout": 60}),
    );
    let (code, stdout, stderr) = dry_once(&workspace, "hostile", &[]);
    assert_eq!(code, 1, "a partial run is not ok; stderr: {}", &stderr[..stderr.len().min(2000)]);
    let log = workspace.log_of("hostile");
    assert!(log.contains("partial") && log.contains("rejected=3"), "{}", &log[..log.len().min(3000)]);
    assert!(stdout.contains("rejected=3"), "{}", &stdout[..stdout.len().min(3000)]);
    for (what, text) in [("log", &log), ("once's output", &stdout), ("stderr", &stderr)] {
        assert!(text.len() < BOUND, "{what} is {} bytes", text.len());
        assert!(longest_line(text) < 4096, "{what}'s longest line is {} bytes", longest_line(text));
    }
    assert!(log.contains("truncated, "), "a cut is marked: {log}");
}

#[test]
fn once_masks_creds_in_rejected_json_members_nagios_text_and_scrape_errors() {
    let workspace = Workspace::new();
    let secret = "correct-horse-battery";
    std::fs::write(workspace.root.path().join("creds.json"), json!({"DB_PASSWORD": secret}).to_string()).unwrap();
    workspace.add(
        "json",
        json!({"flakeName": "json", "flakeCronstring": "@hourly", "flakeOutput": "json", "flakeMetricNamespace": "T",
               "flakeCommand": format!("echo '{{\"ok\": 1, \"{secret}\": \"not a number {secret}\"}}'")}),
    );
    workspace.add(
        "nagios",
        json!({"flakeName": "nagios", "flakeCronstring": "@hourly", "flakeOutput": "nagios", "flakeMetricNamespace": "T",
               "flakeCommand": format!("echo 'LOGIN OK - as {secret} | time=1s;;;; bad={secret}'")}),
    );
    workspace.add(
        "scrape",
        json!({"flakeName": "scrape", "flakeCronstring": "@hourly", "flakeType": "scrape", "flakeMetricNamespace": "T",
               "flakeUrl": format!("http://127.0.0.1:9/metrics?token={secret}")}),
    );
    for flake in ["json", "nagios", "scrape"] {
        let (_, stdout, stderr) = dry_once(&workspace, flake, &[]);
        let shown = format!("{stdout}{stderr}");
        assert!(shown.contains(&format!("{flake}: ")), "{flake} ran: {shown}");
        assert!(!shown.contains(secret), "{flake}: once printed the secret: {shown}");
        assert!(shown.contains("********"), "{flake}: the secret was masked, not left out: {shown}");
        let log = workspace.log_of(flake);
        assert!(!log.contains(secret), "{flake}: {log}");
    }
}

#[test]
fn a_dry_run_masks_creds_in_the_batches_it_prints() {
    let workspace = Workspace::new();
    let secret = "correct-horse-battery";
    std::fs::write(workspace.root.path().join("creds.json"), json!({"DB_PASSWORD": secret}).to_string()).unwrap();
    workspace.add(
        "dims",
        json!({"flakeName": "dims", "flakeCronstring": "@hourly", "flakeOutput": "json", "flakeMetricNamespace": "T",
               "flakeCommand": "echo \"[{\\\"name\\\": \\\"x\\\", \\\"value\\\": 1, \\\"dimensions\\\": {\\\"who\\\": \\\"$DB_PASSWORD\\\"}}]\""}),
    );
    let (code, stdout, stderr) = dry_once(&workspace, "dims", &[]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let batch = stdout.lines().find(|line| line.contains("\"dryRun\":\"PutMetricData\"")).expect("the batch, printed");
    assert!(batch.contains("\"********\""), "the dimension value is masked: {batch}");
    assert!(!stdout.contains(secret), "{stdout}");
}

/// A one-request HTTP server that answers 200 with the request's headers as the body: an
/// exporter's error page that echoes what it was sent.
fn echoing_server() -> (u16, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let thread = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut request = String::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap() == 0 || line == "\r\n" {
                break;
            }
            request.push_str(&line);
        }
        let body = format!("error: unexpected request\n{request}");
        write!(stream, "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len()).unwrap();
        let _ = stream.read(&mut [0; 16]);
    });
    (port, thread)
}

#[test]
fn a_header_value_from_the_daemons_environment_is_masked_when_a_server_echoes_it() {
    let workspace = Workspace::new();
    let token = "env-only-token-5f3a9c";
    let (port, server) = echoing_server();
    workspace.add(
        "echo",
        json!({"flakeName": "echo", "flakeCronstring": "@hourly", "flakeType": "scrape", "flakeMetricNamespace": "T",
               "flakeUrl": format!("http://127.0.0.1:{port}/metrics"),
               "flakeHeaders": {"Authorization": "Bearer ${env:SCRAPE_TOKEN}"}}),
    );
    let (code, stdout, stderr) = dry_once(&workspace, "echo", &[("SCRAPE_TOKEN", token)]);
    server.join().unwrap();
    let log = workspace.log_of("echo");
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(log.contains("rejected") && log.contains("authorization: ********"), "the echo reached the log, masked: {log}");
    for (what, text) in [("log", &log), ("stdout", &stdout), ("stderr", &stderr)] {
        assert!(!text.contains(token) && !text.contains("env-only"), "{what} shows the token: {text}");
    }
}

#[test]
fn a_secret_cut_by_the_capture_limit_does_not_leak_its_head() {
    let workspace = Workspace::new();
    let secret = "ahunter22-long-secret-value";
    std::fs::write(workspace.root.path().join("creds.json"), json!({"API_KEY": secret}).to_string()).unwrap();
    // 163 lines of 400 bytes, then a line whose secret straddles the 64 KiB capture limit:
    // 65,200 + 329 bytes come before it, so only its first 7 bytes ("ahunter") are kept.
    let command = "i=0; while [ $i -lt 163 ]; do printf '%0399d\\n' 0; i=$((i+1)); done; \
                   printf '%0329d' 0; echo \"$API_KEY and more\"";
    workspace.add("job", json!({"flakeName": "job", "flakeCronstring": "@hourly", "flakeType": "job", "flakeCommand": command}));
    let (code, stdout, stderr) = dry_once(&workspace, "job", &[]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let log = workspace.log_of("job");
    assert!(log.contains("output_truncated=true"), "the output reached the limit: {}", &log[..log.len().min(500)]);
    let last = log.lines().rfind(|line| line.starts_with("  stdout|")).unwrap();
    assert!(last.ends_with("********"), "the cut secret's head is masked: {last}");
    assert!(!log.contains("ahunt"), "{last}");
}

#[test]
fn check_rejects_a_password_in_flake_url_without_printing_it() {
    let workspace = Workspace::new();
    workspace.add(
        "s",
        json!({"flakeName": "s", "flakeCronstring": "@hourly", "flakeType": "scrape", "flakeMetricNamespace": "T",
               "flakeUrl": "http://admin:pw-hunter22@127.0.0.1:9100/metrics"}),
    );
    let (code, stdout, stderr) = run(workspace.snowflake().arg("check"));
    let shown = format!("{stdout}{stderr}");
    assert_eq!(code, 1, "{shown}");
    assert!(shown.contains("flakeUrl: holds a user name or password") && shown.contains("flakeHeaders"), "{shown}");
    assert!(!shown.contains("pw-hunter22"), "{shown}");
}

/// A creds.json value pasted into the wrong field of a flake file is quoted back by the field's
/// error. Every command that shows that error masks it: the daemon's own log (not a flake log),
/// `check`, `once` and `plan`, and the daemon's log also on a SIGHUP reload.
#[test]
fn a_creds_value_quoted_by_a_flake_files_error_is_masked_in_the_daemons_log_and_every_command() {
    let workspace = Workspace::new();
    let secret = "pasted-hunter22-secret";
    std::fs::write(workspace.root.path().join("creds.json"), json!({"DB_PASSWORD": secret}).to_string()).unwrap();
    let flake = |name: &str| {
        json!({"flakeName": name, "flakeCronstring": "@hourly", "flakeCommand": "echo 1",
                                    "flakeMetricNamespace": "T", "flakeMetricName": "m", "flakeUnit": secret})
    };
    workspace.add("pasted", flake("pasted"));
    // Quoted without a creds.json value, the same error shows the value: the masking is real.
    let plain = Workspace::new();
    plain.add("pasted", flake("pasted"));
    let (_, stdout, stderr) = run(plain.snowflake().arg("check"));
    assert!(format!("{stdout}{stderr}").contains(&format!("flakeUnit: \"{secret}\"")), "{stdout}{stderr}");

    for args in [&["check"][..], &["--dry-run", "once"], &["plan"]] {
        let (_, stdout, stderr) =
            run(workspace.snowflake().args(args).env("AWS_REGION", "eu-central-1").env("AWS_ENDPOINT_URL", "http://127.0.0.1:9"));
        let shown = format!("{stdout}{stderr}");
        assert!(shown.contains("flakeUnit: \"********\""), "{args:?}: {shown}");
        assert!(!shown.contains("hunter22"), "{args:?}: {shown}");
    }

    let mut command = workspace.snowflake();
    command.env("AWS_REGION", "eu-central-1").env("AWS_ENDPOINT_URL", "http://127.0.0.1:9");
    let daemon = Daemon::start(command.arg("--dry-run"), &workspace, &[]);
    daemon.wait_for(std::time::Duration::from_secs(10), "the flake file's error", || daemon.log().contains("flakeUnit"));
    workspace.add("pasted-again", flake("pasted-again"));
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(daemon.child.id() as i32), nix::sys::signal::Signal::SIGHUP).unwrap();
    daemon.wait_for(std::time::Duration::from_secs(10), "the reload's error", || daemon.log().contains("pasted-again.json: flakeUnit"));
    let log = daemon.log();
    assert!(log.contains("flakeUnit: \"********\""), "{log}");
    assert!(!log.contains("hunter22"), "{log}");
    daemon.stop(std::time::Duration::from_secs(15));
}
