//! The publishing task: accepts datapoints, spools them, batches them per (region, namespace),
//! sends them paced, retries with backoff, and isolates rejected datums.
//!
//! Timeline of a datapoint: accepted -> on disk within `commit_window` (one append and one fsync
//! for everything that arrived meanwhile) -> sent when its queue holds a full batch of 1000 or
//! `flush_interval` after it arrived (later while a firing's runs hold partial batches back, see
//! [`super::hold`]) -> acknowledged in the spool once CloudWatch accepted it.
//! While CloudWatch is unreachable, queues keep growing (bounded by the spool's size limit) and
//! drain in full batches when it returns. Each queue's requests follow [`super::queue::State`].
//!
//! Aggregated datapoints (`flakeAggregate`) are spooled the same way, then wait in
//! [`super::window::Windows`] until their window has closed, and go to their queue together; the
//! batcher folds datapoints of one series and timestamp into one datum ([`super::fold`]).
//!
//! If the spool cannot be written (a full disk), datapoints are still sent, without a durable
//! copy: the gauge `snowflake_spool_write_failing` is 1 and `/healthz` says so until a write works
//! again, and a stop counts what it loses apart from what stays in the spool.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::datapoint::{Datapoint, QueueKey};
use super::hold::{Hold, Holds};
use super::pace::Pace;
use super::queue::{MAX_DATUMS, Queue, Queued, Settled};
use super::send::{SendOutcome, send_isolating};
use super::spool::{Dropped, Spool, SpoolHandle};
use super::window::Windows;
use crate::cloudwatch::CloudWatch;
use crate::flakelog::{Event, FlakeLogs};
use crate::metrics::Metrics;
use crate::outcome::DropReason;

const LIMIT_CHECK_INTERVAL: Duration = Duration::from_secs(60);
/// Long enough for a firing of 1,000 commands on a busy two-core host (about 2 s measured) with
/// room to spare, short next to CloudWatch's one-minute resolution.
pub const DEFAULT_MAX_HOLD: Duration = Duration::from_secs(10);

/// How the publisher batches, paces and stops.
#[derive(Debug, Clone)]
pub struct PublisherConfig {
    /// A queue is sent at the latest this long after its oldest datapoint arrived.
    pub flush_interval: Duration,
    /// PutMetricData requests per second, at most, across all regions and namespaces.
    pub max_put_rate: f64,
    /// Datapoints arriving within this window share one spool append and fsync.
    pub commit_window: Duration,
    /// After the last handle is dropped, how long to keep trying to deliver before exiting
    /// (what is not delivered stays in the spool).
    pub shutdown_timeout: Duration,
    /// While runs hold partial batches back (see [`super::hold`]), a queue is sent at the latest
    /// this long after its oldest datapoint arrived.
    pub max_hold: Duration,
    /// Datapoints the spool could not store (a full disk) wait in memory; beyond this many bytes
    /// (counted as their spool records would take) the oldest are dropped, as the spool drops
    /// its own beyond `--spool-max-bytes`, which sets both.
    pub unspooled_max_bytes: u64,
}

impl Default for PublisherConfig {
    fn default() -> Self {
        PublisherConfig {
            flush_interval: Duration::from_secs(1),
            max_put_rate: 50.0,
            commit_window: Duration::from_millis(50),
            shutdown_timeout: Duration::from_secs(5),
            max_hold: DEFAULT_MAX_HOLD,
            unspooled_max_bytes: 256 * 1024 * 1024,
        }
    }
}

/// Totals since the publisher started.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DrainReport {
    pub delivered: u64,
    pub rejected: u64,
    /// Still waiting (in memory and in the spool) when the report was made.
    pub pending: u64,
    /// Of `pending`, those the spool could not store: a stop loses them.
    pub unspooled: u64,
}

impl DrainReport {
    /// What waits in the spool for the next start.
    pub fn left_in_spool(&self) -> u64 {
        self.pending - self.unspooled
    }
}

enum Message {
    /// Datapoints, and who wants to hear once they are in the spool.
    Points(Vec<Datapoint>, Option<oneshot::Sender<bool>>),
    Drain {
        timeout: Duration,
        reply: oneshot::Sender<DrainReport>,
    },
}

/// Hands datapoints to the publisher. Cheap to clone; the publisher stops when all are dropped.
#[derive(Clone)]
pub struct PublisherHandle {
    tx: mpsc::Sender<Message>,
    holds: Arc<Holds>,
}

