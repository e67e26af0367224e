//! How `snowflake status` exits, in the manner of a Nagios plugin: 0 all well, 1 a flake failing
//! or late (or a flake file broken), 2 the daemon unhealthy, 3 no answer. The first line of its
//! output is the plugin's status line.

use super::model::Status;

/// A Nagios plugin's states, by exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verdict {
    Ok = 0,
    Warning = 1,
    Critical = 2,
    Unknown = 3,
}

impl Verdict {
    pub fn code(self) -> u8 {
        self as u8
    }

    pub fn word(self) -> &'static str {
        match self {
            Verdict::Ok => "OK",
            Verdict::Warning => "WARNING",
            Verdict::Critical => "CRITICAL",
            Verdict::Unknown => "UNKNOWN",
        }
    }
}

/// The verdict on a status, and the plugin's status line (`SNOWFLAKE WARNING - ...`).
pub fn judge(status: &Status) -> (Verdict, String) {
    let failing: Vec<&str> = status.flakes.iter().filter(|flake| flake.is_failing()).map(|flake| flake.name.as_str()).collect();
    let late: Vec<&str> = status.flakes.iter().filter(|flake| flake.is_late()).map(|flake| flake.name.as_str()).collect();
    let broken = status.header.flake_files.broken.len();
    let mut findings = Vec::new();
    let mut verdict = Verdict::Ok;
    if !status.header.healthy {
        verdict = Verdict::Critical;
        let health =
            if status.header.health_findings.is_empty() { "unhealthy".to_string() } else { status.header.health_findings.join("; ") };
        findings.push(format!("daemon: {health}"));
    }
    if !failing.is_empty() {
        verdict = verdict.max(Verdict::Warning);
        findings.push(format!("{} failing ({})", failing.len(), names(&failing)));
    }
    if !late.is_empty() {
        verdict = verdict.max(Verdict::Warning);
        findings.push(format!("{} late ({})", late.len(), names(&late)));
    }
    if broken > 0 {
        verdict = verdict.max(Verdict::Warning);
        findings.push(format!("{broken} flake file(s) broken"));
    }
    if status.header.flake_files.dir_missing {
        verdict = verdict.max(Verdict::Warning);
        findings.push("the flakes directory cannot be read".to_string());
    }
    let summary = if findings.is_empty() {
        format!("{} flakes, none failing or late", status.flakes.len())
    } else {
        format!("{} flakes, {}", status.flakes.len(), findings.join(", "))
    };
    (verdict, format!("SNOWFLAKE {} - {summary}", verdict.word()))
}

/// The first few names, then how many more.
fn names(names: &[&str]) -> String {
    const SHOWN: usize = 5;
    let mut text = names.iter().take(SHOWN).copied().collect::<Vec<_>>().join(", ");
    if names.len() > SHOWN {
        text.push_str(&format!(", and {} more", names.len() - SHOWN));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(healthy: bool, flakes: serde_json::Value, broken: usize) -> Status {
        let broken: Vec<serde_json::Value> =
            (0..broken).map(|i| serde_json::json!({"path": format!("f{i}.json"), "problems": ["x: y"]})).collect();
        serde_json::from_value(serde_json::json!({
            "header": {"version": "0", "generated": "2026-01-01T00:00:00Z", "started": "2026-01-01T00:00:00Z", "uptime_seconds": 0,
                       "healthy": healthy, "health_findings": if healthy { vec![] } else { vec!["scheduler stalled: no pass for 12s"] },
                       "flake_files": {"loaded": 1, "broken": broken, "dir_missing": false},
                       "spool": {"datapoints": 0, "bytes": 0, "oldest_undelivered": null, "oldest_undelivered_age_seconds": null,
                                 "dropped": 0, "rejected": 0, "writable": true},
                       "last_put": null, "alarm_reconcile": null, "dashboard_reconcile": null, "cluster": {"members": []}},
            "flakes": flakes,
        }))
        .unwrap()
    }

    fn flake(name: &str, result: Option<&str>, monitor: Option<&str>) -> serde_json::Value {
        serde_json::json!({"name": name, "type": "job", "schedule": "* * * * *", "enabled": true, "file": "f.json", "next": null,
            "next_in_seconds": null, "running_since": null,
            "last_run": result.map(|result| serde_json::json!({"scheduled": "2026-01-01T00:00:00Z", "result": result, "reason": null, "duration_ms": 1.0})),
            "last_value": null, "runs": 1, "failures": 0, "skips": 0,
            "monitor": monitor.map(|state| serde_json::json!({"state": state, "deadline": null})), "alarms": [], "member": null})
    }

    #[test]
    fn verdicts_rank_like_nagios_states() {
        let ok = status(
            true,
            serde_json::json!([flake("a", Some("ok"), Some("up")), flake("b", Some("partial"), None), flake("c", None, None)]),
            0,
        );
        assert_eq!(judge(&ok), (Verdict::Ok, "SNOWFLAKE OK - 3 flakes, none failing or late".to_string()));
        let failing = status(true, serde_json::json!([flake("a", Some("timeout"), None)]), 0);
        assert_eq!(judge(&failing).0, Verdict::Warning);
        assert!(judge(&failing).1.contains("1 failing (a)"));
        let late = status(true, serde_json::json!([flake("j", Some("ok"), Some("late")), flake("k", Some("ok"), Some("down"))]), 0);
        assert_eq!(judge(&late), (Verdict::Warning, "SNOWFLAKE WARNING - 2 flakes, 2 late (j, k)".to_string()));
        assert_eq!(judge(&status(true, serde_json::json!([]), 2)).0, Verdict::Warning);
        let sick = status(false, serde_json::json!([flake("a", Some("failed"), None)]), 0);
        let (verdict, line) = judge(&sick);
        assert_eq!(verdict, Verdict::Critical);
        assert!(line.starts_with("SNOWFLAKE CRITICAL - 1 flakes, daemon: scheduler stalled"), "{line}");
        assert_eq!([Verdict::Ok, Verdict::Warning, Verdict::Critical, Verdict::Unknown].map(Verdict::code), [0, 1, 2, 3]);
    }
}
