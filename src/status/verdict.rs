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
        let health = if status.header.health_findings.is_empty() { "unhealthy".to_string() } else { status.header.health_findings.join("; ") };
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
