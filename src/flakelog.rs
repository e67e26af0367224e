//! Per-flake log files: `<log-dir>/<flakeName>.log`, a line per event, rotated daily.
//!
//! This module is the one owner of the flake log line: [`Event`] says what happened (a run, a
//! skipped firing, a dropped value) and [`FlakeLogs::lines`] is the one place its text is made.
//! [`FlakeLogs::record`] writes on tokio's blocking pool, so a slow or full disk never stalls a
//! runtime thread (scheduling, `/healthz`, delivery).
//!
//! Rotation is logrotate's numbered scheme: at the first write of a new (UTC) day `name.log`
//! becomes `name.log.1`, `.1` becomes `.2`, and so on up to `--log-keep`. It costs a few renames
//! and never lists the directory, which matters with thousands of flakes in one log directory.
//! Every line passes through the redactor first: creds.json values never reach a file. Every
//! piece of untrusted text in a line (a reason, a rejected entry, output) is shown through
//! [`Redactor::show`]: masked, then cut to 1 KiB, so one hostile line cannot write megabytes.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};

use crate::creds::{Redactor, SHOWN_BYTES, cut};
use crate::outcome::RunResult;
use crate::runner::Captured;

/// Longest excerpt of stdout or stderr written to a flake's log for a failed run.
const EXCERPT_CHARS: usize = 400;
/// Most output lines of a job copied into its log per run.
const JOB_OUTPUT_LINES: usize = 200;
/// One appending, one ready to take the lock next.
const WRITERS_AT_ONCE: usize = 2;

/// Something that happened to a flake, worth a line in its log.
#[derive(Debug, Clone, Copy)]
pub enum Event<'a> {
    /// A run finished.
    Run(&'a RunLine<'a>),
    /// A firing did not start a run.
    Skipped { scheduled: DateTime<Utc>, reason: &'a str },
    /// A value will never reach CloudWatch.
    Dropped { value: f64, timestamp_ms: i64, reason: &'a str },
    /// The flake's image was pulled or built, or could not be (SPEC 14).
    Image { message: &'a str },
}

/// What a run's log line says.
#[derive(Debug, Clone)]
pub struct RunLine<'a> {
    pub result: RunResult,
    pub scheduled: DateTime<Utc>,
    pub duration: Duration,
    /// The value it produced, for a successful run.
    pub value: Option<f64>,
    /// Why it failed, for a failed run (its output excerpts follow it).
    pub failure: Option<&'a str>,
    pub stdout: &'a Captured,
    pub stderr: &'a Captured,
    /// Processes it left behind held its output open until the timeout.
    pub lingered: bool,
    /// A job's output is copied below the line.
    pub copy_output: bool,
    /// The value went to the publisher, but the spool could not keep a durable copy.
    pub sent_without_spool: bool,
    /// What a multi-metric run yielded (SPEC 8).
    pub readout: Option<ReadoutLine<'a>>,
    /// How a monitored job's monitor counted the run (`flakeMonitor`).
    pub monitor: Option<&'static str>,
}

/// What a multi-metric run's log line says besides the common part.
#[derive(Debug, Clone, Copy)]
pub struct ReadoutLine<'a> {
    /// Datapoints taken for publishing.
    pub datapoints: usize,
    pub series: usize,
    pub dropped_series: usize,
    /// A Nagios plugin's state name and the first line of its text.
    pub nagios: Option<(&'a str, &'a str)>,
    /// Entries rejected, each with why (the first ones); at most [`LOGGED_REJECTIONS`] are written.
    pub rejections: &'a [crate::output::Rejection],
    /// How many entries were rejected in all, listed or not.
    pub rejected: usize,
    /// A scrape's `up`.
    pub up: Option<bool>,
}

/// Most rejected entries one run lists in its log; the rest are counted.
pub const LOGGED_REJECTIONS: usize = 20;

/// Writes and rotates the log files of all flakes.
pub struct FlakeLogs {
    dir: PathBuf,
    keep: usize,
    redactor: Redactor,
    /// Serialises rotate-and-append; appends are tiny, so one lock costs nothing measurable.
    lock: Mutex<()>,
    /// Appends handed to the blocking pool at once, at most: they take turns at `lock` anyway,
    /// and without the bound a burst of 10,000 runs ending made the pool start hundreds of
    /// threads to wait there (issue 18).
    writers: tokio::sync::Semaphore,
    /// When a write last failed, so a full disk produces a warning a minute, not a flood.
    last_warning: AtomicI64,
}

impl FlakeLogs {
    /// Creates `dir` if needed and checks that it is writable.
    pub fn open(dir: &Path, keep: usize, redactor: Redactor) -> Result<FlakeLogs, String> {
        std::fs::create_dir_all(dir).map_err(|error| format!("log directory {}: cannot be created: {error}", dir.display()))?;
        let probe = dir.join(".snowflake-write-test");
        File::create(&probe).and_then(|_| std::fs::remove_file(&probe)).map_err(|error| {
            format!("log directory {}: is not writable: {error}; set --log-dir (SNOWFLAKE_LOG_DIR) to a writable directory", dir.display())
        })?;
        Ok(FlakeLogs {
            dir: dir.to_path_buf(),
            keep,
            redactor,
            lock: Mutex::new(()),
            writers: tokio::sync::Semaphore::new(WRITERS_AT_ONCE),
            last_warning: AtomicI64::new(i64::MIN),
        })
    }

