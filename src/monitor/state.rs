//! What the monitor must not forget across restarts: per monitored job, the scheduled time of its
//! last success and when the daemon first loaded it, in `<state-dir>/monitors.json`.
//!
//! Keys are flake names. Writes are atomic (temporary file, fsync, rename, directory fsync), so a
//! `kill -9` at any point leaves either the old file or the new one, never half of one; a stray
//! `monitors.json.tmp` from such a kill is ignored and replaced by the next save. A file that
//! cannot be understood is moved aside (never trusted, never silently overwritten) and counts as
//! empty: its jobs then count from now as if first loaded, the lenient choice (a made-up last
//! success could only hide or invent lateness). A file that cannot be read at all is an error,
//! because carrying on would overwrite it.
//!
//! Only the daemon writes this file (`snowflake once` publishes no overdue values and records
//! nothing), so it needs no lock. Wiring: `load` once at start; `MonitorState::loaded` for each
//! monitored job whenever the catalog (re)loads; `MonitorState::succeeded` after each successful
//! run; `save` with the names of the jobs still monitored after either changes the state.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

const FILE_NAME: &str = "monitors.json";
const FORMAT_VERSION: u32 = 1;

/// What is kept about one monitored job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobRecord {
    /// When the daemon first loaded the job; a job never seen to succeed counts from here.
    pub first_loaded: DateTime<Utc>,
    /// The scheduled time of the last successful run.
    pub last_success: Option<DateTime<Utc>>,
}

/// Every monitored job's record, by flake name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MonitorState {
    jobs: BTreeMap<String, JobRecord>,
}

impl MonitorState {
    pub fn job(&self, name: &str) -> Option<&JobRecord> {
        self.jobs.get(name)
    }

    pub fn jobs(&self) -> impl Iterator<Item = (&String, &JobRecord)> {
        self.jobs.iter()
    }

    /// Notes that the daemon has loaded the job at `now`, unless an earlier load is already known
    /// (a restart or reload must not reset the count). Returns the job's record.
    pub fn loaded(&mut self, name: &str, now: DateTime<Utc>) -> JobRecord {
        *self.jobs.entry(name.to_string()).or_insert(JobRecord { first_loaded: now, last_success: None })
    }

    /// Records a successful run scheduled at `scheduled`. The latest report wins even when its
    /// scheduled time is earlier than the kept one: after the clock went backwards the kept time
    /// lies in the future, and only a newer report can correct it.
    pub fn succeeded(&mut self, name: &str, scheduled: DateTime<Utc>, now: DateTime<Utc>) {
        self.jobs.entry(name.to_string()).or_insert(JobRecord { first_loaded: now, last_success: None }).last_success = Some(scheduled);
    }
}

/// The result of reading the state file.
#[derive(Debug)]
pub struct Loaded {
    pub state: MonitorState,
    /// Set when the file could not be understood and was moved aside: what happened and where it
    /// went, for the daemon's log. Already logged at error level.
    pub set_aside: Option<String>,
}

/// `<state-dir>/monitors.json`.
#[derive(Debug, Clone)]
pub struct MonitorStateFile {
    path: PathBuf,
}

