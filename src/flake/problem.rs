//! What is wrong with a flake file: a field path and a message that says what to do.
//!
//! Every validation step appends to one list instead of returning early, so an operator sees all
//! problems of a file in one `snowflake check` run.

use std::fmt;

/// How bad a finding is: errors make the file invalid, warnings do not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

/// One finding about one field of one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub severity: Severity,
    /// Path of the field inside the file, e.g. `flakeAlarms[0].alarmPeriodLength`, or `file`
    /// for problems with the file as a whole (unreadable, not JSON, duplicate name).
    pub field: String,
    pub message: String,
}

impl Problem {
    pub fn error(field: impl Into<String>, message: impl Into<String>) -> Self {
        Problem { severity: Severity::Error, field: field.into(), message: message.into() }
    }

    pub fn warning(field: impl Into<String>, message: impl Into<String>) -> Self {
        Problem { severity: Severity::Warning, field: field.into(), message: message.into() }
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Problem {
    /// `field: message`, or `field: warning: message`; callers put the file path in front.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.severity {
            Severity::Error => write!(f, "{}: {}", self.field, self.message),
            Severity::Warning => write!(f, "{}: warning: {}", self.field, self.message),
        }
    }
}

/// Collects findings for one file while validation walks its fields.
#[derive(Debug, Default)]
pub struct Problems {
    list: Vec<Problem>,
}

impl Problems {
    pub fn error(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.list.push(Problem::error(field, message));
    }

    pub fn warning(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.list.push(Problem::warning(field, message));
    }

    /// Errors other than in one entry of `flakeAlarms`: a bad alarm is left out and reported,
    /// while the flake and its other alarms go on.
    pub fn has_flake_errors(&self) -> bool {
        self.list.iter().any(|problem| problem.is_error() && !problem.field.starts_with("flakeAlarms["))
    }

    pub fn into_vec(self) -> Vec<Problem> {
        self.list
    }
}
