//! `flakeOutput: json` (SPEC 8): an object `{"name": number, ...}` or an array of
//! `{"name", "value", "unit"?, "dimensions"?}`, one entry per member.
//!
//! The document must be valid JSON (else the run failed), but each member is judged alone: a
//! string where a number belongs, a value beyond CloudWatch's range (even one too large for an
//! f64, which a plain `serde_json::Value` would refuse for the whole document), an unknown unit
//! or too many dimensions rejects that member only. Members are therefore kept as raw JSON text
//! until they are judged.

use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use super::entry::{Dimension, Entry, EntryRules, Parsed, Rejection, Unreadable, excerpt};
use super::series_guard::SeriesCap;
use crate::flake::canonical_unit;

/// The entries in `stdout`, or why it is not a JSON metrics document at all.
pub fn parse(stdout: &[u8], truncated: bool, rules: &EntryRules) -> Result<Parsed, Unreadable> {
    parse_capped(stdout, truncated, rules, &mut SeriesCap::new(usize::MAX))
}

/// Like [`parse`], keeping only the entries of the series `cap` lets through as they are read.
pub fn parse_capped(stdout: &[u8], truncated: bool, rules: &EntryRules, cap: &mut SeriesCap) -> Result<Parsed, Unreadable> {
    if truncated {
        return Err(Unreadable("output was cut short at the size limit, so it is not a whole JSON document".to_string()));
    }
    let text = std::str::from_utf8(stdout).map_err(|_| Unreadable("output is not UTF-8 text, so it is not JSON".to_string()))?;
    if text.trim().is_empty() {
        return Err(Unreadable("printed nothing; a json flake must print an object or an array".to_string()));
    }
    let document: Document<'_> = serde_json::from_str(text).map_err(|error| {
        if error.is_data() {
            Unreadable(format!("output is JSON but not metrics: {error}"))
        } else {
            Unreadable(format!("output is not valid JSON: {error}"))
        }
    })?;
    let mut parsed = Parsed::default();
    match document {
        Document::Object(members) => {
            for (name, value) in members {
                let entry = format!("member {:?}", excerpt(&name));
                match named_value(&name, value, rules) {
                    Ok(accepted) => parsed.keep(accepted, cap),
                    Err(reason) => parsed.rejections.push(Rejection { entry, reason }),
                }
            }
        }
        Document::Array(elements) => {
            for (index, element) in elements.into_iter().enumerate() {
                match array_entry(element, rules) {
                    Ok(accepted) => parsed.keep(accepted, cap),
                    Err((name, reason)) => {
                        let entry = match name {
                            Some(name) => format!("entry {} ({:?})", index + 1, excerpt(&name)),
                            None => format!("entry {}", index + 1),
                        };
                        parsed.rejections.push(Rejection { entry, reason });
                    }
                }
            }
        }
    }
    cap.finish(&mut parsed.entries, |entry| entry);
    Ok(parsed)
}

/// The object form's `"name": value`.
fn named_value(name: &str, value: &RawValue, rules: &EntryRules) -> Result<Entry, String> {
    let name = rules.metric_name(name)?;
    let value = number(value, rules)?;
    Ok(Entry { name, value, unit: None, dimensions: Vec::new() })
}

/// The array form's `{"name", "value", "unit"?, "dimensions"?}`; on rejection, the name if known.
fn array_entry(element: &RawValue, rules: &EntryRules) -> Result<Entry, (Option<String>, String)> {
    let members = match serde_json::from_str::<Document<'_>>(element.get()) {
        Ok(Document::Object(members)) => members,
        _ => return Err((None, format!("is {}, not an object with \"name\" and \"value\"", json_kind(element)))),
    };
    // The first string "name", to name the entry in the log even when something else is wrong.
    let known_name = members.iter().find(|(key, _)| key == "name").and_then(|(_, name)| serde_json::from_str::<String>(name.get()).ok());
    let mut name = None;
    let mut value = None;
    let mut unit = None;
    let mut dimensions = None;
    for (key, member) in members {
        let slot = match key.as_str() {
            "name" => &mut name,
            "value" => &mut value,
            "unit" => &mut unit,
            "dimensions" => &mut dimensions,
            other => {
                return Err((
                    known_name,
                    format!("has an unknown key {:?}; an entry has \"name\", \"value\", \"unit\" and \"dimensions\"", excerpt(other)),
                ));
            }
        };
        if slot.replace(member).is_some() {
            return Err((known_name, format!("gives \"{key}\" twice")));
        }
    }
    let Some(name) = name else {
        return Err((None, "has no \"name\"".to_string()));
    };
    let name: String = serde_json::from_str(name.get()).map_err(|_| (None, format!("\"name\" is {}, not a string", json_kind(name))))?;
    let fail = |reason: String| (Some(name.clone()), reason);
    let metric_name = rules.metric_name(&name).map_err(fail)?;
    let Some(value) = value else {
        return Err(fail("has no \"value\"".to_string()));
    };
    let value = number(value, rules).map_err(fail)?;
    let unit = match unit {
        None => None,
        Some(unit) => Some(parse_unit(unit).map_err(fail)?),
    };
    let dimensions = match dimensions {
        None => Vec::new(),
        Some(dimensions) => parse_dimensions(dimensions).map_err(fail)?,
    };
    rules.dimensions(&dimensions).map_err(fail)?;
    Ok(Entry { name: metric_name, value, unit, dimensions })
}

