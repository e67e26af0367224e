//! The command line: `snowflake <command>`, global flags with `SNOWFLAKE_*` environment twins.
//!
//! Exit codes: 0 success, 1 failure, 2 usage error (clap's own).

mod check;
mod dashboard;
mod log_writer;
mod next;
mod once;
mod plan;
mod run;
mod setup;
mod status;
mod values;

use std::path::PathBuf;
use std::process::ExitCode;

use chrono_tz::Tz;
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::creds::{Creds, Redactor};
use crate::schedule::parse_zone;

#[derive(Parser, Debug)]
#[command(
    name = "snowflake",
    version,
    about = "Runs shell commands on crontab schedules, publishes their numbers to CloudWatch, and keeps their alarms as declared.",
    propagate_version = true
)]
pub struct Cli {
    #[command(flatten)]
    pub options: GlobalOptions,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every command accepts.
#[derive(Args, Debug, Clone)]
pub struct GlobalOptions {
    /// Directory of flake files, searched recursively.
    #[arg(long, global = true, env = "SNOWFLAKE_FLAKES", default_value = "./flakes", value_name = "DIR")]
    pub flakes: PathBuf,

    /// Time zone of schedules without a CRON_TZ= prefix: an IANA name, UTC, or "local".
    #[arg(long, global = true, env = "SNOWFLAKE_TIMEZONE", default_value = "local", value_name = "ZONE", value_parser = parse_zone)]
    pub timezone: Tz,

    /// Format of the program's own log.
    #[arg(long, global = true, env = "SNOWFLAKE_LOG_FORMAT", default_value = "text", value_enum)]
    pub log_format: LogFormat,

    /// Least severe level of the program's own log (error, warn, info, debug, trace), or a
    /// tracing filter such as "info,specialsnowflake=debug". Default: info for `run`, warn for
    /// the one-shot commands, whose output is their result.
    #[arg(long, global = true, env = "SNOWFLAKE_LOG_LEVEL", value_name = "LEVEL")]
    pub log_level: Option<String>,

    /// Directory of the per-flake log files (<flakeName>.log).
    #[arg(long, global = true, env = "SNOWFLAKE_LOG_DIR", default_value = "./logs", value_name = "DIR")]
    pub log_dir: PathBuf,

    /// Rotated log files kept per flake (logs rotate daily).
    #[arg(long, global = true, env = "SNOWFLAKE_LOG_KEEP", default_value_t = 7, value_name = "N")]
    pub log_keep: usize,

    /// Secrets handed to commands as environment variables (a JSON object of strings); optional.
    #[arg(long, global = true, env = "SNOWFLAKE_CREDS", default_value = "./creds.json", value_name = "FILE")]
    pub creds: PathBuf,

    /// Working directory of commands whose flake sets no flakeWorkingDirectory.
    #[arg(long, global = true, env = "SNOWFLAKE_WORKDIR", default_value = ".", value_name = "DIR")]
    pub workdir: PathBuf,

    /// Directory of the daemon's state: the spool and the names of the alarms it manages.
    #[arg(long, global = true, env = "SNOWFLAKE_STATE_DIR", default_value = "./state", value_name = "DIR")]
    pub state_dir: PathBuf,

    /// Make no AWS call at all: print every PutMetricData batch and alarm change as a JSON line.
    #[arg(long, global = true, env = "SNOWFLAKE_DRY_RUN")]
    pub dry_run: bool,

    /// Send a batch at the latest this long after its first datapoint (e.g. 1s, 500ms).
    #[arg(long, global = true, env = "SNOWFLAKE_FLUSH_INTERVAL", default_value = "1s", value_name = "DURATION", value_parser = crate::schedule::parse_flag_duration)]
    pub flush_interval: std::time::Duration,

    /// PutMetricData requests per second, at most (all regions and namespaces together).
    #[arg(long, global = true, env = "SNOWFLAKE_MAX_PUT_RATE", default_value_t = 50.0, value_name = "N", value_parser = positive_rate)]
    pub max_put_rate: f64,

    /// Niceness added to flake commands (0 to 19), to keep checks below the host's own work.
    /// 0 (the default) runs them at the daemon's priority, as cron does.
    #[arg(long, global = true, env = "SNOWFLAKE_COMMAND_NICE", default_value_t = 0, value_name = "N", value_parser = clap::value_parser!(i32).range(0..=19))]
    pub command_nice: i32,

