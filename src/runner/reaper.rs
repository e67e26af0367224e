//! What escapes a run's process group: the daemon as child subreaper.
//!
//! A command can leave its process group (`setsid`, `set -m`), and then the group's SIGTERM and
//! SIGKILL never reach it. So the daemon makes itself a child subreaper (`PR_SET_CHILD_SUBREAPER`):
//! a process whose parent dies is handed to the daemon instead of to PID 1. Every run's shell gets
//! a marker in its environment ([`RUN_MARKER`]), which its descendants inherit and which `setsid`
//! does not change. When the daemon ends a run's group (timeout, shutdown), it also ends every
//! child of its own that carries that run's marker: SIGTERM to it and its process group, SIGKILL
//! after [`super::KILL_GRACE`].
//!
//! Being a subreaper means reaping the orphans handed over, too, without ever stealing the exit
//! status of a process that tokio waits for: nothing here calls `waitpid(-1)`. Only specific
//! zombie children are reaped: not a registered run shell (a sweep excludes spawns, so every
//! shell is registered when it looks) and not in the daemon's own process group. Orphans that
//! made a process group of their own (`timeout`, `set -m`, `setpgrp`) are reaped like the rest.

use std::collections::{HashMap, HashSet};
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill, killpg};
use nix::sys::wait::{WaitPidFlag, waitpid};
use nix::unistd::Pid;
use tokio::process::{Child, Command};
use tokio::sync::Notify;

use super::KILL_GRACE;

/// Environment variable holding a run's marker: `<daemon pid>.<run number>`.
pub const RUN_MARKER: &str = "SNOWFLAKE_RUN_MARKER";
/// How long after its group was ended a run's marker is still looked for: deeper descendants
/// come back to the daemon only as their parents die.
const MARKER_KEPT: Duration = Duration::from_secs(60);
/// Sweeps are at least this far apart, however many children exit at once.
const MIN_SWEEP_GAP: Duration = Duration::from_millis(20);
/// While something is being ended, sweep this often; otherwise this rarely (zombies also wake it).
const BUSY_SWEEP: Duration = Duration::from_millis(100);
const IDLE_SWEEP: Duration = Duration::from_secs(5);

/// What the sweep needs to know.
#[derive(Default)]
struct Registry {
    /// Pids of run shells that tokio waits for (a count, in case a pid is reused quickly).
    shells: HashMap<u32, usize>,
    /// Markers of runs whose process group was ended, and when.
    ended: HashMap<String, Instant>,
    /// Escaped processes sent SIGTERM, and when.
    terminated: HashMap<u32, Instant>,
}

static REGISTRY: LazyLock<Mutex<Registry>> = LazyLock::new(Mutex::default);
/// Held (shared) by every spawn from before its fork until its shell is registered, and
/// (exclusive) by a sweep: so a sweep never meets a shell of ours that is not registered yet, and
/// may reap every other zombie child.
static SPAWN_GATE: RwLock<()> = RwLock::new(());
/// Spawns in progress at once, at most: one per core, and at least two.
static SPAWNING_AT_ONCE: LazyLock<usize> = LazyLock::new(|| std::thread::available_parallelism().map_or(2, |cores| cores.get().max(2)));

/// A spawn taking longer than this (an exec stuck on a hung file system) frees its place.
const SPAWN_COUNTS_FOR: Duration = Duration::from_secs(1);

fn spawners() -> &'static tokio::sync::Semaphore {
    static SPAWNERS: LazyLock<tokio::sync::Semaphore> = LazyLock::new(|| tokio::sync::Semaphore::new(*SPAWNING_AT_ONCE));
    &SPAWNERS
}
static WAKE: Notify = Notify::const_new();
static SUPERVISING: AtomicBool = AtomicBool::new(false);
static NEXT_RUN: AtomicU64 = AtomicU64::new(0);

fn registry() -> MutexGuard<'static, Registry> {
    REGISTRY.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Makes this process the subreaper of everything it starts and starts the sweep that reaps
