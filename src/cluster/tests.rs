//! The cluster's guarantees on the in-memory store, in paused time (see [`super::simulation`]).

use std::time::Duration;

use super::Timings;
use super::simulation::{EVERY, Simulation};

const MINUTE: Duration = Duration::from_secs(60);

/// Runs until every flake runs somewhere again, at scheduled times after now; the seconds that
/// took (at most `limit`).
async fn seconds_until_all_run(sim: &mut Simulation, limit: u64) -> Option<u64> {
    let since = sim.now();
    for elapsed in 1..=limit {
        sim.run_for(Duration::from_secs(1)).await;
        let recent = (sim.now() - chrono::TimeDelta::seconds(EVERY)).max(since + chrono::TimeDelta::milliseconds(1));
        if sim.flakes().keys().all(|flake| sim.last_run.get(flake).is_some_and(|last| *last >= recent)) {
            return Some(elapsed);
        }
    }
    None
}

fn busiest(sim: &Simulation, names: &[&str]) -> usize {
    names.iter().map(|name| sim.held(name)).max().unwrap_or(0)
}

#[tokio::test(start_paused = true)]
async fn three_members_spread_thirty_flakes_and_never_run_one_twice() {
    let mut sim = Simulation::new(30, Timings::default());
    for name in ["a", "b", "c"] {
        sim.start(name);
    }
    sim.run_for(3 * MINUTE).await;
    let held: usize = ["a", "b", "c"].iter().map(|name| sim.held(name)).sum();
    assert_eq!(held, 30, "every flake is held once");
    assert!(busiest(&sim, &["a", "b", "c"]) <= 11, "ceil(30/3) + 1");
    assert!(seconds_until_all_run(&mut sim, 10).await.is_some());
    assert_eq!(sim.duplicates, 0);
}

#[tokio::test(start_paused = true)]
async fn a_killed_member_s_flakes_run_elsewhere_within_90_seconds() {
    let mut sim = Simulation::new(30, Timings::default());
    for name in ["a", "b", "c"] {
        sim.start(name);
    }
    sim.run_for(3 * MINUTE).await;
    assert!(sim.held("b") > 0);
    // At several phases of the victim's cycle (right after a renewal is the worst case).
    let mut victim = "b".to_string();
    for (round, offset) in [0, 7, 19, 29].into_iter().enumerate() {
        sim.run_for(Duration::from_secs(offset)).await;
        sim.kill(&victim);
        let taken_over = seconds_until_all_run(&mut sim, 90).await;
        assert!(taken_over.is_some(), "not taken over within 90 s (round {round})");
        victim = format!("n{round}");
        sim.start(&victim);
        sim.run_for(2 * MINUTE).await;
    }
    assert_eq!(sim.duplicates, 0);
}

#[tokio::test(start_paused = true)]
async fn a_member_cut_off_from_s3_stops_before_others_take_its_flakes() {
    let mut sim = Simulation::new(30, Timings::default());
    for name in ["a", "b", "c"] {
        sim.start(name);
    }
    sim.run_for(3 * MINUTE).await;
    for cut_for in [3, 20, 40, 50, 200] {
        sim.cut_off("b", true);
        sim.run_for(Duration::from_secs(cut_for)).await;
        sim.cut_off("b", false);
        sim.run_for(2 * MINUTE).await;
        assert_eq!(sim.duplicates, 0, "after a cut of {cut_for} s");
        assert!(seconds_until_all_run(&mut sim, 10).await.is_some(), "every flake runs again after a cut of {cut_for} s");
    }
    assert!(busiest(&sim, &["a", "b", "c"]) <= 11);
}

