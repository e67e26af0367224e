//! Aggregated datapoints waiting for their window to close (`flakeAggregate`, SPEC 8.1).
//!
//! A value is spooled as soon as it is accepted, like every other, and then waits here rather
//! than in its queue, so it never holds up the values behind it. When its window has closed (plus
//! [`GRACE`] for the runs scheduled at its end to report), every value of the window moves to the
//! queue at once, and the batcher folds them into one datum ([`super::fold`]). After a crash the
//! spool replays the values and they wait here again; a window that closed while the daemon was
//! down is released at start. Each value is acknowledged in the spool only once its datum was
//! delivered, so a window is sent once, whenever the daemon stopped.

use std::collections::BTreeMap;
use std::time::Duration;

use super::queue::Queued;

/// How long after a window's end its values still wait: a run scheduled just before the end
/// needs a moment to report. A value arriving later still goes out, as one more datum with the
/// window's timestamp (the statistics stay exact; it costs one datum).
pub const GRACE: Duration = Duration::from_secs(5);

/// Values by the time (ms since the epoch) their window is released.
#[derive(Default)]
pub struct Windows {
    waiting: BTreeMap<i64, Vec<Queued>>,
    count: usize,
}

impl Windows {
    /// Keeps `queued` until `window_end_ms` (plus the grace) has passed.
    pub fn hold(&mut self, queued: Queued, window_end_ms: i64) {
        let release_at = window_end_ms.saturating_add(GRACE.as_millis() as i64);
        self.waiting.entry(release_at).or_default().push(queued);
        self.count += 1;
    }

    /// Every value whose window is released by `now_ms`, or every value at all when `everything`
    /// (a drain or a stop: the values go out now rather than wait, their statistics unchanged).
    pub fn release(&mut self, now_ms: i64, everything: bool) -> Vec<Queued> {
        let kept = if everything { BTreeMap::new() } else { self.waiting.split_off(&now_ms.saturating_add(1)) };
        let released: Vec<Queued> = std::mem::replace(&mut self.waiting, kept).into_values().flatten().collect();
        self.count -= released.len();
        released
    }

    /// When the next window is released (ms since the epoch).
    pub fn next_release_ms(&self) -> Option<i64> {
        self.waiting.keys().next().copied()
    }

    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub fn iter(&self) -> impl Iterator<Item = &Queued> {
        self.waiting.values().flatten()
    }

    /// Keeps only the values `keep` says to (the spool dropped the others by its limits).
    pub fn retain(&mut self, mut keep: impl FnMut(&Queued) -> bool) {
        for values in self.waiting.values_mut() {
            values.retain(&mut keep);
        }
        self.waiting.retain(|_, values| !values.is_empty());
        self.count = self.waiting.values().map(Vec::len).sum();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tokio::time::Instant;

    use super::*;
    use crate::publish::{Datapoint, Series};

    fn queued(seq: u64, timestamp_ms: i64) -> Queued {
        let series = Arc::new(Series {
            flake: "f".into(),
            region: "r".into(),
            namespace: "N".into(),
            metric_name: "m".into(),
            dimensions: Vec::new(),
            unit: "None".into(),
            storage_resolution: 60,
            aggregate_seconds: Some(60),
        });
        Queued {
            seq: Some(seq),
            point: Datapoint { series, value: 1.0, timestamp_ms },
            ready_at: Instant::now(),
            held_until: Instant::now(),
        }
    }

    fn seqs(values: &[Queued]) -> Vec<u64> {
        values.iter().filter_map(|q| q.seq).collect()
    }

    #[test]
    fn a_window_is_released_after_its_end_and_the_grace() {
        let grace = GRACE.as_millis() as i64;
        let mut windows = Windows::default();
        for (seq, timestamp) in [(1, 0), (2, 30_000), (3, 60_000)] {
            let point = queued(seq, timestamp);
            let end = point.point.window_end_ms().unwrap();
            windows.hold(point, end);
        }
        assert_eq!((windows.len(), windows.next_release_ms()), (3, Some(60_000 + grace)));
        assert!(windows.release(60_000 + grace - 1, false).is_empty());
        assert_eq!(seqs(&windows.release(60_000 + grace, false)), [1, 2]);
        assert_eq!((windows.len(), windows.next_release_ms()), (1, Some(120_000 + grace)));
        assert_eq!(seqs(&windows.release(0, true)), [3], "a drain releases open windows");
        assert!(windows.is_empty());
    }

    #[test]
    fn retain_keeps_the_count() {
        let mut windows = Windows::default();
        for seq in 0..10 {
            windows.hold(queued(seq, 0), 60_000 * (seq as i64 % 3));
        }
        windows.retain(|q| q.seq.unwrap() % 2 == 0);
        assert_eq!((windows.len(), windows.iter().count()), (5, 5));
        assert_eq!(seqs(&windows.release(i64::MAX, false)).len(), 5);
    }
}
