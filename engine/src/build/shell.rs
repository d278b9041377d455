//! Variable substitution and word splitting as the Dockerfile does it (moby's shell lexer):
//! `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:+alt}`, `${VAR+alt}`,
//! `${VAR:?message}`, single and double quotes, and the escape character.
use super::BuildError;

/// Why a word could not be lexed; `BuildError::Shell` adds the Dockerfile line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShellError {
    #[error("unexpected end of statement while looking for matching {0}")]
    UnterminatedQuote(Quote),
    #[error("bad substitution: missing variable name")]
    MissingName,
    /// `${name:` and nothing after the colon.
    #[error("bad substitution")]
    MissingModifier { name: String },
    /// `${name:?word}` with `name` unset (or empty): the word, or moby's default text.
    #[error("{name}: {}", message.as_deref().unwrap_or("is not allowed to be unset"))]
    Unset { name: String, message: Option<String> },
    #[error("unsupported modifier ({modifier}) in substitution")]
    UnsupportedModifier { name: String, modifier: char },
    /// `${name` without its closing brace (`name` empty when it ended inside the word).
    #[error("missing '}}' in substitution{}", if name.is_empty() { String::new() } else { format!(" of {name}") })]
    MissingBrace { name: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quote {
    Single,
    Double,
}

impl std::fmt::Display for Quote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Quote::Single => "single-quote",
            Quote::Double => "double-quote",
        })
    }
}

/// Looks a variable up (the stage's ENV, then its ARGs).
pub trait Env {
    fn get(&self, name: &str) -> Option<String>;
}

impl Env for [(String, String)] {
    fn get(&self, name: &str) -> Option<String> {
        self.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }
}

impl Env for Vec<(String, String)> {
    fn get(&self, name: &str) -> Option<String> {
        Env::get(self.as_slice(), name)
    }
}

struct Lexer<'a, E: Env + ?Sized> {
    chars: Vec<char>,
    pos: usize,
    escape: char,
    env: &'a E,
}

impl<E: Env + ?Sized> Lexer<'_, E> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }
    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        self.pos += 1;
        c
    }

    /// Words: `Some(word)` each; unquoted whitespace separates them.
    fn words(&mut self, split: bool) -> Result<Vec<String>, ShellError> {
        let mut out = vec![];
        let mut cur = String::new();
        let mut have = false;
        while let Some(c) = self.next() {
            match c {
                c if split && c.is_whitespace() => {
                    if have {
                        out.push(std::mem::take(&mut cur));
                        have = false;
                    }
                }
                '\'' => {
                    have = true;
                    loop {
                        match self.next() {
                            Some('\'') => break,
                            Some(c) => cur.push(c),
                            None => return Err(ShellError::UnterminatedQuote(Quote::Single)),
                        }
                    }
                }
                '"' => {
                    have = true;
                    loop {
                        match self.next() {
                            Some('"') => break,
                            Some('$') => cur.push_str(&self.dollar()?),
                            Some(c) if c == self.escape => match self.next() {
                                Some(n @ ('"' | '$')) => cur.push(n),
                                Some(n) if n == self.escape => cur.push(n),
                                Some(n) => {
                                    cur.push(c);
                                    cur.push(n);
                                }
                                None => cur.push(c),
                            },
                            Some(c) => cur.push(c),
                            None => return Err(ShellError::UnterminatedQuote(Quote::Double)),
                        }
                    }
                }
                '$' => {
                    have = true;
                    cur.push_str(&self.dollar()?);
                }
                c if c == self.escape => {
                    have = true;
                    if let Some(n) = self.next() {
                        cur.push(n);
                    } else {
                        cur.push(c);
                    }
                }
                c => {
                    have = true;
                    cur.push(c);
                }
            }
        }
        if have {
            out.push(cur);
        }
        Ok(out)
    }

    fn name(&mut self) -> String {
        let mut n = String::new();
        while let Some(c) = self.peek() {
            if c.is_ascii_alphanumeric() || c == '_' {
                n.push(c);
                self.pos += 1;
            } else {
                break;
            }
        }
        n
    }

    /// After a `$`.
    fn dollar(&mut self) -> Result<String, ShellError> {
        match self.peek() {
            Some('{') => {
                self.pos += 1;
                let name = self.name();
                if name.is_empty() {
                    return Err(ShellError::MissingName);
                }
                let val = self.env.get(&name);
                match self.next() {
                    Some('}') => Ok(val.unwrap_or_default()),
                    Some(c @ (':' | '-' | '+' | '?')) => {
                        let colon = c == ':';
                        let op = if colon { self.next().ok_or_else(|| ShellError::MissingModifier { name: name.clone() })? } else { c };
                        let word = self.until_brace()?;
                        let set = match &val {
                            Some(v) => !colon || !v.is_empty(),
                            None => false,
                        };
                        match op {
                            '-' => Ok(if set { val.unwrap_or_default() } else { word }),
                            '+' => Ok(if set { word } else { String::new() }),
                            '?' if set => Ok(val.unwrap_or_default()),
                            '?' => Err(ShellError::Unset { name, message: Some(word).filter(|w| !w.is_empty()) }),
                            modifier => Err(ShellError::UnsupportedModifier { name, modifier }),
                        }
                    }
                    _ => Err(ShellError::MissingBrace { name }),
                }
            }
            Some(c) if c.is_ascii_alphanumeric() || c == '_' => {
                let name = self.name();
                Ok(self.env.get(&name).unwrap_or_default())
            }
            _ => Ok("$".into()),
        }
    }

    /// The word of `${x:-word}`, expanded, up to the closing brace.
    fn until_brace(&mut self) -> Result<String, ShellError> {
        let mut out = String::new();
        loop {
            match self.next() {
                Some('}') => return Ok(out),
                Some('$') => out.push_str(&self.dollar()?),
                Some(c) if c == self.escape => {
                    if let Some(n) = self.next() {
                        out.push(n);
                    }
                }
                Some(c) => out.push(c),
                None => return Err(ShellError::MissingBrace { name: String::new() }),
            }
        }
    }
}

