//! One snapshot of the status, and its bodies, shared by every reader for a short while.
//!
//! At 10,000 flakes a snapshot and its JSON are tens of milliseconds of CPU and megabytes of
//! memory. Readers come in bunches (a page refreshing on several screens, `snowflake status
//! --watch`, a monitoring system polling), so each one building its own would multiply that
//! cost by the readers, on a host whose CPU belongs to the flakes. Instead the listener keeps the
//! last snapshot with its bodies rendered once (the JSON when the snapshot is taken; the page
//! when first asked for, and with the next snapshot too once someone asked) and hands the same
//! bytes to every reader:
//!
//! - younger than [`REFRESH_AFTER`]: served as it is;
//! - older than that but younger than [`MAX_AGE`]: served as it is, while one new snapshot is
//!   taken in the background, so a steady reader never waits for a build;
//! - older than [`MAX_AGE`] (or none yet): the reader waits for a new one; readers arriving
//!   meanwhile wait for the same build instead of starting their own.
//!
//! So an answer is at most [`MAX_AGE`] old (plus the time to send it); `header.generated` says
//! when it was taken. The JSON and the page served within that window come from the same
//! snapshot, so they agree. Building runs on the blocking pool, never on the runtime threads the
//! scheduler uses, and takes no lock the scheduler waits for (see [`super::board`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use hyper::body::Bytes;

use super::model::Status;

/// A snapshot older than this is replaced in the background while it is still served.
pub const REFRESH_AFTER: Duration = Duration::from_millis(500);
/// No reader is given a snapshot older than this.
pub const MAX_AGE: Duration = Duration::from_secs(1);

/// The status at one instant, with its bodies rendered at most once.
pub struct Snapshot {
    pub status: Status,
    taken: Instant,
    json: Bytes,
    page: OnceLock<Bytes>,
}

impl Snapshot {
    /// Takes `status` as the snapshot of now, and serializes it.
    pub fn new(status: Status) -> Snapshot {
        // About 320 bytes a row: one allocation instead of a dozen copies while the body grows.
        let mut json = Vec::with_capacity(4096 + status.flakes.len() * 400);
        serde_json::to_writer(&mut json, &status).expect("the status serializes");
        let json = Bytes::from(json);
        Snapshot { status, taken: Instant::now(), json, page: OnceLock::new() }
    }

    /// `/status.json`'s body.
    pub fn json(&self) -> Bytes {
        self.json.clone()
    }

    /// The page's body, if it was rendered already.
    pub fn rendered_page(&self) -> Option<Bytes> {
        self.page.get().cloned()
    }

    /// The page's body, rendered now if nobody asked for it before (CPU: call it off the runtime).
    pub fn page(&self) -> Bytes {
        self.page.get_or_init(|| Bytes::from(super::html::render(&self.status))).clone()
    }

    pub fn age(&self) -> Duration {
        self.taken.elapsed()
    }
}

/// The last snapshot, shared by the listener's readers.
#[derive(Default)]
pub struct SharedSnapshot {
    latest: Mutex<Option<Arc<Snapshot>>>,
    /// Held while a snapshot is built: one build at a time.
    building: tokio::sync::Mutex<()>,
    /// A background refresh is under way.
    refreshing: AtomicBool,
}

impl SharedSnapshot {
    /// A snapshot at most [`MAX_AGE`] old; `take` assembles the status when a new one is needed
    /// (on the blocking pool).
    pub async fn get<F>(self: &Arc<Self>, take: F) -> Arc<Snapshot>
    where
        F: FnOnce() -> Status + Send + 'static,
    {
        if let Some(latest) = self.latest() {
            let age = latest.age();
            if age < REFRESH_AFTER {
                return latest;
            }
            if age < MAX_AGE {
                if !self.refreshing.swap(true, Ordering::AcqRel) {
                    let shared = self.clone();
                    tokio::spawn(async move {
                        // Lowered however the refresh ends, a panic included.
                        let _refreshing = Lower(&shared.refreshing);
                        shared.rebuild(take).await;
                    });
                }
                return latest;
            }
        }
        self.rebuild(take).await
    }

    fn latest(&self) -> Option<Arc<Snapshot>> {
        self.latest.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    /// A new snapshot, unless one younger than [`REFRESH_AFTER`] was made while this waited for
    /// the build in progress.
    async fn rebuild<F>(&self, take: F) -> Arc<Snapshot>
    where
        F: FnOnce() -> Status + Send + 'static,
    {
        let _one_build = self.building.lock().await;
        let previous = self.latest();
        if let Some(latest) = previous.clone().filter(|latest| latest.age() < REFRESH_AFTER) {
            return latest;
        }
        // Someone reads the page: render it with the snapshot, so page readers do not wait either.
        let with_page = previous.is_some_and(|previous| previous.rendered_page().is_some());
        let snapshot = tokio::task::spawn_blocking(move || {
            let snapshot = Arc::new(Snapshot::new(take()));
            if with_page {
                snapshot.page();
            }
            snapshot
        })
        .await
        .unwrap_or_else(|error| std::panic::resume_unwind(error.into_panic()));
        *self.latest.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(snapshot.clone());
        snapshot
    }
}

/// Lowers a flag when dropped.
struct Lower<'a>(&'a AtomicBool);