impl PublisherHandle {
    /// Holds partial batches back until the returned guard is dropped (see [`super::hold`]).
    pub fn hold(&self) -> Hold {
        Hold::take(&self.holds)
    }

    /// Queues `points`; false if the publisher has stopped.
    pub async fn publish(&self, points: Vec<Datapoint>) -> bool {
        points.is_empty() || self.tx.send(Message::Points(points, None)).await.is_ok()
    }

    /// Queues `points` and returns once they are in the spool (on disk, for the daemon), so a
    /// caller that then reports success never reports a value a crash could still lose.
    pub async fn publish_durably(&self, points: Vec<Datapoint>) -> Accepted {
        if points.is_empty() {
            return Accepted::Durably;
        }
        let (committed, on_disk) = oneshot::channel();
        if self.tx.send(Message::Points(points, Some(committed))).await.is_err() {
            return Accepted::No;
        }
        match on_disk.await {
            Ok(true) => Accepted::Durably,
            Ok(false) => Accepted::WithoutSpool,
            Err(_) => Accepted::No,
        }
    }

    /// Sends everything queued right away, and waits until all is delivered or `timeout` passes.
    pub async fn drain(&self, timeout: Duration) -> DrainReport {
        let (reply, answer) = oneshot::channel();
        if self.tx.send(Message::Drain { timeout, reply }).await.is_err() {
            return DrainReport::default();
        }
        answer.await.unwrap_or_default()
    }
}

/// What became of datapoints handed to [`PublisherHandle::publish_durably`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepted {
    /// In the spool: they survive a crash.
    Durably,
    /// The spool could not store them; they are sent, but a crash before delivery loses them.
    WithoutSpool,
    /// The publisher has stopped; they were not taken.
    No,
}

/// Starts the publisher. `replay` is what a previous run left in the spool, oldest first.
pub fn spawn_publisher<C: CloudWatch>(
    cloudwatch: Arc<C>,
    spool: Box<dyn Spool>,
    replay: super::Replay,
    config: PublisherConfig,
    metrics: Arc<Metrics>,
    logs: Arc<FlakeLogs>,
) -> (PublisherHandle, tokio::task::JoinHandle<DrainReport>) {
    let (tx, rx) = mpsc::channel(4096);
    let holds = Arc::new(Holds::default());
    let mut publisher = Publisher {
        holds: holds.clone(),
        pace: Arc::new(Pace::per_second(config.max_put_rate)),
        cloudwatch,
        spool: SpoolHandle::new(spool),
        config,
        metrics,
        logs,
        unspooled: Vec::new(),
        waiting_for_commit: Vec::new(),
        queues: HashMap::new(),
        windows: Windows::default(),
        in_flight: JoinSet::new(),
        in_flight_keys: HashMap::new(),
        drains: Vec::new(),
        totals: DrainReport::default(),
        next_limit_check: Instant::now(),
        unspooled_added: 0,
        closed_at: None,
    };
    let now = Instant::now();
    for (seq, point) in replay {
        publisher.enqueue(Queued { seq: Some(seq), point, ready_at: now, held_until: now });
    }
    let task = tokio::spawn(publisher.run(rx));
    (PublisherHandle { tx, holds }, task)
}

/// What a send task reports back: the first `count` items of the queue were in the batch, datum
/// `i` of which carried the items `members[i]`.
struct Sent {
    key: QueueKey,
    count: usize,
    members: Vec<Vec<usize>>,
    outcome: SendOutcome,
}

struct Publisher<C> {
    cloudwatch: Arc<C>,
    spool: SpoolHandle,
    config: PublisherConfig,
    metrics: Arc<Metrics>,
    logs: Arc<FlakeLogs>,
    pace: Arc<Pace>,
    holds: Arc<Holds>,
    /// Accepted, not yet on disk, with arrival times.
    unspooled: Vec<(Datapoint, Instant)>,
    /// Told when `unspooled` reaches the spool (true) or could not (false).
    waiting_for_commit: Vec<oneshot::Sender<bool>>,
    queues: HashMap<QueueKey, Queue>,
    /// Spooled aggregated datapoints whose window has not closed yet.
    windows: Windows,
    in_flight: JoinSet<Sent>,
    /// Which queue each send task serves, so a task that fails outright frees its queue.
    in_flight_keys: HashMap<tokio::task::Id, QueueKey>,
    drains: Vec<(Instant, oneshot::Sender<DrainReport>)>,
    totals: DrainReport,
    next_limit_check: Instant,
    /// Bytes of datapoints put in queues without a spool copy since they were last counted: an
    /// upper bound of what they hold now (delivered ones are not subtracted), so they are
    /// counted exactly only once this passes `unspooled_max_bytes`.
    unspooled_added: u64,
    /// When the last handle was dropped; the publisher gives up sending `shutdown_timeout` later.
    closed_at: Option<Instant>,
}

