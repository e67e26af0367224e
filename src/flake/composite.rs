//! Composite alarms of one flake (`alarmRule`): bare names resolved to the flake's full `FL-`
//! names, and rules that name an alarm the flake does not declare, or that form a cycle, rejected
//! with the alarm and the reason. The flake's other alarms go on.

use std::collections::{BTreeMap, BTreeSet};

use super::context::Context;
use super::fields::{Fields, shorten};
use super::model::{Alarm, Watch};
use super::problem::Problems;
use crate::cloudwatch::rule::Rule;

const MAX_RULE: usize = Rule::MAX_TEXT;

/// The rule text of an alarm with placeholders expanded, if it parses; not yet resolved.
pub fn parse_rule(fields: &Fields, context: &Context, problems: &mut Problems) -> Option<String> {
    let template = fields.strict_text("alarmRule", problems)?;
    let text = context
        .expand(&template, &fields.path("alarmRule"), problems)
        .map_err(|reason| problems.error(fields.path("alarmRule"), reason))
        .ok()?;
    if let Err(reason) = Rule::parse(&text) {
        problems.error(fields.path("alarmRule"), format!("\"{}\" is not a valid rule: {reason}", shorten(&text, 80)));
        return None;
    }
    Some(text)
}

/// Resolves the composites among `alarms` (with their index in `flakeAlarms`): each name of a
/// rule must be an alarm of this flake (bare, or its full `FL-<flake>-` name) or another flake's
/// full `FL-` name; no cycles. Rejected composites are left out with a problem at their
/// `alarmRule`; so is any composite naming one of them.
pub fn resolve(alarms: Vec<(usize, Alarm)>, left_out: &[String], flake_name: &str, problems: &mut Problems) -> Vec<Alarm> {
    let own_prefix = format!("FL-{flake_name}-");
    let full = |name: &str| if name.starts_with("FL-") { name.to_string() } else { format!("{own_prefix}{name}") };
    let mut rules: BTreeMap<String, Rule> = BTreeMap::new();
    for (_, alarm) in &alarms {
        if let Watch::Composite { rule } = &alarm.watch
            && let Ok(parsed) = Rule::parse(rule)
        {
            rules.insert(alarm.name.clone(), parsed.rename(&full));
        }
    }
    let declared: BTreeSet<&str> = alarms.iter().map(|(_, alarm)| alarm.name.as_str()).collect();
    let mut rejected: BTreeMap<String, String> = BTreeMap::new();
    for (name, rule) in &rules {
        let own_unknown = rule.names().into_iter().find(|named| named.starts_with(&own_prefix) && !declared.contains(*named));
        if let Some(unknown) = own_unknown {
            let bare = unknown.strip_prefix(&own_prefix).unwrap_or(unknown);
            let known: Vec<&str> = declared.iter().filter_map(|name| name.strip_prefix(&own_prefix)).collect();
            let reason = match left_out.iter().any(|name| name == bare) {
                true => format!("names \"{bare}\", which is rejected above; fix that alarm first"),
                false => format!(
                    "names \"{bare}\", which this flake does not declare (it declares: {}); a bare name is an alarmName of this flake, a full name starts with FL-",
                    listed(&known, ", ")
                ),
            };
            rejected.insert(name.clone(), reason);
        }
    }
    // A composite that names a rejected one is rejected in turn; worked off a queue through the
    // composites naming each alarm, so a long chain costs one step per link, not a pass over all.
    let mut parents: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (name, rule) in &rules {
        for named in rule.names() {
            parents.entry(named).or_default().push(name);
        }
    }
    let mut queue: Vec<String> = rejected.keys().cloned().collect();
    let mut acyclic = BTreeSet::new();
    loop {
        while let Some(child) = queue.pop() {
            let bare = child.strip_prefix(&own_prefix).unwrap_or(&child);
            for parent in parents.get(child.as_str()).into_iter().flatten() {
                if !rejected.contains_key(*parent) {
                    rejected.insert(parent.to_string(), format!("names \"{bare}\", which is rejected above; fix that alarm first"));
                    queue.push(parent.to_string());
                }
            }
        }
        let Some(cycle) = find_cycle(&rules, &rejected, &mut acyclic) else { break };
        let shown: Vec<&str> = cycle.iter().map(|name| name.strip_prefix(own_prefix.as_str()).unwrap_or(name)).collect();
        let reason = format!("the rules form a cycle: {}", listed(&shown, " -> "));
        for name in &cycle {
            if rejected.insert(name.clone(), reason.clone()).is_none() {
                queue.push(name.clone());
            }
        }
    }
    let mut kept = Vec::new();
    for (index, mut alarm) in alarms {
        if let Some(reason) = rejected.get(&alarm.name) {
            let bare = alarm.name.strip_prefix(&own_prefix).unwrap_or(&alarm.name);
            problems.error(format!("flakeAlarms[{index}].alarmRule"), format!("alarm \"{bare}\": {reason}"));
            continue;
        }
        if let Some(rule) = rules.get(&alarm.name) {
            let text = rule.to_string();
            if let Some(reason) = rule_too_long(&text) {
                problems.error(format!("flakeAlarms[{index}].alarmRule"), reason);
                continue;
            }
            alarm.watch = Watch::Composite { rule: text };
        }
        kept.push(alarm);
    }
    kept
}

