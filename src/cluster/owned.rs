//! Cluster flakes' alarms belong to the cluster, not to a host (SPEC 15).
//!
//! Their ownership record, `owned/<flake>` beside the claims, lists the alarms the cluster
//! created or adopted for the flake. [`ClusterAlarms`] runs in the daemon's reconcile loop:
//! - only the member holding a flake's trusted claim (at its own version) reconciles the flake's
//!   alarms: creates and corrects them, records them first, and deletes the recorded ones its
//!   version no longer declares only while every live member has that same version;
//! - a flake that no live member has any more (every lease read, none incomplete) has its
//!   alarms deleted once, by the one member that wins a conditional write of a deletion mark on
//!   the record; the mark of a member whose lease expired is taken over by another;
//! - a record that cannot be understood is never acted on (nothing in it is deleted).
//!
//! The record is read when a member takes a flake or sees one leave (its absence is remembered
//! too), and written only when the set of alarms changes or alarms are about to be created or
//! adopted: nothing in steady state. The design is in docs/cluster.md.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::watch;

use super::agreement::Agreement;
use super::gate::Gate;
use super::records::{OWNED, OwnedAlarms};
use super::store::{Condition, Put, RequestKind, Store};
use crate::alarms::{Applied, DesiredAlarm, Managed, Ownership, Reconciler, Record, Scope};
use crate::cloudwatch::CloudWatch;
use crate::metrics::{Metrics, OwnedAlarmLabels, S3RequestLabels};

/// A record as last read or written: its ETag and body, damage, or none.
#[derive(Debug, Clone)]
enum Known {
    /// No record: remembered for a held flake without alarms, so it is not read again each
    /// reconcile (only its holder creates a live flake's record).
    Absent,
    Record(String, OwnedAlarms),
    /// The body cannot be understood (its ETag): never acted on, only replaced by a holder.
    Damaged(String),
}

/// The keeper of cluster flakes' alarms on one member.
pub struct ClusterAlarms<S: Store> {
    store: S,
    gate: Arc<Gate>,
    agreement: watch::Receiver<Arc<Agreement>>,
    metrics: Arc<Metrics>,
    /// Records as last read or written, by flake.
    records: BTreeMap<String, Known>,
    /// Flakes whose record may exist: looked at once no live member has the flake.
    suspects: BTreeSet<String>,
    /// The flakes of the last complete agreement: one that leaves it becomes a suspect.
    seen: BTreeSet<String>,
    /// `owned/` was listed (once, at start: records of flakes that left while this member was away).
    listed: bool,
    /// This member's cluster flakes at the last reconcile; `dropped`: those it no longer has.
    previous_local: BTreeSet<String>,
    dropped: BTreeSet<String>,
    /// Deletes declined, by flake, with the reason last logged (logged again only when it changes).
    declined: BTreeMap<String, String>,
    /// Flakes whose record may carry this member's deletion mark: cleared again each reconcile
    /// while the flake is alive somewhere (a live member's mark blocks the holder).
    marked: BTreeSet<String>,
    writes: u64,
}

impl<S: Store> ClusterAlarms<S> {
    pub fn new(store: S, gate: Arc<Gate>, agreement: watch::Receiver<Arc<Agreement>>, metrics: Arc<Metrics>) -> ClusterAlarms<S> {
        ClusterAlarms {
            store,
            gate,
            agreement,
            metrics,
            records: BTreeMap::new(),
            suspects: BTreeSet::new(),
            seen: BTreeSet::new(),
            listed: false,
            previous_local: BTreeSet::new(),
            dropped: BTreeSet::new(),
            declined: BTreeMap::new(),
            marked: BTreeSet::new(),
            writes: 0,
        }
    }

