//! The second way to start a command: in a container of the flake's image, through the engine's
//! Docker API (SPEC 14). Everything after the start is the runner's as for a host process: the
//! bounded capture of both streams (from the attach stream), the timeout (SIGTERM, SIGKILL
//! [`KILL_GRACE`] later), the daemon's stop, and one [`RunOutcome`].
//!
//! The container is created with `/bin/sh -c <command>`, the run's environment only (the
//! daemon's own is not copied in), never privileged, no host path but the declared read-only
//! mounts, and labels naming its owner, flake and run. It is removed whatever happens: after the
//! run on a fresh deadline of its own, and, should the run's future be dropped, by a task the
//! drop starts.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{AttachContainerOptions, CreateContainerOptions, KillContainerOptions, RemoveContainerOptions};
use futures_util::StreamExt;
use tokio::sync::watch;

use super::capture::keep;
use super::{CAPTURE_LIMIT, Captured, CommandSpec, KILL_GRACE, RunOutcome, STOP_KILL_GRACE, Termination};
use crate::container::engine::{Engine, QUICK_CALL};

/// After SIGKILL, how long the attach stream may stay open once the engine said the container
/// ended.
const ABANDON_AFTER_EXIT: Duration = Duration::from_secs(2);
/// Once the output streams closed, how often the container's state is asked for (the first time
/// at once).
const EXIT_PROBE: Duration = Duration::from_millis(20);
/// ... for two seconds at most: a command that closed its output but runs on is left to the wait.
const MAX_EXIT_PROBES: u32 = 100;
/// Attempts at removing a run's container, each with its own [`QUICK_CALL`] deadline.
const REMOVAL_ATTEMPTS: usize = 3;

/// What a container run needs besides the command.
#[derive(Debug, Clone)]
pub struct ContainerSpec {
    /// A reference the engine has (the image keeper made sure of it).
    pub image: String,
    pub flake: String,
    /// Inside the container; `None`: the image's.
    pub working_dir: Option<String>,
    pub user: Option<String>,
    pub memory_bytes: Option<u64>,
    pub cpus: Option<f64>,
    pub network: Option<String>,
    pub read_only: bool,
    /// `host:container:ro`, hosts paths already resolved.
    pub binds: Vec<String>,
}

