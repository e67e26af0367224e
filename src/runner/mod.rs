//! Running one command: `/bin/sh -c` in its own process group, stdin from `/dev/null`, both
//! output streams drained, and the whole group ended at the timeout (SIGTERM, then SIGKILL).
//! A command the shell would only exec is started directly instead (see [`direct`]).
//!
//! A command can also start in a container of a flake's image (see [`container`]); what follows
//! the start is the same.
//!
//! Knows nothing about flakes: `execution` builds the [`CommandSpec`] and judges the outcome.
//! What escapes the group (`setsid`) is ended too, where the daemon is a subreaper (see
//! [`supervise_descendants`]).

mod capture;
pub mod container;
pub mod direct;
mod reaper;

pub use capture::{CAPTURE_LIMIT, Captured};
pub use container::{ContainerSpec, remove as remove_container, run_in_container};
pub use reaper::{RUN_MARKER, supervise_descendants};

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::process::Command;
use tokio::sync::watch;

use capture::drain;

/// How long a process group gets between SIGTERM and SIGKILL after a timeout.
pub const KILL_GRACE: Duration = Duration::from_secs(5);
/// The same, when the daemon is shutting down and has already waited `--shutdown-grace`.
const STOP_KILL_GRACE: Duration = Duration::from_secs(1);
/// After SIGKILL the group is gone; if its output is still open, a process escaped the group
/// (`setsid`, `set -m`). Stop reading rather than wait for it forever.
const ABANDON_AFTER_KILL: Duration = Duration::from_secs(2);

/// What to run.
#[derive(Debug, Clone)]
pub struct CommandSpec {
    pub command: String,
    pub working_directory: PathBuf,
    /// Set on top of the daemon's own environment, in order (later wins).
    pub environment: Vec<(String, String)>,
    pub timeout: Duration,
    /// Scheduling niceness for the command, absolute (0 to 19); `None` leaves it as inherited.
    pub nice: Option<i32>,
    /// How much of stdout is kept ([`CAPTURE_LIMIT`] unless the output format needs more).
    pub stdout_limit: usize,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Termination {
    /// The shell exited with this status.
    Exited(i32),
    /// The shell was killed by this signal (not by us).
    Signaled(i32),
    /// It ran past its timeout; the process group was terminated.
    TimedOut,
    /// The daemon stopped it while shutting down.
    Stopped,
    /// It could not be started at all.
    SpawnFailed(String),
}

/// Everything known about one finished run.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    pub termination: Termination,
    pub stdout: Captured,
    pub stderr: Captured,
    /// From spawn to the end of output.
    pub duration: Duration,
    /// The shell exited, but processes it left behind kept its output open until they were
    /// terminated at the timeout.
    pub lingered: bool,
    /// Started without `/bin/sh` (see [`direct`]).
    pub direct: bool,
}

impl RunOutcome {
    /// A command that never started (no shell, no container): `reason` says why.
    pub fn spawn_failed(reason: String, started: Instant) -> RunOutcome {
        RunOutcome {
            termination: Termination::SpawnFailed(reason),
            stdout: Captured::default(),
            stderr: Captured::default(),
            duration: started.elapsed(),
            lingered: false,
            direct: false,
        }
    }
}

tokio::task_local! {
    /// Told when the run's process has started, for a caller that waits on that (see [`telling_start`]).
    static STARTED: std::sync::Arc<tokio::sync::Notify>;
}

/// Runs `future`, in which a [`run_command`] notifies `started` once its process has started:
/// the spawn itself may wait its turn behind a burst of others.
pub async fn telling_start<F: std::future::Future>(started: std::sync::Arc<tokio::sync::Notify>, future: F) -> F::Output {
    STARTED.scope(started, future).await
}

/// Runs `spec` to its end. `stop` turning true terminates the run's process group early.
pub async fn run_command(spec: &CommandSpec, stop: watch::Receiver<bool>) -> RunOutcome {
    run_command_via(spec, stop, direct::enabled()).await
}

