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
    let mut depths: BTreeMap<String, usize> = BTreeMap::new();
    for root in rules.keys() {
        if depths.contains_key(*root) {
            continue;
        }
        // Depth-first with an explicit stack, so a chain of 20,000 composites cannot overflow
        // it (issue 22.1): each entry is an alarm, how many of its names were looked at, and
        // the deepest of those so far.
        let mut stack: Vec<(&str, usize, usize)> = vec![(root, 0, 0)];
        let mut visiting: BTreeSet<&str> = BTreeSet::from([*root]);
        while let Some((name, next, deepest)) = stack.last_mut() {
            if let Some(child) = rules[*name].get(*next).map(String::as_str) {
                *next += 1;
                let known = match depths.get(child) {
                    Some(depth) => Some(*depth),
                    None if !rules.contains_key(child) => Some(0),
                    // `check` rejects cycles; one made by hand in CloudWatch must not hang the reconcile.
                    None if visiting.contains(child) => Some(1),
                    None => None,
                };
                match known {
                    Some(depth) => *deepest = (*deepest).max(depth),
                    None => {
                        visiting.insert(child);
                        stack.push((child, 0, 0));
                    }
                }
                continue;
            }
            let (name, _, deepest) = (*name, *next, *deepest);
            stack.pop();
            visiting.remove(name);
            depths.insert(name.to_string(), deepest + 1);
            if let Some((_, _, parent_deepest)) = stack.last_mut() {
                *parent_deepest = (*parent_deepest).max(deepest + 1);
            }
        }
    }
    depths
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

    /// Issue 22.1: the depths of a 20,000-long chain, without recursing once per link.
    #[test]
    fn a_chain_of_twenty_thousand_composites_does_not_overflow() {
        let rules: Vec<(String, String)> = (0..20_000).map(|i| (format!("c{i}"), format!("ALARM(\"c{}\")", i + 1))).collect();
        let depths = depths(rules.iter().map(|(name, rule)| (name.as_str(), rule.as_str())));
        assert_eq!(depths["c19999"], 1, "names c20000, which has no rule");
        assert_eq!(depths["c0"], 20_000);
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
