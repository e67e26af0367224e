//! The daemon's own numbers, served at `GET /metrics` in the Prometheus/OpenMetrics text format.
//!
//! One [`Metrics`] is shared by every component; each updates its counters directly (they are
//! atomics), and the HTTP handler encodes the registry on request.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};

use strum::VariantArray;

use crate::outcome::{DropReason, PutOutcome, RunResult};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RunLabels {
    pub flake: String,
    /// [`RunResult::as_str`]
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FlakeLabels {
    pub flake: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// [`PutOutcome::as_str`]
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    /// [`DropReason::as_str`]
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ActionLabels {
    /// create, update, delete, tag, untag
    pub action: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    /// loaded, enabled, invalid
    pub state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ContainerLabels {
    /// ok, failed
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct S3RequestLabels {
    /// put, get, list, delete
    pub kind: &'static str,
    /// ok, lost (a conditional write another member won), error
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClaimChangeLabels {
    /// taken, released, lost
    pub change: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OwnedAlarmLabels {
    /// reconciled (a held flake's alarms, by its holder), deleted (alarms of a flake gone from
    /// every live member), declined (a delete held back: members disagree or may), damaged (an
    /// ownership record that cannot be understood: nothing in it is deleted)
    pub action: &'static str,
}

/// All of the daemon's metrics.
pub struct Metrics {
    registry: Registry,
    pub runs: Family<RunLabels, Counter>,
    pub run_duration: Histogram,
    pub lateness: Histogram,
    pub skipped_overlaps: Family<FlakeLabels, Counter>,
    /// Distinct series a multi-metric flake's last run published (SPEC 8).
    pub flake_series: Family<FlakeLabels, Gauge>,
    /// Series the `flakeMaxSeries` guard kept from being published.
    pub series_dropped: Family<FlakeLabels, Counter>,
    pub datapoints_published: Counter,
    pub datapoints_rejected: Counter,
    /// Datums sent with `Values` and `Counts`, and the datapoints folded into them.
    pub folded_datums: Counter,
    pub folded_datapoints: Counter,
    pub put_metric_data_calls: Family<OutcomeLabels, Counter>,
    pub spool_bytes: Gauge,
    pub spool_datapoints: Gauge,
    /// 1 while the spool cannot be written (datapoints are sent without a durable copy).
    pub spool_write_failing: Gauge,
    pub spool_dropped: Family<ReasonLabels, Counter>,
    pub alarm_changes: Family<ActionLabels, Counter>,
    pub flakes: Family<StateLabels, Gauge>,
    pub clock_jumps: Counter,
    pub spool_corrupt_segments: Counter,
    pub http_connections_refused: Counter,
    /// Flakes in their own images (SPEC 14): containers started (or not), create-to-started
    /// latency, pulls and builds.
    pub container_starts: Family<ContainerLabels, Counter>,
    pub container_start_latency: Histogram,
    pub image_pulls: Family<ContainerLabels, Counter>,
    pub image_builds: Family<ContainerLabels, Counter>,
    /// Cluster flakes this member holds and trusts (SPEC 15).
    pub cluster_claims_held: Gauge,
    /// Live members of the cluster as this member last listed them.
    pub cluster_members: Gauge,
    pub cluster_claim_changes: Family<ClaimChangeLabels, Counter>,
    pub cluster_s3_requests: Family<S3RequestLabels, Counter>,
    /// Decisions about cluster flakes' alarms (SPEC 15), per flake (deleted: per alarm).
    pub cluster_owned_alarms: Family<OwnedAlarmLabels, Counter>,
    /// The last PutMetricData and the oldest undelivered datapoint, for the status page.
    pub publishing: PublishingStatus,
}

/// What the status page shows about publishing that the registry does not keep: plain atomics
/// the publisher stores as it goes.
#[derive(Debug)]
pub struct PublishingStatus {
    last_put_ms: AtomicI64,
    /// Index into [`PutOutcome::VARIANTS`].
    last_put_outcome: AtomicUsize,
    last_put_micros: AtomicU64,
    oldest_undelivered_ms: AtomicI64,
}

/// Stands for "none yet" in [`PublishingStatus`].
const NO_TIME: i64 = i64::MIN;

impl Default for PublishingStatus {
    fn default() -> Self {
        PublishingStatus {
            last_put_ms: AtomicI64::new(NO_TIME),
            last_put_outcome: AtomicUsize::new(0),
            last_put_micros: AtomicU64::new(0),
            oldest_undelivered_ms: AtomicI64::new(NO_TIME),
        }
    }
}

impl PublishingStatus {
    /// A PutMetricData request ended now with `outcome` after `latency`.
    pub fn put(&self, outcome: PutOutcome, latency: std::time::Duration) {
        let index = PutOutcome::VARIANTS.iter().position(|known| *known == outcome).unwrap_or(0);
        self.last_put_outcome.store(index, Ordering::Relaxed);
        self.last_put_micros.store(latency.as_micros() as u64, Ordering::Relaxed);
        self.last_put_ms.store(chrono::Utc::now().timestamp_millis(), Ordering::Relaxed);
    }

    /// When, how and how fast the last request went; `None` before the first.
    pub fn last_put(&self) -> Option<(i64, PutOutcome, std::time::Duration)> {
        let at = self.last_put_ms.load(Ordering::Relaxed);
        (at != NO_TIME).then(|| {
            let outcome = PutOutcome::VARIANTS[self.last_put_outcome.load(Ordering::Relaxed).min(PutOutcome::VARIANTS.len() - 1)];
            (at, outcome, std::time::Duration::from_micros(self.last_put_micros.load(Ordering::Relaxed)))
        })
    }

    /// The timestamp (milliseconds) of the oldest datapoint not yet delivered, if any waits.
    pub fn set_oldest_undelivered(&self, timestamp_ms: Option<i64>) {
        self.oldest_undelivered_ms.store(timestamp_ms.unwrap_or(NO_TIME), Ordering::Relaxed);
    }

    pub fn oldest_undelivered(&self) -> Option<i64> {
        Some(self.oldest_undelivered_ms.load(Ordering::Relaxed)).filter(|at| *at != NO_TIME)
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("snowflake");
        let metrics = Metrics {
            runs: Family::default(),
            // 1 ms to about a minute.
            run_duration: Histogram::new(exponential_buckets(0.001, 2.0, 17)),
            // 1 ms to about 16 s.
            lateness: Histogram::new(exponential_buckets(0.001, 2.0, 15)),
            skipped_overlaps: Family::default(),
            flake_series: Family::default(),
            series_dropped: Family::default(),
            datapoints_published: Counter::default(),
            datapoints_rejected: Counter::default(),
            folded_datums: Counter::default(),
            folded_datapoints: Counter::default(),
            put_metric_data_calls: Family::default(),
            spool_bytes: Gauge::default(),
            spool_datapoints: Gauge::default(),
            spool_write_failing: Gauge::default(),
            spool_dropped: Family::default(),
            alarm_changes: Family::default(),
            flakes: Family::default(),
            clock_jumps: Counter::default(),
            spool_corrupt_segments: Counter::default(),
            http_connections_refused: Counter::default(),
            container_starts: Family::default(),
            // 10 ms to about 80 s.
            container_start_latency: Histogram::new(exponential_buckets(0.01, 2.0, 14)),
            image_pulls: Family::default(),
            image_builds: Family::default(),
            cluster_claims_held: Gauge::default(),
            cluster_members: Gauge::default(),
            cluster_claim_changes: Family::default(),
            cluster_s3_requests: Family::default(),
            cluster_owned_alarms: Family::default(),
            publishing: PublishingStatus::default(),
            registry: Registry::default(),
        };
        registry.register("runs", "Flake runs by flake and result", metrics.runs.clone());
        registry.register("run_duration_seconds", "Run time of flake commands", metrics.run_duration.clone());
        registry.register("run_lateness_seconds", "Command start minus scheduled fire time", metrics.lateness.clone());
        registry.register("skipped_overlaps", "Firings skipped because the previous run was still going", metrics.skipped_overlaps.clone());
        registry.register("flake_series", "Distinct series the last run of a multi-metric flake published", metrics.flake_series.clone());
        registry.register(
            "series_dropped",
            "Series not published because a run yielded more than flakeMaxSeries",
            metrics.series_dropped.clone(),
        );
        registry.register("datapoints_published", "Datapoints CloudWatch accepted", metrics.datapoints_published.clone());
        registry.register(
            "datapoints_rejected",
            "Datapoints CloudWatch rejected as invalid (dropped, logged)",
            metrics.datapoints_rejected.clone(),
        );
        registry.register(
            "folded_datums",
            "Datums CloudWatch accepted that carry several datapoints (Values and Counts: flakeAggregate windows, merged series)",
            metrics.folded_datums.clone(),
        );
        registry.register("folded_datapoints", "Datapoints CloudWatch accepted inside folded datums", metrics.folded_datapoints.clone());
        registry.register("put_metric_data_calls", "PutMetricData requests by outcome", metrics.put_metric_data_calls.clone());
        registry.register("spool_bytes", "Size of the durable spool on disk", metrics.spool_bytes.clone());
        registry.register("spool_datapoints", "Datapoints waiting in the spool", metrics.spool_datapoints.clone());
        registry.register(
            "spool_write_failing",
            "1 while the spool cannot be written and datapoints go out without a durable copy",
            metrics.spool_write_failing.clone(),
        );
        registry.register(
            "spool_dropped_datapoints",
            "Datapoints dropped from the spool by age or size limit",
            metrics.spool_dropped.clone(),
        );
        registry.register("alarm_changes", "Alarm writes by action", metrics.alarm_changes.clone());
        registry.register("flakes", "Flakes by state", metrics.flakes.clone());
        registry.register("cluster_claims_held", "Cluster flakes this member holds and trusts", metrics.cluster_claims_held.clone());
        registry.register("cluster_members", "Live cluster members in this member's last listing", metrics.cluster_members.clone());
        registry.register("cluster_claim_changes", "Claims this member took, released or lost", metrics.cluster_claim_changes.clone());
        registry.register(
            "cluster_s3_requests",
            "S3 requests of the cluster member by kind and result",
            metrics.cluster_s3_requests.clone(),
        );
        registry.register(
            "cluster_owned_alarms",
            "Cluster flakes' alarms: flakes reconciled by their holder, alarms deleted once their flake is gone, deletes declined while members disagree, damaged ownership records",
            metrics.cluster_owned_alarms.clone(),
        );
        registry.register("clock_jumps", "Wall-clock jumps the scheduler re-planned around", metrics.clock_jumps.clone());
        registry.register(
            "spool_corrupt_segments",
            "Spool segments found damaged at start (not a torn tail); a copy is kept in spool/corrupt",
            metrics.spool_corrupt_segments.clone(),
        );
        registry.register(
            "http_connections_refused",
            "Connections to --listen closed at once because the connection cap was reached",
            metrics.http_connections_refused.clone(),
        );
        registry.register("container_starts", "Containers of flakes started (ok) or not (failed)", metrics.container_starts.clone());
        registry.register(
            "container_start_latency_seconds",
            "From creating a flake's container to its start",
            metrics.container_start_latency.clone(),
        );
        registry.register("image_pulls", "Image pulls for flakeImage by outcome", metrics.image_pulls.clone());
        registry.register("image_builds", "Image builds for flakeBuild by outcome", metrics.image_builds.clone());
        for outcome in ["ok", "failed"] {
            let labels = ContainerLabels { outcome };
            let _ = metrics.container_starts.get_or_create(&labels);
            let _ = metrics.image_pulls.get_or_create(&labels);
            let _ = metrics.image_builds.get_or_create(&labels);
        }
        // Known series start at zero, so dashboards and rate() see them before the first event.
        for outcome in PutOutcome::VARIANTS {
            let _ = metrics.put_metric_data_calls.get_or_create(&OutcomeLabels { outcome: outcome.as_str() });
        }
        for reason in DropReason::VARIANTS {
            let _ = metrics.spool_dropped.get_or_create(&ReasonLabels { reason: reason.as_str() });
        }
        for action in ["create", "update", "delete", "tag"] {
            let _ = metrics.alarm_changes.get_or_create(&ActionLabels { action: action.to_string() });
        }
        for state in ["loaded", "enabled", "invalid"] {
            let _ = metrics.flakes.get_or_create(&StateLabels { state: state.to_string() });
        }
        Metrics { registry, ..metrics }
    }

    /// The registry in text exposition format.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry).expect("writing to a String cannot fail");
        text
    }

    pub fn run(&self, flake: &str, result: RunResult) {
        self.runs.get_or_create(&RunLabels { flake: flake.to_string(), result: result.as_str() }).inc();
    }

    /// Counts the datapoints of datums CloudWatch accepted, and of the folded ones among them.
    pub fn count_delivered(&self, data: &[crate::cloudwatch::Datum]) {
        for datum in data {
            let datapoints = datum.sample_count();
            self.datapoints_published.inc_by(datapoints);
            if !datum.counted_values.is_empty() {
                self.folded_datums.inc();
                self.folded_datapoints.inc_by(datapoints);
            }
        }
    }

    pub fn put_call(&self, outcome: PutOutcome) {
        self.put_metric_data_calls.get_or_create(&OutcomeLabels { outcome: outcome.as_str() }).inc();
    }

    /// PutMetricData calls so far whose outcome's label is `outcome` (as in /metrics).
    pub fn put_calls(&self, outcome: &str) -> u64 {
        let Some(outcome) = PutOutcome::VARIANTS.iter().find(|known| known.as_str() == outcome) else { return 0 };
        self.put_metric_data_calls.get(&OutcomeLabels { outcome: outcome.as_str() }).map_or(0, |counter| counter.get())
    }

    pub fn alarm_change(&self, action: &str) {
        self.alarm_changes.get_or_create(&ActionLabels { action: action.to_string() }).inc();
    }

    pub fn spool_drop(&self, reason: DropReason, count: u64) {
        self.spool_dropped.get_or_create(&ReasonLabels { reason: reason.as_str() }).inc_by(count);
    }

    pub fn skipped_overlap(&self, flake: &str) {
        self.skipped_overlaps.get_or_create(&FlakeLabels { flake: flake.to_string() }).inc();
    }

    /// Flakes loaded (running or not), enabled, and files that do not validate.
    pub fn set_flakes(&self, loaded: usize, enabled: usize, invalid: usize) {
        for (state, count) in [("loaded", loaded), ("enabled", enabled), ("invalid", invalid)] {
            self.flakes.get_or_create(&StateLabels { state: state.to_string() }).set(count as i64);
        }
    }

    /// Drops a removed flake's series so a churning flakes directory does not grow /metrics.
    pub fn forget_flake(&self, flake: &str) {
        for result in RunResult::VARIANTS {
            self.runs.remove(&RunLabels { flake: flake.to_string(), result: result.as_str() });
        }
        let labels = FlakeLabels { flake: flake.to_string() };
        self.skipped_overlaps.remove(&labels);
        self.flake_series.remove(&labels);
        self.series_dropped.remove(&labels);
    }

    /// A multi-metric run's series: how many went out, how many the guard dropped.
    pub fn series(&self, flake: &str, published: usize, dropped: usize) {
        let labels = FlakeLabels { flake: flake.to_string() };
        self.flake_series.get_or_create(&labels).set(published as i64);
        if dropped > 0 {
            self.series_dropped.get_or_create(&labels).inc_by(dropped as u64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_counters_with_labels_and_forgets_flakes() {
        let metrics = Metrics::new();
        metrics.run("disk", RunResult::Ok);
        metrics.run("disk", RunResult::Ok);
        metrics.put_call(PutOutcome::Ok);
        metrics.lateness.observe(0.004);
        let text = metrics.encode();
        assert!(text.contains("snowflake_runs_total{flake=\"disk\",result=\"ok\"} 2"), "{text}");
        assert!(text.contains("snowflake_put_metric_data_calls_total{outcome=\"ok\"} 1"), "{text}");
        assert!(text.contains("snowflake_run_lateness_seconds_count 1"), "{text}");
        metrics.series("disk", 12, 3);
        let text = metrics.encode();
        assert!(text.contains("snowflake_flake_series{flake=\"disk\"} 12"), "{text}");
        assert!(text.contains("snowflake_series_dropped_total{flake=\"disk\"} 3"), "{text}");
        metrics.forget_flake("disk");
        assert!(!metrics.encode().contains("flake=\"disk\""));
    }
}