/// Runs `spec` in a container of `container.image`; also returns how long the container took
/// from create to started, if it started.
pub async fn run_in_container(
    spec: &CommandSpec,
    container: &ContainerSpec,
    engine: &Arc<Engine>,
    mut stop: watch::Receiver<bool>,
) -> (RunOutcome, Option<Duration>) {
    let started = Instant::now();
    let failed = |reason: String| RunOutcome::spawn_failed(reason, started);
    let docker = match engine.client() {
        Ok(docker) => docker,
        Err(reason) => return (failed(reason), None),
    };
    let run = super::reaper::new_marker();
    let body = create_body(spec, container, engine.labels(&container.flake, &run));
    let created = tokio::time::timeout(QUICK_CALL, docker.create_container(None::<CreateContainerOptions>, body)).await;
    let id = match created {
        Ok(Ok(created)) => created.id,
        Ok(Err(error)) => return (failed(engine.explain(&format!("could not create a container of {}", container.image), &error)), None),
        Err(_) => return (failed(engine.unreachable(&format!("creating a container took over {QUICK_CALL:?}"))), None),
    };
    let mut removal = Removal { engine: engine.clone(), docker: docker.clone(), id: Some(id.clone()) };
    let created_at = started.elapsed();

    // Attached before the start, so no output is missed.
    let attach_options = AttachContainerOptions { stream: true, stdout: true, stderr: true, ..Default::default() };
    let attached = tokio::time::timeout(QUICK_CALL, docker.attach_container(&id, Some(attach_options))).await;
    let mut output = match attached {
        Ok(Ok(attached)) => attached.output,
        Ok(Err(error)) => {
            removal.now().await;
            // podman prepares the container (runc create) at the attach: a missing /bin/sh shows here.
            return (failed(start_failure(engine, &container.image, &error)), None);
        }
        Err(_) => {
            removal.now().await;
            return (failed(engine.unreachable(&format!("attaching took over {QUICK_CALL:?}"))), None);
        }
    };
    let attached_at = started.elapsed();
    let start = tokio::time::timeout(QUICK_CALL, docker.start_container(&id, None)).await;
    let reason = match start {
        Ok(Ok(())) => None,
        Ok(Err(error)) => Some(start_failure(engine, &container.image, &error)),
        Err(_) => Some(engine.unreachable(&format!("starting the container took over {QUICK_CALL:?}"))),
    };
    if let Some(reason) = reason {
        removal.now().await;
        return (failed(reason), None);
    }
    let start_latency = started.elapsed();
    let _ = super::STARTED.try_with(|started| started.notify_one());

    let (mut out, mut err) = (Captured::default(), Captured::default());
    // The engine's wait, asked only when needed: the output's end and one state probe tell a
    // run's end sooner, and podman's wait costs the service a state check every 250 ms.
    let mut wait = None;
    let (mut output_done, mut status): (bool, Option<Result<i64, String>>) = (false, None);
    let mut ending: Option<(Termination, tokio::time::Instant)> = None;
    let mut killed = false;
    let mut exited_at: Option<tokio::time::Instant> = None;
    let mut probes = 0;
    let deadline = tokio::time::sleep(spec.timeout);
    tokio::pin!(deadline);
    while !output_done || status.is_none() {
        // Needed when the output ended but the probes found no end (a command that closed its
        // output and runs on, or an attach the engine broke), and once the run is being ended,
        // so an attach stream that never closes cannot hold the run.
        if wait.is_none() && status.is_none() && ((output_done && probes >= MAX_EXIT_PROBES) || ending.is_some()) {
            wait = Some(Box::pin(docker.wait_container(&id, None)));
        }
        tokio::select! {
            frame = output.next(), if !output_done => match frame {
                Some(Ok(bollard::container::LogOutput::StdOut { message })) => keep(&mut out, spec.stdout_limit, &message),
                Some(Ok(bollard::container::LogOutput::StdErr { message })) => keep(&mut err, CAPTURE_LIMIT, &message),
                Some(Ok(_)) => {}
                Some(Err(_)) | None => output_done = true,
            },
            // The streams close as the command exits; the engine's wait notices later (podman's
            // after its cleanup process ran), so ask for the state meanwhile: podman has the
            // exit code at once (see `Engine::exit_status`).
            _ = tokio::time::sleep(if probes == 0 { Duration::ZERO } else { EXIT_PROBE }), if output_done && status.is_none() && probes < MAX_EXIT_PROBES => {
                probes += 1;
                if let Some(code) = engine.exit_status(&id).await {
                    status = Some(Ok(code));
                    exited_at = Some(tokio::time::Instant::now());
                }
            }
            waited = async { wait.as_mut().expect("the branch runs only with a wait").next().await }, if wait.is_some() && status.is_none() => {
                status = Some(match waited {
                    Some(Ok(response)) => Ok(response.status_code),
                    Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => Ok(code),
                    Some(Err(error)) => Err(engine.explain("lost the container while waiting for it", &error)),
                    None => Err(engine.unreachable("the engine ended the wait without a status")),
                });
                exited_at = Some(tokio::time::Instant::now());
            }
            _ = &mut deadline, if ending.is_none() => {
                signal(&docker, &id, "SIGTERM").await;
                ending = Some((Termination::TimedOut, tokio::time::Instant::now() + KILL_GRACE));
            }
            changed = stop.changed(), if ending.is_none() => {
                if changed.is_err() || *stop.borrow() {
                    signal(&docker, &id, "SIGTERM").await;
                    ending = Some((Termination::Stopped, tokio::time::Instant::now() + STOP_KILL_GRACE));
                }
            }
            _ = super::sleep_until_kill(ending.as_ref().map(|(_, at)| *at)), if !killed && status.is_none() => {
                signal(&docker, &id, "SIGKILL").await;
                killed = true;
            }
            _ = super::sleep_until_kill(exited_at.map(|at| at + ABANDON_AFTER_EXIT)), if status.is_some() => {
                // The engine said it ended; an attach stream still open is the engine's to close.
                break;
            }
        }
    }
    let ended_at = started.elapsed();
    removal.now().await;
    tracing::debug!(
        container = id,
        created_ms = created_at.as_millis() as u64,
        attached_ms = attached_at.as_millis() as u64,
        started_ms = start_latency.as_millis() as u64,
        ended_ms = ended_at.as_millis() as u64,
        removed_ms = started.elapsed().as_millis() as u64,
        "a run's container, from create to removed"
    );
    let termination = match (ending, status.expect("the loop ends with a status")) {
        (Some((why, _)), _) => why,
        (None, Ok(code)) => Termination::Exited(code as i32),
        (None, Err(reason)) => Termination::SpawnFailed(reason),
    };
    let outcome = RunOutcome { termination, stdout: out, stderr: err, duration: started.elapsed(), lingered: false, direct: false };
    (outcome, Some(start_latency))
}

