//! `flakeImage`, `flakeBuild`, `flakeImagePull` and `flakeContainer` (SPEC 14): a `metric` or
//! `job` flake whose command runs inside a container of its own image. Parsed into a
//! [`FlakeContainer`]; the engine, the image keeper and the container start are elsewhere
//! (`container`, `runner::container`).

use std::path::{Component, Path, PathBuf};

use super::fields::{Fields, shorten};
use super::keys::{CONTAINER_KEYS, MOUNT_KEYS, warn_unknown};
use super::model::FlakeKind;
use super::problem::Problems;

/// Docker's own lower bound on a container's memory limit.
const MIN_MEMORY_BYTES: u64 = 6 * 1024 * 1024;
/// Most mounts one flake may declare.
const MAX_MOUNTS: usize = 32;

/// Where a flake's image comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageSource {
    /// `flakeImage`: a reference the engine resolves (and pulls by `flakeImagePull`).
    Reference(String),
    /// `flakeBuild`: a directory holding a `Dockerfile`, resolved against the flake file's
    /// directory; built by the engine and tagged by the hash of its contents.
    Build(PathBuf),
}

/// `flakeImagePull`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullPolicy {
    /// Pull only when the engine does not have the image (once; never again while it does).
    Missing,
    /// Pull before every run (outside the run's time limit).
    Always,
    /// Never pull: the image must already be there.
    Never,
}

impl PullPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            PullPolicy::Missing => "missing",
            PullPolicy::Always => "always",
            PullPolicy::Never => "never",
        }
    }
}

/// One declared read-only bind mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// Relative to the daemon's `--workdir`, without `..`.
    pub source: PathBuf,
    /// An absolute path inside the container.
    pub target: String,
}

/// How a flake's command runs in a container.
#[derive(Debug, Clone, PartialEq)]
pub struct FlakeContainer {
    pub image: ImageSource,
    pub pull: PullPolicy,
    /// Bytes; `None`: the engine's default (no limit).
    pub memory_bytes: Option<u64>,
    /// CPUs, e.g. 0.5; `None`: no limit.
    pub cpus: Option<f64>,
    /// `none`, `bridge` or `host`; `None`: the engine's default.
    pub network: Option<String>,
    /// `user`, `uid` or `uid:gid`; `None`: the image's.
    pub user: Option<String>,
    /// The container's root file system is read-only (the default).
    pub read_only: bool,
    pub mounts: Vec<Mount>,
}

impl FlakeContainer {
    /// `image localhost/x:1 (pull missing)` or `build ./dir`, for `once --dry-run` and `plan`.
    pub fn describe(&self) -> String {
        let mut text = match &self.image {
            ImageSource::Reference(image) => format!("image {image} (pull {})", self.pull.as_str()),
            ImageSource::Build(dir) => format!("build {}", dir.display()),
        };
        if let Some(memory) = self.memory_bytes {
            text.push_str(&format!(", memory {memory} bytes"));
        }
        if let Some(cpus) = self.cpus {
            text.push_str(&format!(", cpus {cpus}"));
        }
        if let Some(network) = &self.network {
            text.push_str(&format!(", network {network}"));
        }
        if let Some(user) = &self.user {
            text.push_str(&format!(", user {user}"));
        }
        text.push_str(if self.read_only { ", read-only root" } else { ", writable root" });
        for mount in &self.mounts {
            text.push_str(&format!(", mount {}:{} (read-only)", mount.source.display(), mount.target));
        }
        text
    }
}

