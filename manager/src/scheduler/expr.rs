//! Placement expressions (`key==value`, `key!=value`, soft `==~`/`!=~`), parsed and compiled
//! once. A value is a glob (`*` = any run of characters, anchored) or a `/regex/` (unanchored).
//! Matching is case-sensitive unless the regex says `(?i)`, as in classic Swarm.
use regex::Regex;
use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExprError {
    #[error("Key '{0}' is invalid")]
    InvalidKey(String),
    #[error("Value '{0}' is invalid")]
    InvalidValue(String),
    #[error("One of operator ==, != is expected")]
    NoOperator,
    #[error("Value '{0}' is not a valid regular expression: {1}")]
    InvalidRegex(String, String),
}

/// How the value matches.
#[derive(Debug, Clone)]
pub enum Pattern {
    /// No wildcard: plain string equality.
    Exact(String),
    /// `*` globs, compiled to an anchored regex.
    Glob(Regex),
    /// `/re/`, unanchored.
    Regex(Regex),
}

/// One parsed expression.
#[derive(Debug, Clone)]
pub struct Expr {
    pub key: String,
    /// `!=`: true when no candidate matches.
    pub negate: bool,
    /// `~`: enforced on the first pass only.
    pub soft: bool,
    /// The value as written (without `~`).
    pub value: String,
    pub pattern: Pattern,
}

fn valid_key(k: &str) -> bool {
    let mut b = k.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_')
        && k.len() >= 2
        && b.all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

fn valid_value(v: &str) -> bool {
    !v.is_empty() && v.chars().all(|c| c.is_ascii_alphanumeric() || c.is_whitespace() || ":-_.*/()?+[]\\^$|".contains(c))
}

impl FromStr for Expr {
    type Err = ExprError;
    fn from_str(s: &str) -> Result<Self, ExprError> {
        let (key, negate, value) = if let Some((k, v)) = s.split_once("==") {
            (k, false, v)
        } else if let Some((k, v)) = s.split_once("!=") {
            (k, true, v)
        } else {
            return Err(ExprError::NoOperator);
        };
        let key = key.trim();
        if !valid_key(key) {
            return Err(ExprError::InvalidKey(key.to_string()));
        }
        let (soft, value) = match value.strip_prefix('~') {
            Some(v) => (true, v),
            None => (false, value),
        };
        let value = value.trim();
        if !valid_value(value) {
            return Err(ExprError::InvalidValue(value.to_string()));
        }
        let compile = |re: &str| Regex::new(re).map_err(|e| ExprError::InvalidRegex(value.to_string(), e.to_string()));
        let pattern = if value.len() >= 2 && value.starts_with('/') && value.ends_with('/') {
            Pattern::Regex(compile(&value[1..value.len() - 1])?)
        } else if value.contains('*') {
            let parts: Vec<String> = value.split('*').map(regex::escape).collect();
            Pattern::Glob(compile(&format!("^{}$", parts.join(".*")))?)
        } else {
            Pattern::Exact(value.to_string())
        };
        Ok(Expr { key: key.to_string(), negate, soft, value: value.to_string(), pattern })
    }
}

impl Expr {
    /// True when the pattern matches this one string (operator not applied).
    pub fn matches_str(&self, s: &str) -> bool {
        match &self.pattern {
            Pattern::Exact(v) => v == s,
            Pattern::Glob(re) | Pattern::Regex(re) => re.is_match(s),
        }
    }

    /// Applies the operator: `==` holds when some candidate matches, `!=` when none does.
    pub fn matches<'a>(&self, candidates: impl IntoIterator<Item = &'a str>) -> bool {
        let any = candidates.into_iter().any(|c| self.matches_str(c));
        any != self.negate
    }

    /// True when the key is `k` (keys compare case-insensitively).
    pub fn key_is(&self, k: &str) -> bool {
        self.key.eq_ignore_ascii_case(k)
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = if self.negate { "!=" } else { "==" };
        let soft = if self.soft { "~" } else { "" };
        write!(f, "{}{op}{soft}{}", self.key, self.value)
    }
}

/// Parses a list of expressions, failing on the first bad one.
pub fn parse_all<'a>(items: impl IntoIterator<Item = &'a String>) -> Result<Vec<Expr>, ExprError> {
    items.into_iter().map(|s| s.parse()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(s: &str) -> Expr {
        s.parse().unwrap()
    }

    #[test]
    fn parses_operators_and_soft() {
        let x = e("node==node-1");
        assert_eq!((x.key.as_str(), x.negate, x.soft, x.value.as_str()), ("node", false, false, "node-1"));
        let x = e("zone!=~eu");
        assert_eq!((x.negate, x.soft, x.value.as_str()), (true, true, "eu"));
        assert_eq!(x.to_string(), "zone!=~eu");
        assert_eq!(e("a.b-c==x").key, "a.b-c");
    }

    #[test]
    fn rejects_bad_input_with_classic_wording() {
        assert_eq!("node=x".parse::<Expr>().unwrap_err().to_string(), "One of operator ==, != is expected");
        assert_eq!("1node==x".parse::<Expr>().unwrap_err().to_string(), "Key '1node' is invalid");
        assert_eq!("n==x".parse::<Expr>().unwrap_err().to_string(), "Key 'n' is invalid");
        assert_eq!("node==".parse::<Expr>().unwrap_err().to_string(), "Value '' is invalid");
        assert_eq!("node==a;b".parse::<Expr>().unwrap_err().to_string(), "Value 'a;b' is invalid");
        assert!(matches!("node==/(/".parse::<Expr>(), Err(ExprError::InvalidRegex(..))));
    }

    #[test]
    fn globs_are_anchored_and_literal_elsewhere() {
        let x = e("node==node-*");
        assert!(x.matches(["node-12"]));
        assert!(!x.matches(["xnode-1"]));
        let dot = e("val==a.c");
        assert!(dot.matches(["a.c"]));
        assert!(!dot.matches(["abc"]), "a dot in a glob is literal");
        assert!(e("val==a*c").matches(["abbbc"]));
    }

    #[test]
    fn regexes_are_unanchored_and_case_sensitive() {
        let x = e("node==/ode-[12]/");
        assert!(x.matches(["node-1"]));
        assert!(!x.matches(["node-3"]));
        assert!(!e("val==/ABC/").matches(["abc"]));
        assert!(e("val==/(?i)ABC/").matches(["xabcx"]));
    }

    #[test]
    fn negation_means_none_matches() {
        let x = e("image!=busybox");
        assert!(x.matches(["alpine", "debian"]));
        assert!(!x.matches(["alpine", "busybox"]));
        assert!(x.matches(std::iter::empty()));
        assert!(!e("image==busybox").matches(std::iter::empty()));
    }
}
