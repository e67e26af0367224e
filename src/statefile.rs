//! Small JSON files the daemon keeps in `--state-dir` (the managed alarms, the monitored jobs'
//! last successes): replaced atomically, and set aside, never overwritten, when they cannot be
//! understood.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Replaces `path` with `text` so that a crash at any moment leaves the old file or the new one,
/// never a mix: a temporary file beside it, fsync, rename, fsync of the directory.
pub fn replace(path: &Path, text: &str) -> io::Result<()> {
    let temporary = path.with_extension("json.tmp");
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut file = File::create(&temporary)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&temporary, path)?;
    path.parent().map_or(Ok(()), |dir| File::open(dir).and_then(|dir| dir.sync_all()))
}

/// Renames `path` to `<name>.unreadable-<time>`, with a number added if an earlier file set aside
/// in the same second has that name: a file kept for a person is never overwritten.
pub fn set_aside(path: &Path) -> io::Result<PathBuf> {
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
    let mut aside = path.with_extension(format!("json.unreadable-{stamp}"));
    let mut attempt = 1;
    while aside.exists() {
        attempt += 1;
        aside = path.with_extension(format!("json.unreadable-{stamp}-{attempt}"));
    }
    std::fs::rename(path, &aside)?;
    Ok(aside)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_and_sets_aside_without_overwriting() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/x.json");
        replace(&path, "{\"a\":1}").unwrap();
        replace(&path, "{\"a\":2}").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"a\":2}");
        assert!(!path.with_extension("json.tmp").exists());
        let first = set_aside(&path).unwrap();
        replace(&path, "{\"a\":3}").unwrap();
        let second = set_aside(&path).unwrap();
        assert_ne!(first, second);
        assert_eq!(std::fs::read_to_string(first).unwrap(), "{\"a\":2}");
        assert_eq!(std::fs::read_to_string(second).unwrap(), "{\"a\":3}");
    }
}
