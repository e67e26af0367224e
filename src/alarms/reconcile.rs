//! Making CloudWatch match the declared alarms: read what exists (DescribeAlarms by the names this
//! host declares or manages), plan, then write only what differs, paced below CloudWatch's quotas
//! and retried when throttled.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

use super::desired::DesiredAlarm;
use super::managed::{Managed, ManagedFile, Record};
use super::order;
use super::plan::{Plan, Scope, Update};
use crate::cloudwatch::{CallError, CloudWatch, DescribedAlarm, ErrorKind};
use crate::metrics::Metrics;
use crate::publish::Pace;

const DELETE_BATCH: usize = 100;
const DESCRIBE_BATCH: usize = 100;

/// Call rates and retries.
#[derive(Debug, Clone)]
pub struct ReconcileConfig {
    /// DescribeAlarms per second per region (CloudWatch's quota: 9).
    pub describe_rate: f64,
    /// PutMetricAlarm, DeleteAlarms, TagResource, UntagResource per second per region and
    /// operation (CloudWatch's quota: 3 for PutMetricAlarm and DeleteAlarms).
    pub write_rate: f64,
    /// Tries per call that fails for other reasons than throttling (network, 5xx, credentials)
    /// before giving up on it until the next reconcile.
    pub attempts: usize,
    pub backoff_min: Duration,
    /// Longest wait between tries of a throttled call. Throttled calls are tried until they go
    /// through: the quotas are account-wide, so throttling means other hosts are busy, not that
    /// the work is wrong.
    pub throttled_backoff_max: Duration,
}

impl Default for ReconcileConfig {
    fn default() -> Self {
        ReconcileConfig {
            describe_rate: 8.0,
            write_rate: 2.5,
            attempts: 6,
            backoff_min: Duration::from_millis(500),
            throttled_backoff_max: Duration::from_secs(120),
        }
    }
}

impl ReconcileConfig {
    /// One CloudWatch call, retried with backoff and jitter while it fails retryably: throttling
    /// until it goes through (a fleet-wide restart is absorbed, never dropped), other failures
    /// `attempts` times in all. The alarm and dashboard reconcilers share it.
    pub async fn retried<T, F, Fut>(&self, what: &str, operation: F) -> Result<T, CallError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, CallError>>,
    {
        let mut failures = ExponentialBuilder::default()
            .with_min_delay(self.backoff_min)
            .with_jitter()
            .with_max_times(self.attempts.saturating_sub(1))
            .build();
        let mut throttles = ExponentialBuilder::default()
            .with_min_delay(self.backoff_min)
            .with_max_delay(self.throttled_backoff_max)
            .with_jitter()
            .without_max_times()
            .build();
        loop {
            let error = match operation().await {
                Ok(value) => return Ok(value),
                Err(error) => error,
            };
            let delay = match error.kind {
                ErrorKind::Throttling => throttles.next(),
                _ if error.is_retryable() => failures.next(),
                _ => None,
            };
            let Some(delay) = delay else { return Err(error) };
            tracing::debug!(what, ?delay, "CloudWatch call failed, retrying: {error}");
            tokio::time::sleep(delay).await;
        }
    }
}

/// What a reconcile did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Applied {
    pub created: usize,
    pub updated: usize,
    pub tagged: usize,
    pub deleted: usize,
    /// `alarm: reason` for every change that failed (it is tried again next time).
    pub failures: Vec<String>,
    /// Every declared alarm's state as this reconcile read it, `(flake, alarm, state)`; `None`
    /// for one it could not read or had to create (the status page shows these, SPEC 16).
    pub states: Vec<(String, String, Option<String>)>,
}

impl Applied {
    pub fn writes(&self) -> usize {
        self.created + self.updated + self.tagged + self.deleted
    }