/// The container: `/bin/sh -c <command>` as its entry point (the image's own entry point would
/// change the contract), the run's environment only, and the few permissions declared.
fn create_body(spec: &CommandSpec, container: &ContainerSpec, labels: HashMap<String, String>) -> ContainerCreateBody {
    let host_config = HostConfig {
        privileged: Some(false),
        readonly_rootfs: Some(container.read_only),
        // A read-only root still gets a small writable /tmp, as most tools expect one.
        tmpfs: container.read_only.then(|| HashMap::from([("/tmp".to_string(), "rw,nosuid,nodev,size=64m".to_string())])),
        memory: container.memory_bytes.map(|bytes| bytes as i64),
        nano_cpus: container.cpus.map(|cpus| (cpus * 1e9) as i64),
        network_mode: container.network.clone(),
        binds: (!container.binds.is_empty()).then(|| container.binds.clone()),
        auto_remove: Some(false),
        ..Default::default()
    };
    ContainerCreateBody {
        image: Some(container.image.clone()),
        entrypoint: Some(vec!["/bin/sh".to_string(), "-c".to_string()]),
        cmd: Some(vec![spec.command.clone()]),
        env: Some(spec.environment.iter().map(|(name, value)| format!("{name}={value}")).collect()),
        working_dir: container.working_dir.clone(),
        user: container.user.clone(),
        labels: Some(labels),
        attach_stdin: Some(false),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        open_stdin: Some(false),
        tty: Some(false),
        host_config: Some(host_config),
        ..Default::default()
    }
}

/// Why a start failed; an image without `/bin/sh` says so.
fn start_failure(engine: &Engine, image: &str, error: &bollard::errors::Error) -> String {
    let text = error.to_string();
    let lowered = text.to_ascii_lowercase();
    if lowered.contains("/bin/sh") && (lowered.contains("not found") || lowered.contains("no such file")) {
        return format!(
            "the image {image} has no /bin/sh, which runs a flake's command (SPEC 14): use an image with a shell, or build one FROM it that adds one ({})",
            crate::container::engine::one_line(&text)
        );
    }
    engine.explain(&format!("could not start a container of {image}"), error)
}

/// SIGTERM or SIGKILL to the container; one that already ended is what we wanted.
async fn signal(docker: &Docker, id: &str, signal: &str) {
    let options = KillContainerOptions { signal: signal.to_string() };
    if let Ok(Err(error)) = tokio::time::timeout(QUICK_CALL, docker.kill_container(id, Some(options))).await {
        tracing::debug!(container = id, signal, "kill: {error}");
    }
}

/// The one owner of a run's container: removes it (forced, so a running one is killed first)
/// when told to, each attempt on a fresh deadline, or from a task if dropped before.
struct Removal {
    engine: Arc<Engine>,
    docker: Docker,
    id: Option<String>,
}

impl Removal {
    async fn now(&mut self) {
        if let Some(id) = self.id.take() {
            remove(&self.engine, &self.docker, &id).await;
        }
    }
}

impl Drop for Removal {
    fn drop(&mut self) {
        if let Some(id) = self.id.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            let (engine, docker) = (self.engine.clone(), self.docker.clone());
            runtime.spawn(async move { remove(&engine, &docker, &id).await });
        }
    }
}

/// Removes a container, forced; gone already counts as removed.
pub async fn remove(engine: &Engine, docker: &Docker, id: &str) -> bool {
    let options = RemoveContainerOptions { force: true, v: true, ..Default::default() };
    for attempt in 1..=REMOVAL_ATTEMPTS {
        match tokio::time::timeout(QUICK_CALL, docker.remove_container(id, Some(options.clone()))).await {
            Ok(Ok(())) => return true,
            Ok(Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. })) => return true,
            Ok(Err(error)) => {
                tracing::warn!(container = id, attempt, "{}", engine.explain("could not remove a run's container", &error));
            }
            Err(_) => tracing::warn!(container = id, attempt, "removing a run's container took over {QUICK_CALL:?}"),
        }
        tokio::time::sleep(Duration::from_millis(500 * attempt as u64)).await;
    }
    tracing::error!(
        container = id,
        socket = %engine.socket().display(),
        "a run's container could not be removed; the daemon's next start removes it (it carries the daemon's owner label)"
    );
    false
}