    /// Waits until what the members announce (or what this member holds) changes.
    pub async fn changed(&mut self) {
        if self.agreement.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// The local cluster flakes this member holds a trusted claim on, at its own version: the
    /// ones whose alarms and dashboard graphs it keeps.
    pub fn held(&self, local: &BTreeMap<String, String>) -> BTreeSet<String> {
        local
            .iter()
            .filter(|(flake, version)| self.gate.holding(flake).as_ref() == Some(*version))
            .map(|(flake, _)| flake.clone())
            .collect()
    }

    /// Reconciles the held flakes' alarms and deletes those of flakes gone from every live member.
    /// `local`: this member's cluster flakes (name -> version); `desired`: their declared alarms;
    /// `declared`: every alarm this member declares, host flakes' too (never deleted here).
    pub async fn reconcile<C: CloudWatch>(
        &mut self,
        reconciler: &Reconciler<C>,
        local: &BTreeMap<String, String>,
        desired: &[DesiredAlarm],
        declared: &[DesiredAlarm],
    ) -> Applied {
        let agreement = self.agreement.borrow_and_update().clone();
        if agreement.unsure.is_none() {
            let now: BTreeSet<String> = agreement.flakes.keys().cloned().collect();
            self.suspects.extend(self.seen.difference(&now).cloned());
            self.seen = now;
        }
        if !self.listed && self.gate.trusted() {
            let result = self.store.list(OWNED).await;
            self.count(RequestKind::List, result.is_ok());
            match result {
                Ok(listed) => {
                    self.suspects.extend(listed.into_iter().filter_map(|entry| entry.key.strip_prefix(OWNED).map(str::to_string)));
                    self.listed = true;
                }
                Err(error) => tracing::warn!("cannot list the cluster's alarm ownership records (tried again next reconcile): {error}"),
            }
        }
        let now_local: BTreeSet<String> = local.keys().cloned().collect();
        let dropped: Vec<String> = self.previous_local.difference(&now_local).cloned().collect();
        self.suspects.extend(dropped.iter().cloned());
        self.dropped.extend(dropped);
        self.dropped.retain(|flake| !now_local.contains(flake));
        self.previous_local = now_local;
        for flake in self.marked.clone() {
            if agreement.keeps(&flake).is_some() {
                self.clear_mark(&flake).await;
            }
        }
        let mut applied = self.reconcile_held(reconciler, local, desired, &agreement).await;
        let gone: Vec<String> = self.suspects.iter().filter(|flake| !local.contains_key(*flake)).cloned().collect();
        for flake in gone {
            match agreement.keeps(&flake) {
                Some(reason) => self.decline(&flake, &reason),
                None => {
                    self.declined.remove(&flake);
                    let deleted = self.delete_gone(reconciler, &flake, declared).await;
                    applied.absorb(deleted);
                }
            }
        }
        applied
    }

    /// The holder's part: create and correct the held flakes' alarms, record them first.
    async fn reconcile_held<C: CloudWatch>(
        &mut self,
        reconciler: &Reconciler<C>,
        local: &BTreeMap<String, String>,
        desired: &[DesiredAlarm],
        agreement: &Agreement,
    ) -> Applied {
        let mut flakes = BTreeSet::new();
        let mut blocked = BTreeMap::new();
        let mut managed = Managed { version: 1, ..Managed::default() };
        let held = self.held(local);
        // Only a holder writes a live flake's record: one not held since may have changed.
        self.records.retain(|flake, _| held.contains(flake));
        for flake in held {
            let known = match self.records.get(&flake) {
                Some(known) => known.clone(),
                None => match self.read(&flake).await {
                    Ok(known) => known,
                    Err(()) => continue,
                },
            };
            match &known {
                Known::Record(_, record) => {
                    if let Some(deleter) =
                        record.deleting.as_ref().filter(|deleter| **deleter != agreement.member && agreement.live.contains(*deleter))
                    {
                        // The flake came back while another member deletes its alarms: wait until
                        // that ends (its record is then gone), never race it.
                        tracing::info!(flake, deleter, "not reconciling the cluster flake's alarms yet: another member is deleting them");
                        self.records.remove(&flake);
                        continue;
                    }
                    insert_record(&mut managed, record);
                }
                Known::Damaged(_) => {
                    tracing::error!(
                        flake,
                        "the ownership record of the cluster flake's alarms cannot be understood: it is replaced, and the alarms it listed are not deleted automatically"
                    );
                    self.metrics.cluster_owned_alarms.get_or_create(&OwnedAlarmLabels { action: "damaged" }).inc();
                }
                Known::Absent => {}
            }
            if let Some(version) = local.get(&flake)
                && let Some(reason) = agreement.blocks_removal(&flake, version)
            {
                blocked.insert(flake.clone(), reason);
            }
            flakes.insert(flake);
        }
        if flakes.is_empty() {
            return Applied::default();
        }
        let desired: Vec<DesiredAlarm> = desired.iter().filter(|alarm| flakes.contains(&alarm.flake)).cloned().collect();
        // Recorded alarms the holder's version no longer declares, kept while members disagree.
        let wanted: BTreeSet<(String, String)> = desired.iter().map(DesiredAlarm::key).collect();
        for (flake, reason) in &blocked {
            let dropped = managed
                .iter()
                .filter(|(region, name, record)| record.flake == *flake && !wanted.contains(&((*region).clone(), (*name).clone())))
                .count();
            if dropped == 0 {
                self.declined.remove(flake);
            } else if self.declined.get(flake) != Some(reason) {
                tracing::info!(flake, alarms = dropped, "not deleting the alarms the held cluster flake no longer declares: {reason}");
                self.metrics.cluster_owned_alarms.get_or_create(&OwnedAlarmLabels { action: "declined" }).inc();
                self.declined.insert(flake.clone(), reason.clone());
            }
        }
        let mut writer = RecordWriter { keeper: self, flakes: flakes.clone(), deleting: None };
        let result = reconciler.reconcile_owned(&desired, &Scope::Cluster { blocked }, managed, &mut writer).await;
        for flake in &flakes {
            self.metrics.cluster_owned_alarms.get_or_create(&OwnedAlarmLabels { action: "reconciled" }).inc();
            tracing::debug!(flake, "reconciled the cluster flake's alarms: this member holds its claim");
        }
        match result {
            Ok(applied) => {
                if applied.writes() > 0 {
                    tracing::info!(
                        flakes = flakes.len(),
                        created = applied.created,
                        updated = applied.updated,
                        deleted = applied.deleted,
                        "reconciled the alarms of the cluster flakes this member holds (it runs them, so it keeps their alarms)"
                    );
                }
                applied
            }
            Err(reason) => {
                tracing::warn!("cluster flakes' alarms not reconciled (tried again next reconcile): {reason}");
                Applied { failures: vec![reason], ..Applied::default() }
            }
        }
    }

    /// Deletes the alarms of `flake`, gone from every live member, if this member wins the
    /// deletion mark (or takes over that of a member whose lease expired).
    async fn delete_gone<C: CloudWatch>(&mut self, reconciler: &Reconciler<C>, flake: &str, declared: &[DesiredAlarm]) -> Applied {
        if !self.gate.trusted() {
            return Applied::default();
        }
        let (etag, mut record) = match self.read(flake).await {
            Err(()) => return Applied::default(),
            Ok(Known::Absent) => {
                self.suspects.remove(flake);
                self.marked.remove(flake);
                return Applied::default();
            }
            Ok(Known::Damaged(_)) => {
                tracing::error!(
                    flake,
                    "the ownership record of a cluster flake that is gone cannot be understood: none of its alarms is deleted; delete them and the object owned/{flake} by hand"
                );
                self.metrics.cluster_owned_alarms.get_or_create(&OwnedAlarmLabels { action: "damaged" }).inc();
                self.suspects.remove(flake);
                return Applied::default();
            }
            Ok(Known::Record(etag, record)) => (etag, record),
        };
        let me = self.agreement.borrow().member.clone();
        let live = self.agreement.borrow().live.clone();
        if let Some(deleter) = record.deleting.as_ref().filter(|deleter| **deleter != me && live.contains(*deleter)) {
            tracing::debug!(flake, deleter, "another member is deleting the gone cluster flake's alarms");
            return Applied::default();
        }
        let taking_over = record.deleting.as_ref().filter(|deleter| **deleter != me).cloned();
        record.deleting = Some(me.clone());
        if !self.write(flake, &record, Condition::Matches(etag)).await {
            return Applied::default();
        }
        // Until the record is deleted or the mark cleared, this member's mark may stay on it.
        self.marked.insert(flake.to_string());
        // The mark is ours: only this member deletes. Look once more: a member may have come back.
        let keeps = self.agreement.borrow().keeps(flake);
        if let Some(reason) = keeps {
            self.clear_mark(flake).await;
            self.decline(flake, &reason);
            return Applied::default();
        }
        let count = record.len();
        match &taking_over {
            Some(previous) => tracing::info!(
                flake,
                alarms = count,
                previous,
                "deleting the alarms of a cluster flake no live member has any more (taking over from a member whose lease expired)"
            ),
            None => tracing::info!(flake, alarms = count, "deleting the alarms of a cluster flake no live member has any more"),
        }
        let mut managed = Managed { version: 1, ..Managed::default() };
        insert_record(&mut managed, &record);
        // Alarms a flake of this member declares (the flake became a host flake here) are not
        // deleted: they go to this host's list first, so that one owner still lists them.
        let kept: Vec<(String, String, Record)> = declared
            .iter()
            .filter_map(|alarm| {
                let record = managed.get(&alarm.region, &alarm.config.name)?;
                let record = Record { flake: alarm.flake.clone(), file: alarm.file.clone(), tags: record.tags.clone() };
                Some((alarm.region.clone(), alarm.config.name.clone(), record))
            })
            .collect();
        if !kept.is_empty()
            && let Err(reason) = reconciler.take_from_cluster(&kept).await
        {
            tracing::warn!(flake, "the gone cluster flake's alarms are not deleted yet (tried again next reconcile): {reason}");
            return Applied { failures: vec![reason], ..Applied::default() };
        }
        for (region, name, _) in &kept {
            tracing::info!(
                flake,
                region,
                alarm = name,
                "not deleting the gone cluster flake's alarm: a flake of this member declares it, so it is now this host's"
            );
            managed.remove(region, name);
        }
        let mut writer = RecordWriter { keeper: self, flakes: BTreeSet::from([flake.to_string()]), deleting: Some(me) };
        let applied = match reconciler.reconcile_owned(&[], &Scope::Cluster { blocked: BTreeMap::new() }, managed, &mut writer).await {
            Ok(applied) => applied,
            Err(reason) => Applied { failures: vec![reason], ..Applied::default() },
        };
        self.metrics.cluster_owned_alarms.get_or_create(&OwnedAlarmLabels { action: "deleted" }).inc_by(applied.deleted as u64);
        let empty = matches!(self.records.get(flake), Some(Known::Record(_, record)) if record.is_empty());
        if applied.failures.is_empty() && empty {
            let result = self.store.delete(&format!("{OWNED}{flake}")).await;
            self.count(RequestKind::Delete, result.is_ok());
            if result.is_ok() {
                self.records.remove(flake);
                self.suspects.remove(flake);
                self.dropped.remove(flake);
                self.marked.remove(flake);
                tracing::info!(flake, deleted = applied.deleted, "deleted the alarms of the gone cluster flake and its ownership record");
            }
        } else {
            tracing::warn!(
                flake,
                failures = applied.failures.len(),
                "some alarms of the gone cluster flake are not deleted yet (tried again next reconcile)"
            );
        }
        applied
    }

    /// Takes this member's deletion mark off the record of `flake`, alive again: while the mark
    /// stays (this member being live), the flake's holder does not reconcile its alarms. Kept in
    /// `marked` (tried again next reconcile) until done or the mark is no longer this member's.
    async fn clear_mark(&mut self, flake: &str) {
        let me = self.agreement.borrow().member.clone();
        let known = match self.records.get(flake) {
            Some(known) => known.clone(),
            None => match self.read(flake).await {
                Ok(known) => known,
                Err(()) => return,
            },
        };
        match known {
            Known::Record(etag, record) if record.deleting.as_ref() == Some(&me) => {
                let record = OwnedAlarms { deleting: None, ..record };
                if self.write(flake, &record, Condition::Matches(etag)).await {
                    tracing::info!(flake, "took this member's deletion mark off the record of the cluster flake: it is alive again");
                    self.marked.remove(flake);
                }
            }
            _ => {
                self.marked.remove(flake);
            }
        }
    }

    /// Logs and counts a delete held back, once per flake and reason.
    fn decline(&mut self, flake: &str, reason: &str) {
        // Only flakes this member dropped: most suspects are simply alive here and elsewhere.
        if !self.dropped.contains(flake) {
            return;
        }
        if self.declined.get(flake).map(String::as_str) != Some(reason) {
            tracing::info!(flake, "not deleting the alarms of the cluster flake this member no longer has: {reason}");
            self.metrics.cluster_owned_alarms.get_or_create(&OwnedAlarmLabels { action: "declined" }).inc();
            self.declined.insert(flake.to_string(), reason.to_string());
        }
    }

    /// Reads `owned/<flake>` (and remembers it). `Err` when S3 could not be asked.
    async fn read(&mut self, flake: &str) -> Result<Known, ()> {
        let result = self.store.get(&format!("{OWNED}{flake}")).await;
        self.count(RequestKind::Get, result.is_ok());
        let object = match result {
            Ok(object) => object,
            Err(error) => {
                tracing::warn!(flake, "cannot read the ownership record of the cluster flake's alarms: {error}");
                return Err(());
            }
        };
        let known = match object {
            None => Known::Absent,
            Some(object) => match serde_json::from_slice::<OwnedAlarms>(&object.body) {
                Ok(record) if record.flake == flake => Known::Record(object.etag, record),
                _ => Known::Damaged(object.etag),
            },
        };
        self.records.insert(flake.to_string(), known.clone());
        Ok(known)
    }

    /// Writes `record` under `condition`; true if written (remembered), false if another member
    /// wrote first or S3 failed (forgotten: read again next time).
    async fn write(&mut self, flake: &str, record: &OwnedAlarms, condition: Condition) -> bool {
        self.writes += 1;
        let record =
            OwnedAlarms { write: format!("{}:{}:{}", self.agreement.borrow().member, self.writes, fastrand::u32(..)), ..record.clone() };
        let body = serde_json::to_vec(&record).expect("a record serializes");
        let result = self.store.put(&format!("{OWNED}{flake}"), body, condition).await;
        let label = match &result {
            Ok(Put::Written(_)) => "ok",
            Ok(Put::Lost) => "lost",
            Err(_) => "error",
        };
        self.metrics.cluster_s3_requests.get_or_create(&S3RequestLabels { kind: "put", result: label }).inc();
        match result {
            Ok(Put::Written(etag)) => {
                self.records.insert(flake.to_string(), Known::Record(etag, record));
                true
            }
            Ok(Put::Lost) => {
                tracing::info!(flake, "the ownership record of the cluster flake's alarms was changed by another member first");
                self.records.remove(flake);
                false
            }
            Err(error) => {
                tracing::warn!(flake, "cannot write the ownership record of the cluster flake's alarms: {error}");
                self.records.remove(flake);
                false
            }
        }
    }

    fn count(&self, kind: RequestKind, ok: bool) {
        let result = if ok { "ok" } else { "error" };
        self.metrics.cluster_s3_requests.get_or_create(&S3RequestLabels { kind: kind.as_str(), result }).inc();
    }
}

/// Adds a record's alarms to a managed list (the reconciler's view of what is ours).
fn insert_record(managed: &mut Managed, record: &OwnedAlarms) {
    for (region, alarms) in &record.alarms {
        for (name, tags) in alarms {
            managed.insert(region, name, Record { flake: record.flake.clone(), file: PathBuf::new(), tags: tags.clone() });
        }
    }
}

/// The reconciler's [`Ownership`] for cluster flakes: each flake's part of the list goes to its
/// record, written (conditionally) when it changed or when the flake's alarms are about to be
/// created or adopted: then a record that vanished since it was read (deleted by a member that
/// found the flake gone) fails the condition, instead of alarms being created that no record
/// lists.
struct RecordWriter<'a, S: Store> {
    keeper: &'a mut ClusterAlarms<S>,
    flakes: BTreeSet<String>,
    /// Set while deleting a gone flake's alarms: the mark stays on the record.
    deleting: Option<String>,
}

