//! The real CloudWatch, through `aws-sdk-cloudwatch`: the only module that touches the SDK.
//!
//! Credentials, region and endpoint come from the SDK's standard chains, so `AWS_PROFILE`, web
//! identity, ECS task roles, IMDS, `AWS_ENDPOINT_URL` and `AWS_ENDPOINT_URL_CLOUDWATCH` all work
//! unchanged. The SDK's own retries are off: callers retry with their own backoff, which keeps
//! spooled data and rate limits under their control and makes retries visible in tests.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_cloudwatch::Client;
use aws_sdk_cloudwatch::config::Region;
use aws_sdk_cloudwatch::config::http::HttpResponse;
use aws_sdk_cloudwatch::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{
    AlarmType, ComparisonOperator, CompositeAlarm, Dimension, MetricAlarm, MetricDatum, StandardUnit, Statistic, Tag,
};

use super::error::{is_credentials_code, is_throttling_code};

mod fast_gzip;
// Reading data back is for tests only; the shipped binary never reads metrics.
mod queries;
#[cfg(any(test, feature = "test-support"))]
mod readback;
use super::{AlarmConfig, AlarmStatistic, CallError, CloudWatch, Datum, DescribedAlarm, ErrorKind};
use queries::{from_sdk_query, to_sdk_query};
#[cfg(any(test, feature = "test-support"))]
pub use readback::{MetricQuery, StatisticsBucket};

/// CloudWatch through the SDK, one client per region.
pub struct SdkCloudWatch {
    config: SdkConfig,
    clients: Mutex<HashMap<String, Client>>,
}

impl SdkCloudWatch {
    /// Loads the standard AWS configuration chain.
    pub async fn from_env() -> Self {
        Self::load(None).await
    }

    /// The standard chain, but talking to `endpoint` (a test peer such as LocalStack).
    pub async fn with_endpoint(endpoint: &str) -> Self {
        Self::load(Some(endpoint)).await
    }

    async fn load(endpoint: Option<&str>) -> Self {
        let timeouts =
            TimeoutConfig::builder().connect_timeout(Duration::from_secs(5)).operation_attempt_timeout(Duration::from_secs(30)).build();
        let mut loader = aws_config::defaults(BehaviorVersion::latest()).retry_config(RetryConfig::disabled()).timeout_config(timeouts);
        if let Some(endpoint) = endpoint {
            loader = loader.endpoint_url(endpoint);
        }
        Self::from_config(loader.load().await)
    }

    fn from_config(config: SdkConfig) -> Self {
        SdkCloudWatch { config, clients: Mutex::new(HashMap::new()) }
    }

    /// The region of the SDK's chain (`AWS_REGION`, profile, IMDS), used when a flake names none.
    pub fn default_region(&self) -> Option<String> {
        self.config.region().map(|region| region.to_string())
    }

    fn client(&self, region: &str) -> Client {
        let mut clients = self.clients.lock().expect("client map poisoned");
        clients
            .entry(region.to_string())
            .or_insert_with(|| {
                let mut config = aws_sdk_cloudwatch::config::Builder::from(&self.config).region(Region::new(region.to_string()));
                if self.config.disable_request_compression() != Some(true) {
                    let min_bytes = self.config.request_min_compression_size_bytes().unwrap_or(fast_gzip::DEFAULT_MIN_BYTES);
                    config = config.disable_request_compression(true).interceptor(fast_gzip::FastGzip { min_bytes });
                }
                Client::from_conf(config.build())
            })
            .clone()
    }
}

