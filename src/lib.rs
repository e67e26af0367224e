//! SpecialSnowflake: runs shell commands on crontab schedules, publishes their numbers to Amazon
//! CloudWatch, and keeps their CloudWatch alarms exactly as declared.
//!
//! # Layout
//!
//! - [`flake`]: the flake file format and its validation into an immutable `Flake`.
//! - [`schedule`]: crontab lines, macros, `@every`, time zones; next fire times.
//! - [`placeholders`]: `${hostname}`, `${env:NAME}`, `${aws:...}` in dimensions and alarm names.
//! - [`catalog`]: a directory of flake files as a set of flakes, and what changed between loads.
//! - [`cloudwatch`]: the only user of the AWS SDK, behind a small trait with an in-memory fake.
//! - [`cli`]: the command line; `main.rs` only hands over to it.

pub mod alarms;
pub mod catalog;
pub mod cli;
pub mod cloudwatch;
pub mod creds;
pub mod daemon;
pub mod execution;
pub mod flake;
pub mod flakelog;
pub mod metrics;
pub mod monitor;
pub mod output;
pub mod placeholders;
pub mod publish;
pub mod runner;
pub mod schedule;
