//! What lives in the cluster's S3 prefix: where it is (`s3://BUCKET/PREFIX`), the member leases
//! (`members/<id>`), the claims (`claims/<flake>`), the ownership records of cluster flakes'
//! alarms (`owned/<flake>`), their JSON bodies, and a flake's version.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::flake::Flake;

/// Member leases live below this (relative to the cluster's prefix).
pub const MEMBERS: &str = "members/";
/// Claims live below this.
pub const CLAIMS: &str = "claims/";
/// Ownership records of cluster flakes' alarms live below this.
pub const OWNED: &str = "owned/";

/// `--cluster s3://BUCKET/PREFIX`, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub bucket: String,
    /// Empty, or ends with `/`.
    pub prefix: String,
}

impl std::fmt::Display for Location {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "s3://{}/{}", self.bucket, self.prefix)
    }
}

/// Parses `--cluster`: `s3://BUCKET` or `s3://BUCKET/PREFIX`.
pub fn parse_location(text: &str) -> Result<Location, String> {
    let Some(rest) = text.strip_prefix("s3://") else {
        return Err(format!("{text:?} is not an S3 location; write s3://BUCKET/PREFIX"));
    };
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    let valid_bucket = (3..=63).contains(&bucket.len())
        && bucket.bytes().all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'-' || byte == b'.');
    if !valid_bucket {
        return Err(format!("{bucket:?} is not a bucket name (3-63 lowercase letters, digits, '-' and '.'): write s3://BUCKET/PREFIX"));
    }
    let prefix = prefix.trim_matches('/');
    let prefix = if prefix.is_empty() { String::new() } else { format!("{prefix}/") };
    Ok(Location { bucket: bucket.to_string(), prefix })
}

/// Checks a `--cluster-member` name (placeholders already expanded): it becomes part of keys.
pub fn check_member_name(name: &str) -> Result<(), String> {
    let valid = !name.is_empty()
        && name.len() <= 100
        && name.bytes().all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.'));
    if valid { Ok(()) } else { Err(format!("--cluster-member {name:?}: use 1-100 letters, digits, '-', '_' or '.'")) }
}

/// A member's lease, `members/<id>`: rewritten every cycle, its `Last-Modified` is the member's
/// heartbeat by S3's clock. The body says what the member holds and which flakes (at which
/// versions) it has; it only changes when those do, so its ETag tells others when to read it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberRecord {
    /// `--cluster-member`.
    pub member: String,
    /// The member's cluster flakes: name -> version.
    pub flakes: BTreeMap<String, String>,
    /// The flakes it holds claims on (a hint for others; the claim objects decide).
    pub claims: BTreeSet<String>,
    /// Why its list of flakes may be incomplete (its flakes directory is missing or empty, or a
    /// file does not validate): while any live member says so, no cluster alarm is deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incomplete: Option<String>,
}

/// A claim, `claims/<flake>`: created with `If-None-Match: *`, replaced with `If-Match`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimRecord {
    pub flake: String,
    /// The member id holding it; `None`: released, free for any member to take.
    pub holder: Option<String>,
    /// The version of the flake it was claimed for; only members holding it run the flake.
    pub version: String,
    /// Unique per write, so every write changes the ETag and a stale `If-Match` always loses.
    pub write: String,
}

/// The ownership record of one cluster flake's alarms, `owned/<flake>` (SPEC 15): the alarms the
/// cluster created or adopted for it, so that any member can delete them once the flake is gone
/// everywhere. Written only when it changes, always conditionally (`If-None-Match: *` to create,
/// `If-Match` to replace), by the flake's holder or by the one member deleting its alarms.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnedAlarms {
    pub flake: String,
    /// region -> alarm name -> the tags last applied.
    pub alarms: BTreeMap<String, BTreeMap<String, BTreeMap<String, String>>>,
    /// The member id that won the right to delete these alarms (the flake is gone); `None`
    /// while the flake is alive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleting: Option<String>,
    /// Unique per write, so every write changes the ETag and a stale `If-Match` always loses.
    pub write: String,
}

impl OwnedAlarms {
    /// How many alarms it lists.
    pub fn len(&self) -> usize {
        self.alarms.values().map(BTreeMap::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A flake's version: a hash of everything that decides how it runs (not where its file is).
/// Members whose versions differ hold different flake files for it.
pub fn flake_version(flake: &Flake) -> String {
    let mut normalized = flake.clone();
    normalized.source = Default::default();
    format!("{:016x}", fnv1a(format!("{normalized:?}").as_bytes()))
}

/// 64-bit FNV-1a: stable across builds and hosts (std's hasher is not promised to be).
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3))
}

/// Rendezvous score: members prefer the flakes that score highest for them, so two members
/// rarely reach for the same free claim and a flake tends to return to the same member.
pub fn affinity(member: &str, flake: &str) -> u64 {
    fnv1a(format!("{member}\u{0}{flake}").as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_parse() {
        assert_eq!(
            parse_location("s3://my-bucket/snow/flakes/").unwrap(),
            Location { bucket: "my-bucket".into(), prefix: "snow/flakes/".into() }
        );
        assert_eq!(parse_location("s3://my-bucket").unwrap().prefix, "");
        assert!(parse_location("my-bucket/x").unwrap_err().contains("s3://BUCKET/PREFIX"));
        assert!(parse_location("s3://My_Bucket/x").unwrap_err().contains("bucket name"));
    }

    #[test]
    fn member_names_are_checked() {
        assert!(check_member_name("ip-10-0-0-1.ec2.internal").is_ok());
        assert!(check_member_name("a/b").is_err());
        assert!(check_member_name("").is_err());
    }
}
