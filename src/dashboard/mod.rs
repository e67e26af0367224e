//! Dashboards as code (SPEC 11): one CloudWatch dashboard per host, kept in step with its flakes
//! the way the alarms are: every published metric on a graph, every alarm threshold and declared
//! limit drawn on it, every alarm listed, and a header saying who maintains it.
//!
//! `input` turns the catalog and the desired alarms into a neutral model of graphs and alarms;
//! `body` lays that out as the JSON CloudWatch takes (same flakes, same bytes); `reconcile` reads,
//! compares, writes and deletes (only what this host created, recorded by `owned`); `name` turns
//! `--dashboard` into a dashboard name.

mod body;
mod input;
mod name;
mod owned;
mod reconcile;

pub use body::{Account, Body, MAX_ALARMS_PER_WIDGET, MAX_WIDGETS, body, same_body};
pub use input::{AlarmRef, Annotation, DashboardInput, Fill, Graph, MAX_LINES, MetricLine, Search, Series, dashboard_input};
pub use name::dashboard_name;
pub use owned::{Owned, OwnedDashboard, OwnedFile};
pub use reconcile::{BodyChange, DashboardApplied, DashboardPlan, DashboardReconciler, Target};

/// The host named in the dashboard's header: its hostname, as `${hostname}` gives it.
pub fn host_label() -> String {
    use crate::placeholders::Facts;
    crate::placeholders::HostFacts::local().hostname().unwrap_or_else(|_| "an unnamed host".to_string())
}

#[cfg(test)]
mod tests;
