//! `snowflake dashboard`: the dashboard body the daemon keeps, printed as JSON for use elsewhere
//! (a CloudFormation `AWS::CloudWatch::Dashboard`, Terraform's `aws_cloudwatch_dashboard`).

use std::process::ExitCode;
use std::sync::Arc;

use super::setup;
use super::{GlobalOptions, note, print_line};
use crate::alarms::{ReconcileConfig, desired_alarms};
use crate::catalog::Catalog;
use crate::dashboard::{Account, DashboardReconciler, body, dashboard_input, host_label};

pub async fn run(options: &GlobalOptions) -> ExitCode {
    let mut catalog = Catalog::new(options.flakes.clone(), setup::loader(options));
    let changes = catalog.rescan(false).await;
    for report in &changes.broken {
        for problem in &report.problems {
            note(format_args!("{}: {problem}", report.path.display()));
        }
    }
    let backend = setup::backend(options).await;
    let default_region = backend.default_region();
    let flakes = catalog.flakes();
    let (desired, _) = desired_alarms(&flakes, default_region.as_deref());
    let input = dashboard_input(&flakes, &desired, &host_label(), default_region.as_deref());
    // One try, no retries: printing must not wait half a minute on missing credentials.
    let config = ReconcileConfig { attempts: 1, ..ReconcileConfig::default() };
    let reconciler = DashboardReconciler::new(Arc::new(backend), &options.state_dir, None, config);
    let account = match (input.alarms.is_empty(), reconciler.account(&desired).await) {
        (true, _) => None,
        (false, Some(account)) => Some(account),
        (false, None) => {
            note(
                "note: no alarm could be read for its ARN, so alarm ARNs hold ${AWS::Partition} and ${AWS::AccountId} (fill them in with Fn::Sub)",
            );
            Some(Account::placeholder())
        }
    };
    let body = body(&input, account.as_ref());
    if body.left_out > 0 {
        note(format_args!("note: {} graphs do not fit in CloudWatch's 500 widgets; a text widget names them", body.left_out));
    }
    print_line(serde_json::to_string_pretty(&body.json).expect("a body serializes"));
    ExitCode::SUCCESS
}
