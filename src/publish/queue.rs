//! The datapoints bound for one (region, namespace), and what that queue is doing: ready to send
//! when due, sending one request, or backing off after a failed one.

use std::collections::VecDeque;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use tokio::time::Instant;

use super::datapoint::Datapoint;
pub use super::fold::MAX_DATUMS;
use super::fold::{Batch, fold_front};

const BACKOFF_MIN: Duration = Duration::from_millis(250);
/// With jitter, retries come at most 20 s apart: an outage ends, delivery resumes promptly.
const BACKOFF_MAX: Duration = Duration::from_secs(10);

/// A datapoint waiting in its queue.
pub struct Queued {
    /// Its number in the spool; `None` if the spool could not store it (it is still sent, just
    /// not durably, and it is lost if the daemon stops before it is delivered).
    pub seq: Option<u64>,
    pub point: Datapoint,
    /// When it is due to be sent, full batch or not, unless runs hold partial batches back.
    pub ready_at: Instant,
    /// When it is due to be sent even while runs hold partial batches back.
    pub held_until: Instant,
}

impl Queued {
    /// When a partial batch starting with this item is due.
    fn due_at(&self, held: bool) -> Instant {
        if held { self.held_until.max(self.ready_at) } else { self.ready_at }
    }
}

/// What a queue is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Sends once due: a full batch, its oldest item's flush time, or an urgent flush.
    Ready,
    /// One request is in flight; its first items are the batch.
    Sending,
    /// The last request failed or was lost; the next one goes at `retry_at`.
    BackingOff { retry_at: Instant },
}

pub struct Queue {
    pub items: VecDeque<Queued>,
    state: State,
    /// While sending: how many items at the front are in the request.
    in_flight: usize,
    /// Present while requests for this queue fail: the delays of the retries to come.
    failing: Option<ExponentialBackoff>,
}

impl Default for Queue {
    fn default() -> Self {
        Queue { items: VecDeque::new(), state: State::Ready, in_flight: 0, failing: None }
    }
}

/// How a request ended, for the queue's state.
pub enum Settled {
    Delivered { recovered: bool },
    Failed { first_failure: bool, retry_in: Duration },
}

impl Queue {
    /// True while its requests fail (CloudWatch unreachable for it).
    pub fn is_failing(&self) -> bool {
        self.failing.is_some()
    }

    /// When this queue next wants attention; `None` if only an answer, new data or the release
    /// of the holds can change it. `held`: runs hold partial batches back.
    pub fn wake_at(&self, urgent: bool, held: bool, now: Instant) -> Option<Instant> {
        match self.state {
            State::Sending => None,
            State::BackingOff { retry_at } => Some(retry_at),
            State::Ready => {
                let front = self.items.front()?;
                Some(if urgent || self.items.len() >= MAX_DATUMS { now } else { front.due_at(held) })
            }
        }
    }

    /// Neither sending nor waiting out a backoff at `now`.
    pub fn may_send(&self, now: Instant) -> bool {
        match self.state {
            State::Ready => true,
            State::Sending => false,
            State::BackingOff { retry_at } => retry_at <= now,
        }
    }

    /// Whether a request should go now; only asked when [`Queue::may_send`] and not empty.
    pub fn is_due(&self, urgent: bool, held: bool, now: Instant) -> bool {
        let retrying = matches!(self.state, State::BackingOff { .. });
        urgent || retrying || self.items.len() >= MAX_DATUMS || self.items.front().is_some_and(|front| front.due_at(held) <= now)
    }

    /// Nothing left to send (everything expired or was delivered): back to ready.
    pub fn idle(&mut self) {
        self.state = State::Ready;
    }

    /// The next batch, folded, within PutMetricData's limits; the queue is now sending.
    pub fn begin_send(&mut self, namespace: &str) -> Batch {
        let batch = fold_front(self.items.iter().map(|item| &item.point), namespace);
        self.in_flight = batch.taken;
        self.state = State::Sending;
        batch
    }

    /// How many items at the front belong to the request in flight (0 unless sending).
    pub fn in_flight(&self) -> usize {
        if self.state == State::Sending { self.in_flight } else { 0 }
    }

    /// The request ended: delivered (perhaps after failures), or failed with a retryable error.
    pub fn settle(&mut self, failed: bool) -> Settled {
        self.in_flight = 0;
        if !failed {
            self.state = State::Ready;
            return Settled::Delivered { recovered: self.failing.take().is_some() };
        }
        let first_failure = self.failing.is_none();
        let backoff = self.failing.get_or_insert_with(|| {
            ExponentialBuilder::default().with_min_delay(BACKOFF_MIN).with_max_delay(BACKOFF_MAX).with_jitter().without_max_times().build()
        });
        let retry_in = backoff.next().unwrap_or(BACKOFF_MAX);
        self.state = State::BackingOff { retry_at: Instant::now() + retry_in };
        Settled::Failed { first_failure, retry_in }
    }

    /// The request's task failed outright: its batch stays, and the queue waits the longest delay.
    pub fn lost(&mut self) {
        self.in_flight = 0;
        self.state = State::BackingOff { retry_at: Instant::now() + BACKOFF_MAX };
    }
}
