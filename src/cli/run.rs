//! `snowflake run`: the daemon's own flags, and handing over to `daemon::run`.

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use super::GlobalOptions;
use super::setup;
use super::values::{Listen, parse_listen, parse_size};
use crate::daemon::{DaemonConfig, run as run_daemon};
use crate::schedule::parse_flag_duration;

#[derive(Args, Debug, Clone)]
pub struct RunOptions {
    /// Address of GET /healthz and GET /metrics, or "off".
    #[arg(long, env = "SNOWFLAKE_LISTEN", default_value = "127.0.0.1:9731", value_name = "ADDR", value_parser = parse_listen)]
    pub listen: Listen,

    /// Correct alarm drift this often (jittered, so hosts of a fleet spread out); alarms are also
    /// reconciled at start and whenever flake files change. The default keeps 10,000 hosts within a
    /// third of CloudWatch's account-wide DescribeAlarms quota; a small fleet may set 5m.
    #[arg(long, env = "SNOWFLAKE_RECONCILE_INTERVAL", default_value = "1h", value_name = "DURATION", value_parser = parse_flag_duration)]
    pub reconcile_interval: Duration,

    /// Rescan the flakes directory this often, in case file watching misses a change.
    #[arg(long, env = "SNOWFLAKE_RESCAN_INTERVAL", default_value = "4s", value_name = "DURATION", value_parser = parse_flag_duration)]
    pub rescan_interval: Duration,

    /// On SIGTERM/SIGINT, how long running commands may finish before they are terminated.
    #[arg(long, env = "SNOWFLAKE_SHUTDOWN_GRACE", default_value = "10s", value_name = "DURATION", value_parser = parse_flag_duration)]
    pub shutdown_grace: Duration,

    /// Largest size of the spool of undelivered datapoints (e.g. 256MiB); beyond it the oldest are dropped.
    #[arg(long, env = "SNOWFLAKE_SPOOL_MAX_BYTES", default_value = "256MiB", value_name = "SIZE", value_parser = parse_size)]
    pub spool_max_bytes: u64,

    /// Publish SnowflakeHeartbeat = 1 every minute (Host dimension) to this namespace.
    #[arg(long, env = "SNOWFLAKE_HEARTBEAT_NAMESPACE", value_name = "NAMESPACE")]
    pub heartbeat_namespace: Option<String>,
}

pub async fn run(options: &GlobalOptions, run: &RunOptions) -> ExitCode {
    if let Some(namespace) = &run.heartbeat_namespace
        && let Some(reason) = crate::flake::namespace_problem(namespace)
    {
        eprintln!("error: --heartbeat-namespace {namespace:?}: {reason}");
        return ExitCode::from(2);
    }
    let (creds, logs) = match setup::creds_and_logs(options) {
        Ok(pair) => pair,
        Err(reason) => {
            eprintln!("error: {reason}");
            return ExitCode::FAILURE;
        }
    };
    let config = DaemonConfig {
        flakes_dir: options.flakes.clone(),
        state_dir: options.state_dir.clone(),
        workdir: options.workdir.clone(),
        dry_run: options.dry_run,
        listen: run.listen.0,
        reconcile_interval: run.reconcile_interval,
        rescan_interval: run.rescan_interval.max(Duration::from_millis(100)),
        shutdown_grace: run.shutdown_grace,
        spool_max_bytes: run.spool_max_bytes,
        heartbeat_namespace: run.heartbeat_namespace.clone(),
        max_concurrent_runs: options.max_concurrent_runs as usize,
        command_nice: options.command_nice,
        publisher: setup::publisher_config(options),
    };
    let backend = setup::backend(options).await;
    crate::runner::supervise_descendants();
    match run_daemon(config, creds, logs, backend, setup::loader(options)).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(reason) => {
            tracing::error!("{reason}");
            eprintln!("error: {reason}");
            ExitCode::FAILURE
        }
    }
}
