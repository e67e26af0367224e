//! `snowflake status`: reads `/status.json` of a running daemon and prints it in columns, in the
//! manner of `systemctl list-timers` (NEXT, LEFT, LAST, PASSED), and exits like a Nagios plugin
//! (see `status::verdict`): 0 all well, 1 a flake failing or late, 2 the daemon unhealthy, 3 no
//! answer. The first line is the plugin's status line. Colour only on a terminal.

use std::process::ExitCode;
use std::time::Duration;

use chrono::{DateTime, Utc};
use clap::{Args, ValueEnum};
use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use super::print_line;
use super::values::parse_listen;
use crate::status::model::{FlakeRow, Status};
use crate::status::text::{span, span_seconds};
use crate::status::{Verdict, judge};

/// Where `--listen` serves by default.
const DEFAULT_LISTEN: &str = "127.0.0.1:9731";
/// A daemon that does not answer within this is reported as not answering.
const TIMEOUT: Duration = Duration::from_secs(10);
/// Largest `/status.json` read (10,000 flakes take about 3.2 MB).
const MAX_BODY: usize = 256 << 20;

#[derive(Args, Debug, Clone)]
pub struct StatusOptions {
    /// The daemon's listener, e.g. http://127.0.0.1:9731 [default: the --listen address
    /// (SNOWFLAKE_LISTEN), else 127.0.0.1:9731].
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,

    /// table: like `systemctl list-timers`; wide: every column; json: the daemon's answer.
    #[arg(short = 'o', long = "output", value_enum, default_value = "table")]
    pub output: Format,

    /// Print again every --interval until interrupted.
    #[arg(long)]
    pub watch: bool,

    /// Time between two prints with --watch.
    #[arg(long, default_value = "2s", value_name = "DURATION", value_parser = crate::schedule::parse_flag_duration)]
    pub interval: Duration,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Wide,
    Json,
}

pub async fn run(options: &StatusOptions) -> ExitCode {
    let url = match status_url(options.url.as_deref(), std::env::var("SNOWFLAKE_LISTEN").ok().as_deref()) {
        Ok(url) => url,
        Err(reason) => {
            super::note(format_args!("error: {reason}"));
            return ExitCode::from(Verdict::Unknown.code());
        }
    };
    // Colour only for a person at a terminal who has not asked for none (https://no-color.org).
    let colour = std::io::IsTerminal::is_terminal(&std::io::stdout()) && std::env::var_os("NO_COLOR").is_none_or(|value| value.is_empty());
    loop {
        let verdict = once(&url, options.output, colour, options.watch).await;
        if !options.watch {
            return ExitCode::from(verdict.code());
        }
        tokio::select! {
            _ = tokio::time::sleep(options.interval.max(Duration::from_millis(200))) => {}
            _ = tokio::signal::ctrl_c() => return ExitCode::from(verdict.code()),
        }
    }
}

/// Fetches and prints once; the verdict.
async fn once(url: &str, format: Format, colour: bool, watching: bool) -> Verdict {
    let status = fetch(url).await;
    if watching && colour {
        // Clear the screen and go home, as `watch` does.
        print!("\x1b[H\x1b[2J");
    }
    let status = match status {
        Ok(status) => status,
        Err(reason) => {
            print_line(format_args!("SNOWFLAKE UNKNOWN - {reason}"));
            return Verdict::Unknown;
        }
    };
    let (verdict, line) = judge(&status);
    match format {
        Format::Json => print_line(serde_json::to_string_pretty(&status).expect("the status serializes")),
        Format::Table | Format::Wide => {
            print_line(paint(&line, verdict_colour(verdict), colour));
            for text in header_lines(&status) {
                print_line(text);
            }
            print_line("");
            for text in table(&status, format == Format::Wide, colour) {
                print_line(text);
            }
            print_line(format_args!("\n{} flakes listed.", status.flakes.len()));
        }
    }
    verdict
}

/// `--url`, else the `--listen` address from the environment, else the default; always ends in
/// `/status.json`.
pub fn status_url(url: Option<&str>, listen_env: Option<&str>) -> Result<String, String> {
    let base = match url {
        Some(url) => url.trim().trim_end_matches('/').to_string(),
        None => {
            let listen = listen_env.filter(|text| !text.trim().is_empty()).unwrap_or(DEFAULT_LISTEN);
            let address = parse_listen(listen)
                .map_err(|reason| format!("SNOWFLAKE_LISTEN: {reason}"))?
                .0
                .ok_or("SNOWFLAKE_LISTEN is off: the daemon serves no status; give --url")?;
            // A daemon listening on every address answers on the loopback one.
            let ip = match address.ip() {
                std::net::IpAddr::V4(ip) if ip.is_unspecified() => std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
                std::net::IpAddr::V6(ip) if ip.is_unspecified() => std::net::IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
                ip => ip,
            };
            format!("http://{}", std::net::SocketAddr::new(ip, address.port()))
        }
    };
    let base = if base.contains("://") { base } else { format!("http://{base}") };
    if !base.starts_with("http://") {
        return Err(format!("--url {base}: only http:// is served by the daemon's listener"));
    }
    Ok(if base.ends_with("/status.json") { base } else { format!("{base}/status.json") })
}

