//! `creds.json`: secrets handed to flake commands as environment variables, and the redactor that
//! keeps their values (and the daemon's AWS keys) out of every log line.

use std::path::Path;

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

/// Replaces known secret values in text before it is logged.
#[derive(Debug, Default, Clone)]
pub struct Redactor {
    /// Longest first, so a secret containing another is masked whole.
    secrets: Vec<String>,
}

impl Redactor {
    /// Masks the values of `creds` and the daemon's own AWS secrets.
    pub fn new(creds: &Creds) -> Self {
        let mut secrets: Vec<String> = creds.variables.iter().map(|(_, value)| value.clone()).collect();
        for name in ["AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ACCESS_KEY_ID"] {
            if let Ok(value) = std::env::var(name) {
                secrets.push(value);
            }
        }
        secrets.retain(|secret| secret.len() >= MIN_SECRET_LEN);
        secrets.sort_by_key(|secret| std::cmp::Reverse(secret.len()));
        secrets.dedup();
        Redactor { secrets }
    }

    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for secret in &self.secrets {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), MASK);
            }
        }
        out
    }
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
}