impl MonitorStateFile {
    pub fn new(state_dir: &Path) -> MonitorStateFile {
        MonitorStateFile { path: state_dir.join(FILE_NAME) }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The kept state; a missing file is an empty one.
    pub fn load(&self) -> Result<Loaded, String> {
        let text = match crate::statefile::read(&self.path) {
            Ok(Some(text)) => text,
            Ok(None) => return Ok(Loaded { state: MonitorState::default(), set_aside: None }),
            Err(error) => {
                return Err(format!(
                    "{}: cannot be read ({error}); fix its permissions or move it away, the job monitors' last successes are kept there",
                    self.path.display()
                ));
            }
        };
        match text.and_then(|text| parse(&text)) {
            Ok(state) => Ok(Loaded { state, set_aside: None }),
            Err(reason) => {
                let aside = self.move_aside()?;
                let message = format!(
                    "{}: cannot be understood ({reason}); moved to {} and starting empty: monitored jobs now count as first loaded now. \
                     Restore it by hand if it can be repaired",
                    self.path.display(),
                    aside.display()
                );
                tracing::error!(path = %self.path.display(), moved_to = %aside.display(), "{message}");
                Ok(Loaded { state: MonitorState::default(), set_aside: Some(message) })
            }
        }
    }

    /// Replaces the file atomically with the records of the jobs in `monitored`; the records of
    /// jobs no longer monitored (a removed flake, `flakeMonitor` taken out) are dropped.
    pub fn save(&self, state: &MonitorState, monitored: &BTreeSet<String>) -> Result<(), String> {
        let on_disk = OnDisk {
            version: FORMAT_VERSION,
            jobs: state
                .jobs
                .iter()
                .filter(|(name, _)| monitored.contains(*name))
                .map(|(name, record)| {
                    let job = OnDiskJob { first_loaded: timestamp(record.first_loaded), last_success: record.last_success.map(timestamp) };
                    (name.clone(), job)
                })
                .collect(),
        };
        let text = serde_json::to_string_pretty(&on_disk).expect("the monitor state serializes");
        crate::statefile::replace(&self.path, &text)
            .map_err(|error| format!("{}: cannot be written: {error}; is --state-dir writable?", self.path.display()))
    }

    /// Renames the file to a name no earlier set-aside file has, so none is ever overwritten.
    fn move_aside(&self) -> Result<PathBuf, String> {
        crate::statefile::set_aside(&self.path).map_err(|error| {
            format!("{}: cannot be understood and cannot be moved aside ({error}); move it away by hand", self.path.display())
        })
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct OnDisk {
    version: u32,
    jobs: BTreeMap<String, OnDiskJob>,
}

/// Times as RFC 3339 text, so an operator can read and repair the file.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct OnDiskJob {
    first_loaded: String,
    #[serde(default)]
    last_success: Option<String>,
}

fn timestamp(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn parse(text: &str) -> Result<MonitorState, String> {
    let on_disk: OnDisk = serde_json::from_str(text).map_err(|error| error.to_string())?;
    if on_disk.version != FORMAT_VERSION {
        return Err(format!("format version {} is not {FORMAT_VERSION}", on_disk.version));
    }
    let time = |name: &str, field: &str, text: &str| {
        DateTime::parse_from_rfc3339(text)
            .map(|time| time.with_timezone(&Utc))
            .map_err(|error| format!("jobs.{name}.{field}: \"{text}\" is not an RFC 3339 time ({error})"))
    };
    let mut jobs = BTreeMap::new();
    for (name, job) in on_disk.jobs {
        let first_loaded = time(&name, "firstLoaded", &job.first_loaded)?;
        let last_success = job.last_success.as_deref().map(|text| time(&name, "lastSuccess", text)).transpose()?;
        jobs.insert(name, JobRecord { first_loaded, last_success });
    }
    Ok(MonitorState { jobs })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
    }

    fn names(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|name| name.to_string()).collect()
    }

    fn files_in(dir: &Path) -> Vec<String> {
        let mut files: Vec<String> =
            std::fs::read_dir(dir).unwrap().map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned()).collect();
        files.sort();
        files
    }

    fn backup_state() -> MonitorState {
        let mut state = MonitorState::default();
        state.loaded("backup", at("2026-05-01T00:00:00Z"));
        state.succeeded("backup", at("2026-05-04T03:00:00Z"), at("2026-05-04T03:12:00Z"));
        state.loaded("report", at("2026-05-02T08:00:00Z"));
        state
    }

    #[test]
    fn a_missing_file_is_an_empty_state() {
        let dir = tempfile::tempdir().unwrap();
        let loaded = MonitorStateFile::new(dir.path()).load().unwrap();
        assert_eq!(loaded.state, MonitorState::default());
        assert!(loaded.set_aside.is_none());
    }