    /// Adds another reconcile's results to these.
    pub fn absorb(&mut self, other: Applied) {
        self.created += other.created;
        self.updated += other.updated;
        self.tagged += other.tagged;
        self.deleted += other.deleted;
        self.failures.extend(other.failures);
        self.states.extend(other.states);
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Class {
    Describe,
    PutAlarm,
    Delete,
    Tag,
}

/// Reconciles alarms through `C`, remembering ownership in the state directory.
pub struct Reconciler<C> {
    cloudwatch: Arc<C>,
    managed: ManagedFile,
    config: ReconcileConfig,
    metrics: Arc<Metrics>,
    paces: Mutex<HashMap<(String, Class), Arc<Pace>>>,
}

impl<C: CloudWatch> Reconciler<C> {
    pub fn new(cloudwatch: Arc<C>, managed: ManagedFile, config: ReconcileConfig, metrics: Arc<Metrics>) -> Self {
        Reconciler { cloudwatch, managed, config, metrics, paces: Mutex::new(HashMap::new()) }
    }

    /// Plans without changing anything (takes the lock only to read a consistent file).
    pub async fn plan(&self, desired: &[DesiredAlarm], scope: &Scope) -> Result<Plan, String> {
        let _lock = self.managed.lock().await?;
        let managed = self.load_managed().await?;
        self.plan_with(desired, &managed, scope).await.map(|(plan, _)| plan)
    }

    /// Reads the actual alarms and plans, leaving out regions that could not be read: nothing
    /// is created, changed or deleted where the actual state is unknown.
    async fn plan_with(
        &self,
        desired: &[DesiredAlarm],
        managed: &Managed,
        scope: &Scope,
    ) -> Result<(Plan, BTreeMap<(String, String), DescribedAlarm>), String> {
        let (actual, unreadable) = self.actual(desired, managed, scope).await;
        let regions = desired.iter().map(|alarm| &alarm.region).chain(managed.regions()).collect::<std::collections::BTreeSet<_>>();
        if !regions.is_empty() && unreadable.len() == regions.len() {
            let reasons: Vec<String> = unreadable.iter().map(|(region, reason)| format!("{region}: {reason}")).collect();
            return Err(format!("DescribeAlarms failed in every region ({})", reasons.join("; ")));
        }
        let readable = |region: &String| !unreadable.contains_key(region);
        let desired: Vec<DesiredAlarm> = desired.iter().filter(|alarm| readable(&alarm.region)).cloned().collect();
        let mut managed = managed.clone();
        managed.alarms.retain(|region, _| readable(region));
        let mut plan = Plan::new(&desired, &actual, &managed, scope);
        plan.unreadable = unreadable.into_iter().collect();
        Ok((plan, actual))
    }

    /// Plans and applies, with this host's managed-alarm list (`<state-dir>/alarms.json`).
    pub async fn reconcile(&self, desired: &[DesiredAlarm], scope: &Scope) -> Result<Applied, String> {
        let _lock = self.managed.lock().await?;
        let managed = self.load_managed().await?;
        self.reconcile_owned(desired, scope, managed, &mut HostList(self)).await
    }

    /// Removes from this host's managed list (without deleting anything) these (region, name)s:
    /// the alarms this host's cluster flakes declare, which belong to the cluster (SPEC 15), so
    /// this host never deletes them as its own leftovers. Alarms of those flakes that the cluster
    /// versions no longer declare stay in the list: this host deletes them as its leftovers (no
    /// cluster record would ever name them). Returns how many were handed over.
    pub async fn hand_over(&self, names: &BTreeSet<(String, String)>) -> Result<usize, String> {
        let _lock = self.managed.lock().await?;
        let mut managed = self.load_managed().await?;
        let leaving: Vec<(String, String)> = managed
            .iter()
            .filter(|(region, name, _)| names.contains(&((*region).clone(), (*name).clone())))
            .map(|(region, name, _)| (region.clone(), name.clone()))
            .collect();
        if leaving.is_empty() {
            return Ok(0);
        }
        for (region, name) in &leaving {
            managed.remove(region, name);
            tracing::info!(region, alarm = name, "handed to the cluster: a cluster flake declares it, so this host no longer deletes it");
        }
        self.save_managed(&managed).await?;
        Ok(leaving.len())
    }

    /// Adds to this host's managed list alarms a gone cluster flake's record listed that a host
    /// flake here declares: the record is deleted, and this host deletes them once its flake no
    /// longer declares them (otherwise no list would own them).
    pub async fn take_from_cluster(&self, alarms: &[(String, String, Record)]) -> Result<(), String> {
        let _lock = self.managed.lock().await?;
        let mut managed = self.load_managed().await?;
        for (region, name, record) in alarms {
            managed.insert(region, name, record.clone());
        }
        self.save_managed(&managed).await
    }

    /// Plans and applies with `managed` as the list of alarms that are ours, kept by `owner`.
    pub async fn reconcile_owned<O: Ownership>(
        &self,
        desired: &[DesiredAlarm],
        scope: &Scope,
        mut managed: Managed,
        owner: &mut O,
    ) -> Result<Applied, String> {
        let (plan, actual) = self.plan_with(desired, &managed, scope).await?;
        let states = desired
            .iter()
            .map(|alarm| {
                let state = actual.get(&alarm.key()).and_then(|found| found.state.clone());
                (alarm.flake.clone(), alarm.config.name.clone(), state)
            })
            .collect();
        let mut applied = Applied { states, ..Applied::default() };
        for (region, reason) in &plan.unreadable {
            tracing::error!(region, "alarms in this region are left as they are: DescribeAlarms failed: {reason}");
            applied.failures.push(format!("{region}: DescribeAlarms failed: {reason}"));
        }
        for (region, name, reason) in &plan.kept {
            tracing::info!(region, alarm = name, "not deleting an alarm no flake declares: {reason}");
        }

        // Ownership first, and only of what we create: an alarm created just before a crash must
        // still be ours afterwards, and one made elsewhere must never become ours to delete.
        // (A cluster's record also takes the declared alarms that exist: those a host created
        // before the flake became a cluster flake are the cluster's to delete now.)
        let adopted = desired.iter().filter(|alarm| owner.adopts() && actual.contains_key(&alarm.key()));
        // The flakes that gain alarms now: their owner confirms its list is still there.
        let mut claimed: BTreeSet<String> = plan.creates.iter().map(|alarm| alarm.flake.clone()).collect();
        for alarm in plan.creates.iter().chain(adopted) {
            if managed.get(&alarm.region, &alarm.config.name).is_none() {
                claimed.insert(alarm.flake.clone());
            }
            let tags = managed.get(&alarm.region, &alarm.config.name).map(|record| record.tags.clone()).unwrap_or_default();
            managed.insert(&alarm.region, &alarm.config.name, Record { flake: alarm.flake.clone(), file: alarm.file.clone(), tags });
        }
        for alarm in desired {
            if let Some(record) = managed.alarms.get_mut(&alarm.region).and_then(|alarms| alarms.get_mut(&alarm.config.name)) {
                record.flake.clone_from(&alarm.flake);
                record.file.clone_from(&alarm.file);
            }
        }
        for (region, name) in &plan.forgotten {
            managed.remove(region, name);
        }
        owner.save(&managed, &claimed).await?;

        // Metric alarms first, then composites above what they name (SPEC 10).
        let depths = order::depths(desired.iter().filter_map(|alarm| Some((alarm.config.name.as_str(), alarm.config.rule.as_deref()?))));
        let depth = |alarm: &DesiredAlarm| depths.get(&alarm.config.name).copied().unwrap_or(0);
        let mut writes: Vec<(&DesiredAlarm, Option<&Update>)> =
            plan.creates.iter().map(|alarm| (alarm, None)).chain(plan.updates.iter().map(|update| (&update.alarm, Some(update)))).collect();
        writes.sort_by_key(|(alarm, _)| depth(alarm));
        for (alarm, update) in writes {
            if update.is_some_and(changes_between_metric_and_composite)
                && let Err(error) = self
                    .call(&alarm.region, Class::Delete, || {
                        self.cloudwatch.delete_alarms(&alarm.region, std::slice::from_ref(&alarm.config.name))
                    })
                    .await
            {
                self.failed(&mut applied, &alarm.config.name, "replace", &error);
                continue;
            }
            let result = self.call(&alarm.region, Class::PutAlarm, || self.cloudwatch.put_metric_alarm(&alarm.region, &alarm.config)).await;
            match (result, update) {
                (Ok(()), None) => {
                    applied.created += 1;
                    self.metrics.alarm_change("create");
                    tracing::info!(region = alarm.region, alarm = alarm.config.name, flake = alarm.flake, "created alarm");
                    if let Some(record) = managed.alarms.get_mut(&alarm.region).and_then(|alarms| alarms.get_mut(&alarm.config.name)) {
                        record.tags.clear();
                    }
                }
                (Ok(()), Some(update)) => {
                    applied.updated += 1;
                    self.metrics.alarm_change("update");
                    let fields: Vec<&str> = update.changes.iter().map(|change| change.field).collect();
                    tracing::info!(
                        region = alarm.region,
                        alarm = alarm.config.name,
                        flake = alarm.flake,
                        changed = fields.join(","),
                        "corrected alarm"
                    );
                }
                (Err(error), None) => self.failed(&mut applied, &alarm.config.name, "create", &error),
                (Err(error), Some(_)) => self.failed(&mut applied, &alarm.config.name, "update", &error),
            }
        }
        self.apply_tags(&plan, &actual, &mut managed, &mut applied).await;
        self.apply_deletes(&plan, &actual, &mut managed, &mut applied, owner).await;

        owner.save(&managed, &BTreeSet::new()).await?;
        Ok(applied)
    }

    /// The managed-alarm list, read on the blocking pool (it is a file; see `save_managed`).
    async fn load_managed(&self) -> Result<Managed, String> {
        let file = self.managed.clone();
        tokio::task::spawn_blocking(move || file.load()).await.map_err(|error| format!("reading the managed-alarm list failed: {error}"))?
    }

    /// Saves the managed-alarm list on the blocking pool: it fsyncs twice, which must not hold a
    /// runtime thread that fires timeouts and answers `/healthz`.
    async fn save_managed(&self, managed: &Managed) -> Result<(), String> {
        let (file, managed) = (self.managed.clone(), managed.clone());
        tokio::task::spawn_blocking(move || file.save(&managed))
            .await
            .map_err(|error| format!("saving the managed-alarm list failed: {error}"))?
    }

    /// The actual alarms relevant to `scope`, by (region, name), and the regions that could not
    /// be read, with the reason.
    ///
    /// Only the alarms this host declares or manages are read, by name, 100 a call: the cost of
    /// a reconcile is proportional to this host's own alarms, however many `FL-` alarms the
    /// other hosts of a fleet keep in the same region (SPEC 12).
    async fn actual(
        &self,
        desired: &[DesiredAlarm],
        managed: &Managed,
        scope: &Scope,
    ) -> (BTreeMap<(String, String), DescribedAlarm>, BTreeMap<String, String>) {
        let mut actual = BTreeMap::new();
        let mut unreadable = BTreeMap::new();
        for (region, names) in names_to_read(desired, managed, scope) {
            for chunk in names.chunks(DESCRIBE_BATCH) {
                match self.call(region, Class::Describe, || self.cloudwatch.describe_alarms_named(region, chunk)).await {
                    Ok(found) => actual.extend(found.into_iter().map(|alarm| ((region.to_string(), alarm.name.clone()), alarm))),
                    Err(error) => {
                        unreadable.insert(region.to_string(), error.to_string());
                        break;
                    }
                }
            }
        }
        (actual, unreadable)
    }

    async fn apply_tags(
        &self,
        plan: &Plan,
        actual: &BTreeMap<(String, String), DescribedAlarm>,
        managed: &mut super::managed::Managed,
        applied: &mut Applied,
    ) {
        if plan.tag_changes.is_empty() {
            return;
        }
        // New alarms have no ARN in `actual`; look them up by name.
        let mut arns: HashMap<(String, String), String> =
            actual.iter().filter_map(|(key, alarm)| alarm.arn.clone().map(|arn| (key.clone(), arn))).collect();
        let mut missing: BTreeMap<&String, Vec<String>> = BTreeMap::new();
        for change in &plan.tag_changes {
            if !arns.contains_key(&(change.region.clone(), change.name.clone())) {
                missing.entry(&change.region).or_default().push(change.name.clone());
            }
        }
        for (region, names) in missing {
            for chunk in names.chunks(DESCRIBE_BATCH) {
                match self.call(region, Class::Describe, || self.cloudwatch.describe_alarms_named(region, chunk)).await {
                    Ok(found) => {
                        arns.extend(found.into_iter().filter_map(|alarm| alarm.arn.map(|arn| ((region.clone(), alarm.name), arn))))
                    }
                    Err(error) => tracing::warn!(region, "cannot look up new alarms to tag them: {error}"),
                }
            }
        }
        for change in &plan.tag_changes {
            let Some(arn) = arns.get(&(change.region.clone(), change.name.clone())) else {
                applied.failures.push(format!("{}: tags: the alarm's ARN is unknown (was it created?)", change.name));
                continue;
            };
            let mut ok = true;
            if !change.set.is_empty()
                && let Err(error) =
                    self.call(&change.region, Class::Tag, || self.cloudwatch.tag_resource(&change.region, arn, &change.set)).await
            {
                self.failed(applied, &change.name, "tag", &error);
                ok = false;
            }
            if ok
                && !change.remove.is_empty()
                && let Err(error) =
                    self.call(&change.region, Class::Tag, || self.cloudwatch.untag_resource(&change.region, arn, &change.remove)).await
            {
                self.failed(applied, &change.name, "untag", &error);
                ok = false;
            }
            if ok {
                applied.tagged += 1;
                self.metrics.alarm_change("tag");
                if let Some(record) = managed.alarms.get_mut(&change.region).and_then(|alarms| alarms.get_mut(&change.name)) {
                    record.tags.extend(change.set.clone());
                    for key in &change.remove {
                        record.tags.remove(key);
                    }
                }
            }
        }
    }

    /// Deletes what the plan says, composites first and one a call (SPEC 10), then the rest 100 a call.
    async fn apply_deletes(
        &self,
        plan: &Plan,
        actual: &BTreeMap<(String, String), DescribedAlarm>,
        managed: &mut Managed,
        applied: &mut Applied,
        owner: &impl Ownership,
    ) {
        let mut by_region: BTreeMap<&String, Vec<String>> = BTreeMap::new();
        for delete in &plan.deletes {
            by_region.entry(&delete.region).or_default().push(delete.name.clone());
        }
        for (region, names) in by_region {
            let rules = actual
                .iter()
                .filter(|((alarm_region, _), _)| alarm_region == region)
                .filter_map(|((_, name), alarm)| Some((name.as_str(), alarm.rule.as_deref()?)));
            let depths = order::depths(rules);
            for chunk in &order::delete_batches(&names, &depths, DELETE_BATCH) {
                if let Err(reason) = owner.may_delete() {
                    for name in chunk {
                        tracing::warn!(region, alarm = name, "not deleting the alarm now: {reason}");
                        applied.failures.push(format!("{name}: delete: {reason}"));
                    }
                    continue;
                }
                match self.call(region, Class::Delete, || self.cloudwatch.delete_alarms(region, chunk)).await {
                    Ok(()) => {
                        applied.deleted += chunk.len();
                        for name in chunk {
                            self.metrics.alarm_change("delete");
                            managed.remove(region, name);
                            tracing::info!(region, alarm = name, "deleted alarm no flake declares any more");
                        }
                    }
                    Err(error) => {
                        for name in chunk {
                            self.failed(applied, name, "delete", &error);
                        }
                    }
                }
            }
        }
    }

    fn failed(&self, applied: &mut Applied, alarm: &str, action: &str, error: &CallError) {
        tracing::error!(alarm, action, "alarm change failed (tried again at the next reconcile): {error}");
        applied.failures.push(format!("{alarm}: {action}: {error}"));
    }

    fn pace(&self, region: &str, class: Class) -> Arc<Pace> {
        let rate = if class == Class::Describe { self.config.describe_rate } else { self.config.write_rate };
        let mut paces = self.paces.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        paces.entry((region.to_string(), class)).or_insert_with(|| Arc::new(Pace::per_second(rate))).clone()
    }

    /// One call, paced, retried as [`ReconcileConfig::retried`] says.
    async fn call<T, F, Fut>(&self, region: &str, class: Class, operation: F) -> Result<T, CallError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, CallError>>,
    {
        let pace = self.pace(region, class);
        let what = format!("{class:?} in {region}");
        self.config
            .retried(&what, || {
                let (pace, call) = (pace.clone(), operation());
                async move {
                    pace.wait().await;
                    call.await
                }
            })
            .await
    }
}

/// Who keeps the list of alarms a reconcile may delete: this host's state file, or (SPEC 15) a
/// cluster flake's ownership record in S3.
pub trait Ownership: Send {
    /// Stores the list; called before any alarm is created (ownership first) and at the end.
    /// `claimed`: the flakes whose alarms are about to be created or newly adopted (the first
    /// call only); their list is written even if it did not change, so one that vanished is
    /// noticed before alarms exist that no list names.
    fn save(&mut self, managed: &Managed, claimed: &BTreeSet<String>) -> impl Future<Output = Result<(), String>> + Send;
    /// Whether declared alarms that exist become owned too (a cluster's record: yes; a host's
    /// list: no, another host or a person may have made them).
    fn adopts(&self) -> bool {
        false
    }
    /// Checked before each DeleteAlarms call: `Err(why not)` stops deleting for now.
    fn may_delete(&self) -> Result<(), String> {
        Ok(())
    }
}

/// This host's managed-alarm list, `<state-dir>/alarms.json`.
struct HostList<'a, C>(&'a Reconciler<C>);

impl<C: CloudWatch> Ownership for HostList<'_, C> {
    async fn save(&mut self, managed: &Managed, _claimed: &BTreeSet<String>) -> Result<(), String> {
        self.0.save_managed(managed).await
    }
}

/// A metric alarm that becomes a composite (or back) under the same name: CloudWatch keeps the two
/// types apart, so the old one is deleted before the new one is written.
fn changes_between_metric_and_composite(update: &Update) -> bool {
    update.changes.iter().any(|change| change.field == "type" && (change.old == "composite") != (change.new == "composite"))
}

/// Per region, sorted and without repeats: the names this host declares, and the managed names in
/// `scope` (every managed alarm for a full reconcile, the given flakes' for `once`).
fn names_to_read<'a>(desired: &'a [DesiredAlarm], managed: &'a Managed, scope: &Scope) -> BTreeMap<&'a str, Vec<String>> {
    let mut names: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for alarm in desired {
        names.entry(&alarm.region).or_default().push(alarm.config.name.clone());
    }
    for (region, name, record) in managed.iter() {
        if scope.covers(&record.flake) {
            names.entry(region).or_default().push(name.clone());
        }
    }
    for list in names.values_mut() {
        list.sort();
        list.dedup();
    }
    names
}
