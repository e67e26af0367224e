//! Time zones: IANA names for `CRON_TZ=` and `--timezone`, and the host's own zone.

use chrono_tz::Tz;

/// An IANA zone name, `UTC`, or `local` for the host's zone.
pub fn parse_zone(name: &str) -> Result<Tz, String> {
    let name = name.trim();
    if name.eq_ignore_ascii_case("local") {
        return Ok(host_zone());
    }
    name.parse::<Tz>()
        .map_err(|_| format!("\"{name}\" is not a time zone; use an IANA name such as UTC, Europe/Berlin or America/New_York"))
}

/// The host's zone: `TZ` if it names one, else the system setting, else UTC (as in the image).
pub fn host_zone() -> Tz {
    let from_env = std::env::var("TZ").ok().and_then(|value| {
        let value = value.trim_start_matches(':');
        // TZ may be a path into the zoneinfo tree; the zone name is what follows `zoneinfo/`.
        let name = value.rsplit_once("zoneinfo/").map_or(value, |(_, name)| name);
        name.parse::<Tz>().ok()
    });
    from_env.or_else(|| iana_time_zone::get_timezone().ok().and_then(|name| name.parse::<Tz>().ok())).unwrap_or(Tz::UTC)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(parse_zone("Europe/Berlin"), Ok(Tz::Europe__Berlin));
        assert_eq!(parse_zone("UTC"), Ok(Tz::UTC));
        assert!(parse_zone("Mars/Olympus").unwrap_err().contains("IANA"));
    }
}
