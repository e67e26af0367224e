//! Folding the front of a queue into one PutMetricData batch: datapoints of one series with one
//! datum timestamp (an aggregation window's values, or merged series of one run) become one datum
//! with `Values` and `Counts`, at most 150 distinct values each; a single value stays a `Value`.
//!
//! CloudWatch computes every statistic, percentiles included, from the values and their counts,
//! so a folded datum yields the same statistics as the datapoints sent one by one.

use super::datapoint::{Datapoint, Series};
use crate::cloudwatch::Datum;

/// PutMetricData's limits.
pub const MAX_DATUMS: usize = 1000;
pub const MAX_REQUEST_BYTES: usize = 1_000_000;
pub const MAX_VALUES_PER_DATUM: usize = 150;
/// A generous estimate of one more value and its count in a request.
const VALUE_BYTES: usize = 80;

/// One request's datums, and which queued datapoints each one carries.
#[derive(Debug, Default)]
pub struct Batch {
    pub data: Vec<Datum>,
    /// For each datum, the indices (into the queue's front) of the datapoints in it.
    pub members: Vec<Vec<usize>>,
    /// The batch is the first `taken` datapoints of the queue: every one is in some datum.
    pub taken: usize,
}

/// A datum being built.
struct Group<'a> {
    first: &'a Datapoint,
    timestamp_ms: i64,
    /// (value, count), in order of first appearance.
    values: Vec<(f64, f64)>,
}

