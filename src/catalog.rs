//! A directory of flake files as a set of flakes, and what changed since the last look.
//!
//! The catalog is what keeps a bad edit from hurting: a file that stops validating keeps its last
//! good version running, a duplicate `flakeName` never displaces the flake that had the name first,
//! and a file whose size, mtime and inode did not change is not read again.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono_tz::Tz;

use crate::flake::{Context, Flake, Problem, parse_flake};
use crate::placeholders::{HostFacts, uses_instance_facts};

/// One file's latest validation result.
#[derive(Debug, Clone)]
pub struct FileReport {
    pub path: PathBuf,
    /// The flake this file defines now, if its latest version is valid.
    pub flake: Option<Arc<Flake>>,
    pub problems: Vec<Problem>,
}

impl FileReport {
    pub fn has_errors(&self) -> bool {
        self.problems.iter().any(Problem::is_error)
    }
}

/// Validates flake files: the zone for schedules without `CRON_TZ=` and the host's facts.
pub struct Loader {
    default_zone: Tz,
    facts: HostFacts,
}

impl Loader {
    pub fn new(default_zone: Tz, facts: HostFacts) -> Self {
        Loader { default_zone, facts }
    }

    /// Reads and validates `paths` in order; reads IMDS first if any of them needs instance facts.
    pub async fn load(&mut self, paths: &[PathBuf]) -> Vec<FileReport> {
        let texts: Vec<(PathBuf, Result<String, String>)> = paths
            .iter()
            .map(|path| (path.clone(), std::fs::read_to_string(path).map_err(|error| format!("cannot be read: {error}"))))
            .collect();
        let needs_facts = texts.iter().any(|(_, text)| text.as_deref().is_ok_and(uses_instance_facts));
        if needs_facts {
            self.facts.fetch_instance_facts().await;
        }
        let context = Context { default_zone: self.default_zone, facts: &self.facts };
        texts
            .into_iter()
            .map(|(path, text)| match text {
                Ok(text) => {
                    let (flake, problems) = parse_flake(&path, &text, &context);
                    FileReport { path, flake: flake.map(Arc::new), problems }
                }
                Err(reason) => FileReport { path, flake: None, problems: vec![Problem::error("file", reason)] },
            })
            .collect()
    }
}

/// What a walk of the flakes directories found.
#[derive(Debug, Default)]
pub struct Discovery {
    /// Flake files, sorted, no duplicates.
    pub files: Vec<PathBuf>,
    /// Paths skipped that the operator should hear about once, such as a symlink loop, with why.
    pub notes: Vec<(PathBuf, String)>,
}

/// Every flake file below each of `paths` (a path may also name a file), sorted, no duplicates;
/// what was skipped is logged as a warning.
pub fn discover(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let discovery = discover_noting(paths)?;
    for (path, note) in &discovery.notes {
        tracing::warn!("{}: {note}", path.display());
    }
    Ok(discovery.files)
}

/// Every flake file below each of `paths`, and what was skipped on the way.
///
/// Flake files end in `.json` and do not start with `.`; directories starting with `.` (editor
/// and VCS state) are skipped too. Symlinks are followed (configuration management often links
/// flake files into place), but a link back to a directory it sits in is a loop: it is noted once
/// and not followed, instead of being walked dozens of levels deep.
pub fn discover_noting(paths: &[PathBuf]) -> Result<Discovery, String> {
    let mut discovery = Discovery::default();
    for path in paths {
        let metadata = std::fs::metadata(path).map_err(|error| format!("{}: {error}", path.display()))?;
        if metadata.is_dir() {
            walk(path, &mut discovery)?;
        } else {
            discovery.files.push(path.clone());
        }
    }
    discovery.files.sort();
    discovery.files.dedup();
    Ok(discovery)
}

fn walk(dir: &Path, discovery: &mut Discovery) -> Result<(), String> {
    let visible = |entry: &walkdir::DirEntry| entry.depth() == 0 || !entry.file_name().to_string_lossy().starts_with('.');
    for entry in walkdir::WalkDir::new(dir).follow_links(true).into_iter().filter_entry(visible) {
        let entry = match entry {
            Ok(entry) => entry,
            Err(error) => {
                let path = error.path().unwrap_or(dir).to_path_buf();
                if let Some(ancestor) = error.loop_ancestor() {
                    discovery.notes.push((
                        path,
                        format!(
                            "symbolic link loop back to {}; not followed (remove the link, or point it outside the flakes directory)",
                            ancestor.display()
                        ),
                    ));
                    continue;
                }
                // A dangling symlink is skipped, as it always was; anything else that cannot be
                // read makes the directory unreadable as a whole, so nothing is taken for deleted.
                if error.depth() > 0 && std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink()) {
                    continue;
                }
                let reason = error.io_error().map_or_else(|| error.to_string(), ToString::to_string);
                return Err(format!("{}: {reason}", path.display()));
            }
        };
        if entry.file_type().is_file() && entry.file_name().to_string_lossy().ends_with(".json") {
            discovery.files.push(entry.into_path());
        }
    }
    Ok(())
}

