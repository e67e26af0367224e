//! A multi-metric run's output read by its `flakeOutput` (SPEC 8, 8.2) into entries, and entries
//! into datapoints of the flake's one publish path.
//!
//! One [`OutputReader`] lives as long as a loaded flake (it is part of
//! [`Prepared`](crate::execution::Prepared)): it holds the compiled `flakeMetrics` selection and
//! the Prometheus counters' previous values, so increases span runs; a changed flake file starts
//! afresh, like a daemon restart. The series guard runs last, on what would be published.

use std::sync::{Arc, Mutex};

use crate::flake::{Flake, OutputFormat};
use crate::output::counters::{CounterState, raw_entries};
use crate::output::nagios::{self, NagiosState};
use crate::output::prometheus::{self, Kind, Selection};
use crate::output::series_guard::{SeriesCap, cap_series};
use crate::output::{Entry, EntryRules, Rejections, Unreadable, json};
use crate::publish::{Datapoint, Series};

/// How much of a multi-metric command's stdout is read: as much as a scrape's decoded body.
pub const OUTPUT_LIMIT: usize = crate::scrape::BODY_LIMIT;
/// Multi-metric outputs read at once, at most. Reading 16 MiB of text takes seconds of CPU and
/// several times the body in memory: two at a time keep both cores' worth of work going while
/// bounding the memory a burst of big outputs can take.
const READS_AT_ONCE: usize = 2;
static READS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(READS_AT_ONCE);

/// Runs `read` (a multi-metric output's parse) on tokio's blocking pool, at most
/// [`READS_AT_ONCE`] at a time: a runtime thread must never spend seconds parsing, or firings,
/// deliveries and `/healthz` wait behind it (issue 22).
pub async fn off_runtime<T: Send + 'static>(read: impl FnOnce() -> T + Send + 'static) -> T {
    let _turn = READS.acquire().await.expect("the semaphore is never closed");
    match tokio::task::spawn_blocking(read).await {
        Ok(value) => value,
        Err(error) => std::panic::resume_unwind(error.into_panic()),
    }
}

/// What one run's output yielded.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Readout {
    /// What to publish, after the series guard.
    pub entries: Vec<Entry>,
    pub rejections: Rejections,
    /// Distinct series among `entries`.
    pub series: usize,
    /// Distinct series the guard dropped.
    pub dropped_series: usize,
    /// A Nagios plugin's state and the first line of its text.
    pub nagios: Option<(NagiosState, String)>,
    /// Prometheus counters as raw totals, for `snowflake once` to print (only when asked for).
    pub raw_counters: Vec<Entry>,
}

/// Reads one flake's runs.
#[derive(Debug)]
pub struct OutputReader {
    format: OutputFormat,
    rules: EntryRules,
    selection: Selection,
    max_series: usize,
    counters: Mutex<CounterState>,
    keep_raw_counters: bool,
    /// The series of the last run's datapoints, in order (see [`OutputReader::datapoints`]).
    last_series: Mutex<Vec<Arc<Series>>>,
}

impl OutputReader {
    /// The reader of `flake`, or `None` for `flakeOutput: number` (read by `output::parse_value`).
    pub fn of_flake(flake: &Flake) -> Option<Arc<OutputReader>> {
        let output = &flake.output;
        if !output.format.is_multi_metric() {
            return None;
        }
        let flake_dimensions = flake.metric.as_ref().map_or(0, |metric| metric.dimensions.len());
        // Validation compiled these patterns already; a failure here cannot happen for a loaded flake.
        let selection = output.metrics.selection().unwrap_or_default();
        Some(Arc::new(OutputReader {
            format: output.format,
            rules: EntryRules { metric_prefix: output.metric_prefix.clone(), flake_dimensions },
            selection,
            max_series: output.max_series,
            counters: Mutex::new(CounterState::default()),
            keep_raw_counters: false,
            last_series: Mutex::default(),
        }))
    }