/// The longest front of `points` that fits one request (1000 datums, about 1 MB), folded. Reads
/// no further than that front: a long backlog costs no more than a full batch.
pub fn fold_front<'a>(points: impl IntoIterator<Item = &'a Datapoint>, namespace: &str) -> Batch {
    let mut bytes = namespace.len() + 256;
    let mut groups: Vec<Group<'a>> = Vec::new();
    let mut members: Vec<Vec<usize>> = Vec::new();
    // The datum each (series, timestamp) is filling now; a full one is replaced by a new one.
    let mut filling: foldhash::HashMap<(&'a Series, i64), usize> = foldhash::HashMap::default();
    let mut taken = 0;
    for (index, point) in points.into_iter().enumerate() {
        let timestamp_ms = point.datum_timestamp_ms();
        let key = (point.series.as_ref(), timestamp_ms);
        if let Some(&group_index) = filling.get(&key) {
            let group = &mut groups[group_index];
            if let Some(slot) = group.values.iter_mut().find(|(value, _)| value.to_bits() == point.value.to_bits()) {
                slot.1 += 1.0;
                members[group_index].push(index);
                taken = index + 1;
                continue;
            }
            if group.values.len() < MAX_VALUES_PER_DATUM {
                if bytes + VALUE_BYTES > MAX_REQUEST_BYTES {
                    break;
                }
                bytes += VALUE_BYTES;
                group.values.push((point.value, 1.0));
                members[group_index].push(index);
                taken = index + 1;
                continue;
            }
        }
        let size = point.estimated_bytes() + VALUE_BYTES;
        if groups.len() == MAX_DATUMS || (!groups.is_empty() && bytes + size > MAX_REQUEST_BYTES) {
            break;
        }
        bytes += size;
        filling.insert(key, groups.len());
        groups.push(Group { first: point, timestamp_ms, values: vec![(point.value, 1.0)] });
        members.push(vec![index]);
        taken = index + 1;
    }
    let data = groups
        .into_iter()
        .map(|group| {
            let mut datum = group.first.datum();
            datum.timestamp_ms = group.timestamp_ms;
            if group.values.len() > 1 || group.values[0].1 > 1.0 {
                datum.value = 0.0;
                datum.counted_values = group.values;
            }
            datum
        })
        .collect();
    Batch { data, members, taken }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn series(name: &str, aggregate_seconds: Option<u32>, resolution: i32) -> Arc<Series> {
        Arc::new(Series {
            flake: name.into(),
            region: "us-east-1".into(),
            namespace: "N".into(),
            metric_name: name.into(),
            dimensions: vec![("Host".into(), "h".into())],
            unit: "None".into(),
            storage_resolution: resolution,
            aggregate_seconds,
        })
    }

    fn point(series: &Arc<Series>, value: f64, timestamp_ms: i64) -> Datapoint {
        Datapoint { series: series.clone(), value, timestamp_ms }
    }

    /// Every (value, timestamp) the batch carries, expanded by counts and sorted.
    fn expanded(batch: &Batch) -> Vec<(i64, u64)> {
        let mut samples: Vec<(i64, u64)> = batch
            .data
            .iter()
            .flat_map(|datum| {
                datum
                    .samples()
                    .into_iter()
                    .flat_map(move |(value, count)| std::iter::repeat_n((datum.timestamp_ms, value.to_bits()), count as usize))
            })
            .collect();
        samples.sort_unstable();
        samples
    }

    const MINUTE: i64 = 1_700_000_040_000; // a whole minute

    #[test]
    fn a_window_of_values_is_one_datum_at_its_start_with_counts() {
        let s = series("a", Some(60), 60);
        let points: Vec<Datapoint> =
            [1.0, 2.0, 1.0, 3.0, 1.0, 2.0].iter().enumerate().map(|(i, v)| point(&s, *v, MINUTE + 10_000 * i as i64)).collect();
        let batch = fold_front(&points, "N");
        assert_eq!((batch.data.len(), batch.taken), (1, 6));
        let datum = &batch.data[0];
        assert_eq!(datum.timestamp_ms, MINUTE);
        assert_eq!(datum.counted_values, [(1.0, 3.0), (2.0, 2.0), (3.0, 1.0)]);
        assert_eq!(datum.sample_count(), 6);
        assert_eq!(batch.members, [vec![0, 1, 2, 3, 4, 5]]);
    }

    #[test]
    fn window_boundaries_split_datums() {
        let s = series("a", Some(60), 60);
        // 59.999 s is in the first window, 60 s starts the second; a time before the epoch too.
        let points = [point(&s, 1.0, MINUTE), point(&s, 2.0, MINUTE + 59_999), point(&s, 3.0, MINUTE + 60_000), point(&s, 4.0, -1)];
        let batch = fold_front(&points, "N");
        let shape: Vec<(i64, Vec<(f64, f64)>)> = batch.data.iter().map(|d| (d.timestamp_ms, d.samples())).collect();
        assert_eq!(shape, [(MINUTE, vec![(1.0, 1.0), (2.0, 1.0)]), (MINUTE + 60_000, vec![(3.0, 1.0)]), (-60_000, vec![(4.0, 1.0)])]);
        assert!(batch.data[1].counted_values.is_empty(), "a lone value goes as Value");
        assert_eq!(batch.data[1].value, 3.0);
    }

    #[test]
    fn more_than_150_distinct_values_take_more_datums() {
        let s = series("a", Some(3600), 60);
        let points: Vec<Datapoint> = (0..400).map(|i| point(&s, f64::from(i % 320), MINUTE + i64::from(i))).collect();
        let batch = fold_front(&points, "N");
        let distinct: Vec<usize> = batch.data.iter().map(|d| d.counted_values.len()).collect();
        // Values 0..80 come again after the first datum filled up: they join the one filling now.
        assert_eq!(distinct, [150, 150, 100]);
        assert_eq!(batch.data.iter().map(Datum::sample_count).sum::<u64>(), 400);
        assert_eq!(batch.taken, 400);
        let mut all: Vec<usize> = batch.members.concat();
        all.sort_unstable();
        assert_eq!(all, (0..400).collect::<Vec<_>>());
        let unfolded: Vec<Datapoint> = points.iter().map(|p| Datapoint { series: series("a", None, 60), ..p.clone() }).collect();
        let one_by_one = fold_front(&unfolded, "N");
        assert_eq!(one_by_one.data.len(), 400);
        let at_window = |samples: Vec<(i64, u64)>| {
            let mut values: Vec<u64> = samples.into_iter().map(|(_, value)| value).collect();
            values.sort_unstable();
            values
        };
        assert_eq!(at_window(expanded(&batch)), at_window(expanded(&one_by_one)), "the same values, counted the same");
    }

    #[test]
    fn one_second_resolution_windows() {
        let s = series("fast", Some(10), 1);
        let points: Vec<Datapoint> = (0..30).map(|i| point(&s, f64::from(i), MINUTE + 1000 * i64::from(i))).collect();
        let batch = fold_front(&points, "N");
        let shape: Vec<(i64, u64, i32)> = batch.data.iter().map(|d| (d.timestamp_ms, d.sample_count(), d.storage_resolution)).collect();
        assert_eq!(shape, [(MINUTE, 10, 1), (MINUTE + 10_000, 10, 1), (MINUTE + 20_000, 10, 1)]);
    }

    #[test]
    fn series_are_never_mixed_and_unaggregated_points_fold_only_at_one_time() {
        let a = series("a", Some(60), 60);
        let b = series("b", Some(60), 60);
        let plain = series("plain", None, 60);
        let points = [
            point(&a, 1.0, MINUTE),
            point(&b, 1.0, MINUTE + 1),
            point(&plain, 5.0, MINUTE),
            point(&plain, 6.0, MINUTE),
            point(&plain, 7.0, MINUTE + 1),
            point(&a, 2.0, MINUTE + 2),
        ];
        let batch = fold_front(&points, "N");
        let shape: Vec<(&str, u64)> = batch.data.iter().map(|d| (d.metric_name.as_str(), d.sample_count())).collect();
        assert_eq!(shape, [("a", 2), ("b", 1), ("plain", 2), ("plain", 1)]);
        assert_eq!(batch.members, [vec![0, 5], vec![1], vec![2, 3], vec![4]]);
    }

    #[test]
    fn a_request_holds_at_most_1000_datums_and_the_rest_waits() {
        let s = series("plain", None, 60);
        let points: Vec<Datapoint> = (0..1500).map(|i| point(&s, 1.0, MINUTE + i)).collect();
        let batch = fold_front(&points, "N");
        assert_eq!((batch.data.len(), batch.taken), (1000, 1000));
        // It reads one item past the batch and no further, however long the backlog.
        let endless = points[..1001].iter().chain(std::iter::from_fn(|| -> Option<&Datapoint> { panic!("read past the batch") }));
        assert_eq!(fold_front(endless, "N").taken, 1000);
        // Equal values of one window fold without limit on their count.
        let folded = series("agg", Some(60), 60);
        let points: Vec<Datapoint> = (0..5000).map(|i| point(&folded, 1.0, MINUTE + i)).collect();
        let batch = fold_front(&points, "N");
        assert_eq!((batch.data.len(), batch.taken, batch.data[0].counted_values.clone()), (1, 5000, vec![(1.0, 5000.0)]));
    }
}
