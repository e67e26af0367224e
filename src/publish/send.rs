//! One batch to CloudWatch, isolating bad datums by bisection.
//!
//! CloudWatch rejects a whole PutMetricData request for one invalid datum. Splitting the batch in
//! halves until each rejected part is a single datum delivers everything else: with k bad datums
//! in n, that costs about 2·k·log2(n) extra requests, paid only when something is wrong.

use std::ops::Range;

use super::pace::Pace;
use crate::cloudwatch::{CallError, CloudWatch, Datum, ErrorKind};
use crate::metrics::Metrics;
use crate::outcome::PutOutcome;

/// What happened to each datum of a batch, by index into it.
#[derive(Debug, Default)]
pub struct SendOutcome {
    pub delivered: Vec<usize>,
    /// Rejected on their own, with CloudWatch's message.
    pub rejected: Vec<(usize, String)>,
    /// A retryable failure stopped the batch; datums neither delivered nor rejected wait for a retry.
    pub failure: Option<CallError>,
}

pub async fn send_isolating<C: CloudWatch>(
    cloudwatch: &C,
    pace: &Pace,
    metrics: &Metrics,
    region: &str,
    namespace: &str,
    batch: &[Datum],
) -> SendOutcome {
    let mut outcome = SendOutcome::default();
    // A stack of ranges still to send; the earlier half is always sent first.
    let mut pending: Vec<Range<usize>> = Vec::new();
    pending.push(0..batch.len());
    while let Some(range) = pending.pop() {
        pace.wait().await;
        let started = std::time::Instant::now();
        let sent = cloudwatch.put_metric_data(region, namespace, &batch[range.clone()]).await;
        let outcome_of_call = match &sent {
            Ok(()) => PutOutcome::Ok,
            Err(error) => match error.kind {
                ErrorKind::Invalid => PutOutcome::Invalid,
                ErrorKind::Throttling => PutOutcome::Throttled,
                ErrorKind::Credentials => PutOutcome::Credentials,
                _ => PutOutcome::Unavailable,
            },
        };
        metrics.put_call(outcome_of_call);
        metrics.publishing.put(outcome_of_call, started.elapsed());
        match sent {
            Ok(()) => {
                metrics.count_delivered(&batch[range.clone()]);
                outcome.delivered.extend(range);
            }
            Err(error) if error.kind == ErrorKind::Invalid => {
                if range.len() == 1 {
                    outcome.rejected.push((range.start, error.to_string()));
                } else {
                    let middle = range.start + range.len() / 2;
                    pending.push(middle..range.end);
                    pending.push(range.start..middle);
                }
            }
            Err(error) => {
                outcome.failure = Some(error);
                break;
            }
        }
    }
    outcome
}
