//! `nodes://a:p,b:p` (or a bare list): a static entry set, with `[a:b]` ranges.
use crate::entry::{expand_ranges, Entry};
use crate::DiscoveryError;

/// Parses the part after `nodes://` (or a bare comma-separated list).
pub fn parse(list: &str) -> Result<Vec<Entry>, DiscoveryError> {
    let list = list.strip_prefix("nodes://").unwrap_or(list);
    if list.trim().is_empty() {
        return Err(DiscoveryError::Empty);
    }
    if let Some((scheme, _)) = list.split_once("://") {
        return Err(DiscoveryError::UnsupportedScheme(scheme.to_string()));
    }
    let mut out = vec![];
    for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        for addr in expand_ranges(part)? {
            out.push(Entry::parse(&addr)?);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn parses_lists() {
        let e = parse("nodes://10.0.0.1:2375,10.0.0.[2:3]:2375").unwrap();
        assert_eq!(e.iter().map(|x| x.to_string()).collect::<Vec<_>>(), vec!["10.0.0.1:2375", "10.0.0.2:2375", "10.0.0.3:2375"]);
        assert_eq!(parse("h1:1, h2:2").unwrap().len(), 2);
        assert_eq!(parse("nodes://"), Err(DiscoveryError::Empty));
        assert!(matches!(parse("foo://x:1"), Err(DiscoveryError::UnsupportedScheme(_))));
        assert!(parse("nodes://10.0.0.1").is_err());
    }
}
