//! Publishing datapoints to CloudWatch without losing any: batching per (region, namespace),
//! pacing, retries with backoff, bisection of rejected batches, and the spool they wait in.

mod datapoint;
mod fold;
mod hold;
mod pace;
mod publisher;
mod queue;
mod send;
pub mod spool;
mod window;

pub use datapoint::{Datapoint, MAX_AGE, QueueKey, Series};
pub use hold::Hold;
pub use pace::Pace;

/// Spooled datapoints left by a previous run, with their sequence numbers, oldest first.
pub type Replay = Vec<(u64, Datapoint)>;
pub use publisher::{Accepted, DEFAULT_MAX_HOLD, DrainReport, PublisherConfig, PublisherHandle, spawn_publisher};
