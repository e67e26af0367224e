//! `snowflake once [PATTERN]`: run matching flakes now, print each result, publish, and say
//! whether everything worked (the exit code).
//!
//! It publishes directly (an in-memory spool): a one-shot command must not touch the daemon's
//! spool, and an operator watching it wants to know now whether the values arrived.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::{Semaphore, watch};

use super::setup;
use super::{GlobalOptions, note, print_line};
use crate::alarms::{ManagedFile, ReconcileConfig, Reconciler, Scope, desired_alarms};
use crate::catalog::{discover, reject_duplicate_names};
use crate::cloudwatch::Backend;
use crate::cluster::cluster_flakes;
use crate::execution::{Prepared, RunContext, execute};
use crate::flake::{Flake, FlakeKind};
use crate::metrics::Metrics;
use crate::outcome::PutOutcome;
use crate::publish::{PublisherConfig, spawn_publisher};

/// Longer than any `once` runs: partial batches wait for the final drain.
const ONE_SHOT_FLUSH: Duration = Duration::from_secs(24 * 3600);
use crate::publish::spool::MemorySpool;

pub async fn run(pattern: Option<&str>, publish_timeout: Duration, options: &GlobalOptions) -> ExitCode {
    match once(pattern, publish_timeout, options).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(reason) => {
            note(format_args!("error: {reason}"));
            ExitCode::FAILURE
        }
    }
}

async fn once(pattern: Option<&str>, publish_timeout: Duration, options: &GlobalOptions) -> Result<bool, String> {
    // Processes a timed-out command leaves behind with setsid are ended with it, as in the daemon.
    crate::runner::supervise_descendants();
    let (flakes, held) = select_flakes(pattern, options).await?;
    let selected = flakes.clone();
    // An alarms flake runs nothing: its alarms are reconciled below.
    let (alarms_only, flakes): (Vec<Arc<Flake>>, Vec<Arc<Flake>>) = flakes.into_iter().partition(|flake| flake.kind == FlakeKind::Alarms);
    for flake in &alarms_only {
        print_line(format_args!("{}: alarms only ({} declared), nothing to run", flake.name, flake.alarms.len()));
    }
    let (creds, logs) = setup::creds_and_logs(options)?;
    let backend = setup::redacting_backend(options, logs.redactor()).await;
    let default_region = backend.default_region();
    let metrics = Arc::new(Metrics::new());
    let (publisher, publisher_task) = spawn_publisher(
        Arc::new(backend.clone()),
        Box::new(MemorySpool::default()),
        Vec::new(),
        // A one-shot run knows when it is done: full batches go at once, the rest when every
        // run has finished (the drain below), so N values take ceil(N/1000) calls however long
        // the runs take.
        PublisherConfig { flush_interval: ONE_SHOT_FLUSH, ..setup::publisher_config(options) },
        metrics.clone(),
        logs.clone(),
    );
    let engine = crate::container::resolve_socket(options.container_engine.as_deref());
    let engine = Arc::new(crate::container::Engine::new(engine, crate::container::once_owner()));
    for flake in flakes.iter().filter(|flake| flake.container.is_some()) {
        let container = flake.container.as_ref().expect("filtered");
        print_line(format_args!("{}: runs in a container: {} (engine {})", flake.name, container.describe(), engine.socket().display()));
    }
    let images = Arc::new(crate::container::ImageKeeper::new(engine, logs.clone(), metrics.clone()));
    let context = Arc::new(RunContext {
        images: Some(images),
        workdir: options.workdir.clone(),
        creds,
        logs,
        publisher: publisher.clone(),
        metrics: metrics.clone(),
        command_nice: crate::runner::command_niceness(options.command_nice),
        monitors: None,
    });

    // Never stopped early: `once` runs each command to its own end or timeout.
    let (_keep_running, stop) = watch::channel(false);
    let slots = Arc::new(Semaphore::new(options.max_concurrent_runs as usize));
    let mut runs = tokio::task::JoinSet::new();
    for flake in flakes {
        // `once` has no previous run to subtract from, so it shows counters' totals instead.
        let prepared = Prepared::new(flake, default_region.as_deref()).reporting_raw_counters();
        let (context, stop, slots) = (context.clone(), stop.clone(), slots.clone());
        let redactor = context.logs.redactor().clone();
        runs.spawn(async move {
            let _slot = slots.acquire_owned().await.expect("semaphore is never closed");
            let report = execute(&prepared, Utc::now(), &context, stop).await;
            print_line(format_args!("{}", report.shown(&redactor)));
            report
        });
    }
    let mut all_ok = true;
    let mut values = 0;
    while let Some(joined) = runs.join_next().await {
        let report = joined.map_err(|error| format!("a run panicked: {error}"))?;
        all_ok &= report.verdict.is_ok();
        values += report.published;
    }

    let drained = publisher.drain(publish_timeout).await;
    drop(context);
    drop(publisher);
    let _ = publisher_task.await;
    let calls = metrics.put_calls(PutOutcome::Ok.as_str());
    let verb = if options.dry_run { "printed (dry run)" } else { "published" };
    print_line(format_args!("{verb}: {} of {values} value(s) in {calls} PutMetricData call(s)", drained.delivered));
    if drained.rejected > 0 {
        note(format_args!("error: CloudWatch rejected {} value(s); see the flake logs in {}", drained.rejected, options.log_dir.display()));
    }
    if drained.pending > 0 {
        note(format_args!("error: {} value(s) could not be delivered within {publish_timeout:?}; see the log above", drained.pending));
    }
    let alarms_ok = reconcile_alarms(&selected, &held, &backend, &metrics, options).await;
    let rejected: Vec<&str> = selected.iter().map(|flake| flake.name.as_str()).filter(|name| held.contains(*name)).collect();
    for name in &rejected {
        note(format_args!("error: {name}: some of its alarms were rejected (see above) and left out; its other alarms were reconciled"));
    }
    Ok(all_ok && drained.rejected == 0 && drained.pending == 0 && alarms_ok && rejected.is_empty())
}

