//! The container engine: which unix socket (`--container-engine`, `DOCKER_HOST`, Docker's,
//! podman's), a client of its Docker Engine API (bollard) made when first needed, and every error
//! worded with the socket path and what to do.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use bollard::Docker;

/// Docker's socket, the first default after `DOCKER_HOST`.
pub const DOCKER_SOCKET: &str = "/var/run/docker.sock";
/// podman's socket when it runs as root (`podman system service` / `podman.socket`).
pub const PODMAN_ROOT_SOCKET: &str = "/run/podman/podman.sock";

/// bollard's own limit on a request, which also bounds streams (a wait, a build): longer than
/// any run may take. Each call here sets the deadline it needs.
const CLIENT_TIMEOUT_SECONDS: u64 = 3 * 86_400;
/// A call that answers at once when the engine is well (create, start, kill, remove, inspect).
pub const QUICK_CALL: Duration = Duration::from_secs(30);

/// Labels on every container the daemon starts.
pub const LABEL_OWNER: &str = "dev.specialsnowflake.owner";
pub const LABEL_FLAKE: &str = "dev.specialsnowflake.flake";
pub const LABEL_RUN: &str = "dev.specialsnowflake.run";

/// The engine's socket by SPEC 14: `explicit` (`--container-engine`), else `DOCKER_HOST` when it
/// is a `unix://` URL, else Docker's socket if it exists, else podman's if it exists (root's, or
/// the user's under `XDG_RUNTIME_DIR`), else Docker's (named in the errors).
pub fn resolve_socket(explicit: Option<&Path>) -> PathBuf {
    if let Some(path) = explicit {
        return PathBuf::from(path.to_string_lossy().strip_prefix("unix://").unwrap_or(&path.to_string_lossy()).to_string());
    }
    if let Some(host) = std::env::var_os("DOCKER_HOST")
        && let Some(path) = host.to_string_lossy().strip_prefix("unix://")
    {
        return PathBuf::from(path);
    }
    if Path::new(DOCKER_SOCKET).exists() {
        return PathBuf::from(DOCKER_SOCKET);
    }
    for podman in podman_sockets() {
        if podman.exists() {
            return podman;
        }
    }
    PathBuf::from(DOCKER_SOCKET)
}

fn podman_sockets() -> Vec<PathBuf> {
    let mut sockets = vec![PathBuf::from(PODMAN_ROOT_SOCKET)];
    if let Some(runtime) = std::env::var_os("XDG_RUNTIME_DIR") {
        sockets.push(Path::new(&runtime).join("podman/podman.sock"));
    }
    sockets
}

/// One engine, reached through its socket. Cheap to share; the client is made on first use, so
/// an engine that starts after the daemon is found then.
pub struct Engine {
    socket: PathBuf,
    /// Whose containers these are: `<hostname>:<state dir>` for the daemon (what a crashed
    /// predecessor on this host left carries the same), `<hostname>:once:<pid>` for `once`.
    owner: String,
    client: Mutex<Option<Docker>>,
}

impl Engine {
    pub fn new(socket: PathBuf, owner: String) -> Engine {
        Engine { socket, owner, client: Mutex::new(None) }
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// The API client, or why there is none (no socket), worded for the flake's log.
    pub fn client(&self) -> Result<Docker, String> {
        let mut client = self.client.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(docker) = client.as_ref() {
            return Ok(docker.clone());
        }
        let path = self.socket.to_string_lossy();
        match Docker::connect_with_unix(&path, CLIENT_TIMEOUT_SECONDS, bollard::API_DEFAULT_VERSION) {
            Ok(docker) => {
                *client = Some(docker.clone());
                Ok(docker)
            }
            Err(error) => Err(self.unreachable(&error.to_string())),
        }
    }

    /// `no container engine answers at /var/run/docker.sock (...): start Docker, or podman's
    /// API service, or pass --container-engine`.
    pub fn unreachable(&self, detail: &str) -> String {
        format!(
            "no container engine answers at {} ({detail}): start Docker or podman's API service \
             (podman system service --time=0 unix://{}), or point --container-engine (SNOWFLAKE_CONTAINER_ENGINE) at the engine's socket",
            self.socket.display(),
            self.socket.display()
        )
    }

    /// An engine error as one line naming the socket; a refused connection says what to do.
    pub fn explain(&self, what: &str, error: &bollard::errors::Error) -> String {
        use bollard::errors::Error;
        match error {
            Error::DockerResponseServerError { status_code, message } => {
                format!("{what}: the engine at {} answered {status_code}: {}", self.socket.display(), one_line(message))
            }
            Error::SocketNotFoundError(_)
            | Error::IOError { .. }
            | Error::HyperResponseError { .. }
            | Error::HyperLegacyError { .. }
            | Error::RequestTimeoutError => {
                format!("{what}: {}", self.unreachable(&one_line(&error.to_string())))
            }
            other => format!("{what}: the engine at {} answered: {}", self.socket.display(), one_line(&other.to_string())),
        }
    }

    /// Whether the engine answers now.
    pub async fn ping(&self) -> Result<(), String> {
        let docker = self.client()?;
        match tokio::time::timeout(QUICK_CALL, docker.ping()).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(error)) => Err(self.unreachable(&one_line(&error.to_string()))),
            Err(_) => Err(self.unreachable(&format!("no answer within {QUICK_CALL:?}"))),
        }
    }

    /// The exit status of a container whose command ended, `None` while it runs (or when the
    /// engine does not answer: the caller's wait is the fallback).
    ///
    /// podman calls a container whose command ended but whose cleanup has not run yet
    /// `"stopped"` (its exit code already read from conmon's exit file); only the cleanup process
    /// that conmon starts, a whole podman process, makes it `"exited"`, 300-600 ms later. Docker's
    /// API has no `"stopped"`, so bollard's typed inspect refuses that answer; this one request
    /// reads the three fields it needs itself, so a run ends (and its container is removed) as
    /// soon as the command did.
    pub async fn exit_status(&self, id: &str) -> Option<i64> {
        let body = tokio::time::timeout(QUICK_CALL, self.get(&format!("/containers/{id}/json"))).await.ok()?.ok()?;
        exit_status_in(&body)
    }

    /// One GET on the engine's socket, its body if it answered 2xx.
    async fn get(&self, path: &str) -> Result<hyper::body::Bytes, String> {
        use http_body_util::BodyExt;
        let stream = tokio::net::UnixStream::connect(&self.socket).await.map_err(|error| error.to_string())?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await.map_err(|error| error.to_string())?;
        // Ends with the request: the sender is dropped on return.
        tokio::spawn(connection);
        let request = hyper::Request::get(path)
            .header(hyper::header::HOST, "engine")
            .body(http_body_util::Empty::<hyper::body::Bytes>::new())
            .map_err(|error| error.to_string())?;
        let response = sender.send_request(request).await.map_err(|error| error.to_string())?;
        if !response.status().is_success() {
            return Err(format!("{path} answered {}", response.status()));
        }
        Ok(response.into_body().collect().await.map_err(|error| error.to_string())?.to_bytes())
    }

    /// The labels of a run's container.
    pub fn labels(&self, flake: &str, run: &str) -> HashMap<String, String> {
        HashMap::from([
            (LABEL_OWNER.to_string(), self.owner.clone()),
            (LABEL_FLAKE.to_string(), flake.to_string()),
            (LABEL_RUN.to_string(), run.to_string()),
        ])
    }
}

