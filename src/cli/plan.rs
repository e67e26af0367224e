//! `snowflake plan`: the alarm and dashboard changes a reconcile would make, Terraform-style;
//! changes nothing.

use std::process::ExitCode;
use std::sync::Arc;

use super::setup;
use super::{GlobalOptions, note, print_line};
use crate::alarms::{ManagedFile, ReconcileConfig, Reconciler, Scope, desired_alarms};
use crate::catalog::Catalog;
use crate::cluster::cluster_flakes;
use crate::dashboard::{DashboardReconciler, Target, dashboard_input, host_label};
use crate::metrics::Metrics;

pub async fn run(options: &GlobalOptions) -> ExitCode {
    let mut catalog = Catalog::new(options.flakes.clone(), setup::loader(options));
    let changes = catalog.rescan(false).await;
    for report in &changes.broken {
        for problem in &report.problems {
            note(format_args!("{}: {problem}", report.path.display()));
        }
    }
    let backend = setup::backend(options).await;
    let flakes = catalog.flakes();
    for flake in flakes.iter().filter(|flake| flake.container.is_some()) {
        let container = flake.container.as_ref().expect("filtered");
        note(format_args!("{}: runs in a container: {}", flake.name, container.describe()));
    }
    let (mut desired, skipped) = desired_alarms(&flakes, backend.default_region().as_deref());
    for skip in &skipped {
        note(format_args!("{}: alarm {} skipped: {}", skip.flake, skip.alarm, skip.reason));
    }
    // As in the daemon: with --cluster, a cluster flake's alarms are the cluster's (kept by the
    // member running it, never in this host's alarms.json) and its graphs are on that member's
    // dashboard only; this host plans as a member not running it.
    let mut dashboard_flakes = flakes.clone();
    if let Some(location) = &options.cluster {
        let clusters = cluster_flakes(&flakes);
        for name in clusters.keys() {
            print_line(format_args!(
                "= {name}: a cluster flake: its alarms and graphs are kept by the member of {location} running it; not planned here"
            ));
        }
        desired.retain(|alarm| !clusters.contains_key(&alarm.flake));
        dashboard_flakes.retain(|flake| !clusters.contains_key(&flake.name));
    }
    let scope = Scope::all(catalog.dir_missing(), flakes.len(), catalog.broken_files());
    let dashboard = match setup::dashboard_name(options).await {
        Ok(dashboard) => dashboard,
        Err(reason) => {
            note(format_args!("error: {reason}"));
            return ExitCode::from(2);
        }
    };
    let default_region = backend.default_region();
    let backend = Arc::new(backend);
    let reconciler =
        Reconciler::new(backend.clone(), ManagedFile::new(&options.state_dir), ReconcileConfig::default(), Arc::new(Metrics::new()));
    let mut code = ExitCode::SUCCESS;
    match reconciler.plan(&desired, &scope).await {
        Ok(plan) => print!("{}", plan.render()),
        Err(reason) => {
            note(format_args!("error: {reason}"));
            code = ExitCode::FAILURE;
        }
    }
    if dashboard.is_some() && default_region.is_none() {
        note(format_args!("error: --dashboard needs a default AWS region (AWS_REGION or a profile's region)"));
        code = ExitCode::FAILURE;
    }
    let target = dashboard.zip(default_region.clone()).map(|(name, region)| Target { name, region });
    let dashboards = DashboardReconciler::new(backend, &options.state_dir, target, ReconcileConfig::default());
    let input = dashboard_input(&dashboard_flakes, &desired, &host_label(), default_region.as_deref());
    let allowed = !catalog.dir_missing() && !flakes.is_empty();
    match dashboards.plan(&input, &desired, allowed).await {
        Ok(plan) => print!("{}", plan.render()),
        Err(reason) => {
            note(format_args!("error: {reason}"));
            code = ExitCode::FAILURE;
        }
    }
    code
}
