//! `.dockerignore` patterns (Docker's fileutils.PatternMatcher): Go `filepath.Match` per path
//! segment, `**` for any number of segments, `!` exceptions, the last matching pattern wins,
//! and a pattern that matches a directory matches everything below it.

#[derive(Debug, Clone)]
struct Pattern {
    segs: Vec<String>,
    exception: bool,
}

#[derive(Debug, Clone, Default)]
pub struct Patterns(Vec<Pattern>);

impl Patterns {
    pub fn parse(text: &str) -> Self {
        let mut out = vec![];
        for line in text.lines() {
            let l = line.trim();
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            let (exception, p) = match l.strip_prefix('!') {
                Some(p) => (true, p.trim()),
                None => (false, l),
            };
            let segs: Vec<String> = p.split('/').filter(|s| !s.is_empty() && *s != ".").map(String::from).collect();
            if segs.is_empty() {
                continue;
            }
            out.push(Pattern { segs, exception });
        }
        Patterns(out)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn has_exceptions(&self) -> bool {
        self.0.iter().any(|p| p.exception)
    }

    /// Whether the context path `rel` (`a/b/c`) is excluded.
    pub fn excludes(&self, rel: &str) -> bool {
        let path: Vec<&str> = rel.split('/').filter(|s| !s.is_empty()).collect();
        let mut excluded = false;
        for p in &self.0 {
            if excluded != p.exception {
                continue; // cannot change the outcome
            }
            let m = (1..=path.len()).any(|n| segs_match(&p.segs, &path[..n]));
            if m {
                excluded = !p.exception;
            }
        }
        excluded
    }
}

fn segs_match(pat: &[String], path: &[&str]) -> bool {
    match pat.split_first() {
        None => path.is_empty(),
        Some((first, rest)) if first == "**" => (0..=path.len()).any(|i| segs_match(rest, &path[i..])),
        Some((first, rest)) => match path.split_first() {
            Some((p, prest)) => glob(first.as_bytes(), p.as_bytes()) && segs_match(rest, prest),
            None => false,
        },
    }
}

/// Go's `filepath.Match` for one segment: `*`, `?`, `[a-z]`, `[^x]`, `\` escapes.
pub fn glob(p: &[u8], s: &[u8]) -> bool {
    match p.split_first() {
        None => s.is_empty(),
        Some((b'*', rest)) => (0..=s.len()).any(|i| glob(rest, &s[i..])),
        Some((b'?', rest)) => !s.is_empty() && glob(rest, &s[1..]),
        Some((b'[', rest)) => {
            let Some((&c, srest)) = s.split_first() else { return false };
            let (neg, mut body) = match rest.first() {
                Some(b'^' | b'!') => (true, &rest[1..]),
                _ => (false, rest),
            };
            let mut matched = false;
            let mut first = true;
            loop {
                match body.first() {
                    None => return false,
                    Some(b']') if !first => {
                        body = &body[1..];
                        break;
                    }
                    _ => {}
                }
                first = false;
                let lo = body[0];
                if body.len() >= 3 && body[1] == b'-' && body[2] != b']' {
                    if lo <= c && c <= body[2] {
                        matched = true;
                    }
                    body = &body[3..];
                } else {
                    if lo == c {
                        matched = true;
                    }
                    body = &body[1..];
                }
            }
            matched != neg && glob(body, srest)
        }
        Some((b'\\', rest)) if !rest.is_empty() => s.first() == Some(&rest[0]) && glob(&rest[1..], &s[1..]),
        Some((c, rest)) => s.first() == Some(c) && glob(rest, &s[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_like_docker() {
        let p = Patterns::parse("*.md\n!README.md\n**/tmp\nbuild/\ndocs/*.txt\n");
        assert!(p.excludes("notes.md") && !p.excludes("README.md"));
        assert!(p.excludes("a/b/tmp") && p.excludes("tmp") && p.excludes("a/tmp/x"));
        assert!(p.excludes("build") && p.excludes("build/out/bin"));
        assert!(p.excludes("docs/a.txt") && !p.excludes("docs/a.rst") && !p.excludes("x/docs/a.txt"));
        assert!(!p.excludes("src/main.rs"));
        assert!(glob(b"f[0-9]?", b"f1x") && !glob(b"f[^0-9]", b"f1") && glob(b"a\\*", b"a*"));
    }
}
