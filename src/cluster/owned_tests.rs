//! Cluster flakes' alarms on the in-memory S3 and the fake CloudWatch: only the holder
//! reconciles, a member without the claim touches nothing, disagreement blocks every delete, a
//! gone flake's alarms are deleted exactly once (also when the deleter dies half-way), a damaged
//! record deletes nothing, steady state costs no S3 request (also for a held flake without
//! alarms), a record deleted under a holder's cache is written again before alarms are created,
//! a deletion mark left by a failed put is taken off later, and no alarm ends in no list (host
//! hand-over by declared name, a gone flake's alarm a host flake here declares).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use serde_json::{Value, json};
use tokio::sync::watch;

use super::*;
use crate::alarms::{ManagedFile, ReconcileConfig, desired_alarms};
use crate::cloudwatch::fake::{FakeCloudWatch, Operation};
use crate::cluster::cluster_flakes;
use crate::cluster::gate::Held;
use crate::cluster::memory::MemoryStore;
use crate::cluster::store::{Listed, Object, StoreError};
use crate::flake::{Context, Flake, parse_flake};
use crate::placeholders::tests::FixedFacts;

const REGION: &str = "eu-west-1";

/// A cluster flake declaring alarms `names` (threshold `threshold`).
fn flake(name: &str, names: &[&str], threshold: f64) -> Arc<Flake> {
    let alarms: Vec<Value> =
        names.iter().map(|alarm| json!({"alarmName": alarm, "alarmThreshold": threshold, "alarmOperator": ">"})).collect();
    let text = json!({"flakeName": name, "flakeCronstring": "* * * * *", "flakeCommand": "echo 1", "flakeMetricNamespace": "Test", "flakeScope": "cluster", "flakeAlarms": alarms})
        .to_string();
    let context = Context { default_zone: chrono_tz::Tz::UTC, facts: &FixedFacts };
    let (flake, problems) = parse_flake(Path::new(&format!("flakes/{name}.json")), &text, &context);
    Arc::new(flake.unwrap_or_else(|| panic!("{problems:?}")))
}

struct Member {
    id: String,
    keeper: ClusterAlarms<MemoryStore>,
    store: MemoryStore,
    gate: Arc<Gate>,
    agreement: watch::Sender<Arc<Agreement>>,
    reconciler: Reconciler<FakeCloudWatch>,
    metrics: Arc<Metrics>,
    _state: tempfile::TempDir,
}

impl Member {
    fn new(bucket: &MemoryStore, fake: &FakeCloudWatch, id: &str) -> Member {
        let (store, gate, metrics) = (bucket.handle(), Arc::new(Gate::default()), Arc::new(Metrics::new()));
        gate.trust_until(tokio::time::Instant::now() + Duration::from_secs(3600));
        let (agreement, receiver) = watch::channel(Arc::new(Agreement::default()));
        let state = tempfile::tempdir().unwrap();
        let config = ReconcileConfig { backoff_min: Duration::from_millis(1), ..ReconcileConfig::default() };
        let reconciler = Reconciler::new(Arc::new(fake.clone()), ManagedFile::new(state.path()), config, metrics.clone());
        let keeper = ClusterAlarms::new(store.clone(), gate.clone(), receiver, metrics.clone());
        Member { id: id.to_string(), keeper, store, gate, agreement, reconciler, metrics, _state: state }
    }

    /// A member that holds `flake` alone and has reconciled its alarms once.
    async fn holding(bucket: &MemoryStore, fake: &FakeCloudWatch, id: &str, flake: &Arc<Flake>) -> Member {
        let mut member = Member::new(bucket, fake, id);
        member.hold(flake);
        member.sees(&[(id, &[flake])]);
        member.pass(std::slice::from_ref(flake)).await;
        member
    }

    fn hold(&self, flake: &Flake) {
        let version = crate::cluster::flake_version(flake);
        self.gate.hold(&flake.name, Held { version, since: Utc::now() });
    }

