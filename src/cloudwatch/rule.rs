//! CloudWatch's composite-alarm rule language (`ALARM(x) AND NOT OK("y")`): parsed to a tree so a
//! flake's bare alarm names can be resolved to full names, the names a rule depends on are known
//! (creation and deletion order, cycles), and the text sent is one canonical spelling that reads
//! back unchanged.
//!
//! Grammar: `TRUE`, `FALSE`, `ALARM(name)`, `OK(name)`, `INSUFFICIENT_DATA(name)`, `NOT`, `AND`,
//! `OR` and parentheses; a name is bare or in double quotes. Mixing `AND` and `OR` without
//! parentheses is refused: which binds tighter is easy to get wrong, and a rule that means
//! something else than its author thought silences the wrong alarms.

use std::fmt;

/// The state a rule asks an alarm to be in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlarmState {
    Alarm,
    Ok,
    InsufficientData,
}

impl AlarmState {
    fn keyword(self) -> &'static str {
        match self {
            AlarmState::Alarm => "ALARM",
            AlarmState::Ok => "OK",
            AlarmState::InsufficientData => "INSUFFICIENT_DATA",
        }
    }
}

/// A parsed rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    Constant(bool),
    State(AlarmState, String),
    Not(Box<Rule>),
    And(Vec<Rule>),
    Or(Vec<Rule>),
}

impl Rule {
    /// The longest rule text CloudWatch accepts (`AlarmRule`, in characters).
    pub const MAX_TEXT: usize = 10_240;
    /// The deepest nesting of parentheses and `NOT` a rule may have. CloudWatch documents no
    /// limit; a rule of 100 alarms (its documented maximum) reads well far below this, and the
    /// parser and every walk of the tree recurse once per level, so the bound keeps them far
    /// from the end of any thread's stack.
    pub const MAX_DEPTH: usize = 100;

    /// Parses a rule, or says where and why it does not parse. The size is checked before
    /// anything is read and the nesting depth as the parser descends, so no rule, however
    /// hostile, can overflow the stack.
    pub fn parse(text: &str) -> Result<Rule, String> {
        if text.len() > Rule::MAX_TEXT {
            return Err(format!("the rule is {} characters; CloudWatch allows {}", text.len(), Rule::MAX_TEXT));
        }
        let tokens = tokenize(text)?;
        let mut parser = Parser { tokens, position: 0, depth: 0 };
        let rule = parser.expression()?;
        match parser.tokens.get(parser.position) {
            None => Ok(rule),
            Some(token) => Err(format!("unexpected {} after a complete rule", token.describe())),
        }
    }

    /// Every alarm name the rule refers to, in order of appearance, repeats included.
    pub fn names(&self) -> Vec<&str> {
        let mut names = Vec::new();
        self.collect(&mut names);
        names
    }

    fn collect<'a>(&'a self, names: &mut Vec<&'a str>) {
        match self {
            Rule::Constant(_) => {}
            Rule::State(_, name) => names.push(name),
            Rule::Not(inner) => inner.collect(names),
            Rule::And(parts) | Rule::Or(parts) => parts.iter().for_each(|part| part.collect(names)),
        }
    }

    /// The same rule with every alarm name replaced by `rename(name)`.
    pub fn rename(&self, rename: &dyn Fn(&str) -> String) -> Rule {
        match self {
            Rule::Constant(value) => Rule::Constant(*value),
            Rule::State(state, name) => Rule::State(*state, rename(name)),
            Rule::Not(inner) => Rule::Not(Box::new(inner.rename(rename))),
            Rule::And(parts) => Rule::And(parts.iter().map(|part| part.rename(rename)).collect()),
            Rule::Or(parts) => Rule::Or(parts.iter().map(|part| part.rename(rename)).collect()),
        }
    }

    fn write_operand(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rule::And(_) | Rule::Or(_) => write!(f, "({self})"),
            _ => write!(f, "{self}"),
        }
    }
}

/// The canonical spelling: names always quoted, one space around operators, parentheses only
/// around a nested `AND`/`OR`.
impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rule::Constant(true) => f.write_str("TRUE"),
            Rule::Constant(false) => f.write_str("FALSE"),
            Rule::State(state, name) => write!(f, "{}(\"{name}\")", state.keyword()),
            Rule::Not(inner) => {
                f.write_str("NOT ")?;
                inner.write_operand(f)
            }
            Rule::And(parts) | Rule::Or(parts) => {
                let operator = if matches!(self, Rule::And(_)) { " AND " } else { " OR " };
                for (index, part) in parts.iter().enumerate() {
                    if index > 0 {
                        f.write_str(operator)?;
                    }
                    part.write_operand(f)?;
                }
                Ok(())
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Open,
    Close,
    Word(String),
    Quoted(String),
}

