//! Building the shared pieces commands need from the global flags: credentials, flake logs, the
//! CloudWatch backend, the catalog loader.

use std::sync::Arc;

use super::GlobalOptions;
use crate::catalog::Loader;
use crate::cloudwatch::Backend;
use crate::cloudwatch::dry_run::DryRun;
use crate::cloudwatch::sdk::SdkCloudWatch;
use crate::creds::{Creds, Redactor};
use crate::flakelog::FlakeLogs;
use crate::placeholders::HostFacts;
use crate::publish::PublisherConfig;

/// Credentials and the flake logs that redact them with the process's one redactor (which the
/// program's own log and one-shot commands' output pass through too; `cli::main` taught it the
/// values).
pub fn creds_and_logs(options: &GlobalOptions) -> Result<(Creds, Arc<FlakeLogs>), String> {
    let creds = Creds::load(&options.creds)?;
    let logs = FlakeLogs::open(&options.log_dir, options.log_keep, Redactor::process())?;
    Ok((creds, Arc::new(logs)))
}

/// The real CloudWatch, or the dry-run printer.
pub async fn backend(options: &GlobalOptions) -> Backend {
    if options.dry_run { Backend::DryRun(DryRun::stdout()) } else { Backend::Sdk(Arc::new(SdkCloudWatch::from_env().await)) }
}

/// [`backend`], with a dry run's printed lines passing through `redactor` (the flake logs' one).
pub async fn redacting_backend(options: &GlobalOptions, redactor: &Redactor) -> Backend {
    match backend(options).await {
        Backend::DryRun(dry_run) => Backend::DryRun(dry_run.redacting(redactor)),
        sdk => sdk,
    }
}

pub fn loader(options: &GlobalOptions) -> Loader {
    Loader::new(options.timezone, HostFacts::local())
}

pub fn publisher_config(options: &GlobalOptions) -> PublisherConfig {
    PublisherConfig { flush_interval: options.flush_interval, max_put_rate: options.max_put_rate, ..PublisherConfig::default() }
}

/// `--dashboard` with its placeholders expanded (instance facts read only if it uses them).
pub async fn dashboard_name(options: &GlobalOptions) -> Result<Option<String>, String> {
    let Some(template) = &options.dashboard else { return Ok(None) };
    let mut facts = HostFacts::local();
    if crate::placeholders::uses_instance_facts(template) {
        facts.fetch_instance_facts().await;
    }
    crate::dashboard::dashboard_name(template, &facts).map(Some)
}
