//! What validating a flake file needs from outside the file: the default time zone and the host's
//! facts for placeholders. Its own module so that `validate` (the flake) and `alarm` (its alarms)
//! both depend on it without depending on each other.

use chrono_tz::Tz;

use crate::placeholders::Facts;

/// What validation needs from outside the file.
pub struct Context<'a> {
    /// Zone of schedules without a `CRON_TZ=` prefix (`--timezone`).
    pub default_zone: Tz,
    pub facts: &'a dyn Facts,
}