/// The container fields of a flake file; `Ok(None)` when it runs on the host. `Err(())` when a
/// problem was recorded.
pub(super) fn parse_container(
    fields: &Fields,
    flake_file: &Path,
    kind: FlakeKind,
    working_directory: Option<&Path>,
    problems: &mut Problems,
) -> Result<Option<FlakeContainer>, ()> {
    let image = fields.strict_text("flakeImage", problems);
    let build = fields.strict_text("flakeBuild", problems);
    let declared = ["flakeImage", "flakeBuild", "flakeImagePull", "flakeContainer"].into_iter().filter(|key| fields.raw(key).is_some());
    let declared: Vec<&str> = declared.collect();
    if declared.is_empty() {
        return Ok(None);
    }
    let mut ok = true;
    if !matches!(kind, FlakeKind::Metric | FlakeKind::Job) {
        for key in &declared {
            problems.error(
                *key,
                format!("only metric and job flakes run a command in a container; remove it from this {} flake", kind.as_str()),
            );
        }
        return Err(());
    }
    let source = match (image, build) {
        (Some(_), Some(_)) => {
            problems.error("flakeBuild", "and flakeImage are both set; keep flakeImage to run an image, or flakeBuild to build one");
            None
        }
        (Some(image), None) => check_reference(&image, problems).then_some(ImageSource::Reference(image.trim().to_string())),
        (None, Some(dir)) => build_directory(&dir, flake_file, problems).map(ImageSource::Build),
        (None, None) => {
            if fields.raw("flakeImage").is_none() && fields.raw("flakeBuild").is_none() {
                problems
                    .error(declared[0], "needs flakeImage (an image such as \"mysql:8.4\") or flakeBuild (a directory with a Dockerfile)");
            }
            None
        }
    };
    let pull = match fields.strict_text("flakeImagePull", problems) {
        None => Some(PullPolicy::Missing),
        Some(_) if fields.raw("flakeBuild").is_some() && fields.raw("flakeImage").is_none() => {
            problems.error("flakeImagePull", "applies to flakeImage only; a flakeBuild image is built here, never pulled; remove it");
            None
        }
        Some(text) => match text.trim().to_ascii_lowercase().as_str() {
            "missing" => Some(PullPolicy::Missing),
            "always" => Some(PullPolicy::Always),
            "never" => Some(PullPolicy::Never),
            _ => {
                problems.error(
                    "flakeImagePull",
                    format!("\"{}\" is not a pull policy; use \"missing\" (default), \"always\" or \"never\"", shorten(&text, 40)),
                );
                None
            }
        },
    };
    if let Some(dir) = working_directory
        && !dir.is_absolute()
    {
        problems.error(
            "flakeWorkingDirectory",
            format!("\"{}\" is relative, but the command runs in a container: write an absolute path inside the image", dir.display()),
        );
        ok = false;
    }
    let mut container = FlakeContainer {
        image: ImageSource::Reference(String::new()),
        pull: PullPolicy::Missing,
        memory_bytes: None,
        cpus: None,
        network: None,
        user: None,
        read_only: true,
        mounts: Vec::new(),
    };
    if let Some(object) = fields.object("flakeContainer", problems) {
        warn_unknown(object, CONTAINER_KEYS, "flakeContainer.", problems);
        let options = Fields::new(object, "flakeContainer.");
        ok &= parse_options(&options, &mut container, problems);
    } else if fields.raw("flakeContainer").is_some() {
        ok = false;
    }
    match (source, pull, ok) {
        (Some(image), Some(pull), true) => Ok(Some(FlakeContainer { image, pull, ..container })),
        _ => Err(()),
    }
}

