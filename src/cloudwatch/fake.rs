//! An in-memory CloudWatch for unit tests: it stores what it is sent, answers DescribeAlarms by name, counts
//! calls, and fails on demand (throttling, outages, rejected datums) the way a real peer will not.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use super::rule::Rule;
use super::{AlarmConfig, AlarmStatistic, CallError, CloudWatch, Datum, DescribedAlarm, ErrorKind};

/// Which call an injected failure applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    PutMetricData,
    DescribeAlarms,
    PutMetricAlarm,
    PutCompositeAlarm,
    DeleteAlarms,
    TagResource,
    UntagResource,
    GetDashboard,
    PutDashboard,
    DeleteDashboards,
}

/// PutMetricData's limit on `Values` in one datum.
const MAX_VALUES_PER_DATUM: usize = 150;

type DatumCheck = Arc<dyn Fn(&Datum) -> Option<String> + Send + Sync>;

/// An alarm as stored, with its tags.
type StoredAlarm = (DescribedAlarm, BTreeMap<String, String>);

#[derive(Default)]
struct State {
    /// (region, namespace) -> accepted datums, in arrival order.
    data: BTreeMap<(String, String), Vec<Datum>>,
    /// region -> name -> (alarm, tags)
    alarms: BTreeMap<String, BTreeMap<String, StoredAlarm>>,
    /// region -> dashboard name -> body
    dashboards: BTreeMap<String, BTreeMap<String, String>>,
    calls: HashMap<Operation, usize>,
    /// Sizes of accepted PutMetricData requests, in order.
    put_sizes: Vec<usize>,
    failures: HashMap<Operation, VecDeque<CallError>>,
    /// Every call of an operation fails with this until cleared: an outage.
    down: HashMap<Operation, CallError>,
    /// Every call in a region fails with this: a region that cannot be reached.
    broken_regions: HashMap<String, CallError>,
    datum_check: Option<DatumCheck>,
    /// Accepted alarm writes in order: (operation, alarm names).
    alarm_writes: Vec<(Operation, Vec<String>)>,
}

/// The in-memory CloudWatch. Cheap to clone; clones share state.
#[derive(Clone)]
pub struct FakeCloudWatch {
    state: Arc<Mutex<State>>,
    /// PutMetricData calls that panic (a bug in a caller's task, simulated). Fault injection is
    /// for tests only: the dry run uses this fake as its store, and must never panic on purpose.
    #[cfg(any(test, feature = "test-support"))]
    panics: Arc<std::sync::atomic::AtomicUsize>,
    /// DescribeAlarms calls that panic: a bug in the reconcile task, simulated.
    #[cfg(any(test, feature = "test-support"))]
    describe_panics: Arc<std::sync::atomic::AtomicUsize>,
}

impl Default for FakeCloudWatch {
    fn default() -> Self {
        FakeCloudWatch {
            state: Arc::new(Mutex::new(State::default())),
            #[cfg(any(test, feature = "test-support"))]
            panics: Arc::default(),
            #[cfg(any(test, feature = "test-support"))]
            describe_panics: Arc::default(),
        }
    }
}

