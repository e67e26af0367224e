//! An in-memory S3 for fast tests and the simulation: conditional puts as S3 answers them,
//! `Last-Modified` in whole seconds from a clock that follows tokio's (so a paused runtime
//! controls it), ETags from the content as S3's are, and per-member handles that can be cut off
//! and that count their requests.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, SubsecRound, Utc};
use tokio::time::Instant;

use super::store::{Condition, Listed, Object, Put, Store, StoreError};

struct Stored {
    etag: String,
    body: Vec<u8>,
    last_modified: DateTime<Utc>,
}

/// The bucket: shared by every handle.
struct Bucket {
    objects: Mutex<BTreeMap<String, Stored>>,
    /// S3's clock: this wall time at `started`, then tokio's monotonic time.
    epoch: DateTime<Utc>,
    started: Instant,
}

/// One member's connection to the shared in-memory bucket.
#[derive(Clone)]
pub struct MemoryStore {
    bucket: Arc<Bucket>,
    cut_off: Arc<AtomicBool>,
    requests: Arc<AtomicU64>,
}

impl MemoryStore {
    /// An empty bucket whose clock starts at `epoch` now.
    pub fn new(epoch: DateTime<Utc>) -> MemoryStore {
        let bucket = Bucket { objects: Mutex::new(BTreeMap::new()), epoch, started: Instant::now() };
        MemoryStore { bucket: Arc::new(bucket), cut_off: Arc::default(), requests: Arc::default() }
    }

    /// Another member's handle on the same bucket (its own cut-off switch and request count).
    pub fn handle(&self) -> MemoryStore {
        MemoryStore { bucket: self.bucket.clone(), cut_off: Arc::default(), requests: Arc::default() }
    }

    /// S3's clock now.
    pub fn now(&self) -> DateTime<Utc> {
        self.bucket.epoch + (Instant::now() - self.bucket.started)
    }

    /// While true, every request of this handle fails as if S3 were unreachable.
    pub fn cut_off(&self, cut: bool) {
        self.cut_off.store(cut, Ordering::Release);
    }

    /// Requests this handle made (failed ones included).
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Acquire)
    }

    /// The current body of `key`, for assertions.
    pub fn body(&self, key: &str) -> Option<Vec<u8>> {
        self.bucket.objects.lock().expect("bucket lock").get(key).map(|stored| stored.body.clone())
    }

    fn enter(&self) -> Result<(), StoreError> {
        self.requests.fetch_add(1, Ordering::AcqRel);
        if self.cut_off.load(Ordering::Acquire) { Err(StoreError("connection refused (cut off)".to_string())) } else { Ok(()) }
    }
}

/// A content hash standing in for S3's MD5 ETag: the same body, the same tag.
fn etag_of(body: &[u8]) -> String {
    format!("\"{:016x}\"", super::records::fnv1a(body))
}

impl Store for MemoryStore {
    async fn put(&self, key: &str, body: Vec<u8>, condition: Condition) -> Result<Put, StoreError> {
        self.enter()?;
        let mut objects = self.bucket.objects.lock().expect("bucket lock");
        let current = objects.get(key).map(|stored| stored.etag.clone());
        let holds = match (&condition, &current) {
            (Condition::None, _) => true,
            (Condition::Absent, current) => current.is_none(),
            (Condition::Matches(etag), Some(current)) => etag == current,
            (Condition::Matches(_), None) => false,
        };
        if !holds {
            return Ok(Put::Lost);
        }
        let etag = etag_of(&body);
        let last_modified = self.now().trunc_subsecs(0);
        objects.insert(key.to_string(), Stored { etag: etag.clone(), body, last_modified });
        Ok(Put::Written(etag))
    }

    async fn get(&self, key: &str) -> Result<Option<Object>, StoreError> {
        self.enter()?;
        let objects = self.bucket.objects.lock().expect("bucket lock");
        Ok(objects.get(key).map(|stored| Object { etag: stored.etag.clone(), body: stored.body.clone() }))
    }

    async fn list(&self, prefix: &str) -> Result<Vec<Listed>, StoreError> {
        self.enter()?;
        let objects = self.bucket.objects.lock().expect("bucket lock");
        Ok(objects
            .range(prefix.to_string()..)
            .take_while(|(key, _)| key.starts_with(prefix))
            .map(|(key, stored)| Listed { key: key.clone(), etag: stored.etag.clone(), last_modified: stored.last_modified })
            .collect())
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.enter()?;
        self.bucket.objects.lock().expect("bucket lock").remove(key);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn conditional_puts_behave_as_s3s() {
        let store = MemoryStore::new(Utc::now());
        let Put::Written(first) = store.put("c/x", b"a".to_vec(), Condition::Absent).await.unwrap() else { panic!("created") };
        assert_eq!(store.put("c/x", b"b".to_vec(), Condition::Absent).await.unwrap(), Put::Lost);
        let Put::Written(second) = store.put("c/x", b"b".to_vec(), Condition::Matches(first.clone())).await.unwrap() else {
            panic!("replaced")
        };
        assert_eq!(store.put("c/x", b"c".to_vec(), Condition::Matches(first)).await.unwrap(), Put::Lost);
        assert_eq!(store.get("c/x").await.unwrap().unwrap(), Object { etag: second, body: b"b".to_vec() });
        let other = store.handle();
        other.cut_off(true);
        assert!(other.list("c/").await.is_err());
        assert_eq!(store.list("c/").await.unwrap().len(), 1);
    }
}