#[tokio::test(start_paused = true)]
async fn a_joining_member_takes_its_share_within_90_seconds() {
    let mut sim = Simulation::new(30, Timings::default());
    for name in ["a", "b", "c"] {
        sim.start(name);
    }
    sim.run_for(3 * MINUTE).await;
    sim.start("d");
    sim.run_for(Duration::from_secs(90)).await;
    assert!(sim.held("d") >= 30 / 4, "d holds {}, its share is 7 or 8", sim.held("d"));
    assert!(busiest(&sim, &["a", "b", "c", "d"]) <= 30_usize.div_ceil(4) + 1);
    sim.stop("a").await;
    assert!(seconds_until_all_run(&mut sim, 90).await.is_some(), "an orderly leave is taken over within a cycle or two");
    assert_eq!(sim.duplicates, 0);
}

#[tokio::test(start_paused = true)]
async fn steady_state_costs_at_most_four_requests_a_minute_per_member() {
    let mut sim = Simulation::new(300, Timings::default());
    for name in ["a", "b", "c"] {
        sim.start(name);
    }
    sim.run_for(3 * MINUTE).await;
    let before: Vec<u64> = ["a", "b", "c"].iter().map(|name| sim.requests(name)).collect();
    sim.run_for(10 * MINUTE).await;
    for (name, before) in ["a", "b", "c"].iter().zip(before) {
        let per_minute = (sim.requests(name) - before) as f64 / 10.0;
        assert!(per_minute <= 4.0, "{name}: {per_minute} requests a minute");
    }
}

#[tokio::test(start_paused = true)]
async fn during_a_rollout_the_holder_s_version_runs_and_nobody_fights() {
    let mut sim = Simulation::new(6, Timings::default());
    for name in ["a", "b"] {
        sim.start(name);
    }
    sim.run_for(2 * MINUTE).await;
    let mut changed = sim.flakes().clone();
    changed.insert("flake-0000".to_string(), "v2".to_string());
    sim.set_flakes("a", changed.clone());
    sim.run_for(2 * MINUTE).await;
    sim.set_flakes("b", changed);
    sim.run_for(2 * MINUTE).await;
    assert_eq!(sim.duplicates, 0);
    let held: usize = ["a", "b"].iter().map(|name| sim.held(name)).sum();
    assert_eq!(held, 6);
}

/// A rollout that removes flakes: members whose files lack a flake leave it to those that have
/// it, even above their share, and every flake keeps running with no duplicate.
#[tokio::test(start_paused = true)]
async fn flakes_that_only_some_members_have_still_run_while_files_differ() {
    let mut sim = Simulation::new(6, Timings::default());
    for name in ["a", "b", "c"] {
        sim.start(name);
    }
    sim.run_for(2 * MINUTE).await;
    // a's and b's new files have none of the flakes; c (not yet rolled out) has them all.
    sim.set_flakes("a", Default::default());
    sim.set_flakes("b", Default::default());
    sim.run_for(2 * MINUTE).await;
    assert_eq!(sim.held("c"), 6, "the only member with the flakes runs them all");
    assert!(seconds_until_all_run(&mut sim, 10).await.is_some(), "every flake runs");
    let requests = sim.requests("c");
    sim.run_for(2 * MINUTE).await;
    assert!(sim.requests("c") - requests <= 8, "steady again: no claim passed back and forth");
    assert_eq!(sim.duplicates, 0);
}

