//! A small read-only picture of the cluster as this member last listed it: its members and, per
//! cluster flake, who holds it and which versions the members have (more than one: a rollout in
//! progress). For the status page and `snowflake status`; published on a `watch` channel.

use std::collections::BTreeMap;

use serde::Serialize;

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ClusterView {
    /// `s3://BUCKET/PREFIX`.
    pub location: String,
    /// This member's id (`--cluster-member` and a per-start suffix).
    pub member: String,
    /// S3's time at the last listing (RFC 3339); `None` before the first.
    pub listed_at: Option<String>,
    pub members: Vec<MemberView>,
    pub flakes: Vec<FlakeView>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct MemberView {
    pub id: String,
    /// `--cluster-member`, when its lease was read.
    pub name: String,
    /// False: its lease expired; its claims are free to take.
    pub live: bool,
    pub lease_age_seconds: i64,
    pub claims: usize,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct FlakeView {
    pub name: String,
    /// The live member that says it holds the claim.
    pub holder: Option<String>,
    /// Version -> the live members that have it.
    pub versions: BTreeMap<String, Vec<String>>,
}

impl FlakeView {
    /// Members hold different versions of this flake (a rollout in progress).
    pub fn disagreement(&self) -> bool {
        self.versions.len() > 1
    }
}