/// `flakeContainer`'s own keys; false if any was wrong.
fn parse_options(options: &Fields, container: &mut FlakeContainer, problems: &mut Problems) -> bool {
    let mut ok = true;
    if let Some(text) = options.text("memory", problems) {
        match parse_memory(&text) {
            Some(bytes) if bytes >= MIN_MEMORY_BYTES => container.memory_bytes = Some(bytes),
            Some(_) => {
                problems.error(options.path("memory"), "is below the engines' lower bound of 6MiB");
                ok = false;
            }
            None => {
                problems.error(
                    options.path("memory"),
                    format!(
                        "\"{}\" is not an amount of memory; write bytes or a number with a unit such as \"256MiB\", \"1GiB\", \"512MB\"",
                        shorten(&text, 40)
                    ),
                );
                ok = false;
            }
        }
    } else if options.raw("memory").is_some() {
        ok = false;
    }
    match options.number("cpus", problems) {
        Some(cpus) if cpus > 0.0 && cpus <= 1024.0 => container.cpus = Some(cpus),
        Some(cpus) => {
            problems.error(options.path("cpus"), format!("{cpus} is out of range; use a number of CPUs above 0, such as 0.5"));
            ok = false;
        }
        None => ok &= options.raw("cpus").is_none(),
    }
    match options.strict_text("network", problems) {
        Some(network) if matches!(network.as_str(), "none" | "bridge" | "host") => container.network = Some(network),
        Some(network) => {
            problems.error(
                options.path("network"),
                format!(
                    "\"{}\" is not a network mode; use \"none\", \"bridge\" or \"host\", or remove it for the engine's default",
                    shorten(&network, 40)
                ),
            );
            ok = false;
        }
        None => ok &= options.raw("network").is_none(),
    }
    match options.text("user", problems) {
        Some(user) if !user.trim().is_empty() && !user.chars().any(|c| c.is_whitespace() || c.is_control()) => container.user = Some(user),
        Some(_) => {
            problems.error(
                options.path("user"),
                "must be a user name or uid, optionally \":group\", without spaces; remove it for the image's user",
            );
            ok = false;
        }
        None => ok &= options.raw("user").is_none(),
    }
    match options.boolean("readOnly", problems) {
        Some(read_only) => container.read_only = read_only,
        None => ok &= options.raw("readOnly").is_none(),
    }
    match options.list("mounts", problems) {
        Some(list) if list.len() > MAX_MOUNTS => {
            problems.error(options.path("mounts"), format!("has {} entries; at most {MAX_MOUNTS}", list.len()));
            ok = false;
        }
        Some(list) => {
            for (index, item) in list.iter().enumerate() {
                let prefix = format!("{}[{index}]", options.path("mounts"));
                match parse_mount(item, &prefix, problems) {
                    Some(mount) => container.mounts.push(mount),
                    None => ok = false,
                }
            }
        }
        None => ok &= options.raw("mounts").is_none(),
    }
    ok
}

fn parse_mount(item: &serde_json::Value, prefix: &str, problems: &mut Problems) -> Option<Mount> {
    let Some(object) = item.as_object() else {
        problems.error(prefix, "must be an object {\"source\": \"dir/under/workdir\", \"target\": \"/path/in/container\"}");
        return None;
    };
    warn_unknown(object, MOUNT_KEYS, &format!("{prefix}."), problems);
    let fields = Fields::new(object, format!("{prefix}."));
    let source = fields.strict_text("source", problems);
    let source = fields.require("source", source, "a path relative to the daemon's --workdir", problems);
    let target = fields.strict_text("target", problems);
    let target = fields.require("target", target, "an absolute path inside the container", problems);
    let source = source.filter(|source| {
        let path = Path::new(source);
        let inside = !source.trim().is_empty()
            && path.is_relative()
            && path.components().all(|component| matches!(component, Component::Normal(_) | Component::CurDir));
        if !inside {
            problems.error(
                fields.path("source"),
                format!(
                    "\"{}\" must be a path relative to the daemon's --workdir, without \"..\" (no other host path is mounted)",
                    shorten(source, 60)
                ),
            );
        }
        inside
    });
    let target = target.filter(|target| {
        let good = target.starts_with('/') && target != "/" && !target.contains(':') && !target.chars().any(char::is_control);
        if !good {
            problems.error(
                fields.path("target"),
                format!("\"{}\" must be an absolute path inside the container, not \"/\", without \":\"", shorten(target, 60)),
            );
        }
        good
    });
    Some(Mount { source: PathBuf::from(source?), target: target? })
}

/// An image reference the engine could accept: no spaces or control characters, at most 4096
/// characters (the engine's own grammar decides the rest, and says so at pull time).
fn check_reference(image: &str, problems: &mut Problems) -> bool {
    let image = image.trim();
    let good =
        !image.is_empty() && image.len() <= 4096 && !image.chars().any(|c| c.is_whitespace() || c.is_control()) && !image.starts_with('-');
    if !good {
        problems.error(
            "flakeImage",
            format!(
                "\"{}\" is not an image reference; write one such as \"mysql:8.4\" or \"registry.example.com/team/tool@sha256:...\"",
                shorten(image, 60)
            ),
        );
    }
    good
}

