//! The flake file format: one JSON object per file, validated into an immutable [`Flake`].
//!
//! Files written for the original Python SpecialSnowflake load unchanged: numbers may be numeric
//! strings, comment keys (`_x`, `x_comment`) are silent, other unknown keys are warnings with a
//! suggestion. Validation reports every problem of a file at once, each with its field path.

mod aggregate;
mod alarm;
mod alarm_kinds;
#[cfg(test)]
mod alarm_kinds_tests;
mod annotations;
mod composite;
mod container;
mod context;
mod endpoints;
mod fields;
mod formats;
mod keys;
mod model;
mod monitor;
mod problem;
mod schema;
mod shared_fields;
mod units;
mod validate;

pub use alarm_kinds::EXPRESSION_ID;
pub use container::{FlakeContainer, ImageSource, Mount, PullPolicy, parse_memory};
pub use context::Context;
pub use fields::shorten;
pub use formats::{
    DEFAULT_MAX_SERIES, HeaderTemplate, MetricsSpec, OutputFormat, OutputSpec, ScrapeTarget, alarm_metric_problem, fill_header,
};
pub use keys::{ALARM_KEYS, ANNOTATION_KEYS, CONTAINER_KEYS, ENDPOINT_KEYS, FLAKE_KEYS, MATH_METRIC_KEYS, MONITOR_KEYS, MOUNT_KEYS};
pub use model::{Alarm, Annotation, Flake, FlakeKind, FlakeScope, MathMetric, MetricRef, MetricTarget, Statistic, Watch};
pub use monitor::FlakeMonitor;
pub use problem::{Problem, Severity};
pub use schema::flake_schema;
pub use shared_fields::namespace_problem;
pub use units::{UNITS, bytes_per, canonical_unit};
pub use validate::parse_flake;