    /// What the live members announce: (member id, its flakes).
    fn sees(&self, members: &[(&str, &[&Arc<Flake>])]) {
        let mut agreement = Agreement { member: self.id.clone(), unsure: None, ..Agreement::default() };
        for (id, flakes) in members {
            agreement.live.insert(id.to_string());
            for flake in *flakes {
                let version = crate::cluster::flake_version(flake);
                agreement.flakes.entry(flake.name.clone()).or_default().entry(version).or_default().insert(id.to_string());
            }
        }
        self.agreement.send_replace(Arc::new(agreement));
    }

    /// One reconcile of the cluster part, as the daemon's loop does it, with these local flakes.
    async fn pass(&mut self, local: &[Arc<Flake>]) -> Applied {
        let (desired, _) = desired_alarms(local, Some(REGION));
        self.keeper.reconcile(&self.reconciler, &cluster_flakes(local), &desired, &desired).await
    }

    fn counted(&self, action: &'static str) -> u64 {
        self.metrics.cluster_owned_alarms.get_or_create(&OwnedAlarmLabels { action }).get()
    }
}

fn record(bucket: &MemoryStore, flake: &str) -> Option<OwnedAlarms> {
    bucket.body(&format!("{OWNED}{flake}")).map(|body| serde_json::from_slice(&body).expect("a record"))
}

/// DeleteAlarms calls that named `alarm`.
fn deletes_of(fake: &FakeCloudWatch, alarm: &str) -> usize {
    fake.alarm_writes()
        .iter()
        .filter(|(operation, names)| *operation == Operation::DeleteAlarms && names.iter().any(|name| name == alarm))
        .count()
}

#[tokio::test]
async fn only_the_holder_reconciles_and_records_and_steady_state_costs_no_s3_request() {
    let (bucket, fake) = (MemoryStore::new(Utc::now()), FakeCloudWatch::new());
    let x = flake("x", &["high"], 5.0);
    // A held cluster flake without alarms: it never gets a record, and is not looked for again.
    let quiet = flake("quiet", &[], 1.0);
    let (mut a, mut b) = (Member::new(&bucket, &fake, "a"), Member::new(&bucket, &fake, "b"));
    for member in [&a, &b] {
        member.sees(&[("a", &[&x]), ("b", &[&x])]);
    }
    b.pass(std::slice::from_ref(&x)).await;
    assert!(fake.alarm("eu-west-1", "FL-x-high").is_none(), "a member without the claim creates nothing");
    assert!(record(&bucket, "x").is_none());

    a.hold(&x);
    let applied = a.pass(std::slice::from_ref(&x)).await;
    assert_eq!(applied.created, 1, "{applied:?}");
    let owned = record(&bucket, "x").expect("the holder records what it creates");
    assert!(owned.alarms[REGION].contains_key("FL-x-high"));
    assert_eq!(a.counted("reconciled"), 1);
    assert!(ManagedFile::new(a._state.path()).load().unwrap().alarms.is_empty(), "never in the host's own list");

    // Drift: only the holder corrects it.
    let changed = flake("x", &["high"], 9.0);
    let writes = fake.alarm_writes().len();
    b.pass(std::slice::from_ref(&changed)).await;
    assert_eq!(fake.alarm_writes().len(), writes, "the member without the claim leaves the alarm alone");
    assert_eq!(fake.alarm(REGION, "FL-x-high").unwrap().threshold, Some(5.0));
    a.hold(&quiet);
    a.pass(&[x.clone(), quiet.clone()]).await;
    assert!(record(&bucket, "quiet").is_none());
    let requests = a.store.requests();
    for _ in 0..3 {
        a.pass(&[x.clone(), quiet.clone()]).await;
    }
    assert_eq!(a.store.requests(), requests, "steady state: no record is read or written");
}

