//! `snowflake run`: the daemon's own flags, the process-wide setup (signals, open-file limit),
//! and handing over to the `daemon` library.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use tokio::signal::unix::{SignalKind, signal};

use super::setup;
use super::values::{Listen, parse_listen, parse_size};
use super::{GlobalOptions, note};
use crate::cluster::Timings;
use crate::cluster::s3::S3Store;
use crate::daemon::{self, ClusterJoin, DaemonConfig, Services};
use crate::publish::{DEFAULT_MAX_HOLD, PublisherConfig};
use crate::schedule::parse_flag_duration;

#[derive(Args, Debug, Clone)]
pub struct RunOptions {
    /// Address of GET /healthz, GET /metrics, GET /status.json and the status page (GET /), or "off".
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

    /// Spread the runs due at the same time over up to this long (e.g. 20s): each flake starts at a
    /// stable offset (a hash of host and flake name, below its interval), while its datapoint and
    /// SNOWFLAKE_SCHEDULED_TIME keep the scheduled time. 0 (the default) starts them at once, as cron.
    #[arg(long, env = "SNOWFLAKE_SPLAY", default_value = "0s", value_name = "DURATION", value_parser = parse_splay)]
    pub splay: Duration,

    /// This daemon's name in the cluster (default the host name; placeholders such as ${env:POD_NAME} allowed).
    #[arg(long, env = "SNOWFLAKE_CLUSTER_MEMBER", value_name = "NAME")]
    pub cluster_member: Option<String>,
    /// "off" stops serving /status.json and the status page at / (/healthz and /metrics stay).
    #[arg(long, env = "SNOWFLAKE_STATUS_PAGE", default_value = "on", value_name = "on|off", value_parser = parse_on_off, action = clap::ArgAction::Set)]
    pub status_page: bool,

    /// Publish SnowflakeHeartbeat = 1 every minute (Host dimension) to this namespace.
    #[arg(long, env = "SNOWFLAKE_HEARTBEAT_NAMESPACE", value_name = "NAMESPACE")]
    pub heartbeat_namespace: Option<String>,
}

pub async fn run(options: &GlobalOptions, run: &RunOptions) -> ExitCode {
    if let Some(namespace) = &run.heartbeat_namespace
        && let Some(reason) = crate::flake::namespace_problem(namespace)
    {
        note(format_args!("error: --heartbeat-namespace {namespace:?}: {reason}"));
        return ExitCode::from(2);
    }
    let dashboard = match setup::dashboard_name(options).await {
        Ok(dashboard) => dashboard,
        Err(reason) => {
            note(format_args!("error: {reason}"));
            return ExitCode::from(2);
        }
    };
    let member = match cluster_member(run).await {
        Ok(member) => member,
        Err(reason) => {
            note(format_args!("error: {reason}"));
            return ExitCode::from(2);
        }
    };
    match serve(options, run, dashboard, member).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(reason) => {
            tracing::error!("{reason}");
            note(format_args!("error: {reason}"));
            ExitCode::FAILURE
        }
    }
}

