//! What validating a flake file needs from outside the file: the default time zone and the host's
//! facts for placeholders. Its own module so that `validate` (the flake) and `alarm` (its alarms)
//! both depend on it without depending on each other.

use chrono_tz::Tz;

use super::problem::Problems;
use crate::placeholders::{Facts, expand_judged};

/// What validation needs from outside the file.
pub struct Context<'a> {
    /// Zone of schedules without a `CRON_TZ=` prefix (`--timezone`).
    pub default_zone: Tz,
    pub facts: &'a dyn Facts,
}

impl Context<'_> {
    /// `template` with its placeholders replaced, or why not. A placeholder this host cannot
    /// resolve while judging for wherever the file will run is a warning at `path` naming it and
    /// the reason, and the value holds a stand-in (SPEC 18).
    pub fn expand(&self, template: &str, path: &str, problems: &mut Problems) -> Result<String, String> {
        let expanded = expand_judged(template, self.facts)?;
        for reason in expanded.unresolved {
            problems.warning(path, format!("{reason}; this host cannot resolve it, so it is checked with a stand-in value (check --resolve judges as the daemon here would)"));
        }
        Ok(expanded.value)
    }
}