/// Marks every file that reuses a `flakeName` already held by another file as invalid.
///
/// `holds_name` says which path owned a name before (it keeps it); otherwise the first path wins.
pub fn reject_duplicate_names(reports: &mut [FileReport], holds_name: impl Fn(&str, &Path) -> bool) {
    let mut owner: HashMap<String, usize> = HashMap::new();
    for index in 0..reports.len() {
        let Some(name) = reports[index].flake.as_ref().map(|flake| flake.name.clone()) else { continue };
        match owner.get(&name) {
            None => {
                owner.insert(name, index);
            }
            Some(&first) => {
                let loser = if !holds_name(&name, &reports[first].path) && holds_name(&name, &reports[index].path) {
                    owner.insert(name.clone(), index);
                    first
                } else {
                    index
                };
                let winner = owner[&name];
                let winner_path = reports[winner].path.display().to_string();
                reports[loser].flake = None;
                reports[loser].problems.push(Problem::error(
                    "flakeName",
                    format!(
                        "duplicate flakeName \"{name}\": {winner_path} already defines it; flake names must be unique across the directory"
                    ),
                ));
            }
        }
    }
}

/// What a rescan changed, by flake name.
#[derive(Debug, Default)]
pub struct Changes {
    pub added: Vec<Arc<Flake>>,
    /// (old, new)
    pub changed: Vec<(Arc<Flake>, Arc<Flake>)>,
    pub removed: Vec<Arc<Flake>>,
    /// Files whose latest version is invalid, with their problems (their last good version, if
    /// any, keeps running).
    pub broken: Vec<FileReport>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.changed.is_empty() && self.removed.is_empty()
    }
}

/// How a file looked when it was last read; unchanged files are not read again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    modified_ns: i64,
    len: u64,
    inode: u64,
}

impl Stamp {
    fn of(path: &Path) -> Option<Stamp> {
        let metadata = std::fs::metadata(path).ok()?;
        Some(Stamp { modified_ns: metadata.mtime() * 1_000_000_000 + metadata.mtime_nsec(), len: metadata.len(), inode: metadata.ino() })
    }
}

struct Entry {
    stamp: Option<Stamp>,
    /// The file's own validation result, before duplicate names across files are judged.
    validated: FileReport,
    /// `validated` after the duplicate-name check of the latest rescan.
    report: FileReport,
    /// The version that runs: the latest valid one, or the last good one if the latest is broken.
    active: Option<Arc<Flake>>,
}

/// The flakes of one directory, kept up to date by [`Catalog::rescan`].
pub struct Catalog {
    dir: PathBuf,
    loader: Loader,
    entries: BTreeMap<PathBuf, Entry>,
    dir_missing: bool,
    /// Walk notes already logged.
    noted: HashSet<String>,
}