#[tokio::test]
async fn members_that_disagree_block_every_delete_and_agreement_allows_it() {
    let (bucket, fake) = (MemoryStore::new(Utc::now()), FakeCloudWatch::new());
    let v1 = flake("x", &["high", "low"], 5.0);
    let v2 = flake("x", &["high"], 5.0);
    let mut a = Member::new(&bucket, &fake, "a");
    a.hold(&v1);
    a.sees(&[("a", &[&v1]), ("b", &[&v1])]);
    a.pass(std::slice::from_ref(&v1)).await;
    assert!(fake.alarm(REGION, "FL-x-low").is_some());

    // A rollout: the holder has v2 (without "low"), b still v1: "low" stays.
    a.hold(&v2);
    a.sees(&[("a", &[&v2]), ("b", &[&v1])]);
    let applied = a.pass(std::slice::from_ref(&v2)).await;
    assert_eq!(applied.deleted, 0);
    assert!(fake.alarm(REGION, "FL-x-low").is_some(), "kept while b has another version");
    assert_eq!(a.counted("declined"), 1, "the declined delete is counted");
    // A live member whose lease could not be read: still kept.
    a.agreement.send_modify(|agreement| {
        let mut unsure = (**agreement).clone();
        unsure.flakes.get_mut("x").unwrap().retain(|version, _| *version == crate::cluster::flake_version(&v2));
        unsure.unsure = Some("the leases of b could not be read".into());
        *agreement = Arc::new(unsure);
    });
    a.pass(std::slice::from_ref(&v2)).await;
    assert!(fake.alarm(REGION, "FL-x-low").is_some(), "kept while a lease is unread");

    // Everyone has v2: the holder deletes "low" and forgets it.
    a.sees(&[("a", &[&v2]), ("b", &[&v2])]);
    let applied = a.pass(std::slice::from_ref(&v2)).await;
    assert_eq!(applied.deleted, 1);
    assert!(fake.alarm(REGION, "FL-x-low").is_none());
    assert!(!record(&bucket, "x").unwrap().alarms[REGION].contains_key("FL-x-low"));
}

#[tokio::test]
async fn a_flake_one_live_member_still_has_keeps_its_alarms() {
    let (bucket, fake) = (MemoryStore::new(Utc::now()), FakeCloudWatch::new());
    let x = flake("x", &["high"], 5.0);
    let mut a = Member::new(&bucket, &fake, "a");
    a.hold(&x);
    a.sees(&[("a", &[&x]), ("b", &[&x])]);
    a.pass(std::slice::from_ref(&x)).await;
    // a's files drop x; b (alive, older files) still has it.
    a.gate.drop_claim("x");
    a.sees(&[("a", &[]), ("b", &[&x])]);
    for _ in 0..2 {
        a.pass(&[flake("other", &[], 1.0)]).await;
    }
    assert!(fake.alarm(REGION, "FL-x-high").is_some(), "b still has the flake");
    assert_eq!(deletes_of(&fake, "FL-x-high"), 0);
    assert_eq!(a.counted("declined"), 1, "declined once, logged once");
    // b's lease expires (b is down, not alive with other files): x is gone from every live member.
    a.sees(&[("a", &[])]);
    let applied = a.pass(&[flake("other", &[], 1.0)]).await;
    assert_eq!(applied.deleted, 1);
    assert!(fake.alarm(REGION, "FL-x-high").is_none());
    assert!(record(&bucket, "x").is_none(), "the record goes with its alarms");
}

#[tokio::test]
async fn a_gone_flake_s_alarms_are_deleted_exactly_once_also_when_the_deleter_dies_half_way() {
    let (bucket, fake) = (MemoryStore::new(Utc::now()), FakeCloudWatch::new());
    let x = flake("x", &["high", "low"], 5.0);
    let _holder = Member::holding(&bucket, &fake, "h", &x).await;
    assert_eq!(record(&bucket, "x").unwrap().len(), 2);

    // Three members start without x (the record is found by the one listing at start).
    let mut members: Vec<Member> = ["a", "b", "c"].iter().map(|id| Member::new(&bucket, &fake, id)).collect();
    // "a" won the deletion mark and died before deleting anything (its lease is still live).
    let marked = OwnedAlarms { deleting: Some("a".into()), ..record(&bucket, "x").unwrap() };
    let etag = bucket.get(&format!("{OWNED}x")).await.unwrap().unwrap().etag;
    bucket.put(&format!("{OWNED}x"), serde_json::to_vec(&marked).unwrap(), Condition::Matches(etag)).await.unwrap();
    for member in &mut members[1..] {
        member.sees(&[("a", &[]), ("b", &[]), ("c", &[])]);
        member.pass(&[]).await;
    }
    assert_eq!(deletes_of(&fake, "FL-x-high"), 0, "nobody deletes while the marking member is live");
    // a's lease expires: one of b and c takes the mark over and deletes; the other finds nothing.
    for _ in 0..2 {
        for member in &mut members[1..] {
            member.sees(&[("b", &[]), ("c", &[])]);
            member.pass(&[]).await;
        }
    }
    assert_eq!(deletes_of(&fake, "FL-x-high"), 1, "{:?}", fake.alarm_writes());
    assert_eq!(deletes_of(&fake, "FL-x-low"), 1);
    assert!(fake.alarm(REGION, "FL-x-high").is_none() && fake.alarm(REGION, "FL-x-low").is_none());
    assert!(record(&bucket, "x").is_none());
    let deleted: u64 = members.iter().map(|member| member.counted("deleted")).sum();
    assert_eq!(deleted, 2);
}