    /// Commands running at the same time, at most; further due runs wait for a slot.
    #[arg(long, global = true, env = "SNOWFLAKE_MAX_CONCURRENT_RUNS", default_value_t = 1024, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_concurrent_runs: u32,

    /// CloudWatch dashboard to keep in step with the flakes (e.g. "snowflake-${hostname}";
    /// placeholders allowed). Without it, a dashboard this host created earlier is deleted.
    #[arg(long, global = true, env = "SNOWFLAKE_DASHBOARD", value_name = "NAME")]
    pub dashboard: Option<String>,
    /// Always start commands through /bin/sh -c. By default a command that is a plain list of
    /// words naming a program (e.g. "df -P /") starts without the shell when /bin/sh is dash,
    /// which saves a process start and changes nothing observable.
    #[arg(long, global = true, env = "SNOWFLAKE_NO_DIRECT_EXEC")]
    pub no_direct_exec: bool,

    /// The container engine's unix socket, for flakes with flakeImage or flakeBuild (the Docker
    /// Engine API, which Docker and `podman system service` serve). Default: DOCKER_HOST when it
    /// is a unix:// URL, else /var/run/docker.sock, else podman's socket.
    #[arg(long, global = true, env = "SNOWFLAKE_CONTAINER_ENGINE", value_name = "PATH")]
    pub container_engine: Option<PathBuf>,

    /// The daemons' cluster (s3://BUCKET/PREFIX). `run` joins the daemons that name it: flakes with
    /// "flakeScope": "cluster" then run on exactly one of them at a time (SPEC 15). For `once`,
    /// `plan` and `check` it says those flakes' alarms and graphs are the cluster's.
    #[arg(long, global = true, env = "SNOWFLAKE_CLUSTER", value_name = "S3URL", value_parser = crate::cluster::parse_location)]
    pub cluster: Option<crate::cluster::Location>,
}

fn positive_rate(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(rate) if rate.is_finite() && rate > 0.0 => Ok(rate),
        _ => Err(format!("{text:?} is not a positive number of requests per second")),
    }
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the daemon: load the flakes, reconcile alarms, run flakes on schedule, publish; until
    /// SIGTERM or SIGINT. SIGHUP re-reads every flake file.
    Run(run::RunOptions),
    /// Validate flake files or directories; prints "path: field: message" per problem.
    ///
    /// Exits 0 when every file is valid (warnings allowed), 1 otherwise. Without PATH, checks the
    /// --flakes directory. Files are judged for wherever they will run: a placeholder this host
    /// cannot resolve (no instance metadata off EC2, an unset variable) is a warning.
    Check {
        /// Files or directories to check.
        paths: Vec<PathBuf>,
        /// Judge as the daemon on this host would: a placeholder this host cannot resolve is an
        /// error.
        #[arg(long)]
        resolve: bool,
    },
    /// Print the next fire times of a schedule, one RFC 3339 UTC timestamp a line.
    Next {
        /// A flakeCronstring: "*/5 * * * *", "@hourly", "@every 90s", "CRON_TZ=Europe/Berlin 0 9 * * 1-5".
        schedule: String,
        /// How many fire times to print.
        #[arg(long, default_value_t = 5)]
        count: usize,
        /// Start after this instant (RFC 3339, e.g. 2026-01-01T00:00:00Z); default now.
        #[arg(long, value_parser = next::parse_instant)]
        after: Option<chrono::DateTime<chrono::Utc>>,
    },
    /// Print the JSON Schema of a flake file.
    Schema,
    /// Print the alarm changes a reconcile would make (create, update with the differing fields,
    /// delete, unchanged count), and the dashboard change (with --dashboard); changes nothing.
    Plan,
    /// Print the dashboard body (JSON) the daemon keeps with --dashboard, for use elsewhere
    /// (CloudFormation, Terraform). Alarm ARNs need the account: if no alarm can be read, they
    /// are written with ${AWS::Partition} and ${AWS::AccountId} for Fn::Sub.
    Dashboard,
    /// Run flakes now, ignoring their schedules, and publish their values.
    ///
    /// Runs every enabled flake whose file name contains PATTERN or whose flakeName equals it
    /// (all if no PATTERN), prints each result, publishes (full batches at once, the rest when
    /// all runs are done), reconciles those flakes' alarms, and exits 0 only if every run
    /// succeeded, every value was delivered and every alarm change worked.
    Once {
        /// Part of a flake file name, or a flakeName.
        pattern: Option<String>,
        /// How long to keep trying to deliver the values before giving up.
        #[arg(long, default_value = "60s", value_name = "DURATION", value_parser = crate::schedule::parse_flag_duration)]
        publish_timeout: std::time::Duration,
    },
    /// Show what a running daemon is doing: one line per flake (next and last run, result), its
    /// header (spool, last PutMetricData, reconciles), read from its /status.json.
    ///
    /// Exits as a Nagios plugin: 0 all well, 1 a flake failing or late (or a flake file broken),
    /// 2 the daemon unhealthy, 3 no answer. The first line is the plugin's status line.
    Status(status::StatusOptions),
}

