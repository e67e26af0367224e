//! The status page: the same [`Status`] as `/status.json`, rendered by the daemon as one HTML
//! document with no script and no external asset (styles inline), refreshing itself every
//! [`REFRESH_SECONDS`], readable on a phone (the table scrolls sideways, the header wraps).
//!
//! Every value also sits in a machine-readable attribute (`data-field` on each cell, `<time
//! datetime>`, `<data value>`), so a test can compare the rendered page with the JSON exactly.
//! All text goes through `html_escape`; names and reasons come from flake files and commands.

use std::fmt::Write;

use chrono::{DateTime, SecondsFormat, Utc};
use html_escape::{encode_double_quoted_attribute as attr, encode_text as text};

use super::model::{FlakeRow, ReconcileStatus, Status};
use super::text::{span, span_seconds};
use super::verdict::judge;

/// How often the page reloads itself.
pub const REFRESH_SECONDS: u32 = 10;

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:0.5em;color:#222;background:#fff}\
h1{font-size:1.2em;margin:0.2em 0}.verdict{padding:0.3em 0.5em;border-radius:4px;display:inline-block}\
.v-OK{background:#d4f4dd}.v-WARNING{background:#fff1c2}.v-CRITICAL{background:#ffd6d6}\
dl{display:flex;flex-wrap:wrap;gap:0.2em 1.5em;margin:0.5em 0}dl div{min-width:12em}dt{font-size:0.8em;color:#666}dd{margin:0}\
.scroll{overflow-x:auto}table{border-collapse:collapse;width:100%;font-size:0.9em}\
th,td{border-bottom:1px solid #ddd;padding:0.25em 0.5em;text-align:left;vertical-align:top;white-space:nowrap}\
td.wrap{white-space:normal}th{background:#f4f4f4;position:sticky;top:0}\
.r-ok,.s-OK,.m-up{color:#17692e}.r-partial,.m-late,.s-INSUFFICIENT_DATA{color:#8a6100}\
.r-failed,.r-rejected,.r-timeout,.r-error,.r-stopped,.m-down,.s-ALARM{color:#b00020;font-weight:bold}\
small{color:#666}ul{margin:0;padding-left:1em}li{white-space:nowrap}";

/// The page for `status`.
pub fn render(status: &Status) -> String {
    let header = &status.header;
    let now = header.generated;
    let (verdict, line) = judge(status);
    let mut page = String::with_capacity(4096 + status.flakes.len() * 900);
    let _ = write!(
        page,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta http-equiv=\"refresh\" content=\"{REFRESH_SECONDS}\">\
         <title>snowflake {}</title><style>{STYLE}</style></head><body>\n",
        text(verdict.word())
    );
    let _ = write!(
        page,
        "<h1>snowflake <span data-field=\"version\">{}</span></h1><p class=\"verdict v-{}\" data-field=\"verdict\">{}</p>\n<dl>",
        text(&header.version),
        verdict.word(),
        text(&line)
    );
    let item = |page: &mut String, field: &str, label: &str, html: String| {
        let _ = write!(page, "<div><dt>{label}</dt><dd data-field=\"{field}\">{html}</dd></div>");
    };
    item(
        &mut page,
        "uptime",
        "up since",
        format!("{} <small>{}</small>", time(header.started, now), text(&span(std::time::Duration::from_secs(header.uptime_seconds)))),
    );
    item(
        &mut page,
        "healthy",
        "health",
        if header.healthy { "ok".to_string() } else { text(&header.health_findings.join("; ")).into_owned() },
    );
    let files = &header.flake_files;
    item(
        &mut page,
        "files",
        "flakes",
        format!(
            "<data value=\"{}\">{} loaded</data>, {} broken{}",
            files.loaded,
            files.loaded,
            files.broken.len(),
            if files.dir_missing { ", directory missing" } else { "" }
        ),
    );
    let spool = &header.spool;
    item(
        &mut page,
        "spool",
        "spool",
        format!(
            "<data value=\"{}\">{} datapoints</data>, oldest {}{}",
            spool.datapoints,
            spool.datapoints,
            text(&span_seconds(spool.oldest_undelivered_age_seconds)),
            if spool.writable { "" } else { ", <b>cannot be written</b>" }
        ),
    );
    item(&mut page, "dropped", "dropped / rejected", format!("{} / {}", spool.dropped, spool.rejected));
    item(
        &mut page,
        "last-put",
        "last PutMetricData",
        match &header.last_put {
            Some(put) => format!(
                "{} <span class=\"r-{}\">{}</span> {:.0} ms",
                time(put.at, now),
                attr(&put.result),
                text(&put.result),
                put.latency_ms
            ),
            None => "-".to_string(),
        },
    );
    item(&mut page, "alarm-reconcile", "alarm reconcile", reconcile(header.alarm_reconcile.as_ref(), now));
    item(&mut page, "dashboard-reconcile", "dashboard reconcile", reconcile(header.dashboard_reconcile.as_ref(), now));
    item(
        &mut page,
        "members",
        "cluster members",
        if header.cluster.members.is_empty() { "-".to_string() } else { text(&header.cluster.members.join(", ")).into_owned() },
    );
    page.push_str("</dl>\n");
    if !files.broken.is_empty() {
        page.push_str("<h2>Broken flake files</h2><ul data-field=\"broken\">");
        for file in &files.broken {
            let _ = write!(page, "<li><code>{}</code><ul>", text(&file.path));
            for problem in &file.problems {
                let _ = write!(page, "<li>{}</li>", text(problem));
            }
            page.push_str("</ul></li>");
        }
        page.push_str("</ul>\n");
    }
    page.push_str(
        "<div class=\"scroll\"><table><thead><tr><th>flake</th><th>type</th><th>schedule</th><th>next</th><th>running</th>\
         <th>last run</th><th>result</th><th>reason</th><th>took</th><th>value</th><th>runs</th><th>failed</th><th>skipped</th>\
         <th>monitor</th><th>alarms</th><th>member</th></tr></thead><tbody>\n",
    );
    for flake in &status.flakes {
        row(&mut page, flake, now);
    }
    page.push_str("</tbody></table></div>\n");
    let _ = writeln!(
        page,
        "<p><small>generated {} UTC; refreshes every {REFRESH_SECONDS} s; <a href=\"status.json\">status.json</a></small></p></body></html>",
        time(now, now)
    );
    page
}

fn row(page: &mut String, flake: &FlakeRow, now: DateTime<Utc>) {
    let _ = write!(page, "<tr data-flake=\"{}\">", attr(&flake.name));
    let cell = |page: &mut String, field: &str, html: &str| {
        let _ = write!(page, "<td data-field=\"{field}\">{html}</td>");
    };
    cell(page, "name", &format!("<span title=\"{}\">{}</span>", attr(&flake.file), text(&flake.name)));
    cell(page, "type", &text(&flake.kind));
    cell(page, "schedule", &format!("{}{}", text(&flake.schedule), if flake.enabled { "" } else { " <small>(disabled)</small>" }));
    cell(
        page,
        "next",
        &match (flake.next, flake.next_in_seconds) {
            (Some(next), Some(left)) => format!("{} <small>in {}</small>", time(next, now), text(&span_seconds(Some(left as f64)))),
            _ => "-".to_string(),
        },
    );
    cell(page, "running", &flake.running_since.map_or("-".to_string(), |since| format!("since {}", time(since, now))));
    match &flake.last_run {
        Some(run) => {
            cell(page, "last", &time(run.scheduled, now));
            let _ = write!(page, "<td data-field=\"result\" class=\"r-{}\">{}</td>", attr(&run.result), text(&run.result));
            let _ = write!(page, "<td data-field=\"reason\" class=\"wrap\">{}</td>", text(run.reason.as_deref().unwrap_or("")));
            cell(
                page,
                "duration",
                &format!(
                    "<data value=\"{}\">{}</data>",
                    run.duration_ms,
                    text(&span(std::time::Duration::from_secs_f64(run.duration_ms / 1000.0)))
                ),
            );
        }
        None => {
            for field in ["last", "result", "reason", "duration"] {
                cell(page, field, "");
            }
        }
    }
    let value = match &flake.last_value {
        Some(published) => match (published.value, published.series) {
            (Some(value), _) => format!("<data value=\"{value}\">{value}</data>"),
            (None, Some(series)) => {
                let mut html = format!("<data class=\"series\" value=\"{series}\">{series} series</data><ul>");
                for first in &published.first {
                    let _ = write!(
                        html,
                        "<li><data value=\"{}\" title=\"{}\">{} {}</data></li>",
                        first.value,
                        attr(&first.series),
                        text(&first.series),
                        first.value
                    );
                }
                html.push_str("</ul>");
                html
            }
            (None, None) => String::new(),
        },
        None => String::new(),
    };
    let _ = write!(page, "<td data-field=\"value\" class=\"wrap\">{value}</td>");
    cell(page, "runs", &flake.runs.to_string());
    cell(page, "failures", &flake.failures.to_string());
    cell(page, "skips", &flake.skips.to_string());
    match &flake.monitor {
        Some(monitor) => {
            let deadline = monitor.deadline.map_or(String::new(), |deadline| format!(" <small>deadline {}</small>", time(deadline, now)));
            let _ = write!(
                page,
                "<td data-field=\"monitor\"><span class=\"m-{0}\" data-state=\"{0}\">{1}</span>{deadline}</td>",
                attr(&monitor.state),
                text(&monitor.state)
            );
        }
        None => cell(page, "monitor", ""),
    }
    let mut alarms = String::new();
    if !flake.alarms.is_empty() {
        alarms.push_str("<ul>");
        for alarm in &flake.alarms {
            let state = alarm.state.as_deref().unwrap_or("not read yet");
            let read = alarm.read_at.map_or(String::new(), |at| format!(" <small>read {}</small>", time(at, now)));
            let _ = write!(
                alarms,
                "<li data-alarm=\"{}\" data-state=\"{}\">{} <span class=\"s-{}\">{}</span>{read}</li>",
                attr(&alarm.name),
                attr(alarm.state.as_deref().unwrap_or("")),
                text(&alarm.name),
                attr(state),
                text(state)
            );
        }
        alarms.push_str("</ul>");
    }
    let _ = write!(page, "<td data-field=\"alarms\" class=\"wrap\">{alarms}</td>");
    cell(page, "member", &flake.member.as_deref().map_or("this host".to_string(), |member| text(member).into_owned()));
    page.push_str("</tr>\n");
}

fn reconcile(status: Option<&ReconcileStatus>, now: DateTime<Utc>) -> String {
    match status {
        Some(status) => {
            let mut html = format!("{} {} changes, {} failures", time(status.at, now), status.changes, status.failures.len());
            if let Some(first) = status.failures.first() {
                let _ = write!(html, " <small>{}</small>", text(first));
            }
            html
        }
        None => "-".to_string(),
    }
}

/// `<time datetime="RFC 3339">HH:MM:SS</time>`, with the date when it is not today's.
fn time(at: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let shown = if at.date_naive() == now.date_naive() { at.format("%H:%M:%S") } else { at.format("%Y-%m-%d %H:%M:%S") };
    format!("<time datetime=\"{}\">{shown}</time>", at.to_rfc3339_opts(SecondsFormat::Millis, true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_reasons_are_escaped_and_nothing_is_loaded() {
        let status: Status = serde_json::from_value(serde_json::json!({
            "header": {"version": "0", "generated": "2026-01-01T00:00:00Z", "started": "2026-01-01T00:00:00Z", "uptime_seconds": 0,
                       "healthy": true, "health_findings": [], "flake_files": {"loaded": 1, "broken": [{"path": "<b>.json", "problems": ["x: <img alt=x>"]}], "dir_missing": false},
                       "spool": {"datapoints": 0, "bytes": 0, "oldest_undelivered": null, "oldest_undelivered_age_seconds": null,
                                 "dropped": 0, "rejected": 0, "writable": true},
                       "last_put": null, "alarm_reconcile": null, "dashboard_reconcile": null, "cluster": {"members": []}},
            "flakes": [{"name": "a\"><script>alert(1)</script>", "type": "metric", "schedule": "* * * * *", "enabled": true, "file": "f.json",
                "next": null, "next_in_seconds": null, "running_since": null,
                "last_run": {"scheduled": "2026-01-01T00:00:00Z", "result": "failed", "reason": "<script>x</script> & more", "duration_ms": 1.0},
                "last_value": null, "runs": 1, "failures": 1, "skips": 0, "monitor": null, "alarms": [], "member": null}]
        }))
        .unwrap();
        let page = render(&status);
        assert!(!page.contains("<script") && !page.contains("<img"), "{page}");
        assert!(page.contains("&lt;script&gt;x&lt;/script&gt; &amp; more"), "{page}");
        assert!(page.contains("data-flake=\"a&quot;&gt;&lt;script&gt;"), "{page}");
        assert!(page.contains(&format!("<meta http-equiv=\"refresh\" content=\"{REFRESH_SECONDS}\">")));
        for external in [" src=", "<link", "http://", "https://"] {
            assert!(!page.contains(external), "{external}: {page}");
        }
    }
}
