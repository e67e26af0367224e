//! Text shown on the page, in the JSON and by `snowflake status`: untrusted strings (failure
//! reasons, file problems, series names) are redacted and bounded in one place, and spans of time
//! are written the way `systemctl list-timers` writes them.

use std::time::Duration;

use crate::creds::Redactor;

/// Longest untrusted string shown, in characters; longer ones end in "…". A failure reason or
/// a file problem can quote a command's output, which nobody bounded.
pub const MAX_TEXT_CHARS: usize = 300;

/// `text` cut to [`MAX_TEXT_CHARS`] characters.
pub fn bound(text: &str) -> String {
    match text.char_indices().nth(MAX_TEXT_CHARS) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_string(),
    }
}

/// `text` with every secret the logs mask masked, then bounded. Redacting first: a cut must
/// not leave half a secret that the redactor no longer recognises.
pub fn bound_redacted(text: &str, redactor: &Redactor) -> String {
    bound(&redactor.redact(text))
}

/// `1h 5min`, `3min 20s`, `12s`, `250ms`: the two largest units, as systemd writes spans.
pub fn span(duration: Duration) -> String {
    let seconds = duration.as_secs();
    if seconds == 0 {
        return format!("{}ms", duration.as_millis());
    }
    let units = [(86_400, "d"), (3_600, "h"), (60, "min"), (1, "s")];
    let mut parts = Vec::new();
    let mut rest = seconds;
    for (size, name) in units {
        if rest >= size && parts.len() < 2 {
            parts.push(format!("{}{name}", rest / size));
            rest %= size;
        } else if !parts.is_empty() {
            break;
        }
    }
    parts.join(" ")
}

/// A span between two times given in seconds, signed: `12s`, or `-` when unknown.
pub fn span_seconds(seconds: Option<f64>) -> String {
    match seconds {
        Some(seconds) if seconds.is_finite() && seconds.abs() < 1.0 => "0s".to_string(),
        Some(seconds) if seconds.is_finite() => span(Duration::from_secs_f64(seconds.abs())),
        _ => "-".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::creds::Creds;

    #[test]
    fn spans_use_the_two_largest_units() {
        assert_eq!(span(Duration::from_millis(250)), "250ms");
        assert_eq!(span(Duration::from_secs(12)), "12s");
        assert_eq!(span(Duration::from_secs(200)), "3min 20s");
        assert_eq!(span(Duration::from_secs(3_900)), "1h 5min");
        assert_eq!(span(Duration::from_secs(3_600)), "1h");
        assert_eq!(span(Duration::from_secs(90_061)), "1d 1h");
    }

    #[test]
    fn long_text_is_cut_and_secrets_are_masked_before_the_cut() {
        let long = "x".repeat(MAX_TEXT_CHARS + 10);
        assert_eq!(bound(&long).chars().count(), MAX_TEXT_CHARS + 1);
        assert!(bound(&long).ends_with('…'));
        assert_eq!(bound("short"), "short");
        let secret = "hunter2-secret-value";
        let redactor = Redactor::new(&Creds { variables: vec![("PASS".into(), secret.into())] });
        let text = format!("{}{secret}", "y".repeat(MAX_TEXT_CHARS - 5));
        let shown = bound_redacted(&text, &redactor);
        assert!(!shown.contains("hunter"), "{shown}");
        assert_eq!(bound("ééé"), "ééé");
    }
}
