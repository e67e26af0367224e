//! The 27 CloudWatch units, matched case-insensitively and sent in CloudWatch's own spelling.

/// Every unit CloudWatch accepts in `MetricDatum.Unit`, in its canonical spelling.
pub const UNITS: [&str; 27] = [
    "Seconds",
    "Microseconds",
    "Milliseconds",
    "Bytes",
    "Kilobytes",
    "Megabytes",
    "Gigabytes",
    "Terabytes",
    "Bits",
    "Kilobits",
    "Megabits",
    "Gigabits",
    "Terabits",
    "Percent",
    "Count",
    "Bytes/Second",
    "Kilobytes/Second",
    "Megabytes/Second",
    "Gigabytes/Second",
    "Terabytes/Second",
    "Bits/Second",
    "Kilobits/Second",
    "Megabits/Second",
    "Gigabits/Second",
    "Terabits/Second",
    "Count/Second",
    "None",
];

/// The canonical spelling of `text` if it names a CloudWatch unit in any case.
pub fn canonical_unit(text: &str) -> Option<&'static str> {
    UNITS.iter().copied().find(|unit| unit.eq_ignore_ascii_case(text.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_match_in_any_case() {
        assert_eq!(canonical_unit("seconds"), Some("Seconds"));
        assert_eq!(canonical_unit("BYTES/SECOND"), Some("Bytes/Second"));
        assert_eq!(canonical_unit("none"), Some("None"));
        assert_eq!(canonical_unit("Secs"), None);
    }
}
