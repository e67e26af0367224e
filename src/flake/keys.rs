//! Unknown keys in flake files: silent when they are comments, otherwise a warning that names the
//! key and suggests the nearest known one (`flakeConstring` -> `flakeCronstring`).

use serde_json::{Map, Value};

use super::problem::Problems;

/// Keys of a flake file's top-level object.
pub const FLAKE_KEYS: &[&str] = &[
    "flakeName",
    "flakeCronstring",
    "flakeCommand",
    "flakeType",
    "flakeUnit",
    "flakeMetricNamespace",
    "flakeRegion",
    "flakeAlarms",
    "flakeMetricName",
    "flakeDimensions",
    "flakeStorageResolution",
    "flakeTimeout",
    "flakeEnvironment",
    "flakeWorkingDirectory",
    "flakeEnabled",
];

/// Keys of one entry of `flakeAlarms`.
pub const ALARM_KEYS: &[&str] = &[
    "alarmName",
    "alarmDescription",
    "alarmThreshold",
    "alarmOperator",
    "alarmPeriodLength",
    "alarmPeriods",
    "alarmDatapoints",
    "alarmStatistic",
    "alarmTreatMissingData",
    "alarmEndpoints",
    "alarmActionsEnabled",
    "alarmTags",
];

/// Keys of `alarmEndpoints`: one per alarm state, spelled as the original tool spelled them.
pub const ENDPOINT_KEYS: &[&str] = &["ok", "alarm", "insufficient_data"];

/// Comment keys are how operators annotate JSON; they are never reported.
fn is_comment(key: &str) -> bool {
    key.starts_with('_') || key.ends_with("_comment")
}

/// Warns about every key of `object` that is neither known nor a comment.
pub fn warn_unknown(object: &Map<String, Value>, known: &[&str], prefix: &str, problems: &mut Problems) {
    for key in object.keys() {
        if known.contains(&key.as_str()) || is_comment(key) {
            continue;
        }
        let hint = match nearest(key, known) {
            Some(suggestion) => format!("; did you mean \"{suggestion}\"?"),
            None => format!("; known keys are {}", known.join(", ")),
        };
        problems.warning(
            format!("{prefix}{key}"),
            format!("unknown key \"{key}\" is ignored{hint} (prefix it with _ or end it in _comment to mark a comment)"),
        );
    }
}

/// The known key most similar to `key`, if it is similar enough to be a likely typo.
fn nearest<'k>(key: &str, known: &[&'k str]) -> Option<&'k str> {
    let lowered = key.to_ascii_lowercase();
    known
        .iter()
        .map(|candidate| (candidate, strsim::normalized_damerau_levenshtein(&lowered, &candidate.to_ascii_lowercase())))
        .filter(|(_, similarity)| *similarity >= 0.7)
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(candidate, _)| *candidate)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn warnings_for(value: Value) -> Vec<String> {
        let mut problems = Problems::default();
        warn_unknown(value.as_object().unwrap(), FLAKE_KEYS, "", &mut problems);
        problems.into_vec().into_iter().map(|p| p.to_string()).collect()
    }

    #[test]
    fn typo_gets_a_suggestion() {
        let warnings = warnings_for(json!({"flakeConstring": "* * * * *"}));
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("did you mean \"flakeCronstring\""), "{}", warnings[0]);
        assert!(warnings[0].starts_with("flakeConstring: warning:"), "{}", warnings[0]);
    }

    #[test]
    fn wrong_case_gets_a_suggestion() {
        let warnings = warnings_for(json!({"flakename": "x"}));
        assert!(warnings[0].contains("did you mean \"flakeName\""), "{}", warnings[0]);
    }

    #[test]
    fn comments_are_silent() {
        assert!(warnings_for(json!({"_note": 1, "flakeCommand_comment": "x", "flakeName": "a"})).is_empty());
    }

    #[test]
    fn unrelated_key_lists_the_known_keys() {
        let warnings = warnings_for(json!({"zzz": 1}));
        assert!(warnings[0].contains("known keys are flakeName"), "{}", warnings[0]);
    }
}