impl Drop for Lower<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::model::{ClusterStatus, FlakeFiles, Header, SpoolStatus};
    use std::sync::atomic::AtomicUsize;

    fn status(number: usize) -> Status {
        let now = chrono::Utc::now();
        Status {
            header: Header {
                version: number.to_string(),
                generated: now,
                started: now,
                uptime_seconds: 0,
                healthy: true,
                health_findings: Vec::new(),
                flake_files: FlakeFiles::default(),
                spool: SpoolStatus::default(),
                last_put: None,
                alarm_reconcile: None,
                dashboard_reconcile: None,
                cluster: ClusterStatus::default(),
            },
            flakes: Vec::new(),
        }
    }

    /// Counts builds; each build's status carries its number as the version.
    fn counter() -> (Arc<AtomicUsize>, impl Fn() -> Box<dyn FnOnce() -> Status + Send>) {
        let builds = Arc::new(AtomicUsize::new(0));
        let counted = builds.clone();
        let take = move || {
            let builds = counted.clone();
            Box::new(move || {
                std::thread::sleep(Duration::from_millis(50));
                status(builds.fetch_add(1, Ordering::SeqCst) + 1)
            }) as Box<dyn FnOnce() -> Status + Send>
        };
        (builds, take)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_readers_share_one_build() {
        let shared = Arc::new(SharedSnapshot::default());
        let (builds, take) = counter();
        let readers: Vec<_> = (0..20)
            .map(|_| {
                let (shared, take) = (shared.clone(), take());
                tokio::spawn(async move { shared.get(take).await })
            })
            .collect();
        let mut bodies = Vec::new();
        for reader in readers {
            bodies.push(reader.await.unwrap().json());
        }
        assert_eq!(builds.load(Ordering::SeqCst), 1, "twenty readers at once, one build");
        assert!(bodies.iter().all(|body| *body == bodies[0]));
        let parsed: Status = serde_json::from_slice(&bodies[0]).unwrap();
        assert_eq!(parsed.header.version, "1");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_snapshot_is_never_older_than_max_age() {
        let shared = Arc::new(SharedSnapshot::default());
        let (builds, take) = counter();
        let first = shared.get(take()).await;
        assert_eq!(first.status.header.version, "1");
        // Past REFRESH_AFTER: still served, and a refresh starts behind it.
        tokio::time::sleep(REFRESH_AFTER + Duration::from_millis(50)).await;
        let stale = shared.get(take()).await;
        assert_eq!(stale.status.header.version, "1", "served at once while the refresh runs");
        let waiting = Instant::now();
        while builds.load(Ordering::SeqCst) < 2 {
            assert!(waiting.elapsed() < Duration::from_secs(10), "the background refresh never ran");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(builds.load(Ordering::SeqCst), 2, "one background refresh");
        assert_ne!(shared.get(take()).await.status.header.version, "1", "the refreshed snapshot is served");
        // Past MAX_AGE with nobody reading: the next reader waits for a new snapshot.
        tokio::time::sleep(MAX_AGE + Duration::from_millis(50)).await;
        let fresh = shared.get(take()).await;
        assert_eq!(fresh.status.header.version, "3");
        assert!(fresh.age() < REFRESH_AFTER);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_page_is_rendered_once_from_the_same_snapshot_as_the_json() {
        let shared = Arc::new(SharedSnapshot::default());
        let (_, take) = counter();
        let snapshot = shared.get(take()).await;
        assert!(snapshot.rendered_page().is_none(), "rendered only when asked for");
        let page = snapshot.page();
        assert!(std::str::from_utf8(&page).unwrap().contains("<!DOCTYPE html>"));
        assert_eq!(snapshot.rendered_page().unwrap().as_ptr(), page.as_ptr(), "the same bytes, not a second rendering");
        // Past MAX_AGE: the next snapshot comes with its page, since the page has a reader.
        tokio::time::sleep(MAX_AGE + Duration::from_millis(50)).await;
        let next = shared.get(take()).await;
        assert!(!Arc::ptr_eq(&next, &snapshot));
        assert!(next.rendered_page().is_some(), "rendered with the snapshot for the page's readers");
    }
}
