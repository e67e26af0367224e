//! What the live members of the cluster say about the cluster flakes, as this member last read
//! their leases: which versions of each flake exist and who has them, and whether the picture is
//! complete. Deciding about cluster flakes' alarms rests on it (SPEC 15): an alarm of a cluster
//! flake is deleted only when every live member agrees, and never while the picture is
//! incomplete.

use std::collections::{BTreeMap, BTreeSet};

/// Published by the member loop (on a `watch` channel) whenever it changes: never in steady state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agreement {
    /// This member's id.
    pub member: String,
    /// Live member ids, this one included.
    pub live: BTreeSet<String>,
    /// Flake -> version -> the live members whose flake files have it.
    pub flakes: BTreeMap<String, BTreeMap<String, BTreeSet<String>>>,
    /// The flakes this member holds claims on (so that a change of claims is a change here).
    pub held: BTreeSet<String>,
    /// Why the picture may be incomplete (not listed yet, a lease that could not be read, a member
    /// whose flake files are incomplete); `None`: every live member's lease was read.
    pub unsure: Option<String>,
}

impl Default for Agreement {
    fn default() -> Self {
        Agreement {
            member: String::new(),
            live: BTreeSet::new(),
            flakes: BTreeMap::new(),
            held: BTreeSet::new(),
            unsure: Some("the members have not been listed yet".to_string()),
        }
    }
}

impl Agreement {
    /// Why `flake`'s alarms may not be deleted now although its holder at `version` no longer
    /// declares them: `None` when every live member has exactly this version of the flake.
    pub fn blocks_removal(&self, flake: &str, version: &str) -> Option<String> {
        if let Some(unsure) = &self.unsure {
            return Some(format!("members may disagree: {unsure}"));
        }
        let Some(versions) = self.flakes.get(flake) else {
            return Some("no live member's lease names the flake yet".to_string());
        };
        let others: Vec<String> = versions
            .iter()
            .filter(|(other, _)| *other != version)
            .flat_map(|(other, members)| members.iter().map(move |member| format!("{member} has version {other}")))
            .collect();
        let holding: usize = versions.values().map(BTreeSet::len).sum();
        let without = self.live.len().saturating_sub(holding);
        if others.is_empty() && without == 0 {
            return None;
        }
        let mut why = others;
        if without > 0 {
            why.push(format!("{without} live member(s) do not have it"));
        }
        Some(format!("members disagree about the flake ({}); kept until they agree", why.join(", ")))
    }

    /// Why `flake` cannot be judged gone now: `None` when no live member has it and every live
    /// member's lease was read; otherwise who still has it, or why the picture is incomplete.
    pub fn keeps(&self, flake: &str) -> Option<String> {
        if let Some(unsure) = &self.unsure {
            return Some(format!("members may disagree: {unsure}"));
        }
        let holders: Vec<&String> = self.flakes.get(flake).into_iter().flat_map(|versions| versions.values().flatten()).collect();
        if holders.is_empty() {
            None
        } else {
            Some(format!("live members still have the flake: {}", holders.iter().map(|id| id.as_str()).collect::<Vec<_>>().join(", ")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agreement(entries: &[(&str, &str, &str)], live: &[&str]) -> Agreement {
        let mut flakes: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
        for (flake, version, member) in entries {
            flakes.entry(flake.to_string()).or_default().entry(version.to_string()).or_default().insert(member.to_string());
        }
        let live = live.iter().map(|id| id.to_string()).collect();
        Agreement { member: "a".into(), live, flakes, held: BTreeSet::new(), unsure: None }
    }

    #[test]
    fn removal_needs_every_live_member_at_the_same_version() {
        let same = agreement(&[("x", "v1", "a"), ("x", "v1", "b")], &["a", "b"]);
        assert_eq!(same.blocks_removal("x", "v1"), None);
        assert!(same.blocks_removal("new", "v1").is_some(), "a flake no lease names yet");
        let rollout = agreement(&[("x", "v1", "a"), ("x", "v2", "b")], &["a", "b"]);
        assert!(rollout.blocks_removal("x", "v1").unwrap().contains("b has version v2"));
        let dropped = agreement(&[("x", "v1", "a")], &["a", "b"]);
        assert!(dropped.blocks_removal("x", "v1").unwrap().contains("1 live member(s) do not have it"));
        let unsure = Agreement { unsure: Some("b's lease could not be read".into()), ..same };
        assert!(unsure.blocks_removal("x", "v1").unwrap().contains("could not be read"));
    }

    #[test]
    fn a_flake_is_gone_only_when_no_live_member_has_it_and_all_were_read() {
        let one_left = agreement(&[("x", "v1", "b")], &["a", "b"]);
        assert!(one_left.keeps("x").unwrap().contains('b'));
        assert_eq!(one_left.keeps("y"), None);
        let unsure = Agreement { unsure: Some("c's lease could not be read".into()), ..one_left };
        assert!(unsure.keeps("y").is_some());
        assert!(Agreement::default().keeps("y").is_some(), "before the first listing nothing is gone");
    }
}