fn lex<E: Env + ?Sized>(s: &str, escape: char, env: &E, split: bool, line: usize) -> Result<Vec<String>, BuildError> {
    Lexer { chars: s.chars().collect(), pos: 0, escape, env }.words(split).map_err(|source| BuildError::Shell { line, source })
}

/// One word: quotes removed, variables expanded, whitespace kept.
pub fn word<E: Env + ?Sized>(s: &str, escape: char, env: &E, line: usize) -> Result<String, BuildError> {
    Ok(lex(s, escape, env, false, line)?.concat())
}

/// Words split on unquoted whitespace, each expanded.
pub fn words<E: Env + ?Sized>(s: &str, escape: char, env: &E, line: usize) -> Result<Vec<String>, BuildError> {
    lex(s, escape, env, true, line)
}

/// `k=v k2="v 2"` pairs (ENV, LABEL, ARG); the legacy `ENV k v w` form is one pair.
pub fn key_values<E: Env + ?Sized>(s: &str, escape: char, env: &E, line: usize, what: &str) -> Result<Vec<(String, String)>, BuildError> {
    let raw = words(s, escape, &Vec::<(String, String)>::new(), line);
    let first_has_eq = s.split_whitespace().next().is_some_and(|w| w.contains('='));
    if !first_has_eq {
        let (k, v) = s.trim().split_once(char::is_whitespace).unwrap_or((s.trim(), ""));
        if v.trim().is_empty() && what != "ARG" {
            return Err(BuildError::Parse { line, msg: format!("{what} must have two arguments") });
        }
        return Ok(vec![(k.to_string(), word(v.trim(), escape, env, line)?)]);
    }
    raw?;
    // Split on unquoted whitespace first (without expanding), then expand each part.
    let mut out = vec![];
    for part in split_raw(s, escape) {
        let (k, v) =
            part.split_once('=').ok_or_else(|| BuildError::Parse { line, msg: format!("{what} names can not be blank: {part}") })?;
        let k = word(k, escape, env, line)?;
        if k.is_empty() {
            return Err(BuildError::Parse { line, msg: format!("{what} names can not be blank") });
        }
        out.push((k, word(v, escape, env, line)?));
    }
    Ok(out)
}