#[tokio::test]
async fn the_deletion_mark_is_won_by_one_member_only() {
    let (bucket, fake) = (MemoryStore::new(Utc::now()), FakeCloudWatch::new());
    let x = flake("x", &["high"], 5.0);
    let _holder = Member::holding(&bucket, &fake, "h", &x).await;
    let mut members: Vec<Member> = ["a", "b", "c"].iter().map(|id| Member::new(&bucket, &fake, id)).collect();
    for member in &members {
        member.sees(&[("a", &[]), ("b", &[]), ("c", &[])]);
    }
    // All three at once, on a runtime that interleaves them at every await.
    let [a, b, c] = &mut members[..] else { unreachable!() };
    let (one, two, three) = tokio::join!(a.pass(&[]), b.pass(&[]), c.pass(&[]));
    assert_eq!(one.deleted + two.deleted + three.deleted, 1);
    assert_eq!(deletes_of(&fake, "FL-x-high"), 1);
}

#[tokio::test]
async fn a_damaged_record_deletes_nothing_and_a_holder_replaces_it() {
    let (bucket, fake) = (MemoryStore::new(Utc::now()), FakeCloudWatch::new());
    let x = flake("x", &["high"], 5.0);
    let _holder = Member::holding(&bucket, &fake, "h", &x).await;
    bucket.put(&format!("{OWNED}x"), b"{ not a record".to_vec(), Condition::None).await.unwrap();

    let mut other = Member::new(&bucket, &fake, "o");
    other.sees(&[("o", &[])]);
    other.pass(&[]).await;
    assert!(fake.alarm(REGION, "FL-x-high").is_some(), "a record that cannot be understood deletes nothing");
    assert_eq!(deletes_of(&fake, "FL-x-high"), 0);
    assert_eq!(other.counted("damaged"), 1);
    assert_eq!(bucket.body(&format!("{OWNED}x")).unwrap(), b"{ not a record".to_vec(), "left for a human");

    // A (new) holder replaces it with what it declares.
    let _holder = Member::holding(&bucket, &fake, "h2", &x).await;
    assert!(record(&bucket, "x").unwrap().alarms[REGION].contains_key("FL-x-high"));
    assert_eq!(deletes_of(&fake, "FL-x-high"), 0);
}

#[tokio::test]
async fn a_host_s_list_hands_cluster_flakes_alarms_over_without_deleting_them() {
    let (bucket, fake) = (MemoryStore::new(Utc::now()), FakeCloudWatch::new());
    let x = flake("x", &["high"], 5.0);
    let a = Member::new(&bucket, &fake, "a");
    // Before joining the cluster, x ran here as a host flake with two alarms: both in the host's list.
    let host_era = flake("x", &["high", "old"], 5.0);
    let (desired, _) = desired_alarms(std::slice::from_ref(&host_era), Some(REGION));
    a.reconciler.reconcile(&desired, &Scope::all(false, 1, Vec::new())).await.unwrap();
    assert_eq!(ManagedFile::new(a._state.path()).load().unwrap().iter().count(), 2);
    // The cluster version declares only "high": only that one is handed over.
    let (cluster_desired, _) = desired_alarms(std::slice::from_ref(&x), Some(REGION));
    let handed = a.reconciler.hand_over(&cluster_desired.iter().map(DesiredAlarm::key).collect()).await.unwrap();
    assert_eq!(handed, 1);
    // The host part now reconciles without x: "high" is the cluster's and stays; "old", which no
    // cluster record will ever list, is deleted as this host's leftover.
    let other = flake("other", &[], 1.0);
    let (host_desired, _) = desired_alarms(std::slice::from_ref(&other), Some(REGION));
    a.reconciler.reconcile(&host_desired, &Scope::all(false, 1, Vec::new())).await.unwrap();
    assert!(fake.alarm(REGION, "FL-x-high").is_some());
    assert!(fake.alarm(REGION, "FL-x-old").is_none(), "the host-era alarm the cluster version drops is deleted");
    assert!(ManagedFile::new(a._state.path()).load().unwrap().alarms.is_empty());
}

