//! Small JSON files the daemon keeps in `--state-dir` (the managed alarms, the monitored jobs'
//! last successes): replaced atomically, and set aside, never overwritten, when they cannot be
//! understood.
//!
//! Damage of any kind (garbage, a byte that is not UTF-8, a directory or other non-file under the
//! name) is "cannot be understood": set aside and go on (issue 22.6). Only an error reading a
//! regular file (permissions, I/O) is "cannot be read", since its contents may be fine.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// What [`read`] found: `None` if there is no file; else its text, or why it is damaged.
pub type Contents = Option<Result<String, String>>;

/// Reads a state file. `Ok(None)`: absent. `Ok(Some(Err(reason)))`: damaged (not a regular
/// file, not UTF-8), to be set aside like a file that does not parse. `Err`: a regular file that
/// cannot be read.
pub fn read(path: &Path) -> io::Result<Contents> {
    let metadata = match std::fs::metadata(path) {
        Ok(metadata) => metadata,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(error),
    };
    if !metadata.is_file() {
        let what = if metadata.is_dir() { "a directory" } else { "not a regular file" };
        return Ok(Some(Err(format!("it is {what}, not a state file"))));
    }
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(error),
    };
    Ok(Some(String::from_utf8(bytes).map_err(|error| format!("it is not UTF-8 text (byte {})", error.utf8_error().valid_up_to()))))
}

/// A lock file's name taken by a directory or other non-file is damage too: it is set aside
/// (logged) so the lock can be made. Locks hold no data, so nothing is lost.
pub fn clear_for_lock(path: &Path) {
    if std::fs::metadata(path).is_ok_and(|metadata| !metadata.is_file()) {
        match set_aside(path) {
            Ok(aside) => {
                tracing::error!(path = %path.display(), moved_to = %aside.display(), "a lock file's name was taken by something that is not a file; moved it aside")
            }
            Err(error) => {
                tracing::error!(path = %path.display(), "a lock file's name is taken by something that is not a file, and it cannot be moved aside: {error}")
            }
        }
    }
}

/// A directory's name (the spool's) taken by a file or other non-directory is damage too: it is
/// set aside (logged) so the directory can be made.
pub fn clear_for_directory(path: &Path) {
    if std::fs::metadata(path).is_ok_and(|metadata| !metadata.is_dir()) {
        match set_aside(path) {
            Ok(aside) => {
                tracing::error!(path = %path.display(), moved_to = %aside.display(), "a state directory's name was taken by something that is not a directory; moved it aside")
            }
            Err(error) => {
                tracing::error!(path = %path.display(), "a state directory's name is taken by something that is not a directory, and it cannot be moved aside: {error}")
            }
        }
    }
}

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

/// Renames `path` (a file, or whatever took its name) to `<name>.unreadable-<time>`, with a number added if an earlier file set aside
/// in the same second has that name: a file kept for a person is never overwritten.
pub fn set_aside(path: &Path) -> io::Result<PathBuf> {
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
    let name = path.file_name().map_or_else(|| "state".into(), |name| name.to_string_lossy());
    let mut aside = path.with_file_name(format!("{name}.unreadable-{stamp}"));
    let mut attempt = 1;
    while aside.exists() {
        attempt += 1;
        aside = path.with_file_name(format!("{name}.unreadable-{stamp}-{attempt}"));
    }
    std::fs::rename(path, &aside)?;
    Ok(aside)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn damage_of_any_kind_is_told_apart_from_a_file_that_cannot_be_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.json");
        assert!(read(&path).unwrap().is_none());
        std::fs::write(&path, b"{\"a\":\"\xff\"}").unwrap();
        assert_eq!(read(&path).unwrap(), Some(Err("it is not UTF-8 text (byte 6)".to_string())));
        std::fs::remove_file(&path).unwrap();
        std::fs::create_dir(&path).unwrap();
        assert_eq!(read(&path).unwrap(), Some(Err("it is a directory, not a state file".to_string())));
        let aside = set_aside(&path).unwrap();
        assert!(aside.is_dir() && !path.exists(), "a directory is set aside like a file");
        std::fs::write(&path, "{}").unwrap();
        assert_eq!(read(&path).unwrap(), Some(Ok("{}".to_string())));
    }

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
