//! The fleet simulation of SPEC 12: N hosts, each running SpecialSnowflake's real reconcile and
//! publish code, against one in-memory CloudWatch account that throttles beyond the account-wide
//! quotas (PutMetricData 500/s, DescribeAlarms 9/s, PutMetricAlarm and DeleteAlarms 3/s), on a
//! simulated clock (tokio's paused time), so a simulated day of 10,000 hosts takes minutes.
//!
//! ```text
//! cargo run --release --example fleet_sim -- [--hosts 100,1000,10000] [--hours 24] [--restart-at-hours 20]
//!     [--flakes 50] [--alarms 4] [--interval 1h]
//! ```
//!
//! It prints Markdown tables (docs/fleet.md holds the latest), one section per fleet size.

mod account;
mod engine;

use std::time::Duration;

use engine::{Params, Report, simulate};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |flag: &str| args.iter().position(|arg| arg == flag).and_then(|at| args.get(at + 1)).cloned();
    let number = |flag: &str, default: f64| value(flag).map_or(default, |text| text.parse().unwrap_or_else(|_| usage(flag)));
    let fleets: Vec<usize> = value("--hosts")
        .unwrap_or_else(|| "100,1000,10000".to_string())
        .split(',')
        .map(|n| n.trim().parse().unwrap_or_else(|_| usage("--hosts")))
        .collect();
    let hours = number("--hours", 24.0);
    let restart_at = number("--restart-at-hours", hours * 5.0 / 6.0);
    let interval = value("--interval").map_or(Duration::from_secs(3600), |text| {
        specialsnowflake::schedule::parse_flag_duration(&text).unwrap_or_else(|_| usage("--interval"))
    });
    if restart_at >= hours {
        usage("--restart-at-hours (must be before the end)");
    }

    println!("Simulated {hours} h per fleet; every host restarts at hour {restart_at} (within one minute).");
    println!(
        "Each host: {} flakes on `* * * * *`, {} alarms, --reconcile-interval {interval:?}.\n",
        number("--flakes", 50.0),
        number("--alarms", 4.0)
    );
    for (index, hosts) in fleets.into_iter().enumerate() {
        let params = Params {
            hosts,
            flakes_per_host: number("--flakes", 50.0) as usize,
            alarms_per_host: number("--alarms", 4.0) as usize,
            duration: Duration::from_secs_f64(hours * 3600.0),
            restart_at: Duration::from_secs_f64(restart_at * 3600.0),
            reconcile_interval: interval,
            seed: 20261201 + index as u64,
        };
        let scratch = scratch_dir(hosts);
        let report = simulate(params, &scratch);
        let _ = std::fs::remove_dir_all(&scratch);
        print_report(&report);
    }
}

/// Per-host state directories: on tmpfs when there is one, as the reconciler syncs its state file.
fn scratch_dir(hosts: usize) -> std::path::PathBuf {
    let base = if std::path::Path::new("/dev/shm").is_dir() { std::path::PathBuf::from("/dev/shm") } else { std::env::temp_dir() };
    let dir = base.join(format!("snowflake-fleet-sim-{}-{hosts}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch directory");
    dir
}

fn print_report(report: &Report) {
    let params = &report.params;
    let minutes = |d: Duration| format!("{:.1} min", d.as_secs_f64() / 60.0);
    println!("### {} hosts ({} alarms in the account)\n", params.hosts, params.hosts * params.alarms_per_host);
    let (from, to) = report.steady;
    let steady = if from < to {
        format!("hours {:.1}-{:.1}", from as f64 / 3600.0, to as f64 / 3600.0)
    } else {
        "none (did not converge before the restart)".to_string()
    };
    println!(
        "| API | quota /s | steady mean /s | steady peak /s | mean /s over the run | peak /s over the run | accepted calls | throttled calls |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    let seconds = params.duration.as_secs() as usize;
    for (api, tally) in &report.tallies {
        let (steady_mean, steady_peak) = tally.rate(from, to);
        let (mean, peak) = tally.rate(0, seconds);
        println!(
            "| {} | {} | {steady_mean:.2} | {steady_peak} | {mean:.2} | {peak} | {} | {} |",
            api.name(),
            api.quota(),
            tally.accepted(),
            tally.throttled
        );
    }
    println!();
    println!("- steady state measured over {steady}");
    println!("- brand-new fleet converged (every alarm created) after {}", report.converged_after.map_or("never".to_string(), minutes));
    println!(
        "- after every host restarted within one minute, every start-up reconcile was done after {}",
        report.settled_after_restart.map_or("never".to_string(), minutes)
    );
    println!(
        "- datapoints: {} produced, {} delivered, {} lost; {} delivered more than a minute after their timestamp; latest {:.1} s",
        report.produced,
        report.delivered,
        report.lost(),
        report.later_than_a_minute,
        report.max_delay.as_secs_f64()
    );
    println!("- simulated in {:.1} s of real time\n", report.wall.as_secs_f64());
}

fn usage(flag: &str) -> ! {
    eprintln!("fleet_sim: bad value for {flag}");
    eprintln!("usage: fleet_sim [--hosts 100,1000,10000] [--hours 24] [--restart-at-hours 20] [--flakes 50] [--alarms 4] [--interval 1h]");
    std::process::exit(2);
}