impl Catalog {
    pub fn new(dir: PathBuf, loader: Loader) -> Self {
        Catalog { dir, loader, entries: BTreeMap::new(), dir_missing: false, noted: HashSet::new() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Looks at the directory again; `force` re-reads files even if they look unchanged.
    pub async fn rescan(&mut self, force: bool) -> Changes {
        let before = self.active_by_name();
        let paths = match discover_noting(std::slice::from_ref(&self.dir)) {
            Ok(discovery) => {
                self.dir_missing = false;
                // A loop stays until someone removes it; saying so at every rescan would bury
                // the rest of the log.
                for (path, note) in discovery.notes {
                    let note = format!("{}: {note}", path.display());
                    if self.noted.insert(note.clone()) {
                        tracing::warn!("{note}");
                    }
                }
                discovery.files
            }
            Err(reason) => {
                // A vanished directory is more likely a mount problem than an intent to stop
                // monitoring: everything keeps running and nothing is deleted until it is back.
                self.dir_missing = true;
                tracing::error!(dir = %self.dir.display(), "flakes directory cannot be read, keeping the flakes already loaded: {reason}");
                return Changes::default();
            }
        };

        let stamps: Vec<Option<Stamp>> = paths.iter().map(|path| Stamp::of(path)).collect();
        let to_read: Vec<PathBuf> = paths
            .iter()
            .zip(&stamps)
            .filter(|(path, stamp)| force || stamp.is_none() || self.entries.get(*path).is_none_or(|entry| entry.stamp != **stamp))
            .map(|(path, _)| path.clone())
            .collect();
        let mut fresh: HashMap<PathBuf, FileReport> =
            self.loader.load(&to_read).await.into_iter().map(|report| (report.path.clone(), report)).collect();

        // Duplicates are judged afresh every time from each file's own result: a file rejected as
        // a duplicate last time becomes valid once its rival is gone.
        let validated: Vec<FileReport> =
            paths.iter().map(|path| fresh.remove(path).unwrap_or_else(|| self.entries[path].validated.clone())).collect();
        let mut reports = validated.clone();
        let previous = &self.entries;
        reject_duplicate_names(&mut reports, |name, path| {
            previous.get(path).and_then(|entry| entry.active.as_ref()).is_some_and(|flake| flake.name == name)
        });

        let mut entries = BTreeMap::new();
        let mut broken = Vec::new();
        for ((report, validated), stamp) in reports.into_iter().zip(validated).zip(stamps) {
            let active = match &report.flake {
                Some(flake) => Some(flake.clone()),
                None => self.entries.get(&report.path).and_then(|entry| entry.active.clone()),
            };
            if report.has_errors() {
                broken.push(report.clone());
            }
            entries.insert(report.path.clone(), Entry { stamp, validated, report, active });
        }
        self.entries = entries;

        let after = self.active_by_name();
        let mut changes = diff(&before, &after);
        changes.broken = broken;
        changes
    }

    fn active_by_name(&self) -> BTreeMap<String, Arc<Flake>> {
        let mut by_name = BTreeMap::new();
        for entry in self.entries.values() {
            if let Some(flake) = &entry.active {
                // A last-good version and a newer valid file may share a name; the first wins.
                by_name.entry(flake.name.clone()).or_insert_with(|| flake.clone());
            }
        }
        by_name
    }

    /// Every flake that runs (enabled or not), by name.
    pub fn flakes(&self) -> Vec<Arc<Flake>> {
        self.active_by_name().into_values().collect()
    }

    /// The latest report of every file.
    pub fn reports(&self) -> impl Iterator<Item = &FileReport> {
        self.entries.values().map(|entry| &entry.report)
    }

    /// True when the directory could not be read on the last rescan.
    pub fn dir_missing(&self) -> bool {
        self.dir_missing
    }

    /// Paths of files whose latest version does not validate.
    pub fn broken_files(&self) -> Vec<PathBuf> {
        self.entries.values().filter(|entry| entry.report.has_errors()).map(|entry| entry.report.path.clone()).collect()
    }
}

fn diff(before: &BTreeMap<String, Arc<Flake>>, after: &BTreeMap<String, Arc<Flake>>) -> Changes {
    let mut changes = Changes::default();
    for (name, new) in after {
        match before.get(name) {
            None => changes.added.push(new.clone()),
            Some(old) if old != new => changes.changed.push((old.clone(), new.clone())),
            Some(_) => {}
        }
    }
    for (name, old) in before {
        if !after.contains_key(name) {
            changes.removed.push(old.clone());
        }
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flake_json(name: &str, command: &str) -> String {
        format!(r#"{{"flakeName": "{name}", "flakeCronstring": "* * * * *", "flakeCommand": "{command}", "flakeMetricNamespace": "Test"}}"#)
    }

    fn catalog(dir: &Path) -> Catalog {
        Catalog::new(dir.to_path_buf(), Loader::new(Tz::UTC, HostFacts::local()))
    }

    fn names(flakes: &[Arc<Flake>]) -> Vec<String> {
        flakes.iter().map(|flake| flake.name.clone()).collect()
    }

    #[tokio::test]
    async fn added_changed_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.json"), flake_json("a", "echo 1")).unwrap();
        std::fs::write(dir.path().join("b.json"), flake_json("b", "echo 2")).unwrap();
        let mut catalog = catalog(dir.path());
        let changes = catalog.rescan(false).await;
        assert_eq!(names(&changes.added), ["a", "b"]);

        std::fs::write(dir.path().join("a.json"), flake_json("a", "echo 10")).unwrap();
        std::fs::remove_file(dir.path().join("b.json")).unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/c.json"), flake_json("c", "echo 3")).unwrap();
        let changes = catalog.rescan(false).await;
        assert_eq!(names(&changes.added), ["c"]);
        assert_eq!(changes.changed.len(), 1);
        assert_eq!(changes.changed[0].1.command, "echo 10");
        assert_eq!(names(&changes.removed), ["b"]);

        assert!(catalog.rescan(false).await.is_empty(), "nothing changed the second time");
    }

    #[tokio::test]
    async fn a_broken_edit_keeps_the_last_good_version() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.json");
        std::fs::write(&path, flake_json("a", "echo 1")).unwrap();
        let mut catalog = catalog(dir.path());
        catalog.rescan(false).await;

        std::fs::write(&path, r#"{"flakeName": "a", "#).unwrap();
        let changes = catalog.rescan(false).await;
        assert!(changes.is_empty(), "the running version stays: {changes:?}");
        assert_eq!(changes.broken.len(), 1);
        assert_eq!(changes.broken[0].problems[0].field, "file");
        assert_eq!(catalog.flakes()[0].command, "echo 1");
        assert_eq!(catalog.broken_files(), std::slice::from_ref(&path));

        std::fs::write(&path, flake_json("a", "echo 2")).unwrap();
        let changes = catalog.rescan(false).await;
        assert_eq!(changes.changed.len(), 1, "fixed file takes over");
        assert!(catalog.broken_files().is_empty());
    }

    #[tokio::test]
    async fn a_duplicate_never_displaces_the_flake_that_had_the_name() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("z.json"), flake_json("same", "echo old")).unwrap();
        let mut catalog = catalog(dir.path());
        catalog.rescan(false).await;

        // Sorts first, but arrives second: it is the duplicate.
        std::fs::write(dir.path().join("a.json"), flake_json("same", "echo new")).unwrap();
        let changes = catalog.rescan(false).await;
        assert!(changes.is_empty(), "{changes:?}");
        assert_eq!(catalog.flakes()[0].command, "echo old");
        let broken = &changes.broken[0];
        assert!(broken.path.ends_with("a.json"));
        assert!(broken.problems[0].message.contains("z.json already defines it"), "{:?}", broken.problems);

        // Once the holder is gone, the unchanged newcomer is valid without being edited.
        std::fs::remove_file(dir.path().join("z.json")).unwrap();
        let changes = catalog.rescan(false).await;
        assert_eq!(changes.changed.len(), 1, "{changes:?}");
        assert_eq!(catalog.flakes()[0].command, "echo new");
        assert!(changes.broken.is_empty());
    }

    #[tokio::test]
    async fn an_atomic_rename_by_an_editor_is_not_a_change() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.json");
        std::fs::write(&path, flake_json("a", "echo 1")).unwrap();
        let mut catalog = catalog(dir.path());
        catalog.rescan(false).await;

        let temporary = dir.path().join(".a.json.swp");
        std::fs::write(&temporary, flake_json("a", "echo 1")).unwrap();
        std::fs::rename(&temporary, &path).unwrap();
        assert!(catalog.rescan(false).await.is_empty());
        assert!(catalog.rescan(true).await.is_empty(), "a forced re-read finds nothing new either");
    }

