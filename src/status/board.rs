//! The live state behind `/status.json`: small cells that the components which already know a
//! fact write as they go, read only when someone asks for the status.
//!
//! Writers never wait for readers in a way that matters: a flake's next fire time, running flag
//! and counters are atomics the scheduler stores; a run's result is written once per run into
//! its own flake's cell; the catalog, reconcile and cluster facts change a few times a minute at
//! most. A reader copies what it needs and lets go at once; nothing here is held across an
//! `.await`, so the scheduler's loop never waits on a status request.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::model::{AlarmStatus, BrokenFile, FlakeFiles, LastRun, PublishedValue, ReconcileStatus, SeriesValue};
use super::text::{bound, bound_redacted};
use crate::cluster::ClusterView;
use crate::creds::{Creds, Redactor};
use crate::execution::{RunReport, Verdict};
use crate::flake::Flake;
use crate::schedule::Schedule;

/// Stands for "no time" in the atomics below.
const NONE: i64 = i64::MIN;

/// What does not change between edits of a flake file.
#[derive(Debug, Clone)]
pub struct FlakeInfo {
    pub name: String,
    pub kind: &'static str,
    pub schedule: String,
    pub enabled: bool,
    pub file: String,
    /// `flakeMonitor.grace` and `flakeTimeout` of a monitored job.
    pub monitor: Option<(Duration, Duration)>,
    /// A scrape flake's `flakeHeaders` values as sent (placeholders filled): masked like
    /// `creds.json` values wherever this flake's text is shown. Never serialized.
    header_values: Vec<String>,
}

impl FlakeInfo {
    fn of(flake: &Flake, creds: &Creds) -> FlakeInfo {
        let header_values = flake.scrape.as_ref().map_or_else(Vec::new, |target| {
            let names: Vec<String> = target.headers.iter().map(|header| header.name.to_ascii_lowercase()).collect();
            // The values are masked here by the status page itself; the daemon's redactor learns them at the first scrape.
            crate::scrape::request_headers(target, creds, &crate::creds::Redactor::default())
                .unwrap_or_default()
                .into_iter()
                .filter(|(name, _)| names.contains(&name.as_str().to_string()))
                .filter_map(|(_, value)| value.to_str().ok().map(str::to_string))
                .collect()
        });
        FlakeInfo {
            header_values,
            name: flake.name.clone(),
            kind: flake.kind.as_str(),
            schedule: describe_schedule(&flake.schedule),
            enabled: flake.enabled,
            file: flake.source.display().to_string(),
            monitor: flake.monitor.as_ref().filter(|_| flake.enabled).map(|monitor| (monitor.grace, flake.timeout)),
        }
    }
}

/// One flake's live state.
pub struct FlakeCell {
    info: Mutex<Arc<FlakeInfo>>,
    next_ms: AtomicI64,
    running_since_ms: AtomicI64,
    runs: AtomicU64,
    failures: AtomicU64,
    skips: AtomicU64,
    last_run: Mutex<Option<LastRun>>,
    last_value: Mutex<Option<PublishedValue>>,
}

/// A copy of one cell, taken for a status request.
pub struct FlakeReading {
    pub info: Arc<FlakeInfo>,
    pub next: Option<DateTime<Utc>>,
    pub running_since: Option<DateTime<Utc>>,
    pub runs: u64,
    pub failures: u64,
    pub skips: u64,
    pub last_run: Option<LastRun>,
    pub last_value: Option<PublishedValue>,
}

impl FlakeCell {
    fn new(info: FlakeInfo) -> FlakeCell {
        FlakeCell {
            info: Mutex::new(Arc::new(info)),
            next_ms: AtomicI64::new(NONE),
            running_since_ms: AtomicI64::new(NONE),
            runs: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            skips: AtomicU64::new(0),
            last_run: Mutex::new(None),
            last_value: Mutex::new(None),
        }
    }

    /// The scheduler planned the next firing (`None`: it will not fire).
    pub fn set_next(&self, next: Option<DateTime<Utc>>) {
        self.next_ms.store(next.map_or(NONE, |next| next.timestamp_millis()), Ordering::Relaxed);
    }

    /// A run's command is starting now.
    pub fn run_started(&self) {
        self.running_since_ms.store(Utc::now().timestamp_millis(), Ordering::Relaxed);
    }

    /// A firing was not run.
    pub fn skipped(&self) {
        self.skips.fetch_add(1, Ordering::Relaxed);
    }