    /// The redactor every line passes through; `snowflake once` and the status page use it too.
    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }

    /// The current log file of `flake`.
    pub fn path(&self, flake: &str) -> PathBuf {
        self.dir.join(format!("{flake}.log"))
    }

    /// The text of `event`, as written (before the final redaction of whole lines).
    pub fn lines(&self, event: Event<'_>, now: DateTime<Utc>) -> Vec<String> {
        let time = now.to_rfc3339_opts(SecondsFormat::Millis, true);
        let seconds = |at: DateTime<Utc>| at.to_rfc3339_opts(SecondsFormat::Secs, true);
        match event {
            Event::Skipped { scheduled, reason } => {
                vec![format!("{time} skipped scheduled={} reason={:?}", seconds(scheduled), self.redactor.show(reason))]
            }
            Event::Dropped { value, timestamp_ms, reason } => {
                let scheduled = DateTime::from_timestamp_millis(timestamp_ms).map_or_else(String::new, seconds);
                vec![format!("{time} dropped value={value} scheduled={scheduled} reason={:?}", self.redactor.show(reason))]
            }
            Event::Run(run) => self.run_lines(run, &time),
            Event::Image { message } => vec![format!("{time} image {:?}", self.redactor.redact(message))],
        }
    }

    fn run_lines(&self, run: &RunLine<'_>, time: &str) -> Vec<String> {
        let scheduled = run.scheduled.to_rfc3339_opts(SecondsFormat::Secs, true);
        let mut line = format!("{time} {} scheduled={scheduled} duration={}ms", run.result.as_str(), run.duration.as_millis());
        if let Some(value) = run.value {
            line.push_str(&format!(" value={value}"));
        }
        if let Some(readout) = &run.readout {
            if let Some((state, text)) = readout.nagios {
                line.push_str(&format!(" state={state} text={:?}", crate::flake::shorten(&self.redactor.redact(text), EXCERPT_CHARS)));
            }
            if let Some(up) = readout.up {
                line.push_str(&format!(" up={}", u8::from(up)));
            }
            line.push_str(&format!(" datapoints={} series={}", readout.datapoints, readout.series));
            if readout.dropped_series > 0 {
                line.push_str(&format!(" dropped_series={} (flakeMaxSeries)", readout.dropped_series));
            }
            if readout.rejected > 0 {
                line.push_str(&format!(" rejected={}", readout.rejected));
            }
        }
        if let Some(reason) = run.failure {
            // Redacted before shortening: a cut could leave a secret's head unrecognisable.
            line.push_str(&format!(" reason={:?}", self.redactor.show(reason)));
            for (name, captured) in [("stdout", run.stdout), ("stderr", run.stderr)] {
                if !captured.bytes.is_empty() {
                    let excerpt = crate::flake::shorten(&self.redactor.redact_cut(&captured.text(), captured.truncated), EXCERPT_CHARS);
                    line.push_str(&format!(" {name}={excerpt:?}"));
                }
            }
        }
        if run.stdout.truncated || run.stderr.truncated {
            line.push_str(" output_truncated=true");
        }
        if run.lingered {
            line.push_str(" note=\"processes it left behind held its output open until the timeout; they were terminated\"");
        }
        if let Some(counted) = run.monitor {
            line.push_str(&format!(" monitor={counted:?}"));
        }
        if run.sent_without_spool {
            line.push_str(" spool=\"unwritable: sent without a durable copy\"");
        }
        let mut lines = vec![line];
        if let Some(readout) = &run.readout {
            let rejections = readout.rejections;
            let listed = rejections.len().min(LOGGED_REJECTIONS);
            for rejection in rejections.iter().take(LOGGED_REJECTIONS) {
                lines.push(format!("  rejected| {}: {}", self.redactor.show(&rejection.entry), self.redactor.show(&rejection.reason)));
            }
            if readout.rejected > listed {
                lines.push(format!("  rejected| and {} more entries", readout.rejected - listed));
            }
        }
        if run.copy_output {
            for (name, captured) in [("stdout", run.stdout), ("stderr", run.stderr)] {
                // The whole capture is redacted at once: a secret's head at the capture limit is
                // masked too, and a cut line can never hide a secret from the redactor.
                let text = self.redactor.redact_cut(&captured.text(), captured.truncated);
                lines.extend(text.lines().take(JOB_OUTPUT_LINES).map(|output| format!("  {name}| {}", cut(output, SHOWN_BYTES))));
            }
        }
        lines
    }

    /// Writes `event` to `flake`'s log on the blocking pool, and returns once it is written.
    pub async fn record(self: &Arc<Self>, flake: &str, event: Event<'_>) {
        let lines = self.lines(event, Utc::now());
        let (logs, flake) = (self.clone(), flake.to_string());
        let Ok(_writer) = self.writers.acquire().await else { return };
        if let Err(error) = tokio::task::spawn_blocking(move || logs.append(&flake, &lines)).await {
            tracing::error!("a flake log write did not finish: {error}");
        }
    }

    /// Appends `lines` (redacted) to the flake's log, rotating it first if a day has passed.
    fn append(&self, flake: &str, lines: &[String]) {
        // Flake names are validated at load time; this guards the file system regardless.
        if flake.is_empty() || flake.contains('/') || flake.starts_with('.') {
            tracing::error!(flake, "refusing to write a log file for an unsafe flake name");
            return;
        }
        let mut text = String::new();
        for line in lines {
            text.push_str(&self.redactor.redact(line));
            text.push('\n');
        }
        let path = self.path(flake);
        let _guard = self.lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let result = self.rotate_if_new_day(&path, Utc::now()).and_then(|_| {
            let mut file = OpenOptions::new().create(true).append(true).open(&path)?;
            file.write_all(text.as_bytes())
        });
        if let Err(error) = result {
            self.warn(&path, &error);
        }
    }

    fn rotate_if_new_day(&self, path: &Path, now: DateTime<Utc>) -> std::io::Result<()> {
        let Ok(metadata) = std::fs::metadata(path) else { return Ok(()) };
        let written: DateTime<Utc> = metadata.modified()?.into();
        if written.date_naive() >= now.date_naive() {
            return Ok(());
        }
        rotate(path, self.keep)
    }

    fn warn(&self, path: &Path, error: &std::io::Error) {
        let now = Utc::now().timestamp();
        let last = self.last_warning.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= 60 && self.last_warning.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_ok() {
            tracing::warn!(path = %path.display(), "cannot write flake log (further failures are reported once a minute): {error}");
        }
    }
}

