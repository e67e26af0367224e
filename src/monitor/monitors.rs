//! The monitored jobs of a running daemon: their schedules and allowances, their kept state, and
//! the once-a-minute `JobOverdueSeconds` of each. The one owner of `monitors.json` in a process.
//!
//! Saving fsyncs, so the daemon calls [`Monitors::set_jobs`] and [`Monitors::record_run`] off the
//! async worker threads (`spawn_blocking`) or from a task that owns this value.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use chrono::{DateTime, Utc};

use crate::flake::Flake;
use crate::schedule::Schedule;

use super::deadline::{self, Allowance, JobTimes};
use super::metrics::{JobRun, MonitorValue, overdue_value};
use super::state::{MonitorState, MonitorStateFile};

/// A job flake with `flakeMonitor`, as the flake format hands it over.
#[derive(Debug, Clone, PartialEq)]
pub struct MonitoredJob {
    /// The flake's name: the `Job` dimension and the state's key.
    pub name: String,
    pub schedule: Schedule,
    pub allowance: Allowance,
}

impl MonitoredJob {
    /// The job `flake` is, if it is an enabled flake with `flakeMonitor`.
    pub fn of_flake(flake: &Flake) -> Option<MonitoredJob> {
        let monitor = flake.monitor.as_ref().filter(|_| flake.enabled)?;
        Some(MonitoredJob {
            name: flake.name.clone(),
            schedule: flake.schedule.clone(),
            allowance: Allowance::new(monitor.grace, flake.timeout),
        })
    }
}

#[derive(Debug)]
struct Watched {
    job: MonitoredJob,
    /// When this process first loaded the job: when its `@reboot` fired.
    loaded_this_process: DateTime<Utc>,
}

/// Every monitored job and what is kept about it.
#[derive(Debug)]
pub struct Monitors {
    /// `None` for a dry run, which must not touch the daemon's state.
    file: Option<MonitorStateFile>,
    state: MonitorState,
    watched: BTreeMap<String, Watched>,
}

impl Monitors {
    /// Reads `<state-dir>/monitors.json`. The second value, when set, says the file could not be
    /// understood and where it was moved (already logged); the daemon may also show it in
    /// `/healthz` or its start-up summary.
    pub fn open(state_dir: &Path) -> Result<(Monitors, Option<String>), String> {
        let file = MonitorStateFile::new(state_dir);
        let loaded = file.load()?;
        Ok((Monitors { file: Some(file), state: loaded.state, watched: BTreeMap::new() }, loaded.set_aside))
    }

    /// Monitors that keep nothing on disk (`--dry-run`): every start counts as the first load.
    pub fn in_memory() -> Monitors {
        Monitors { file: None, state: MonitorState::default(), watched: BTreeMap::new() }
    }

    /// The monitored jobs after a catalog load or reload at `now`: new ones are noted as loaded
    /// (the first load ever is kept across restarts), removed ones forgotten, and the state saved.
    pub fn set_jobs(&mut self, jobs: Vec<MonitoredJob>, now: DateTime<Utc>) -> Result<(), String> {
        let mut watched = BTreeMap::new();
        for job in jobs {
            self.state.loaded(&job.name, now);
            let loaded_this_process = self.watched.get(&job.name).map_or(now, |previous| previous.loaded_this_process);
            watched.insert(job.name.clone(), Watched { job, loaded_this_process });
        }
        self.watched = watched;
        self.save()
    }

    /// Keeps a successful run's scheduled time as the job's last success; other outcomes change
    /// nothing. The values to publish for the run come from [`super::run_values`].
    pub fn record_run(&mut self, name: &str, run: &JobRun, now: DateTime<Utc>) -> Result<(), String> {
        let Some(watched) = self.watched.get_mut(name) else { return Ok(()) };
        if !run.outcome.is_success() {
            return Ok(());
        }
        // A `@reboot` run may be scheduled at the daemon's start, a moment before `set_jobs`
        // noted the load: it still is this process's run.
        watched.loaded_this_process = watched.loaded_this_process.min(run.scheduled);
        self.state.succeeded(name, run.scheduled, now);
        self.save()
    }

    /// When `name` is overdue after, if it can be.
    pub fn deadline(&self, name: &str, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let watched = self.watched.get(name)?;
        deadline::deadline(&watched.job.schedule, &self.times(watched, now), watched.job.allowance, now)
    }

    /// Every monitored job's deadline at `now`, by flake name.
    pub fn deadlines(&self, now: DateTime<Utc>) -> std::collections::HashMap<String, Option<DateTime<Utc>>> {
        self.watched
            .iter()
            .map(|(name, watched)| {
                (name.clone(), deadline::deadline(&watched.job.schedule, &self.times(watched, now), watched.job.allowance, now))
            })
            .collect()
    }

