//! The publishing task: accepts datapoints, spools them, batches them per (region, namespace),
//! sends them paced, retries with backoff, and isolates rejected datums.
//!
//! Timeline of a datapoint: accepted -> on disk within `commit_window` (one append and one fsync
//! for everything that arrived meanwhile) -> sent when its queue holds a full batch of 1000 or
//! `flush_interval` after it arrived -> acknowledged in the spool once CloudWatch accepted it.
//! While CloudWatch is unreachable, queues keep growing (bounded by the spool's size limit) and
//! drain in full batches when it returns.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use chrono::{SecondsFormat, Utc};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::datapoint::{Datapoint, QueueKey};
use super::pace::Pace;
use super::send::{SendOutcome, send_isolating};
use super::spool::{Dropped, Spool};
use crate::cloudwatch::CloudWatch;
use crate::flakelog::FlakeLogs;
use crate::metrics::Metrics;

/// PutMetricData's limits.
const MAX_DATUMS: usize = 1000;
const MAX_REQUEST_BYTES: usize = 1_000_000;
/// CloudWatch does not accept datapoints older than two weeks.
pub const MAX_AGE: Duration = Duration::from_secs(14 * 24 * 3600);
const LIMIT_CHECK_INTERVAL: Duration = Duration::from_secs(60);
const BACKOFF_MIN: Duration = Duration::from_millis(250);
/// With jitter, retries come at most 20 s apart: an outage ends, delivery resumes promptly.
const BACKOFF_MAX: Duration = Duration::from_secs(10);

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
}

impl Default for PublisherConfig {
    fn default() -> Self {
        PublisherConfig {
            flush_interval: Duration::from_secs(1),
            max_put_rate: 50.0,
            commit_window: Duration::from_millis(50),
            shutdown_timeout: Duration::from_secs(5),
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
}

impl PublisherHandle {
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
    let mut publisher = Publisher {
        pace: Arc::new(Pace::per_second(config.max_put_rate)),
        cloudwatch,
        spool: Arc::new(Mutex::new(spool)),
        config,
        metrics,
        logs,
        unspooled: Vec::new(),
        waiting_for_commit: Vec::new(),
        queues: HashMap::new(),
        in_flight: JoinSet::new(),
        in_flight_keys: HashMap::new(),
        drains: Vec::new(),
        totals: DrainReport::default(),
        next_limit_check: Instant::now(),
        closed_at: None,
    };
    let now = Instant::now();
    for (seq, point) in replay {
        publisher.enqueue(Queued { seq: Some(seq), point, ready_at: now });
    }
    let task = tokio::spawn(publisher.run(rx));
    (PublisherHandle { tx }, task)
}

/// A spooled datapoint waiting in its queue.
struct Queued {
    /// `None` if the spool could not store it (it is still sent, just not durably).
    seq: Option<u64>,
    point: Datapoint,
    ready_at: Instant,
}

#[derive(Default)]
struct Queue {
    items: VecDeque<Queued>,
    sending: bool,
    retry_at: Option<Instant>,
    /// Present while requests for this queue fail.
    backoff: Option<ExponentialBackoff>,
}

/// What a send task reports back: the first `count` items of the queue were in the batch.
struct Sent {
    key: QueueKey,
    count: usize,
    outcome: SendOutcome,
}

struct Publisher<C> {
    cloudwatch: Arc<C>,
    spool: Arc<Mutex<Box<dyn Spool>>>,
    config: PublisherConfig,
    metrics: Arc<Metrics>,
    logs: Arc<FlakeLogs>,
    pace: Arc<Pace>,
    /// Accepted, not yet on disk, with arrival times.
    unspooled: Vec<(Datapoint, Instant)>,
    /// Told when `unspooled` reaches the spool (true) or could not (false).
    waiting_for_commit: Vec<oneshot::Sender<bool>>,
    queues: HashMap<QueueKey, Queue>,
    in_flight: JoinSet<Sent>,
    /// Which queue each send task serves, so a task that fails outright frees its queue.
    in_flight_keys: HashMap<tokio::task::Id, QueueKey>,
    drains: Vec<(Instant, oneshot::Sender<DrainReport>)>,
    totals: DrainReport,
    next_limit_check: Instant,
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
            }
            let urgent = self.closed_at.is_some() || !self.drains.is_empty();
            self.commit(urgent).await;
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
        if report.pending > 0 {
            tracing::info!(pending = report.pending, "publisher stopped; undelivered datapoints stay in the spool for the next start");
        }
        report
    }