/// [`run_command`], starting the command without the shell where that changes nothing only if
/// `allow_direct` (tests compare both ways).
pub async fn run_command_via(spec: &CommandSpec, mut stop: watch::Receiver<bool>, allow_direct: bool) -> RunOutcome {
    let started = Instant::now();
    let marker = reaper::new_marker();
    let direct_start = if allow_direct { direct::plan(&spec.command, &spec.environment, &spec.working_directory) } else { None };
    let mut spawned = None;
    if let Some(start) = direct_start {
        let mut command = Command::new(&start.program);
        command.arg0(&start.argv0).args(&start.args).env_clear().envs(&start.environment);
        // Anything unexpected (ENOEXEC: a script without #!) is the shell's to handle.
        spawned = reaper::spawn(prepared(command, spec, &marker)).await.ok().map(|spawned| (spawned, true));
    }
    let spawned = match spawned {
        Some(spawned) => Ok(spawned),
        None => {
            let mut command = Command::new("/bin/sh");
            command.arg("-c").arg(&spec.command).envs(spec.environment.iter().map(|(k, v)| (k, v)));
            reaper::spawn(prepared(command, spec, &marker)).await.map(|spawned| (spawned, false))
        }
    };
    let ((mut child, mut shell), direct) = match spawned {
        Ok(spawned) => spawned,
        Err(error) => {
            let reason = format!("could not start /bin/sh in {}: {error}", spec.working_directory.display());
            // The flake's log says so too, if it can still be written (not when descriptors ran out).
            tracing::error!(command = spec.command, "a run could not start: {reason}");
            return RunOutcome::spawn_failed(reason, started);
        }
    };
    let _ = STARTED.try_with(|started| started.notify_one());
    let group = child.id().map(|pid| Pid::from_raw(pid as i32));
    if let (Some(nice), Some(pid)) = (spec.nice, child.id()) {
        set_niceness(pid, nice);
    }
    let (mut out, mut err) = (Captured::default(), Captured::default());
    let (stdout_pipe, stderr_pipe) = (child.stdout.take(), child.stderr.take());
    let (mut out_done, mut err_done, mut status) = (false, false, None);
    let mut ending: Option<Ending> = None;
    let mut killed_at: Option<tokio::time::Instant> = None;
    {
        let mut stdout = std::pin::pin!(drain(stdout_pipe, spec.stdout_limit, &mut out));
        let mut stderr = std::pin::pin!(drain(stderr_pipe, CAPTURE_LIMIT, &mut err));
        let deadline = tokio::time::sleep(spec.timeout);
        tokio::pin!(deadline);
        while !out_done || !err_done || status.is_none() {
            tokio::select! {
                _ = &mut stdout, if !out_done => out_done = true,
                _ = &mut stderr, if !err_done => err_done = true,
                exit = child.wait(), if status.is_none() => {
                    status = Some(exit);
                    shell.reaped();
                }
                _ = &mut deadline, if ending.is_none() => {
                    ending = Some(Ending::start(group, &marker, Termination::TimedOut, KILL_GRACE, status.is_some()));
                }
                changed = stop.changed(), if ending.is_none() => {
                    if changed.is_err() || *stop.borrow() {
                        ending = Some(Ending::start(group, &marker, Termination::Stopped, STOP_KILL_GRACE, status.is_some()));
                    }
                }
                _ = sleep_until_kill(ending.as_ref().map(|ending| ending.kill_at)), if killed_at.is_none() => {
                    signal_group(group, Signal::SIGKILL);
                    killed_at = Some(tokio::time::Instant::now());
                }
                _ = sleep_until_kill(killed_at.map(|at| at + ABANDON_AFTER_KILL)), if killed_at.is_some() && status.is_some() => {
                    tracing::warn!(command = spec.command, "a process that left the command's process group still holds its output; no longer reading it");
                    break;
                }
            }
        }
    }
    let killed = killed_at.is_some();
    // The shell is gone, but something it started may still run with its output redirected:
    // once we end a group, no member survives.
    if ending.is_some() && !killed {
        finish_group(group).await;
    }

    let termination = match (&ending, status.expect("the loop ends with a status")) {
        (_, Err(error)) => Termination::SpawnFailed(format!("waiting for the command failed: {error}")),
        (Some(ending), Ok(_)) if !ending.shell_had_exited => ending.why.clone(),
        (_, Ok(status)) => match status.code() {
            Some(code) => Termination::Exited(code),
            None => Termination::Signaled(std::os::unix::process::ExitStatusExt::signal(&status).unwrap_or(0)),
        },
    };
    RunOutcome {
        termination,
        stdout: out,
        stderr: err,
        duration: started.elapsed(),
        lingered: ending.is_some_and(|ending| ending.shell_had_exited),
        direct,
    }
}

/// What every run's process gets, shell or not: its directory, the run's marker, no stdin, piped
/// output, a process group of its own.
fn prepared(mut command: Command, spec: &CommandSpec, marker: &str) -> Command {
    command
        .current_dir(&spec.working_directory)
        .env(RUN_MARKER, marker)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        // If the run's future is dropped mid-run the process must not outlive it.
        .kill_on_drop(true);
    command
}

/// We are ending a run's process group: why, and when SIGKILL follows the SIGTERM.
struct Ending {
    why: Termination,
    kill_at: tokio::time::Instant,
    /// The shell had already exited; only processes it left behind were still holding its output.
    shell_had_exited: bool,
}

impl Ending {
    fn start(group: Option<Pid>, marker: &str, why: Termination, grace: Duration, shell_had_exited: bool) -> Ending {
        signal_group(group, Signal::SIGTERM);
        reaper::end_escaped(marker);
        Ending { why, kill_at: tokio::time::Instant::now() + grace, shell_had_exited }
    }
}