#[tokio::test]
async fn a_holder_whose_cached_record_vanished_writes_it_again_before_creating_alarms() {
    let (bucket, fake) = (MemoryStore::new(Utc::now()), FakeCloudWatch::new());
    let x = flake("x", &["high"], 5.0);
    let mut b = Member::holding(&bucket, &fake, "b", &x).await;
    assert!(record(&bucket, "x").is_some());
    // b drops x for a moment: a, seeing it gone from every live member, deletes its alarms and
    // its record, while b (holding x again) still has the record in memory.
    let mut a = Member::new(&bucket, &fake, "a");
    a.sees(&[("a", &[]), ("b", &[])]);
    assert_eq!(a.pass(&[]).await.deleted, 1);
    assert!(fake.alarm(REGION, "FL-x-high").is_none() && record(&bucket, "x").is_none());
    // b re-creates the alarm: never without a record listing it (a later delete finds it).
    for _ in 0..2 {
        b.pass(std::slice::from_ref(&x)).await;
        if fake.alarm(REGION, "FL-x-high").is_some() {
            let owned = record(&bucket, "x").expect("an alarm the cluster created is in a record");
            assert!(owned.alarms[REGION].contains_key("FL-x-high"));
        }
    }
    assert!(fake.alarm(REGION, "FL-x-high").is_some(), "re-created once the record is written again");
    // Steady state again: nothing written.
    let requests = b.store.requests();
    b.pass(std::slice::from_ref(&x)).await;
    assert_eq!(b.store.requests(), requests);
}

/// A store whose puts are first shown to `on_put` (with their number, from 1): false fails the put.
#[derive(Clone)]
struct Hooked {
    inner: MemoryStore,
    puts: Arc<std::sync::atomic::AtomicUsize>,
    on_put: Arc<dyn Fn(usize) -> bool + Send + Sync>,
}

impl Store for Hooked {
    async fn put(&self, key: &str, body: Vec<u8>, condition: Condition) -> Result<Put, StoreError> {
        let number = self.puts.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        if !(self.on_put)(number) {
            return Err(StoreError("put failed (test)".into()));
        }
        self.inner.put(key, body, condition).await
    }
    async fn get(&self, key: &str) -> Result<Option<Object>, StoreError> {
        self.inner.get(key).await
    }
    async fn list(&self, prefix: &str) -> Result<Vec<Listed>, StoreError> {
        self.inner.list(prefix).await
    }
    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.inner.delete(key).await
    }
}