/// orphans and ends escaped processes. Call once, inside the tokio runtime, before any run.
///
/// Returns false (and logs why) where the kernel refuses; runs then work as before, and escaped
/// processes are reparented to PID 1 and survive their run.
pub fn supervise_descendants() -> bool {
    if SUPERVISING.swap(true, Ordering::AcqRel) {
        return true;
    }
    if let Err(error) = nix::sys::prctl::set_child_subreaper(true) {
        tracing::warn!("cannot become the child subreaper ({error}): a process that leaves its run's process group will survive the run");
        SUPERVISING.store(false, Ordering::Release);
        return false;
    }
    let child_exits = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::child());
    tokio::spawn(async move {
        let mut child_exits = child_exits.ok();
        loop {
            let busy = sweep();
            tokio::time::sleep(MIN_SWEEP_GAP).await;
            let wait = if busy { BUSY_SWEEP } else { IDLE_SWEEP };
            tokio::select! {
                _ = WAKE.notified() => {}
                _ = async { match &mut child_exits { Some(signal) => { signal.recv().await; } None => std::future::pending().await } } => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    });
    true
}

/// True once this process is the subreaper and its sweep runs.
pub(super) fn supervising() -> bool {
    SUPERVISING.load(Ordering::Acquire)
}

/// A new run's marker, to put in its environment.
pub(super) fn new_marker() -> String {
    format!("{}.{}", std::process::id(), NEXT_RUN.fetch_add(1, Ordering::Relaxed))
}

/// A spawned run shell, registered so the sweep never reaps it; unregistered on drop.
pub(super) struct Shell {
    pid: Option<u32>,
}

impl Shell {
    /// Tokio has reaped the shell: its pid is no longer ours to protect.
    pub(super) fn reaped(&mut self) {
        if let Some(pid) = self.pid.take() {
            let mut registry = registry();
            if let Some(count) = registry.shells.get_mut(&pid) {
                *count -= 1;
                if *count == 0 {
                    registry.shells.remove(&pid);
                }
            }
        }
    }
}

impl Drop for Shell {
    fn drop(&mut self) {
        self.reaped();
    }
}

/// Spawns `command` and registers its shell, so sweeps skip it without reading `/proc`.
///
/// The spawn (a fork and exec, which blocks the calling thread until the exec) runs on the
/// blocking pool: a thousand spawns at once must not hold the runtime's worker threads, which
/// fire the timeouts and answer `/healthz`. The shell is registered before the spawn gate is
/// released, so no sweep can take it for an orphan.
///
/// At most [`SPAWNING_AT_ONCE`] spawns run at a time: the cores cannot start processes any
/// faster, and without the bound a burst of 10,000 due runs made the blocking pool start (and
/// later end) hundreds of threads, a tenth of the daemon's own CPU at that scale (issue 18).
pub(super) async fn spawn(mut command: Command) -> io::Result<(Child, Shell)> {
    let spawner = spawners().acquire().await.map_err(|_| io::Error::other("the spawn bound was closed"))?;
    let spawning = tokio::task::spawn_blocking(move || {
        let _gate = SPAWN_GATE.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        let child = command.spawn()?;
        if let Some(pid) = child.id() {
            *registry().shells.entry(pid).or_default() += 1;
        }
        Ok::<Child, io::Error>(child)
    });
    tokio::pin!(spawning);
    // An exec stuck on a hung file system must not stop every other run from starting: after
    // a second it no longer counts against the bound.
    let spawned = tokio::select! {
        spawned = &mut spawning => spawned,
        () = tokio::time::sleep(SPAWN_COUNTS_FOR) => {
            drop(spawner);
            spawning.await
        }
    };
    let child = match spawned {
        Ok(spawned) => spawned?,
        Err(error) => return Err(io::Error::other(format!("the spawning thread failed: {error}"))),
    };
    let pid = child.id();
    Ok((child, Shell { pid }))
}

/// The run with `marker` is being ended: from now on its escaped processes are ended too.
pub(super) fn end_escaped(marker: &str) {
    if !SUPERVISING.load(Ordering::Acquire) {
        return;
    }
    registry().ended.entry(marker.to_string()).or_insert_with(Instant::now);
    WAKE.notify_one();
}

/// One pass over the daemon's children: reaps orphaned zombies, ends escaped processes of ended
/// runs. Returns true while something is being ended (sweep again soon).
fn sweep() -> bool {
    // Spawns in flight: look again shortly rather than hold the runtime thread waiting for them.
    let Ok(_gate) = SPAWN_GATE.try_write() else { return true };
    let mut registry = registry();
    let now = Instant::now();
    registry.ended.retain(|_, at| now.duration_since(*at) < MARKER_KEPT);
    let own = Own::read();
    let children = children_of_self();
    for &pid in &children {
        if registry.shells.contains_key(&pid) {
            continue;
        }
        let Some(stat) = Stat::read(pid) else { continue };
        if stat.state == 'Z' && stat.group != own.group {
            // Not a registered shell (none can be unregistered while the gate is held) and not
            // in the daemon's own group: an orphan handed over, whatever group it made itself
            // (`timeout`, `set -m` and `setpgrp` make their own).
            let _ = waitpid(Pid::from_raw(pid as i32), Some(WaitPidFlag::WNOHANG));
            registry.terminated.remove(&pid);
            continue;
        }
        if registry.ended.is_empty() || stat.state == 'Z' {
            continue;
        }
        let Some(marker) = run_marker(pid) else { continue };
        if !registry.ended.contains_key(&marker) {
            continue;
        }
        let target = Pid::from_raw(pid as i32);
        match registry.terminated.get(&pid) {
            None => {
                tracing::info!(pid, run = marker, "ending a process that left its run's process group");
                signal_process_and_group(target, Signal::SIGTERM);
                registry.terminated.insert(pid, now);
            }
            Some(at) if now.duration_since(*at) >= KILL_GRACE => signal_process_and_group(target, Signal::SIGKILL),
            Some(_) => {}
        }
    }
    let alive: HashSet<u32> = children.into_iter().collect();
    registry.terminated.retain(|pid, _| alive.contains(pid));
    !registry.ended.is_empty() || !registry.terminated.is_empty()
}

fn signal_process_and_group(pid: Pid, signal: Signal) {
    // Its own group, if it leads one (after setsid it does); only a group it created has its id.
    let _ = killpg(pid, signal);
    let _ = kill(pid, signal);
}

/// The daemon's process group: a zombie in it was started by the daemon itself (not by a run,
/// whose shell has a group of its own) and is left to whoever started it.
struct Own {
    group: i32,
}

impl Own {
    fn read() -> Own {
        Own { group: nix::unistd::getpgrp().as_raw() }
    }
}

/// The fields of `/proc/<pid>/stat` the sweep needs.
struct Stat {
    state: char,
    group: i32,
}

impl Stat {
    fn read(pid: u32) -> Option<Stat> {
        let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // After the parenthesised command name (which may hold anything): state, ppid, pgrp.
        let mut fields = text.rsplit_once(')')?.1.split_whitespace();
        let state = fields.next()?.chars().next()?;
        let _parent = fields.next()?;
        let group = fields.next()?.parse().ok()?;
        Some(Stat { state, group })
    }
}

/// Pids of this process's children, from every thread's `children` list (a child belongs to the
/// thread that forked it; an orphan handed over, to any of them).
fn children_of_self() -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return Vec::new() };
    let mut children = Vec::new();
    for task in tasks.filter_map(Result::ok) {
        if let Ok(text) = std::fs::read_to_string(task.path().join("children")) {
            children.extend(text.split_whitespace().filter_map(|pid| pid.parse::<u32>().ok()));
        }
    }
    children.sort_unstable();
    children.dedup();
    children
}

/// The run marker in a live process's environment (as it was when it started its program).
fn run_marker(pid: u32) -> Option<String> {
    let environ = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
    let prefix = format!("{RUN_MARKER}=");
    environ
        .split(|&byte| byte == 0)
        .find_map(|entry| entry.strip_prefix(prefix.as_bytes()))
        .map(|value| String::from_utf8_lossy(value).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_its_own_stat_and_marker_free_environment() {
        let stat = Stat::read(std::process::id()).unwrap();
        let own = Own::read();
        assert_eq!(stat.group, own.group);
        assert_ne!(stat.state, 'Z', "a running process is no zombie");
        assert_eq!(run_marker(std::process::id()), std::env::var(RUN_MARKER).ok());
    }

    #[test]
    fn markers_are_unique_per_run() {
        let (a, b) = (new_marker(), new_marker());
        assert_ne!(a, b);
        assert!(a.starts_with(&format!("{}.", std::process::id())));
    }
}