/// Parses the command line and runs the command; the process exit code is the result.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // The daemon's log goes to stdout, as a container expects; one-shot commands keep stdout
    // for their output and log to stderr.
    if matches!(cli.command, Command::Run(_)) {
        init_logging(&cli.options, "info", std::io::stdout);
    } else {
        init_logging(&cli.options, "warn", std::io::stderr);
    }
    // Whatever the command, its output and errors mask creds.json's values (a value pasted into
    // a flake file's field is quoted back by `check`'s error). A file that cannot be read is
    // reported by the commands that need it (run, once), not here.
    if let Ok(creds) = Creds::load(&cli.options.creds) {
        Redactor::process().learn(&creds);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(dispatch(cli))
}

async fn dispatch(cli: Cli) -> ExitCode {
    crate::runner::direct::set_direct_exec(!cli.options.no_direct_exec);
    match cli.command {
        Command::Check { paths, resolve } => check::run(&paths, resolve, &cli.options).await,
        Command::Next { schedule, count, after } => next::run(&schedule, count, after, &cli.options),
        Command::Once { pattern, publish_timeout } => once::run(pattern.as_deref(), publish_timeout, &cli.options).await,
        Command::Plan => plan::run(&cli.options).await,
        Command::Dashboard => dashboard::run(&cli.options).await,
        Command::Run(run_options) => run::run(&cli.options, &run_options).await,
        Command::Status(status_options) => status::run(&status_options).await,
        Command::Schema => {
            print_line(serde_json::to_string_pretty(&crate::flake::flake_schema()).expect("schema serializes"));
            ExitCode::SUCCESS
        }
    }
}

/// Writes one line of a one-shot command's output. When the reader has gone away (`| head`), the
/// command ends quietly with success, as `cat` and `grep` do, rather than panicking on the
/// broken pipe; any other write error ends it with a message.
pub(crate) fn print_line(line: impl std::fmt::Display) {
    use std::io::Write;
    let written = writeln!(std::io::stdout().lock(), "{}", Redactor::process().redact_if_needed(&line.to_string()));
    match written {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        Err(error) => {
            note(format_args!("error: cannot write the output: {error}"));
            std::process::exit(1);
        }
    }
}

/// Writes one line to stderr, secrets masked; a closed stderr is no reason to fail (or panic, as `eprintln!` does).
pub(crate) fn note(line: impl std::fmt::Display) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "{}", Redactor::process().redact_if_needed(&line.to_string()));
}

/// The program's own log, to `writer` (stdout for the daemon, stderr for one-shot commands).
fn init_logging<W>(options: &GlobalOptions, default_level: &str, writer: W)
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    let level = options.log_level.as_deref().unwrap_or(default_level);
    let filter = tracing_subscriber::EnvFilter::try_new(level).unwrap_or_else(|error| {
        eprintln!("warning: --log-level {level:?} is not a valid filter ({error}); using {default_level}");
        tracing_subscriber::EnvFilter::new(default_level)
    });
    // Colours only for a person at a terminal; log files and collectors get plain text.
    let colours = std::io::IsTerminal::is_terminal(&std::io::stdout()) && std::io::IsTerminal::is_terminal(&std::io::stderr());
    let writer = log_writer::RedactingMakeWriter::new(writer, Redactor::process());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer).with_target(false).with_ansi(colours);
    let _ = match options.log_format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}
