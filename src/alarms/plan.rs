//! What reconciliation would change: creates, updates with the fields that differ, tag changes,
//! deletes, and what is left alone and why. `snowflake plan` prints it; `apply` carries it out.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::path::PathBuf;

use super::compare::{FieldChange, differences};
use super::desired::DesiredAlarm;
use super::managed::Managed;
use crate::cloudwatch::DescribedAlarm;

/// Which managed alarms a reconcile may delete.
#[derive(Debug, Clone)]
pub enum Scope {
    /// Every flake: delete managed alarms no flake declares, unless `deletes_allowed` is false
    /// (the flakes directory is missing or holds no valid flake) or their file is broken.
    All { deletes_allowed: bool, broken_files: Vec<PathBuf> },
    /// Only these flakes (`snowflake once`): their alarms, and their managed alarms they no longer declare.
    Flakes(BTreeSet<String>),
    /// Cluster flakes' alarms (SPEC 15), their ownership record standing in for the managed list:
    /// every recorded alarm is covered, but one of a flake named in `blocked` is kept, with the
    /// reason (members disagree about the flake, or what they announce may be incomplete).
    Cluster { blocked: BTreeMap<String, String> },
}

impl Scope {
    /// Every flake of a directory. Deleting is allowed only while the directory can be read and
    /// holds a valid flake: a missing or emptied directory is far more often a mount or deploy
    /// problem than a decision to delete every alarm.
    pub fn all(dir_missing: bool, valid_flakes: usize, broken_files: Vec<PathBuf>) -> Scope {
        Scope::All { deletes_allowed: !dir_missing && valid_flakes > 0, broken_files }
    }

    /// Whether managed alarms recorded for `flake` are in this scope.
    pub fn covers(&self, flake: &str) -> bool {
        match self {
            Scope::All { .. } | Scope::Cluster { .. } => true,
            Scope::Flakes(flakes) => flakes.contains(flake),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Update {
    pub alarm: DesiredAlarm,
    pub changes: Vec<FieldChange>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagChange {
    pub region: String,
    pub name: String,
    pub set: BTreeMap<String, String>,
    pub remove: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delete {
    pub region: String,
    pub name: String,
    pub flake: String,
}

/// The changes, by kind.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub creates: Vec<DesiredAlarm>,
    pub updates: Vec<Update>,
    pub tag_changes: Vec<TagChange>,
    pub deletes: Vec<Delete>,
    pub unchanged: usize,
    /// Declared alarms that exist but were not created by this host (another host or a person
    /// made them): corrected like ours, never deleted. Other hosts' alarms are never read at all.
    pub adopted: usize,
    /// Managed alarms no flake declares that are kept anyway, with the reason.
    pub kept: Vec<(String, String, String)>,
    /// Managed alarms that no longer exist and no flake declares: only forgotten.
    pub forgotten: Vec<(String, String)>,
    /// Regions whose alarms could not be read, with the reason: nothing is changed there.
    pub unreadable: Vec<(String, String)>,
}

impl Plan {
    /// Compares desired with actual (`(region, name)` -> described) and the managed list.
    pub fn new(desired: &[DesiredAlarm], actual: &BTreeMap<(String, String), DescribedAlarm>, managed: &Managed, scope: &Scope) -> Plan {
        let mut plan = Plan::default();
        let desired_keys: HashMap<(String, String), &DesiredAlarm> = desired.iter().map(|alarm| (alarm.key(), alarm)).collect();

        for alarm in desired {
            let record = managed.get(&alarm.region, &alarm.config.name);
            let applied_tags = record.map(|record| record.tags.clone()).unwrap_or_default();
            match actual.get(&alarm.key()) {
                None => {
                    plan.creates.push(alarm.clone());
                    // A new alarm has no tags at all, whatever was recorded before.
                    plan.push_tags(alarm, &BTreeMap::new());
                }
                Some(described) => {
                    if record.is_none() {
                        plan.adopted += 1;
                    }
                    let changes = differences(described, &alarm.config);
                    if changes.is_empty() {
                        plan.unchanged += 1;
                    } else {
                        plan.updates.push(Update { alarm: alarm.clone(), changes });
                    }
                    plan.push_tags(alarm, &applied_tags);
                }
            }
        }

        for (region, name, record) in managed.iter() {
            let key = (region.clone(), name.clone());
            if desired_keys.contains_key(&key) {
                continue;
            }
            if !scope.covers(&record.flake) {
                continue;
            }
            let reason = match scope {
                Scope::All { deletes_allowed: false, .. } => {
                    Some("the flakes directory is missing or holds no valid flake, so nothing is deleted".to_string())
                }
                Scope::All { broken_files, .. } if broken_files.contains(&record.file) => {
                    Some("its flake file does not validate; kept until it does or is removed".to_string())
                }
                Scope::Cluster { blocked } => blocked.get(&record.flake).cloned(),
                _ => None,
            };
            match (reason, actual.contains_key(&key)) {
                (Some(reason), _) => plan.kept.push((region.clone(), name.clone(), reason)),
                (None, true) => plan.deletes.push(Delete { region: region.clone(), name: name.clone(), flake: record.flake.clone() }),
                (None, false) => plan.forgotten.push((region.clone(), name.clone())),
            }
        }

        plan
    }

    fn push_tags(&mut self, alarm: &DesiredAlarm, applied: &BTreeMap<String, String>) {
        let set: BTreeMap<String, String> =
            alarm.tags.iter().filter(|(key, value)| applied.get(*key) != Some(value)).map(|(k, v)| (k.clone(), v.clone())).collect();
        let remove: Vec<String> = applied.keys().filter(|key| !alarm.tags.contains_key(*key)).cloned().collect();
        if !set.is_empty() || !remove.is_empty() {
            self.tag_changes.push(TagChange { region: alarm.region.clone(), name: alarm.config.name.clone(), set, remove });
        }
    }

    /// Terraform-style text for `snowflake plan`.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for alarm in &self.creates {
            let _ = writeln!(out, "+ create {} ({})  [flake {}]", alarm.config.name, alarm.region, alarm.flake);
        }
        for update in &self.updates {
            let _ = writeln!(out, "~ update {} ({})  [flake {}]", update.alarm.config.name, update.alarm.region, update.alarm.flake);
            for change in &update.changes {
                let _ = writeln!(out, "    {}: {} -> {}", change.field, change.old, change.new);
            }
        }
        for tags in &self.tag_changes {
            let set: Vec<String> = tags.set.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let _ = writeln!(out, "~ tags {} ({}): set [{}] remove [{}]", tags.name, tags.region, set.join(", "), tags.remove.join(", "));
        }
        for delete in &self.deletes {
            let _ = writeln!(out, "- delete {} ({})  [flake {} no longer declares it]", delete.name, delete.region, delete.flake);
        }
        for (region, name, reason) in &self.kept {
            let _ = writeln!(out, "= keep {name} ({region}): {reason}");
        }
        if self.adopted > 0 {
            let _ = writeln!(
                out,
                "= {} declared alarm(s) exist that this host did not create: corrected like its own, never deleted by it",
                self.adopted
            );
        }
        for (region, reason) in &self.unreadable {
            let _ = writeln!(out, "! region {region} could not be read, nothing there is planned: {reason}");
        }
        let _ = writeln!(
            out,
            "Plan: {} to create, {} to update, {} to retag, {} to delete, {} unchanged.",
            self.creates.len(),
            self.updates.len(),
            self.tag_changes.len(),
            self.deletes.len(),
            self.unchanged
        );
        out
    }
}