impl<C: CloudWatch> Publisher<C> {
    async fn run(mut self, mut rx: mpsc::Receiver<Message>) -> DrainReport {
        loop {
            let wake = self.next_wake(self.closed_at.is_some() || !self.drains.is_empty());
            tokio::select! {
                message = rx.recv(), if self.closed_at.is_none() => match message {
                    Some(Message::Points(points, committed)) => {
                        let now = Instant::now();
                        self.unspooled.extend(points.into_iter().map(|point| (point, now)));
                        self.waiting_for_commit.extend(committed);
                    }
                    Some(Message::Drain { timeout, reply }) => self.drains.push((Instant::now() + timeout, reply)),
                    None => self.closed_at = Some(Instant::now()),
                },
                Some(joined) = self.in_flight.join_next_with_id(), if !self.in_flight.is_empty() => match joined {
                    Ok((id, sent)) => {
                        self.in_flight_keys.remove(&id);
                        self.finish(sent).await;
                    }
                    Err(error) => self.lost(error),
                },
                _ = sleep_until(wake) => {}
                _ = self.holds.all_released() => {}
            }
            let urgent = self.closed_at.is_some() || !self.drains.is_empty();
            self.commit(urgent).await;
            self.release_windows(urgent);
            self.check_limits().await;
            self.start_sends(urgent).await;
            self.answer_drains();
            if let Some(closed) = self.closed_at
                && (self.is_idle() || self.all_failing() || Instant::now() >= closed + self.config.shutdown_timeout)
            {
                break;
            }
        }
        self.commit(true).await;
        let report = self.report();
        if report.left_in_spool() > 0 {
            tracing::info!(
                pending = report.left_in_spool(),
                "publisher stopped; undelivered datapoints stay in the spool for the next start"
            );
        }
        if report.unspooled > 0 {
            tracing::error!(lost = report.unspooled, "publisher stopped; undelivered datapoints the spool could not store are lost");
        }
        report
    }

    /// A send task panicked or was cancelled: its batch stays queued, and its queue backs off.
    fn lost(&mut self, error: tokio::task::JoinError) {
        tracing::error!("a PutMetricData task failed: {error}; its datapoints stay queued");
        if let Some(queue) = self.in_flight_keys.remove(&error.id()).and_then(|key| self.queues.get_mut(&key)) {
            queue.lost();
        }
    }

    /// The next moment something becomes due; `None` if nothing will without new input.
    fn next_wake(&self, urgent: bool) -> Option<Instant> {
        let now = Instant::now();
        let mut wake: Option<Instant> = Some(self.next_limit_check);
        let mut consider = |at: Instant| wake = Some(wake.map_or(at, |current| current.min(at)));
        if let Some((_, arrived)) = self.unspooled.first() {
            let full = self.unspooled.len() >= MAX_DATUMS;
            consider(if urgent || full { now } else { *arrived + self.config.commit_window });
        }
        let held = self.holds.held();
        for at in self.queues.values().filter_map(|queue| queue.wake_at(urgent, held, now)) {
            consider(at);
        }
        if let Some(release_ms) = self.windows.next_release_ms() {
            let wait_ms = release_ms.saturating_sub(Utc::now().timestamp_millis()).max(0);
            consider(now + Duration::from_millis(wait_ms as u64));
        }
        for (deadline, _) in &self.drains {
            consider(*deadline);
        }
        if let Some(closed) = self.closed_at {
            consider(closed + self.config.shutdown_timeout);
        }
        wake
    }

