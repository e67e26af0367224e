//! One member's loop: announce (renew the lease), list the members, then claim, restamp or give
//! up claims so the cluster flakes spread evenly. Every `cycle` it makes two requests (a lease
//! put and one listing of `members/`); claims are written only when they change.
//!
//! Safety rests on three rules:
//! - a claim is won only by a conditional write (`If-None-Match: *` to create, `If-Match` on the
//!   version read to replace), and every write changes the ETag, so exactly one member wins;
//! - another member's claim is taken only when S3 says its lease is older than `expiry`
//!   (`Last-Modified` of its lease against the `Last-Modified` S3 stamped on this member's own
//!   lease a moment before the listing: both S3's clock), or when it was released;
//! - this member trusts its claims only until `trust` after it *sent* its last renewal that was
//!   answered while it still trusted the one before (its own monotonic clock), and `trust` ends
//!   well before `expiry`. A lapse forgets every claim; they are won back by conditional writes.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use chrono::DateTime;
use chrono::Utc;
use tokio::sync::watch;
use tokio::time::Instant;

use super::agreement::Agreement;
use super::gate::{Gate, Held};
use super::records::{CLAIMS, ClaimRecord, MEMBERS, MemberRecord, affinity};
use super::store::{Condition, Listed, Put, RequestKind, Store, StoreError};
use super::view::{ClusterView, FlakeView, MemberView};
use super::{LocalFlakes, Timings, WallClock};
use crate::metrics::{ClaimChangeLabels, Metrics, S3RequestLabels};

/// A claim held in the current trust epoch.
struct HeldClaim {
    etag: String,
    version: String,
}

/// What one listing of `members/` said.
struct Listing {
    /// S3's clock at the listing: the `Last-Modified` of this member's own lease, written just before.
    s3_now: DateTime<Utc>,
    /// Live member ids with their lease age.
    live: BTreeMap<String, chrono::TimeDelta>,
    expired: BTreeMap<String, chrono::TimeDelta>,
}

pub struct Member<S: Store> {
    store: S,
    name: String,
    id: String,
    timings: Timings,
    gate: Arc<Gate>,
    metrics: Arc<Metrics>,
    view: watch::Sender<Arc<ClusterView>>,
    location: String,
    /// This member's cluster flakes: name -> version.
    local: BTreeMap<String, String>,
    /// Why `local` may lack flakes (announced in the lease: it blocks cluster alarm deletes).
    incomplete: Option<String>,
    /// What the live members announce, for the cluster alarms' keeper.
    agreement: Option<watch::Sender<Arc<Agreement>>>,
    trusted_until: Option<Instant>,
    held: BTreeMap<String, HeldClaim>,
    /// The last claim object seen or written per flake.
    claims: HashMap<String, (String, ClaimRecord)>,
    /// Per kept claim copy naming another member: that member's lease ETag when the copy was read
    /// (`None`: its lease was unread). The copy is read again only once that lease changed.
    claim_read_at: HashMap<String, Option<String>>,
    /// Flakes this member gave up whose release could not be written (an S3 error): the claim
    /// still names it, so nobody else may take them until the release is written; retried each
    /// cycle.
    unreleased: BTreeSet<String>,
    /// The last lease body read per member id (by ETag).
    members: HashMap<String, (String, MemberRecord)>,
    writes: u64,
    wall: WallClock,
    /// When the lease of a member that missed its renewal expires, if one did.
    stale_expires: Option<Instant>,
}

impl<S: Store> Member<S> {
    pub fn new(
        store: S,
        name: String,
        timings: Timings,
        gate: Arc<Gate>,
        metrics: Arc<Metrics>,
        view: watch::Sender<Arc<ClusterView>>,
        location: String,
    ) -> Member<S> {
        // A fresh id per start: a restarted member never mistakes its predecessor's claims for
        // its own, and two daemons given the same name cannot share claims.
        let id = format!("{name}.{:08x}", fastrand::u32(..));
        Member {
            store,
            name,
            id,
            timings,
            gate,
            metrics,
            view,
            location,
            local: BTreeMap::new(),
            incomplete: None,
            agreement: None,
            trusted_until: None,
            held: BTreeMap::new(),
            claims: HashMap::new(),
            claim_read_at: HashMap::new(),
            unreleased: BTreeSet::new(),
            members: HashMap::new(),
            writes: 0,
            wall: WallClock::default(),
            stale_expires: None,
        }
    }

