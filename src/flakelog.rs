//! Per-flake log files: `<log-dir>/<flakeName>.log`, a line per run, rotated daily.
//!
//! Rotation is logrotate's numbered scheme: at the first write of a new (UTC) day `name.log`
//! becomes `name.log.1`, `.1` becomes `.2`, and so on up to `--log-keep`. It costs a few renames
//! and never lists the directory, which matters with thousands of flakes in one log directory.
//! Every line passes through the redactor first: creds.json values never reach a file.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, Utc};

use crate::creds::Redactor;

/// Writes and rotates the log files of all flakes.
pub struct FlakeLogs {
    dir: PathBuf,
    keep: usize,
    redactor: Redactor,
    /// Serialises rotate-and-append; appends are tiny, so one lock costs nothing measurable.
    lock: Mutex<()>,
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
        Ok(FlakeLogs { dir: dir.to_path_buf(), keep, redactor, lock: Mutex::new(()), last_warning: AtomicI64::new(i64::MIN) })
    }

    /// The current log file of `flake`.
    pub fn path(&self, flake: &str) -> PathBuf {
        self.dir.join(format!("{flake}.log"))
    }

    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }

    /// Appends `lines` (redacted) to the flake's log, rotating it first if a day has passed.
    pub fn append(&self, flake: &str, lines: &[String]) {
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
