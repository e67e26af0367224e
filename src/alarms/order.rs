//! The order of alarm writes when composite alarms are among them: a composite is written after
//! the alarms it names (CloudWatch refuses a rule naming an alarm that does not exist) and
//! deleted before them, one composite per DeleteAlarms call (CloudWatch's limit).

use std::collections::{BTreeMap, BTreeSet};

use crate::cloudwatch::rule::Rule;

/// How deep each alarm sits under composites: 0 for a metric alarm (or a name without a rule),
/// 1 + the deepest alarm its rule names otherwise. Writing by rising depth creates children
/// first; deleting by falling depth removes parents first.
pub fn depths<'a>(rules: impl IntoIterator<Item = (&'a str, &'a str)>) -> BTreeMap<String, usize> {
    let rules: BTreeMap<&str, Vec<String>> = rules
        .into_iter()
        .map(|(name, rule)| {
            (name, Rule::parse(rule).map(|rule| rule.names().into_iter().map(str::to_string).collect()).unwrap_or_default())
        })
        .collect();
    let mut depths = BTreeMap::new();
    for name in rules.keys() {
        depth(name, &rules, &mut depths, &mut BTreeSet::new());
    }
    depths
}

fn depth(name: &str, rules: &BTreeMap<&str, Vec<String>>, depths: &mut BTreeMap<String, usize>, visiting: &mut BTreeSet<String>) -> usize {
    if let Some(known) = depths.get(name) {
        return *known;
    }
    let Some(named) = rules.get(name) else { return 0 };
    // `check` rejects cycles; one made by hand in CloudWatch must not hang the reconcile.
    if !visiting.insert(name.to_string()) {
        return 1;
    }
    let deepest = named.iter().map(|child| depth(child, rules, depths, visiting)).max().unwrap_or(0);
    visiting.remove(name);
    depths.insert(name.to_string(), deepest + 1);
    deepest + 1
}

/// DeleteAlarms calls for `names`: each composite alone, deepest first, then the other alarms
/// `batch` at a time.
pub fn delete_batches(names: &[String], depths: &BTreeMap<String, usize>, batch: usize) -> Vec<Vec<String>> {
    let mut composites: Vec<&String> = names.iter().filter(|name| depths.get(*name).is_some_and(|depth| *depth > 0)).collect();
    composites.sort_by_key(|name| std::cmp::Reverse(depths[*name]));
    let others: Vec<String> = names.iter().filter(|name| depths.get(*name).is_none_or(|depth| *depth == 0)).cloned().collect();
    composites.into_iter().map(|name| vec![name.clone()]).chain(others.chunks(batch).map(<[String]>::to_vec)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn composites_sit_above_what_they_name() {
        let depths = depths([("top", "ALARM(\"mid\") OR ALARM(\"leaf\")"), ("mid", "NOT OK(\"leaf\")")]);
        assert_eq!(depths["mid"], 1);
        assert_eq!(depths["top"], 2);
        assert_eq!(depths.get("leaf"), None, "a metric alarm has no rule");
    }

    #[test]
    fn a_cycle_made_by_hand_does_not_hang() {
        let depths = depths([("a", "ALARM(\"b\")"), ("b", "ALARM(\"a\")")]);
        assert!(depths["a"] >= 1 && depths["b"] >= 1);
    }

    #[test]
    fn composites_are_deleted_one_a_call_parents_first_then_the_rest() {
        let depths = depths([("top", "ALARM(\"mid\")"), ("mid", "ALARM(\"leaf\")")]);
        let names: Vec<String> = ["leaf", "mid", "other", "top"].map(String::from).to_vec();
        assert_eq!(
            delete_batches(&names, &depths, 100),
            vec![vec!["top".to_string()], vec!["mid".to_string()], vec!["leaf".to_string(), "other".to_string()]]
        );
        let many: Vec<String> = (0..201).map(|i| format!("a{i}")).collect();
        assert_eq!(delete_batches(&many, &BTreeMap::new(), 100).iter().map(Vec::len).collect::<Vec<_>>(), [100, 100, 1]);
    }
}
