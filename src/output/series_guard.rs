//! The series guard (SPEC 8, `flakeMaxSeries`): every distinct (metric name, dimensions) is a
//! CloudWatch custom metric billed monthly, so one flake may publish at most so many.
//!
//! Which series survive must not depend on the order a program happened to print them in (a
//! JSON object from a hash map, an exporter's goroutines), or the published set would churn from
//! run to run and bill for both. So the kept series are the first ones in sorted order of name,
//! then dimensions; the entries themselves keep their order.

use std::collections::{BTreeSet, HashSet};
use std::hash::{Hash, Hasher};

use super::entry::{Dimension, Entry};

/// What the guard let through.
#[derive(Debug, Clone, PartialEq)]
pub struct Guarded {
    pub entries: Vec<Entry>,
    /// Distinct series among `entries`: what `once` prints.
    pub series: usize,
    /// Distinct series dropped: what the flake's log says and `/metrics` counts.
    pub dropped_series: usize,
}

/// At most `max_series` distinct series of `entries`, the first in sorted order.
pub fn cap_series(entries: Vec<Entry>, max_series: usize) -> Guarded {
    if entries.len() <= max_series {
        // No more entries than series allowed: nothing to drop, only the distinct ones to count,
        // which needs no order.
        let series = entries.iter().map(|entry| (entry.name.as_str(), entry.dimensions.as_slice())).collect::<foldhash::HashSet<_>>().len();
        return Guarded { entries, series, dropped_series: 0 };
    }
    let keys: Vec<(&str, &[Dimension])> = entries.iter().map(|entry| (entry.name.as_str(), entry.dimensions.as_slice())).collect();
    let sorted: BTreeSet<(&str, &[Dimension])> = keys.iter().copied().collect();
    let total = sorted.len();
    if total <= max_series {
        return Guarded { entries, series: total, dropped_series: 0 };
    }
    let kept: BTreeSet<(&str, &[Dimension])> = sorted.into_iter().take(max_series).collect();
    let keep: Vec<bool> = keys.iter().map(|key| kept.contains(key)).collect();
    let entries = entries.into_iter().zip(keep).filter_map(|(entry, keep)| keep.then_some(entry)).collect();
    Guarded { entries, series: max_series, dropped_series: total - max_series }
}

/// The series guard applied while an output is read, so a million series never sit in memory
/// at once when 200 are kept (issue 22): it keeps the first `max_series` series in sorted order
/// seen so far, and counts every distinct series (by a 64-bit hash) to say how many it dropped.
/// Which series survive is the same as [`cap_series`] would choose from all of them.
///
/// The caller keeps every item `admit` lets through in one candidates list and calls `prune`
/// after each push. As long as that list holds no more items than `max_series`, no series can be
/// over the cap, so nothing is tracked at all (the usual case, where bookkeeping every sample's
/// series cost a sixth of a big scrape's CPU); the first item beyond it starts the tracking, with
/// the candidates so far admitted again, in order.
#[derive(Debug)]
pub struct SeriesCap {
    max_series: usize,
    /// False while every item offered has been let through untracked (see above).
    tracking: bool,
    kept: BTreeSet<(String, Vec<Dimension>)>,
    seen: HashSet<u64>,
    /// The candidates list is pruned of evicted series when it reaches this length.
    prune_at: usize,
}

impl SeriesCap {
    /// `usize::MAX` keeps everything and counts nothing.
    pub fn new(max_series: usize) -> Self {
        SeriesCap {
            max_series,
            tracking: false,
            kept: BTreeSet::new(),
            seen: HashSet::new(),
            prune_at: 2 * max_series.clamp(1024, 1 << 20),
        }
    }

    fn uncapped(&self) -> bool {
        self.max_series == usize::MAX
    }

    /// Whether `entry`'s series is, for now, among the kept ones; it is counted as seen either way.
    pub fn admit(&mut self, entry: &Entry) -> bool {
        if self.uncapped() || !self.tracking {
            return true;
        }
        self.admit_tracked(entry)
    }

    fn admit_tracked(&mut self, entry: &Entry) -> bool {
        let mut hasher = std::hash::DefaultHasher::new();
        (entry.name.as_str(), entry.dimensions.as_slice()).hash(&mut hasher);
        self.seen.insert(hasher.finish());
        let key = (entry.name.as_str(), entry.dimensions.as_slice());
        let full = self.kept.len() >= self.max_series;
        // Most series of a big exposition sort after the kept ones: refused without a copy.
        if full && self.kept.last().is_none_or(|(name, dimensions)| key > (name.as_str(), dimensions.as_slice())) {
            return false;
        }
        let owned = (entry.name.clone(), entry.dimensions.clone());
        if self.kept.contains(&owned) {
            return true;
        }
        self.kept.insert(owned);
        if self.kept.len() > self.max_series {
            self.kept.pop_last();
        }
        true
    }