    /// Writes what arrived to the spool: one append and one fsync for all of it.
    async fn commit(&mut self, urgent: bool) {
        let Some((_, first_arrival)) = self.unspooled.first() else { return };
        let due = urgent || self.unspooled.len() >= MAX_DATUMS || Instant::now() >= *first_arrival + self.config.commit_window;
        if !due {
            return;
        }
        let batch = std::mem::take(&mut self.unspooled);
        let points: Vec<Datapoint> = batch.iter().map(|(point, _)| point.clone()).collect();
        let first_seq = match self.spool.append(points).await {
            Ok(first) => Some(first),
            Err(error) => {
                tracing::error!("cannot write to the spool, sending {} datapoint(s) without a durable copy: {error}", batch.len());
                None
            }
        };
        self.metrics.spool_write_failing.set(i64::from(first_seq.is_none()));
        for (index, (point, arrived)) in batch.into_iter().enumerate() {
            let seq = first_seq.map(|first| first + index as u64);
            if seq.is_none() {
                self.unspooled_added += record_bytes(&point);
            }
            self.enqueue(Queued { seq, point, ready_at: arrived + self.config.flush_interval, held_until: arrived + self.config.max_hold });
        }
        if self.unspooled_added > self.config.unspooled_max_bytes {
            self.bound_unspooled();
        }
        for committed in std::mem::take(&mut self.waiting_for_commit) {
            let _ = committed.send(first_seq.is_some());
        }
        // The size bound is checked right after the spool grew.
        self.next_limit_check = Instant::now();
        self.update_spool_gauges().await;
    }

    /// Keeps the datapoints waiting without a spool copy under `unspooled_max_bytes`, dropping
    /// the oldest (down to 90% of it, so this runs once per tenth of the bound, not per commit).
    /// Without this, a full disk during an outage grew memory without bound (issue 22).
    fn bound_unspooled(&mut self) {
        let limit = self.config.unspooled_max_bytes;
        let mut sizes: Vec<(Instant, u64)> = Vec::new();
        for queue in self.queues.values() {
            let sendable = queue.items.iter().skip(queue.in_flight());
            sizes.extend(sendable.filter(|item| item.seq.is_none()).map(|item| (item.ready_at, record_bytes(&item.point))));
        }
        sizes.extend(self.windows.iter().filter(|item| item.seq.is_none()).map(|item| (item.ready_at, record_bytes(&item.point))));
        let total: u64 = sizes.iter().map(|(_, bytes)| bytes).sum();
        self.unspooled_added = total;
        if total <= limit {
            return;
        }
        sizes.sort_unstable_by_key(|(ready_at, _)| *ready_at);
        let target = limit - limit / 10;
        // Dropped: everything that arrived before `cutoff`, and `at_cutoff` of what arrived at
        // it (one commit's datapoints share an arrival time).
        let mut left = total;
        let mut cutoff = None;
        let mut at_cutoff = 0u64;
        for (ready_at, bytes) in &sizes {
            if left <= target {
                break;
            }
            left -= bytes;
            if cutoff != Some(*ready_at) {
                (cutoff, at_cutoff) = (Some(*ready_at), 0);
            }
            at_cutoff += 1;
        }
        let Some(cutoff) = cutoff else { return };
        let mut dropped = 0u64;
        let mut old_unspooled = |item: &Queued| {
            let drop = item.seq.is_none()
                && (item.ready_at < cutoff
                    || (item.ready_at == cutoff && at_cutoff > 0 && {
                        at_cutoff -= 1;
                        true
                    }));
            dropped += u64::from(drop);
            drop
        };
        for queue in self.queues.values_mut() {
            // Items being sent stay: their outcome will come back for them.
            let keep_front = queue.in_flight();
            let mut index = 0;
            queue.items.retain(|item| {
                index += 1;
                !(index > keep_front && old_unspooled(item))
            });
        }
        self.windows.retain(|item| !old_unspooled(item));
        self.unspooled_added = left;
        tracing::warn!(count = dropped, held_in_memory = true, "dropped the oldest spooled datapoints to stay under --spool-max-bytes");
        self.metrics.spool_drop(DropReason::Size, dropped);
    }

    /// Into its queue, or, if aggregated, to wait for its window.
    fn enqueue(&mut self, queued: Queued) {
        match queued.point.window_end_ms() {
            Some(window_end_ms) => self.windows.hold(queued, window_end_ms),
            None => self.queues.entry(queued.point.series.queue_key()).or_default().items.push_back(queued),
        }
    }

    /// Moves the values of closed windows (of all windows, if `urgent`) to their queues, due now.
    fn release_windows(&mut self, urgent: bool) {
        if self.windows.is_empty() {
            return;
        }
        let now = Instant::now();
        for mut queued in self.windows.release(Utc::now().timestamp_millis(), urgent) {
            queued.ready_at = now;
            self.queues.entry(queued.point.series.queue_key()).or_default().items.push_back(queued);
        }
    }

