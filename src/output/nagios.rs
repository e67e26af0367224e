//! `flakeOutput: nagios` (SPEC 8): a Nagios plugin's exit status as its state, and its
//! performance data as entries.
//!
//! Output follows the monitoring-plugins guidelines: `TEXT | PERFDATA` on the first line, then
//! optional long-output lines; the first later line holding a `|` starts more perfdata, which
//! runs to the end of the output (as Nagios itself reads it). Each perfdata item is
//! `'label'=value[UOM];[warn];[crit];[min];[max]`; an item that does not parse is rejected alone,
//! and a damaged item cannot swallow more than the rest of its own line.

use super::entry::{Entry, EntryRules, Parsed, Rejection, Unreadable, excerpt};
use super::series_guard::SeriesCap;

/// The metric that carries the plugin's state, 0 to 3.
pub const STATE_METRIC: &str = "NagiosState";

/// A plugin's verdict, from its exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NagiosState {
    Ok,
    Warning,
    Critical,
    Unknown,
}

impl NagiosState {
    /// The state for an exit status; any other status (or a signal) is a failed run.
    pub fn from_exit_code(code: i32) -> Option<Self> {
        match code {
            0 => Some(Self::Ok),
            1 => Some(Self::Warning),
            2 => Some(Self::Critical),
            3 => Some(Self::Unknown),
            _ => None,
        }
    }

    /// The name Nagios gives the state, for the flake's log.
    pub fn name(self) -> &'static str {
        match self {
            Self::Ok => "OK",
            Self::Warning => "WARNING",
            Self::Critical => "CRITICAL",
            Self::Unknown => "UNKNOWN",
        }
    }

    /// The value published as `NagiosState`: the exit status.
    pub fn value(self) -> f64 {
        match self {
            Self::Ok => 0.0,
            Self::Warning => 1.0,
            Self::Critical => 2.0,
            Self::Unknown => 3.0,
        }
    }
}

/// One plugin run, read.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginOutput {
    pub state: NagiosState,
    /// The first line of text (without its perfdata), for the log line.
    pub summary: String,
    /// One entry per perfdata item, then `NagiosState`; rejected items with their reasons.
    pub parsed: Parsed,
}

/// Reads a plugin run. `exit_code` is `None` when a signal ended the plugin.
///
/// Text that is not UTF-8 is read with replacement characters: plugins print whatever their
/// locale gives them, and the text only feeds the log line.
pub fn parse(stdout: &[u8], exit_code: Option<i32>, truncated: bool, rules: &EntryRules) -> Result<PluginOutput, Unreadable> {
    parse_capped(stdout, exit_code, truncated, rules, &mut SeriesCap::new(usize::MAX))
}

/// Like [`parse`], keeping only the entries of the series `cap` lets through as they are read.
pub fn parse_capped(
    stdout: &[u8],
    exit_code: Option<i32>,
    truncated: bool,
    rules: &EntryRules,
    cap: &mut SeriesCap,
) -> Result<PluginOutput, Unreadable> {
    let text = String::from_utf8_lossy(stdout);
    let summary = text.lines().next().map(|line| line.split('|').next().unwrap_or("").trim()).unwrap_or("").to_string();
    let said = if summary.is_empty() { "it printed nothing".to_string() } else { format!("it said {:?}", excerpt(&summary)) };
    let state = match exit_code {
        None => return Err(Unreadable(format!("the plugin was killed by a signal; {said}"))),
        Some(code) => NagiosState::from_exit_code(code).ok_or_else(|| {
            Unreadable(format!("exit status {code} is not a Nagios state (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN); {said}"))
        })?,
    };
    if truncated {
        return Err(Unreadable("output was cut short at the size limit, so its last perfdata item may be cut too".to_string()));
    }
    let mut parsed = Parsed::default();
    for line in perfdata_lines(&text) {
        for item in split_items(line) {
            match item.and_then(|item| entry(&item, rules)) {
                Ok(accepted) => parsed.keep(accepted, cap),
                Err(rejection) => parsed.rejections.push(rejection),
            }
        }
    }
    match rules.metric_name(STATE_METRIC) {
        Ok(name) => parsed.keep(Entry { name, value: state.value(), unit: Some("None"), dimensions: Vec::new() }, cap),
        Err(reason) => parsed.rejections.push(Rejection { entry: STATE_METRIC.to_string(), reason }),
    }
    cap.finish(&mut parsed.entries, |entry| entry);
    Ok(PluginOutput { state, summary, parsed })
}