    /// The same reader, also reporting counters' raw totals (`snowflake once`).
    pub fn with_raw_counters(&self) -> OutputReader {
        OutputReader {
            format: self.format,
            rules: self.rules.clone(),
            selection: self.selection.clone(),
            max_series: self.max_series,
            counters: Mutex::new(CounterState::default()),
            keep_raw_counters: true,
            last_series: Mutex::default(),
        }
    }

    pub fn format(&self) -> OutputFormat {
        self.format
    }

    /// Reads one run's `stdout`; `exit_code` is `None` after a signal (Nagios states come from it).
    pub fn read(&self, stdout: &[u8], exit_code: Option<i32>, truncated: bool) -> Result<Readout, Unreadable> {
        let mut readout = Readout::default();
        // Series are capped as they are read; `cap_series` below then finds nothing more to drop
        // (it still counts the published series, after counters).
        let mut cap = SeriesCap::new(self.max_series);
        let entries = match self.format {
            OutputFormat::Number => return Err(Unreadable("flakeOutput \"number\" is not a multi-metric format".to_string())),
            OutputFormat::Json => {
                let parsed = json::parse_capped(stdout, truncated, &self.rules, &mut cap)?;
                readout.rejections = parsed.rejections;
                parsed.entries
            }
            OutputFormat::Nagios => {
                let plugin = nagios::parse_capped(stdout, exit_code, truncated, &self.rules, &mut cap)?;
                readout.nagios = Some((plugin.state, plugin.summary));
                readout.rejections = plugin.parsed.rejections;
                plugin.parsed.entries
            }
            OutputFormat::Prometheus => {
                let scrape = prometheus::parse_capped(stdout, truncated, &self.selection, &self.rules, &mut cap)?;
                readout.rejections = scrape.rejections;
                if self.keep_raw_counters {
                    let cumulative = scrape.samples.iter().filter(|sample| sample.kind == Kind::Cumulative).cloned().collect();
                    readout.raw_counters = raw_entries(cumulative);
                }
                self.counters.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).entries(scrape.samples)
            }
        };
        let guarded = cap_series(entries, self.max_series);
        readout.entries = guarded.entries;
        readout.series = guarded.series;
        readout.dropped_series = guarded.dropped_series + cap.dropped_series();
        Ok(readout)
    }
}

impl OutputReader {
    /// Like [`datapoints`], sharing the last run's [`Series`] where an entry names the same one at
    /// the same place: an exporter prints its series in the same order every time, so a scrape's
    /// datapoints mostly reuse the series already built instead of copying every name, label and
    /// the flake's own strings again (and freeing them after delivery).
    pub fn datapoints(&self, base: &Series, entries: Vec<Entry>, timestamp_ms: i64) -> Vec<Datapoint> {
        let mut last = self.last_series.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let same_base = |series: &Series| {
            series.flake == base.flake
                && series.region == base.region
                && series.namespace == base.namespace
                && series.storage_resolution == base.storage_resolution
                && series.aggregate_seconds == base.aggregate_seconds
        };
        let mut slots: Vec<Option<Datapoint>> = Vec::with_capacity(entries.len());
        let mut unknown = Vec::new();
        for (index, entry) in entries.into_iter().enumerate() {
            let unit = entry.unit.unwrap_or(base.unit.as_str());
            match last.get(index).filter(|series| same_base(series) && names_series(series, base, &entry, unit)) {
                Some(series) => slots.push(Some(Datapoint { series: series.clone(), value: entry.value, timestamp_ms })),
                None => {
                    slots.push(None);
                    unknown.push(entry);
                }
            }
        }
        let mut built = datapoints(base, unknown, timestamp_ms).into_iter();
        let points: Vec<Datapoint> =
            slots.into_iter().map(|slot| slot.or_else(|| built.next()).expect("one built datapoint for each unknown entry")).collect();
        *last = points.iter().map(|point| point.series.clone()).collect();
        points
    }
}