/// The exit status in a container's inspection, if its command ended (`"exited"`, or podman's
/// `"stopped"`).
fn exit_status_in(inspection: &[u8]) -> Option<i64> {
    let state = serde_json::from_slice::<Inspected>(inspection).ok()?.state;
    let ended = !state.running && matches!(state.status.as_str(), "exited" | "stopped");
    if ended { state.exit_code } else { None }
}

/// The part of a container's inspection [`Engine::exit_status`] reads.
#[derive(serde::Deserialize)]
struct Inspected {
    #[serde(rename = "State")]
    state: InspectedState,
}

#[derive(serde::Deserialize)]
struct InspectedState {
    #[serde(rename = "Status", default)]
    status: String,
    #[serde(rename = "Running", default)]
    running: bool,
    #[serde(rename = "ExitCode")]
    exit_code: Option<i64>,
}

/// Engine messages can hold newlines (build output, JSON); a log line holds one line.
pub fn one_line(text: &str) -> String {
    let joined: Vec<&str> = text.lines().map(str::trim).filter(|line| !line.is_empty()).collect();
    crate::flake::shorten(&joined.join(" / "), 2_000)
}

/// The daemon's owner label: this host and its state directory, so two daemons on one host (with
/// their own state) never remove each other's containers.
pub fn daemon_owner(state_dir: &Path) -> String {
    let host = nix::unistd::gethostname().map(|name| name.to_string_lossy().into_owned()).unwrap_or_else(|_| "localhost".to_string());
    let state = std::fs::canonicalize(state_dir).unwrap_or_else(|_| state_dir.to_path_buf());
    format!("{host}:{}", state.display())
}

/// `snowflake once`'s owner label: never the daemon's, so a daemon starting meanwhile leaves it alone.
pub fn once_owner() -> String {
    let host = nix::unistd::gethostname().map(|name| name.to_string_lossy().into_owned()).unwrap_or_else(|_| "localhost".to_string());
    format!("{host}:once:{}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_explicit_socket_wins_and_loses_its_scheme() {
        assert_eq!(resolve_socket(Some(Path::new("unix:///tmp/x.sock"))), PathBuf::from("/tmp/x.sock"));
        assert_eq!(resolve_socket(Some(Path::new("/tmp/y.sock"))), PathBuf::from("/tmp/y.sock"));
    }

    #[test]
    fn an_ended_command_is_read_from_docker_and_from_podman_before_its_cleanup() {
        let state = |status: &str, running: bool, code: i64| {
            format!(
                r#"{{"Id":"c","State":{{"Status":"{status}","Running":{running},"ExitCode":{code},"FinishedAt":"2026-12-06T07:59:05Z"}}}}"#
            )
        };
        assert_eq!(exit_status_in(state("exited", false, 3).as_bytes()), Some(3));
        assert_eq!(exit_status_in(state("stopped", false, 0).as_bytes()), Some(0), "podman, cleanup not run yet");
        assert_eq!(exit_status_in(state("running", true, 0).as_bytes()), None);
        assert_eq!(exit_status_in(state("created", false, 0).as_bytes()), None);
        assert_eq!(exit_status_in(state("stopping", true, 0).as_bytes()), None);
        assert_eq!(exit_status_in(b"{\"message\":\"no such container\"}"), None);
    }

    #[test]
    fn a_missing_socket_is_named_with_what_to_do() {
        let engine = Engine::new(PathBuf::from("/nonexistent/engine.sock"), "h:/s".to_string());
        let error = engine.client().unwrap_err();
        assert!(error.contains("/nonexistent/engine.sock"), "{error}");
        assert!(error.contains("--container-engine"), "{error}");
    }
}