/// Sorts an SDK failure into what the caller should do about it.
fn classify<E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static>(error: SdkError<E, HttpResponse>) -> CallError {
    let message = DisplayErrorContext(&error).to_string();
    match &error {
        SdkError::ServiceError(context) => {
            let code = context.err().code();
            let text = context.err().message().unwrap_or(&message).to_string();
            let status = error.raw_response().map(|response| response.status().as_u16());
            let kind = match (code, status) {
                (Some(code), _) if is_throttling_code(code) => ErrorKind::Throttling,
                (Some(code), _) if is_credentials_code(code) => ErrorKind::Credentials,
                (_, Some(429)) => ErrorKind::Throttling,
                (_, Some(401 | 403)) => ErrorKind::Credentials,
                (_, Some(status)) if status >= 500 => ErrorKind::Unavailable,
                (None, None) => ErrorKind::Unavailable,
                _ => ErrorKind::Invalid,
            };
            CallError::new(kind, code, text)
        }
        SdkError::ConstructionFailure(_) => {
            // Missing credentials and an unresolvable region surface here; both can be fixed
            // without losing data, so they are retried like credential errors.
            CallError::new(ErrorKind::Credentials, None, message)
        }
        _ => CallError::new(ErrorKind::Unavailable, None, message),
    }
}

fn to_described(alarm: &MetricAlarm) -> DescribedAlarm {
    DescribedAlarm {
        name: alarm.alarm_name().unwrap_or_default().to_string(),
        arn: alarm.alarm_arn().map(str::to_string),
        description: alarm.alarm_description().map(str::to_string),
        namespace: alarm.namespace().map(str::to_string),
        metric_name: alarm.metric_name().map(str::to_string),
        dimensions: alarm
            .dimensions()
            .iter()
            .map(|dimension| (dimension.name().unwrap_or_default().to_string(), dimension.value().unwrap_or_default().to_string()))
            .collect(),
        statistic: alarm.statistic().map(|statistic| statistic.as_str().to_string()),
        extended_statistic: alarm.extended_statistic().map(str::to_string),
        period: alarm.period(),
        evaluation_periods: alarm.evaluation_periods(),
        datapoints_to_alarm: alarm.datapoints_to_alarm(),
        threshold: alarm.threshold(),
        comparison: alarm.comparison_operator().map(|operator| operator.as_str().to_string()),
        treat_missing_data: alarm.treat_missing_data().map(str::to_string),
        ok_actions: alarm.ok_actions().to_vec(),
        alarm_actions: alarm.alarm_actions().to_vec(),
        insufficient_data_actions: alarm.insufficient_data_actions().to_vec(),
        actions_enabled: alarm.actions_enabled(),
        unit: alarm.unit().map(|unit| unit.as_str().to_string()),
        metrics: alarm.metrics().iter().map(from_sdk_query).collect(),
        threshold_metric_id: alarm.threshold_metric_id().map(str::to_string),
        rule: None,
        has_foreign_shape: alarm.evaluation_criteria().is_some(),
        state: alarm.state_value().map(|state| state.as_str().to_string()),
    }
}

fn composite_to_described(alarm: &CompositeAlarm) -> DescribedAlarm {
    DescribedAlarm {
        name: alarm.alarm_name().unwrap_or_default().to_string(),
        arn: alarm.alarm_arn().map(str::to_string),
        description: alarm.alarm_description().map(str::to_string),
        ok_actions: alarm.ok_actions().to_vec(),
        alarm_actions: alarm.alarm_actions().to_vec(),
        insufficient_data_actions: alarm.insufficient_data_actions().to_vec(),
        actions_enabled: alarm.actions_enabled(),
        // An empty rule is still a composite: `Some` marks the kind.
        rule: Some(alarm.alarm_rule().unwrap_or_default().to_string()),
        has_foreign_shape: alarm.actions_suppressor().is_some(),
        state: alarm.state_value().map(|state| state.as_str().to_string()),
        ..DescribedAlarm::default()
    }
}

fn to_metric_datum(datum: &Datum) -> MetricDatum {
    let builder = if datum.counted_values.is_empty() {
        MetricDatum::builder().value(datum.value)
    } else {
        let (values, counts) = datum.counted_values.iter().copied().unzip();
        MetricDatum::builder().set_values(Some(values)).set_counts(Some(counts))
    };
    builder
        .metric_name(&datum.metric_name)
        .set_dimensions(
            (!datum.dimensions.is_empty())
                .then(|| datum.dimensions.iter().map(|(name, value)| Dimension::builder().name(name).value(value).build()).collect()),
        )
        .timestamp(DateTime::from_millis(datum.timestamp_ms))
        .unit(StandardUnit::from(datum.unit.as_str()))
        .storage_resolution(datum.storage_resolution)
        .build()
}

