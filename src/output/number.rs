//! What a command printed, judged: exactly one decimal number within CloudWatch's range.
//!
//! The grammar is deliberately narrow: `3`, `-2.5`, `.5`, `1e3`, `+4`, `00012` are numbers;
//! `nan`, `inf`, `0x1A`, `1,000`, `1_000`, `1 2` and empty output are not. A number that looks
//! right but is not what the operator meant is worse than a clear rejection in the flake's log.

/// CloudWatch rejects values beyond ±2^360.
pub(crate) const LIMIT: f64 = 2.348_542_582_773_833_2e108;

/// Why output is not a metric value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected(pub String);

/// The value in `stdout`, or why there is none. `truncated` output is never a value.
pub fn parse_value(stdout: &[u8], truncated: bool) -> Result<f64, Rejected> {
    if truncated {
        return Err(Rejected("output is longer than 64 KiB, so it cannot be a single number".to_string()));
    }
    let Ok(text) = std::str::from_utf8(stdout) else {
        return Err(Rejected("output is not UTF-8 text".to_string()));
    };
    let text = text.trim_matches(|c: char| c.is_ascii_whitespace());
    if text.is_empty() {
        return Err(Rejected("printed nothing; a metric command must print one number".to_string()));
    }
    if !is_decimal(text) {
        let words = text.split_ascii_whitespace().count();
        let hint = if words > 1 { format!(" (it holds {words} words)") } else { String::new() };
        return Err(Rejected(format!("output is not a single decimal number{hint}")));
    }
    let value: f64 = text.parse().map_err(|_| Rejected("output is not a single decimal number".to_string()))?;
    if !value.is_finite() || value.abs() > LIMIT {
        return Err(Rejected("the number is outside CloudWatch's range of -2^360 to 2^360".to_string()));
    }
    Ok(value)
}

/// `[+-]? (digits [. digits?] | . digits) ([eE] [+-]? digits)?`
fn is_decimal(text: &str) -> bool {
    let bytes = text.as_bytes();
    let mut i = 0;
    if matches!(bytes.first(), Some(b'+' | b'-')) {
        i += 1;
    }
    let integer_digits = count_digits(&bytes[i..]);
    i += integer_digits;
    let mut fraction_digits = 0;
    if bytes.get(i) == Some(&b'.') {
        i += 1;
        fraction_digits = count_digits(&bytes[i..]);
        i += fraction_digits;
    }
    if integer_digits == 0 && fraction_digits == 0 {
        return false;
    }
    if matches!(bytes.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(bytes.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let exponent_digits = count_digits(&bytes[i..]);
        if exponent_digits == 0 {
            return false;
        }
        i += exponent_digits;
    }
    i == bytes.len()
}

fn count_digits(bytes: &[u8]) -> usize {
    bytes.iter().take_while(|b| b.is_ascii_digit()).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_forms() {
        for (text, value) in [
            ("3", 3.0),
            ("-2.5", -2.5),
            (".5", 0.5),
            ("1e3", 1000.0),
            ("+4", 4.0),
            ("00012", 12.0),
            ("  42\n", 42.0),
            ("\t7\r\n", 7.0),
            ("1.", 1.0),
            ("-0", 0.0),
            ("2.5E-3", 0.0025),
            ("1e108", 1e108),
        ] {
            assert_eq!(parse_value(text.as_bytes(), false), Ok(value), "{text:?}");
        }
    }

    #[test]
    fn rejected_forms_say_why() {
        for (text, reason) in [
            ("", "printed nothing"),
            ("   \n", "printed nothing"),
            ("nan", "not a single decimal number"),
            ("NaN", "not a single decimal number"),
            ("inf", "not a single decimal number"),
            ("-infinity", "not a single decimal number"),
            ("0x1A", "not a single decimal number"),
            ("1,000", "not a single decimal number"),
            ("1_000", "not a single decimal number"),
            ("1 2", "2 words"),
            ("42 ms", "2 words"),
            ("12abc", "not a single decimal number"),
            (".", "not a single decimal number"),
            ("1e", "not a single decimal number"),
            ("e5", "not a single decimal number"),
            ("--1", "not a single decimal number"),
            ("\u{a0}1", "not a single decimal number"),
            ("1e400", "outside CloudWatch's range"),
            ("-3e108", "outside CloudWatch's range"),
        ] {
            let error = parse_value(text.as_bytes(), false).unwrap_err();
            assert!(error.0.contains(reason), "{text:?}: {}", error.0);
        }
        assert!(parse_value(&[0xff, 0x31], false).unwrap_err().0.contains("UTF-8"));
        assert!(parse_value(b"1", true).unwrap_err().0.contains("64 KiB"));
    }

    #[test]
    fn the_range_limit_is_two_to_the_360() {
        assert_eq!(LIMIT, 2f64.powi(360));
    }
}