/// A cycle among the composites not yet rejected, as names from the first back to it (`a, b, a`).
/// Depth-first with an explicit stack: a chain of 20,000 composites naming each other must not
/// recurse 20,000 frames deep (issue 22.1).
/// `done` holds the composites known to reach no cycle, kept between calls: rejecting more
/// composites never makes a cycle.
fn find_cycle<'a>(
    rules: &'a BTreeMap<String, Rule>,
    rejected: &BTreeMap<String, String>,
    done: &mut BTreeSet<&'a str>,
) -> Option<Vec<String>> {
    for root in rules.keys() {
        if done.contains(root.as_str()) || rejected.contains_key(root) {
            continue;
        }
        // The path from `root`, each with the names its rule gives and how many were followed.
        let mut path: Vec<(&str, Vec<&str>, usize)> = vec![(root.as_str(), rules[root].names(), 0)];
        let mut on_path: BTreeSet<&str> = BTreeSet::from([root.as_str()]);
        while let Some((name, named, next)) = path.last_mut() {
            let Some(child) = named.get(*next).copied() else {
                done.insert(*name);
                on_path.remove(*name);
                path.pop();
                continue;
            };
            *next += 1;
            if on_path.contains(child) {
                let start = path.iter().position(|(on_path, _, _)| *on_path == child).expect("on the path");
                let mut cycle: Vec<String> = path[start..].iter().map(|(name, _, _)| name.to_string()).collect();
                cycle.push(child.to_string());
                return Some(cycle);
            }
            if done.contains(child) || rejected.contains_key(child) {
                continue;
            }
            if let Some((name, rule)) = rules.get_key_value(child) {
                on_path.insert(name.as_str());
                path.push((name.as_str(), rule.names(), 0));
            }
        }
    }
    None
}

/// `names` joined by `separator`; a long list shows its ends and how many there are, so one
/// message never grows with the size of the file (issue 22.1: 20,000 composites in a cycle).
fn listed(names: &[&str], separator: &str) -> String {
    const SHOWN: usize = 5;
    if names.len() <= 4 * SHOWN {
        return names.join(separator);
    }
    let head = names[..SHOWN].join(separator);
    let tail = names[names.len() - SHOWN..].join(separator);
    format!("{head}{separator}... ({} in all) ...{separator}{tail}", names.len())
}

/// The rule's length limit, checked on the resolved text CloudWatch receives.
fn rule_too_long(rule: &str) -> Option<String> {
    (rule.len() > MAX_RULE).then(|| format!("the rule is {} characters with full alarm names; CloudWatch allows {MAX_RULE}", rule.len()))
}