/// A JSON number within CloudWatch's range. The number's text is read by Rust, so `1e400` is
/// out of range rather than unreadable.
fn number(raw: &RawValue, rules: &EntryRules) -> Result<f64, String> {
    let text = raw.get();
    if !text.starts_with(|c: char| c == '-' || c.is_ascii_digit()) {
        return Err(format!("the value is {}, not a number", json_kind(raw)));
    }
    let value: f64 = text.parse().map_err(|_| format!("the value {} is not a number", excerpt(text)))?;
    rules.value(value).map_err(|_| format!("the value {} is outside CloudWatch's range of -2^360 to 2^360", excerpt(text)))
}

fn parse_unit(raw: &RawValue) -> Result<&'static str, String> {
    let text: String = serde_json::from_str(raw.get()).map_err(|_| format!("\"unit\" is {}, not a string", json_kind(raw)))?;
    canonical_unit(&text).ok_or_else(|| {
        format!(
            "\"unit\" {:?} is not a CloudWatch unit; use one of the 27 (Seconds, Milliseconds, Bytes, Percent, Count, Count/Second, None, ...), in any case",
            excerpt(&text)
        )
    })
}

/// `{"name": "value" or number, ...}` in the order written.
fn parse_dimensions(raw: &RawValue) -> Result<Vec<Dimension>, String> {
    let Ok(Document::Object(members)) = serde_json::from_str::<Document<'_>>(raw.get()) else {
        return Err(format!("\"dimensions\" is {}, not an object of names to values", json_kind(raw)));
    };
    members
        .into_iter()
        .map(|(name, value)| {
            let text = value.get();
            let value = if text.starts_with('"') {
                serde_json::from_str::<String>(text).map_err(|_| format!("dimension {:?} has an unreadable string", excerpt(&name)))?
            } else if text.starts_with(|c: char| c == '-' || c.is_ascii_digit()) {
                text.to_string()
            } else {
                return Err(format!("dimension {:?} is {}; a dimension value is a string or a number", excerpt(&name), json_kind(value)));
            };
            Ok(Dimension { name, value })
        })
        .collect()
}

/// What kind of JSON value `raw` is, for a reason a person reads.
fn json_kind(raw: &RawValue) -> &'static str {
    match raw.get().as_bytes().first() {
        Some(b'"') => "a string",
        Some(b'{') => "an object",
        Some(b'[') => "an array",
        Some(b't' | b'f') => "a boolean",
        Some(b'n') => "null",
        _ => "a number",
    }
}

/// A JSON object (members in order, duplicates kept) or array, each value still unparsed.
enum Document<'a> {
    Object(Vec<(String, &'a RawValue)>),
    Array(Vec<&'a RawValue>),
}

impl<'de> Deserialize<'de> for Document<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(DocumentVisitor)
    }
}

struct DocumentVisitor;

