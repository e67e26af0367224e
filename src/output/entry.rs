//! The common result of every multi-metric output format: entries (each one future datapoint),
//! the entries rejected with why, and the checks every entry must pass to be publishable.

use super::number::LIMIT;

/// CloudWatch's limit on dimensions per datum, `flakeDimensions` included.
pub const MAX_DIMENSIONS: usize = 30;
/// CloudWatch's limit on metric and dimension names, in characters.
pub const MAX_NAME_CHARS: usize = 255;
/// CloudWatch's limit on dimension values, in characters.
pub const MAX_DIMENSION_VALUE_CHARS: usize = 1024;
/// How much of an offending input a reason quotes, so one bad line cannot flood the flake's log.
const EXCERPT_CHARS: usize = 80;

/// One dimension of an entry, in the order the output gave it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Dimension {
    pub name: String,
    pub value: String,
}

impl Dimension {
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self { name: name.into(), value: value.into() }
    }
}

/// One value for one metric: what the publish path turns into a datapoint.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The metric name as published: `flakeMetricPrefix`, then the entry's own name.
    pub name: String,
    pub value: f64,
    /// A CloudWatch unit in its canonical spelling; `None` means "use the flake's `flakeUnit`".
    pub unit: Option<&'static str>,
    /// The entry's own dimensions; the flake's `flakeDimensions` go before them.
    pub dimensions: Vec<Dimension>,
}

/// An entry that cannot be published, and why. Only this entry is lost; the run is `partial`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// Which entry, as the flake's log should name it (`entry 3`, `line 12`, `perfdata 'load1=x'`).
    pub entry: String,
    pub reason: String,
}

/// Most rejected entries kept with their reasons; the rest are only counted. A log lists
/// [`crate::flakelog::LOGGED_REJECTIONS`] of them, and an output of millions of bad lines must
/// not cost memory in proportion (issue 22).
pub const KEPT_REJECTIONS: usize = 20;

/// The entries one output rejected: the first [`KEPT_REJECTIONS`] with why, and how many in all.
/// It reads as the slice of those kept; [`Rejections::total`] counts every one.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Rejections {
    kept: Vec<Rejection>,
    total: usize,
}

impl Rejections {
    /// Counts `rejection`, and keeps it if fewer than [`KEPT_REJECTIONS`] are kept.
    pub fn push(&mut self, rejection: Rejection) {
        self.total += 1;
        if self.kept.len() < KEPT_REJECTIONS {
            self.kept.push(rejection);
        }
    }

    /// How many entries were rejected, kept or not.
    pub fn total(&self) -> usize {
        self.total
    }
}

impl std::ops::Deref for Rejections {
    type Target = [Rejection];

    fn deref(&self) -> &[Rejection] {
        &self.kept
    }
}

/// Everything one run's output yielded.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Parsed {
    pub entries: Vec<Entry>,
    pub rejections: Rejections,
}

impl Parsed {
    /// Adds `entry` if `cap` lets its series through (dropping those of series it evicts).
    pub fn keep(&mut self, entry: Entry, cap: &mut super::series_guard::SeriesCap) {
        if cap.admit(&entry) {
            self.entries.push(entry);
            cap.prune(&mut self.entries, |entry| entry);
        }
    }
}

/// Output that cannot be read at all: the whole run failed, nothing is published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreadable(pub String);

impl std::fmt::Display for Unreadable {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(&self.0)
    }
}

impl std::error::Error for Unreadable {}

/// What a flake adds to every entry, and so what every entry is checked against.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EntryRules {
    /// `flakeMetricPrefix`, prepended as is.
    pub metric_prefix: String,
    /// How many `flakeDimensions` the flake sets; an entry may add `30 - flake_dimensions`.
    pub flake_dimensions: usize,
}

impl EntryRules {
    /// The published name for `name`, or why CloudWatch would refuse it.
    pub fn metric_name(&self, name: &str) -> Result<String, String> {
        if name.trim().is_empty() {
            return Err("the metric name is empty".to_string());
        }
        let full = format!("{}{name}", self.metric_prefix);
        let chars = full.chars().count();
        if chars > MAX_NAME_CHARS {
            return Err(format!(
                "the metric name{} is {chars} characters; CloudWatch allows {MAX_NAME_CHARS}",
                if self.metric_prefix.is_empty() { "" } else { " with flakeMetricPrefix" }
            ));
        }
        Ok(full)
    }

    /// `value` if CloudWatch accepts it (SPEC 2.2's range).
    pub fn value(&self, value: f64) -> Result<f64, String> {
        if value.is_finite() && value.abs() <= LIMIT {
            Ok(value)
        } else {
            Err(format!("the value {value:e} is outside CloudWatch's range of -2^360 to 2^360"))
        }
    }