    #[tokio::test]
    async fn a_symlink_loop_is_noted_once_and_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.json"), flake_json("a", "echo 1")).unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/b.json"), flake_json("b", "echo 2")).unwrap();
        std::os::unix::fs::symlink("..", dir.path().join("sub/up")).unwrap();

        let discovery = discover_noting(&[dir.path().to_path_buf()]).unwrap();
        assert_eq!(discovery.files, [dir.path().join("a.json"), dir.path().join("sub/b.json")]);
        assert_eq!(discovery.notes.len(), 1, "{:?}", discovery.notes);
        assert_eq!(discovery.notes[0].0, dir.path().join("sub/up"));
        assert!(discovery.notes[0].1.starts_with("symbolic link loop back to"), "{:?}", discovery.notes);

        let mut catalog = catalog(dir.path());
        let changes = catalog.rescan(false).await;
        assert_eq!(names(&changes.added), ["a", "b"]);
        assert!(changes.broken.is_empty(), "no bogus duplicates: {:?}", changes.broken);
        assert_eq!(catalog.noted.len(), 1);
        assert!(catalog.rescan(false).await.is_empty());
    }

    #[test]
    fn a_dangling_symlink_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.json"), flake_json("a", "echo 1")).unwrap();
        std::os::unix::fs::symlink("nowhere.json", dir.path().join("gone.json")).unwrap();
        assert_eq!(discover(&[dir.path().to_path_buf()]).unwrap(), [dir.path().join("a.json")]);
    }

    #[tokio::test]
    async fn a_missing_directory_keeps_everything_running() {
        let dir = tempfile::tempdir().unwrap();
        let flakes = dir.path().join("flakes");
        std::fs::create_dir(&flakes).unwrap();
        std::fs::write(flakes.join("a.json"), flake_json("a", "echo 1")).unwrap();
        let mut catalog = catalog(&flakes);
        catalog.rescan(false).await;

        std::fs::rename(&flakes, dir.path().join("elsewhere")).unwrap();
        let changes = catalog.rescan(false).await;
        assert!(changes.is_empty());
        assert!(catalog.dir_missing());
        assert_eq!(names(&catalog.flakes()), ["a"]);
    }
}
