//! `snowflake next "<schedule>"`: the next fire times of a schedule, to check one before using it.

use std::process::ExitCode;

use chrono::{DateTime, SecondsFormat, Utc};

use super::{GlobalOptions, note, print_line};
use crate::schedule::Schedule;

pub fn parse_instant(text: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(text)
        .map(|instant| instant.with_timezone(&Utc))
        .map_err(|error| format!("{error}; write an RFC 3339 time such as 2026-01-01T00:00:00Z"))
}

pub fn run(text: &str, count: usize, after: Option<DateTime<Utc>>, options: &GlobalOptions) -> ExitCode {
    let schedule = match Schedule::parse(text, options.timezone) {
        Ok(schedule) => schedule,
        Err(reason) => {
            note(format_args!("error: {reason}"));
            return ExitCode::FAILURE;
        }
    };
    if schedule.is_reboot() {
        note(format_args!("@reboot fires once, when the daemon starts or first loads the flake; it has no fire times to list"));
        return ExitCode::SUCCESS;
    }
    let mut cursor = after.unwrap_or_else(Utc::now);
    for _ in 0..count {
        match schedule.next_after(cursor) {
            Some(next) => {
                print_line(next.to_rfc3339_opts(SecondsFormat::Secs, true));
                cursor = next;
            }
            None => {
                note(format_args!("error: \"{text}\" never fires again after {}", cursor.to_rfc3339_opts(SecondsFormat::Secs, true)));
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}
