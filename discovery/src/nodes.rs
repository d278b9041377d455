//! `nodes://a:p,b:p` (or a bare list): a static entry set, with `[a:b]` ranges.
use crate::entry::{expand_ranges, Entry};
use crate::{watch, Discovery, DiscoveryError, WatchEvent};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

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
            let e = Entry::parse(&addr)?;
            if !out.contains(&e) {
                out.push(e);
            }
        }
    }
    Ok(out)
}

/// The static list, in the order given (duplicates dropped).
#[derive(Debug, Clone)]
pub struct NodesDiscovery {
    entries: Arc<Vec<Entry>>,
}

impl NodesDiscovery {
    pub fn parse(list: &str) -> Result<Self, DiscoveryError> {
        Ok(NodesDiscovery { entries: Arc::new(parse(list)?) })
    }
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }
}

impl Discovery for NodesDiscovery {
    async fn list(&self) -> Result<Vec<Entry>, DiscoveryError> {
        Ok(self.entries.to_vec())
    }
    async fn register(&self, _: &Entry, _: Duration) -> Result<(), DiscoveryError> {
        Err(DiscoveryError::NotSupported { scheme: "nodes" })
    }
    async fn deregister(&self, _: &Entry) -> Result<(), DiscoveryError> {
        Ok(())
    }
    fn watch(&self, _heartbeat: Duration, stop: CancellationToken) -> mpsc::Receiver<WatchEvent> {
        watch::once(self.entries.to_vec(), stop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn parses_lists() {
        let e = parse("nodes://10.0.0.1:2375,10.0.0.[2:3]:2375,10.0.0.1:2375").unwrap();
        assert_eq!(e.iter().map(|x| x.to_string()).collect::<Vec<_>>(), vec!["10.0.0.1:2375", "10.0.0.2:2375", "10.0.0.3:2375"]);
        assert_eq!(parse("h1:1, h2:2").unwrap().len(), 2);
        assert!(matches!(parse("nodes://"), Err(DiscoveryError::Empty)));
        assert!(matches!(parse("foo://x:1"), Err(DiscoveryError::UnsupportedScheme(_))));
        assert!(parse("nodes://10.0.0.1").is_err());
        assert!(matches!(parse("10.0.0.1:99999"), Err(DiscoveryError::InvalidPort(_))));
    }
    #[tokio::test]
    async fn static_backend() {
        let d = NodesDiscovery::parse("10.0.0.[1:2]:2375").unwrap();
        assert_eq!(d.list().await.unwrap().len(), 2);
        assert!(matches!(d.register(&d.entries()[0], Duration::from_secs(3)).await, Err(DiscoveryError::NotSupported { .. })));
        let stop = CancellationToken::new();
        let mut rx = d.watch(Duration::from_secs(1), stop.clone());
        assert_eq!(rx.recv().await.unwrap().unwrap().len(), 2);
        stop.cancel();
        assert!(rx.recv().await.is_none());
    }
}