/// SPEC 15's numbers for docs/cluster.md: 10 members, 1,000 cluster flakes, one killed.
#[tokio::test(start_paused = true)]
async fn simulation_of_ten_members_and_a_thousand_flakes() {
    let mut sim = Simulation::new(1000, Timings::default());
    let names: Vec<String> = (0..10).map(|index| format!("m{index}")).collect();
    for name in &names {
        sim.start(name);
    }
    sim.run_for(3 * MINUTE).await;
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let spread = busiest(&sim, &refs);
    let before: Vec<u64> = refs.iter().map(|name| sim.requests(name)).collect();
    sim.run_for(10 * MINUTE).await;
    let steady: Vec<f64> = refs.iter().zip(&before).map(|(name, before)| (sim.requests(name) - before) as f64 / 10.0).collect();
    let max_per_minute = steady.iter().cloned().fold(0.0, f64::max);
    sim.kill("m3");
    let takeover = seconds_until_all_run(&mut sim, 120).await;
    sim.run_for(3 * MINUTE).await;
    let survivors: Vec<&str> = refs.iter().copied().filter(|name| *name != "m3").collect();
    let spread_after = busiest(&sim, &survivors);
    println!(
        "simulation: 10 members, 1000 cluster flakes @every {EVERY}s: busiest holds {spread} (ceil = 100), \
         steady S3 requests/min/member max {max_per_minute:.1}, takeover after kill -9 {takeover:?} s, \
         busiest of 9 after takeover {spread_after} (ceil = 112), duplicates {}",
        sim.duplicates
    );
    assert_eq!(sim.duplicates, 0);
    assert!(spread <= 101 && spread_after <= 113);
    assert!(max_per_minute <= 4.0);
    assert!(takeover.is_some_and(|seconds| seconds <= 90));
}

/// The duplicate count is not blind: a member that trusts its claims past their expiry (broken
/// timings) is caught running what another member took.
#[tokio::test(start_paused = true)]
async fn the_duplicate_count_catches_a_member_that_trusts_too_long() {
    let timings = Timings { trust: Duration::from_secs(300), ..Timings::default() };
    let mut sim = Simulation::new(30, timings);
    for name in ["a", "b", "c"] {
        sim.start(name);
    }
    sim.run_for(3 * MINUTE).await;
    sim.cut_off("b", true);
    sim.run_for(2 * MINUTE).await;
    assert!(sim.duplicates > 0);
}

/// What the member loop publishes for the cluster alarms' keeper: every live member's versions,
/// and "unsure" while a live member announces incomplete flake files (SPEC 15: no cluster alarm
/// is deleted then).
#[tokio::test(start_paused = true)]
async fn the_agreement_names_every_live_member_s_versions_and_an_incomplete_member_makes_it_unsure() {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use tokio::sync::watch;

    use super::memory::MemoryStore;
    use super::{Cluster, LocalFlakes, Location};
    use crate::metrics::Metrics;

    let bucket = MemoryStore::new(chrono::Utc::now());
    let location = Location { bucket: "agreement".to_string(), prefix: String::new() };
    let flakes = |version: &str| BTreeMap::from([("x".to_string(), version.to_string())]);
    let (_a_flakes, a_rx) = watch::channel(LocalFlakes::complete(flakes("v1")));
    let (b_flakes, b_rx) = watch::channel(LocalFlakes::complete(flakes("v2")));
    let a = Cluster::spawn(bucket.handle(), &location, "a".into(), Timings::default(), Arc::new(Metrics::new()), a_rx);
    let b = Cluster::spawn(bucket.handle(), &location, "b".into(), Timings::default(), Arc::new(Metrics::new()), b_rx);
    tokio::time::sleep(MINUTE).await;
    let agreement = a.agreement.borrow().clone();
    assert_eq!(agreement.live.len(), 2, "{agreement:?}");
    assert_eq!(agreement.unsure, None);
    assert_eq!(agreement.flakes["x"].len(), 2, "both versions, each with its member");
    assert!(agreement.blocks_removal("x", "v1").is_some(), "a rollout in progress");
    assert_eq!(agreement.keeps("gone"), None);

    b_flakes.send_replace(LocalFlakes { versions: flakes("v2"), incomplete: Some("1 flake file(s) do not validate".into()) });
    tokio::time::sleep(MINUTE).await;
    let agreement = a.agreement.borrow().clone();
    assert!(agreement.unsure.as_deref().is_some_and(|why| why.contains("do not validate")), "{agreement:?}");
    assert!(agreement.keeps("gone").is_some(), "nothing is gone while a member's files are incomplete");
    a.kill();
    b.kill();
}