/// Whether `series` is the one [`datapoints`] builds for `entry` (with `unit`) on `base`.
fn names_series(series: &Series, base: &Series, entry: &Entry, unit: &str) -> bool {
    let flakes = base.dimensions.len();
    if series.metric_name != entry.name || series.unit != unit || series.dimensions.len() < flakes {
        return false;
    }
    let (first, rest) = series.dimensions.split_at(flakes);
    if first != base.dimensions.as_slice() {
        return false;
    }
    let mut rest = rest.iter();
    for (position, dimension) in entry.dimensions.iter().enumerate() {
        let shadowed = base.dimensions.iter().any(|(name, _)| *name == dimension.name)
            || entry.dimensions[..position].iter().any(|earlier| earlier.name == dimension.name);
        if shadowed {
            continue;
        }
        match rest.next() {
            Some((name, value)) if *name == dimension.name && *value == dimension.value => {}
            _ => return false,
        }
    }
    rest.next().is_none()
}

/// The datapoints of `entries` in `base`'s region and namespace: each entry's name, the flake's
/// dimensions then the entry's own, the entry's unit or else the flake's.
///
/// A dimension the entry shares with `flakeDimensions` by name keeps the flake's value:
/// CloudWatch refuses a datum naming a dimension twice, and the flake's file is the operator's word.
pub fn datapoints(base: &Series, entries: Vec<Entry>, timestamp_ms: i64) -> Vec<Datapoint> {
    let mut previous: Option<Arc<Series>> = None;
    entries
        .into_iter()
        .map(|entry| {
            let unit = entry.unit.unwrap_or(base.unit.as_str());
            let mut dimensions = base.dimensions.clone();
            for dimension in entry.dimensions {
                if !dimensions.iter().any(|(name, _)| *name == dimension.name) {
                    dimensions.push((dimension.name, dimension.value));
                }
            }
            // Merged gauges arrive side by side: they share one Series allocation.
            let series = match previous.take() {
                Some(series) if series.metric_name == entry.name && series.dimensions == dimensions && series.unit == unit => series,
                _ => Arc::new(Series {
                    flake: base.flake.clone(),
                    region: base.region.clone(),
                    namespace: base.namespace.clone(),
                    metric_name: entry.name,
                    dimensions,
                    unit: unit.to_string(),
                    storage_resolution: base.storage_resolution,
                    aggregate_seconds: base.aggregate_seconds,
                }),
            };
            previous = Some(series.clone());
            Datapoint { series, value: entry.value, timestamp_ms }
        })
        .collect()
}