    /// Uses `wall` for this host's wall time (a simulation's clock).
    pub fn with_wall_clock(mut self, wall: WallClock) -> Member<S> {
        self.wall = wall;
        self
    }

    /// Publishes what the live members announce on `agreement` whenever it changes.
    pub fn with_agreement(mut self, agreement: watch::Sender<Arc<Agreement>>) -> Member<S> {
        self.agreement = Some(agreement);
        self
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// Runs until `stop` turns true, then gives up every claim and leaves.
    pub async fn run(mut self, mut flakes: watch::Receiver<LocalFlakes>, mut stop: watch::Receiver<bool>) {
        tracing::info!(member = self.id, cluster = self.location, "joining the cluster");
        let mut next_cycle = Instant::now();
        loop {
            let latest = flakes.borrow_and_update().clone();
            (self.local, self.incomplete) = (latest.versions, latest.incomplete);
            let started = Instant::now();
            if started >= next_cycle {
                next_cycle = if self.cycle().await { started + self.timings.cycle } else { Instant::now() + self.timings.retry };
            } else {
                // A member missed its renewal: look again the moment its lease expires, so its
                // flakes are taken over then rather than up to a cycle later.
                self.check().await;
            }
            let wake = self.stale_expires.map_or(next_cycle, |stale| stale.min(next_cycle));
            tokio::select! {
                () = tokio::time::sleep_until(wake) => {}
                changed = flakes.changed() => if changed.is_err() { break } else { next_cycle = Instant::now() },
                _ = stop.wait_for(|stop| *stop) => break,
            }
        }
        self.leave().await;
    }

    /// One round: renew, list, rebalance. False when S3 could not be reached (retry soon).
    pub async fn cycle(&mut self) -> bool {
        if !self.renew().await {
            return false;
        }
        self.check().await
    }

    /// List, rebalance, and tell the others if any claim changed. False if the listing failed.
    async fn check(&mut self) -> bool {
        self.stale_expires = None;
        if !self.trusted() {
            self.doubt_agreement("this member's lease is not trusted");
            return false;
        }
        let Ok(listing) = self.list().await else {
            self.doubt_agreement("the members could not be listed");
            return false;
        };
        let live = self.read_live_members(&listing).await;
        let changed = self.rebalance(&listing, &live).await;
        if changed {
            // Others learn what this member holds from its lease: tell them now, not next cycle.
            self.renew().await;
        }
        self.publish_view(&listing);
        self.publish_agreement(&listing);
        true
    }

    /// This member's lease body.
    fn own_record(&self) -> MemberRecord {
        MemberRecord {
            member: self.name.clone(),
            flakes: self.local.clone(),
            claims: self.held.keys().cloned().collect(),
            incomplete: self.incomplete.clone(),
        }
    }

    /// Tells the cluster alarms' keeper what the live members announce, when that changed.
    fn publish_agreement(&self, listing: &Listing) {
        let Some(sender) = &self.agreement else { return };
        let mut agreement = Agreement {
            member: self.id.clone(),
            live: listing.live.keys().cloned().collect(),
            held: self.held.keys().cloned().collect(),
            ..Agreement::default()
        };
        let mut unread = Vec::new();
        let mut incomplete = Vec::new();
        for id in listing.live.keys() {
            let record = if *id == self.id { Some(self.own_record()) } else { self.members.get(id).map(|(_, record)| record.clone()) };
            let Some(record) = record else {
                unread.push(id.clone());
                continue;
            };
            if let Some(why) = &record.incomplete {
                incomplete.push(format!("{id}: {why}"));
            }
            for (flake, version) in record.flakes {
                agreement.flakes.entry(flake).or_default().entry(version).or_default().insert(id.clone());
            }
        }
        agreement.unsure = match (unread.is_empty(), incomplete.is_empty()) {
            (true, true) => None,
            (false, _) => Some(format!("the leases of {} could not be read", unread.join(", "))),
            (true, false) => Some(format!("flake files are incomplete on {}", incomplete.join("; "))),
        };
        sender.send_if_modified(|current| {
            let changed = **current != agreement;
            if changed {
                *current = Arc::new(agreement);
            }
            changed
        });
    }

    /// The last picture may be out of date (the listing failed, or this member's lease is not
    /// trusted): it is marked unsure, so no cluster alarm is deleted on it until a listing
    /// succeeds again.
    fn doubt_agreement(&self, why: &str) {
        let Some(sender) = &self.agreement else { return };
        sender.send_if_modified(|current| {
            if current.unsure.is_some() {
                return false;
            }
            let mut doubted = (**current).clone();
            doubted.unsure = Some(why.to_string());
            *current = Arc::new(doubted);
            true
        });
    }

    /// Writes the lease. A renewal answered while the previous one was still trusted continues
    /// the claims; otherwise they are forgotten (others may have taken them meanwhile).
    async fn renew(&mut self) -> bool {
        let record = self.own_record();
        let body = serde_json::to_vec(&record).expect("a lease serializes");
        let sent = Instant::now();
        let result = self.store.put(&format!("{MEMBERS}{}", self.id), body, Condition::None).await;
        self.count(RequestKind::Put, &result.as_ref().map(|_| true));
        let answered = Instant::now();
        let continuous = self.trusted_until.is_some_and(|until| answered < until);
        match result {
            Ok(_) => {
                if !continuous {
                    self.lapse("its lease was not renewed in time");
                }
                self.trusted_until = Some(sent + self.timings.trust);
                self.gate.trust_until(sent + self.timings.trust);
                true
            }
            Err(error) => {
                tracing::warn!(member = self.id, "cannot renew the cluster lease: {error}");
                if !continuous {
                    self.lapse("its lease could not be renewed");
                }
                false
            }
        }
    }

    /// Forgets every claim: they are no longer safe to run.
    fn lapse(&mut self, why: &str) {
        if !self.held.is_empty() {
            tracing::warn!(member = self.id, flakes = self.held.len(), "stopped running its cluster flakes: {why}");
            let lost = self.held.len() as u64;
            self.metrics.cluster_claim_changes.get_or_create(&ClaimChangeLabels { change: "lost" }).inc_by(lost);
        }
        self.held.clear();
        self.gate.distrust();
        self.trusted_until = None;
        self.metrics.cluster_claims_held.set(0);
    }

    async fn list(&mut self) -> Result<Listing, StoreError> {
        let result = self.store.list(MEMBERS).await;
        self.count(RequestKind::List, &result.as_ref().map(|_| true));
        let listed = result.map_err(|error| {
            tracing::warn!(member = self.id, "cannot list the cluster's members: {error}");
            error
        })?;
        let own = format!("{MEMBERS}{}", self.id);
        let Some(s3_now) = listed.iter().find(|entry| entry.key == own).map(|entry| entry.last_modified) else {
            return Err(StoreError("this member's own lease is missing from the listing".to_string()));
        };
        let (mut live, mut expired) = (BTreeMap::new(), BTreeMap::new());
        let mut etags = HashMap::new();
        for Listed { key, etag, last_modified } in listed {
            let Some(id) = key.strip_prefix(MEMBERS) else { continue };
            let age = s3_now - last_modified;
            if age <= self.timings.expiry_delta() {
                live.insert(id.to_string(), age);
                etags.insert(id.to_string(), etag);
            } else {
                expired.insert(id.to_string(), age);
            }
        }
        // Lease bodies change only when a member's flakes or claims do: re-read those only.
        self.members.retain(|id, _| live.contains_key(id));
        for (id, etag) in etags {
            if id == self.id || self.members.get(&id).is_some_and(|(known, _)| *known == etag) {
                continue;
            }
            let result = self.store.get(&format!("{MEMBERS}{id}")).await;
            self.count(RequestKind::Get, &result.as_ref().map(|_| true));
            if let Ok(Some(object)) = result
                && let Ok(record) = serde_json::from_slice::<MemberRecord>(&object.body)
            {
                self.members.insert(id, (object.etag, record));
            } else {
                // Its lease changed and the new body is unknown: an old one must not stand in
                // for it (the agreement is then unsure, and no cluster alarm is deleted).
                self.members.remove(&id);
            }
        }
        // Leases long dead are removed by whoever sees them; their claims are free already.
        for (id, age) in &expired {
            if *age > self.timings.expiry_delta() * 4 {
                let result = self.store.delete(&format!("{MEMBERS}{id}")).await;
                self.count(RequestKind::Delete, &result.as_ref().map(|_| true));
            }
        }
        // A lease older than a cycle and some slack missed a renewal: wake when it expires.
        let overdue = chrono::TimeDelta::from_std(self.timings.cycle + Duration::from_secs(3)).unwrap_or_default();
        let expiry = self.timings.expiry_delta();
        self.stale_expires = live
            .iter()
            .filter(|(id, age)| **id != self.id && **age > overdue)
            .filter_map(|(_, age)| (expiry - *age + chrono::TimeDelta::milliseconds(1500)).to_std().ok())
            .min()
            .map(|left| Instant::now() + left);
        self.metrics.cluster_members.set(live.len() as i64);
        Ok(Listing { s3_now, live, expired })
    }

    async fn read_live_members(&mut self, listing: &Listing) -> BTreeMap<String, MemberRecord> {
        let own = self.own_record();
        let mut live: BTreeMap<String, MemberRecord> = listing
            .live
            .keys()
            .filter(|id| **id != self.id)
            .map(|id| (id.clone(), self.members.get(id).map(|(_, record)| record.clone()).unwrap_or_default()))
            .collect();
        live.insert(self.id.clone(), own);
        live
    }

    /// Gives up what it should not hold, takes its share of what nobody holds. True if any
    /// claim changed.
    async fn rebalance(&mut self, listing: &Listing, live: &BTreeMap<String, MemberRecord>) -> bool {
        let mut changed = self.retry_releases().await;
        let gone: Vec<String> = self.held.keys().filter(|flake| !self.local.contains_key(*flake)).cloned().collect();
        for flake in gone {
            changed |= self.release(&flake, "it is no longer a cluster flake here").await;
        }
        let restamp: Vec<(String, String)> = self
            .held
            .iter()
            .filter_map(|(flake, held)| {
                self.local.get(flake).filter(|version| **version != held.version).map(|v| (flake.clone(), v.clone()))
            })
            .collect();
        for (flake, version) in restamp {
            changed |= self.restamp(&flake, &version).await;
        }

        let universe: BTreeSet<&String> = live.values().flat_map(|record| record.flakes.keys()).collect();
        // Exact shares: the first F mod M members (by id) take one more, so shares add up to F.
        let members = live.len().max(1);
        let share_of = |rank: usize| universe.len() / members + usize::from(rank < universe.len() % members);
        let rank = live.keys().position(|id| *id == self.id).unwrap_or(0);
        let share = share_of(rank);
        // Flakes some other live member has room for and could take: only those are given up to
        // spread, and a flake nobody else with room has is taken even above the share. Members
        // whose files differ (a rollout, or members that do not have every flake) then still run
        // every flake, and none is passed back and forth.
        let others_with_room: BTreeSet<&String> = live
            .iter()
            .enumerate()
            .filter(|(rank, (id, record))| **id != self.id && record.claims.len() < share_of(*rank))
            .flat_map(|(_, (_, record))| record.flakes.keys())
            .collect();
        if self.held.len() > share {
            let mut mine: Vec<String> = self.held.keys().filter(|flake| others_with_room.contains(flake)).cloned().collect();
            mine.sort_by_key(|flake| affinity(&self.name, flake));
            let excess = self.held.len() - share;
            for flake in mine.into_iter().take(excess) {
                let why = format!("spreading: {} members share {} flakes, {share} each", live.len(), universe.len());
                changed |= self.release(&flake, &why).await;
            }
        }
        if self.held.len() < share {
            let hinted: BTreeSet<&String> =
                live.iter().filter(|(id, _)| **id != self.id).flat_map(|(_, record)| record.claims.iter()).collect();
            let mut candidates: Vec<String> =
                self.local.keys().filter(|flake| !self.held.contains_key(*flake) && !hinted.contains(flake)).cloned().collect();
            candidates.sort_by_key(|flake| std::cmp::Reverse(affinity(&self.name, flake)));
            for flake in candidates {
                if self.held.len() >= share || !self.trusted() {
                    break;
                }
                changed |= self.acquire(&flake, listing).await;
            }
        }
        let hinted: BTreeSet<&String> =
            live.iter().filter(|(id, _)| **id != self.id).flat_map(|(_, record)| record.claims.iter()).collect();
        // Above its share only with the whole picture: a live lease that could not be read
        // looks like a member with no flakes and no claims, whose flakes would all seem orphans.
        let every_lease_read = listing.live.keys().all(|id| *id == self.id || self.members.contains_key(id));
        let orphans: Vec<String> = self
            .local
            .keys()
            .filter(|flake| !self.held.contains_key(*flake) && !hinted.contains(flake) && !others_with_room.contains(flake))
            .filter(|_| every_lease_read)
            .cloned()
            .collect();
        for flake in orphans {
            if !self.trusted() {
                break;
            }
            changed |= self.acquire(&flake, listing).await;
        }
        self.metrics.cluster_claims_held.set(self.held.len() as i64);
        changed
    }

    fn trusted(&self) -> bool {
        self.trusted_until.is_some_and(|until| Instant::now() < until)
    }

    fn next_write(&mut self) -> String {
        self.writes += 1;
        format!("{}:{}", self.id, self.writes)
    }

    /// Tries to win `flake`'s claim: free, released, or its holder's lease expired by S3's clock.
    async fn acquire(&mut self, flake: &str, listing: &Listing) -> bool {
        let Some(version) = self.local.get(flake).cloned() else { return false };
        let key = format!("{CLAIMS}{flake}");
        let mut known = self.claims.get(flake).cloned();
        // Whether `known` was read in this call. A copy kept from earlier may name a holder
        // that has since released the flake: only flakes no live lease lists reach here, so a
        // copy naming a live holder is read again, once, if that holder's lease changed since
        // the copy was read; or a member that read a lease before its holder listed its new
        // claims would never take them (seen under load: a joining member left with none). An
        // unchanged lease means an unchanged claim, so no request is made for it.
        let mut fresh = false;
        for _attempt in 0..3 {
            let (condition, why) = match &known {
                None => (Condition::Absent, "nobody had claimed it".to_string()),
                Some((etag, record)) => match self.takeable(record, listing) {
                    Some(why) => (Condition::Matches(etag.clone()), why),
                    None if !fresh && self.holder_lease_changed(flake, record) => {
                        let Ok(read) = self.read_claim(flake).await else { return false };
                        (known, fresh) = (read, true);
                        continue;
                    }
                    None => return false,
                },
            };
            let record =
                ClaimRecord { flake: flake.to_string(), holder: Some(self.id.clone()), version: version.clone(), write: self.next_write() };
            let body = serde_json::to_vec(&record).expect("a claim serializes");
            let result = self.store.put(&key, body, condition).await;
            self.count(RequestKind::Put, &result.as_ref().map(|put| *put != Put::Lost));
            match result {
                Ok(Put::Written(etag)) => {
                    self.claims.insert(flake.to_string(), (etag.clone(), record));
                    if !self.trusted() {
                        // Won after trust ran out: it is ours, but only a later, continuous
                        // lease may run it (the claim is re-won then).
                        return false;
                    }
                    let since = self.wall.now();
                    self.gate.hold(flake, Held { version: version.clone(), since });
                    self.held.insert(flake.to_string(), HeldClaim { etag, version });
                    self.metrics.cluster_claim_changes.get_or_create(&ClaimChangeLabels { change: "taken" }).inc();
                    tracing::info!(member = self.id, flake, "took the cluster flake: {why}");
                    return true;
                }
                Ok(Put::Lost) => {
                    let Ok(read) = self.read_claim(flake).await else { return false };
                    (known, fresh) = (read, true);
                }
                Err(error) => {
                    tracing::warn!(member = self.id, flake, "cannot write the claim: {error}");
                    return false;
                }
            }
        }
        false
    }

    /// Reads `flake`'s claim record (kept for the next attempt); `Ok(None)` if there is none. An
    /// unreadable record is one nobody holds (a damaged object must not block the flake forever).
    async fn read_claim(&mut self, flake: &str) -> Result<Option<(String, ClaimRecord)>, StoreError> {
        let result = self.store.get(&format!("{CLAIMS}{flake}")).await;
        self.count(RequestKind::Get, &result.as_ref().map(|_| true));
        let read = result?.map(|object| match serde_json::from_slice::<ClaimRecord>(&object.body) {
            Ok(record) => (object.etag, record),
            Err(_) => (object.etag, ClaimRecord { flake: flake.to_string(), holder: None, version: String::new(), write: String::new() }),
        });
        match &read {
            Some(claim) => self.claims.insert(flake.to_string(), claim.clone()),
            None => self.claims.remove(flake),
        };
        let holder = read.as_ref().and_then(|(_, record)| record.holder.as_deref());
        self.claim_read_at.insert(flake.to_string(), holder.and_then(|holder| self.lease_etag(holder)));
        Ok(read)
    }

    fn lease_etag(&self, member: &str) -> Option<String> {
        self.members.get(member).map(|(etag, _)| etag.clone())
    }

    /// Whether the lease of the member `record` names has changed since this copy was read.
    fn holder_lease_changed(&self, flake: &str, record: &ClaimRecord) -> bool {
        let Some(holder) = record.holder.as_deref() else { return true };
        self.claim_read_at.get(flake).is_none_or(|read_at| *read_at != self.lease_etag(holder))
    }

    /// Why `record`'s claim may be taken now, or `None` if its holder still holds it.
    fn takeable(&self, record: &ClaimRecord, listing: &Listing) -> Option<String> {
        match &record.holder {
            None => Some("it was released".to_string()),
            Some(holder) if *holder == self.id => Some("re-won after this member's lease lapsed".to_string()),
            Some(holder) if listing.live.contains_key(holder) => None,
            Some(holder) => Some(match listing.expired.get(holder) {
                Some(age) => format!("{holder}'s lease expired ({} s old by S3's clock)", age.num_seconds()),
                None => format!("{holder} has left the cluster"),
            }),
        }
    }

    /// Stops running `flake`, then releases its claim for others.
    async fn release(&mut self, flake: &str, why: &str) -> bool {
        // Stop first: from here on no firing of it starts on this member.
        self.gate.drop_claim(flake);
        let Some(held) = self.held.remove(flake) else { return false };
        self.write_release(flake, held.etag, held.version).await;
        self.metrics.cluster_claim_changes.get_or_create(&ClaimChangeLabels { change: "released" }).inc();
        tracing::info!(member = self.id, flake, "gave up the cluster flake: {why}");
        true
    }

    /// Writes `flake`'s claim as nobody's. On an S3 error the flake is kept in `unreleased`
    /// and retried: the claim still names this member, which no longer runs it, and no other
    /// member may take a claim naming a live member, so without the retry nobody would run it.
    async fn write_release(&mut self, flake: &str, etag: String, version: String) {
        let record = ClaimRecord { flake: flake.to_string(), holder: None, version, write: self.next_write() };
        let body = serde_json::to_vec(&record).expect("a claim serializes");
        let result = self.store.put(&format!("{CLAIMS}{flake}"), body, Condition::Matches(etag)).await;
        self.count(RequestKind::Put, &result.as_ref().map(|put| *put != Put::Lost));
        match result {
            Ok(Put::Written(etag)) => {
                self.claims.insert(flake.to_string(), (etag, record));
                self.unreleased.remove(flake);
            }
            // Someone else wrote it since: it is not this member's to release any more.
            Ok(Put::Lost) => {
                self.unreleased.remove(flake);
            }
            Err(error) => {
                tracing::warn!(member = self.id, flake, "cannot write the release of the claim (retried next cycle): {error}");
                self.unreleased.insert(flake.to_string());
            }
        }
    }

    /// Retries the releases that could not be written. True if any was.
    async fn retry_releases(&mut self) -> bool {
        let mut written = false;
        for flake in std::mem::take(&mut self.unreleased) {
            let Some((etag, record)) = self.claims.get(&flake).cloned() else { continue };
            if self.held.contains_key(&flake) || record.holder.as_deref() != Some(self.id.as_str()) {
                continue;
            }
            self.write_release(&flake, etag, record.version).await;
            written |= !self.unreleased.contains(&flake);
        }
        written
    }

    /// Rewrites a held claim for the version this member now has.
    async fn restamp(&mut self, flake: &str, version: &str) -> bool {
        let Some(etag) = self.held.get(flake).map(|held| held.etag.clone()) else { return false };
        let record =
            ClaimRecord { flake: flake.to_string(), holder: Some(self.id.clone()), version: version.to_string(), write: self.next_write() };
        let body = serde_json::to_vec(&record).expect("a claim serializes");
        let result = self.store.put(&format!("{CLAIMS}{flake}"), body, Condition::Matches(etag)).await;
        self.count(RequestKind::Put, &result.as_ref().map(|put| *put != Put::Lost));
        match result {
            Ok(Put::Written(etag)) if self.trusted() => {
                self.claims.insert(flake.to_string(), (etag.clone(), record));
                self.held.insert(flake.to_string(), HeldClaim { etag, version: version.to_string() });
                let since = self.wall.now();
                self.gate.hold(flake, Held { version: version.to_string(), since });
                tracing::info!(member = self.id, flake, version, "its flake file changed: the claim now names the new version");
                true
            }
            _ => {
                self.gate.drop_claim(flake);
                self.held.remove(flake);
                self.metrics.cluster_claim_changes.get_or_create(&ClaimChangeLabels { change: "lost" }).inc();
                tracing::warn!(member = self.id, flake, "lost the cluster flake: its claim could not be rewritten for the new version");
                true
            }
        }
    }

    /// Stops running cluster flakes, releases them and removes the lease, so others take over
    /// at once instead of after the lease expires.
    async fn leave(&mut self) {
        let trusted = self.trusted();
        self.gate.distrust();
        if trusted {
            let held: Vec<String> = self.held.keys().cloned().collect();
            for flake in held {
                self.release(&flake, "this member is stopping").await;
            }
        }
        let result = self.store.delete(&format!("{MEMBERS}{}", self.id)).await;
        self.count(RequestKind::Delete, &result.as_ref().map(|_| true));
        tracing::info!(member = self.id, "left the cluster");
    }

    fn count(&self, kind: RequestKind, result: &Result<bool, &StoreError>) {
        let result = match result {
            Ok(true) => "ok",
            Ok(false) => "lost",
            Err(_) => "error",
        };
        self.metrics.cluster_s3_requests.get_or_create(&S3RequestLabels { kind: kind.as_str(), result }).inc();
    }

    fn publish_view(&self, listing: &Listing) {
        let mut members = Vec::new();
        let mut flakes: BTreeMap<String, FlakeView> = BTreeMap::new();
        for (id, age) in listing.live.iter().chain(listing.expired.iter()) {
            let live = listing.live.contains_key(id);
            let record = if *id == self.id { Some(self.own_record()) } else { self.members.get(id).map(|(_, record)| record.clone()) };
            let record = record.unwrap_or_default();
            if live {
                for (flake, version) in &record.flakes {
                    let view = flakes.entry(flake.clone()).or_insert_with(|| FlakeView { name: flake.clone(), ..FlakeView::default() });
                    view.versions.entry(version.clone()).or_default().push(id.clone());
                }
                for flake in &record.claims {
                    flakes.entry(flake.clone()).or_insert_with(|| FlakeView { name: flake.clone(), ..FlakeView::default() }).holder =
                        Some(id.clone());
                }
            }
            members.push(MemberView {
                id: id.clone(),
                name: record.member,
                live,
                lease_age_seconds: age.num_seconds(),
                claims: record.claims.len(),
            });
        }
        self.view.send_replace(Arc::new(ClusterView {
            location: self.location.clone(),
            member: self.id.clone(),
            listed_at: Some(listing.s3_now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
            members,
            flakes: flakes.into_values().collect(),
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::memory::MemoryStore;

    fn member(store: &MemoryStore, name: &str, flakes: &BTreeMap<String, String>) -> Member<MemoryStore> {
        let (view, _) = watch::channel(Arc::new(ClusterView::default()));
        let mut member = Member::new(
            store.handle(),
            name.to_string(),
            Timings::default(),
            Arc::new(Gate::default()),
            Arc::new(Metrics::new()),
            view,
            "s3://test/".to_string(),
        );
        member.local = flakes.clone();
        member
    }

    /// flake-00 to flake-29, all at version v1.
    fn thirty_flakes() -> BTreeMap<String, String> {
        (0..30).map(|index| (format!("flake-{index:02}"), "v1".to_string())).collect()
    }

    /// A joining member that read a lease before its holder listed its new claims tries them
    /// all, loses, and keeps copies naming that holder. When the holder later releases some for
    /// spreading, the joiner must take them, not trust its old copies forever.
    #[tokio::test(start_paused = true)]
    async fn a_joiner_that_read_a_lease_too_early_still_takes_its_share_once_released() {
        let store = MemoryStore::new(Utc::now());
        let flakes = thirty_flakes();
        let mut first = member(&store, "a", &flakes);
        assert!(first.cycle().await);
        assert_eq!(first.held.len(), 30, "alone, it takes every flake");

        // Its lease as it was before it listed the claims just won.
        let early = MemberRecord { member: "a".to_string(), flakes: flakes.clone(), claims: BTreeSet::new(), ..MemberRecord::default() };
        store.put(&format!("{MEMBERS}{}", first.id), serde_json::to_vec(&early).unwrap(), Condition::None).await.unwrap();
        let mut joiner = member(&store, "b", &flakes);
        assert!(joiner.cycle().await);
        assert_eq!(joiner.held.len(), 0, "every claim is a's");

        tokio::time::advance(Duration::from_secs(30)).await;
        assert!(first.cycle().await);
        assert_eq!(first.held.len(), 15, "two members: a keeps its share and releases the rest");
        assert!(joiner.cycle().await);
        assert_eq!(joiner.held.len(), 15, "the joiner takes what a released");
        assert!(first.held.keys().all(|flake| !joiner.held.contains_key(flake)), "no flake is held twice");
    }

    /// Two members, 15 flakes each.
    async fn steady_pair(store: &MemoryStore, flakes: &BTreeMap<String, String>) -> (Member<MemoryStore>, Member<MemoryStore>) {
        let mut first = member(store, "a", flakes);
        let mut second = member(store, "b", flakes);
        for _ in 0..3 {
            assert!(first.cycle().await && second.cycle().await);
            tokio::time::advance(Duration::from_secs(30)).await;
        }
        assert_eq!((first.held.len(), second.held.len()), (15, 15));
        (first, second)
    }

    /// A live lease that cannot be read makes its member look like one with no flakes and no
    /// claims. Its flakes must not be tried as orphans: that cost two requests per flake per
    /// cycle, however many flakes (the bound is 4 requests a minute per member).
    #[tokio::test(start_paused = true)]
    async fn an_unreadable_lease_costs_no_request_per_flake() {
        let store = MemoryStore::new(Utc::now());
        let flakes = thirty_flakes();
        let (mut first, second) = steady_pair(&store, &flakes).await;
        store.put(&format!("{MEMBERS}{}", second.id), b"not a lease".to_vec(), Condition::None).await.unwrap();
        // Two cycles while that lease is live (it expires 50 s after it was written).
        for _ in 0..2 {
            let before = first.store.requests();
            assert!(first.cycle().await);
            // The renewal, the listing and one read of the changed lease.
            assert_eq!(first.store.requests() - before, 3, "no request per flake");
            assert_eq!(first.held.len(), 15);
            tokio::time::advance(Duration::from_secs(20)).await;
        }
    }

    /// A release whose write failed leaves the claim naming a member that no longer runs the
    /// flake; no other member may take it while that member is live, and the member that gave
    /// it up does not take it back while another member has room for it. It is written again at
    /// the next cycle, and the flake runs elsewhere.
    #[tokio::test(start_paused = true)]
    async fn a_release_that_could_not_be_written_is_retried_and_the_flake_runs_elsewhere() {
        let store = MemoryStore::new(Utc::now());
        let flakes = thirty_flakes();
        let mut first = member(&store, "a", &flakes);
        assert!(first.cycle().await);
        let mut second = member(&store, "b", &flakes);
        assert!(second.cycle().await);
        assert_eq!((first.held.len(), second.held.len()), (30, 0));
        // a gives one flake up to spread, and that release is not written.
        let flake = first.held.keys().next().unwrap().clone();
        first.store.cut_off(true);
        assert!(first.release(&flake, "spreading").await);
        first.store.cut_off(false);
        assert!(!first.gate.may_run(&flake, "v1", Utc::now() + chrono::TimeDelta::hours(1)), "a released flake stops at once");
        for _ in 0..3 {
            tokio::time::advance(Duration::from_secs(20)).await;
            assert!(first.cycle().await && second.cycle().await);
        }
        assert!(second.held.contains_key(&flake) || first.held.contains_key(&flake), "{flake} runs somewhere");
        assert_eq!((first.held.len(), second.held.len()), (15, 15));
        assert!(first.unreleased.is_empty());
    }

    /// A listing that fails leaves the last picture out of date: it must say so, or a member
    /// could delete a flake's alarms on a picture older than a member that has the flake again.
    #[tokio::test(start_paused = true)]
    async fn a_failed_listing_makes_the_picture_unsure() {
        let store = MemoryStore::new(Utc::now());
        let flakes: BTreeMap<String, String> = (0..4).map(|index| (format!("flake-{index:02}"), "v1".to_string())).collect();
        let (agreement, seen) = watch::channel(Arc::new(Agreement::default()));
        let mut only = member(&store, "a", &flakes).with_agreement(agreement);
        assert!(only.cycle().await);
        assert_eq!(seen.borrow().unsure, None, "every live lease was read");
        assert!(only.renew().await);
        only.store.cut_off(true);
        assert!(!only.check().await);
        assert_eq!(seen.borrow().unsure.as_deref(), Some("the members could not be listed"));
        only.store.cut_off(false);
        tokio::time::advance(Duration::from_secs(30)).await;
        assert!(only.cycle().await);
        assert_eq!(seen.borrow().unsure, None, "listed again");
    }
}
