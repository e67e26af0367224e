//! Where datapoints wait until CloudWatch accepted them: the interface, the durable
//! [`disk::DiskSpool`] of the daemon, the in-memory spool used by `snowflake once` and
//! `--dry-run` (which must not touch the daemon's state), and the [`SpoolHandle`] through which
//! the publisher uses either off the runtime's threads.

pub mod disk;
mod handle;
mod record;

pub use handle::SpoolHandle;

use std::io;
use std::ops::Range;

use super::datapoint::Datapoint;

/// Datapoints a spool dropped by its limits, by sequence number.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Dropped {
    /// Older than CloudWatch accepts (14 days).
    pub by_age: Vec<Range<u64>>,
    /// The oldest, to keep the spool under its size bound.
    pub by_size: Vec<Range<u64>>,
    pub age_count: u64,
    pub size_count: u64,
}

impl Dropped {
    pub fn is_empty(&self) -> bool {
        self.age_count == 0 && self.size_count == 0
    }

    pub fn contains(&self, seq: u64) -> bool {
        self.by_age.iter().chain(&self.by_size).any(|range| range.contains(&seq))
    }
}

/// Size and content of a spool, for /metrics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SpoolStats {
    pub bytes: u64,
    pub pending: u64,
}

/// Durable storage for datapoints between acceptance and delivery.
pub trait Spool: Send {
    /// Stores `points` (one write and one sync for all of them); returns the first sequence
    /// number: the points are numbered consecutively from it.
    fn append(&mut self, points: &[Datapoint]) -> io::Result<u64>;

    /// CloudWatch accepted (or finally rejected) these; they need not be kept.
    fn ack(&mut self, seqs: &[u64]) -> io::Result<()>;

    /// Applies the age and size limits at time `now_ms`.
    fn enforce_limits(&mut self, now_ms: i64) -> Dropped;

    fn stats(&self) -> SpoolStats;

    /// True if operations touch the disk (and so belong on the blocking pool).
    fn on_disk(&self) -> bool {
        true
    }
}

/// Keeps nothing: for one-shot commands and dry runs, whose data is not the daemon's to keep.
#[derive(Debug, Default)]
pub struct MemorySpool {
    next_seq: u64,
    pending: u64,
}

impl Spool for MemorySpool {
    fn append(&mut self, points: &[Datapoint]) -> io::Result<u64> {
        let first = self.next_seq;
        self.next_seq += points.len() as u64;
        self.pending += points.len() as u64;
        Ok(first)
    }

    fn ack(&mut self, seqs: &[u64]) -> io::Result<()> {
        self.pending = self.pending.saturating_sub(seqs.len() as u64);
        Ok(())
    }

    fn enforce_limits(&mut self, _now_ms: i64) -> Dropped {
        Dropped::default()
    }

    fn stats(&self) -> SpoolStats {
        SpoolStats { bytes: 0, pending: self.pending }
    }

    fn on_disk(&self) -> bool {
        false
    }
}
