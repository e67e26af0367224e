//! Reading typed values out of a JSON object the way the original Python tool's files were
//! written: numbers may be JSON numbers or numeric strings (`"60"`), booleans may be `"true"`.
//!
//! Each reader records a [`Problem`](super::problem::Problem) naming the field and what was found
//! instead, and returns `None`, so validation can go on and report the next field too.

use serde_json::{Map, Value};

use super::problem::Problems;

/// A JSON object being validated, with the path prefix of its fields (`""` or `flakeAlarms[2].`).
pub struct Fields<'a> {
    object: &'a Map<String, Value>,
    prefix: String,
}

impl<'a> Fields<'a> {
    pub fn new(object: &'a Map<String, Value>, prefix: impl Into<String>) -> Self {
        Fields { object, prefix: prefix.into() }
    }

    /// The full path of `key` for problem reports.
    pub fn path(&self, key: &str) -> String {
        format!("{}{}", self.prefix, key)
    }

    /// The raw value, treating JSON `null` as absent (as the original tool did).
    pub fn raw(&self, key: &str) -> Option<&'a Value> {
        self.object.get(key).filter(|value| !value.is_null())
    }

    /// Reports a missing required field with a hint of what belongs there.
    pub fn require<T>(&self, key: &str, value: Option<T>, hint: &str, problems: &mut Problems) -> Option<T> {
        if value.is_none() && self.raw(key).is_none() {
            problems.error(self.path(key), format!("is required: {hint}"));
        }
        value
    }

    /// A string; numbers are accepted and written out as the original tool would have.
    pub fn text(&self, key: &str, problems: &mut Problems) -> Option<String> {
        match self.raw(key)? {
            Value::String(text) => Some(text.clone()),
            Value::Number(number) => Some(number.to_string()),
            other => {
                problems.error(self.path(key), format!("must be a string, got {}", describe(other)));
                None
            }
        }
    }

    /// A string that must be written as a JSON string (commands, names of things).
    pub fn strict_text(&self, key: &str, problems: &mut Problems) -> Option<String> {
        match self.raw(key)? {
            Value::String(text) => Some(text.clone()),
            other => {
                problems.error(self.path(key), format!("must be a string, got {}", describe(other)));
                None
            }
        }
    }

    /// A finite number, written as a JSON number or a numeric string.
    pub fn number(&self, key: &str, problems: &mut Problems) -> Option<f64> {
        let value = self.raw(key)?;
        match number_of(value) {
            Some(number) => Some(number),
            None => {
                problems.error(
                    self.path(key),
                    format!("must be a number (a JSON number or a numeric string such as \"60\"), got {}", describe(value)),
                );
                None
            }
        }
    }

    /// A whole number, written as a JSON number or a numeric string; `60.0` counts as 60.
    pub fn integer(&self, key: &str, problems: &mut Problems) -> Option<i64> {
        let value = self.raw(key)?;
        match number_of(value) {
            Some(number) if number.fract() == 0.0 && number.abs() < 1e15 => Some(number as i64),
            _ => {
                problems.error(self.path(key), format!("must be a whole number (such as 60 or \"60\"), got {}", describe(value)));
                None
            }
        }
    }

    /// `true`/`false`, also as the strings `"true"`/`"false"` in any case.
    pub fn boolean(&self, key: &str, problems: &mut Problems) -> Option<bool> {
        let value = self.raw(key)?;
        let parsed = match value {
            Value::Bool(flag) => Some(*flag),
            Value::String(text) if text.trim().eq_ignore_ascii_case("true") => Some(true),
            Value::String(text) if text.trim().eq_ignore_ascii_case("false") => Some(false),
            _ => None,
        };
        if parsed.is_none() {
            problems.error(self.path(key), format!("must be true or false, got {}", describe(value)));
        }
        parsed
    }

    /// A JSON object.
    pub fn object(&self, key: &str, problems: &mut Problems) -> Option<&'a Map<String, Value>> {
        match self.raw(key)? {
            Value::Object(object) => Some(object),
            other => {
                problems.error(self.path(key), format!("must be an object of name/value pairs, got {}", describe(other)));
                None
            }
        }
    }

    /// A JSON list.
    pub fn list(&self, key: &str, problems: &mut Problems) -> Option<&'a Vec<Value>> {
        match self.raw(key)? {
            Value::Array(items) => Some(items),
            other => {
                problems.error(self.path(key), format!("must be a list, got {}", describe(other)));
                None
            }
        }
    }
}

/// A finite number from a JSON number or a string holding one.
pub fn number_of(value: &Value) -> Option<f64> {
    let number = match value {
        Value::Number(number) => number.as_f64()?,
        Value::String(text) => parse_decimal(text.trim())?,
        _ => return None,
    };
    number.is_finite().then_some(number)
}

/// Plain decimal notation only: Rust's `f64::from_str` also takes `inf`, `NaN` and `infinity`,
/// which are not numbers an operator means to write in a flake file.
fn parse_decimal(text: &str) -> Option<f64> {
    let looks_decimal = !text.is_empty()
        && text.chars().all(|c| c.is_ascii_digit() || matches!(c, '+' | '-' | '.' | 'e' | 'E'))
        && text.chars().any(|c| c.is_ascii_digit());
    if looks_decimal { text.parse().ok() } else { None }
}

/// A short description of a JSON value for "got ..." messages; strings are quoted and shortened.
pub fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".to_string(),
        Value::Bool(flag) => flag.to_string(),
        Value::Number(number) => number.to_string(),
        Value::String(text) => format!("\"{}\"", shorten(text, 60)),
        Value::Array(_) => "a list".to_string(),
        Value::Object(_) => "an object".to_string(),
    }
}

/// At most `limit` characters, with `...` where it was cut.
pub fn shorten(text: &str, limit: usize) -> String {
    if text.chars().count() <= limit {
        text.to_string()
    } else {
        let kept: String = text.chars().take(limit).collect();
        format!("{kept}...")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers_may_be_strings() {
        assert_eq!(number_of(&json!(3)), Some(3.0));
        assert_eq!(number_of(&json!("60")), Some(60.0));
        assert_eq!(number_of(&json!(" -2.5 ")), Some(-2.5));
        assert_eq!(number_of(&json!("1e3")), Some(1000.0));
        assert_eq!(number_of(&json!("inf")), None);
        assert_eq!(number_of(&json!("NaN")), None);
        assert_eq!(number_of(&json!("sixty")), None);
        assert_eq!(number_of(&json!(true)), None);
    }

    #[test]
    fn integers_reject_fractions_and_report_the_field() {
        let object = json!({"a": "60", "b": 1.5, "c": 60.0}).as_object().unwrap().clone();
        let fields = Fields::new(&object, "x.");
        let mut problems = Problems::default();
        assert_eq!(fields.integer("a", &mut problems), Some(60));
        assert_eq!(fields.integer("c", &mut problems), Some(60));
        assert_eq!(fields.integer("b", &mut problems), None);
        let list = problems.into_vec();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].field, "x.b");
        assert!(list[0].message.contains("whole number"), "{}", list[0].message);
    }

    #[test]
    fn booleans_accept_strings() {
        let object = json!({"a": "TRUE", "b": false, "c": "yes"}).as_object().unwrap().clone();
        let fields = Fields::new(&object, "");
        let mut problems = Problems::default();
        assert_eq!(fields.boolean("a", &mut problems), Some(true));
        assert_eq!(fields.boolean("b", &mut problems), Some(false));
        assert_eq!(fields.boolean("c", &mut problems), None);
        assert!(problems.has_flake_errors());
    }
}
