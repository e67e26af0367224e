//! `snowflake plan`: the alarm changes a reconcile would make, Terraform-style; changes nothing.

use std::process::ExitCode;
use std::sync::Arc;

use super::GlobalOptions;
use super::setup;
use crate::alarms::{ManagedFile, ReconcileConfig, Reconciler, Scope, desired_alarms};
use crate::catalog::Catalog;
use crate::metrics::Metrics;

pub async fn run(options: &GlobalOptions) -> ExitCode {
    let mut catalog = Catalog::new(options.flakes.clone(), setup::loader(options));
    let changes = catalog.rescan(false).await;
    for report in &changes.broken {
        for problem in &report.problems {
            eprintln!("{}: {problem}", report.path.display());
        }
    }
    let backend = setup::backend(options).await;
    let flakes = catalog.flakes();
    let (desired, skipped) = desired_alarms(&flakes, backend.default_region().as_deref());
    for skip in &skipped {
        eprintln!("{}: alarm {} skipped: {}", skip.flake, skip.alarm, skip.reason);
    }
    let scope = Scope::all(catalog.dir_missing(), flakes.len(), catalog.broken_files());
    let reconciler =
        Reconciler::new(Arc::new(backend), ManagedFile::new(&options.state_dir), ReconcileConfig::default(), Arc::new(Metrics::new()));
    match reconciler.plan(&desired, &scope).await {
        Ok(plan) => {
            print!("{}", plan.render());
            ExitCode::SUCCESS
        }
        Err(reason) => {
            eprintln!("error: {reason}");
            ExitCode::FAILURE
        }
    }
}
