//! The one handle to the publisher's spool. Every operation on the disk spool runs on tokio's
//! blocking pool, so a slow disk (an fsync can take seconds) stalls neither the runtime's threads
//! nor, through them, scheduling and `/healthz`; the in-memory spool of `once` and `--dry-run` is
//! worked on in place. Operations are serialised: the spool is a single append-only log.

use std::io;
use std::sync::{Arc, Mutex, MutexGuard};

use super::{Dropped, Spool, SpoolStats};
use crate::publish::Datapoint;

#[derive(Clone)]
pub struct SpoolHandle {
    spool: Arc<Mutex<Box<dyn Spool>>>,
    /// An in-memory spool (`once`, `--dry-run`) is worked on in place: a hop to the blocking
    /// pool would cost more than the work.
    on_disk: bool,
}

impl SpoolHandle {
    pub fn new(spool: Box<dyn Spool>) -> SpoolHandle {
        let on_disk = spool.on_disk();
        SpoolHandle { spool: Arc::new(Mutex::new(spool)), on_disk }
    }

    /// Stores `points` with one write and one sync; returns the first sequence number.
    pub async fn append(&self, points: Vec<Datapoint>) -> io::Result<u64> {
        self.blocking(move |spool| spool.append(&points)).await?
    }

    /// Forgets what CloudWatch accepted (or finally rejected).
    pub async fn ack(&self, seqs: Vec<u64>) -> io::Result<()> {
        self.blocking(move |spool| spool.ack(&seqs)).await?
    }

    /// Applies the age and size limits at `now_ms`; nothing is dropped if the work did not finish.
    pub async fn enforce_limits(&self, now_ms: i64) -> Dropped {
        self.blocking(move |spool| spool.enforce_limits(now_ms)).await.unwrap_or_default()
    }

    pub async fn stats(&self) -> SpoolStats {
        self.blocking(|spool| spool.stats()).await.unwrap_or_default()
    }

    async fn blocking<T: Send + 'static>(&self, work: impl FnOnce(&mut dyn Spool) -> T + Send + 'static) -> io::Result<T> {
        if !self.on_disk {
            return Ok(work(lock(&self.spool).as_mut()));
        }
        let spool = self.spool.clone();
        tokio::task::spawn_blocking(move || work(lock(&spool).as_mut()))
            .await
            .map_err(|error| io::Error::other(format!("the spool operation did not finish: {error}")))
    }
}

/// A panic inside a spool operation leaves the spool as the file system has it; keep using it.
fn lock(spool: &Mutex<Box<dyn Spool>>) -> MutexGuard<'_, Box<dyn Spool>> {
    spool.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
