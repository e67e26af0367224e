//! The CloudWatch a command talks to, chosen at run time: the real one or `--dry-run`.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::dry_run::DryRun;
use super::sdk::SdkCloudWatch;
use super::{AlarmConfig, CallError, CloudWatch, Datum, DescribedAlarm};

/// The real CloudWatch or the dry-run printer.
#[derive(Clone)]
pub enum Backend {
    Sdk(Arc<SdkCloudWatch>),
    DryRun(DryRun),
}

impl Backend {
    /// The region used for flakes that name none: the SDK's chain, or `us-east-1` in a dry run
    /// (which never reaches AWS, so any name will do for grouping).
    pub fn default_region(&self) -> Option<String> {
        match self {
            Backend::Sdk(sdk) => sdk.default_region(),
            Backend::DryRun(_) => Some(std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".to_string())),
        }
    }
}

impl CloudWatch for Backend {
    async fn put_metric_data(&self, region: &str, namespace: &str, data: &[Datum]) -> Result<(), CallError> {
        match self {
            Backend::Sdk(sdk) => sdk.put_metric_data(region, namespace, data).await,
            Backend::DryRun(dry) => dry.put_metric_data(region, namespace, data).await,
        }
    }

    async fn describe_alarms_named(&self, region: &str, names: &[String]) -> Result<Vec<DescribedAlarm>, CallError> {
        match self {
            Backend::Sdk(sdk) => sdk.describe_alarms_named(region, names).await,
            Backend::DryRun(dry) => dry.describe_alarms_named(region, names).await,
        }
    }

    async fn put_metric_alarm(&self, region: &str, alarm: &AlarmConfig) -> Result<(), CallError> {
        match self {
            Backend::Sdk(sdk) => sdk.put_metric_alarm(region, alarm).await,
            Backend::DryRun(dry) => dry.put_metric_alarm(region, alarm).await,
        }
    }

    async fn delete_alarms(&self, region: &str, names: &[String]) -> Result<(), CallError> {
        match self {
            Backend::Sdk(sdk) => sdk.delete_alarms(region, names).await,
            Backend::DryRun(dry) => dry.delete_alarms(region, names).await,
        }
    }

    async fn tag_resource(&self, region: &str, arn: &str, tags: &BTreeMap<String, String>) -> Result<(), CallError> {
        match self {
            Backend::Sdk(sdk) => sdk.tag_resource(region, arn, tags).await,
            Backend::DryRun(dry) => dry.tag_resource(region, arn, tags).await,
        }
    }

    async fn untag_resource(&self, region: &str, arn: &str, keys: &[String]) -> Result<(), CallError> {
        match self {
            Backend::Sdk(sdk) => sdk.untag_resource(region, arn, keys).await,
            Backend::DryRun(dry) => dry.untag_resource(region, arn, keys).await,
        }
    }

    async fn get_dashboard(&self, region: &str, name: &str) -> Result<Option<String>, CallError> {
        match self {
            Backend::Sdk(sdk) => sdk.get_dashboard(region, name).await,
            Backend::DryRun(dry) => dry.get_dashboard(region, name).await,
        }
    }

    async fn put_dashboard(&self, region: &str, name: &str, body: &str) -> Result<Vec<String>, CallError> {
        match self {
            Backend::Sdk(sdk) => sdk.put_dashboard(region, name, body).await,
            Backend::DryRun(dry) => dry.put_dashboard(region, name, body).await,
        }
    }

    async fn delete_dashboards(&self, region: &str, names: &[String]) -> Result<(), CallError> {
        match self {
            Backend::Sdk(sdk) => sdk.delete_dashboards(region, names).await,
            Backend::DryRun(dry) => dry.delete_dashboards(region, names).await,
        }
    }
}