    /// Applies the spool's age and size limits after every commit, and once a minute.
    async fn check_limits(&mut self) {
        let now = Instant::now();
        if now < self.next_limit_check {
            return;
        }
        self.next_limit_check = now + LIMIT_CHECK_INTERVAL;
        let dropped = self.spool.enforce_limits(Utc::now().timestamp_millis()).await;
        self.forget_dropped(&dropped).await;
    }

    async fn forget_dropped(&mut self, dropped: &Dropped) {
        if dropped.is_empty() {
            return;
        }
        if dropped.age_count > 0 {
            tracing::warn!(count = dropped.age_count, "dropped spooled datapoints older than 14 days: CloudWatch no longer accepts them");
            self.metrics.spool_drop(DropReason::Age, dropped.age_count);
        }
        if dropped.size_count > 0 {
            tracing::warn!(count = dropped.size_count, "dropped the oldest spooled datapoints to stay under --spool-max-bytes");
            self.metrics.spool_drop(DropReason::Size, dropped.size_count);
        }
        self.windows.retain(|item| item.seq.is_none_or(|seq| !dropped.contains(seq)));
        for queue in self.queues.values_mut() {
            // Items being sent stay: their outcome will be acknowledged, which is harmless.
            let keep_front = queue.in_flight();
            let mut index = 0;
            queue.items.retain(|item| {
                index += 1;
                index <= keep_front || item.seq.is_none_or(|seq| !dropped.contains(seq))
            });
        }
        self.update_spool_gauges().await;
    }

    /// Starts a request for every queue that is due and neither sending nor backing off.
    async fn start_sends(&mut self, urgent: bool) {
        let now = Instant::now();
        let now_ms = Utc::now().timestamp_millis();
        let held = self.holds.held();
        let mut expired: Vec<Queued> = Vec::new();
        for (key, queue) in self.queues.iter_mut() {
            if !queue.may_send(now) {
                continue;
            }
            while queue.items.front().is_some_and(|item| item.point.is_too_old(now_ms)) {
                expired.extend(queue.items.pop_front());
            }
            if queue.items.is_empty() {
                queue.idle();
                continue;
            }
            if !queue.is_due(urgent, held, now) {
                continue;
            }
            let batch = queue.begin_send(&key.1);
            let (cloudwatch, pace, metrics, task_key) = (self.cloudwatch.clone(), self.pace.clone(), self.metrics.clone(), key.clone());
            let task = self.in_flight.spawn(async move {
                let outcome = send_isolating(cloudwatch.as_ref(), &pace, &metrics, &task_key.0, &task_key.1, &batch.data).await;
                Sent { key: task_key, count: batch.taken, members: batch.members, outcome }
            });
            self.in_flight_keys.insert(task.id(), key.clone());
        }
        if !expired.is_empty() {
            for item in &expired {
                self.log_dropped(&item.point, "it is older than the 14 days CloudWatch accepts").await;
            }
            self.metrics.spool_drop(DropReason::Age, expired.len() as u64);
            self.ack(expired.iter().filter_map(|item| item.seq).collect()).await;
        }
    }

    /// Takes a finished request's outcome: acknowledge what is done, keep the rest at the front.
    async fn finish(&mut self, sent: Sent) {
        let Some(queue) = self.queues.get_mut(&sent.key) else { return };
        let batch: Vec<Queued> = queue.items.drain(..sent.count.min(queue.items.len())).collect();
        let mut done = vec![false; batch.len()];
        let mut acks = Vec::with_capacity(batch.len());
        // Outcomes are per datum; a folded datum's items share its outcome.
        let members_of = |datum: usize| sent.members[datum].iter().copied().filter(|&index| index < batch.len());
        let mut delivered = 0;
        for &datum in &sent.outcome.delivered {
            for index in members_of(datum) {
                done[index] = true;
                acks.extend(batch[index].seq);
                delivered += 1;
            }
        }
        let mut rejected = Vec::new();
        for (datum, message) in &sent.outcome.rejected {
            for index in members_of(*datum) {
                done[index] = true;
                acks.extend(batch[index].seq);
                rejected.push((batch[index].point.clone(), message.clone()));
            }
        }
        for (item, _) in batch.into_iter().zip(&done).filter(|(_, done)| !**done).collect::<Vec<_>>().into_iter().rev() {
            queue.items.push_front(item);
        }

        let (region, namespace) = &sent.key;
        let waiting = queue.items.len();
        match (queue.settle(sent.outcome.failure.is_some()), &sent.outcome.failure) {
            (Settled::Failed { first_failure: true, .. }, Some(error)) => {
                tracing::warn!(
                    region,
                    namespace,
                    waiting,
                    "PutMetricData failed, retrying with backoff; datapoints wait in the spool: {error}"
                );
            }
            (Settled::Failed { retry_in, .. }, Some(error)) => {
                tracing::debug!(region, namespace, waiting, retry_in = ?retry_in, "PutMetricData failed again: {error}");
            }
            (Settled::Delivered { recovered: true }, _) => {
                tracing::info!(region, namespace, backlog = waiting, "PutMetricData works again; sending the backlog");
            }
            _ => {}
        }
        self.totals.delivered += delivered as u64;
        self.totals.rejected += rejected.len() as u64;
        for (point, message) in &rejected {
            self.metrics.datapoints_rejected.inc();
            self.log_dropped(point, &format!("CloudWatch rejected it: {message}")).await;
        }
        self.ack(acks).await;
    }