impl Token {
    fn describe(&self) -> String {
        match self {
            Token::Open => "\"(\"".to_string(),
            Token::Close => "\")\"".to_string(),
            Token::Word(word) => format!("\"{word}\""),
            Token::Quoted(text) => format!("\"\\\"{text}\\\"\""),
        }
    }
}

fn tokenize(text: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '(' => {
                chars.next();
                tokens.push(Token::Open);
            }
            ')' => {
                chars.next();
                tokens.push(Token::Close);
            }
            '"' => {
                chars.next();
                let mut quoted = String::new();
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some(c) => quoted.push(c),
                        None => return Err("a quoted alarm name is never closed with \"".to_string()),
                    }
                }
                tokens.push(Token::Quoted(quoted));
            }
            _ => {
                let mut word = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_whitespace() || c == '(' || c == ')' || c == '"' {
                        break;
                    }
                    word.push(c);
                    chars.next();
                }
                tokens.push(Token::Word(word));
            }
        }
    }
    Ok(tokens)
}

struct Parser {
    tokens: Vec<Token>,
    position: usize,
    /// How many parentheses and `NOT`s enclose the operand being read.
    depth: usize,
}

impl Parser {
    fn peek_word(&self) -> Option<&str> {
        match self.tokens.get(self.position) {
            Some(Token::Word(word)) => Some(word),
            _ => None,
        }
    }

    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.position).cloned();
        self.position += 1;
        token
    }

    /// Operands joined by one kind of operator; a second kind needs parentheses.
    fn expression(&mut self) -> Result<Rule, String> {
        let first = self.unary()?;
        let mut operator: Option<String> = None;
        let mut parts = vec![first];
        while let Some(word) = self.peek_word().map(str::to_ascii_uppercase) {
            if word != "AND" && word != "OR" {
                break;
            }
            if let Some(previous) = &operator
                && *previous != word
            {
                return Err(format!("{previous} and {word} are mixed without parentheses; write e.g. (A {previous} B) {word} C"));
            }
            operator = Some(word);
            self.position += 1;
            parts.push(self.unary()?);
        }
        Ok(match operator.as_deref() {
            None => parts.pop().expect("one operand"),
            Some("AND") => Rule::And(flatten(parts, true)),
            _ => Rule::Or(flatten(parts, false)),
        })
    }

    /// One level deeper, or an error before the recursion goes further than [`Rule::MAX_DEPTH`].
    fn descend(&mut self) -> Result<(), String> {
        self.depth += 1;
        match self.depth > Rule::MAX_DEPTH {
            true => Err(format!("the rule nests parentheses and NOT more than {} levels deep; flatten it", Rule::MAX_DEPTH)),
            false => Ok(()),
        }
    }

    fn unary(&mut self) -> Result<Rule, String> {
        match self.next() {
            None => Err("the rule ends where an alarm state, TRUE, FALSE, NOT or \"(\" was expected".to_string()),
            Some(Token::Open) => {
                self.descend()?;
                let inner = self.expression()?;
                self.depth -= 1;
                match self.next() {
                    Some(Token::Close) => Ok(inner),
                    _ => Err("a \"(\" is never closed".to_string()),
                }
            }
            Some(Token::Word(word)) => match word.to_ascii_uppercase().as_str() {
                "TRUE" => Ok(Rule::Constant(true)),
                "FALSE" => Ok(Rule::Constant(false)),
                "NOT" => {
                    self.descend()?;
                    let inner = self.unary()?;
                    self.depth -= 1;
                    Ok(Rule::Not(Box::new(inner)))
                }
                "ALARM" => self.state(AlarmState::Alarm),
                "OK" => self.state(AlarmState::Ok),
                "INSUFFICIENT_DATA" => self.state(AlarmState::InsufficientData),
                _ => Err(format!(
                    "\"{word}\" is not part of a rule; use ALARM(name), OK(name), INSUFFICIENT_DATA(name), TRUE, FALSE, AND, OR, NOT"
                )),
            },
            Some(token) => Err(format!("unexpected {}", token.describe())),
        }
    }

    fn state(&mut self, state: AlarmState) -> Result<Rule, String> {
        let keyword = state.keyword();
        if self.next() != Some(Token::Open) {
            return Err(format!("{keyword} must be followed by (alarm name)"));
        }
        let name = match self.next() {
            Some(Token::Word(name) | Token::Quoted(name)) if !name.trim().is_empty() => name.trim().to_string(),
            _ => return Err(format!("{keyword}(...) needs one alarm name")),
        };
        if self.next() != Some(Token::Close) {
            return Err(format!("{keyword}({name} is not closed with \")\"; quote names that hold spaces"));
        }
        Ok(Rule::State(state, name))
    }
}