/// A scrape's `up`: 1 when the exposition was read, 0 when not (SPEC 8.3).
pub fn up_entry(prefix: &str, up: bool) -> Entry {
    Entry { name: format!("{prefix}up"), value: if up { 1.0 } else { 0.0 }, unit: Some("None"), dimensions: Vec::new() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::Dimension;

    fn base() -> Series {
        Series {
            flake: "web".to_string(),
            region: "eu-west-1".to_string(),
            namespace: "Test".to_string(),
            metric_name: "web".to_string(),
            dimensions: vec![("host".to_string(), "a".to_string())],
            unit: "Percent".to_string(),
            storage_resolution: 60,
            aggregate_seconds: None,
        }
    }

    #[test]
    fn entries_become_datapoints_with_the_flakes_dimensions_first() {
        let entries = vec![
            Entry { name: "x.load1".to_string(), value: 0.5, unit: None, dimensions: vec![Dimension::new("cpu", "0")] },
            Entry { name: "x.used".to_string(), value: 3.0, unit: Some("Bytes"), dimensions: vec![Dimension::new("host", "other")] },
        ];
        let points = datapoints(&base(), entries, 1_000);
        assert_eq!(points.len(), 2);
        assert_eq!(points[0].series.metric_name, "x.load1");
        assert_eq!(points[0].series.unit, "Percent");
        assert_eq!(points[0].series.dimensions, [("host".to_string(), "a".to_string()), ("cpu".to_string(), "0".to_string())]);
        assert_eq!(points[1].series.unit, "Bytes");
        assert_eq!(points[1].series.dimensions, [("host".to_string(), "a".to_string())]);
        assert!(points.iter().all(|point| point.timestamp_ms == 1_000 && point.series.namespace == "Test"));
    }

    fn prometheus_reader(max_series: usize) -> OutputReader {
        OutputReader {
            format: OutputFormat::Prometheus,
            rules: EntryRules::default(),
            selection: Selection::default(),
            max_series,
            counters: Mutex::new(CounterState::default()),
            keep_raw_counters: false,
            last_series: Mutex::default(),
        }
    }

    #[test]
    fn rejections_are_counted_and_only_the_first_kept() {
        let mut text = String::from("good 1\n");
        for index in 0..100_000 {
            text.push_str(&format!("bad_{index} not-a-number\n"));
        }
        let readout = prometheus_reader(200).read(text.as_bytes(), Some(0), false).unwrap();
        assert_eq!(readout.rejections.total(), 100_000);
        assert_eq!(readout.rejections.len(), crate::output::KEPT_REJECTIONS);
        assert!(readout.rejections[0].entry.starts_with("line 2"), "{:?}", readout.rejections[0]);
        assert_eq!(readout.entries.len(), 1);
    }

    #[test]
    fn a_million_series_are_capped_as_they_are_read_with_the_same_result() {
        // Printed in reverse sorted order, the worst case for the streaming cap.
        let text: String = (0..200_000).rev().map(|index| format!("s_{index:07} {index}\n")).collect();
        let readout = prometheus_reader(200).read(text.as_bytes(), Some(0), false).unwrap();
        assert_eq!((readout.series, readout.dropped_series, readout.entries.len()), (200, 199_800, 200));
        assert_eq!(readout.entries.iter().map(|entry| entry.name.as_str()).min(), Some("s_0000000"));
        assert_eq!(readout.entries.iter().map(|entry| entry.name.as_str()).max(), Some("s_0000199"));
    }

    #[test]
    fn merged_values_of_one_series_share_it() {
        let entry = |value| Entry { name: "g".to_string(), value, unit: None, dimensions: Vec::new() };
        let points = datapoints(&base(), vec![entry(1.0), entry(2.0)], 0);
        assert!(Arc::ptr_eq(&points[0].series, &points[1].series));
    }

    #[test]
    fn a_readers_datapoints_are_those_of_datapoints_and_share_the_last_runs_series() {
        let reader = prometheus_reader(100);
        let run = |values: &[(&str, &str, f64)]| -> Vec<Entry> {
            values
                .iter()
                .map(|(name, cpu, value)| Entry {
                    name: name.to_string(),
                    value: *value,
                    unit: None,
                    dimensions: vec![Dimension::new("cpu", *cpu), Dimension::new("host", "shadowed")],
                })
                .collect()
        };
        let first = run(&[("a", "0", 1.0), ("a", "1", 2.0), ("b", "0", 3.0)]);
        let points = reader.datapoints(&base(), first.clone(), 10);
        assert_eq!(points, datapoints(&base(), first, 10));
        // The same series again, one more in the middle, one name changed at the end.
        let second = run(&[("a", "0", 4.0), ("c", "9", 5.0), ("a", "1", 6.0), ("x", "0", 7.0)]);
        let again = reader.datapoints(&base(), second.clone(), 20);
        assert_eq!(again, datapoints(&base(), second, 20));
        assert!(Arc::ptr_eq(&again[0].series, &points[0].series), "a{{cpu=0}} kept its place");
        assert!(!Arc::ptr_eq(&again[2].series, &points[2].series));
        let third = run(&[("a", "0", 8.0), ("c", "9", 9.0)]);
        let last = reader.datapoints(&base(), third.clone(), 30);
        assert_eq!(last, datapoints(&base(), third, 30));
        assert!(Arc::ptr_eq(&last[1].series, &again[1].series));
        // Another base (a reloaded flake's series) shares nothing.
        let mut other = base();
        other.namespace = "Other".to_string();
        let moved = reader.datapoints(&other, run(&[("a", "0", 1.0)]), 40);
        assert_eq!(moved[0].series.namespace, "Other");
    }
}