/// The perfdata parts of the output: after the first line's `|`, then from the first `|` in the
/// long output to the end.
fn perfdata_lines(text: &str) -> Vec<&str> {
    let mut lines = text.lines();
    let mut perfdata = Vec::new();
    if let Some((_, first)) = lines.next().and_then(|line| line.split_once('|')) {
        perfdata.push(first);
    }
    let mut in_perfdata = false;
    for line in lines {
        if in_perfdata {
            perfdata.push(line);
        } else if let Some((_, rest)) = line.split_once('|') {
            in_perfdata = true;
            perfdata.push(rest);
        }
    }
    perfdata
}

/// One perfdata item as written: its label (unquoted) and what follows the `=`.
struct Item {
    written: String,
    label: String,
    data: String,
}

/// The items of one perfdata line, split on whitespace outside quoted labels.
fn split_items(line: &str) -> Vec<Result<Item, Rejection>> {
    let chars: Vec<char> = line.chars().collect();
    let mut items = Vec::new();
    let mut at = 0;
    while at < chars.len() {
        if chars[at].is_whitespace() {
            at += 1;
            continue;
        }
        let start = at;
        let mut label = String::new();
        if chars[at] == '\'' {
            at += 1;
            let mut closed = false;
            while at < chars.len() {
                if chars[at] == '\'' {
                    if chars.get(at + 1) == Some(&'\'') {
                        label.push('\'');
                        at += 2;
                        continue;
                    }
                    closed = true;
                    at += 1;
                    break;
                }
                label.push(chars[at]);
                at += 1;
            }
            if !closed {
                let written: String = chars[start..].iter().collect();
                items.push(Err(rejected(&written, "the quoted label has no closing quote")));
                break;
            }
            if chars.get(at) != Some(&'=') {
                let end = token_end(&chars, at);
                let written: String = chars[start..end].iter().collect();
                items.push(Err(rejected(&written, "the quoted label is not followed by '='")));
                at = end;
                continue;
            }
        } else {
            while at < chars.len() && chars[at] != '=' && !chars[at].is_whitespace() {
                label.push(chars[at]);
                at += 1;
            }
            if chars.get(at) != Some(&'=') {
                let written: String = chars[start..at].iter().collect();
                items.push(Err(rejected(&written, "is not a perfdata item: expected 'label'=value[UOM];warn;crit;min;max")));
                continue;
            }
        }
        let end = token_end(&chars, at);
        let data: String = chars[at + 1..end].iter().collect();
        let written: String = chars[start..end].iter().collect();
        items.push(Ok(Item { written, label, data }));
        at = end;
    }
    items
}

fn token_end(chars: &[char], from: usize) -> usize {
    chars[from..].iter().position(|c| c.is_whitespace()).map_or(chars.len(), |offset| from + offset)
}

fn rejected(written: &str, reason: &str) -> Rejection {
    Rejection { entry: format!("perfdata {:?}", excerpt(written)), reason: reason.to_string() }
}

/// `value[UOM];[warn];[crit];[min];[max]` under `label`, as an entry.
fn entry(item: &Item, rules: &EntryRules) -> Result<Entry, Rejection> {
    let fail = |reason: String| rejected(&item.written, &reason);
    if item.label.is_empty() {
        return Err(fail("the label is empty".to_string()));
    }
    let fields: Vec<&str> = item.data.split(';').collect();
    if fields.len() > 5 && fields[5..].iter().any(|field| !field.is_empty()) {
        return Err(fail(format!("has {} ';'-separated fields; perfdata has at most 5 (value;warn;crit;min;max)", fields.len())));
    }
    let value_field = fields[0];
    let number_length = decimal_prefix_length(value_field);
    if number_length == 0 {
        return Err(fail(match value_field {
            "" => "has no value after '='".to_string(),
            "U" => "the value is U: the plugin could not determine it".to_string(),
            other => format!("the value {:?} is not a number", excerpt(other)),
        }));
    }
    let (number, uom) = value_field.split_at(number_length);
    if uom.starts_with(|c: char| c.is_ascii_digit() || matches!(c, '.' | ',' | '+' | '-')) {
        return Err(fail(format!("the value {:?} is not a number (a decimal point is '.')", excerpt(value_field))));
    }
    for (field, what) in fields.iter().skip(1).zip(["warn", "crit"]) {
        if !field.is_empty() && !is_range(field) {
            return Err(fail(format!("the {what} threshold {:?} is not a range like 10, 10:, ~:10, 10:20 or @10:20", excerpt(field))));
        }
    }
    for (field, what) in fields.iter().skip(3).zip(["min", "max"]) {
        if !field.is_empty() && decimal_prefix_length(field) != field.len() {
            return Err(fail(format!("{what} {:?} is not a number", excerpt(field))));
        }
    }
    let value: f64 = number.parse().map_err(|_| fail(format!("the value {number:?} is not a number")))?;
    let value = rules.value(value).map_err(fail)?;
    let name = rules.metric_name(&item.label).map_err(fail)?;
    Ok(Entry { name, value, unit: unit_of(uom), dimensions: Vec::new() })
}