impl FakeCloudWatch {
    pub fn new() -> Self {
        Self::default()
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.state.lock().expect("fake state poisoned"))
    }

    /// The next `count` calls of `operation` fail with `error`.
    pub fn fail_next(&self, operation: Operation, count: usize, error: CallError) {
        self.with(|state| state.failures.entry(operation).or_default().extend(std::iter::repeat_n(error, count)));
    }

    /// Every call of `operation` fails with `error` from now on: an outage.
    pub fn set_down(&self, operation: Operation, error: CallError) {
        self.with(|state| state.down.insert(operation, error));
    }

    /// Every call in `region` fails with `error` (a mistyped or unreachable region).
    pub fn break_region(&self, region: &str, error: CallError) {
        self.with(|state| state.broken_regions.insert(region.to_string(), error));
    }

    /// The next `count` PutMetricData calls panic, outside any lock.
    #[cfg(any(test, feature = "test-support"))]
    pub fn panic_next_puts(&self, count: usize) {
        self.panics.store(count, std::sync::atomic::Ordering::SeqCst);
    }

    /// The next `count` DescribeAlarms calls panic, outside any lock.
    #[cfg(any(test, feature = "test-support"))]
    pub fn panic_next_describes(&self, count: usize) {
        self.describe_panics.store(count, std::sync::atomic::Ordering::SeqCst);
    }

    /// PutMetricData rejects a whole request (as CloudWatch does) if any datum fails `check`.
    pub fn reject_datums(&self, check: impl Fn(&Datum) -> Option<String> + Send + Sync + 'static) {
        self.with(|state| state.datum_check = Some(Arc::new(check)));
    }

    /// Calls made so far of `operation`, failed ones included.
    pub fn calls(&self, operation: Operation) -> usize {
        self.with(|state| state.calls.get(&operation).copied().unwrap_or(0))
    }

    /// Accepted datums of one (region, namespace).
    pub fn data(&self, region: &str, namespace: &str) -> Vec<Datum> {
        self.with(|state| state.data.get(&(region.to_string(), namespace.to_string())).cloned().unwrap_or_default())
    }

    /// Sizes of accepted PutMetricData requests, in order.
    pub fn put_sizes(&self) -> Vec<usize> {
        self.with(|state| state.put_sizes.clone())
    }

    /// Stores an alarm as if someone created it outside SpecialSnowflake.
    pub fn insert_alarm(&self, region: &str, alarm: DescribedAlarm) {
        self.with(|state| {
            state.alarms.entry(region.to_string()).or_default().insert(alarm.name.clone(), (alarm, BTreeMap::new()));
        });
    }

    /// Deletes alarms as someone outside SpecialSnowflake would (not counted as a call).
    pub fn delete_alarms_now(&self, region: &str, names: &[&str]) {
        self.with(|state| {
            if let Some(alarms) = state.alarms.get_mut(region) {
                for name in names {
                    alarms.remove(*name);
                }
            }
        });
    }

    pub fn alarm(&self, region: &str, name: &str) -> Option<DescribedAlarm> {
        self.with(|state| state.alarms.get(region).and_then(|alarms| alarms.get(name)).map(|(alarm, _)| alarm.clone()))
    }

    pub fn alarm_names(&self, region: &str) -> Vec<String> {
        self.with(|state| state.alarms.get(region).map(|alarms| alarms.keys().cloned().collect()).unwrap_or_default())
    }

    /// Accepted PutMetricAlarm, PutCompositeAlarm and DeleteAlarms calls in order, with the names.
    pub fn alarm_writes(&self) -> Vec<(Operation, Vec<String>)> {
        self.with(|state| state.alarm_writes.clone())
    }

    pub fn tags(&self, region: &str, name: &str) -> BTreeMap<String, String> {
        self.with(|state| state.alarms.get(region).and_then(|alarms| alarms.get(name)).map(|(_, tags)| tags.clone()).unwrap_or_default())
    }

    /// A dashboard's body, as GetDashboard would return it.
    pub fn dashboard(&self, region: &str, name: &str) -> Option<String> {
        self.with(|state| state.dashboards.get(region).and_then(|dashboards| dashboards.get(name)).cloned())
    }

    pub fn dashboard_names(&self, region: &str) -> Vec<String> {
        self.with(|state| state.dashboards.get(region).map(|dashboards| dashboards.keys().cloned().collect()).unwrap_or_default())
    }

    /// Stores a dashboard as someone outside SpecialSnowflake would (not counted as a call).
    pub fn insert_dashboard(&self, region: &str, name: &str, body: &str) {
        self.with(|state| state.dashboards.entry(region.to_string()).or_default().insert(name.to_string(), body.to_string()));
    }

    /// Counts the call and returns the injected failure for it, if one is queued.
    fn begin(&self, operation: Operation, region: &str) -> Result<(), CallError> {
        self.with(|state| {
            *state.calls.entry(operation).or_default() += 1;
            if let Some(error) = state.broken_regions.get(region) {
                return Err(error.clone());
            }
            if let Some(error) = state.down.get(&operation) {
                return Err(error.clone());
            }
            match state.failures.get_mut(&operation).and_then(VecDeque::pop_front) {
                Some(error) => Err(error),
                None => Ok(()),
            }
        })
    }
}