async fn fetch(url: &str) -> Result<Status, String> {
    let uri: hyper::Uri = url.parse().map_err(|error| format!("{url} is not a URL: {error}"))?;
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let request = hyper::Request::get(uri).body(Empty::new()).map_err(|error| format!("{url}: {error}"))?;
    let answer = async {
        let response = client.request(request).await.map_err(|error| format!("no answer from {url}: {}", causes(&error)))?;
        let status = response.status();
        let body = Limited::new(response.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|error| format!("reading the answer of {url} failed: {error}"))?
            .to_bytes();
        if status == hyper::StatusCode::NOT_FOUND {
            return Err(format!("{url} answered 404: is the daemon running with --status-page off, or is this not its listener?"));
        }
        if !status.is_success() {
            return Err(format!("{url} answered {status}"));
        }
        serde_json::from_slice::<Status>(&body).map_err(|error| format!("{url} answered something that is not a daemon's status: {error}"))
    };
    tokio::time::timeout(TIMEOUT, answer).await.unwrap_or_else(|_| Err(format!("no answer from {url} within {TIMEOUT:?}")))
}

fn causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

/// The daemon's header, a few lines.
fn header_lines(status: &Status) -> Vec<String> {
    let header = &status.header;
    let now = header.generated;
    let mut lines = vec![format!(
        "snowflake {}, up {} (since {}); {} flakes loaded, {} files broken{}",
        header.version,
        span(Duration::from_secs(header.uptime_seconds)),
        when(header.started),
        header.flake_files.loaded,
        header.flake_files.broken.len(),
        if header.flake_files.dir_missing { ", the flakes directory cannot be read" } else { "" }
    )];
    let spool = &header.spool;
    let put = match &header.last_put {
        Some(put) => format!("last PutMetricData {} {:.0} ms, {} ago", put.result, put.latency_ms, ago(put.at, now)),
        None => "no PutMetricData yet".to_string(),
    };
    lines.push(format!(
        "spool {} datapoints, oldest {}{}; {} dropped, {} rejected; {put}",
        spool.datapoints,
        span_seconds(spool.oldest_undelivered_age_seconds),
        if spool.writable { "" } else { " (cannot be written)" },
        spool.dropped,
        spool.rejected
    ));
    let reconcile = |what: &str, status: &Option<crate::status::model::ReconcileStatus>| match status {
        Some(status) => {
            format!("{what} reconciled {} ago: {} changes, {} failures", ago(status.at, now), status.changes, status.failures.len())
        }
        None => format!("{what} not reconciled yet"),
    };
    lines.push(format!("{}; {}", reconcile("alarms", &header.alarm_reconcile), reconcile("dashboard", &header.dashboard_reconcile)));
    if !header.cluster.members.is_empty() {
        lines.push(format!("cluster members: {}", header.cluster.members.join(", ")));
    }
    for file in &header.flake_files.broken {
        for problem in &file.problems {
            lines.push(format!("broken: {}: {problem}", file.path));
        }
    }
    lines
}