/// `name.log` -> `name.log.1` -> ... -> `name.log.<keep>`, dropping the oldest.
fn rotate(path: &Path, keep: usize) -> std::io::Result<()> {
    let numbered = |n: usize| PathBuf::from(format!("{}.{n}", path.display()));
    if keep == 0 {
        return std::fs::remove_file(path);
    }
    let _ = std::fs::remove_file(numbered(keep));
    for n in (1..keep).rev() {
        let from = numbered(n);
        if from.exists() {
            std::fs::rename(&from, numbered(n + 1))?;
        }
    }
    std::fs::rename(path, numbered(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::creds::Creds;

    fn set_mtime_days_ago(path: &Path, days: u64) {
        let when = std::time::SystemTime::now() - std::time::Duration::from_secs(days * 86_400);
        File::options().append(true).open(path).unwrap().set_modified(when).unwrap();
    }

    #[test]
    fn appends_and_rotates_daily_keeping_n_files() {
        let dir = tempfile::tempdir().unwrap();
        let logs = FlakeLogs::open(dir.path(), 2, Redactor::default()).unwrap();
        logs.append("f", &["day 1".to_string()]);
        set_mtime_days_ago(&logs.path("f"), 3);
        logs.append("f", &["day 2".to_string()]);
        set_mtime_days_ago(&logs.path("f"), 2);
        logs.append("f", &["day 3".to_string()]);
        set_mtime_days_ago(&logs.path("f"), 1);
        logs.append("f", &["day 4".to_string(), "day 4 again".to_string()]);

        let read = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap();
        assert_eq!(read("f.log"), "day 4\nday 4 again\n");
        assert_eq!(read("f.log.1"), "day 3\n");
        assert_eq!(read("f.log.2"), "day 2\n");
        assert!(!dir.path().join("f.log.3").exists(), "only --log-keep rotated files are kept");
    }

    #[test]
    fn secrets_never_reach_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let creds = Creds { variables: vec![("DB_PASSWORD".to_string(), "correct-horse".to_string())] };
        let logs = FlakeLogs::open(dir.path(), 7, Redactor::new(&creds)).unwrap();
        logs.append("f", &["stderr=\"login failed for correct-horse\"".to_string()]);
        let text = std::fs::read_to_string(logs.path("f")).unwrap();
        assert!(!text.contains("correct-horse"), "{text}");
        assert!(text.contains("login failed for ********"), "{text}");
    }

    #[test]
    fn unsafe_names_write_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let logs = FlakeLogs::open(&dir.path().join("logs"), 7, Redactor::default()).unwrap();
        logs.append("../escape", &["x".to_string()]);
        assert!(!dir.path().join("escape.log").exists());
    }

    #[test]
    fn an_unwritable_directory_is_a_clear_error() {
        let error = FlakeLogs::open(Path::new("/proc/snowflake-logs"), 7, Redactor::default()).err().unwrap();
        assert!(error.contains("/proc/snowflake-logs"), "{error}");
    }
}
