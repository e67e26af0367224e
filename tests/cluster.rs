//! SPEC 15 with real processes: four `snowflake run` daemons (three, then one killed with `kill -9`
//! and one joining) share 30 cluster flakes on `@every 2s` through LocalStack's S3, each behind a
//! TCP proxy of this test that counts its S3 requests and can cut it off.
//!
//! Every run appends `flake scheduled-time member` to one ledger file (O_APPEND, one short line:
//! atomic), an exact record of who ran which scheduled time. It shows: no scheduled time runs
//! twice over the whole test; a killed member's flakes run elsewhere within 90 s; a joining member
//! runs its share within 90 s; a member cut off from S3 causes no duplicate; in steady state a
//! member makes at most 4 S3 requests a minute (counted at its proxy).

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use common::{Daemon, Workspace, endpoint, unique, with_aws};
use serde_json::json;

const FLAKES: usize = 30;

/// A TCP proxy in front of S3 for one member: counts HTTP requests, and can be paused (holds
/// every byte both ways: the member's requests time out, as when S3 is unreachable).
struct Proxy {
    port: u16,
    paused: Arc<AtomicBool>,
    requests: Arc<AtomicU64>,
}

impl Proxy {
    fn start(upstream: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (paused, requests) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)));
        let (accept_paused, accept_requests) = (paused.clone(), requests.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(&upstream) else { continue };
                let (client_read, server_write) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                let (paused_up, paused_down, counter) = (accept_paused.clone(), accept_paused.clone(), accept_requests.clone());
                std::thread::spawn(move || pump(client_read, server_write, &paused_up, Some(&counter)));
                std::thread::spawn(move || pump(server, client, &paused_down, None));
            }
        });
        Proxy { port, paused, requests }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn requests(&self) -> u64 {
        self.requests.load(Ordering::Acquire)
    }

    fn pause(&self, paused: bool) {
        self.paused.store(paused, Ordering::Release);
    }
}

/// Copies `from` to `to`, holding data while paused; counts request lines (` HTTP/1.1\r\n` ends
/// each; the JSON bodies the members write never contain it).
fn pump(mut from: TcpStream, mut to: TcpStream, paused: &AtomicBool, requests: Option<&AtomicU64>) {
    const REQUEST_LINE_END: &[u8] = b" HTTP/1.1\r\n";
    let mut buffer = vec![0u8; 64 * 1024];
    let mut tail: Vec<u8> = Vec::new();
    loop {
        let read = match from.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(read) => read,
        };
        while paused.load(Ordering::Acquire) {
            std::thread::sleep(Duration::from_millis(50));
        }
        if let Some(requests) = requests {
            let mut window = std::mem::take(&mut tail);
            window.extend_from_slice(&buffer[..read]);
            let found = window.windows(REQUEST_LINE_END.len()).filter(|window| *window == REQUEST_LINE_END).count();
            requests.fetch_add(found as u64, Ordering::AcqRel);
            tail = window[window.len().saturating_sub(REQUEST_LINE_END.len() - 1)..].to_vec();
        }
        if to.write_all(&buffer[..read]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Write);
}

/// One ledger line: a run of `flake` for `scheduled`, by `member`.
#[derive(Debug, Clone)]
struct Run {
    flake: String,
    scheduled: DateTime<Utc>,
    member: String,
}

fn ledger(path: &Path) -> Vec<Run> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let (flake, scheduled, member) = (words.next()?, words.next()?, words.next()?);
            let scheduled = DateTime::parse_from_rfc3339(scheduled).ok()?.with_timezone(&Utc);
            Some(Run { flake: flake.to_string(), scheduled, member: member.to_string() })
        })
        .collect()
}

/// Scheduled times run by more than one member (or twice by one).
fn duplicates(runs: &[Run]) -> Vec<String> {
    let mut seen: HashMap<(String, DateTime<Utc>), Vec<String>> = HashMap::new();
    for run in runs {
        seen.entry((run.flake.clone(), run.scheduled)).or_default().push(run.member.clone());
    }
    seen.into_iter().filter(|(_, members)| members.len() > 1).map(|((flake, at), members)| format!("{flake} {at} {members:?}")).collect()
}

