//! Alarms as code: the alarms flakes declare are created, corrected when they drift, and deleted
//! when no flake declares them any more, but only if this host created them.

pub mod cadence;
mod compare;
mod desired;
mod managed;
mod order;
mod plan;
mod reconcile;
mod shape;

pub use compare::{FieldChange, differences, normalize};
pub use desired::{DesiredAlarm, Skipped, desired_alarms};
pub use managed::{Managed, ManagedFile, Record};
pub use plan::{Delete, Plan, Scope, TagChange, Update};
pub use reconcile::{Applied, Ownership, ReconcileConfig, Reconciler};