    #[test]
    fn saves_and_loads_last_successes_and_first_loads() {
        let dir = tempfile::tempdir().unwrap();
        let file = MonitorStateFile::new(&dir.path().join("state"));
        let state = backup_state();
        file.save(&state, &names(&["backup", "report"])).unwrap();
        let loaded = file.load().unwrap();
        assert!(loaded.set_aside.is_none());
        assert_eq!(loaded.state, state);
        assert_eq!(
            loaded.state.job("backup"),
            Some(&JobRecord { first_loaded: at("2026-05-01T00:00:00Z"), last_success: Some(at("2026-05-04T03:00:00Z")) })
        );
        let text = std::fs::read_to_string(file.path()).unwrap();
        assert!(text.contains("\"lastSuccess\": \"2026-05-04T03:00:00.000Z\""), "readable times: {text}");
        assert_eq!(files_in(&dir.path().join("state")), vec!["monitors.json"], "no temporary file is left behind");
    }

    #[test]
    fn a_reload_keeps_the_first_load_and_a_newer_report_replaces_the_last_success() {
        let mut state = backup_state();
        let record = state.loaded("backup", at("2026-05-09T00:00:00Z"));
        assert_eq!(record.first_loaded, at("2026-05-01T00:00:00Z"), "a restart does not reset the count");
        // After a backward clock jump the newer report is earlier; it still wins.
        state.succeeded("backup", at("2026-05-03T03:00:00Z"), at("2026-05-03T03:10:00Z"));
        assert_eq!(state.job("backup").unwrap().last_success, Some(at("2026-05-03T03:00:00Z")));
        // A success of a job not yet loaded counts it as loaded then.
        state.succeeded("adhoc", at("2026-05-04T10:00:00Z"), at("2026-05-04T10:00:05Z"));
        assert_eq!(state.job("adhoc").unwrap().first_loaded, at("2026-05-04T10:00:05Z"));
    }

    #[test]
    fn a_removed_flake_is_dropped_on_save() {
        let dir = tempfile::tempdir().unwrap();
        let file = MonitorStateFile::new(dir.path());
        file.save(&backup_state(), &names(&["backup"])).unwrap();
        let loaded = file.load().unwrap().state;
        assert!(loaded.job("backup").is_some());
        assert!(loaded.job("report").is_none());
        assert_eq!(loaded.jobs().count(), 1);
    }

    #[test]
    fn a_corrupt_file_is_set_aside_never_trusted_nor_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let file = MonitorStateFile::new(dir.path());
        std::fs::write(file.path(), "{ not json").unwrap();
        let loaded = file.load().unwrap();
        assert_eq!(loaded.state, MonitorState::default());
        let message = loaded.set_aside.expect("the operator is told");
        assert!(message.contains("monitors.json") && message.contains("moved to") && message.contains("unreadable"), "{message}");
        let aside: Vec<String> = files_in(dir.path()).into_iter().filter(|name| name.contains("unreadable")).collect();
        assert_eq!(aside.len(), 1, "{aside:?}");
        assert_eq!(std::fs::read_to_string(dir.path().join(&aside[0])).unwrap(), "{ not json", "kept for a human as it was");
        assert!(!file.path().exists());