impl<'de> Visitor<'de> for DocumentVisitor {
    type Value = Document<'de>;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("an object of metric names to numbers, or an array of {\"name\", \"value\"} objects")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut members = Vec::new();
        while let Some((key, value)) = map.next_entry::<String, &'de RawValue>()? {
            members.push((key, value));
        }
        Ok(Document::Object(members))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut elements = Vec::new();
        while let Some(element) = seq.next_element::<&'de RawValue>()? {
            elements.push(element);
        }
        Ok(Document::Array(elements))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> EntryRules {
        EntryRules::default()
    }

    fn parse_text(text: &str) -> Parsed {
        parse(text.as_bytes(), false, &rules()).unwrap()
    }

    #[test]
    fn an_object_is_one_entry_per_member_in_order() {
        let parsed = parse_text(r#"{"cpu": 12.5, "disk": -3, "big": 1e108}"#);
        let names: Vec<_> = parsed.entries.iter().map(|e| (e.name.as_str(), e.value)).collect();
        assert_eq!(names, [("cpu", 12.5), ("disk", -3.0), ("big", 1e108)]);
        assert!(parsed.rejections.is_empty());
        assert!(parsed.entries.iter().all(|e| e.unit.is_none() && e.dimensions.is_empty()));
    }

    #[test]
    fn an_array_carries_units_and_dimensions() {
        let parsed = parse_text(
            r#"[{"name": "latency", "value": 0.25, "unit": "SECONDS", "dimensions": {"route": "/api", "port": 8080}},
                {"value": 3, "name": "queue"}]"#,
        );
        assert!(parsed.rejections.is_empty(), "{:?}", parsed.rejections);
        assert_eq!(
            parsed.entries[0],
            Entry {
                name: "latency".into(),
                value: 0.25,
                unit: Some("Seconds"),
                dimensions: vec![Dimension::new("route", "/api"), Dimension::new("port", "8080")],
            }
        );
        assert_eq!(parsed.entries[1].name, "queue");
        assert_eq!(parsed.entries[1].unit, None);
    }

    #[test]
    fn the_prefix_is_prepended_and_counted() {
        let rules = EntryRules { metric_prefix: "app.".into(), flake_dimensions: 29 };
        let parsed = parse(
            br#"[{"name": "a", "value": 1, "dimensions": {"x": "1"}}, {"name": "b", "value": 2, "dimensions": {"x": "1", "y": "2"}}]"#,
            false,
            &rules,
        )
        .unwrap();
        assert_eq!(parsed.entries.len(), 1);
        assert_eq!(parsed.entries[0].name, "app.a");
        assert_eq!(parsed.rejections[0].entry, "entry 2 (\"b\")");
        assert!(parsed.rejections[0].reason.contains("31 dimensions (29 of the flake, 2 of the entry)"));
    }

    #[test]
    fn bad_members_are_rejected_alone() {
        let parsed = parse_text(r#"{"ok": 1, "text": "5", "huge": 1e400, "flag": true, "nested": {"a": 1}, "none": null, "also_ok": 2}"#);
        assert_eq!(parsed.entries.iter().map(|e| e.name.as_str()).collect::<Vec<_>>(), ["ok", "also_ok"]);
        let reasons: Vec<_> = parsed.rejections.iter().map(|r| (r.entry.as_str(), r.reason.as_str())).collect();
        assert_eq!(
            reasons,
            [
                ("member \"text\"", "the value is a string, not a number"),
                ("member \"huge\"", "the value 1e400 is outside CloudWatch's range of -2^360 to 2^360"),
                ("member \"flag\"", "the value is a boolean, not a number"),
                ("member \"nested\"", "the value is an object, not a number"),
                ("member \"none\"", "the value is null, not a number"),
            ]
        );
    }

    #[test]
    fn unreadable_documents_fail_the_run() {
        for (text, reason) in [
            ("", "printed nothing"),
            ("{\"a\": 1", "not valid JSON"),
            ("{\"a\": 1} trailing", "not valid JSON"),
            ("42", "JSON but not metrics: invalid type: integer `42`, expected an object of metric names"),
            ("\"text\"", "JSON but not metrics"),
        ] {
            let error = parse(text.as_bytes(), false, &rules()).unwrap_err();
            assert!(error.0.contains(reason), "{text:?}: {error}");
        }
        assert!(parse(&[b'{', 0xff, b'}'], false, &rules()).unwrap_err().0.contains("UTF-8"));
        assert!(parse(b"{\"a\": 1}", true, &rules()).unwrap_err().0.contains("cut short"));
    }

    #[test]
    fn empty_documents_publish_nothing_without_failing() {
        assert_eq!(parse_text("{}"), Parsed::default());
        assert_eq!(parse_text(" [ ]\n"), Parsed::default());
    }
}