/// Splits on whitespace outside quotes, keeping quotes and escapes for later expansion.
fn split_raw(s: &str, escape: char) -> Vec<String> {
    let mut out = vec![];
    let mut cur = String::new();
    let mut quote = None;
    let mut it = s.chars();
    while let Some(c) = it.next() {
        match (quote, c) {
            (None, c) if c.is_whitespace() => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            (None, '"' | '\'') => {
                quote = Some(c);
                cur.push(c);
            }
            (Some(q), c) if c == q => {
                quote = None;
                cur.push(c);
            }
            (_, c) if c == escape => {
                cur.push(c);
                if let Some(n) = it.next() {
                    cur.push(n);
                }
            }
            (_, c) => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Vec<(String, String)> {
        vec![("A".into(), "one".into()), ("E".into(), String::new()), ("S".into(), "a b".into())]
    }

    #[test]
    fn substitutions() {
        let e = env();
        let w = |s: &str| word(s, '\\', &e, 1).unwrap();
        assert_eq!(w("$A/${A}x"), "one/onex");
        assert_eq!(w("${NOPE:-def} ${E:-empty} ${E-set}"), "def empty ");
        assert_eq!(w("${A:+alt}|${NOPE:+alt}|${E+alt}"), "alt||alt");
        assert_eq!(w("'$A' \"$A\" \\$A"), "$A one $A");
        assert_eq!(w("${NOPE:-${A}}"), "one");
        assert_eq!(w("a$"), "a$");
        assert!(word("${NOPE:?must be set}", '\\', &e, 7).unwrap_err().to_string().contains("line 7: NOPE: must be set"));
        assert!(word("${A", '\\', &e, 1).is_err());
        assert_eq!(words("x \"$S\" '$A'  y", '\\', &e, 1).unwrap(), ["x", "a b", "$A", "y"]);
        assert_eq!(word("C:`$A", '`', &e, 1).unwrap(), "C:$A");
    }

    #[test]
    fn errors_carry_the_variable_and_line() {
        let e = env();
        let err = |s: &str| match word(s, '\\', &e, 4).unwrap_err() {
            BuildError::Shell { line, source } => (line, source),
            other => panic!("not a shell error: {other:?}"),
        };
        assert_eq!(err("${NOPE:?}"), (4, ShellError::Unset { name: "NOPE".into(), message: None }));
        assert_eq!(err("${NOPE:?}").1.to_string(), "NOPE: is not allowed to be unset");
        assert_eq!(err("${A:%x}").1, ShellError::UnsupportedModifier { name: "A".into(), modifier: '%' });
        assert_eq!(err("${A:%x}").1.to_string(), "unsupported modifier (%) in substitution");
        assert_eq!(err("${A").1.to_string(), "missing '}' in substitution of A");
        assert_eq!(err("${A:-x").1.to_string(), "missing '}' in substitution");
        assert_eq!(err("${}").1, ShellError::MissingName);
        assert_eq!(err("${A:").1, ShellError::MissingModifier { name: "A".into() });
        assert_eq!(err("'x").1.to_string(), "unexpected end of statement while looking for matching single-quote");
        assert_eq!(err("\"x").1.to_string(), "unexpected end of statement while looking for matching double-quote");
        assert_eq!(word("${A", '\\', &e, 9).unwrap_err().to_string(), "Dockerfile parse error line 9: missing '}' in substitution of A");
    }

    #[test]
    fn pairs() {
        let e = env();
        let kv = |s: &str| key_values(s, '\\', &e, 1, "ENV").unwrap();
        assert_eq!(
            kv("X=1 Y=\"two words\" Z=$A"),
            [("X".into(), "1".into()), ("Y".into(), "two words".into()), ("Z".into(), "one".into())]
        );
        assert_eq!(kv("X  a b $A"), [("X".to_string(), "a b one".to_string())]);
        assert!(key_values("=v", '\\', &e, 3, "LABEL").is_err());
        assert!(key_values("X", '\\', &e, 3, "ENV").is_err());
    }
}