    /// Why CloudWatch would refuse `dimensions` beside the flake's own, if it would.
    pub fn dimensions(&self, dimensions: &[Dimension]) -> Result<(), String> {
        let total = self.flake_dimensions + dimensions.len();
        if total > MAX_DIMENSIONS {
            return Err(format!(
                "{total} dimensions ({} of the flake, {} of the entry); CloudWatch allows {MAX_DIMENSIONS}",
                self.flake_dimensions,
                dimensions.len()
            ));
        }
        for dimension in dimensions {
            check_dimension_text("the dimension name", &dimension.name, MAX_NAME_CHARS)?;
            if dimension.name.starts_with(':') {
                return Err(format!("dimension name {:?} starts with ':', which CloudWatch refuses", excerpt(&dimension.name)));
            }
            let what = format!("the value of dimension {:?}", excerpt(&dimension.name));
            check_dimension_text(&what, &dimension.value, MAX_DIMENSION_VALUE_CHARS)?;
        }
        Ok(())
    }
}

/// CloudWatch wants dimension text non-blank, ASCII, without control characters, and short.
fn check_dimension_text(what: &str, text: &str, max_chars: usize) -> Result<(), String> {
    if text.trim().is_empty() {
        return Err(format!("{what} is empty; CloudWatch needs at least one non-blank character"));
    }
    if let Some(bad) = text.chars().find(|c| !c.is_ascii() || c.is_ascii_control()) {
        return Err(format!("{what} ({:?}) holds {bad:?}; CloudWatch accepts only printable ASCII there", excerpt(text)));
    }
    let chars = text.chars().count();
    if chars > max_chars {
        return Err(format!("{what} is {chars} characters; CloudWatch allows {max_chars}"));
    }
    Ok(())
}

/// `text` cut to a length fit for a log line, marked when cut.
pub(crate) fn excerpt(text: &str) -> String {
    if text.chars().count() <= EXCERPT_CHARS {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(EXCERPT_CHARS).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(prefix: &str, flake_dimensions: usize) -> EntryRules {
        EntryRules { metric_prefix: prefix.to_string(), flake_dimensions }
    }

    #[test]
    fn names_take_the_prefix_and_count_it_in_the_limit() {
        assert_eq!(rules("web.", 0).metric_name("requests"), Ok("web.requests".to_string()));
        assert!(rules("", 0).metric_name(&"n".repeat(255)).is_ok());
        let error = rules("", 0).metric_name(&"n".repeat(256)).unwrap_err();
        assert!(error.contains("256 characters"), "{error}");
        let error = rules("pre.", 0).metric_name(&"n".repeat(252)).unwrap_err();
        assert!(error.contains("with flakeMetricPrefix is 256"), "{error}");
        assert!(rules("", 0).metric_name(" ").unwrap_err().contains("empty"));
    }

    #[test]
    fn values_keep_cloudwatchs_range() {
        assert_eq!(rules("", 0).value(2f64.powi(360)), Ok(2f64.powi(360)));
        assert!(rules("", 0).value(-2f64.powi(361)).unwrap_err().contains("outside CloudWatch's range"));
        assert!(rules("", 0).value(f64::NAN).is_err());
        assert!(rules("", 0).value(f64::INFINITY).is_err());
    }

    #[test]
    fn dimensions_count_the_flakes_own() {
        let thirty: Vec<Dimension> = (0..30).map(|i| Dimension::new(format!("d{i}"), "v")).collect();
        assert!(rules("", 0).dimensions(&thirty).is_ok());
        let error = rules("", 1).dimensions(&thirty).unwrap_err();
        assert!(error.contains("31 dimensions (1 of the flake, 30 of the entry)"), "{error}");
    }

    #[test]
    fn dimension_text_is_what_cloudwatch_accepts() {
        let check = |name: &str, value: &str| rules("", 0).dimensions(&[Dimension::new(name, value)]);
        assert!(check("host", "web-1").is_ok());
        assert!(check("host", "").unwrap_err().contains("is empty"));
        assert!(check("", "x").unwrap_err().contains("dimension name is empty"));
        assert!(check(":host", "x").unwrap_err().contains("starts with ':'"));
        assert!(check("room", "line\nbreak").unwrap_err().contains("printable ASCII"));
        assert!(check("city", "Zürich").unwrap_err().contains("printable ASCII"));
        assert!(check("k", &"v".repeat(1025)).unwrap_err().contains("1025 characters"));
        assert!(check("k", &"v".repeat(1024)).is_ok());
    }

    #[test]
    fn excerpts_are_cut_and_marked() {
        assert_eq!(excerpt("short"), "short");
        let cut = excerpt(&"x".repeat(200));
        assert_eq!(cut.chars().count(), 81);
        assert!(cut.ends_with('…'));
    }
}
