//! The alarms the flakes declare, in CloudWatch's shape: the desired state of reconciliation.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use crate::cloudwatch::{AlarmConfig, AlarmStatistic};
use crate::flake::{Alarm, Flake, Statistic};

/// One alarm a flake declares.
#[derive(Debug, Clone, PartialEq)]
pub struct DesiredAlarm {
    pub region: String,
    pub flake: String,
    pub file: PathBuf,
    pub config: AlarmConfig,
    pub tags: BTreeMap<String, String>,
}

impl DesiredAlarm {
    pub fn key(&self) -> (String, String) {
        (self.region.clone(), self.config.name.clone())
    }
}

/// Why a declared alarm cannot be part of the desired state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub flake: String,
    pub alarm: String,
    pub reason: String,
}

/// The alarms of every enabled flake. Alarms that cannot be placed (no region) or whose name
/// another flake already uses are skipped with a reason, never silently.
pub fn desired_alarms(flakes: &[Arc<Flake>], default_region: Option<&str>) -> (Vec<DesiredAlarm>, Vec<Skipped>) {
    let mut desired: Vec<DesiredAlarm> = Vec::new();
    let mut skipped = Vec::new();
    let mut owners: HashMap<(String, String), String> = HashMap::new();
    for flake in flakes.iter().filter(|flake| flake.enabled) {
        let Some(metric) = &flake.metric else { continue };
        let own = flake
            .alarms
            .iter()
            .map(|alarm| (config_of(alarm, &metric.namespace, &metric.metric_name, &metric.dimensions), alarm.tags.clone()));
        // flakeMonitor's alarms are declared alarms like any other: same ownership, same checks.
        for (config, tags) in own.chain(crate::monitor::flake_alarms(flake)) {
            let Some(region) = flake.region.as_deref().or(default_region) else {
                skipped.push(Skipped {
                    flake: flake.name.clone(),
                    alarm: config.name.clone(),
                    reason: "no AWS region is configured: set AWS_REGION, or flakeRegion in the flake".to_string(),
                });
                continue;
            };
            let key = (region.to_string(), config.name.clone());
            if let Some(owner) = owners.get(&key) {
                skipped.push(Skipped {
                    flake: flake.name.clone(),
                    alarm: config.name.clone(),
                    reason: format!("flake {owner} already declares an alarm of this name; rename one of them"),
                });
                continue;
            }
            owners.insert(key, flake.name.clone());
            desired.push(DesiredAlarm { region: region.to_string(), flake: flake.name.clone(), file: flake.source.clone(), config, tags });
        }
    }
    (desired, skipped)
}

fn config_of(alarm: &Alarm, namespace: &str, metric_name: &str, dimensions: &BTreeMap<String, String>) -> AlarmConfig {
    let set = |actions: &[String]| actions.iter().cloned().collect::<BTreeSet<String>>();
    AlarmConfig {
        name: alarm.name.clone(),
        description: alarm.description.clone(),
        namespace: namespace.to_string(),
        metric_name: metric_name.to_string(),
        dimensions: dimensions.clone(),
        statistic: match &alarm.statistic {
            Statistic::Standard(name) => AlarmStatistic::Standard(name.to_string()),
            Statistic::Percentile(name) => AlarmStatistic::Extended(name.clone()),
        },
        period: alarm.period,
        evaluation_periods: alarm.evaluation_periods,
        datapoints_to_alarm: alarm.datapoints_to_alarm,
        threshold: alarm.threshold,
        comparison: alarm.comparison.to_string(),
        treat_missing_data: alarm.treat_missing_data.to_string(),
        ok_actions: set(&alarm.ok_actions),
        alarm_actions: set(&alarm.alarm_actions),
        insufficient_data_actions: set(&alarm.insufficient_data_actions),
        actions_enabled: alarm.actions_enabled,
        unit: None,
    }
}
