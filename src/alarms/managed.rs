//! The alarms this host created: `<state-dir>/alarms.json`. Only alarms listed here are ever
//! deleted, so hosts sharing a region never delete each other's alarms.
//!
//! Writes are atomic (temporary file, fsync, rename) and every read-modify-write holds
//! `<state-dir>/alarms.lock`, so `snowflake once` and the daemon can reconcile side by side.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

const FORMAT_VERSION: u32 = 1;
const LOCK_WAIT: Duration = Duration::from_secs(60);

/// What we know about one alarm we manage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub flake: String,
    pub file: PathBuf,
    /// The tags we last applied, to notice when the declared ones change.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

/// region -> alarm name -> record
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Managed {
    pub version: u32,
    pub alarms: BTreeMap<String, BTreeMap<String, Record>>,
}

impl Managed {
    pub fn get(&self, region: &str, name: &str) -> Option<&Record> {
        self.alarms.get(region).and_then(|alarms| alarms.get(name))
    }

    pub fn insert(&mut self, region: &str, name: &str, record: Record) {
        self.alarms.entry(region.to_string()).or_default().insert(name.to_string(), record);
    }

    pub fn remove(&mut self, region: &str, name: &str) {
        if let Some(alarms) = self.alarms.get_mut(region) {
            alarms.remove(name);
            if alarms.is_empty() {
                self.alarms.remove(region);
            }
        }
    }

    pub fn regions(&self) -> impl Iterator<Item = &String> {
        self.alarms.keys()
    }

    /// (region, name, record) for every managed alarm.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &String, &Record)> {
        self.alarms.iter().flat_map(|(region, alarms)| alarms.iter().map(move |(name, record)| (region, name, record)))
    }
}

/// The state file and its lock.
#[derive(Debug, Clone)]
pub struct ManagedFile {
    path: PathBuf,
    lock_path: PathBuf,
}

/// Held while reading, changing and writing the file.
pub struct Locked(#[allow(dead_code)] Flock<File>);

impl ManagedFile {
    pub fn new(state_dir: &Path) -> ManagedFile {
        ManagedFile { path: state_dir.join("alarms.json"), lock_path: state_dir.join("alarms.lock") }
    }

    /// Waits (up to a minute) for other snowflake processes to finish their reconcile.
    pub async fn lock(&self) -> Result<Locked, String> {
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(|error| format!("state directory {}: cannot be created: {error}", dir.display()))?;
        }
        crate::statefile::clear_for_lock(&self.lock_path);
        let deadline = tokio::time::Instant::now() + LOCK_WAIT;
        loop {
            let file = OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&self.lock_path)
                .map_err(|error| format!("{}: cannot be opened: {error}; is --state-dir writable?", self.lock_path.display()))?;
            match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(lock) => return Ok(Locked(lock)),
                Err(_) if tokio::time::Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(100)).await,
                Err((_, error)) => return Err(format!("{}: another snowflake process holds it ({error})", self.lock_path.display())),
            }
        }
    }

    /// The managed alarms; an absent file means none. A file that cannot be understood is moved
    /// aside (never trusted, never silently overwritten) and counts as none, which only means
    /// its alarms will not be deleted. A file that cannot be read at all is an error: carrying
    /// on would overwrite it.
    pub fn load(&self) -> Result<Managed, String> {
        let text = match crate::statefile::read(&self.path) {
            Ok(Some(text)) => text,
            Ok(None) => return Ok(Managed { version: FORMAT_VERSION, ..Managed::default() }),
            Err(error) => return Err(format!("{}: cannot be read ({error}); alarms are not reconciled until it can", self.path.display())),
        };
        let parsed = text.and_then(|text| serde_json::from_str::<Managed>(&text).map_err(|error| error.to_string()));
        Ok(match parsed {
            Ok(managed) if managed.version == FORMAT_VERSION => managed,
            outcome => {
                let reason = match outcome {
                    Ok(managed) => format!("format version {} is not {FORMAT_VERSION}", managed.version),
                    Err(reason) => reason,
                };
                let aside = crate::statefile::set_aside(&self.path)
                    .map_or_else(|error| format!("nowhere: {error}"), |aside| aside.display().to_string());
                tracing::error!(path = %self.path.display(), moved_to = aside, "the managed-alarm list cannot be understood ({reason}); the alarms it listed are no longer deleted automatically");
                Managed { version: FORMAT_VERSION, ..Managed::default() }
            }
        })
    }

    /// Replaces the file atomically.
    pub fn save(&self, managed: &Managed) -> Result<(), String> {
        let text = serde_json::to_string_pretty(managed).expect("the managed list serializes");
        crate::statefile::replace(&self.path, &text).map_err(|error| format!("{}: cannot be written: {error}", self.path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn saves_loads_and_sets_aside_what_it_cannot_read() {
        let dir = tempfile::tempdir().unwrap();
        let file = ManagedFile::new(dir.path());
        let _lock = file.lock().await.unwrap();
        let mut managed = file.load().unwrap();
        assert!(managed.alarms.is_empty());
        managed.insert("us-east-1", "FL-a-b", Record { flake: "a".into(), file: "flakes/a.json".into(), tags: BTreeMap::new() });
        file.save(&managed).unwrap();
        assert_eq!(file.load().unwrap(), managed);

        std::fs::write(dir.path().join("alarms.json"), "{ not json").unwrap();
        assert!(file.load().unwrap().alarms.is_empty());
        let aside = std::fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().contains("unreadable"))
            .count();
        assert_eq!(aside, 1, "the unreadable file is kept for a human");
    }

    #[test]
    fn a_file_that_cannot_be_read_is_an_error_not_an_empty_list() {
        // Not damage but an error of the file system: here, a state "directory" that is a file.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("not-a-dir"), "").unwrap();
        let error = ManagedFile::new(&dir.path().join("not-a-dir")).load().unwrap_err();
        assert!(error.contains("alarms.json") && error.contains("not reconciled"), "{error}");
    }

    /// Issue 22.6: a directory under the name, or a byte that is not UTF-8, is damage: set aside.
    #[test]
    fn a_directory_or_bytes_that_are_not_utf8_are_set_aside_like_garbage() {
        for damage in [Some(&b"{\"version\": 1, \"alarms\": {\"\xff\": {}}}"[..]), None] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("alarms.json");
            match damage {
                Some(bytes) => std::fs::write(&path, bytes).unwrap(),
                None => std::fs::create_dir(&path).unwrap(),
            }
            let managed = ManagedFile::new(dir.path()).load().unwrap();
            assert!(managed.alarms.is_empty());
            assert!(!path.exists(), "set aside");
        }
    }
}
