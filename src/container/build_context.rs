//! A `flakeBuild` directory as the engine's build API wants it (a tar of the directory) and the
//! content hash that tags the image it builds: every file's relative path, kind, executable bit
//! and contents, in a fixed order, so changing any file changes the tag and nothing else does.

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use sha2::{Digest, Sha256};
use walkdir::WalkDir;

/// Largest build context sent to the engine: a flake's tools, not a data set.
pub const MAX_CONTEXT_BYTES: u64 = 256 * 1024 * 1024;
/// Hex digits of the hash in the tag.
const TAG_HASH_CHARS: usize = 16;

/// The tag of the image `dir` builds for `flake`: `snowflake-<flake, lowercased>:<hash>`.
pub fn image_tag(flake: &str, hash: &str) -> String {
    // Repository names are lowercase; flake names may not be.
    let mut name: String = flake.to_ascii_lowercase();
    while name.ends_with(['.', '_', '-']) {
        name.pop();
    }
    format!("snowflake-{name}:{hash}")
}

/// The content hash of `dir` (its first [`TAG_HASH_CHARS`] hex digits).
pub fn hash_directory(dir: &Path) -> Result<String, String> {
    let mut hasher = Sha256::new();
    let mut total = 0u64;
    for entry in WalkDir::new(dir).follow_links(false).sort_by_file_name() {
        let entry = entry.map_err(|error| format!("cannot read the build directory {}: {error}", dir.display()))?;
        let relative = entry.path().strip_prefix(dir).unwrap_or(entry.path());
        let metadata = entry.metadata().map_err(|error| format!("cannot read {}: {error}", entry.path().display()))?;
        hasher.update(relative.as_os_str().as_encoded_bytes());
        hasher.update([0]);
        if entry.path_is_symlink() {
            let target = std::fs::read_link(entry.path()).map_err(|error| format!("cannot read {}: {error}", entry.path().display()))?;
            hasher.update(b"L");
            hasher.update(target.as_os_str().as_encoded_bytes());
        } else if metadata.is_dir() {
            hasher.update(b"D");
        } else if metadata.is_file() {
            total += metadata.len();
            if total > MAX_CONTEXT_BYTES {
                return Err(format!(
                    "the build directory {} holds over {} MiB; a flake's image needs its tools, not data",
                    dir.display(),
                    MAX_CONTEXT_BYTES >> 20
                ));
            }
            hasher.update(if metadata.permissions().mode() & 0o111 != 0 { b"X" } else { b"F" });
            hasher.update(metadata.len().to_le_bytes());
            let mut file = std::fs::File::open(entry.path()).map_err(|error| format!("cannot read {}: {error}", entry.path().display()))?;
            let mut buffer = vec![0u8; 64 * 1024];
            loop {
                let read = file.read(&mut buffer).map_err(|error| format!("cannot read {}: {error}", entry.path().display()))?;
                if read == 0 {
                    break;
                }
                hasher.update(&buffer[..read]);
            }
        }
        hasher.update([0]);
    }
    let digest = hasher.finalize();
    let hex: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
    Ok(hex[..TAG_HASH_CHARS].to_string())
}

/// `dir` as an uncompressed tar, paths relative to it, symbolic links kept as links.
pub fn tar_directory(dir: &Path) -> Result<Vec<u8>, String> {
    let mut builder = tar::Builder::new(Vec::new());
    builder.follow_symlinks(false);
    builder.append_dir_all(".", dir).map_err(|error| format!("cannot pack the build directory {}: {error}", dir.display()))?;
    builder.into_inner().map_err(|error| format!("cannot pack the build directory {}: {error}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_change_changes_the_hash_and_nothing_else_does() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("Dockerfile"), "FROM x\n").unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/tool.sh"), "echo 1\n").unwrap();
        let first = hash_directory(dir.path()).unwrap();
        assert_eq!(hash_directory(dir.path()).unwrap(), first, "stable");
        std::fs::write(dir.path().join("sub/tool.sh"), "echo 2\n").unwrap();
        let changed = hash_directory(dir.path()).unwrap();
        assert_ne!(changed, first);
        std::fs::set_permissions(dir.path().join("sub/tool.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_ne!(hash_directory(dir.path()).unwrap(), changed, "the executable bit counts");
        assert_eq!(first.len(), TAG_HASH_CHARS);
    }

    #[test]
    fn the_tar_holds_the_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("Dockerfile"), "FROM x\n").unwrap();
        let bytes = tar_directory(dir.path()).unwrap();
        let mut archive = tar::Archive::new(&bytes[..]);
        let names: Vec<String> = archive.entries().unwrap().map(|entry| entry.unwrap().path().unwrap().display().to_string()).collect();
        assert!(names.iter().any(|name| name.ends_with("Dockerfile")), "{names:?}");
    }

    #[test]
    fn tags_are_lowercase() {
        assert_eq!(image_tag("Disk.Free-", "abc"), "snowflake-disk.free:abc");
    }
}