    /// A send task panicked or was cancelled: its batch stays queued, and its queue backs off.
    fn lost(&mut self, error: tokio::task::JoinError) {
        tracing::error!("a PutMetricData task failed: {error}; its datapoints stay queued");
        if let Some(queue) = self.in_flight_keys.remove(&error.id()).and_then(|key| self.queues.get_mut(&key)) {
            queue.sending = false;
            queue.retry_at = Some(Instant::now() + BACKOFF_MAX);
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
        for queue in self.queues.values().filter(|queue| !queue.sending) {
            if let Some(retry_at) = queue.retry_at {
                consider(retry_at);
            } else if let Some(front) = queue.items.front() {
                consider(if urgent || queue.items.len() >= MAX_DATUMS { now } else { front.ready_at });
            }
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
        let spool = self.spool.clone();
        let appended = tokio::task::spawn_blocking(move || spool.lock().unwrap_or_else(|p| p.into_inner()).append(&points)).await;
        let first_seq = match appended {
            Ok(Ok(first)) => Some(first),
            Ok(Err(error)) => {
                tracing::error!("cannot write to the spool, sending {} datapoint(s) without a durable copy: {error}", batch.len());
                None
            }
            Err(error) => {
                tracing::error!("spool write did not finish: {error}");
                None
            }
        };
        for (index, (point, arrived)) in batch.into_iter().enumerate() {
            let seq = first_seq.map(|first| first + index as u64);
            self.enqueue(Queued { seq, point, ready_at: arrived + self.config.flush_interval });
        }
        for committed in std::mem::take(&mut self.waiting_for_commit) {
            let _ = committed.send(first_seq.is_some());
        }
        // The size bound is checked right after the spool grew.
        self.next_limit_check = Instant::now();
        self.update_spool_gauges();
    }

    fn enqueue(&mut self, queued: Queued) {
        self.queues.entry(queued.point.series.queue_key()).or_default().items.push_back(queued);
    }

    /// Applies the spool's age and size limits after every commit, and once a minute.
    async fn check_limits(&mut self) {
        let now = Instant::now();
        if now < self.next_limit_check {
            return;
        }
        self.next_limit_check = now + LIMIT_CHECK_INTERVAL;
        let spool = self.spool.clone();
        let now_ms = Utc::now().timestamp_millis();
        let Ok(dropped) = tokio::task::spawn_blocking(move || spool.lock().unwrap_or_else(|p| p.into_inner()).enforce_limits(now_ms)).await
        else {
            return;
        };
        self.forget_dropped(&dropped);
    }

    fn forget_dropped(&mut self, dropped: &Dropped) {
        if dropped.is_empty() {
            return;
        }
        if dropped.age_count > 0 {
            tracing::warn!(count = dropped.age_count, "dropped spooled datapoints older than 14 days: CloudWatch no longer accepts them");
            self.metrics.spool_drop("age", dropped.age_count);
        }
        if dropped.size_count > 0 {
            tracing::warn!(count = dropped.size_count, "dropped the oldest spooled datapoints to stay under --spool-max-bytes");
            self.metrics.spool_drop("size", dropped.size_count);
        }
        for queue in self.queues.values_mut() {
            // Items being sent stay: their outcome will be acknowledged, which is harmless.
            let keep_front = if queue.sending { queue.items.len().min(MAX_DATUMS) } else { 0 };
            let mut index = 0;
            queue.items.retain(|item| {
                index += 1;
                index <= keep_front || item.seq.is_none_or(|seq| !dropped.contains(seq))
            });
        }
        self.update_spool_gauges();
    }

    /// Starts a request for every queue that is due and not already sending or backing off.
    async fn start_sends(&mut self, urgent: bool) {
        let now = Instant::now();
        let oldest_accepted = Utc::now().timestamp_millis() - MAX_AGE.as_millis() as i64;
        let mut expired: Vec<Queued> = Vec::new();
        for (key, queue) in self.queues.iter_mut() {
            if queue.sending || queue.retry_at.is_some_and(|at| at > now) {
                continue;
            }
            while queue.items.front().is_some_and(|item| item.point.timestamp_ms < oldest_accepted) {
                expired.extend(queue.items.pop_front());
            }
            let Some(front) = queue.items.front() else {
                queue.retry_at = None;
                continue;
            };
            let due = urgent || queue.retry_at.is_some() || queue.items.len() >= MAX_DATUMS || front.ready_at <= now;
            if !due {
                continue;
            }
            queue.retry_at = None;
            let mut bytes = key.1.len() + 256;
            let mut data = Vec::with_capacity(queue.items.len().min(MAX_DATUMS));
            for item in queue.items.iter().take(MAX_DATUMS) {
                let size = item.point.estimated_bytes();
                if !data.is_empty() && bytes + size > MAX_REQUEST_BYTES {
                    break;
                }
                bytes += size;
                data.push(item.point.datum());
            }
            queue.sending = true;
            let (cloudwatch, pace, metrics, task_key) = (self.cloudwatch.clone(), self.pace.clone(), self.metrics.clone(), key.clone());
            let task = self.in_flight.spawn(async move {
                let outcome = send_isolating(cloudwatch.as_ref(), &pace, &metrics, &task_key.0, &task_key.1, &data).await;
                Sent { key: task_key, count: data.len(), outcome }
            });
            self.in_flight_keys.insert(task.id(), key.clone());
        }
        if !expired.is_empty() {
            for item in &expired {
                self.log_dropped(&item.point, "it is older than the 14 days CloudWatch accepts");
            }
            self.metrics.spool_drop("age", expired.len() as u64);
            self.ack(expired.iter().filter_map(|item| item.seq).collect()).await;
        }
    }

    /// Takes a finished request's outcome: acknowledge what is done, keep the rest at the front.
    async fn finish(&mut self, sent: Sent) {
        let Some(queue) = self.queues.get_mut(&sent.key) else { return };
        queue.sending = false;
        let batch: Vec<Queued> = queue.items.drain(..sent.count.min(queue.items.len())).collect();
        let mut done = vec![false; batch.len()];
        let mut acks = Vec::with_capacity(batch.len());
        for &index in &sent.outcome.delivered {
            done[index] = true;
            acks.extend(batch[index].seq);
        }
        let mut rejected = Vec::new();
        for (index, message) in &sent.outcome.rejected {
            done[*index] = true;
            acks.extend(batch[*index].seq);
            rejected.push((batch[*index].point.clone(), message.clone()));
        }
        let delivered = sent.outcome.delivered.len();
        for (item, _) in batch.into_iter().zip(&done).filter(|(_, done)| !**done).collect::<Vec<_>>().into_iter().rev() {
            queue.items.push_front(item);
        }

        let (region, namespace) = &sent.key;
        match &sent.outcome.failure {
            Some(error) => {
                let first_failure = queue.backoff.is_none();
                let backoff = queue.backoff.get_or_insert_with(|| {
                    ExponentialBuilder::default()
                        .with_min_delay(BACKOFF_MIN)
                        .with_max_delay(BACKOFF_MAX)
                        .with_jitter()
                        .without_max_times()
                        .build()
                });
                let delay = backoff.next().unwrap_or(BACKOFF_MAX);
                queue.retry_at = Some(Instant::now() + delay);
                let waiting = queue.items.len();
                if first_failure {
                    tracing::warn!(
                        region,
                        namespace,
                        waiting,
                        "PutMetricData failed, retrying with backoff; datapoints wait in the spool: {error}"
                    );
                } else {
                    tracing::debug!(region, namespace, waiting, retry_in = ?delay, "PutMetricData failed again: {error}");
                }
            }
            None => {
                if queue.backoff.take().is_some() {
                    tracing::info!(region, namespace, backlog = queue.items.len(), "PutMetricData works again; sending the backlog");
                }
            }
        }
        self.totals.delivered += delivered as u64;
        self.totals.rejected += rejected.len() as u64;
        for (point, message) in &rejected {
            self.metrics.datapoints_rejected.inc();
            self.log_dropped(point, &format!("CloudWatch rejected it: {message}"));
        }
        self.ack(acks).await;
    }

    async fn ack(&mut self, seqs: Vec<u64>) {
        if seqs.is_empty() {
            return;
        }
        let spool = self.spool.clone();
        let result = tokio::task::spawn_blocking(move || spool.lock().unwrap_or_else(|p| p.into_inner()).ack(&seqs)).await;
        if let Ok(Err(error)) = result {
            // Only costs duplicates after a restart (at-least-once), so a warning is enough.
            tracing::warn!("cannot record delivered datapoints in the spool: {error}");
        }
        self.update_spool_gauges();
    }

    fn log_dropped(&self, point: &Datapoint, reason: &str) {
        let time = Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true);
        let scheduled = chrono::DateTime::from_timestamp_millis(point.timestamp_ms)
            .map_or_else(String::new, |t| t.to_rfc3339_opts(SecondsFormat::Secs, true));
        self.logs.append(&point.series.flake, &[format!("{time} dropped value={} scheduled={scheduled} reason={:?}", point.value, reason)]);
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
            && self.in_flight.is_empty()
            && self.queues.values().filter(|queue| !queue.items.is_empty()).all(|queue| queue.backoff.is_some())
    }

    fn is_idle(&self) -> bool {
        self.unspooled.is_empty() && self.in_flight.is_empty() && self.queues.values().all(|queue| queue.items.is_empty())
    }

    fn report(&self) -> DrainReport {
        let queued: usize = self.queues.values().map(|queue| queue.items.len()).sum();
        DrainReport { pending: (self.unspooled.len() + queued) as u64, ..self.totals }
    }

    fn update_spool_gauges(&self) {
        let stats = self.spool.lock().unwrap_or_else(|p| p.into_inner()).stats();
        self.metrics.spool_bytes.set(stats.bytes as i64);
        self.metrics.spool_datapoints.set(stats.pending as i64);
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
