//! Unknown keys in flake files: silent when they are comments, otherwise a warning that names the
//! key and suggests the nearest known one (`flakeConstring` -> `flakeCronstring`).

use serde_json::{Map, Value};

use super::fields::shorten;
use super::problem::Problems;

/// Longest part of an unknown key repeated in a warning; a key longer than any known one by far
/// is no typo, and the whole of it helps nobody.
const SHOWN_KEY_CHARS: usize = 80;
/// The least similarity (normalized Damerau-Levenshtein) of a suggestion.
const SIMILAR_ENOUGH: f64 = 0.7;

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
    "flakeAggregate",
    "flakeAnnotations",
    "flakeMonitor",
    "flakeOutput",
    "flakeMetricPrefix",
    "flakeMetrics",
    "flakeMaxSeries",
    "flakeUrl",
    "flakeHeaders",
    "flakeImage",
    "flakeBuild",
    "flakeImagePull",
    "flakeContainer",
    "flakeScope",
];

/// Keys of `flakeContainer`.
pub const CONTAINER_KEYS: &[&str] = &["memory", "cpus", "network", "user", "readOnly", "mounts"];

/// Keys of one entry of `flakeContainer.mounts`.
pub const MOUNT_KEYS: &[&str] = &["source", "target"];

/// Keys of one entry of `flakeAnnotations`.
pub const ANNOTATION_KEYS: &[&str] = &["label", "value"];

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
    "alarmNamespace",
    "alarmMetricName",
    "alarmDimensions",
    "alarmExpression",
    "alarmMetrics",
    "alarmAnomalyBand",
    "alarmRule",
];

/// Keys of `flakeMonitor`.
pub const MONITOR_KEYS: &[&str] = &["grace", "failedAlarm", "alarmEndpoints", "alarmActionsEnabled", "alarmTags"];

/// Keys of one entry of `alarmMetrics` (a metric-math alarm's metrics).
pub const MATH_METRIC_KEYS: &[&str] = &["namespace", "metricName", "dimensions", "statistic", "period"];

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
        let shown = shorten(key, SHOWN_KEY_CHARS);
        problems.warning(
            format!("{prefix}{shown}"),
            format!("unknown key \"{shown}\" is ignored{hint} (prefix it with _ or end it in _comment to mark a comment)"),
        );
    }
}

/// The known key most similar to `key`, if it is similar enough to be a likely typo.
///
/// The distance costs the product of the two lengths, so candidates whose length alone rules them
/// out are never compared: the edit distance is at least the difference in length. A key far
/// longer than every known key (a 10 MB key once took 15 s here) thus costs nothing.
fn nearest<'k>(key: &str, known: &[&'k str]) -> Option<&'k str> {
    let key_chars = key.chars().count();
    let could_be_similar = |candidate: &&&str| {
        let (shorter, longer) = (key_chars.min(candidate.len()), key_chars.max(candidate.len()));
        longer > 0 && 1.0 - (longer - shorter) as f64 / longer as f64 >= SIMILAR_ENOUGH
    };
    let candidates: Vec<&&str> = known.iter().filter(could_be_similar).collect();
    if candidates.is_empty() {
        return None;
    }
    let lowered = key.to_ascii_lowercase();
    candidates
        .into_iter()
        .map(|candidate| (candidate, strsim::normalized_damerau_levenshtein(&lowered, &candidate.to_ascii_lowercase())))
        .filter(|(_, similarity)| *similarity >= SIMILAR_ENOUGH)
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
    fn a_huge_key_is_cut_short_in_the_warning_and_never_compared() {
        let huge = "k".repeat(10 * 1024 * 1024);
        assert_eq!(nearest(&huge, FLAKE_KEYS), None);
        let warnings = warnings_for(json!({ huge.clone(): 1 }));
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].len() < 1_000, "the warning repeats {} bytes", warnings[0].len());
        assert!(warnings[0].contains("unknown key \"kkkk"), "{}", &warnings[0][..200]);
    }

    #[test]
    fn the_length_bound_never_rules_out_a_suggestion_the_distance_would_make() {
        // Exhaustive over key lengths around the known ones: pruning changes no answer.
        for known in FLAKE_KEYS {
            for cut in 0..known.len() {
                for key in [&known[..cut], &format!("{known}{}", &known[..cut])] {
                    let lowered = key.to_ascii_lowercase();
                    let unpruned = FLAKE_KEYS
                        .iter()
                        .map(|c| (c, strsim::normalized_damerau_levenshtein(&lowered, &c.to_ascii_lowercase())))
                        .filter(|(_, s)| *s >= SIMILAR_ENOUGH)
                        .max_by(|a, b| a.1.total_cmp(&b.1))
                        .map(|(c, _)| *c);
                    assert_eq!(nearest(key, FLAKE_KEYS), unpruned, "key {key:?}");
                }
            }
        }
    }

    #[test]
    fn unrelated_key_lists_the_known_keys() {
        let warnings = warnings_for(json!({"zzz": 1}));
        assert!(warnings[0].contains("known keys are flakeName"), "{}", warnings[0]);
    }
}