fn arn(region: &str, name: &str) -> String {
    format!("arn:aws:cloudwatch:{region}:000000000000:alarm:{name}")
}

/// What DescribeAlarms would report after PutMetricAlarm or PutCompositeAlarm with `config`.
fn described(region: &str, config: &AlarmConfig) -> DescribedAlarm {
    if config.rule.is_some() {
        return DescribedAlarm {
            name: config.name.clone(),
            arn: Some(arn(region, &config.name)),
            description: Some(config.description.clone()).filter(|text| !text.is_empty()),
            ok_actions: config.ok_actions.iter().cloned().collect(),
            alarm_actions: config.alarm_actions.iter().cloned().collect(),
            insufficient_data_actions: config.insufficient_data_actions.iter().cloned().collect(),
            actions_enabled: Some(config.actions_enabled),
            rule: config.rule.clone(),
            state: Some("INSUFFICIENT_DATA".to_string()),
            ..DescribedAlarm::default()
        };
    }
    if !config.metrics.is_empty() {
        // As CloudWatch: the single-metric fields are absent beside `Metrics`.
        return DescribedAlarm {
            name: config.name.clone(),
            arn: Some(arn(region, &config.name)),
            description: Some(config.description.clone()).filter(|text| !text.is_empty()),
            evaluation_periods: Some(config.evaluation_periods),
            datapoints_to_alarm: Some(config.datapoints_to_alarm),
            threshold: config.threshold_metric_id.is_none().then_some(config.threshold),
            comparison: Some(config.comparison.clone()),
            treat_missing_data: Some(config.treat_missing_data.clone()),
            ok_actions: config.ok_actions.iter().cloned().collect(),
            alarm_actions: config.alarm_actions.iter().cloned().collect(),
            insufficient_data_actions: config.insufficient_data_actions.iter().cloned().collect(),
            actions_enabled: Some(config.actions_enabled),
            metrics: config.metrics.clone(),
            threshold_metric_id: config.threshold_metric_id.clone(),
            state: Some("INSUFFICIENT_DATA".to_string()),
            ..DescribedAlarm::default()
        };
    }
    let (statistic, extended_statistic) = match &config.statistic {
        AlarmStatistic::Standard(name) => (Some(name.clone()), None),
        AlarmStatistic::Extended(name) => (None, Some(name.clone())),
    };
    DescribedAlarm {
        name: config.name.clone(),
        arn: Some(arn(region, &config.name)),
        description: Some(config.description.clone()).filter(|text| !text.is_empty()),
        namespace: Some(config.namespace.clone()),
        metric_name: Some(config.metric_name.clone()),
        dimensions: config.dimensions.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        statistic,
        extended_statistic,
        period: Some(config.period),
        evaluation_periods: Some(config.evaluation_periods),
        datapoints_to_alarm: Some(config.datapoints_to_alarm),
        threshold: Some(config.threshold),
        comparison: Some(config.comparison.clone()),
        treat_missing_data: Some(config.treat_missing_data.clone()),
        ok_actions: config.ok_actions.iter().cloned().collect(),
        alarm_actions: config.alarm_actions.iter().cloned().collect(),
        insufficient_data_actions: config.insufficient_data_actions.iter().cloned().collect(),
        actions_enabled: Some(config.actions_enabled),
        unit: config.unit.clone(),
        state: Some("INSUFFICIENT_DATA".to_string()),
        ..DescribedAlarm::default()
    }
}

/// The names a stored composite alarm's rule refers to.
fn rule_names(alarm: &DescribedAlarm) -> Vec<String> {
    alarm
        .rule
        .as_deref()
        .and_then(|rule| Rule::parse(rule).ok())
        .map(|rule| rule.names().into_iter().map(str::to_string).collect())
        .unwrap_or_default()
}