    /// Drops from `candidates` the items of series evicted since, once the list has grown enough.
    pub fn prune<T>(&mut self, candidates: &mut Vec<T>, entry: impl Fn(&T) -> &Entry) {
        if self.uncapped() {
            return;
        }
        if !self.tracking {
            if candidates.len() <= self.max_series {
                return;
            }
            self.tracking = true;
            for item in std::mem::take(candidates) {
                if self.admit_tracked(entry(&item)) {
                    candidates.push(item);
                }
            }
        }
        if candidates.len() >= self.prune_at {
            self.finish(candidates, entry);
            self.prune_at = (2 * candidates.len()).max(self.prune_at);
        }
    }

    /// Leaves in `candidates` only the items of the kept series.
    pub fn finish<T>(&self, candidates: &mut Vec<T>, entry: impl Fn(&T) -> &Entry) {
        if self.uncapped() || !self.tracking {
            return;
        }
        candidates.retain(|item| {
            let entry = entry(item);
            self.kept.contains(&(entry.name.clone(), entry.dimensions.clone()))
        });
    }

    /// Distinct series seen and not kept.
    pub fn dropped_series(&self) -> usize {
        self.seen.len().saturating_sub(self.kept.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, host: Option<&str>, value: f64) -> Entry {
        Entry { name: name.to_string(), value, unit: None, dimensions: host.map(|h| Dimension::new("host", h)).into_iter().collect() }
    }

    fn names(guarded: &Guarded) -> Vec<(String, f64)> {
        guarded.entries.iter().map(|e| (format!("{}{:?}", e.name, e.dimensions.first().map(|d| &d.value)), e.value)).collect()
    }

    /// `printed` through the streaming cap as the parsers use it: the kept entries and the cap.
    fn streamed(printed: &[Entry], max_series: usize) -> (Vec<Entry>, SeriesCap) {
        let mut cap = SeriesCap::new(max_series);
        let mut candidates = Vec::new();
        for entry in printed.iter().cloned() {
            if cap.admit(&entry) {
                candidates.push(entry);
                cap.prune(&mut candidates, |entry| entry);
            }
        }
        cap.finish(&mut candidates, |entry| entry);
        (candidates, cap)
    }

    #[test]
    fn under_the_cap_nothing_is_dropped() {
        let guarded = cap_series(vec![entry("b", None, 1.0), entry("a", None, 2.0), entry("a", None, 3.0)], 2);
        assert_eq!((guarded.series, guarded.dropped_series, guarded.entries.len()), (2, 0, 3));
    }

    #[test]
    fn the_first_series_in_sorted_order_survive_whatever_the_print_order() {
        let printed = vec![
            entry("zeta", None, 1.0),
            entry("alpha", Some("web-2"), 2.0),
            entry("alpha", Some("web-1"), 3.0),
            entry("alpha", Some("web-2"), 4.0),
            entry("beta", None, 5.0),
        ];
        let mut reversed = printed.clone();
        reversed.reverse();
        let guarded = cap_series(printed, 2);
        assert_eq!((guarded.series, guarded.dropped_series), (2, 2));
        assert_eq!(
            names(&guarded),
            [
                ("alphaSome(\"web-2\")".to_string(), 2.0),
                ("alphaSome(\"web-1\")".to_string(), 3.0),
                ("alphaSome(\"web-2\")".to_string(), 4.0)
            ]
        );
        let from_reversed = cap_series(reversed, 2);
        assert_eq!(from_reversed.dropped_series, 2);
        let mut kept: Vec<_> = names(&from_reversed);
        kept.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let mut expected = names(&guarded);
        expected.sort_by(|a, b| a.partial_cmp(b).unwrap());
        assert_eq!(kept, expected);
    }

    #[test]
    fn a_cap_of_zero_drops_everything() {
        let guarded = cap_series(vec![entry("a", None, 1.0)], 0);
        assert_eq!((guarded.series, guarded.dropped_series, guarded.entries.len()), (0, 1, 0));
    }

    #[test]
    fn the_streaming_cap_keeps_what_cap_series_keeps_and_counts_the_rest() {
        let mut printed = Vec::new();
        for round in 0..3 {
            for index in (0..500).rev() {
                printed.push(entry(&format!("m{index:03}"), Some(if index % 2 == 0 { "a" } else { "b" }), f64::from(round)));
            }
        }
        let (candidates, cap) = streamed(&printed, 7);
        let whole = cap_series(printed, 7);
        assert_eq!(candidates, whole.entries);
        assert_eq!(cap.dropped_series(), whole.dropped_series);
        assert_eq!(cap.dropped_series(), 493);
    }

    #[test]
    fn the_streaming_cap_at_exactly_as_many_items_as_series_allowed_keeps_them_all() {
        for max_series in [0, 1, 5, 6] {
            let printed: Vec<Entry> = (0..6).rev().map(|index| entry(&format!("m{index}"), None, 1.0)).collect();
            let (candidates, cap) = streamed(&printed, max_series);
            let whole = cap_series(printed, max_series);
            assert_eq!(candidates, whole.entries, "max_series {max_series}");
            assert_eq!(cap.dropped_series(), whole.dropped_series, "max_series {max_series}");
            assert_eq!(whole.series + whole.dropped_series, 6);
        }
    }
}
