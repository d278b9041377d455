//! A discovery entry (`host:port`) and `[a:b]` range expansion.
use crate::DiscoveryError;

/// One node address as discovery reports it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Entry {
    pub host: String,
    pub port: u16,
}

impl Entry {
    pub fn parse(s: &str) -> Result<Self, DiscoveryError> {
        let s = s.trim();
        let (host, port) = s.rsplit_once(':').ok_or_else(|| DiscoveryError::InvalidEntry(s.to_string()))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() || port.is_empty() {
            return Err(DiscoveryError::InvalidEntry(s.to_string()));
        }
        let port: u16 = port.parse().map_err(|_| DiscoveryError::InvalidPort(s.to_string()))?;
        if port == 0 {
            return Err(DiscoveryError::InvalidPort(s.to_string()));
        }
        Ok(Entry { host: host.to_string(), port })
    }
}

impl std::fmt::Display for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// Expands the first `[a:b]` in `pattern` (recursively, so several ranges multiply),
/// e.g. `10.0.0.[1:3]:2375` -> three addresses; `192.168.1.2:[2:20]375` -> ports 2375..20375.
pub fn expand_ranges(pattern: &str) -> Result<Vec<String>, DiscoveryError> {
    let Some(open) = pattern.find('[') else { return Ok(vec![pattern.to_string()]) };
    let Some(close_rel) = pattern[open..].find(']') else {
        return Err(DiscoveryError::InvalidRange(pattern.to_string(), "missing ']'"));
    };
    let close = open + close_rel;
    let inner = &pattern[open + 1..close];
    let Some((a, b)) = inner.split_once(':') else {
        // Not a range (e.g. an IPv6 literal): keep it as is.
        return Ok(vec![pattern.to_string()]);
    };
    let lo: u64 = a.parse().map_err(|_| DiscoveryError::InvalidRange(pattern.to_string(), "bounds must be numbers"))?;
    let hi: u64 = b.parse().map_err(|_| DiscoveryError::InvalidRange(pattern.to_string(), "bounds must be numbers"))?;
    if lo > hi {
        return Err(DiscoveryError::InvalidRange(pattern.to_string(), "start is above end"));
    }
    if hi - lo > 65535 {
        return Err(DiscoveryError::InvalidRange(pattern.to_string(), "range too large"));
    }
    let (head, tail) = (&pattern[..open], &pattern[close + 1..]);
    let mut out = vec![];
    for n in lo..=hi {
        out.extend(expand_ranges(&format!("{head}{n}{tail}"))?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn parses_entries() {
        assert_eq!(Entry::parse("10.0.0.1:2375").unwrap(), Entry { host: "10.0.0.1".into(), port: 2375 });
        assert_eq!(Entry::parse("[::1]:2375").unwrap().to_string(), "[::1]:2375");
        assert!(matches!(Entry::parse("10.0.0.1"), Err(DiscoveryError::InvalidEntry(_))));
        assert!(matches!(Entry::parse("10.0.0.1:70000"), Err(DiscoveryError::InvalidPort(_))));
        assert!(matches!(Entry::parse("10.0.0.1:0"), Err(DiscoveryError::InvalidPort(_))));
        assert!(matches!(Entry::parse(":2375"), Err(DiscoveryError::InvalidEntry(_))));
    }
    #[test]
    fn expands_ranges_anywhere() {
        assert_eq!(expand_ranges("10.0.0.[1:3]:2375").unwrap(), vec!["10.0.0.1:2375", "10.0.0.2:2375", "10.0.0.3:2375"]);
        assert_eq!(expand_ranges("192.168.1.2:[2:3]375").unwrap(), vec!["192.168.1.2:2375", "192.168.1.2:3375"]);
        assert_eq!(expand_ranges("10.0.[0:1].[1:2]:1").unwrap().len(), 4);
        assert_eq!(expand_ranges("h:1").unwrap(), vec!["h:1"]);
        assert!(expand_ranges("10.0.0.[3:1]:1").is_err());
        assert!(expand_ranges("10.0.0.[a:1]:1").is_err());
        assert!(expand_ranges("10.0.0.[1:2:1").is_err());
    }
}
