//! SpecialSnowflake: runs shell commands on crontab schedules, publishes their numbers to Amazon
//! CloudWatch, and keeps their CloudWatch alarms exactly as declared.
//!
//! # Layout
//!
//! A flake file goes `flake` (validated) -> `catalog` (loaded, diffed) -> `daemon` (scheduled)
//! -> `execution` (run by `runner`, judged by `output`, logged by `flakelog`) -> `publish`
//! (spooled, batched) -> `cloudwatch`; its alarms go `alarms` (desired, planned, reconciled) ->
//! `cloudwatch`.
//!
//! - [`flake`]: the flake file format and its validation into an immutable `Flake`, every
//!   problem at once; the JSON Schema. Inside, `validate` (the file) sits above `alarm`,
//!   `alarm_kinds` and `monitor`, which share the field parsers of `shared_fields` below them.
//! - [`schedule`]: crontab lines, macros, `@every`, `@reboot`, time zones; next fire times.
//! - [`placeholders`]: `${hostname}`, `${env:NAME}`, `${aws:...}` in dimensions and alarm names.
//! - [`catalog`]: a directory of flake files as a set of flakes, last-good retention, and what
//!   changed between loads.
//! - [`runner`]: one command: `/bin/sh -c` in its own process group, or in a container of the
//!   flake's image through the engine; bounded capture, timeout.
//! - [`container`]: flakes in their own images (SPEC 14): the engine's socket and API client,
//!   the image keeper (pulls, builds), removal of what a crashed predecessor left.
//! - [`output`]: the number grammar of a command's output, and the JSON, Nagios and Prometheus
//!   parsers of SPEC 8.
//! - [`readout`]: a multi-metric run's output read by `flakeOutput` (counters kept across runs,
//!   the series guard), parsed off the runtime threads, and turned into datapoints of the one
//!   publish path.
//! - [`scrape`]: scrape flakes' HTTP(S) GET, gzip and the 16 MiB limit (SPEC 8.3).
//! - [`execution`]: one firing of one flake: run, judge, publish durably, log.
//! - [`outcome`]: the closed sets of outcomes (run results, PutMetricData outcomes, drop
//!   reasons), one word each for logs and metric labels.
//! - [`flakelog`]: the one owner and formatter of flake log lines; per-flake files, daily
//!   rotation, redaction, writes off the runtime threads.
//! - [`creds`]: `creds.json` and the one redactor for every output (logs, `once`, errors, the
//!   status page): it masks secrets, then bounds untrusted text's length.
//! - [`publish`]: batches per region and namespace, pacing, retries, bisection of rejected
//!   batches, and the durable spool behind one async handle.
//! - [`alarms`]: desired alarms, normalisation and diff, the managed-names file, plan, reconcile
//!   (by name, in proportion to this host's own alarms), and the fleet-spreading drift cadence.
//! - [`monitor`]: cron monitoring of jobs (SPEC 9): deadlines from the schedule, durable last
//!   successes, job values and alarm declarations; the daemon's overdue task publishes them.
//! - [`dashboard`]: the host's CloudWatch dashboard as code: graphs of every metric with alarm
//!   thresholds and declared limits, the alarm list, reconciled like the alarms (SPEC 11).
//! - [`cluster`]: cluster flakes (SPEC 15): member leases and exclusive claims in S3 behind a
//!   small trait (S3, and an in-memory fake), answering the scheduler's one question "may this
//!   daemon run this flake now?"; cluster flakes' alarms owned by the cluster (`owned/<flake>`
//!   records), reconciled by the holder only and deleted once when every live member agrees.
//! - [`cloudwatch`]: the only user of the AWS SDK, behind a small trait with an in-memory fake
//!   and a dry-run printer.
//! - [`statefile`]: the small JSON files of `--state-dir`, replaced atomically, set aside when
//!   damaged in any way.
//! - [`metrics`]: the daemon's Prometheus registry, served at `/metrics`.
//! - [`status`]: what the daemon is doing now: the cells components write as they go, assembled
//!   into `/status.json` and the page at `/` (SPEC 16), one snapshot shared by every reader for
//!   up to a second, read by `snowflake status`.
//! - [`daemon`]: the daemon as a library: a fallible `start` that opens everything before any
//!   flake runs, the scheduler, hot reload, reconcile loop, `/healthz`, heartbeat, and `stop`;
//!   a panic in any of its tasks stops it loudly.
//! - [`cli`]: the command line, signals and process-wide setup (the program's own log writer, which
//!   masks secrets with the process's one redactor from [`creds`]); `main.rs` only hands over to it.

pub mod alarms;
pub mod catalog;
pub mod cli;
pub mod cloudwatch;
pub mod cluster;
pub mod container;
pub mod creds;
pub mod daemon;
pub mod dashboard;
pub mod execution;
pub mod flake;
pub mod flakelog;
pub mod metrics;
pub mod monitor;
pub mod outcome;
pub mod output;
pub mod placeholders;
pub mod publish;
pub mod readout;
pub mod runner;
pub mod schedule;
pub mod scrape;
pub mod statefile;
pub mod status;