/// SPEC 8's UOM mapping; any other UOM means the flake's `flakeUnit`.
fn unit_of(uom: &str) -> Option<&'static str> {
    Some(match uom {
        "s" => "Seconds",
        "ms" => "Milliseconds",
        "us" => "Microseconds",
        "%" => "Percent",
        "B" => "Bytes",
        "KB" => "Kilobytes",
        "MB" => "Megabytes",
        "GB" => "Gigabytes",
        "TB" => "Terabytes",
        "c" => "Count",
        _ => return None,
    })
}

/// A Nagios threshold range: `[@][start:][end]`, start a number or `~`, either side empty.
fn is_range(text: &str) -> bool {
    let text = text.strip_prefix('@').unwrap_or(text);
    let is_number = |part: &str| !part.is_empty() && decimal_prefix_length(part) == part.len();
    match text.split_once(':') {
        Some((start, end)) => (start.is_empty() || start == "~" || is_number(start)) && (end.is_empty() || is_number(end)),
        None => is_number(text),
    }
}

/// The length of the decimal number `text` starts with: `[+-]? (digits [. digits?] | . digits)
/// ([eE] [+-]? digits)?`, or 0 when it starts with none.
fn decimal_prefix_length(text: &str) -> usize {
    let bytes = text.as_bytes();
    let digits_from = |from: usize| bytes[from.min(bytes.len())..].iter().take_while(|b| b.is_ascii_digit()).count();
    let mut at = usize::from(matches!(bytes.first(), Some(b'+' | b'-')));
    let integer = digits_from(at);
    at += integer;
    let mut fraction = 0;
    if bytes.get(at) == Some(&b'.') {
        fraction = digits_from(at + 1);
        if integer > 0 || fraction > 0 {
            at += 1 + fraction;
        }
    }
    if integer == 0 && fraction == 0 {
        return 0;
    }
    if matches!(bytes.get(at), Some(b'e' | b'E')) {
        let sign = usize::from(matches!(bytes.get(at + 1), Some(b'+' | b'-')));
        let exponent = digits_from(at + 1 + sign);
        if exponent > 0 {
            at += 1 + sign + exponent;
        }
    }
    at
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str, code: i32) -> PluginOutput {
        parse(text.as_bytes(), Some(code), false, &EntryRules::default()).unwrap()
    }

    fn values(output: &PluginOutput) -> Vec<(&str, f64, Option<&'static str>)> {
        output.parsed.entries.iter().map(|e| (e.name.as_str(), e.value, e.unit)).collect()
    }

    #[test]
    fn guideline_example_with_long_output() {
        let output = read(
            "DISK OK - free space: / 3326 MB (56%); | /=2643MB;5948;5958;0;5968\n\
             / 15272 MB (77%);\n\
             /boot 68 MB (69%);\n\
             /home 69357 MB (27%);\n\
             /var/log 819 MB (84%); | /boot=68MB;88;93;0;98\n\
             /home=69357MB;253404;253409;0;253414 \n\
             /var/log=818MB;970;975;0;980\n",
            0,
        );
        assert_eq!(output.state, NagiosState::Ok);
        assert_eq!(output.summary, "DISK OK - free space: / 3326 MB (56%);");
        assert_eq!(
            values(&output),
            [
                ("/", 2643.0, Some("Megabytes")),
                ("/boot", 68.0, Some("Megabytes")),
                ("/home", 69357.0, Some("Megabytes")),
                ("/var/log", 818.0, Some("Megabytes")),
                ("NagiosState", 0.0, Some("None")),
            ]
        );
        assert!(output.parsed.rejections.is_empty());
    }

    #[test]
    fn quoted_labels_empty_fields_and_every_uom() {
        let output = read(
            "OK | 'my label'=1s 'it''s'=2ms a=3us;;;; b=4%;1;2 c=5B d=6KB e=7MB f=8GB g=9TB h=10c i=11 j=12req/s k=-1.5e2;@1:2;~:3;0;100",
            1,
        );
        assert_eq!(output.state, NagiosState::Warning);
        assert_eq!(
            values(&output),
            [
                ("my label", 1.0, Some("Seconds")),
                ("it's", 2.0, Some("Milliseconds")),
                ("a", 3.0, Some("Microseconds")),
                ("b", 4.0, Some("Percent")),
                ("c", 5.0, Some("Bytes")),
                ("d", 6.0, Some("Kilobytes")),
                ("e", 7.0, Some("Megabytes")),
                ("f", 8.0, Some("Gigabytes")),
                ("g", 9.0, Some("Terabytes")),
                ("h", 10.0, Some("Count")),
                ("i", 11.0, None),
                ("j", 12.0, None),
                ("k", -150.0, None),
                ("NagiosState", 1.0, Some("None")),
            ]
        );
        assert!(output.parsed.rejections.is_empty(), "{:?}", output.parsed.rejections);
    }

    #[test]
    fn bad_items_are_rejected_alone() {
        let output = read("WARN | good=1 =2 bad=x worse=U comma=1,5 six=1;2;3;4;5;6 thr=1;abc min=1;;;z 'open=3 tail=4", 1);
        assert_eq!(values(&output), [("good", 1.0, None), ("NagiosState", 1.0, Some("None"))]);
        let reasons: Vec<_> = output.parsed.rejections.iter().map(|r| (r.entry.as_str(), r.reason.as_str())).collect();
        assert_eq!(
            reasons,
            [
                ("perfdata \"=2\"", "the label is empty"),
                ("perfdata \"bad=x\"", "the value \"x\" is not a number"),
                ("perfdata \"worse=U\"", "the value is U: the plugin could not determine it"),
                ("perfdata \"comma=1,5\"", "the value \"1,5\" is not a number (a decimal point is '.')"),
                ("perfdata \"six=1;2;3;4;5;6\"", "has 6 ';'-separated fields; perfdata has at most 5 (value;warn;crit;min;max)"),
                ("perfdata \"thr=1;abc\"", "the warn threshold \"abc\" is not a range like 10, 10:, ~:10, 10:20 or @10:20"),
                ("perfdata \"min=1;;;z\"", "min \"z\" is not a number"),
                ("perfdata \"'open=3 tail=4\"", "the quoted label has no closing quote"),
            ]
        );
    }

    #[test]
    fn stray_words_in_perfdata_are_rejected_alone() {
        let output = read("OK | load=1 and some words\n", 0);
        assert_eq!(values(&output)[0], ("load", 1.0, None));
        assert_eq!(output.parsed.rejections.len(), 3);
        assert!(output.parsed.rejections.iter().all(|r| r.reason.starts_with("is not a perfdata item")));
    }

    #[test]
    fn exit_states_and_failures() {
        for (code, state) in [(0, NagiosState::Ok), (1, NagiosState::Warning), (2, NagiosState::Critical), (3, NagiosState::Unknown)] {
            let output = read("text", code);
            assert_eq!(output.state, state);
            assert_eq!(values(&output), [("NagiosState", f64::from(code), Some("None"))]);
        }
        let error = parse(b"oops | a=1", Some(4), false, &EntryRules::default()).unwrap_err();
        assert!(error.0.contains("exit status 4 is not a Nagios state") && error.0.contains("\"oops\""), "{error}");
        let error = parse(b"", None, false, &EntryRules::default()).unwrap_err();
        assert!(error.0.contains("killed by a signal; it printed nothing"), "{error}");
        let error = parse(b"OK | a=1", Some(0), true, &EntryRules::default()).unwrap_err();
        assert!(error.0.contains("cut short"), "{error}");
    }

    #[test]
    fn the_prefix_applies_to_labels_and_the_state() {
        let rules = EntryRules { metric_prefix: "nagios.".into(), flake_dimensions: 0 };
        let output = parse(b"OK | users=3", Some(0), false, &rules).unwrap();
        let names: Vec<_> = output.parsed.entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["nagios.users", "nagios.NagiosState"]);
    }

    #[test]
    fn decimal_prefixes() {
        for (text, length) in
            [("12", 2), ("1.5MB", 3), (".5", 2), ("-3e2s", 4), ("1e", 1), ("+", 0), (".", 0), ("U", 0), ("5.", 2), ("1.2.3", 3)]
        {
            assert_eq!(decimal_prefix_length(text), length, "{text}");
        }
    }
}
