//! A value on its way to CloudWatch, and the series it belongs to.
//!
//! Everything that is the same for every run of a flake lives in a shared [`Series`], so a queued
//! datapoint costs a pointer, a value and a timestamp: a long outage's backlog stays small in memory.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::cloudwatch::Datum;
use crate::flake::Flake;

/// Where a flake's values go: region, namespace, metric, dimensions, unit, resolution.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Series {
    /// The flake whose log hears about rejected values.
    pub flake: String,
    pub region: String,
    pub namespace: String,
    pub metric_name: String,
    pub dimensions: Vec<(String, String)>,
    pub unit: String,
    pub storage_resolution: i32,
    /// `flakeAggregate`: values whose timestamps fall in one window of this many seconds go out
    /// as one datum at the window's start, once it has closed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aggregate_seconds: Option<u32>,
}

impl Series {
    /// The series of `flake`, if it publishes at all; `default_region` applies when the flake names
    /// none. Errors when no region is known.
    pub fn of_flake(flake: &Flake, default_region: Option<&str>) -> Result<Option<Arc<Series>>, String> {
        let Some(metric) = &flake.metric else { return Ok(None) };
        let region = flake.region.as_deref().or(default_region).ok_or_else(|| {
            "no AWS region is configured: set AWS_REGION (or a profile's region), or flakeRegion in the flake".to_string()
        })?;
        Ok(Some(Arc::new(Series {
            flake: flake.name.clone(),
            region: region.to_string(),
            namespace: metric.namespace.clone(),
            metric_name: metric.metric_name.clone(),
            dimensions: metric.dimensions.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            unit: metric.unit.to_string(),
            storage_resolution: metric.storage_resolution,
            aggregate_seconds: metric.aggregate_seconds,
        })))
    }

    /// PutMetricData calls are per region and namespace.
    pub fn queue_key(&self) -> QueueKey {
        (self.region.clone(), self.namespace.clone())
    }
}

/// CloudWatch does not accept datapoints older than two weeks: the one statement of that rule.
pub const MAX_AGE: Duration = Duration::from_secs(14 * 24 * 3600);

/// (region, namespace)
pub type QueueKey = (String, String);

/// One value at one time.
#[derive(Debug, Clone, PartialEq)]
pub struct Datapoint {
    pub series: Arc<Series>,
    pub value: f64,
    /// The scheduled fire time, in milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
}

impl Datapoint {
    /// The datum of this value alone, at its [`Datapoint::datum_timestamp_ms`].
    pub fn datum(&self) -> Datum {
        Datum {
            metric_name: self.series.metric_name.clone(),
            dimensions: self.series.dimensions.clone(),
            value: self.value,
            counted_values: Vec::new(),
            timestamp_ms: self.datum_timestamp_ms(),
            unit: self.series.unit.clone(),
            storage_resolution: self.series.storage_resolution,
        }
    }

    /// The timestamp it is sent with: its own, or the start of its aggregation window.
    pub fn datum_timestamp_ms(&self) -> i64 {
        match self.series.aggregate_seconds {
            Some(seconds) => {
                let window = i64::from(seconds) * 1000;
                self.timestamp_ms - self.timestamp_ms.rem_euclid(window)
            }
            None => self.timestamp_ms,
        }
    }

    /// When its aggregation window ends (ms since the epoch); `None` if it is not aggregated.
    pub fn window_end_ms(&self) -> Option<i64> {
        let seconds = self.series.aggregate_seconds?;
        Some(self.datum_timestamp_ms() + i64::from(seconds) * 1000)
    }

    /// Older than CloudWatch accepts at `now_ms`: it can only be dropped.
    pub fn is_too_old(&self, now_ms: i64) -> bool {
        self.timestamp_ms < now_ms - MAX_AGE.as_millis() as i64
    }

    /// A generous estimate of this datum's share of a PutMetricData request, for the 1 MB limit.
    pub fn estimated_bytes(&self) -> usize {
        let dimensions: usize = self.series.dimensions.iter().map(|(name, value)| name.len() + value.len() + 32).sum();
        self.series.metric_name.len() + self.series.unit.len() + dimensions + 96
    }
}
