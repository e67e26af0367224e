//! The closed sets of outcomes that are logged and counted: how a run ended, how a PutMetricData
//! call went, why the spool let datapoints go.
//!
//! Each has one `as_str`, the word that appears in flake logs, in `snowflake once` summaries and
//! as the label value in `/metrics`, so those can never disagree; `VARIANTS` lists every value so
//! the metrics start each series at zero and forget a removed flake's series completely.

use strum::{IntoStaticStr, VariantArray};

/// How one run of a flake ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, IntoStaticStr, VariantArray)]
#[strum(serialize_all = "snake_case")]
pub enum RunResult {
    /// It succeeded (and its value, if any, was taken for publishing).
    Ok,
    /// Some entries of a multi-metric output were rejected (and logged); the others were taken.
    Partial,
    /// The command exited non-zero or was killed by a signal.
    Failed,
    /// A metric's output was not a number.
    Rejected,
    /// It ran past `flakeTimeout`.
    Timeout,
    /// The daemon stopped it while shutting down.
    Stopped,
    /// It could not run, or its value could not be published.
    Error,
}

/// How one PutMetricData request went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, IntoStaticStr, VariantArray)]
#[strum(serialize_all = "snake_case")]
pub enum PutOutcome {
    Ok,
    Throttled,
    Unavailable,
    Credentials,
    /// CloudWatch rejected the request's data as invalid.
    Invalid,
}

/// Why the spool let datapoints go undelivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, IntoStaticStr, VariantArray)]
#[strum(serialize_all = "snake_case")]
pub enum DropReason {
    /// Older than the 14 days CloudWatch accepts.
    Age,
    /// The oldest, to stay under `--spool-max-bytes`.
    Size,
}

impl RunResult {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

impl PutOutcome {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

impl DropReason {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_words_are_the_ones_logs_and_dashboards_know() {
        let words: Vec<&str> = RunResult::VARIANTS.iter().map(|result| result.as_str()).collect();
        assert_eq!(words, ["ok", "partial", "failed", "rejected", "timeout", "stopped", "error"]);
        let words: Vec<&str> = PutOutcome::VARIANTS.iter().map(|outcome| outcome.as_str()).collect();
        assert_eq!(words, ["ok", "throttled", "unavailable", "credentials", "invalid"]);
        let words: Vec<&str> = DropReason::VARIANTS.iter().map(|reason| reason.as_str()).collect();
        assert_eq!(words, ["age", "size"]);
    }
}
