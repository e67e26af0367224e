//! Composite alarms of one flake (`alarmRule`): bare names resolved to the flake's full `FL-`
//! names, and rules that name an alarm the flake does not declare, or that form a cycle, rejected
//! with the alarm and the reason. The flake's other alarms go on.

use std::collections::{BTreeMap, BTreeSet};

use super::context::Context;
use super::fields::{Fields, shorten};
use super::model::{Alarm, Watch};
use super::problem::Problems;
use crate::cloudwatch::rule::Rule;
use crate::placeholders::expand;

const MAX_RULE: usize = 10_240;

/// The rule text of an alarm with placeholders expanded, if it parses; not yet resolved.
pub fn parse_rule(fields: &Fields, context: &Context, problems: &mut Problems) -> Option<String> {
    let template = fields.strict_text("alarmRule", problems)?;
    let text = expand(&template, context.facts).map_err(|reason| problems.error(fields.path("alarmRule"), reason)).ok()?;
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
    let mut rejected: BTreeMap<String, String> = BTreeMap::new();
    // Fixpoint: a composite that names a rejected one is rejected in turn.
    loop {
        let declared: BTreeSet<String> =
            alarms.iter().map(|(_, alarm)| alarm.name.clone()).filter(|name| !rejected.contains_key(name)).collect();
        let mut found = false;
        for (name, rule) in &rules {
            if rejected.contains_key(name) {
                continue;
            }
            let own_unknown = rule.names().into_iter().find(|named| named.starts_with(&own_prefix) && !declared.contains(*named));
            if let Some(unknown) = own_unknown {
                let bare = unknown.strip_prefix(&own_prefix).unwrap_or(unknown);
                let known: Vec<&str> = declared.iter().filter_map(|name| name.strip_prefix(&own_prefix)).collect();
                let rejected_above = alarms.iter().any(|(_, alarm)| alarm.name == unknown) || left_out.iter().any(|name| name == bare);
                let reason = match rejected_above {
                    true => format!("names \"{bare}\", which is rejected above; fix that alarm first"),
                    false => format!(
                        "names \"{bare}\", which this flake does not declare (it declares: {}); a bare name is an alarmName of this flake, a full name starts with FL-",
                        known.join(", ")
                    ),
                };
                rejected.insert(name.clone(), reason);
                found = true;
            }
        }
        if let Some(cycle) = find_cycle(&rules, &rejected) {
            let shown: Vec<&str> = cycle.iter().map(|name| name.strip_prefix(own_prefix.as_str()).unwrap_or(name)).collect();
            for name in &cycle {
                rejected.insert(name.clone(), format!("the rules form a cycle: {}", shown.join(" -> ")));
            }
            found = true;
        }
        if !found {
            break;
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
fn find_cycle(rules: &BTreeMap<String, Rule>, rejected: &BTreeMap<String, String>) -> Option<Vec<String>> {
    fn visit(
        name: &str,
        rules: &BTreeMap<String, Rule>,
        rejected: &BTreeMap<String, String>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|on_path| on_path == name) {
            let mut cycle = path[start..].to_vec();
            cycle.push(name.to_string());
            return Some(cycle);
        }
        if done.contains(name) || rejected.contains_key(name) {
            return None;
        }
        let rule = rules.get(name)?;
        path.push(name.to_string());
        for named in rule.names() {
            if let Some(cycle) = visit(named, rules, rejected, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(name.to_string());
        None
    }
    let mut done = BTreeSet::new();
    rules.keys().find_map(|name| visit(name, rules, rejected, &mut Vec::new(), &mut done))
}

/// The rule's length limit, checked on the resolved text CloudWatch receives.
fn rule_too_long(rule: &str) -> Option<String> {
    (rule.len() > MAX_RULE).then(|| format!("the rule is {} characters with full alarm names; CloudWatch allows {MAX_RULE}", rule.len()))
}
