//! Image references as Docker parses them (distribution/reference): `busybox` is
//! `docker.io/library/busybox:latest`, shown in its familiar form `busybox:latest`.
use super::ImageError;
use std::fmt;

pub const DEFAULT_DOMAIN: &str = "docker.io";
pub const DEFAULT_TAG: &str = "latest";
const OFFICIAL_PREFIX: &str = "library/";

/// A fully normalised reference: domain, path, and a tag and/or digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    pub domain: String,
    pub path: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

fn invalid(msg: impl Into<String>) -> ImageError {
    ImageError::Invalid(msg.into())
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`
fn valid_path_component(c: &str) -> bool {
    let b = c.as_bytes();
    if b.is_empty() || !is_alnum_lower(b[0]) || !is_alnum_lower(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if is_alnum_lower(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !is_alnum_lower(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

fn is_alnum_lower(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

/// `host(.host)*(:port)?` or `[ipv6](:port)?`
fn valid_domain(d: &str) -> bool {
    let (host, port) = if let Some(rest) = d.strip_prefix('[') {
        match rest.split_once(']') {
            Some((ip, tail)) => {
                if ip.parse::<std::net::Ipv6Addr>().is_err() {
                    return false;
                }
                (None, tail.strip_prefix(':'))
            }
            None => return false,
        }
    } else {
        match d.rsplit_once(':') {
            Some((h, p)) => (Some(h), Some(p)),
            None => (Some(d), None),
        }
    };
    if let Some(p) = port {
        if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
            return false;
        }
    }
    match host {
        None => true,
        Some(h) => {
            !h.is_empty()
                && h.split('.').all(|l| {
                    let b = l.as_bytes();
                    !b.is_empty()
                        && b[0].is_ascii_alphanumeric()
                        && b[b.len() - 1].is_ascii_alphanumeric()
                        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
                })
        }
    }
}

/// `[\w][\w.-]{0,127}`
pub fn valid_tag(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

/// `sha256:<64 lowercase hex>` (other algorithms are refused).
pub fn valid_digest(d: &str) -> bool {
    d.strip_prefix("sha256:").is_some_and(is_hex64)
}

pub fn is_hex64(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

impl Reference {
    /// Parses like Docker's `ParseNormalizedNamed`: adds `docker.io` and `library/` but no tag.
    pub fn parse(s: &str) -> Result<Self, ImageError> {
        if s.is_empty() {
            return Err(invalid("invalid reference format"));
        }
        if is_hex64(s) {
            return Err(invalid(format!("invalid repository name ({s}), cannot specify 64-byte hexadecimal strings")));
        }
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => {
                if !valid_digest(d) {
                    return Err(invalid("invalid reference format"));
                }
                (r, Some(d.to_string()))
            }
            None => (s, None),
        };
        // A tag is after the last ':' only when that ':' comes after the last '/'.
        let (name, tag) = match rest.rfind(':') {
            Some(i) if !rest[i..].contains('/') => (&rest[..i], Some(rest[i + 1..].to_string())),
            _ => (rest, None),
        };
        if let Some(t) = &tag {
            if !valid_tag(t) {
                return Err(invalid("invalid reference format"));
            }
        }
        let (domain, path) = split_domain(name);
        if !valid_domain(&domain) {
            return Err(invalid("invalid reference format"));
        }
        if path.split('/').any(|c| !valid_path_component(c)) {
            if path.to_ascii_lowercase().split('/').all(valid_path_component) {
                return Err(invalid(format!("invalid reference format: repository name ({path}) must be lowercase")));
            }
            return Err(invalid("invalid reference format"));
        }
        if domain.len() + 1 + path.len() > 255 {
            return Err(invalid("invalid reference format: repository name must not be more than 255 characters"));
        }
        Ok(Reference { domain, path, tag, digest })
    }

    /// Parses and adds `:latest` when there is neither a tag nor a digest (`TagNameOnly`).
    pub fn parse_tagged(s: &str) -> Result<Self, ImageError> {
        let mut r = Self::parse(s)?;
        if r.tag.is_none() && r.digest.is_none() {
            r.tag = Some(DEFAULT_TAG.to_string());
        }
        Ok(r)
    }

    /// `docker.io/library/busybox`
    pub fn name(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// `busybox` for `docker.io/library/busybox`, `127.0.0.1:5000/busybox` otherwise.
    pub fn familiar_name(&self) -> String {
        if self.domain == DEFAULT_DOMAIN {
            self.path.strip_prefix(OFFICIAL_PREFIX).filter(|p| !p.contains('/')).unwrap_or(&self.path).to_string()
        } else {
            self.name()
        }
    }

    /// `busybox:latest`, `127.0.0.1:5000/busybox@sha256:...`
    pub fn familiar(&self) -> String {
        let mut s = self.familiar_name();
        if let Some(t) = &self.tag {
            s.push(':');
            s.push_str(t);
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(d);
        }
        s
    }

    /// The same repository with only a tag.
    pub fn with_tag(&self, tag: &str) -> Reference {
        Reference { domain: self.domain.clone(), path: self.path.clone(), tag: Some(tag.into()), digest: None }
    }

    /// The same repository with only a digest.
    pub fn with_digest(&self, digest: &str) -> Reference {
        Reference { domain: self.domain.clone(), path: self.path.clone(), tag: None, digest: Some(digest.into()) }
    }

    /// True for `name@digest` references (Docker's "canonical").
    pub fn is_digest(&self) -> bool {
        self.digest.is_some()
    }

    /// The registry host to contact (`registry-1.docker.io` for Docker Hub).
    pub fn registry_host(&self) -> &str {
        if self.domain == DEFAULT_DOMAIN || self.domain == "index.docker.io" {
            "registry-1.docker.io"
        } else {
            &self.domain
        }
    }
}

/// Docker's `splitDockerDomain`.
fn split_domain(name: &str) -> (String, String) {
    let (domain, path) = match name.split_once('/') {
        Some((first, rest)) if first.contains('.') || first.contains(':') || first == "localhost" || first.to_lowercase() != first => {
            (first.to_string(), rest.to_string())
        }
        _ => (DEFAULT_DOMAIN.to_string(), name.to_string()),
    };
    let domain = if domain == "index.docker.io" { DEFAULT_DOMAIN.to_string() } else { domain };
    let path = if domain == DEFAULT_DOMAIN && !path.contains('/') { format!("{OFFICIAL_PREFIX}{path}") } else { path };
    (domain, path)
}

impl fmt::Display for Reference {
    /// The full form: `docker.io/library/busybox:latest`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.name())?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

/// Go's `path.Match`: `*` (no `/`), `?`, `[a-z]`, `[^x]`, `\` escapes.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    fn m(p: &[char], n: &[char]) -> bool {
        match p.first() {
            None => n.is_empty(),
            Some('*') => (0..=n.len()).take_while(|&i| i == 0 || n[i - 1] != '/').any(|i| m(&p[1..], &n[i..])),
            Some('?') => !n.is_empty() && n[0] != '/' && m(&p[1..], &n[1..]),
            Some('[') => {
                let Some(&c) = n.first() else { return false };
                let mut i = 1;
                let neg = matches!(p.get(1), Some('^' | '!'));
                if neg {
                    i += 1;
                }
                let mut hit = false;
                let mut first = true;
                while i < p.len() && (first || p[i] != ']') {
                    first = false;
                    let lo = p[i];
                    if p.get(i + 1) == Some(&'-') && p.get(i + 2).is_some_and(|x| *x != ']') {
                        hit |= lo <= c && c <= p[i + 2];
                        i += 3;
                    } else {
                        hit |= lo == c;
                        i += 1;
                    }
                }
                if i >= p.len() {
                    return false;
                }
                hit != neg && c != '/' && m(&p[i + 1..], &n[1..])
            }
            Some('\\') if p.len() > 1 => n.first() == Some(&p[1]) && m(&p[2..], &n[1..]),
            Some(c) => n.first() == Some(c) && m(&p[1..], &n[1..]),
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    m(&p, &n)
}

/// Docker's `FamiliarMatch`: the pattern against `name:tag`, then against the name alone.
pub fn familiar_match(pattern: &str, r: &Reference) -> bool {
    glob_match(pattern, &r.familiar()) || glob_match(pattern, &r.familiar_name())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_like_docker() {
        let r = Reference::parse_tagged("busybox").unwrap();
        assert_eq!(r.to_string(), "docker.io/library/busybox:latest");
        assert_eq!(r.familiar(), "busybox:latest");
        let r = Reference::parse_tagged("127.0.0.1:5000/busybox").unwrap();
        assert_eq!(r.domain, "127.0.0.1:5000");
        assert_eq!(r.path, "busybox");
        assert_eq!(r.familiar(), "127.0.0.1:5000/busybox:latest");
        let r = Reference::parse("localhost/a/b:v1").unwrap();
        assert_eq!((r.domain.as_str(), r.path.as_str(), r.tag.as_deref()), ("localhost", "a/b", Some("v1")));
        let r = Reference::parse("user/app").unwrap();
        assert_eq!(r.to_string(), "docker.io/user/app");
        assert_eq!(r.familiar(), "user/app");
        let r = Reference::parse("docker.io/library/busybox:1.36").unwrap();
        assert_eq!(r.familiar(), "busybox:1.36");
        let d = format!("sha256:{}", "a".repeat(64));
        let r = Reference::parse(&format!("127.0.0.1:5000/busybox@{d}")).unwrap();
        assert_eq!(r.digest.as_deref(), Some(d.as_str()));
        assert_eq!(r.tag, None);
        assert_eq!(Reference::parse_tagged(&format!("busybox@{d}")).unwrap().tag, None);
        let r = Reference::parse("host:5000/ns/app:tag").unwrap();
        assert_eq!(r.registry_host(), "host:5000");
        assert_eq!(Reference::parse("busybox").unwrap().registry_host(), "registry-1.docker.io");
    }

    #[test]
    fn refuses_invalid() {
        for bad in ["", "Busybox", "a b", "busybox:", "busybox:-x", "busybox@sha256:abc", "-a", "a//b", "a/", ":tag", "busybox@"] {
            assert!(Reference::parse(bad).is_err(), "{bad}");
        }
        let e = Reference::parse("Busybox").unwrap_err().to_string();
        assert!(e.contains("must be lowercase"), "{e}");
        let e = Reference::parse(&"a".repeat(64)).unwrap_err().to_string();
        assert!(e.contains("64-byte hexadecimal"), "{e}");
        assert!(matches!(Reference::parse("x y"), Err(ImageError::Invalid(_))));
    }

    #[test]
    fn globs() {
        let r = Reference::parse_tagged("busybox").unwrap();
        assert!(familiar_match("busybox:*", &r));
        assert!(familiar_match("busybox", &r));
        assert!(familiar_match("busy*", &r));
        assert!(!familiar_match("alpine*", &r));
        let r = Reference::parse_tagged("127.0.0.1:5000/busybox").unwrap();
        assert!(familiar_match("127.0.0.1:5000/*", &r));
        assert!(!familiar_match("*", &r));
        assert!(glob_match("a[b-d]?", "acx"));
        assert!(!glob_match("a[^b]", "ab"));
    }
}