/// `(a AND b) AND c` is `a AND b AND c`: one spelling for one meaning.
fn flatten(parts: Vec<Rule>, and: bool) -> Vec<Rule> {
    let mut flat = Vec::new();
    for part in parts {
        match part {
            Rule::And(inner) if and => flat.extend(inner),
            Rule::Or(inner) if !and => flat.extend(inner),
            other => flat.push(other),
        }
    }
    flat
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_canonically() {
        let rule = Rule::parse("alarm(cpu)  and not ALARM(\"maintenance window\")").unwrap();
        assert_eq!(rule.to_string(), "ALARM(\"cpu\") AND NOT ALARM(\"maintenance window\")");
        assert_eq!(rule.names(), ["cpu", "maintenance window"]);
        let nested = Rule::parse("(ALARM(a) OR OK(b)) AND (INSUFFICIENT_DATA(c) AND TRUE)").unwrap();
        assert_eq!(nested.to_string(), "(ALARM(\"a\") OR OK(\"b\")) AND INSUFFICIENT_DATA(\"c\") AND TRUE");
        assert_eq!(Rule::parse(&nested.to_string()).unwrap(), nested, "the canonical text parses to the same rule");
        assert_eq!(Rule::parse("NOT (ALARM(a) OR FALSE)").unwrap().to_string(), "NOT (ALARM(\"a\") OR FALSE)");
    }

    /// Issue 22.1: nesting that overflowed the stack (3,800 levels in 7.6 KB) is refused with
    /// the bound; so is a rule longer than CloudWatch allows, before it is read at all.
    #[test]
    fn deep_or_huge_rules_are_refused_with_the_bound() {
        let nested = |depth: usize| format!("{}ALARM(a){}", "(".repeat(depth), ")".repeat(depth));
        assert!(Rule::parse(&nested(Rule::MAX_DEPTH)).is_ok(), "the bound itself is allowed");
        for depth in [Rule::MAX_DEPTH + 1, 3_800] {
            let error = Rule::parse(&nested(depth)).unwrap_err();
            assert!(error.contains("more than 100 levels deep"), "{error}");
        }
        let nots = format!("{}ALARM(a)", "NOT ".repeat(2_000));
        assert!(Rule::parse(&nots).unwrap_err().contains("more than 100 levels deep"));
        let huge = nested(100_000);
        let error = Rule::parse(&huge).unwrap_err();
        assert_eq!(error, "the rule is 200008 characters; CloudWatch allows 10240");
        // A long flat rule is fine: AND and OR do not nest.
        let flat = (0..100).map(|index| format!("ALARM(a{index})")).collect::<Vec<_>>().join(" OR ");
        assert_eq!(Rule::parse(&flat).unwrap().names().len(), 100);
    }

    #[test]
    fn renames_every_name() {
        let rule = Rule::parse("ALARM(cpu) AND NOT OK(FL-other-x)").unwrap();
        let renamed = rule.rename(&|name| if name.starts_with("FL-") { name.to_string() } else { format!("FL-host-{name}") });
        assert_eq!(renamed.to_string(), "ALARM(\"FL-host-cpu\") AND NOT OK(\"FL-other-x\")");
    }

    #[test]
    fn bad_rules_say_what_is_wrong() {
        for (text, expected) in [
            ("ALARM(a) AND OK(b) OR OK(c)", "mixed without parentheses"),
            ("ALARM(a", "not closed"),
            ("(ALARM(a)", "never closed"),
            ("ALARM()", "needs one alarm name"),
            ("ALARMS(a)", "is not part of a rule"),
            ("ALARM(a) ALARM(b)", "after a complete rule"),
            ("", "the rule ends"),
            ("ALARM(\"a)", "never closed"),
            ("NOT", "the rule ends"),
        ] {
            let error = Rule::parse(text).unwrap_err();
            assert!(error.contains(expected), "{text}: {error}");
        }
    }
}