    /// `JobOverdueSeconds` of every monitored job at `now`, by flake name.
    pub fn overdue(&self, now: DateTime<Utc>) -> Vec<(String, MonitorValue)> {
        self.watched
            .iter()
            .map(|(name, watched)| {
                let seconds = deadline::overdue_seconds(&watched.job.schedule, &self.times(watched, now), watched.job.allowance, now);
                (name.clone(), overdue_value(seconds, now))
            })
            .collect()
    }

    fn times(&self, watched: &Watched, now: DateTime<Utc>) -> JobTimes {
        let record = self.state.job(&watched.job.name);
        JobTimes {
            last_success: record.and_then(|record| record.last_success),
            first_loaded: record.map_or(now, |record| record.first_loaded),
            loaded_this_process: watched.loaded_this_process,
        }
    }

    fn save(&self) -> Result<(), String> {
        let Some(file) = &self.file else { return Ok(()) };
        let monitored: BTreeSet<String> = self.watched.keys().cloned().collect();
        file.save(&self.state, &monitored)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::monitor::metrics::JobOutcome;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
    }

    fn job(name: &str, schedule: &str) -> MonitoredJob {
        MonitoredJob {
            name: name.to_string(),
            schedule: Schedule::parse(schedule, chrono_tz::UTC).unwrap(),
            allowance: Allowance::new(Duration::from_secs(300), Duration::from_secs(60)),
        }
    }

    fn run(outcome: JobOutcome, scheduled: &str) -> JobRun {
        JobRun { outcome, scheduled: at(scheduled), ended: at(scheduled) + Duration::from_secs(40), duration: Duration::from_secs(40) }
    }

    fn overdue_of(monitors: &Monitors, name: &str, now: &str) -> f64 {
        let all = monitors.overdue(at(now));
        all.iter().find(|(job, _)| job == name).unwrap_or_else(|| panic!("{name} not in {all:?}")).1.value
    }

    /// The backup story of docs/monitoring.md: it fails, goes overdue, survives a restart, recovers.
    #[test]
    fn a_nightly_backup_fails_goes_overdue_and_recovers_across_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let (mut monitors, set_aside) = Monitors::open(dir.path()).unwrap();
        assert!(set_aside.is_none());
        monitors.set_jobs(vec![job("backup", "0 3 * * *")], at("2026-05-01T12:00:00Z")).unwrap();
        assert_eq!(monitors.deadline("backup", at("2026-05-01T12:00:00Z")), Some(at("2026-05-02T03:06:00Z")));

        monitors.record_run("backup", &run(JobOutcome::Succeeded, "2026-05-02T03:00:00Z"), at("2026-05-02T03:00:40Z")).unwrap();
        monitors.record_run("backup", &run(JobOutcome::Failed, "2026-05-03T03:00:00Z"), at("2026-05-03T03:00:40Z")).unwrap();
        assert_eq!(overdue_of(&monitors, "backup", "2026-05-03T03:05:00Z"), 0.0, "a failure alone is not lateness");
        assert_eq!(overdue_of(&monitors, "backup", "2026-05-03T03:16:00Z"), 600.0, "the failed run did not meet the deadline");

        // kill -9 and a restart an hour later: the last success is still 2026-05-02.
        drop(monitors);
        let (mut monitors, _) = Monitors::open(dir.path()).unwrap();
        monitors.set_jobs(vec![job("backup", "0 3 * * *")], at("2026-05-03T04:06:00Z")).unwrap();
        assert_eq!(overdue_of(&monitors, "backup", "2026-05-03T04:06:00Z"), 3600.0);

