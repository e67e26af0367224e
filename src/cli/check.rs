//! `snowflake check [--resolve] [PATH...]`: validate flake files the way `nginx -t` validates a
//! config, for wherever they will run (SPEC 18), or with `--resolve` as the daemon here would.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::{GlobalOptions, note, print_line};
use crate::catalog::{Loader, discover_noting, reject_duplicate_names};
use crate::flake::{Flake, FlakeScope, Problem};
use crate::placeholders::HostFacts;

/// Checks `paths`; with `resolve`, a placeholder this host cannot resolve is an error, as in the
/// daemon, and otherwise a warning (SPEC 18: files are judged for wherever they will run).
pub async fn run(paths: &[PathBuf], resolve: bool, options: &GlobalOptions) -> ExitCode {
    let paths = if paths.is_empty() { vec![options.flakes.clone()] } else { paths.to_vec() };
    let discovery = match discover_noting(&paths) {
        Ok(discovery) => discovery,
        Err(reason) => {
            note(format_args!("error: {reason}"));
            return ExitCode::FAILURE;
        }
    };
    let files = discovery.files;
    if files.is_empty() {
        let shown: Vec<String> = paths.iter().map(|path| path.display().to_string()).collect();
        note(format_args!("error: no flake files (*.json) found in {}", shown.join(", ")));
        return ExitCode::FAILURE;
    }

    let facts = if resolve { HostFacts::local() } else { HostFacts::local().with_stand_ins() };
    let mut loader = Loader::new(options.timezone, facts);
    let mut reports = loader.load(&files).await;
    reject_duplicate_names(&mut reports, |_, _| false);
    for report in &mut reports {
        if let Some(problem) = report.flake.as_deref().and_then(|flake| missing_working_directory(flake, &options.workdir)) {
            report.problems.push(problem);
        }
        if let Some(problem) = report.flake.as_deref().filter(|_| options.cluster.is_none()).and_then(cluster_flake_without_cluster) {
            report.problems.push(problem);
        }
    }

    container_warnings(&mut reports, options).await;

    let (mut invalid, mut warnings) = (0, 0);
    for (path, why) in &discovery.notes {
        print_line(format_args!("{}: warning: {why}", path.display()));
        warnings += 1;
    }
    for report in &reports {
        let path = report.path.display();
        for problem in &report.problems {
            print_line(format_args!("{path}: {problem}"));
            if !problem.is_error() {
                warnings += 1;
            }
        }
        match &report.flake {
            Some(flake) if !report.has_errors() => print_line(format_args!("{path}: ok ({})", flake.name)),
            Some(flake) => {
                // Only alarms were rejected: the flake and its other alarms still run.
                print_line(format_args!("{path}: invalid alarms left out; flake {} and its other alarms run", flake.name));
                invalid += 1;
            }
            None => invalid += 1,
        }
    }
    note(format_args!("{} file(s) checked: {} valid, {invalid} invalid, {warnings} warning(s)", reports.len(), reports.len() - invalid));
    if invalid == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

/// Flakes with their own image: a warning when no engine answers at the socket they would use
/// (their runs would fail; every other flake runs), and for a mount whose source is missing here.
async fn container_warnings(reports: &mut [crate::catalog::FileReport], options: &GlobalOptions) {
    let uses_containers =
        reports.iter().any(|report| report.flake.as_ref().is_some_and(|flake| flake.enabled && flake.container.is_some()));
    if !uses_containers {
        return;
    }
    let engine = crate::container::Engine::new(crate::container::resolve_socket(options.container_engine.as_deref()), String::new());
    let unreachable = engine.ping().await.err();
    for report in reports.iter_mut() {
        // A disabled flake never runs: what it would meet here is no concern yet.
        let enabled = report.flake.as_ref().filter(|flake| flake.enabled);
        let Some(container) = enabled.and_then(|flake| flake.container.clone()) else { continue };
        let field = match container.image {
            crate::flake::ImageSource::Reference(_) => "flakeImage",
            crate::flake::ImageSource::Build(_) => "flakeBuild",
        };
        if let Some(reason) = &unreachable {
            report.problems.push(Problem::warning(field, format!("its runs fail until an engine answers: {reason}")));
        }
        for (index, mount) in container.mounts.iter().enumerate() {
            let source = options.workdir.join(&mount.source);
            if !source.exists() {
                report.problems.push(Problem::warning(
                    format!("flakeContainer.mounts[{index}].source"),
                    format!("{} does not exist here (relative to --workdir {})", source.display(), options.workdir.display()),
                ));
            }
        }
    }
}

/// A cluster flake checked where no cluster is configured (no --cluster, SNOWFLAKE_CLUSTER unset)
/// runs on every daemon that loads it without `--cluster`: say so, as a warning.
fn cluster_flake_without_cluster(flake: &Flake) -> Option<Problem> {
    if flake.scope != FlakeScope::Cluster {
        return None;
    }
    Some(Problem::warning(
        "flakeScope",
        "is \"cluster\", but no --cluster (SNOWFLAKE_CLUSTER) is set here: a daemon without --cluster runs it locally, as a host flake; \
         give the daemons that share it --cluster s3://BUCKET/PREFIX",
    ))
}

/// A `flakeWorkingDirectory` that is not a directory here (relative ones under `--workdir`, as the
/// daemon resolves them) makes every run fail to start. It is a warning, not an error: the
/// directory may be created by deployment after the check, or exist only on the target host.
fn missing_working_directory(flake: &Flake, workdir: &Path) -> Option<Problem> {
    let dir = flake.working_directory.as_ref()?;
    let resolved = workdir.join(dir);
    if resolved.is_dir() {
        return None;
    }
    let relative = if dir.is_relative() { format!(" (relative to --workdir {})", workdir.display()) } else { String::new() };
    Some(Problem::warning(
        "flakeWorkingDirectory",
        format!(
            "{} is not a directory here{relative}; runs will fail to start until it exists: create it, or fix the path",
            resolved.display()
        ),
    ))
}