impl CloudWatch for FakeCloudWatch {
    async fn put_metric_data(&self, region: &str, namespace: &str, data: &[Datum]) -> Result<(), CallError> {
        #[cfg(any(test, feature = "test-support"))]
        if self
            .panics
            .fetch_update(std::sync::atomic::Ordering::SeqCst, std::sync::atomic::Ordering::SeqCst, |left| left.checked_sub(1))
            .is_ok()
        {
            panic!("the fake was told to panic");
        }
        self.begin(Operation::PutMetricData, region)?;
        self.with(|state| {
            if data.len() > 1000 {
                return Err(CallError::new(ErrorKind::Invalid, Some("InvalidParameterValue"), "at most 1000 datums per request"));
            }
            if data.iter().any(|datum| datum.counted_values.len() > MAX_VALUES_PER_DATUM) {
                return Err(CallError::new(ErrorKind::Invalid, Some("InvalidParameterValue"), "at most 150 values per datum"));
            }
            if let Some(check) = &state.datum_check
                && let Some(reason) = data.iter().find_map(|datum| check(datum))
            {
                return Err(CallError::new(ErrorKind::Invalid, Some("InvalidParameterValue"), reason));
            }
            state.data.entry((region.to_string(), namespace.to_string())).or_default().extend_from_slice(data);
            state.put_sizes.push(data.len());
            Ok(())
        })
    }

    async fn describe_alarms_named(&self, region: &str, names: &[String]) -> Result<Vec<DescribedAlarm>, CallError> {
        #[cfg(any(test, feature = "test-support"))]
        if self
            .describe_panics
            .fetch_update(std::sync::atomic::Ordering::SeqCst, std::sync::atomic::Ordering::SeqCst, |left| left.checked_sub(1))
            .is_ok()
        {
            panic!("injected panic in DescribeAlarms");
        }
        self.begin(Operation::DescribeAlarms, region)?;
        if names.len() > 100 {
            return Err(CallError::new(ErrorKind::Invalid, Some("InvalidParameterValue"), "at most 100 alarm names per call"));
        }
        Ok(self.with(|state| {
            let alarms = state.alarms.get(region);
            names.iter().filter_map(|name| alarms.and_then(|alarms| alarms.get(name)).map(|(alarm, _)| alarm.clone())).collect()
        }))
    }

    async fn put_metric_alarm(&self, region: &str, alarm: &AlarmConfig) -> Result<(), CallError> {
        let operation = if alarm.is_composite() { Operation::PutCompositeAlarm } else { Operation::PutMetricAlarm };
        self.begin(operation, region)?;
        self.with(|state| {
            let alarms = state.alarms.entry(region.to_string()).or_default();
            if let Some(rule) = &alarm.rule {
                let rule = Rule::parse(rule).map_err(|reason| CallError::new(ErrorKind::Invalid, Some("ValidationError"), reason))?;
                // Stricter than needed, on purpose: a composite is only ever written after the
                // alarms it names, so a test sees any ordering mistake.
                if let Some(missing) = rule.names().into_iter().find(|name| !alarms.contains_key(*name)) {
                    return Err(CallError::new(
                        ErrorKind::Invalid,
                        Some("ValidationError"),
                        format!("alarm {missing} in the rule does not exist"),
                    ));
                }
            }
            // Assumed of CloudWatch, which keeps metric and composite alarms apart: a name is
            // not turned from one type into the other in place.
            if alarms.get(&alarm.name).is_some_and(|(existing, _)| existing.rule.is_some() != alarm.rule.is_some()) {
                return Err(CallError::new(
                    ErrorKind::Invalid,
                    Some("ValidationError"),
                    format!("an alarm of the other type is named {}", alarm.name),
                ));
            }
            let tags = alarms.remove(&alarm.name).map(|(_, tags)| tags).unwrap_or_default();
            alarms.insert(alarm.name.clone(), (described(region, alarm), tags));
            state.alarm_writes.push((operation, vec![alarm.name.clone()]));
            Ok(())
        })
    }

