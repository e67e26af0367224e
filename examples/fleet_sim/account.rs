//! One AWS account's CloudWatch as the fleet sees it: the account-wide quotas enforced by
//! throttling, on tokio's (simulated) clock, with every call counted per second.
//!
//! Alarms are kept by the project's in-memory fake, so DescribeAlarms answers exactly as in the
//! unit tests; PutMetricData only counts datums and their delay (a simulated day of a fleet would
//! not fit in memory as stored datums).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use specialsnowflake::cloudwatch::fake::FakeCloudWatch;
use specialsnowflake::cloudwatch::{AlarmConfig, CallError, CloudWatch, Datum, DescribedAlarm, ErrorKind};
use tokio::time::Instant;

/// The APIs with an account-wide quota in the simulation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Api {
    PutMetricData,
    DescribeAlarms,
    PutMetricAlarm,
    DeleteAlarms,
    TagResource,
}

impl Api {
    pub const ALL: [Api; 5] = [Api::PutMetricData, Api::DescribeAlarms, Api::PutMetricAlarm, Api::DeleteAlarms, Api::TagResource];

    /// Calls per second CloudWatch allows the whole account (SPEC 12; tagging's own quota is
    /// not published, 20 is assumed and rarely matters: only new tagged alarms use it).
    pub fn quota(self) -> f64 {
        match self {
            Api::PutMetricData => 500.0,
            Api::DescribeAlarms => 9.0,
            Api::PutMetricAlarm | Api::DeleteAlarms => 3.0,
            Api::TagResource => 20.0,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Api::PutMetricData => "PutMetricData",
            Api::DescribeAlarms => "DescribeAlarms",
            Api::PutMetricAlarm => "PutMetricAlarm",
            Api::DeleteAlarms => "DeleteAlarms",
            Api::TagResource => "TagResource/UntagResource",
        }
    }
}

/// A token bucket holding at most one second of calls.
struct Bucket {
    tokens: f64,
    last: Instant,
}

/// Calls of one API: accepted per simulated second, and throttled.
#[derive(Default, Clone)]
pub struct Tally {
    pub accepted_per_second: Vec<u32>,
    pub throttled: u64,
}

impl Tally {
    pub fn accepted(&self) -> u64 {
        self.accepted_per_second.iter().map(|&n| u64::from(n)).sum()
    }

    /// Mean and peak accepted calls per second over seconds `from..to` of the run.
    pub fn rate(&self, from: usize, to: usize) -> (f64, u32) {
        if from >= to {
            return (0.0, 0);
        }
        // Seconds after the last accepted call are not in the vector: they count as zero.
        let recorded = &self.accepted_per_second[from.min(self.accepted_per_second.len())..to.min(self.accepted_per_second.len())];
        let total: u64 = recorded.iter().map(|&n| u64::from(n)).sum();
        (total as f64 / (to - from) as f64, recorded.iter().copied().max().unwrap_or(0))
    }
}

/// Datums CloudWatch accepted and how late they came (delivery minus their timestamp).
#[derive(Default, Clone)]
pub struct Deliveries {
    pub datums: u64,
    pub later_than_a_minute: u64,
    pub max_delay_ms: i64,
}

struct State {
    buckets: BTreeMap<Api, Bucket>,
    tallies: BTreeMap<Api, Tally>,
    deliveries: Deliveries,
}

/// The account. Cheap to clone; clones share state.
#[derive(Clone)]
pub struct Account {
    alarms: FakeCloudWatch,
    state: Arc<Mutex<State>>,
    started: Instant,
    /// Wall-clock milliseconds of `started`: datum timestamps are measured against it.
    epoch_ms: i64,
}

impl Account {
    pub fn new(epoch_ms: i64) -> Account {
        let now = Instant::now();
        let buckets = Api::ALL.iter().map(|&api| (api, Bucket { tokens: api.quota(), last: now })).collect();
        let state = State { buckets, tallies: BTreeMap::new(), deliveries: Deliveries::default() };
        Account { alarms: FakeCloudWatch::new(), state: Arc::new(Mutex::new(state)), started: now, epoch_ms }
    }

