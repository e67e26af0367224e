//! Durations as operators write them: `10s`, `1m30s`, `2h`, `500ms`, or a bare number of seconds.
//!
//! Used by `@every` (seconds, minutes, hours only) and by the command line's interval flags.

use std::time::Duration;

/// Parses `1h30m`, `90s`, `500ms`; units may combine but each unit is a whole number.
pub fn parse_duration(text: &str, allow_millis: bool) -> Result<Duration, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("is empty; write a duration such as 10s, 5m or 1m30s".to_string());
    }
    if let Ok(seconds) = text.parse::<f64>()
        && seconds.is_finite()
        && seconds >= 0.0
        && allow_millis
    {
        // `from_secs_f64` panics past u64::MAX seconds; `1e30` is a number, not a crash.
        return Duration::try_from_secs_f64(seconds).map_err(|_| format!("\"{text}\": number too large"));
    }
    let units = if allow_millis { "ms, s, m, h" } else { "s, m, h" };
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        if digits == 0 {
            return Err(format!("\"{text}\" is not a duration; write whole numbers with units {units}, such as 10s or 1m30s"));
        }
        let amount: u64 = rest[..digits].parse().map_err(|_| format!("\"{text}\": number too large"))?;
        rest = &rest[digits..];
        let unit_len = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_alphabetic()).len();
        let (unit, after) = rest.split_at(unit_len);
        let step = match unit {
            "h" => Duration::from_secs(amount.saturating_mul(3600)),
            "m" => Duration::from_secs(amount.saturating_mul(60)),
            "s" => Duration::from_secs(amount),
            "ms" if allow_millis => Duration::from_millis(amount),
            "" => return Err(format!("\"{text}\": {amount} has no unit; use one of {units}")),
            other => return Err(format!("\"{text}\": unknown unit \"{other}\"; use one of {units}")),
        };
        total = total.saturating_add(step);
        rest = after;
    }
    Ok(total)
}

/// A command-line flag value: the same grammar, milliseconds allowed.
pub fn parse_flag_duration(text: &str) -> Result<Duration, String> {
    parse_duration(text, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn combinations() {
        assert_eq!(parse_duration("10s", false), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("1m30s", false), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1h30m", false), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("2h", false), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_flag_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_flag_duration("1.5"), Ok(Duration::from_millis(1500)));
    }

    #[test]
    fn rejects_with_a_reason() {
        assert!(parse_duration("10", false).unwrap_err().contains("no unit"));
        assert!(parse_duration("10ms", false).unwrap_err().contains("unknown unit \"ms\""));
        assert!(parse_duration("1.5m", false).is_err());
        assert!(parse_duration("", false).unwrap_err().contains("empty"));
        assert!(parse_duration("m5", false).is_err());
        assert!(parse_flag_duration("1e30").unwrap_err().contains("too large"));
    }
}
