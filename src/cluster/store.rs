//! What the cluster asks of S3, as one small trait: conditional puts, gets, one listing, deletes.
//!
//! [`super::s3::S3Store`] is the real thing (the only user of `aws-sdk-s3`);
//! [`super::memory::MemoryStore`] is an in-memory stand-in with a controllable clock and fault
//! injection, for fast tests and the simulation.

use std::future::Future;

use chrono::{DateTime, Utc};

/// When a put may happen: the whole of S3's part in an exclusive claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// Always (a member's own lease, which no other member writes).
    None,
    /// Only if no object has the key (`If-None-Match: *`): creating a claim.
    Absent,
    /// Only if the object is still the version read (`If-Match: <etag>`): replacing a claim.
    Matches(String),
}

/// A put's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Put {
    /// Written; the new object's ETag.
    Written(String),
    /// The condition did not hold: another member wrote first (HTTP 412 or 409).
    Lost,
}

/// One object of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// The key below the listed prefix.
    pub key: String,
    pub etag: String,
    /// Stamped by S3's clock (whole seconds on the wire).
    pub last_modified: DateTime<Utc>,
}

/// An object read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object {
    pub etag: String,
    pub body: Vec<u8>,
}

/// Why a request failed (not a lost condition: that is [`Put::Lost`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreError(pub String);

impl std::fmt::Display for StoreError {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(&self.0)
    }
}

/// The kinds of request, one word each for `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RequestKind {
    Put,
    Get,
    List,
    Delete,
}

impl RequestKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RequestKind::Put => "put",
            RequestKind::Get => "get",
            RequestKind::List => "list",
            RequestKind::Delete => "delete",
        }
    }
}

/// The objects below one prefix of one bucket; keys here are relative to that prefix.
pub trait Store: Send + Sync + 'static {
    fn put(&self, key: &str, body: Vec<u8>, condition: Condition) -> impl Future<Output = Result<Put, StoreError>> + Send;
    /// `None`: no such object.
    fn get(&self, key: &str) -> impl Future<Output = Result<Option<Object>, StoreError>> + Send;
    /// Every object whose key starts with `prefix` (all pages).
    fn list(&self, prefix: &str) -> impl Future<Output = Result<Vec<Listed>, StoreError>> + Send;
    fn delete(&self, key: &str) -> impl Future<Output = Result<(), StoreError>> + Send;
}