/// Lowers the shell's CPU priority right after it starts; what it starts inherits it. A
/// thousand commands due at once then cannot starve the daemon that starts and reads them, nor
/// the host's own work. Failure only means the command runs at the daemon's priority.
fn set_niceness(pid: u32, nice: i32) {
    // SAFETY: setpriority takes plain integers and touches no memory of ours.
    let result = unsafe { nix::libc::setpriority(nix::libc::PRIO_PROCESS, pid, nice) };
    if result != 0 {
        tracing::debug!(pid, nice, "cannot lower the command's priority: {}", std::io::Error::last_os_error());
    }
}

/// The niceness commands run at: `increment` above the daemon's own, at most 19; `None` for 0.
pub fn command_niceness(increment: i32) -> Option<i32> {
    if increment <= 0 {
        return None;
    }
    // -1 is a valid niceness too, so errno tells success from failure.
    nix::errno::Errno::clear();
    // SAFETY: getpriority takes plain integers and touches no memory of ours.
    let own = unsafe { nix::libc::getpriority(nix::libc::PRIO_PROCESS, 0) };
    let own = if nix::errno::Errno::last_raw() == 0 { own } else { 0 };
    Some((own + increment).min(19))
}

async fn sleep_until_kill(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn signal_group(group: Option<Pid>, signal: Signal) {
    if let Some(group) = group {
        // ESRCH: the group is already empty, which is what we want.
        let _ = killpg(group, signal);
    }
}

/// After SIGTERM: waits for the group to empty, and SIGKILLs what is left after the grace.
async fn finish_group(group: Option<Pid>) {
    let Some(group) = group else { return };
    let give_up = Instant::now() + KILL_GRACE;
    while group_has_members(group) {
        if Instant::now() >= give_up {
            let _ = killpg(group, Signal::SIGKILL);
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// True while `group` has a live member.
///
/// Where the daemon is the subreaper it reaps the group's orphaned zombies itself, so the kernel
/// can be asked (signal 0): a walk of the group's own members. (A walk of all of `/proc` here,
/// once per ending run, made a thousand timeouts at once cost seconds of CPU on the runtime's
/// threads, and timeouts fired seconds late.) Elsewhere (`snowflake once`) an orphan's zombie
/// waits for whoever reaps orphans (an init, or nobody) and must not count, so the group's
/// members are looked up in `/proc`.
fn group_has_members(group: Pid) -> bool {
    if reaper::supervising() { killpg(group, None).is_ok() } else { group_has_live_members(group) }
}

/// Walks of `/proc` by [`group_has_live_members`], for the test that the daemon makes none.
static PROC_WALKS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// True while a process of `group` is alive. Zombies do not count: nothing we send them changes them.
fn group_has_live_members(group: Pid) -> bool {
    PROC_WALKS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let Ok(entries) = std::fs::read_dir("/proc") else {
        // No /proc: ask the kernel, which also counts zombies (at worst we wait the grace out).
        return killpg(group, None).is_ok();
    };
    entries.filter_map(Result::ok).filter(|entry| entry.file_name().to_string_lossy().bytes().all(|b| b.is_ascii_digit())).any(|entry| {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { return false };
        // Fields after the parenthesised command name: state, ppid, pgrp, ...
        let mut fields = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("").split_whitespace();
        let state = fields.next().unwrap_or("Z");
        let pgrp = fields.nth(1).and_then(|pgrp| pgrp.parse::<i32>().ok());
        pgrp == Some(group.as_raw()) && state != "Z" && state != "X"
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 12: a walk of all of `/proc` per ending run made thousands of timeouts at once cost
    /// seconds of CPU. Where the daemon is the subreaper, ending runs never walk `/proc`.
    #[tokio::test(flavor = "multi_thread")]
    async fn ending_runs_ask_the_kernel_not_proc_when_supervising() {
        assert!(supervise_descendants());
        let spec = CommandSpec {
            // The shell stays (two commands), and a child of it is left in the group.
            command: "sleep 300 & sleep 300".to_string(),
            working_directory: std::env::temp_dir(),
            environment: Vec::new(),
            timeout: Duration::from_millis(200),
            nice: None,
            stdout_limit: CAPTURE_LIMIT,
        };
        let walks_before = PROC_WALKS.load(std::sync::atomic::Ordering::Relaxed);
        let runs: Vec<_> = (0..20)
            .map(|_| {
                let spec = spec.clone();
                tokio::spawn(async move {
                    let (_keep_running, stop) = watch::channel(false);
                    run_command(&spec, stop).await
                })
            })
            .collect();
        for run in runs {
            assert_eq!(run.await.unwrap().termination, Termination::TimedOut);
        }
        assert_eq!(PROC_WALKS.load(std::sync::atomic::Ordering::Relaxed), walks_before, "no walk of /proc");
    }
}