impl SdkCloudWatch {
    async fn put_composite_alarm(&self, region: &str, alarm: &AlarmConfig, rule: &str) -> Result<(), CallError> {
        self.client(region)
            .put_composite_alarm()
            .alarm_name(&alarm.name)
            .alarm_description(&alarm.description)
            .alarm_rule(rule)
            .set_ok_actions(Some(alarm.ok_actions.iter().cloned().collect()))
            .set_alarm_actions(Some(alarm.alarm_actions.iter().cloned().collect()))
            .set_insufficient_data_actions(Some(alarm.insufficient_data_actions.iter().cloned().collect()))
            .actions_enabled(alarm.actions_enabled)
            .send()
            .await
            .map(|_| ())
            .map_err(classify)
    }
}

impl CloudWatch for SdkCloudWatch {
    async fn put_metric_data(&self, region: &str, namespace: &str, data: &[Datum]) -> Result<(), CallError> {
        self.client(region)
            .put_metric_data()
            .namespace(namespace)
            .set_metric_data(Some(data.iter().map(to_metric_datum).collect()))
            .send()
            .await
            .map(|_| ())
            .map_err(classify)
    }

    async fn describe_alarms_named(&self, region: &str, names: &[String]) -> Result<Vec<DescribedAlarm>, CallError> {
        let output = self
            .client(region)
            .describe_alarms()
            .set_alarm_names(Some(names.to_vec()))
            .alarm_types(AlarmType::MetricAlarm)
            .alarm_types(AlarmType::CompositeAlarm)
            .max_records(100)
            .send()
            .await
            .map_err(classify)?;
        Ok(output.metric_alarms().iter().map(to_described).chain(output.composite_alarms().iter().map(composite_to_described)).collect())
    }

    async fn put_metric_alarm(&self, region: &str, alarm: &AlarmConfig) -> Result<(), CallError> {
        if let Some(rule) = &alarm.rule {
            return self.put_composite_alarm(region, alarm, rule).await;
        }
        let single = alarm.metrics.is_empty();
        let (statistic, extended) = match (&alarm.statistic, single) {
            (_, false) => (None, None),
            (AlarmStatistic::Standard(name), true) => (Some(Statistic::from(name.as_str())), None),
            (AlarmStatistic::Extended(name), true) => (None, Some(name.clone())),
        };
        // A math or band alarm names its metrics in `Metrics` only; CloudWatch rejects the
        // single-metric fields beside them.
        let dimensions =
            single.then(|| alarm.dimensions.iter().map(|(name, value)| Dimension::builder().name(name).value(value).build()).collect());
        self.client(region)
            .put_metric_alarm()
            .alarm_name(&alarm.name)
            .alarm_description(&alarm.description)
            .set_namespace(single.then(|| alarm.namespace.clone()))
            .set_metric_name(single.then(|| alarm.metric_name.clone()))
            .set_dimensions(dimensions)
            .set_statistic(statistic)
            .set_extended_statistic(extended)
            .set_period(single.then_some(alarm.period))
            .set_metrics((!single).then(|| alarm.metrics.iter().map(to_sdk_query).collect()))
            .set_threshold_metric_id(alarm.threshold_metric_id.clone())
            .evaluation_periods(alarm.evaluation_periods)
            .datapoints_to_alarm(alarm.datapoints_to_alarm)
            .set_threshold(alarm.threshold_metric_id.is_none().then_some(alarm.threshold))
            .comparison_operator(ComparisonOperator::from(alarm.comparison.as_str()))
            .treat_missing_data(&alarm.treat_missing_data)
            .set_ok_actions(Some(alarm.ok_actions.iter().cloned().collect()))
            .set_alarm_actions(Some(alarm.alarm_actions.iter().cloned().collect()))
            .set_insufficient_data_actions(Some(alarm.insufficient_data_actions.iter().cloned().collect()))
            .actions_enabled(alarm.actions_enabled)
            .set_unit(alarm.unit.as_deref().map(StandardUnit::from))
            .send()
            .await
            .map(|_| ())
            .map_err(classify)
    }

