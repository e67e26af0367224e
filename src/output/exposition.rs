//! One line of Prometheus text exposition (format 0.0.4) or OpenMetrics text, tokenised.
//!
//! Both formats share the line grammar: `# HELP`, `# TYPE`, OpenMetrics' `# UNIT` and `# EOF`,
//! other comments, and samples `name{label="value",...} value [timestamp]`, where OpenMetrics may
//! append an exemplar after ` # `. Label values use the escapes `\\`, `\"` and `\n` (any other
//! backslash is kept as written, as the Prometheus server reads it). A line that
//! breaks the grammar is an error for that line alone; what the samples mean is
//! [`super::prometheus`]'s business.

/// A line, read.
#[derive(Debug, Clone, PartialEq)]
pub enum Line<'a> {
    /// Empty, `# HELP`, `# UNIT` or any other comment: nothing to act on.
    Ignored,
    /// `# TYPE family type`.
    Type {
        family: &'a str,
        kind: &'a str,
    },
    /// OpenMetrics' `# EOF`: the exposition ends here.
    Eof,
    Sample(Sample<'a>),
}

/// A sample line's parts; the timestamp and any exemplar are read and dropped (a datapoint's
/// timestamp is the flake's scheduled time, SPEC 2.2).
#[derive(Debug, Clone, PartialEq)]
pub struct Sample<'a> {
    pub name: &'a str,
    /// Label pairs in the order written, values unescaped.
    pub labels: Vec<(&'a str, String)>,
    pub value: f64,
}

/// Reads one line (without its line break).
pub fn parse_line(line: &str) -> Result<Line<'_>, String> {
    let line = line.trim_end_matches('\r');
    let trimmed = line.trim_start_matches([' ', '\t']);
    if trimmed.trim_end().is_empty() {
        return Ok(Line::Ignored);
    }
    if let Some(comment) = trimmed.strip_prefix('#') {
        return comment_line(comment);
    }
    sample_line(trimmed).map(Line::Sample)
}

fn comment_line(comment: &str) -> Result<Line<'_>, String> {
    let mut words = comment.split_ascii_whitespace();
    match words.next() {
        Some("TYPE") => {
            let (Some(family), Some(kind)) = (words.next(), words.next()) else {
                return Err("a # TYPE line needs a metric name and a type".to_string());
            };
            if !is_metric_name(family) {
                return Err(format!("# TYPE names {family:?}, which is not a metric name"));
            }
            Ok(Line::Type { family, kind })
        }
        Some("EOF") if comment.trim() == "EOF" => Ok(Line::Eof),
        _ => Ok(Line::Ignored),
    }
}

fn sample_line(line: &str) -> Result<Sample<'_>, String> {
    let name_length = line.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':')).unwrap_or(line.len());
    let name = &line[..name_length];
    if !is_metric_name(name) {
        return Err(if name.is_empty() {
            format!("a sample must start with a metric name, not {:?}", line.chars().next().unwrap_or(' '))
        } else {
            format!("{name:?} is not a metric name (it must not start with a digit)")
        });
    }
    let mut rest = &line[name_length..];
    let mut labels = Vec::new();
    if let Some(inside) = rest.strip_prefix('{') {
        rest = read_labels(inside, &mut labels)?;
    }
    let mut fields = rest.split([' ', '\t']).filter(|field| !field.is_empty());
    let Some(value_text) = fields.next() else {
        return Err(format!("sample {name} has no value"));
    };
    let value = parse_float(value_text).ok_or_else(|| format!("the value {value_text:?} of {name} is not a number"))?;
    match fields.next() {
        None | Some("#") => {}
        Some(timestamp) => {
            if parse_float(timestamp).is_none_or(|stamp| !stamp.is_finite()) {
                return Err(format!("the timestamp {timestamp:?} of {name} is not a number"));
            }
            match fields.next() {
                None | Some("#") => {}
                Some(extra) => return Err(format!("unexpected {extra:?} after the timestamp of {name}")),
            }
        }
    }
    Ok(Sample { name, labels, value })
}

/// Reads `name="value",...}` into `labels`; returns what follows the closing brace.
fn read_labels<'a>(mut text: &'a str, labels: &mut Vec<(&'a str, String)>) -> Result<&'a str, String> {
    loop {
        text = text.trim_start_matches([' ', '\t']);
        if let Some(rest) = text.strip_prefix('}') {
            return Ok(rest);
        }
        let name_length = text.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(text.len());
        let label = &text[..name_length];
        if label.is_empty() || label.starts_with(|c: char| c.is_ascii_digit()) {
            return Err(if text.is_empty() {
                "the label set has no closing '}'".to_string()
            } else {
                format!("expected a label name at {:?}", text.chars().take(20).collect::<String>())
            });
        }
        text = text[name_length..].trim_start_matches([' ', '\t']);
        text = text.strip_prefix('=').ok_or_else(|| format!("label {label} has no '='"))?;
        text = text.trim_start_matches([' ', '\t']);
        text = text.strip_prefix('"').ok_or_else(|| format!("the value of label {label} is not in double quotes"))?;
        let (value, rest) = read_quoted(text).map_err(|reason| format!("the value of label {label} {reason}"))?;
        if labels.iter().any(|(seen, _)| *seen == label) {
            return Err(format!("label {label} is given twice"));
        }
        labels.push((label, value));
        text = rest.trim_start_matches([' ', '\t']);
        if let Some(rest) = text.strip_prefix(',') {
            text = rest;
        } else if !text.starts_with('}') {
            return Err(format!("expected ',' or '}}' after label {label}"));
        }
    }
}

/// The unescaped text up to the closing quote, and what follows it.
fn read_quoted(text: &str) -> Result<(String, &str), &'static str> {
    let mut value = String::new();
    let mut chars = text.char_indices();
    while let Some((at, c)) = chars.next() {
        match c {
            '"' => return Ok((value, &text[at + 1..])),
            '\\' => match chars.next() {
                Some((_, '\\')) => value.push('\\'),
                Some((_, '"')) => value.push('"'),
                Some((_, 'n')) => value.push('\n'),
                Some((_, other)) => {
                    value.push('\\');
                    value.push(other);
                }
                None => break,
            },
            other => value.push(other),
        }
    }
    Err("has no closing quote")
}