/// `flakeBuild` resolved against the flake file's directory; it must hold a `Dockerfile`.
fn build_directory(dir: &str, flake_file: &Path, problems: &mut Problems) -> Option<PathBuf> {
    if dir.trim().is_empty() {
        problems.error("flakeBuild", "is empty; name a directory holding a Dockerfile, relative to this flake file");
        return None;
    }
    let base = flake_file.parent().unwrap_or(Path::new("."));
    let resolved = base.join(dir);
    if !resolved.join("Dockerfile").is_file() {
        problems.error(
            "flakeBuild",
            format!("{} has no Dockerfile; flakeBuild names a directory holding one, relative to this flake file", resolved.display()),
        );
        return None;
    }
    Some(resolved)
}

/// `256MiB`, `1GiB`, `512MB`, `100k`, `1073741824`: bytes. Docker's one-letter suffixes (`m`,
/// `g`) are binary, as in `docker run --memory`.
pub fn parse_memory(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let factor = super::units::bytes_per(unit)?;
    let bytes = number * factor as f64;
    (1.0..1e18).contains(&bytes).then_some(bytes as u64)
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::flake::{Context, Flake, parse_flake};
    use crate::placeholders::HostFacts;

    fn parse_in(dir: &Path, value: Value) -> (Option<Flake>, Vec<String>) {
        let facts = HostFacts::local();
        let context = Context { default_zone: chrono_tz::UTC, facts: &facts };
        let (flake, problems) = parse_flake(&dir.join("f.json"), &value.to_string(), &context);
        (flake, problems.into_iter().map(|problem| problem.to_string()).collect())
    }

    fn parse(value: Value) -> (Option<Flake>, Vec<String>) {
        parse_in(Path::new("/nonexistent"), value)
    }

    fn flake(extra: Value) -> Value {
        let mut flake =
            json!({"flakeName": "q", "flakeCronstring": "* * * * *", "flakeCommand": "mysql -e 'select 1'", "flakeMetricNamespace": "N"});
        for (key, value) in extra.as_object().unwrap() {
            flake[key] = value.clone();
        }
        flake
    }

    #[test]
    fn an_image_with_its_defaults() {
        let (flake, problems) = parse(flake(json!({"flakeImage": "mysql:8.4"})));
        assert!(problems.is_empty(), "{problems:?}");
        let container = flake.unwrap().container.unwrap();
        assert_eq!(container.image, ImageSource::Reference("mysql:8.4".to_string()));
        assert_eq!(container.pull, PullPolicy::Missing);
        assert!(container.read_only);
        assert!(container.mounts.is_empty());
    }

    #[test]
    fn every_option_is_read() {
        let options = json!({"memory": "256MiB", "cpus": "0.5", "network": "none", "user": 1000, "readOnly": false,
                             "mounts": [{"source": "conf/mysql", "target": "/etc/mysql/conf.d"}]});
        let (flake, problems) = parse(flake(json!({"flakeImage": "mysql:8.4", "flakeImagePull": "Always", "flakeContainer": options})));
        assert!(problems.is_empty(), "{problems:?}");
        let container = flake.unwrap().container.unwrap();
        assert_eq!(container.pull, PullPolicy::Always);
        assert_eq!(container.memory_bytes, Some(256 << 20));
        assert_eq!(container.cpus, Some(0.5));
        assert_eq!(container.network.as_deref(), Some("none"));
        assert_eq!(container.user.as_deref(), Some("1000"));
        assert!(!container.read_only);
        assert_eq!(container.mounts, vec![Mount { source: PathBuf::from("conf/mysql"), target: "/etc/mysql/conf.d".to_string() }]);
    }

    #[test]
    fn bad_fields_name_the_field_and_the_fix() {
        let cases = [
            (json!({"flakeImage": "a", "flakeBuild": "b"}), "flakeBuild: and flakeImage are both set"),
            (json!({"flakeImagePull": "sometimes", "flakeImage": "a"}), "flakeImagePull: \"sometimes\" is not a pull policy"),
            (json!({"flakeContainer": {}}), "flakeContainer: needs flakeImage"),
            (json!({"flakeImage": "a", "flakeContainer": {"memory": "lots"}}), "flakeContainer.memory: \"lots\" is not an amount"),
            (json!({"flakeImage": "a", "flakeContainer": {"memory": "1MiB"}}), "flakeContainer.memory: is below"),
            (json!({"flakeImage": "a", "flakeContainer": {"cpus": 0}}), "flakeContainer.cpus: 0 is out of range"),
            (json!({"flakeImage": "a", "flakeContainer": {"network": "overlay"}}), "flakeContainer.network:"),
            (
                json!({"flakeImage": "a", "flakeContainer": {"mounts": [{"source": "../etc", "target": "/x"}]}}),
                "flakeContainer.mounts[0].source:",
            ),
            (
                json!({"flakeImage": "a", "flakeContainer": {"mounts": [{"source": "/etc", "target": "/x"}]}}),
                "flakeContainer.mounts[0].source:",
            ),
            (
                json!({"flakeImage": "a", "flakeContainer": {"mounts": [{"source": "etc", "target": "x"}]}}),
                "flakeContainer.mounts[0].target:",
            ),
            (json!({"flakeImage": "a", "flakeContainer": {"privileged": true}}), "flakeContainer.privileged: warning: unknown key"),
            (json!({"flakeImage": "a b"}), "flakeImage:"),
            (json!({"flakeImage": "a", "flakeWorkingDirectory": "sub"}), "flakeWorkingDirectory: \"sub\" is relative"),
            (json!({"flakeBuild": "nowhere"}), "flakeBuild: /nonexistent/nowhere has no Dockerfile"),
            (json!({"flakeBuild": "nowhere", "flakeImagePull": "never"}), "flakeImagePull: applies to flakeImage only"),
        ];
        for (extra, expected) in cases {
            let (_, problems) = parse(flake(extra.clone()));
            assert!(problems.iter().any(|problem| problem.starts_with(expected)), "{extra}: expected {expected:?} in {problems:?}");
        }
    }

    #[test]
    fn scrape_and_alarms_flakes_take_no_image() {
        let scrape = json!({"flakeName": "s", "flakeType": "scrape", "flakeCronstring": "* * * * *", "flakeUrl": "http://x/metrics",
                            "flakeMetricNamespace": "N", "flakeImage": "a"});
        let (flake, problems) = parse(scrape);
        assert!(flake.is_none());
        assert!(problems.iter().any(|problem| problem.starts_with("flakeImage: only metric and job flakes")), "{problems:?}");
    }

    #[test]
    fn a_build_directory_is_relative_to_the_flake_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("tool")).unwrap();
        std::fs::write(dir.path().join("tool/Dockerfile"), "FROM x\n").unwrap();
        let (flake, problems) = parse_in(dir.path(), flake(json!({"flakeBuild": "tool"})));
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(flake.unwrap().container.unwrap().image, ImageSource::Build(dir.path().join("tool")));
    }

    #[test]
    fn memory_amounts() {
        assert_eq!(parse_memory("256MiB"), Some(256 << 20));
        assert_eq!(parse_memory("1GiB"), Some(1 << 30));
        assert_eq!(parse_memory("512MB"), Some(512_000_000));
        assert_eq!(parse_memory("100m"), Some(100 << 20));
        assert_eq!(parse_memory("1048576"), Some(1 << 20));
        assert_eq!(parse_memory("1.5GiB"), Some(3 << 29));
        assert_eq!(parse_memory("lots"), None);
        assert_eq!(parse_memory("12 parsecs"), None);
        assert_eq!(parse_memory(""), None);
    }
}
