//! `creds.json`: secrets handed to flake commands as environment variables, and the redactor that
//! keeps their values (and the daemon's AWS keys, and header values filled from the environment)
//! out of every output: log lines, `snowflake once`, errors and the status page. [`Redactor::show`]
//! is what any output calls on untrusted text: it masks secrets, then bounds the length ([`cut`]).

use std::borrow::Cow;
use std::path::Path;
use std::sync::{Arc, RwLock};

use serde_json::Value;

/// Environment variables from `creds.json`, sorted by name.
#[derive(Debug, Default, Clone)]
pub struct Creds {
    pub variables: Vec<(String, String)>,
}

impl Creds {
    /// Reads `path`; a missing file means no credentials. Errors name the file and key, never
    /// a value.
    pub fn load(path: &Path) -> Result<Creds, String> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Creds::default()),
            Err(error) => return Err(format!("{}: cannot be read: {error}", path.display())),
        };
        // serde_json's messages quote the input only around syntax errors' positions, not values,
        // but a line/column is all an operator needs here.
        let value: Value = serde_json::from_str(&text).map_err(|error| {
            format!(
                "{}: invalid JSON at line {}, column {}; it must be one object of string values",
                path.display(),
                error.line(),
                error.column()
            )
        })?;
        let Value::Object(object) = value else {
            return Err(format!("{}: must hold one JSON object of name/value strings, {{\"DB_PASSWORD\": \"...\"}}", path.display()));
        };
        let mut variables = Vec::with_capacity(object.len());
        for (key, value) in object {
            if key.is_empty() || key.contains('=') || key.contains('\0') {
                return Err(format!("{}: key {key:?} is not a valid environment variable name", path.display()));
            }
            match value {
                Value::String(text) if !text.contains('\0') => variables.push((key, text)),
                _ => return Err(format!("{}: the value of {key:?} must be a string (quote numbers: \"1234\")", path.display())),
            }
        }
        Ok(Creds { variables })
    }
}

/// Values shorter than this are not masked: they cannot be told apart from ordinary output
/// (masking "1" would mask every 1 in every log). Secrets are longer.
const MIN_SECRET_LEN: usize = 4;
const MASK: &str = "********";
/// The shortest AWS credential value masked (see `Redactor::with_aws_secrets`).
const MIN_AWS_SECRET_LEN: usize = 16;
/// The most bytes of one piece of untrusted text (a command's output, a metric name from an
/// exporter, a server's error) that any output shows: a log line, the terminal, the status page.
pub const SHOWN_BYTES: usize = 1024;

/// Replaces known secret values in text before it is shown anywhere, and bounds what is shown.
///
/// Clones share one list: a secret learnt while a run resolves its `flakeHeaders` (a value from
/// the daemon's environment) is masked from then on by every clone, in the flake logs, in
/// `snowflake once`'s output and on the status page alike.
#[derive(Debug, Default, Clone)]
pub struct Redactor {
    /// Longest first, so a secret containing another is masked whole.
    secrets: Arc<RwLock<Vec<String>>>,
}

impl Redactor {
    /// Masks the values of `creds` and the daemon's own AWS secrets.
    pub fn new(creds: &Creds) -> Self {
        let redactor = Redactor::with_aws_secrets();
        redactor.learn(creds);
        redactor
    }

    /// The process's one redactor, shared by everything it prints: its own log lines (the
    /// logging writer is made before `creds.json` is read, hence one instance learning later),
    /// the flake logs, and one-shot commands' output and errors. It masks the AWS secrets in the
    /// environment from the start and `creds.json`'s values once [`learn`](Self::learn) is called.
    pub fn process() -> Redactor {
        static PROCESS: std::sync::OnceLock<Redactor> = std::sync::OnceLock::new();
        PROCESS.get_or_init(Redactor::with_aws_secrets).clone()
    }

    fn with_aws_secrets() -> Redactor {
        let redactor = Redactor::default();
        for name in ["AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ACCESS_KEY_ID"] {
            // Real AWS keys are at least 16 characters (IAM's shortest access key id); shorter
            // values are stand-ins such as LocalStack's "test", and masking those would mask
            // ordinary words (a path's "tests/") in every line the program prints.
            if let Ok(value) = std::env::var(name)
                && value.len() >= MIN_AWS_SECRET_LEN
            {
                redactor.register(&value);
            }
        }
        redactor
    }

    /// Masks the values of `creds` from now on.
    pub fn learn(&self, creds: &Creds) {
        for (_, value) in &creds.variables {
            self.register(value);
        }
    }

