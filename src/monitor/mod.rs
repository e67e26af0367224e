//! Jobs as cron monitors (SPEC 9).
pub mod deadline;
pub mod state;
