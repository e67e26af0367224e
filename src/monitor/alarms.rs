//! The two alarms `flakeMonitor` declares (SPEC 9), as plain data the alarm reconciler's desired
//! state is built from, like every other alarm (desired -> plan -> reconcile).
//!
//! - `FL-<flake>-overdue`: `JobOverdueSeconds` Maximum > 0 over 300 s, 1 of 1, missing data
//!   breaching: no value at all means the daemon (or its host) is gone, which is as bad as a late
//!   job. Five minutes rather than one: the value is published once a minute, so a period of five
//!   tolerates a late or lost publish without a false alarm.
//! - `FL-<flake>-failed`: `JobSuccess` Minimum < 1 over 60 s, 1 of 1, missing data notBreaching:
//!   a job publishes only when it runs, so the minutes between runs must not alarm; any failed
//!   run in a minute sets it off, and the next minute without a failure clears it.
//!
//! `"failedAlarm": false` leaves the second out. `alarmEndpoints`, `alarmTags` and
//! `alarmActionsEnabled` of `flakeMonitor` apply to both; they come in through [`AlarmActions`].

use std::collections::{BTreeMap, BTreeSet};

use crate::cloudwatch::{AlarmConfig, AlarmStatistic};
use crate::flake::Flake;

use super::metrics::{JOB_OVERDUE_SECONDS, JOB_SUCCESS, job_dimensions};

/// One alarm a monitored job declares, independent of the flake.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MonitorAlarm {
    /// The end of the alarm's name: `FL-<flake>-<suffix>`.
    pub suffix: &'static str,
    pub metric_name: &'static str,
    pub statistic: &'static str,
    pub threshold: f64,
    pub comparison: &'static str,
    pub period_seconds: i32,
    pub evaluation_periods: i32,
    pub datapoints_to_alarm: i32,
    pub treat_missing_data: &'static str,
    /// What it means when it fires, for the alarm's description.
    pub meaning: &'static str,
}

/// The job is past its deadline, or nothing reports on it at all.
pub const OVERDUE: MonitorAlarm = MonitorAlarm {
    suffix: "overdue",
    metric_name: JOB_OVERDUE_SECONDS,
    statistic: "Maximum",
    threshold: 0.0,
    comparison: "GreaterThanThreshold",
    period_seconds: 300,
    evaluation_periods: 1,
    datapoints_to_alarm: 1,
    treat_missing_data: "breaching",
    meaning: "has not succeeded by its deadline, or nothing reports on it",
};

/// A run failed, timed out or was skipped.
pub const FAILED: MonitorAlarm = MonitorAlarm {
    suffix: "failed",
    metric_name: JOB_SUCCESS,
    statistic: "Minimum",
    threshold: 1.0,
    comparison: "LessThanThreshold",
    period_seconds: 60,
    evaluation_periods: 1,
    datapoints_to_alarm: 1,
    treat_missing_data: "notBreaching",
    meaning: "a run failed, timed out or was skipped",
};

/// The alarms of a monitored job: both, or only the overdue one with `"failedAlarm": false`.
pub fn declared_alarms(failed_alarm: bool) -> Vec<MonitorAlarm> {
    if failed_alarm { vec![OVERDUE, FAILED] } else { vec![OVERDUE] }
}

/// What `flakeMonitor` says about notifying, shared by both alarms.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AlarmActions {
    pub ok_actions: BTreeSet<String>,
    pub alarm_actions: BTreeSet<String>,
    pub insufficient_data_actions: BTreeSet<String>,
    pub actions_enabled: bool,
}

impl AlarmActions {
    fn of(monitor: &crate::flake::FlakeMonitor) -> AlarmActions {
        let set = |actions: &[String]| actions.iter().cloned().collect::<BTreeSet<String>>();
        AlarmActions {
            ok_actions: set(&monitor.ok_actions),
            alarm_actions: set(&monitor.alarm_actions),
            insufficient_data_actions: set(&monitor.insufficient_data_actions),
            actions_enabled: monitor.actions_enabled,
        }
    }
}

/// The alarms `flake`'s `flakeMonitor` declares, with their tags, on the series its values go
/// to; none for a flake without one (or without a namespace, which validation never lets by).
pub fn flake_alarms(flake: &Flake) -> Vec<(AlarmConfig, BTreeMap<String, String>)> {
    let (Some(monitor), Some(metric)) = (&flake.monitor, &flake.metric) else { return Vec::new() };
    let dimensions = job_dimensions(&metric.dimensions, &flake.name);
    let actions = AlarmActions::of(monitor);
    declared_alarms(monitor.failed_alarm)
        .iter()
        .map(|alarm| (alarm.config(&flake.name, &metric.namespace, &dimensions, &actions), monitor.tags.clone()))
        .collect()
}

impl MonitorAlarm {
    /// `FL-<flake>-overdue` or `FL-<flake>-failed`. The flake format's length check on alarm
    /// names must count the longer suffix (`-overdue`) when it validates `flakeMonitor`.
    pub fn name(&self, flake_name: &str) -> String {
        format!("FL-{flake_name}-{}", self.suffix)
    }