/// Creates or corrects the alarms of the flakes that ran, and deletes the ones they dropped, except
/// for the `held` flakes: an alarm of theirs was rejected, and is not taken for removed.
async fn reconcile_alarms(
    flakes: &[Arc<Flake>],
    held: &BTreeSet<String>,
    backend: &Backend,
    metrics: &Arc<Metrics>,
    options: &GlobalOptions,
) -> bool {
    let (mut desired, skipped) = desired_alarms(flakes, backend.default_region().as_deref());
    for skip in &skipped {
        note(format_args!("error: {}: alarm {}: {}", skip.flake, skip.alarm, skip.reason));
    }
    let clusters = cluster_owned(flakes, options);
    desired.retain(|alarm| !clusters.contains_key(&alarm.flake));
    let names = flakes.iter().map(|flake| flake.name.clone()).filter(|name| !held.contains(name) && !clusters.contains_key(name)).collect();
    let reconciler =
        Reconciler::new(Arc::new(backend.clone()), ManagedFile::new(&options.state_dir), ReconcileConfig::default(), metrics.clone());
    match reconciler.reconcile(&desired, &Scope::Flakes(names)).await {
        Ok(applied) => {
            if !desired.is_empty() || applied.deleted > 0 {
                let what = if options.dry_run { "alarms (dry run, printed above, nothing changed)" } else { "alarms" };
                print_line(format_args!(
                    "{what}: {} created, {} updated, {} retagged, {} deleted, {} failed",
                    applied.created,
                    applied.updated,
                    applied.tagged,
                    applied.deleted,
                    applied.failures.len()
                ));
            }
            for failure in &applied.failures {
                note(format_args!("error: alarm {failure}"));
            }
            skipped.is_empty() && applied.failures.is_empty()
        }
        Err(reason) => {
            note(format_args!("error: alarms were not reconciled: {reason}"));
            false
        }
    }
}

/// The cluster flakes among `flakes` whose alarms are the cluster's (with `--cluster`), saying so
/// for each that declares alarms: the member running the flake keeps them, and `once` neither
/// changes them nor lists them in this host's `alarms.json`. Without `--cluster` a cluster flake
/// is a host flake, as in a daemon without it, and none is returned.
fn cluster_owned(flakes: &[Arc<Flake>], options: &GlobalOptions) -> BTreeMap<String, String> {
    let clusters = cluster_flakes(flakes);
    for flake in flakes.iter().filter(|flake| clusters.contains_key(&flake.name) && !flake.alarms.is_empty()) {
        match &options.cluster {
            Some(location) => print_line(format_args!(
                "{}: a cluster flake: its alarms belong to the cluster at {location} and are kept by the member running it; not changed here",
                flake.name
            )),
            None => note(format_args!(
                "note: {}: flakeScope is \"cluster\" but no --cluster (SNOWFLAKE_CLUSTER) is given: its alarms are reconciled here as a host flake's; \
                 give the daemons' --cluster to leave them to the cluster",
                flake.name
            )),
        }
    }
    if options.cluster.is_some() { clusters } else { BTreeMap::new() }
}

/// Enabled valid flakes matching `pattern`, and the names of those with a rejected alarm; load
/// problems are reported but do not stop the rest.
async fn select_flakes(pattern: Option<&str>, options: &GlobalOptions) -> Result<(Vec<Arc<Flake>>, BTreeSet<String>), String> {
    let files = discover(std::slice::from_ref(&options.flakes))?;
    let mut reports = setup::loader(options).load(&files).await;
    reject_duplicate_names(&mut reports, |_, _| false);
    for report in &reports {
        for problem in &report.problems {
            note(format_args!("{}: {problem}", report.path.display()));
        }
    }
    let matches = |path: &PathBuf, flake: &Flake| match pattern {
        None => true,
        Some(pattern) => flake.name == pattern || path.file_name().is_some_and(|name| name.to_string_lossy().contains(pattern)),
    };
    let selected: Vec<Arc<Flake>> =
        reports.iter().filter_map(|report| report.flake.clone().filter(|flake| flake.enabled && matches(&report.path, flake))).collect();
    if selected.is_empty() {
        let what = pattern.map_or(String::new(), |pattern| format!(" matching {pattern:?}"));
        return Err(format!("no enabled, valid flake{what} in {}", options.flakes.display()));
    }
    let held = reports
        .iter()
        .filter(|report| report.has_errors())
        .filter_map(|report| report.flake.as_ref().map(|flake| flake.name.clone()))
        .collect();
    Ok((selected, held))
}
