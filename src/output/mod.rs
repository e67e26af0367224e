//! What a command printed, read as metrics: one number (SPEC 2.2) or, by `flakeOutput`, many
//! entries from JSON, Nagios plugin output or Prometheus text (SPEC 8, 8.2).
//!
//! Every parser here is a pure function of the bytes it is given. The multi-metric formats all
//! produce the same [`Entry`] (name, value, unit, dimensions) plus one [`Rejection`] per entry
//! that could not be read, so a run publishes every good entry through the one publish path and
//! logs the bad ones with their reasons; only output that cannot be read at all is an
//! [`Unreadable`] failure of the whole run.
//!
//! How a run's output becomes datapoints (the flake's `flakeDimensions` go before each entry's):
//!
//! ```text
//! json::parse(stdout, truncated, &rules)?              -> Parsed { entries, rejections }
//! nagios::parse(stdout, exit_code, truncated, &rules)? -> PluginOutput { state, summary, parsed }
//! prometheus::parse(body, truncated, &selection, &rules)?  -> Scrape { samples, rejections }
//!     counter_state.entries(scrape.samples)            (a run; raw_entries(samples) for `once`)
//! series_guard::cap_series(entries, flake_max_series)  -> Guarded { entries, series, dropped_series }
//! ```
//!
//! Entries with equal name and dimensions are values of one series (merged Prometheus gauges):
//! the publish path may send them as one datum with `Values`.

pub mod counters;
mod entry;
pub mod exposition;
pub mod json;
pub mod nagios;
mod number;
pub mod prometheus;
pub mod series_guard;

pub use entry::{Dimension, Entry, EntryRules, KEPT_REJECTIONS, Parsed, Rejection, Rejections, Unreadable};
pub use number::{Rejected, parse_value};