/// The flakes in aligned columns.
fn table(status: &Status, wide: bool, colour: bool) -> Vec<String> {
    let now = status.header.generated;
    let mut headings = vec!["NEXT", "LEFT", "LAST", "PASSED", "RESULT", "FLAKE", "TYPE"];
    if wide {
        headings.extend(["SCHEDULE", "RUNNING", "TOOK", "VALUE", "RUNS", "FAILED", "SKIPPED", "MONITOR", "ALARMS", "MEMBER", "REASON"]);
    }
    let mut rows: Vec<(Vec<String>, Option<&'static str>)> = Vec::new();
    for flake in &status.flakes {
        let mut cells = vec![
            flake.next.map_or("-".to_string(), when),
            flake.next_in_seconds.map_or("-".to_string(), |left| span_seconds(Some(left as f64))),
            flake.last_run.as_ref().map_or("-".to_string(), |run| when(run.scheduled)),
            flake.last_run.as_ref().map_or("-".to_string(), |run| format!("{} ago", ago(run.scheduled, now))),
            flake.last_run.as_ref().map_or("-".to_string(), |run| run.result.clone()),
            flake.name.clone(),
            flake.kind.clone(),
        ];
        if wide {
            cells.extend(wide_cells(flake, now));
        }
        let result_colour = if flake.is_failing() {
            Some(RED)
        } else if flake.is_late() {
            Some(YELLOW)
        } else if flake.last_run.is_some() {
            Some(GREEN)
        } else {
            None
        };
        rows.push((cells, result_colour));
    }
    let mut widths: Vec<usize> = headings.iter().map(|heading| heading.chars().count()).collect();
    for (cells, _) in &rows {
        for (width, cell) in widths.iter_mut().zip(cells) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>, paint_result: Option<&'static str>| {
        let last = cells.len() - 1;
        cells
            .into_iter()
            .enumerate()
            .map(|(index, cell)| {
                let padded = if index == last { cell } else { format!("{cell:<width$}", width = widths[index]) };
                match paint_result {
                    Some(code) if index == 4 => paint(&padded, code, colour),
                    _ => padded,
                }
            })
            .collect::<Vec<_>>()
            .join(" ")
            .trim_end()
            .to_string()
    };
    let mut lines = vec![line(headings.iter().map(|heading| heading.to_string()).collect(), None)];
    lines.extend(rows.into_iter().map(|(cells, code)| line(cells, code)));
    lines
}

fn wide_cells(flake: &FlakeRow, now: DateTime<Utc>) -> Vec<String> {
    let value = match &flake.last_value {
        Some(published) => match (published.value, published.series) {
            (Some(value), _) => value.to_string(),
            (None, Some(series)) => {
                let first: Vec<String> = published.first.iter().map(|first| format!("{}={}", first.series, first.value)).collect();
                format!("{series} series: {}", first.join(" "))
            }
            (None, None) => "-".to_string(),
        },
        None => "-".to_string(),
    };
    let monitor = flake.monitor.as_ref().map_or("-".to_string(), |monitor| match monitor.deadline {
        Some(deadline) => format!("{} (deadline {})", monitor.state, when(deadline)),
        None => monitor.state.clone(),
    });
    let alarms = if flake.alarms.is_empty() {
        "-".to_string()
    } else {
        flake.alarms.iter().map(|alarm| format!("{}={}", alarm.name, alarm.state.as_deref().unwrap_or("?"))).collect::<Vec<_>>().join(",")
    };
    vec![
        flake.schedule.clone(),
        flake.running_since.map_or("-".to_string(), |since| format!("{} ago", ago(since, now))),
        flake.last_run.as_ref().map_or("-".to_string(), |run| span(Duration::from_secs_f64(run.duration_ms / 1000.0))),
        value,
        flake.runs.to_string(),
        flake.failures.to_string(),
        flake.skips.to_string(),
        monitor,
        alarms,
        flake.member.clone().unwrap_or_else(|| "this host".to_string()),
        flake.last_run.as_ref().and_then(|run| run.reason.clone()).unwrap_or_else(|| "-".to_string()).replace('\n', " "),
    ]
}

/// `Sun 2026-12-06 05:13:00 UTC`, as systemctl writes times.
fn when(at: DateTime<Utc>) -> String {
    at.format("%a %Y-%m-%d %H:%M:%S UTC").to_string()
}

fn ago(at: DateTime<Utc>, now: DateTime<Utc>) -> String {
    span_seconds(Some((now - at).num_milliseconds().max(0) as f64 / 1000.0))
}

const RED: &str = "31";
const YELLOW: &str = "33";
const GREEN: &str = "32";

fn verdict_colour(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Ok => GREEN,
        Verdict::Warning => YELLOW,
        Verdict::Critical | Verdict::Unknown => RED,
    }
}

fn paint(text: &str, code: &str, colour: bool) -> String {
    if colour { format!("\x1b[{code}m{text}\x1b[0m") } else { text.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_comes_from_the_flag_or_the_listen_address() {
        assert_eq!(status_url(None, None).unwrap(), "http://127.0.0.1:9731/status.json");
        assert_eq!(status_url(None, Some("0.0.0.0:8080")).unwrap(), "http://127.0.0.1:8080/status.json");
        assert_eq!(status_url(None, Some("[::]:8080")).unwrap(), "http://[::1]:8080/status.json");
        assert!(status_url(None, Some("off")).unwrap_err().contains("--url"));
        assert_eq!(status_url(Some("http://host:1/"), Some("off")).unwrap(), "http://host:1/status.json");
        assert_eq!(status_url(Some("host:1"), None).unwrap(), "http://host:1/status.json");
        assert!(status_url(Some("https://host"), None).is_err());
    }
}