        // A second corrupt file in the same second gets its own name.
        std::fs::write(file.path(), "[]").unwrap();
        assert!(file.load().unwrap().set_aside.is_some());
        assert_eq!(files_in(dir.path()).iter().filter(|name| name.contains("unreadable")).count(), 2);
        // Saving afterwards writes a fresh file and leaves the set-aside ones alone.
        file.save(&backup_state(), &names(&["backup"])).unwrap();
        assert_eq!(files_in(dir.path()).len(), 3);
        assert!(file.load().unwrap().state.job("backup").is_some());
    }

    #[test]
    fn wrong_versions_unknown_fields_and_bad_times_are_not_trusted() {
        let cases = [
            (r#"{"version": 2, "jobs": {}}"#, "format version 2"),
            (r#"{"version": 1, "jobs": {}, "extra": true}"#, "unknown field"),
            (r#"{"version": 1, "jobs": {"backup": {"firstLoaded": "yesterday"}}}"#, "jobs.backup.firstLoaded"),
            (r#"{"version": 1, "jobs": {"backup": {"firstLoaded": "2026-05-01T00:00:00Z", "lastSuccess": 5}}}"#, "invalid type"),
        ];
        for (text, reason) in cases {
            let dir = tempfile::tempdir().unwrap();
            let file = MonitorStateFile::new(dir.path());
            std::fs::write(file.path(), text).unwrap();
            let loaded = file.load().unwrap();
            assert_eq!(loaded.state, MonitorState::default(), "{text}");
            let message = loaded.set_aside.unwrap_or_else(|| panic!("{text} was trusted"));
            assert!(message.contains(reason), "{text}: {message}");
        }
    }

    /// `kill -9` during a save: either before the rename (a stray temporary file beside the old
    /// file) or, on a file system that lost the unsynced data, a truncated file.
    #[test]
    fn survives_a_kill_in_the_middle_of_a_save() {
        let dir = tempfile::tempdir().unwrap();
        let file = MonitorStateFile::new(dir.path());
        file.save(&backup_state(), &names(&["backup", "report"])).unwrap();
        let complete = std::fs::read_to_string(file.path()).unwrap();

        std::fs::write(dir.path().join("monitors.json.tmp"), &complete[..complete.len() / 2]).unwrap();
        assert_eq!(file.load().unwrap().state, backup_state(), "the stray temporary file is ignored");
        file.save(&backup_state(), &names(&["backup", "report"])).unwrap();
        assert_eq!(files_in(dir.path()), vec!["monitors.json"], "and replaced by the next save");

        std::fs::write(file.path(), &complete[..complete.len() / 2]).unwrap();
        let loaded = file.load().unwrap();
        assert_eq!(loaded.state, MonitorState::default());
        assert!(loaded.set_aside.is_some(), "a truncated file is set aside, not half-trusted");

        let only_temporary = tempfile::tempdir().unwrap();
        std::fs::write(only_temporary.path().join("monitors.json.tmp"), &complete).unwrap();
        assert_eq!(MonitorStateFile::new(only_temporary.path()).load().unwrap().state, MonitorState::default());
    }

    #[test]
    fn a_file_that_cannot_be_read_is_an_error_not_an_empty_state() {
        // Not damage but an error of the file system: here, a state "directory" that is a file.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("not-a-dir"), "").unwrap();
        let error = MonitorStateFile::new(&dir.path().join("not-a-dir")).load().unwrap_err();
        assert!(error.contains("monitors.json") && error.contains("cannot be read"), "{error}");
    }

    /// Issue 22.6: a directory under the name, or a byte that is not UTF-8, is damage: set
    /// aside and start empty, never a failed start.
    #[test]
    fn a_directory_or_bytes_that_are_not_utf8_are_set_aside_like_garbage() {
        for damage in [Some(&b"{\"version\": 1, \"jobs\": {\"\xff\": 1}}"[..]), None] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("monitors.json");
            match damage {
                Some(bytes) => std::fs::write(&path, bytes).unwrap(),
                None => std::fs::create_dir(&path).unwrap(),
            }
            let loaded = MonitorStateFile::new(dir.path()).load().unwrap();
            assert_eq!(loaded.state, MonitorState::default());
            assert!(loaded.set_aside.is_some_and(|message| message.contains("cannot be understood")));
            assert!(!path.exists(), "set aside");
        }
    }

    #[test]
    fn an_unwritable_state_directory_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("not-a-dir"), "").unwrap();
        let error = MonitorStateFile::new(&dir.path().join("not-a-dir")).save(&backup_state(), &names(&["backup"])).unwrap_err();
        assert!(error.contains("monitors.json") && error.contains("--state-dir"), "{error}");
    }
}
