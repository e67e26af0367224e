//! What is the daemon doing now (SPEC 16): `GET /status.json`, the page at `GET /`, and what
//! `snowflake status` reads.
//!
//! The facts already live with the components that make them; this module only gives them a
//! place to be read from. The scheduler, the runs, the reloader and the reconcile loop write
//! small cells of the [`StatusBoard`] as they go (atomics, or a lock held for a copy); the
//! publisher's last request and oldest undelivered datapoint sit beside its counters in
//! `Metrics`; job deadlines come from the monitors. A request assembles a [`Status`] from them
//! ([`snapshot`]), which the listener serves as JSON or renders ([`html`]). Nothing here calls
//! CloudWatch: alarm states are the ones the last reconcile read.
//!
//! - [`model`]: the serialized shape, shared with `snowflake status`.
//! - [`board`]: the cells and who writes them.
//! - [`snapshot`]: the cells at one instant, as a [`Status`].
//! - [`html`]: the page.
//! - [`shared`]: one snapshot and its bodies, shared by the listener's readers for up to a second.
//! - [`verdict`]: Nagios-style exit codes and status line.
//! - [`text`]: redacting and bounding untrusted text; spans of time.

pub mod board;
pub mod html;
pub mod model;
pub mod shared;
pub mod snapshot;
pub mod text;
pub mod verdict;

pub use board::{FlakeCell, StatusBoard};
pub use model::Status;
pub use snapshot::{HealthInput, snapshot};
pub use verdict::{Verdict, judge};