    /// A run ended: its result, and what it published.
    pub fn run_ended(&self, report: &RunReport, redactor: &Redactor) {
        self.running_since_ms.store(NONE, Ordering::Relaxed);
        let result = report.verdict.result();
        self.runs.fetch_add(1, Ordering::Relaxed);
        let info = lock(&self.info).clone();
        let shown = |text: &str| bound_redacted(&mask(text, &info.header_values), redactor);
        let reason = match &report.verdict {
            Verdict::Failed { reason, .. } => {
                self.failures.fetch_add(1, Ordering::Relaxed);
                Some(shown(reason))
            }
            Verdict::Read(readout) if !readout.rejections.is_empty() => {
                Some(format!("{} entries rejected (see the flake's log)", readout.rejections.len()))
            }
            _ => None,
        };
        *lock(&self.last_run) = Some(LastRun {
            scheduled: report.scheduled,
            result: result.as_str().to_string(),
            reason,
            duration_ms: report.duration.as_secs_f64() * 1000.0,
        });
        let value = match &report.verdict {
            Verdict::Ok { value: Some(value) } if report.published > 0 => {
                Some(PublishedValue { at: report.scheduled, value: Some(*value), series: None, first: Vec::new() })
            }
            Verdict::Read(readout) if report.published > 0 => Some(PublishedValue {
                at: report.scheduled,
                value: None,
                series: Some(readout.series),
                first: report.first_values.iter().map(|(series, value)| SeriesValue { series: shown(series), value: *value }).collect(),
            }),
            _ => None,
        };
        if value.is_some() {
            *lock(&self.last_value) = value;
        }
    }

    pub fn read(&self) -> FlakeReading {
        let time = |cell: &AtomicI64| match cell.load(Ordering::Relaxed) {
            NONE => None,
            millis => DateTime::from_timestamp_millis(millis),
        };
        FlakeReading {
            info: lock(&self.info).clone(),
            next: time(&self.next_ms),
            running_since: time(&self.running_since_ms),
            runs: self.runs.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            skips: self.skips.load(Ordering::Relaxed),
            last_run: lock(&self.last_run).clone(),
            last_value: lock(&self.last_value).clone(),
        }
    }
}

/// The daemon's status cells, shared by the components that write them and the listener.
pub struct StatusBoard {
    pub started: DateTime<Utc>,
    pub redactor: Redactor,
    /// For filling scrape flakes' header placeholders, to mask the values.
    creds: Creds,
    flakes: RwLock<BTreeMap<String, Arc<FlakeCell>>>,
    files: Mutex<Arc<FlakeFiles>>,
    alarm_reconcile: Mutex<Option<ReconcileStatus>>,
    /// By flake name, as the last alarm reconcile read them.
    alarm_states: Mutex<Arc<HashMap<String, Vec<AlarmStatus>>>>,
    dashboard_reconcile: Mutex<Option<ReconcileStatus>>,
    /// The cluster as this member last listed it (SPEC 15); `None` without `--cluster`.
    cluster: Mutex<Option<Arc<ClusterView>>>,
}

impl StatusBoard {
    /// A board whose text masks what `redactor` masks (the flake logs' one, which knows
    /// `creds`' values, the daemon's AWS keys and header values learnt at scrapes).
    pub fn new(creds: &Creds, redactor: Redactor) -> StatusBoard {
        StatusBoard {
            started: Utc::now(),
            redactor,
            creds: creds.clone(),
            flakes: RwLock::new(BTreeMap::new()),
            files: Mutex::new(Arc::new(FlakeFiles::default())),
            alarm_reconcile: Mutex::new(None),
            alarm_states: Mutex::new(Arc::new(HashMap::new())),
            dashboard_reconcile: Mutex::new(None),
            cluster: Mutex::new(None),
        }
    }

    /// The cell of `flake`, created on its first load; an edited flake keeps its counters.
    pub fn flake(&self, flake: &Flake) -> Arc<FlakeCell> {
        let info = FlakeInfo::of(flake, &self.creds);
        if let Some(cell) = self.flakes.read().unwrap_or_else(|poisoned| poisoned.into_inner()).get(&flake.name) {
            *lock(&cell.info) = Arc::new(info);
            return cell.clone();
        }
        let mut flakes = self.flakes.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        flakes.entry(flake.name.clone()).or_insert_with(|| Arc::new(FlakeCell::new(info))).clone()
    }

    /// A flake removed from the catalog.
    pub fn remove(&self, name: &str) {
        self.flakes.write().unwrap_or_else(|poisoned| poisoned.into_inner()).remove(name);
    }

    /// Every flake's cell, by name (the lock is held only to copy the handles).
    pub fn cells(&self) -> Vec<Arc<FlakeCell>> {
        self.flakes.read().unwrap_or_else(|poisoned| poisoned.into_inner()).values().cloned().collect()
    }

    /// After a rescan: how many flakes are loaded, and each broken file's problems.
    pub fn set_files(&self, loaded: usize, broken: Vec<(String, Vec<String>)>, dir_missing: bool) {
        let broken = broken
            .into_iter()
            .map(|(path, problems)| BrokenFile {
                path: bound_redacted(&path, &self.redactor),
                problems: problems.iter().map(|problem| bound_redacted(problem, &self.redactor)).collect(),
            })
            .collect();
        *lock(&self.files) = Arc::new(FlakeFiles { loaded, broken, dir_missing });
    }