    async fn delete_alarms(&self, region: &str, names: &[String]) -> Result<(), CallError> {
        self.begin(Operation::DeleteAlarms, region)?;
        if names.len() > 100 {
            return Err(CallError::new(ErrorKind::Invalid, Some("InvalidParameterValue"), "at most 100 alarm names per call"));
        }
        self.with(|state| {
            let Some(alarms) = state.alarms.get_mut(region) else { return Ok(()) };
            let composites = names.iter().filter(|name| alarms.get(*name).is_some_and(|(alarm, _)| alarm.rule.is_some())).count();
            if composites > 1 {
                return Err(CallError::new(
                    ErrorKind::Invalid,
                    Some("ValidationError"),
                    "at most one composite alarm per DeleteAlarms call",
                ));
            }
            // An alarm a remaining composite still names is refused: deletion order must be
            // composites first (stricter than needed, so a test sees ordering mistakes).
            for (other, (alarm, _)) in alarms.iter() {
                if names.contains(other) {
                    continue;
                }
                if let Some(named) = rule_names(alarm).into_iter().find(|name| names.contains(name)) {
                    return Err(CallError::new(
                        ErrorKind::Invalid,
                        Some("ValidationError"),
                        format!("alarm {named} is named in the rule of composite alarm {other}"),
                    ));
                }
            }
            for name in names {
                alarms.remove(name);
            }
            state.alarm_writes.push((Operation::DeleteAlarms, names.to_vec()));
            Ok(())
        })
    }

    async fn tag_resource(&self, region: &str, arn: &str, tags: &BTreeMap<String, String>) -> Result<(), CallError> {
        self.begin(Operation::TagResource, region)?;
        self.with(|state| {
            let entry =
                state.alarms.get_mut(region).and_then(|alarms| alarms.values_mut().find(|(alarm, _)| alarm.arn.as_deref() == Some(arn)));
            match entry {
                Some((_, existing)) => {
                    existing.extend(tags.iter().map(|(k, v)| (k.clone(), v.clone())));
                    Ok(())
                }
                None => Err(CallError::new(ErrorKind::Invalid, Some("ResourceNotFound"), format!("no alarm {arn}"))),
            }
        })
    }

    async fn untag_resource(&self, region: &str, arn: &str, keys: &[String]) -> Result<(), CallError> {
        self.begin(Operation::UntagResource, region)?;
        self.with(|state| {
            if let Some((_, existing)) =
                state.alarms.get_mut(region).and_then(|alarms| alarms.values_mut().find(|(alarm, _)| alarm.arn.as_deref() == Some(arn)))
            {
                for key in keys {
                    existing.remove(key);
                }
            }
        });
        Ok(())
    }

    async fn get_dashboard(&self, region: &str, name: &str) -> Result<Option<String>, CallError> {
        self.begin(Operation::GetDashboard, region)?;
        Ok(self.dashboard(region, name))
    }

    async fn put_dashboard(&self, region: &str, name: &str, body: &str) -> Result<Vec<String>, CallError> {
        self.begin(Operation::PutDashboard, region)?;
        let parsed: serde_json::Value = serde_json::from_str(body)
            .map_err(|error| CallError::new(ErrorKind::Invalid, Some("InvalidParameterInput"), format!("the body is not JSON: {error}")))?;
        let widgets = parsed.get("widgets").and_then(serde_json::Value::as_array).map_or(0, Vec::len);
        if widgets > 500 {
            return Err(CallError::new(ErrorKind::Invalid, Some("InvalidParameterInput"), "a dashboard has at most 500 widgets"));
        }
        self.insert_dashboard(region, name, body);
        Ok(Vec::new())
    }

    async fn delete_dashboards(&self, region: &str, names: &[String]) -> Result<(), CallError> {
        self.begin(Operation::DeleteDashboards, region)?;
        self.with(|state| {
            if let Some(dashboards) = state.dashboards.get_mut(region) {
                for name in names {
                    dashboards.remove(name);
                }
            }
        });
        Ok(())
    }
}