/// Go's float syntax as the exposition formats use it: decimals, exponents, `NaN`, `+Inf`, `-Inf`.
fn parse_float(text: &str) -> Option<f64> {
    match text {
        "NaN" | "nan" => Some(f64::NAN),
        "+Inf" | "Inf" | "+inf" | "inf" => Some(f64::INFINITY),
        "-Inf" | "-inf" => Some(f64::NEG_INFINITY),
        _ if text.starts_with(|c: char| c.is_ascii_digit() || matches!(c, '+' | '-' | '.')) => {
            let value: f64 = text.parse().ok()?;
            // Rust also reads "infinity" and "nan" after a sign; the formats do not have them.
            text.bytes().any(|b| b.is_ascii_digit()).then_some(value)
        }
        _ => None,
    }
}

/// `[a-zA-Z_][a-zA-Z0-9_]*`: what `flakeMetrics.labels` may name.
pub fn is_label_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `[a-zA-Z_:][a-zA-Z0-9_:]*`
pub fn is_metric_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(line: &str) -> Sample<'_> {
        match parse_line(line) {
            Ok(Line::Sample(sample)) => sample,
            other => panic!("{line:?}: {other:?}"),
        }
    }

    #[test]
    fn samples_with_labels_escapes_timestamps_and_exemplars() {
        let read = sample(r#"http_requests_total{method="post",path="/say \"hi\"\\now\n",} 1027 1395066363000"#);
        assert_eq!(read.name, "http_requests_total");
        assert_eq!(read.labels, [("method", "post".to_string()), ("path", "/say \"hi\"\\now\n".to_string())]);
        assert_eq!(read.value, 1027.0);
        let read = sample(r#"foo_total{a="1"} 17.0 1520879607.789 # {trace_id="oHg5SJYRHA0"} 9.8 1520879607.789"#);
        assert_eq!(read.value, 17.0);
        let read = sample(r#"foo_total 4096.0 # {trace_id="abc"} 4096.0"#);
        assert_eq!(read.value, 4096.0);
        let read = sample("  metric_without_labels\t12.47e1 ");
        assert_eq!((read.labels.len(), read.value), (0, 124.7));
        assert!(sample("x NaN").value.is_nan());
        assert_eq!(sample("x +Inf").value, f64::INFINITY);
        assert_eq!(sample("x -Inf").value, f64::NEG_INFINITY);
        assert_eq!(sample(r#"x{le="+Inf"} 3"#).labels[0].1, "+Inf");
        assert_eq!(sample("x{} 3").labels.len(), 0);
        assert_eq!(sample(r#"x{ a = "1" , b="{,}" } 3"#).labels, [("a", "1".to_string()), ("b", "{,}".to_string())]);
    }

    #[test]
    fn comments_types_and_eof() {
        assert_eq!(parse_line("# TYPE foo counter"), Ok(Line::Type { family: "foo", kind: "counter" }));
        assert_eq!(parse_line("# HELP foo Some {text} here"), Ok(Line::Ignored));
        assert_eq!(parse_line("# UNIT foo seconds"), Ok(Line::Ignored));
        assert_eq!(parse_line("# just a comment"), Ok(Line::Ignored));
        assert_eq!(parse_line("# EOF"), Ok(Line::Eof));
        assert_eq!(parse_line(""), Ok(Line::Ignored));
        assert_eq!(parse_line("\r"), Ok(Line::Ignored));
    }

    #[test]
    fn broken_lines_say_why() {
        for (line, reason) in [
            ("# TYPE foo", "needs a metric name and a type"),
            ("# TYPE 1foo gauge", "not a metric name"),
            ("1abc 3", "not a metric name"),
            ("{a=\"1\"} 3", "must start with a metric name"),
            ("foo", "has no value"),
            ("foo abc", "is not a number"),
            ("foo infinity", "is not a number"),
            ("foo 1,5", "is not a number"),
            ("foo{a=\"1\" 3", "expected ',' or '}'"),
            ("foo{a=\"1} 3", "has no closing quote"),
            ("foo{a=1} 3", "not in double quotes"),
            ("foo{a} 3", "has no '='"),
            ("foo{a=\"1\",a=\"2\"} 3", "given twice"),
            ("foo{", "no closing '}'"),
            ("foo 3 abc", "timestamp \"abc\""),
            ("foo 3 123 extra", "unexpected \"extra\""),
        ] {
            let error = parse_line(line).unwrap_err();
            assert!(error.contains(reason), "{line:?}: {error}");
        }
    }
}