        monitors.record_run("backup", &run(JobOutcome::Succeeded, "2026-05-04T03:00:00Z"), at("2026-05-04T03:00:40Z")).unwrap();
        assert_eq!(overdue_of(&monitors, "backup", "2026-05-04T03:01:00Z"), 0.0);
        assert_eq!(monitors.deadline("backup", at("2026-05-04T03:01:00Z")), Some(at("2026-05-05T03:06:00Z")));
    }

    #[test]
    fn timeouts_and_skips_do_not_count_as_successes() {
        let dir = tempfile::tempdir().unwrap();
        let (mut monitors, _) = Monitors::open(dir.path()).unwrap();
        monitors.set_jobs(vec![job("sync", "* * * * *")], at("2026-05-04T10:00:30Z")).unwrap();
        monitors.record_run("sync", &run(JobOutcome::Succeeded, "2026-05-04T10:01:00Z"), at("2026-05-04T10:01:40Z")).unwrap();
        for outcome in [JobOutcome::TimedOut, JobOutcome::SkippedOverlap, JobOutcome::Failed, JobOutcome::Stopped] {
            monitors.record_run("sync", &run(outcome, "2026-05-04T10:05:00Z"), at("2026-05-04T10:06:00Z")).unwrap();
        }
        assert_eq!(monitors.deadline("sync", at("2026-05-04T10:06:00Z")), Some(at("2026-05-04T10:08:00Z")));
    }

    #[test]
    fn a_job_never_seen_to_succeed_keeps_counting_from_its_first_load_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let (mut monitors, _) = Monitors::open(dir.path()).unwrap();
        monitors.set_jobs(vec![job("report", "*/10 * * * *")], at("2026-05-04T10:00:30Z")).unwrap();
        drop(monitors);
        let (mut monitors, _) = Monitors::open(dir.path()).unwrap();
        monitors.set_jobs(vec![job("report", "*/10 * * * *")], at("2026-05-04T11:00:00Z")).unwrap();
        assert_eq!(monitors.deadline("report", at("2026-05-04T11:00:00Z")), Some(at("2026-05-04T10:16:00Z")));
        assert_eq!(overdue_of(&monitors, "report", "2026-05-04T11:00:00Z"), 44.0 * 60.0);
    }

    #[test]
    fn removed_jobs_are_forgotten_and_not_reported() {
        let dir = tempfile::tempdir().unwrap();
        let (mut monitors, _) = Monitors::open(dir.path()).unwrap();
        monitors.set_jobs(vec![job("a", "* * * * *"), job("b", "@hourly")], at("2026-05-04T10:00:00Z")).unwrap();
        monitors.record_run("b", &run(JobOutcome::Succeeded, "2026-05-04T10:00:00Z"), at("2026-05-04T10:00:10Z")).unwrap();
        monitors.set_jobs(vec![job("a", "* * * * *")], at("2026-05-04T10:30:00Z")).unwrap();
        let reported: Vec<String> = monitors.overdue(at("2026-05-04T10:31:00Z")).into_iter().map(|(name, _)| name).collect();
        assert_eq!(reported, vec!["a"]);
        assert_eq!(monitors.deadline("b", at("2026-05-04T10:31:00Z")), None);
        let kept = std::fs::read_to_string(dir.path().join("monitors.json")).unwrap();
        assert!(kept.contains("\"a\"") && !kept.contains("\"b\""), "{kept}");
        // A run of a job removed while it ran is not kept either.
        monitors.record_run("b", &run(JobOutcome::Succeeded, "2026-05-04T11:00:00Z"), at("2026-05-04T11:00:10Z")).unwrap();
        assert!(!std::fs::read_to_string(dir.path().join("monitors.json")).unwrap().contains("\"b\""));
    }

    #[test]
    fn a_reboot_job_counts_from_this_process_and_a_reload_does_not_restart_it() {
        let dir = tempfile::tempdir().unwrap();
        let (mut monitors, _) = Monitors::open(dir.path()).unwrap();
        monitors.set_jobs(vec![job("warm", "@reboot")], at("2026-05-04T10:00:00Z")).unwrap();
        monitors.set_jobs(vec![job("warm", "@reboot")], at("2026-05-04T10:03:00Z")).unwrap();
        assert_eq!(overdue_of(&monitors, "warm", "2026-05-04T10:10:00Z"), 240.0);
        monitors.record_run("warm", &run(JobOutcome::Succeeded, "2026-05-04T10:00:00Z"), at("2026-05-04T10:10:30Z")).unwrap();
        assert_eq!(overdue_of(&monitors, "warm", "2026-05-04T10:11:00Z"), 0.0);

        // A run scheduled at the daemon's start, before the load was noted, is this start's run.
        let (mut monitors, _) = Monitors::open(dir.path()).unwrap();
        monitors.set_jobs(vec![job("warm", "@reboot")], at("2026-05-04T12:00:05Z")).unwrap();
        monitors.record_run("warm", &run(JobOutcome::Succeeded, "2026-05-04T12:00:00Z"), at("2026-05-04T12:00:30Z")).unwrap();
        assert_eq!(overdue_of(&monitors, "warm", "2026-05-04T13:00:00Z"), 0.0);

        // The next start expects a new success.
        drop(monitors);
        let (mut monitors, _) = Monitors::open(dir.path()).unwrap();
        monitors.set_jobs(vec![job("warm", "@reboot")], at("2026-05-05T08:00:00Z")).unwrap();
        assert_eq!(monitors.deadline("warm", at("2026-05-05T08:00:00Z")), Some(at("2026-05-05T08:06:00Z")));
    }

    #[test]
    fn a_corrupt_state_file_is_reported_on_open() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("monitors.json"), "{\"version\": 1, \"jobs\": {\"backup\": ").unwrap();
        let (monitors, set_aside) = Monitors::open(dir.path()).unwrap();
        assert!(set_aside.unwrap().contains("moved to"));
        assert!(monitors.overdue(at("2026-05-04T10:00:00Z")).is_empty());
    }
}