    async fn ack(&mut self, seqs: Vec<u64>) {
        if seqs.is_empty() {
            return;
        }
        if let Err(error) = self.spool.ack(seqs).await {
            // Only costs duplicates after a restart (at-least-once), so a warning is enough.
            tracing::warn!("cannot record delivered datapoints in the spool: {error}");
        }
        self.update_spool_gauges().await;
    }

    async fn log_dropped(&self, point: &Datapoint, reason: &str) {
        let event = Event::Dropped { value: point.value, timestamp_ms: point.timestamp_ms, reason };
        self.logs.record(&point.series.flake, event).await;
    }

    fn answer_drains(&mut self) {
        if self.drains.is_empty() {
            return;
        }
        let idle = self.is_idle();
        let now = Instant::now();
        let report = self.report();
        let (due, waiting): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.drains).into_iter().partition(|(deadline, _)| idle || *deadline <= now);
        self.drains = waiting;
        for (_, reply) in due {
            let _ = reply.send(report);
        }
    }

    /// Nothing in flight, and every queue with data is backing off after failures: CloudWatch is
    /// unreachable, so waiting longer at shutdown gains nothing (the data stays in the spool).
    fn all_failing(&self) -> bool {
        self.unspooled.is_empty()
            && self.windows.is_empty()
            && self.in_flight.is_empty()
            && self.queues.values().filter(|queue| !queue.items.is_empty()).all(Queue::is_failing)
    }

    fn is_idle(&self) -> bool {
        self.unspooled.is_empty()
            && self.windows.is_empty()
            && self.in_flight.is_empty()
            && self.queues.values().all(|queue| queue.items.is_empty())
    }

    fn report(&self) -> DrainReport {
        let queued: usize = self.queues.values().map(|queue| queue.items.len()).sum::<usize>() + self.windows.len();
        let queued_unspooled: usize =
            self.queues.values().map(|queue| queue.items.iter().filter(|item| item.seq.is_none()).count()).sum::<usize>()
                + self.windows.iter().filter(|item| item.seq.is_none()).count();
        let unspooled = (self.unspooled.len() + queued_unspooled) as u64;
        DrainReport { pending: (self.unspooled.len() + queued) as u64, unspooled, ..self.totals }
    }

    async fn update_spool_gauges(&self) {
        let stats = self.spool.stats().await;
        self.metrics.spool_bytes.set(stats.bytes as i64);
        self.metrics.spool_datapoints.set(stats.pending as i64);
        // Each queue and the held windows are oldest first (the spool replays in order), so
        // their fronts are enough: no walk over every waiting datapoint.
        let oldest = self
            .queues
            .values()
            .filter_map(|queue| queue.items.front().map(|item| item.point.timestamp_ms))
            .chain(self.windows.iter().next().map(|item| item.point.timestamp_ms))
            .chain(self.unspooled.first().map(|(point, _)| point.timestamp_ms))
            .min();
        self.metrics.publishing.set_oldest_undelivered(oldest);
    }
}

/// About what `point`'s spool record takes: its fixed fields and framing, and its series' text.
fn record_bytes(point: &Datapoint) -> u64 {
    const FIXED: usize = 120;
    let series = &point.series;
    let text = series.flake.len() + series.region.len() + series.namespace.len() + series.metric_name.len() + series.unit.len();
    let dimensions: usize = series.dimensions.iter().map(|(name, value)| name.len() + value.len() + 8).sum();
    (FIXED + text + dimensions) as u64
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