struct Member {
    name: String,
    workspace: Workspace,
    proxy: Proxy,
    daemon: Option<Daemon>,
}

struct Cluster {
    endpoint: String,
    location: String,
    ledger: PathBuf,
    flake_dir: tempfile::TempDir,
}

impl Cluster {
    fn start_member(&self, name: &str) -> Member {
        let workspace = Workspace::new();
        for entry in std::fs::read_dir(self.flake_dir.path()).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), workspace.flakes().join(entry.file_name())).unwrap();
        }
        // creds.json hands the member's name to its commands (the daemon's own environment is not).
        std::fs::write(workspace.root.path().join("creds.json"), json!({ "MEMBER": format!("member-{name}") }).to_string()).unwrap();
        let upstream = self.endpoint.trim_start_matches("http://").to_string();
        let proxy = Proxy::start(upstream);
        let mut command = workspace.snowflake();
        with_aws(&mut command, &self.endpoint).env("AWS_ENDPOINT_URL_S3", proxy.url());
        let daemon = Daemon::start(&mut command, &workspace, &["--cluster", &self.location, "--cluster-member", &format!("member-{name}")]);
        Member { name: format!("member-{name}"), workspace, proxy, daemon: Some(daemon) }
    }

    fn runs(&self) -> Vec<Run> {
        ledger(&self.ledger)
    }
}

impl Member {
    fn daemon(&self) -> &Daemon {
        self.daemon.as_ref().expect("running")
    }

    /// The last lines of the daemon's log, headed by the member's name (for a failure message).
    fn log_tail(&self) -> String {
        let log = self.daemon().log();
        let lines: Vec<&str> = log.lines().collect();
        let metrics: Vec<String> =
            self.daemon().metrics().lines().filter(|line| line.starts_with("snowflake_cluster")).map(str::to_string).collect();
        format!("--- {} ---\n{}\n{}", self.name, metrics.join("\n"), lines[lines.len().saturating_sub(60)..].join("\n"))
    }

    fn held(&self) -> f64 {
        self.daemon().metric("snowflake_cluster_claims_held").unwrap_or(-1.0)
    }
}

fn wait_until(limit: Duration, what: &str, mut condition: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !condition() {
        assert!(started.elapsed() < limit, "waited {limit:?} for {what}");
        std::thread::sleep(Duration::from_millis(500));
    }
    started.elapsed()
}

/// Flakes `member` ran at scheduled times after `after`.
fn ran_by(runs: &[Run], member: &str, after: DateTime<Utc>) -> BTreeSet<String> {
    runs.iter().filter(|run| run.member == member && run.scheduled > after).map(|run| run.flake.clone()).collect()
}

/// Flakes run by anyone at scheduled times after `after`.
fn ran_after(runs: &[Run], after: DateTime<Utc>) -> BTreeSet<String> {
    runs.iter().filter(|run| run.scheduled > after).map(|run| run.flake.clone()).collect()
}