    /// What the alarm means, for its description in the console.
    pub fn description(&self, flake_name: &str) -> String {
        format!("Job {flake_name}: {} (SpecialSnowflake flakeMonitor)", self.meaning)
    }

    /// The alarm in PutMetricAlarm's shape, on the series the job's values go to: `dimensions`
    /// must be [`super::metrics::job_dimensions`] of the flake's.
    pub fn config(&self, flake_name: &str, namespace: &str, dimensions: &BTreeMap<String, String>, actions: &AlarmActions) -> AlarmConfig {
        AlarmConfig {
            name: self.name(flake_name),
            description: self.description(flake_name),
            namespace: namespace.to_string(),
            metric_name: self.metric_name.to_string(),
            dimensions: dimensions.clone(),
            statistic: AlarmStatistic::Standard(self.statistic.to_string()),
            period: self.period_seconds,
            evaluation_periods: self.evaluation_periods,
            datapoints_to_alarm: self.datapoints_to_alarm,
            threshold: self.threshold,
            comparison: self.comparison.to_string(),
            treat_missing_data: self.treat_missing_data.to_string(),
            ok_actions: actions.ok_actions.clone(),
            alarm_actions: actions.alarm_actions.clone(),
            insufficient_data_actions: actions.insufficient_data_actions.clone(),
            actions_enabled: actions.actions_enabled,
            unit: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitor::metrics::job_dimensions;

    #[test]
    fn the_overdue_alarm_is_as_the_spec_declares_it() {
        assert_eq!(OVERDUE.name("backup"), "FL-backup-overdue");
        assert_eq!(
            (OVERDUE.metric_name, OVERDUE.statistic, OVERDUE.comparison, OVERDUE.threshold),
            ("JobOverdueSeconds", "Maximum", "GreaterThanThreshold", 0.0)
        );
        assert_eq!((OVERDUE.period_seconds, OVERDUE.evaluation_periods, OVERDUE.datapoints_to_alarm), (300, 1, 1));
        assert_eq!(OVERDUE.treat_missing_data, "breaching", "a dead daemon also alarms");
    }

    #[test]
    fn the_failed_alarm_is_as_the_spec_declares_it() {
        assert_eq!(FAILED.name("backup"), "FL-backup-failed");
        assert_eq!(
            (FAILED.metric_name, FAILED.statistic, FAILED.comparison, FAILED.threshold),
            ("JobSuccess", "Minimum", "LessThanThreshold", 1.0)
        );
        assert_eq!((FAILED.period_seconds, FAILED.evaluation_periods, FAILED.datapoints_to_alarm), (60, 1, 1));
        assert_eq!(FAILED.treat_missing_data, "notBreaching", "minutes without a run are fine");
    }

    #[test]
    fn failed_alarm_false_leaves_only_the_overdue_alarm() {
        assert_eq!(declared_alarms(true), vec![OVERDUE, FAILED]);
        assert_eq!(declared_alarms(false), vec![OVERDUE]);
    }

    #[test]
    fn the_config_watches_the_jobs_own_series_and_notifies_as_declared() {
        let dimensions = job_dimensions(&BTreeMap::from([("Host".to_string(), "db1".to_string())]), "backup");
        let actions = AlarmActions {
            alarm_actions: BTreeSet::from(["arn:aws:sns:eu-west-1:123456789012:ops".to_string()]),
            ok_actions: BTreeSet::from(["arn:aws:sns:eu-west-1:123456789012:ops".to_string()]),
            insufficient_data_actions: BTreeSet::new(),
            actions_enabled: true,
        };
        let config = FAILED.config("backup", "Ops/Jobs", &dimensions, &actions);
        assert_eq!(config.name, "FL-backup-failed");
        assert_eq!((config.namespace.as_str(), config.metric_name.as_str()), ("Ops/Jobs", "JobSuccess"));
        assert_eq!(config.dimensions, BTreeMap::from([("Host".to_string(), "db1".to_string()), ("Job".to_string(), "backup".to_string())]));
        assert_eq!(config.statistic, AlarmStatistic::Standard("Minimum".to_string()));
        assert_eq!((config.period, config.evaluation_periods, config.datapoints_to_alarm, config.threshold), (60, 1, 1, 1.0));
        assert_eq!((config.comparison.as_str(), config.treat_missing_data.as_str()), ("LessThanThreshold", "notBreaching"));
        assert_eq!(config.alarm_actions, actions.alarm_actions);
        assert_eq!(config.ok_actions, actions.ok_actions);
        assert!(config.actions_enabled);
        assert_eq!(config.unit, None);
        assert!(config.description.contains("backup"));
        let overdue = OVERDUE.config("backup", "Ops/Jobs", &dimensions, &AlarmActions::default());
        assert_eq!(
            (overdue.metric_name.as_str(), overdue.period, overdue.treat_missing_data.as_str()),
            ("JobOverdueSeconds", 300, "breaching")
        );
        assert!(!overdue.actions_enabled);
        assert!(overdue.description.contains("deadline"));
    }
}
