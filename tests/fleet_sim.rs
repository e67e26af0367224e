//! The fleet simulation (examples/fleet_sim) on a small fleet, so it keeps working: the real
//! reconcile and publish code under account-wide quotas loses nothing, converges, settles after
//! a fleet-wide restart, and checks drift at the rate the cadence promises.

// The example's report printing uses parts of these that this test does not.
#[allow(dead_code)]
#[path = "../examples/fleet_sim/account.rs"]
mod account;
#[allow(dead_code)]
#[path = "../examples/fleet_sim/engine.rs"]
mod engine;

use std::time::Duration;

use account::Api;
use engine::{Params, simulate};

#[test]
fn a_small_fleet_converges_loses_nothing_and_spreads_its_drift_checks() {
    let scratch = tempfile::tempdir().unwrap();
    let params = Params {
        hosts: 40,
        flakes_per_host: 5,
        alarms_per_host: 4,
        duration: Duration::from_secs(4 * 3600),
        restart_at: Duration::from_secs(3 * 3600),
        reconcile_interval: Duration::from_secs(20 * 60),
        seed: 7,
    };
    let report = simulate(params, scratch.path());

    assert!(report.produced > 40 * 5 * 200, "{} datapoints produced", report.produced);
    assert_eq!(report.lost(), 0, "produced {} delivered {}", report.produced, report.delivered);
    // 160 alarms at 3 PutMetricAlarm a second: a minute or so, never hours.
    let converged = report.converged_after.expect("every alarm was created");
    assert!(converged < Duration::from_secs(15 * 60), "converged after {converged:?}");
    assert!(report.settled_after_restart.is_some(), "every host finished its start-up reconcile after the restart");
    let tally = |api: Api| report.tallies.iter().find(|(each, _)| *each == api).map(|(_, tally)| tally.clone()).unwrap();
    // Steady state: one DescribeAlarms per host per interval (4 alarms fit one call).
    let (from, to) = report.steady;
    let (describe_mean, _) = tally(Api::DescribeAlarms).rate(from, to);
    let expected = 40.0 / (20.0 * 60.0);
    assert!((describe_mean - expected).abs() < expected * 0.5, "DescribeAlarms {describe_mean:.4}/s, expected about {expected:.4}/s");
    assert_eq!(tally(Api::PutMetricAlarm).accepted(), 160, "each alarm written once, none rewritten in steady state");
    assert_eq!(tally(Api::DeleteAlarms).accepted(), 0);
}