#[tokio::test]
async fn a_deletion_mark_that_could_not_be_taken_off_is_taken_off_later() {
    let (bucket, fake) = (MemoryStore::new(Utc::now()), FakeCloudWatch::new());
    let x = flake("x", &["high"], 5.0);
    let mut h = Member::new(&bucket, &fake, "h");
    h.hold(&x);
    h.sees(&[("h", &[&x]), ("d", &[])]);
    h.pass(std::slice::from_ref(&x)).await;

    // d finds x gone and writes its mark; x is back at h before d deletes anything, and the put
    // that takes d's mark off again fails.
    let version = crate::cluster::flake_version(&x);
    let gone = Agreement { member: "d".into(), unsure: None, live: ["h".to_string(), "d".to_string()].into(), ..Agreement::default() };
    let mut back = gone.clone();
    back.flakes.entry("x".into()).or_default().entry(version).or_default().insert("h".into());
    let (sender, receiver) = watch::channel(Arc::new(gone));
    let sender = Arc::new(sender);
    let flip = sender.clone();
    let on_put = move |number: usize| match number {
        1 => {
            flip.send_replace(Arc::new(back.clone()));
            true
        }
        2 => false,
        _ => true,
    };
    let store = Hooked { inner: bucket.handle(), puts: Arc::default(), on_put: Arc::new(on_put) };
    let gate = Arc::new(Gate::default());
    gate.trust_until(tokio::time::Instant::now() + Duration::from_secs(3600));
    let state = tempfile::tempdir().unwrap();
    let metrics = Arc::new(Metrics::new());
    let reconciler = Reconciler::new(Arc::new(fake.clone()), ManagedFile::new(state.path()), ReconcileConfig::default(), metrics.clone());
    let mut d = ClusterAlarms::new(store, gate, receiver, metrics);
    d.reconcile(&reconciler, &BTreeMap::new(), &[], &[]).await;
    assert_eq!(record(&bucket, "x").unwrap().deleting.as_deref(), Some("d"), "the mark stayed");
    assert!(fake.alarm(REGION, "FL-x-high").is_some());

    // While d's mark stays (d being live), h leaves x's alarms alone: d takes it off next time.
    fake.delete_alarms_now(REGION, &["FL-x-high"]);
    h.pass(std::slice::from_ref(&x)).await;
    assert!(fake.alarm(REGION, "FL-x-high").is_none(), "blocked by d's mark");
    d.reconcile(&reconciler, &BTreeMap::new(), &[], &[]).await;
    assert_eq!(record(&bucket, "x").unwrap().deleting, None, "the mark is taken off");
    h.pass(std::slice::from_ref(&x)).await;
    assert!(fake.alarm(REGION, "FL-x-high").is_some(), "the holder reconciles x's alarms again");
    assert!(record(&bucket, "x").unwrap().alarms[REGION].contains_key("FL-x-high"));
    drop(sender);
}

#[tokio::test]
async fn a_gone_flake_s_alarm_a_host_flake_here_declares_goes_to_the_host_s_list() {
    let (bucket, fake) = (MemoryStore::new(Utc::now()), FakeCloudWatch::new());
    let x = flake("x", &["high"], 5.0);
    let mut a = Member::new(&bucket, &fake, "a");
    a.hold(&x);
    a.sees(&[("a", &[&x]), ("d", &[])]);
    a.pass(std::slice::from_ref(&x)).await;
    // On d, x is now a host flake declaring the same alarm; no live member has x as a cluster flake.
    let text = serde_json::to_string(&json!({"flakeName": "x", "flakeCronstring": "* * * * *", "flakeCommand": "echo 1", "flakeMetricNamespace": "Test", "flakeAlarms": [{"alarmName": "high", "alarmThreshold": 5.0, "alarmOperator": ">"}]})).unwrap();
    let context = Context { default_zone: chrono_tz::Tz::UTC, facts: &FixedFacts };
    let host_x = Arc::new(parse_flake(Path::new("flakes/x.json"), &text, &context).0.unwrap());
    let mut d = Member::new(&bucket, &fake, "d");
    d.sees(&[("a", &[]), ("d", &[])]);
    let applied = d.pass(std::slice::from_ref(&host_x)).await;
    assert_eq!(applied.deleted, 0);
    assert!(fake.alarm(REGION, "FL-x-high").is_some(), "declared here: not deleted");
    assert!(record(&bucket, "x").is_none(), "the record is gone");
    assert!(ManagedFile::new(d._state.path()).load().unwrap().get(REGION, "FL-x-high").is_some(), "the host's list owns it now");
    // The host flake drops the alarm: the host deletes it as its own leftover.
    let (host_desired, _) = desired_alarms(&[flake("other", &[], 1.0)], Some(REGION));
    d.reconciler.reconcile(&host_desired, &Scope::all(false, 1, Vec::new())).await.unwrap();
    assert!(fake.alarm(REGION, "FL-x-high").is_none(), "no alarm left that no list owns");
}