impl<S: Store> Ownership for RecordWriter<'_, S> {
    async fn save(&mut self, managed: &Managed, claimed: &BTreeSet<String>) -> Result<(), String> {
        for flake in self.flakes.clone() {
            let mut alarms: BTreeMap<String, BTreeMap<String, BTreeMap<String, String>>> = BTreeMap::new();
            for (region, name, record) in managed.iter().filter(|(_, _, record)| record.flake == flake) {
                alarms.entry(region.clone()).or_default().insert(name.clone(), record.tags.clone());
            }
            let wanted = OwnedAlarms { flake: flake.clone(), alarms, deleting: self.deleting.clone(), write: String::new() };
            let condition = match self.keeper.records.get(&flake) {
                Some(Known::Record(etag, current)) => {
                    if current.alarms == wanted.alarms && current.deleting == wanted.deleting && !claimed.contains(&flake) {
                        continue;
                    }
                    Condition::Matches(etag.clone())
                }
                Some(Known::Damaged(etag)) => Condition::Matches(etag.clone()),
                Some(Known::Absent) | None if wanted.is_empty() => continue,
                Some(Known::Absent) | None => Condition::Absent,
            };
            if !self.keeper.write(&flake, &wanted, condition).await {
                return Err(format!(
                    "the ownership record of cluster flake {flake} could not be written; its alarms are reconciled again next time"
                ));
            }
        }
        Ok(())
    }

    fn adopts(&self) -> bool {
        true
    }

    fn may_delete(&self) -> Result<(), String> {
        if !self.keeper.gate.trusted() {
            return Err("this member's cluster lease is not trusted now".to_string());
        }
        if self.deleting.is_none() && !self.flakes.iter().all(|flake| self.keeper.gate.holding(flake).is_some()) {
            return Err("this member no longer holds the flake's claim".to_string());
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "owned_tests.rs"]
mod tests;