    pub fn files(&self) -> Arc<FlakeFiles> {
        lock(&self.files).clone()
    }

    /// An alarm reconcile ended: its writes and failures, and every declared alarm's state as
    /// it read them (`(flake, alarm, state)`; `None` for an alarm it had to create).
    pub fn alarms_reconciled(&self, changes: usize, failures: &[String], states: Vec<(String, String, Option<String>)>) {
        let at = Utc::now();
        *lock(&self.alarm_reconcile) = Some(self.reconcile_status(at, changes, failures));
        let mut by_flake: HashMap<String, Vec<AlarmStatus>> = HashMap::new();
        for (flake, name, state) in states {
            by_flake.entry(flake).or_default().push(AlarmStatus { name: bound(&name), read_at: state.as_ref().map(|_| at), state });
        }
        for alarms in by_flake.values_mut() {
            alarms.sort_by(|a, b| a.name.cmp(&b.name));
        }
        *lock(&self.alarm_states) = Arc::new(by_flake);
    }

    /// An alarm reconcile that could not read anything: the states read before stay.
    pub fn alarm_reconcile_failed(&self, reason: &str) {
        *lock(&self.alarm_reconcile) = Some(self.reconcile_status(Utc::now(), 0, &[reason.to_string()]));
    }

    pub fn dashboard_reconciled(&self, changes: usize, failures: &[String]) {
        *lock(&self.dashboard_reconcile) = Some(self.reconcile_status(Utc::now(), changes, failures));
    }

    fn reconcile_status(&self, at: DateTime<Utc>, changes: usize, failures: &[String]) -> ReconcileStatus {
        ReconcileStatus { at, changes, failures: failures.iter().map(|failure| bound_redacted(failure, &self.redactor)).collect() }
    }

    pub fn alarm_reconcile(&self) -> Option<ReconcileStatus> {
        lock(&self.alarm_reconcile).clone()
    }

    pub fn dashboard_reconcile(&self) -> Option<ReconcileStatus> {
        lock(&self.dashboard_reconcile).clone()
    }

    pub fn alarm_states(&self) -> Arc<HashMap<String, Vec<AlarmStatus>>> {
        lock(&self.alarm_states).clone()
    }

    /// The cluster as this member's last listing saw it (SPEC 15).
    pub fn set_cluster(&self, view: Arc<ClusterView>) {
        *lock(&self.cluster) = Some(view);
    }

    /// The live members' names; empty without `--cluster`.
    pub fn members(&self) -> Vec<String> {
        let cluster = lock(&self.cluster).clone();
        cluster.map_or_else(Vec::new, |view| view.members.iter().filter(|member| member.live).map(|member| member.name.clone()).collect())
    }

    /// Who runs each cluster flake, by flake name: the holder's name (`none` while unclaimed),
    /// and a note while live members hold different versions of it (a rollout in progress).
    pub fn cluster_holders(&self) -> HashMap<String, String> {
        let Some(view) = lock(&self.cluster).clone() else { return HashMap::new() };
        let name_of =
            |id: &str| view.members.iter().find(|member| member.id == id).map_or_else(|| id.to_string(), |member| member.name.clone());
        view.flakes
            .iter()
            .map(|flake| {
                let mut holder = flake.holder.as_deref().map_or_else(|| "none".to_string(), name_of);
                if flake.disagreement() {
                    holder.push_str(&format!(" (members hold {} versions)", flake.versions.len()));
                }
                (flake.name.clone(), holder)
            })
            .collect()
    }
}

/// A schedule as the flake file wrote it (its zone in front when not UTC).
pub fn describe_schedule(schedule: &Schedule) -> String {
    match schedule {
        Schedule::Cron { zone, expression, .. } if *zone == chrono_tz::UTC => expression.clone(),
        Schedule::Cron { zone, expression, .. } => format!("CRON_TZ={zone} {expression}"),
        Schedule::Every(interval) if interval.subsec_millis() == 0 => format!("@every {}s", interval.as_secs()),
        Schedule::Every(interval) => format!("@every {}ms", interval.as_millis()),
        Schedule::Reboot => "@reboot".to_string(),
        Schedule::Never => "-".to_string(),
    }
}

/// Masks `values` (at least 4 characters long, as the redactor's own rule) in `text`.
fn mask(text: &str, values: &[String]) -> String {
    let mut text = text.to_string();
    for value in values.iter().filter(|value| value.len() >= 4) {
        text = text.replace(value.as_str(), "********");
    }
    text
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Plain data: a panic elsewhere while holding it leaves it usable.
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