    /// Masks `secret` from now on (a header value filled from the environment, say).
    pub fn register(&self, secret: &str) {
        if secret.len() < MIN_SECRET_LEN {
            return;
        }
        if self.read().iter().any(|known| known == secret) {
            return;
        }
        let mut secrets = self.secrets.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        if !secrets.iter().any(|known| known == secret) {
            secrets.push(secret.to_string());
            secrets.sort_by_key(|secret| std::cmp::Reverse(secret.len()));
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Vec<String>> {
        self.secrets.read().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// `text` with every known secret masked.
    pub fn redact(&self, text: &str) -> String {
        self.redact_if_needed(text).into_owned()
    }

    /// [`redact`](Self::redact) without a copy when `text` holds no secret (the logging writer's
    /// case: nearly every line).
    pub fn redact_if_needed<'t>(&self, text: &'t str) -> Cow<'t, str> {
        let secrets = self.read();
        if !secrets.iter().any(|secret| text.contains(secret.as_str())) {
            return Cow::Borrowed(text);
        }
        let mut out = text.to_string();
        for secret in secrets.iter() {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), MASK);
            }
        }
        Cow::Owned(out)
    }

    /// Like [`redact`](Self::redact), for text that was cut short (a capture limit): it may end
    /// in the head of a secret, which is masked too.
    pub fn redact_cut(&self, text: &str, was_cut: bool) -> String {
        let mut out = self.redact(text);
        if was_cut {
            let head = self.read().iter().map(|secret| secret_head_at_end(&out, secret)).max().unwrap_or(0);
            if head > 0 {
                out.truncate(out.len() - head);
                out.push_str(MASK);
            }
        }
        out
    }

    /// `text` as any output may show it: secrets masked first (so a cut can never leave a
    /// secret's head unrecognised), then cut to [`SHOWN_BYTES`] with a marker.
    pub fn show(&self, text: &str) -> String {
        cut(&self.redact(text), SHOWN_BYTES).into_owned()
    }
}

/// How long the longest head of `secret` (at least [`MIN_SECRET_LEN`] bytes, shorter than the
/// whole) that `text` ends with is; 0 if none.
fn secret_head_at_end(text: &str, secret: &str) -> usize {
    (MIN_SECRET_LEN..secret.len()).rev().find(|&len| secret.is_char_boundary(len) && text.ends_with(&secret[..len])).unwrap_or(0)
}

/// `text` cut to at most `limit` bytes (at a character boundary), followed by
/// `…[truncated, N bytes]` naming the whole length when it was cut: the one place untrusted text
/// is bounded before it reaches a log line, the terminal or the status page.
pub fn cut(text: &str, limit: usize) -> Cow<'_, str> {
    if text.len() <= limit {
        return Cow::Borrowed(text);
    }
    let mut end = limit;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(format!("{}…[truncated, {} bytes]", &text[..end], text.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_strings_and_rejects_other_values_without_printing_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("creds.json");
        assert!(Creds::load(&path).unwrap().variables.is_empty(), "missing file: no credentials");

        std::fs::write(&path, r#"{"user1": "admin", "pass1": "s3cr3t-value"}"#).unwrap();
        let creds = Creds::load(&path).unwrap();
        assert_eq!(creds.variables, [("pass1".to_string(), "s3cr3t-value".to_string()), ("user1".to_string(), "admin".to_string())]);

        std::fs::write(&path, r#"{"pin": 98765432}"#).unwrap();
        let error = Creds::load(&path).unwrap_err();
        assert!(error.contains("\"pin\" must be a string") && !error.contains("98765432"), "{error}");

        std::fs::write(&path, r#"{"pass": "hunter22hunter", }"#).unwrap();
        let error = Creds::load(&path).unwrap_err();
        assert!(error.contains("invalid JSON") && !error.contains("hunter22"), "{error}");
    }

    #[test]
    fn redacts_longest_secrets_first() {
        let creds = Creds { variables: vec![("a".into(), "abcd".into()), ("b".into(), "abcdefgh".into()), ("c".into(), "1".into())] };
        let redactor = Redactor::new(&creds);
        assert_eq!(redactor.redact("x abcdefgh y abcd z 1"), "x ******** y ******** z 1");
    }

    #[test]
    fn registered_secrets_are_masked_by_every_clone() {
        let redactor = Redactor::default();
        let clone = redactor.clone();
        redactor.register("env-token-123");
        redactor.register("abc");
        assert_eq!(clone.redact("echo: Bearer env-token-123 abc"), "echo: Bearer ******** abc");
    }

    #[test]
    fn a_secret_cut_at_the_capture_limit_does_not_leak_its_head() {
        let creds = Creds { variables: vec![("PASS".into(), "ahunter22-long-secret".into())] };
        let redactor = Redactor::new(&creds);
        let cut_output = "x".repeat(100) + "password=ahunter";
        let shown = redactor.redact_cut(&cut_output, true);
        assert!(!shown.contains("ahunt"), "{shown}");
        assert!(shown.ends_with("password=********"), "{shown}");
        // Whole output that happens to end like a secret's head is left alone when not cut.
        assert_eq!(redactor.redact_cut("ahunter", false), "ahunter");
        // Heads shorter than any secret stay (like secrets shorter than that).
        assert_eq!(redactor.redact_cut("xx ahu", true), "xx ahu");
    }

    #[test]
    fn shown_text_is_redacted_before_it_is_cut() {
        let creds = Creds { variables: vec![("PASS".into(), "correct-horse-battery".into())] };
        let redactor = Redactor::new(&creds);
        let text = "y".repeat(SHOWN_BYTES - 5) + "correct-horse-battery and more";
        let shown = redactor.show(&text);
        assert!(!shown.contains("corr"), "{shown}");
        let huge = "é".repeat(10 * 1024 * 1024);
        let shown = redactor.show(&huge);
        assert!(shown.len() < SHOWN_BYTES + 40, "{}", shown.len());
        assert!(shown.ends_with(&format!("…[truncated, {} bytes]", huge.len())), "{}", &shown[shown.len() - 40..]);
        assert_eq!(cut("short", 10), "short");
    }
}
