//! One parsed crontab pattern per distinct text, shared by every flake that uses it.
//!
//! croner keeps a bitfield per possible value of each field, the year field's alone taking about
//! 5 KB, whether or not the pattern uses years; 10,000 flakes on `* * * * *` held 50 MB of
//! identical copies. Patterns are kept by weak reference, so a pattern no flake uses any more
//! is freed with its last flake.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use croner::Cron;

static PATTERNS: Mutex<Option<HashMap<String, Weak<Cron>>>> = Mutex::new(None);

/// The shared parse of `expression`, made by `parse` if no live flake holds one yet.
pub fn shared_pattern<E>(expression: &str, parse: impl FnOnce() -> Result<Cron, E>) -> Result<Arc<Cron>, E> {
    let mut guard = PATTERNS.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let patterns = guard.get_or_insert_with(HashMap::new);
    if let Some(cron) = patterns.get(expression).and_then(Weak::upgrade) {
        return Ok(cron);
    }
    let cron = Arc::new(parse()?);
    // Dead entries are swept when the map would grow, so it stays as large as the live set.
    if patterns.len() == patterns.capacity() {
        patterns.retain(|_, pattern| pattern.strong_count() > 0);
    }
    patterns.insert(expression.to_string(), Arc::downgrade(&cron));
    Ok(cron)
}

#[cfg(test)]
mod tests {
    use super::*;
    use croner::parser::CronParser;

    fn parse(text: &str) -> Result<Cron, croner::errors::CronError> {
        CronParser::builder().build().parse(text)
    }

    #[test]
    fn the_same_text_shares_one_parse_while_it_is_used() {
        let first = shared_pattern("7 * * * *", || parse("7 * * * *")).unwrap();
        let second = shared_pattern("7 * * * *", || -> Result<Cron, croner::errors::CronError> { panic!("parsed twice") }).unwrap();
        assert!(Arc::ptr_eq(&first, &second));
        let other = shared_pattern("8 * * * *", || parse("8 * * * *")).unwrap();
        assert!(!Arc::ptr_eq(&first, &other));
    }

    #[test]
    fn a_pattern_nobody_holds_is_parsed_again() {
        let weak = Arc::downgrade(&shared_pattern("9 9 * * *", || parse("9 9 * * *")).unwrap());
        assert!(weak.upgrade().is_none(), "the cache alone keeps nothing alive");
        let mut parsed = false;
        shared_pattern("9 9 * * *", || {
            parsed = true;
            parse("9 9 * * *")
        })
        .unwrap();
        assert!(parsed);
    }
}