#[test]
fn cluster_flakes_run_once_across_real_daemons_through_s3() {
    let endpoint = endpoint();
    let bucket = unique("cluster").to_lowercase().replace('_', "-");
    let bucket: String = bucket.chars().take(63).collect();
    common::aws(&endpoint, &["s3api", "create-bucket", "--bucket", &bucket]);
    let flake_dir = tempfile::tempdir().unwrap();
    let ledger_dir = tempfile::tempdir().unwrap();
    let ledger_path = ledger_dir.path().join("ledger");
    for index in 0..FLAKES {
        let name = format!("shared-{index:02}");
        let command = format!("echo \"$SNOWFLAKE_FLAKE_NAME $SNOWFLAKE_SCHEDULED_TIME $MEMBER\" >> {}", ledger_path.display());
        common::write_flake(
            flake_dir.path(),
            &name,
            &json!({ "flakeName": name, "flakeCronstring": "@every 2s", "flakeType": "job", "flakeScope": "cluster", "flakeCommand": command }),
        );
    }
    let cluster = Cluster { endpoint, location: format!("s3://{bucket}/snowflake/"), ledger: ledger_path, flake_dir };
    let all: BTreeSet<String> = (0..FLAKES).map(|index| format!("shared-{index:02}")).collect();

    let mut members: BTreeMap<&str, Member> = BTreeMap::new();
    for name in ["a", "b", "c"] {
        members.insert(name, cluster.start_member(name));
    }

    // Steady: every flake runs, and the members hold 10 each.
    let start = Utc::now();
    wait_until(Duration::from_secs(120), "every flake to run", || ran_after(&cluster.runs(), start) == all);
    let mut held = Vec::new();
    let spread = Instant::now();
    while !held.iter().all(|count| *count == 10.0) || held.is_empty() {
        held = members.values().map(Member::held).collect();
        assert!(
            spread.elapsed() < Duration::from_secs(120),
            "claims not spread 10/10/10 but {held:?}; the members' logs:\n{}",
            members.values().map(Member::log_tail).collect::<Vec<_>>().join("\n")
        );
        std::thread::sleep(Duration::from_millis(500));
    }

    // Cost: a minute of steady state, counted at each member's proxy. The cycle after the last
    // claim changed still reads the changed leases: steady state begins a cycle later.
    std::thread::sleep(Duration::from_secs(35));
    let before: Vec<u64> = members.values().map(|member| member.proxy.requests()).collect();
    std::thread::sleep(Duration::from_secs(60));
    let per_minute: Vec<u64> = members.values().zip(&before).map(|(member, before)| member.proxy.requests() - before).collect();
    eprintln!("steady-state S3 requests per member in one minute: {per_minute:?}");
    assert!(per_minute.iter().all(|count| *count <= 4), "more than 4 S3 requests a minute: {per_minute:?}");
    assert!(per_minute.iter().all(|count| *count >= 2), "the proxies counted nothing: {per_minute:?}");

    // kill -9 of b while d joins: b's flakes run elsewhere within 90 s; d runs its share.
    let killed_at = Utc::now();
    let b_flakes = ran_by(&cluster.runs(), "member-b", killed_at - chrono::TimeDelta::seconds(6));
    assert!(!b_flakes.is_empty());
    members.get_mut("b").unwrap().daemon.take().unwrap().kill9();
    members.insert("d", cluster.start_member("d"));
    let takeover = wait_until(Duration::from_secs(90), "the killed member's flakes to run elsewhere", || {
        let runs = cluster.runs();
        let after: BTreeSet<String> =
            runs.iter().filter(|run| run.scheduled > killed_at && run.member != "member-b").map(|run| run.flake.clone()).collect();
        b_flakes.is_subset(&after)
    });
    eprintln!("taken over after kill -9 within {takeover:?}");
    let joined = wait_until(Duration::from_secs(90).saturating_sub(takeover), "the joining member to run its share", || {
        ran_by(&cluster.runs(), "member-d", killed_at).len() >= 7
    });
    eprintln!("joining member running its share {:?} after it started", takeover + joined);

    // Cut a off from S3 for 85 s: it stops before others take its flakes; nothing runs twice.
    let a = &members["a"];
    let cut_at = Utc::now();
    a.proxy.pause(true);
    std::thread::sleep(Duration::from_secs(85));
    let runs = cluster.runs();
    let a_late = runs.iter().filter(|run| run.member == "member-a" && run.scheduled > cut_at + chrono::TimeDelta::seconds(42)).count();
    assert_eq!(a_late, 0, "a cut-off member stops running cluster flakes within its trust period");
    let recent = ran_after(&runs, Utc::now() - chrono::TimeDelta::seconds(6));
    assert_eq!(recent, all, "the others run every flake while a is cut off");
    a.proxy.pause(false);
    std::thread::sleep(Duration::from_secs(40));

    for member in members.values_mut() {
        if let Some(daemon) = member.daemon.take() {
            let log = daemon.log();
            assert!(log.contains("took the cluster flake"), "{}'s log says what it took:\n{log}", member.name);
            daemon.stop(Duration::from_secs(30));
        }
        let _ = &member.workspace;
    }
    let runs = cluster.runs();
    let duplicates = duplicates(&runs);
    eprintln!("{} runs in the ledger, {} duplicates", runs.len(), duplicates.len());
    assert!(duplicates.is_empty(), "scheduled times run twice: {duplicates:#?}");
    assert!(runs.len() > FLAKES * 100, "the ledger holds the test's runs ({})", runs.len());
}
