//! Prometheus samples into entries (SPEC 8.2): counters become increases since the flake's
//! previous run, and series that dropped labels made equal are merged.
//!
//! CloudWatch has no rate function for a raw counter, so a cumulative sample is published as
//! its increase. [`CounterState`] keeps each series' previous value (by its identity before any
//! label was dropped) in memory: the first sight of a series yields nothing, and a decrease is a
//! reset, whose increase is the new value. Merging comes after the increases, so a reset in one
//! merged series cannot distort the others: merged counters' increases are added; merged gauges
//! stay separate values of one series, next to each other, for one datum with `Values`.

use super::entry::{Dimension, Entry};
use super::prometheus::{Kind, Sample, SeriesKey};

/// Previous counter values of one flake, from its last run.
#[derive(Debug, Clone, Default)]
pub struct CounterState {
    previous: foldhash::HashMap<SeriesKey, f64>,
}

impl CounterState {
    /// The entries to publish for this run's `samples`, and the counters remembered for the next
    /// run. Series absent from this run are forgotten, so memory follows the exposition.
    pub fn entries(&mut self, samples: Vec<Sample>) -> Vec<Entry> {
        let mut current = foldhash::HashMap::with_capacity_and_hasher(self.previous.len(), Default::default());
        let mut increases = Vec::with_capacity(samples.len());
        for sample in samples {
            match sample.kind {
                Kind::Gauge => increases.push((sample.entry, Kind::Gauge)),
                Kind::Cumulative => {
                    let now = sample.entry.value;
                    if let Some(&before) = self.previous.get(&sample.series) {
                        let increase = if now < before { now } else { now - before };
                        increases.push((Entry { value: increase, ..sample.entry }, Kind::Cumulative));
                    }
                    current.insert(sample.series, now);
                }
            }
        }
        self.previous = current;
        merge(increases)
    }

    /// How many counter series are remembered.
    pub fn len(&self) -> usize {
        self.previous.len()
    }

    pub fn is_empty(&self) -> bool {
        self.previous.is_empty()
    }
}

/// The samples as they stand, counters as raw totals (merged ones added): what `once` prints,
/// since it has no previous run to subtract.
pub fn raw_entries(samples: Vec<Sample>) -> Vec<Entry> {
    merge(samples.into_iter().map(|sample| (sample.entry, sample.kind)).collect())
}

/// Entries with equal name and dimensions merged: cumulative ones added into one, gauges kept
/// as separate values placed together, all at the position of the series' first entry.
fn merge(entries: Vec<(Entry, Kind)>) -> Vec<Entry> {
    let mut series: foldhash::HashMap<(&str, &[Dimension]), usize> =
        foldhash::HashMap::with_capacity_and_hasher(entries.len(), Default::default());
    let group_of: Vec<usize> = entries
        .iter()
        .map(|(entry, _)| {
            let next = series.len();
            *series.entry((entry.name.as_str(), entry.dimensions.as_slice())).or_insert(next)
        })
        .collect();
    let groups = series.len();
    if groups == entries.len() {
        return entries.into_iter().map(|(entry, _)| entry).collect();
    }
    let mut merged: Vec<Vec<Entry>> = (0..groups).map(|_| Vec::new()).collect();
    for ((entry, kind), group) in entries.into_iter().zip(group_of) {
        let members = &mut merged[group];
        match members.first_mut() {
            Some(first) if kind == Kind::Cumulative => first.value += entry.value,
            _ => members.push(entry),
        }
    }
    merged.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(name: &str, labels: &[(&str, &str)], kept: &[(&str, &str)], value: f64, kind: Kind) -> Sample {
        Sample {
            entry: Entry {
                name: name.to_string(),
                value,
                unit: Some("Count"),
                dimensions: kept.iter().map(|(n, v)| Dimension::new(*n, *v)).collect(),
            },
            kind,
            series: SeriesKey { name: name.to_string(), labels: labels.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect() },
        }
    }

    fn counter(value: f64) -> Sample {
        sample("requests_total", &[], &[], value, Kind::Cumulative)
    }

    fn values(entries: &[Entry]) -> Vec<f64> {
        entries.iter().map(|e| e.value).collect()
    }

    #[test]
    fn first_sight_yields_nothing_then_increases() {
        let mut state = CounterState::default();
        assert!(state.entries(vec![counter(100.0)]).is_empty());
        assert_eq!(values(&state.entries(vec![counter(130.0)])), [30.0]);
        assert_eq!(values(&state.entries(vec![counter(130.0)])), [0.0]);
        assert_eq!(state.len(), 1);
    }

    #[test]
    fn a_decrease_is_a_reset() {
        let mut state = CounterState::default();
        state.entries(vec![counter(100.0)]);
        assert_eq!(values(&state.entries(vec![counter(7.0)])), [7.0]);
        assert_eq!(values(&state.entries(vec![counter(9.0)])), [2.0]);
    }

    #[test]
    fn gauges_pass_through_and_vanished_series_are_forgotten() {
        let mut state = CounterState::default();
        let gauge = sample("temperature", &[], &[], 21.5, Kind::Gauge);
        assert_eq!(values(&state.entries(vec![gauge.clone(), counter(5.0)])), [21.5]);
        assert_eq!(values(&state.entries(vec![gauge])), [21.5]);
        assert!(state.is_empty());
        assert_eq!(values(&state.entries(vec![counter(8.0)])), Vec::<f64>::new());
    }

    #[test]
    fn merged_counters_add_their_own_increases() {
        let run = |get: f64, post: f64| {
            vec![
                sample("requests_total", &[("method", "GET")], &[], get, Kind::Cumulative),
                sample("requests_total", &[("method", "POST")], &[], post, Kind::Cumulative),
            ]
        };
        let mut state = CounterState::default();
        assert!(state.entries(run(100.0, 50.0)).is_empty());
        // GET grew by 10; POST reset and counted 4 since: 14, not the 136 - 150 of the raw sums.
        let entries = state.entries(run(110.0, 4.0));
        assert_eq!(values(&entries), [14.0]);
        assert_eq!(values(&raw_entries(run(110.0, 4.0))), [114.0]);
    }

    #[test]
    fn merged_gauges_stay_separate_values_together() {
        let samples = [
            sample("temp", &[("room", "a")], &[], 1.0, Kind::Gauge),
            sample("other", &[], &[], 9.0, Kind::Gauge),
            sample("temp", &[("room", "b")], &[], 2.0, Kind::Gauge),
        ];
        let entries = CounterState::default().entries(samples.to_vec());
        let named: Vec<_> = entries.iter().map(|e| (e.name.as_str(), e.value)).collect();
        assert_eq!(named, [("temp", 1.0), ("temp", 2.0), ("other", 9.0)]);
    }

    #[test]
    fn a_new_member_of_a_merged_counter_waits_for_its_second_run() {
        let mut state = CounterState::default();
        state.entries(vec![sample("c_total", &[("k", "a")], &[], 10.0, Kind::Cumulative)]);
        let entries = state.entries(vec![
            sample("c_total", &[("k", "a")], &[], 15.0, Kind::Cumulative),
            sample("c_total", &[("k", "b")], &[], 1000.0, Kind::Cumulative),
        ]);
        assert_eq!(values(&entries), [5.0]);
    }
}
