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

/// Bytes per unit of a size (`KiB`, `MiB`, `GiB`, `KB`, `MB`, `GB`; `k`, `m`, `g` binary as in
/// `docker run --memory`; nothing or `b`: bytes), any case; `None` for anything else.
pub fn bytes_per(unit: &str) -> Option<u64> {
    Some(match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        _ => return None,
    })
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
