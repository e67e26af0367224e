//! Prometheus samples into entries (SPEC 8.2): counters become increases since the flake's
//! previous run, and series that dropped labels made equal are merged.
//!
//! CloudWatch has no rate function for a raw counter, so a cumulative sample is published as
//! its increase. [`CounterState`] keeps each series' previous value (by its identity before any
//! label was dropped) in memory: the first sight of a series yields nothing, and a decrease is a
//! reset, whose increase is the new value. Merging comes after the increases, so a reset in one
//! merged series cannot distort the others: merged counters' increases are added; merged gauges
//! stay separate values of one series, next to each other, for one datum with `Values`.

use std::collections::HashMap;

use super::entry::{Dimension, Entry};
use super::prometheus::{Kind, Sample, SeriesKey};

/// Previous counter values of one flake, from its last run.
#[derive(Debug, Clone, Default)]
pub struct CounterState {
    previous: HashMap<SeriesKey, f64>,
}

impl CounterState {
    /// The entries to publish for this run's `samples`, and the counters remembered for the next
    /// run. Series absent from this run are forgotten, so memory follows the exposition.
    pub fn entries(&mut self, samples: &[Sample]) -> Vec<Entry> {
        let mut current = HashMap::with_capacity(samples.len());
        let mut increases = Vec::with_capacity(samples.len());
        for sample in samples {
            match sample.kind {
                Kind::Gauge => increases.push((sample.entry.clone(), Kind::Gauge)),
                Kind::Cumulative => {
                    let now = sample.entry.value;
                    if let Some(&before) = self.previous.get(&sample.series) {
                        let increase = if now < before { now } else { now - before };
                        increases.push((Entry { value: increase, ..sample.entry.clone() }, Kind::Cumulative));
                    }
                    current.insert(sample.series.clone(), now);
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
pub fn raw_entries(samples: &[Sample]) -> Vec<Entry> {
    merge(samples.iter().map(|sample| (sample.entry.clone(), sample.kind)).collect())
}

/// Entries with equal name and dimensions merged: cumulative ones added into one, gauges kept
/// as separate values placed together, all at the position of the series' first entry.
fn merge(entries: Vec<(Entry, Kind)>) -> Vec<Entry> {
    let mut slots: HashMap<(String, Vec<Dimension>), usize> = HashMap::with_capacity(entries.len());
    let mut merged: Vec<Vec<Entry>> = Vec::with_capacity(entries.len());
    for (entry, kind) in entries {
        let key = (entry.name.clone(), entry.dimensions.clone());
        match slots.get(&key) {
            Some(&slot) if kind == Kind::Cumulative => merged[slot][0].value += entry.value,
            Some(&slot) => merged[slot].push(entry),
            None => {
                slots.insert(key, merged.len());
                merged.push(vec![entry]);
            }
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
        assert!(state.entries(&[counter(100.0)]).is_empty());
        assert_eq!(values(&state.entries(&[counter(130.0)])), [30.0]);
        assert_eq!(values(&state.entries(&[counter(130.0)])), [0.0]);
        assert_eq!(state.len(), 1);
    }

    #[test]
    fn a_decrease_is_a_reset() {
        let mut state = CounterState::default();
        state.entries(&[counter(100.0)]);
        assert_eq!(values(&state.entries(&[counter(7.0)])), [7.0]);
        assert_eq!(values(&state.entries(&[counter(9.0)])), [2.0]);
    }

    #[test]
    fn gauges_pass_through_and_vanished_series_are_forgotten() {
        let mut state = CounterState::default();
        let gauge = sample("temperature", &[], &[], 21.5, Kind::Gauge);
        assert_eq!(values(&state.entries(&[gauge.clone(), counter(5.0)])), [21.5]);
        assert_eq!(values(&state.entries(std::slice::from_ref(&gauge))), [21.5]);
        assert!(state.is_empty());
        assert_eq!(values(&state.entries(&[counter(8.0)])), Vec::<f64>::new());
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
        assert!(state.entries(&run(100.0, 50.0)).is_empty());
        // GET grew by 10; POST reset and counted 4 since: 14, not the 136 - 150 of the raw sums.
        let entries = state.entries(&run(110.0, 4.0));
        assert_eq!(values(&entries), [14.0]);
        assert_eq!(values(&raw_entries(&run(110.0, 4.0))), [114.0]);
    }

    #[test]
    fn merged_gauges_stay_separate_values_together() {
        let samples = [
            sample("temp", &[("room", "a")], &[], 1.0, Kind::Gauge),
            sample("other", &[], &[], 9.0, Kind::Gauge),
            sample("temp", &[("room", "b")], &[], 2.0, Kind::Gauge),
        ];
        let entries = CounterState::default().entries(&samples);
        let named: Vec<_> = entries.iter().map(|e| (e.name.as_str(), e.value)).collect();
        assert_eq!(named, [("temp", 1.0), ("temp", 2.0), ("other", 9.0)]);
    }

    #[test]
    fn a_new_member_of_a_merged_counter_waits_for_its_second_run() {
        let mut state = CounterState::default();
        state.entries(&[sample("c_total", &[("k", "a")], &[], 10.0, Kind::Cumulative)]);
        let entries = state.entries(&[
            sample("c_total", &[("k", "a")], &[], 15.0, Kind::Cumulative),
            sample("c_total", &[("k", "b")], &[], 1000.0, Kind::Cumulative),
        ]);
        assert_eq!(values(&entries), [5.0]);
    }
}