/// The daemon with the real CloudWatch (or the dry-run printer), stopped by SIGTERM or SIGINT (a
/// second one cuts the shutdown grace short); SIGHUP re-reads every flake file.
async fn serve(options: &GlobalOptions, run: &RunOptions, dashboard: Option<String>, member: String) -> Result<(), String> {
    let mut terminate = signal(SignalKind::terminate()).map_err(|error| format!("cannot handle SIGTERM: {error}"))?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(|error| format!("cannot handle SIGINT: {error}"))?;
    let mut hangup = signal(SignalKind::hangup()).map_err(|error| format!("cannot handle SIGHUP: {error}"))?;
    raise_open_file_limit();
    if std::process::id() == 1 {
        tracing::warn!(
            "running as PID 1 without an init: exited grandchildren of flake commands are not reaped; use the image's tini or `docker run --init`"
        );
    }
    let (creds, logs) = setup::creds_and_logs(options)?;
    let config = DaemonConfig {
        flakes_dir: options.flakes.clone(),
        state_dir: options.state_dir.clone(),
        workdir: options.workdir.clone(),
        dry_run: options.dry_run,
        listen: run.listen.0,
        status_page: run.status_page,
        reconcile_interval: run.reconcile_interval,
        rescan_interval: run.rescan_interval.max(Duration::from_millis(100)),
        shutdown_grace: run.shutdown_grace,
        spool_max_bytes: run.spool_max_bytes,
        heartbeat_namespace: run.heartbeat_namespace.clone(),
        dashboard,
        max_concurrent_runs: options.max_concurrent_runs as usize,
        command_nice: options.command_nice,
        splay: run.splay,
        // A splayed firing lasts up to the splay: its partial batch may wait that long too.
        publisher: PublisherConfig {
            max_hold: DEFAULT_MAX_HOLD + run.splay,
            unspooled_max_bytes: run.spool_max_bytes,
            ..setup::publisher_config(options)
        },
        container_engine: options.container_engine.clone(),
    };
    let backend = setup::redacting_backend(options, logs.redactor()).await;
    crate::runner::supervise_descendants();
    let services =
        Services { default_region: backend.default_region(), cloudwatch: Arc::new(backend), creds, logs, loader: setup::loader(options) };
    let cluster = match &options.cluster {
        Some(location) if !options.dry_run => Some(ClusterJoin {
            location: location.clone(),
            member,
            timings: Timings::default(),
            store: S3Store::from_env(location.clone()).await,
        }),
        Some(_) => {
            tracing::warn!("--dry-run: not joining the cluster; cluster flakes run here as without --cluster");
            None
        }
        None => None,
    };
    let mut daemon = daemon::start_in_cluster(config, services, cluster).await?;
    let reload = daemon.reload().clone();
    let stopped_by = loop {
        tokio::select! {
            _ = terminate.recv() => break Ok("SIGTERM"),
            _ = interrupt.recv() => break Ok("SIGINT"),
            _ = hangup.recv() => {
                tracing::info!("SIGHUP: re-reading every flake file");
                reload.reread_all();
            }
            // A dead essential task: stop loudly, never live on running nothing.
            reason = daemon.failed() => break Err(reason),
        }
    };
    match &stopped_by {
        Ok(signal_name) => tracing::info!("{signal_name}: stopping"),
        Err(reason) => tracing::error!("{reason}: stopping"),
    }
    daemon
        .stop(async {
            let again = tokio::select! {
                _ = terminate.recv() => "SIGTERM",
                _ = interrupt.recv() => "SIGINT",
            };
            tracing::info!("{again} again");
        })
        .await;
    stopped_by.map(|_| ())
}

/// `--cluster-member`, placeholders expanded (default the host name), checked for use in S3 keys.
async fn cluster_member(run: &RunOptions) -> Result<String, String> {
    let mut facts = crate::placeholders::HostFacts::local();
    let template = match &run.cluster_member {
        Some(template) => template.clone(),
        None => crate::placeholders::Facts::hostname(&facts).map_err(|reason| format!("--cluster-member: the host name: {reason}"))?,
    };
    if crate::placeholders::uses_instance_facts(&template) {
        facts.fetch_instance_facts().await;
    }
    let member = crate::placeholders::expand(&template, &facts).map_err(|reason| format!("--cluster-member {template:?}: {reason}"))?;
    crate::cluster::check_member_name(&member)?;
    Ok(member)
}

/// `on` or `off`.
fn parse_on_off(text: &str) -> Result<bool, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "on" | "true" | "yes" => Ok(true),
        "off" | "false" | "no" => Ok(false),
        _ => Err(format!("{text:?}: write on or off")),
    }
}

/// `--splay`: a duration, zero included, of at most an hour (offsets never exceed a flake's
/// interval anyway, a minute for crontab lines).
fn parse_splay(text: &str) -> Result<Duration, String> {
    let splay = parse_flag_duration(text)?;
    if splay > Duration::from_secs(3600) {
        return Err(format!("{text:?} is longer than an hour; a splay spreads runs within a flake's interval"));
    }
    Ok(splay)
}

/// Each running command holds two pipes; thousands of flakes firing at once need more than the
/// usual soft limit of 1024 descriptors, and the hard limit is ours to take.
fn raise_open_file_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE)
        && soft < hard
        && let Err(error) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard)
    {
        tracing::warn!(soft, hard, "cannot raise the open-file limit: {error}");
    }
}
