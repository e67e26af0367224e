//! Holding partial batches while a firing's runs are still going, so that the datapoints of one
//! firing leave in one PutMetricData call even when the firing takes longer than the flush
//! interval (a busy host, or a splay spreading it over seconds).
//!
//! The scheduler takes a [`Hold`] for every run from the moment its firing is due until the run
//! has handed over its datapoint. While any hold is taken, the publisher keeps a partial batch
//! past its flush interval, up to `PublisherConfig::max_hold` after its oldest datapoint arrived;
//! when the last hold is released the batch leaves at once if its flush interval has passed.
//! Nothing takes holds in `snowflake once`, and a lone sparse run releases its hold as it hands
//! over its value, so neither waits longer than before.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Notify;

/// How many runs hold partial batches back, shared by the publisher and its handles.
#[derive(Default)]
pub struct Holds {
    count: AtomicUsize,
    released: Notify,
}

impl Holds {
    /// True while some run holds partial batches back.
    pub fn held(&self) -> bool {
        self.count.load(Ordering::Acquire) > 0
    }

    /// Completes after the last hold is released (at once if that happened since the last wait).
    pub async fn all_released(&self) {
        self.released.notified().await;
    }
}

/// One run's hold on partial batches; released when dropped.
pub struct Hold(Arc<Holds>);

impl Hold {
    pub(super) fn take(holds: &Arc<Holds>) -> Hold {
        holds.count.fetch_add(1, Ordering::AcqRel);
        Hold(holds.clone())
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            // Stored as a permit if the publisher is busy: it looks again on its next turn.
            self.0.released.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_last_release_wakes_the_publisher() {
        let holds = Arc::new(Holds::default());
        let (first, second) = (Hold::take(&holds), Hold::take(&holds));
        drop(first);
        assert!(holds.held());
        drop(second);
        assert!(!holds.held());
        tokio::time::timeout(std::time::Duration::from_secs(1), holds.all_released()).await.expect("woken");
    }
}