    async fn delete_alarms(&self, region: &str, names: &[String]) -> Result<(), CallError> {
        if names.is_empty() {
            return Ok(());
        }
        self.client(region).delete_alarms().set_alarm_names(Some(names.to_vec())).send().await.map(|_| ()).map_err(classify)
    }

    async fn tag_resource(&self, region: &str, arn: &str, tags: &BTreeMap<String, String>) -> Result<(), CallError> {
        let tags = tags.iter().map(|(key, value)| Tag::builder().key(key).value(value).build()).collect();
        self.client(region).tag_resource().resource_arn(arn).set_tags(Some(tags)).send().await.map(|_| ()).map_err(classify)
    }

    async fn untag_resource(&self, region: &str, arn: &str, keys: &[String]) -> Result<(), CallError> {
        self.client(region).untag_resource().resource_arn(arn).set_tag_keys(Some(keys.to_vec())).send().await.map(|_| ()).map_err(classify)
    }

    async fn get_dashboard(&self, region: &str, name: &str) -> Result<Option<String>, CallError> {
        match self.client(region).get_dashboard().dashboard_name(name).send().await {
            Ok(output) => Ok(Some(output.dashboard_body().unwrap_or_default().to_string())),
            Err(error) if error.as_service_error().is_some_and(|error| error.is_dashboard_not_found_error()) => Ok(None),
            Err(error) => match classify(error) {
                missing if is_not_found(&missing) => Ok(None),
                other => Err(other),
            },
        }
    }

    async fn put_dashboard(&self, region: &str, name: &str, body: &str) -> Result<Vec<String>, CallError> {
        match self.client(region).put_dashboard().dashboard_name(name).dashboard_body(body).send().await {
            Ok(output) => Ok(output.dashboard_validation_messages().iter().map(validation_message).collect()),
            Err(error) => {
                // A rejected body comes with the messages that say why; they are the useful part.
                let messages: Vec<String> = match error.as_service_error() {
                    Some(aws_sdk_cloudwatch::operation::put_dashboard::PutDashboardError::DashboardInvalidInputError(invalid)) => {
                        invalid.dashboard_validation_messages().iter().map(validation_message).collect()
                    }
                    _ => Vec::new(),
                };
                let mut failure = classify(error);
                if !messages.is_empty() {
                    failure.message = format!("{} ({})", failure.message, messages.join("; "));
                }
                Err(failure)
            }
        }
    }

    async fn delete_dashboards(&self, region: &str, names: &[String]) -> Result<(), CallError> {
        match self.client(region).delete_dashboards().set_dashboard_names(Some(names.to_vec())).send().await {
            Ok(_) => Ok(()),
            Err(error) => match classify(error) {
                missing if is_not_found(&missing) => Ok(()),
                other => Err(other),
            },
        }
    }
}

/// A dashboard that does not exist: CloudWatch says `ResourceNotFound`; LocalStack 4.13 says
/// `InvalidParameterValue` with "Dashboard x does not exist.", which is recognised only with that
/// message, so a real invalid parameter is never mistaken for an absent dashboard.
fn is_not_found(error: &CallError) -> bool {
    match error.code.as_deref() {
        Some("ResourceNotFound" | "ResourceNotFoundException" | "DashboardNotFoundError") => true,
        Some("InvalidParameterValue") => error.message.starts_with("Dashboard ") && error.message.ends_with(" does not exist."),
        _ => false,
    }
}

fn validation_message(message: &aws_sdk_cloudwatch::types::DashboardValidationMessage) -> String {
    match message.data_path() {
        Some(path) => format!("{path}: {}", message.message().unwrap_or_default()),
        None => message.message().unwrap_or_default().to_string(),
    }
}
