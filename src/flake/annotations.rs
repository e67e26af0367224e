//! `flakeAnnotations`: declared limits (`[{"label": "quota", "value": 500}]`) drawn as horizontal
//! lines on the flake's dashboard graph, the EC2 blog's pattern of a limit beside its metric.

use serde_json::Value;

use super::fields::{Fields, describe, shorten};
use super::keys::{ANNOTATION_KEYS, warn_unknown};
use super::model::Annotation;
use super::problem::Problems;

/// More lines than this make a graph unreadable; a limit is one line, not a scale.
const MAX_ANNOTATIONS: usize = 20;
const MAX_LABEL_CHARS: usize = 255;

/// The declared limits of a flake, or `None` if any of them is wrong (each problem is reported).
pub fn parse_annotations(fields: &Fields, problems: &mut Problems) -> Option<Vec<Annotation>> {
    let Some(items) = fields.list("flakeAnnotations", problems) else {
        return if fields.raw("flakeAnnotations").is_some() { None } else { Some(Vec::new()) };
    };
    let mut ok = true;
    if items.len() > MAX_ANNOTATIONS {
        problems.error(
            "flakeAnnotations",
            format!("has {} entries; at most {MAX_ANNOTATIONS} lines fit on one graph, keep the limits that matter", items.len()),
        );
        ok = false;
    }
    let mut annotations = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let prefix = format!("flakeAnnotations[{index}].");
        let Value::Object(object) = item else {
            problems.error(
                format!("flakeAnnotations[{index}]"),
                format!("must be an object such as {{\"label\": \"file handle limit\", \"value\": 65536}}, got {}", describe(item)),
            );
            ok = false;
            continue;
        };
        warn_unknown(object, ANNOTATION_KEYS, &prefix, problems);
        let entry = Fields::new(object, prefix);
        let label = entry.text("label", problems);
        let label = entry.require("label", label, "the text shown beside the line, such as \"quota\"", problems);
        let label = label.filter(|label| {
            let fits = !label.trim().is_empty() && label.chars().count() <= MAX_LABEL_CHARS && !label.chars().any(char::is_control);
            if !fits {
                problems.error(
                    entry.path("label"),
                    format!("\"{}\" must be 1-{MAX_LABEL_CHARS} characters of text without control characters", shorten(label, 40)),
                );
            }
            fits
        });
        let value = entry.number("value", problems);
        let value = entry.require("value", value, "the number where the line is drawn, such as 65536", problems);
        match (label, value) {
            (Some(label), Some(value)) => annotations.push(Annotation { label, value }),
            _ => ok = false,
        }
    }
    ok.then_some(annotations)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse(value: Value) -> (Option<Vec<Annotation>>, Vec<String>) {
        let object = json!({ "flakeAnnotations": value });
        let mut problems = Problems::default();
        let fields = Fields::new(object.as_object().unwrap(), "");
        let parsed = parse_annotations(&fields, &mut problems);
        (parsed, problems.into_vec().iter().map(ToString::to_string).collect())
    }

    #[test]
    fn accepts_labels_and_numbers_written_as_strings() {
        let (parsed, problems) = parse(json!([{"label": "quota", "value": "500"}, {"label": "soft limit", "value": 400.5}]));
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(
            parsed.unwrap(),
            [Annotation { label: "quota".into(), value: 500.0 }, Annotation { label: "soft limit".into(), value: 400.5 }]
        );
    }

    #[test]
    fn every_problem_names_its_field_and_the_fix() {
        let (parsed, problems) = parse(json!([{"label": "", "value": 1}, {"value": "x"}, 7, {"label": "a", "value": 1, "colour": "red"}]));
        assert!(parsed.is_none());
        let text = problems.join("\n");
        assert!(text.contains("flakeAnnotations[0].label") && text.contains("1-255 characters"), "{text}");
        assert!(text.contains("flakeAnnotations[1].label: is required"), "{text}");
        assert!(text.contains("flakeAnnotations[1].value: must be a number"), "{text}");
        assert!(text.contains("flakeAnnotations[2]: must be an object such as"), "{text}");
        assert!(text.contains("flakeAnnotations[3].colour") && text.contains("unknown key"), "{text}");
    }

    #[test]
    fn too_many_lines_and_wrong_shapes_are_errors() {
        let many: Vec<Value> = (0..21).map(|i| json!({"label": format!("l{i}"), "value": i})).collect();
        let (parsed, problems) = parse(Value::Array(many));
        assert!(parsed.is_none() && problems[0].contains("at most 20"), "{problems:?}");
        let (parsed, problems) = parse(json!({"label": "a", "value": 1}));
        assert!(parsed.is_none() && problems[0].contains("must be a list"), "{problems:?}");
    }
}