    /// Milliseconds of simulated wall-clock time now.
    pub fn now_ms(&self) -> i64 {
        self.epoch_ms + self.started.elapsed().as_millis() as i64
    }

    pub fn tally(&self, api: Api) -> Tally {
        self.state.lock().unwrap().tallies.get(&api).cloned().unwrap_or_default()
    }

    pub fn deliveries(&self) -> Deliveries {
        self.state.lock().unwrap().deliveries.clone()
    }

    pub fn alarm_count(&self, region: &str) -> usize {
        self.alarms.alarm_names(region).len()
    }

    /// Takes a token of `api`'s quota, or says the call is throttled.
    fn admit(&self, api: Api) -> Result<(), CallError> {
        let now = Instant::now();
        let second = (now - self.started).as_secs() as usize;
        let mut state = self.state.lock().unwrap();
        let bucket = state.buckets.get_mut(&api).expect("every API has a bucket");
        bucket.tokens = (bucket.tokens + (now - bucket.last).as_secs_f64() * api.quota()).min(api.quota());
        bucket.last = now;
        let admitted = bucket.tokens >= 1.0;
        if admitted {
            bucket.tokens -= 1.0;
        }
        let tally = state.tallies.entry(api).or_default();
        if admitted {
            if tally.accepted_per_second.len() <= second {
                tally.accepted_per_second.resize(second + 1, 0);
            }
            tally.accepted_per_second[second] += 1;
            Ok(())
        } else {
            tally.throttled += 1;
            Err(CallError::new(ErrorKind::Throttling, Some("Throttling"), "Rate exceeded"))
        }
    }
}

impl CloudWatch for Account {
    async fn put_metric_data(&self, _region: &str, _namespace: &str, data: &[Datum]) -> Result<(), CallError> {
        self.admit(Api::PutMetricData)?;
        let now_ms = self.now_ms();
        let mut state = self.state.lock().unwrap();
        let deliveries = &mut state.deliveries;
        deliveries.datums += data.len() as u64;
        for datum in data {
            let delay = now_ms - datum.timestamp_ms;
            deliveries.max_delay_ms = deliveries.max_delay_ms.max(delay);
            if delay > 60_000 {
                deliveries.later_than_a_minute += 1;
            }
        }
        Ok(())
    }

    async fn describe_alarms_named(&self, region: &str, names: &[String]) -> Result<Vec<DescribedAlarm>, CallError> {
        self.admit(Api::DescribeAlarms)?;
        self.alarms.describe_alarms_named(region, names).await
    }

    async fn put_metric_alarm(&self, region: &str, alarm: &AlarmConfig) -> Result<(), CallError> {
        self.admit(Api::PutMetricAlarm)?;
        self.alarms.put_metric_alarm(region, alarm).await
    }

    async fn delete_alarms(&self, region: &str, names: &[String]) -> Result<(), CallError> {
        self.admit(Api::DeleteAlarms)?;
        self.alarms.delete_alarms(region, names).await
    }

    async fn tag_resource(&self, region: &str, arn: &str, tags: &BTreeMap<String, String>) -> Result<(), CallError> {
        self.admit(Api::TagResource)?;
        self.alarms.tag_resource(region, arn, tags).await
    }

    async fn untag_resource(&self, region: &str, arn: &str, keys: &[String]) -> Result<(), CallError> {
        self.admit(Api::TagResource)?;
        self.alarms.untag_resource(region, arn, keys).await
    }

    // The simulated hosts keep no dashboard (the simulation runs without --dashboard), so these
    // have no quota of their own here; they are answered by the fake so the trait is complete.
    async fn get_dashboard(&self, region: &str, name: &str) -> Result<Option<String>, CallError> {
        self.alarms.get_dashboard(region, name).await
    }

    async fn put_dashboard(&self, region: &str, name: &str, body: &str) -> Result<Vec<String>, CallError> {
        self.alarms.put_dashboard(region, name, body).await
    }

    async fn delete_dashboards(&self, region: &str, names: &[String]) -> Result<(), CallError> {
        self.alarms.delete_dashboards(region, names).await
    }
}
