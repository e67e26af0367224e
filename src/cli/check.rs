//! `snowflake check [PATH...]`: validate flake files the way `nginx -t` validates a config.

use std::path::PathBuf;
use std::process::ExitCode;

use super::GlobalOptions;
use crate::catalog::{Loader, discover, reject_duplicate_names};
use crate::placeholders::HostFacts;

pub async fn run(paths: &[PathBuf], options: &GlobalOptions) -> ExitCode {
    let paths = if paths.is_empty() { vec![options.flakes.clone()] } else { paths.to_vec() };
    let files = match discover(&paths) {
        Ok(files) => files,
        Err(reason) => {
            eprintln!("error: {reason}");
            return ExitCode::FAILURE;
        }
    };
    if files.is_empty() {
        let shown: Vec<String> = paths.iter().map(|path| path.display().to_string()).collect();
        eprintln!("error: no flake files (*.json) found in {}", shown.join(", "));
        return ExitCode::FAILURE;
    }

    let mut loader = Loader::new(options.timezone, HostFacts::local());
    let mut reports = loader.load(&files).await;
    reject_duplicate_names(&mut reports, |_, _| false);

    let (mut invalid, mut warnings) = (0, 0);
    for report in &reports {
        let path = report.path.display();
        for problem in &report.problems {
            println!("{path}: {problem}");
            if !problem.is_error() {
                warnings += 1;
            }
        }
        match &report.flake {
            Some(flake) => println!("{path}: ok ({})", flake.name),
            None => invalid += 1,
        }
    }
    eprintln!("{} file(s) checked: {} valid, {invalid} invalid, {warnings} warning(s)", reports.len(), reports.len() - invalid);
    if invalid == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}
