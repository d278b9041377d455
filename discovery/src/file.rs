//! `file:///path`: one entry per line, `#` comments (also inline), `[a:b]` ranges. Re-read
//! every second (at most every heartbeat), so edits show up quickly; a set is sent only when it
//! changed.
use crate::entry::{expand_ranges, Entry};
use crate::{watch, Discovery, DiscoveryError, WatchEvent};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Longest time between two reads of the file while watching.
pub const REREAD: Duration = Duration::from_secs(1);

/// A file's content and the entries parsed from it.
type Parsed = (String, Vec<Entry>);

#[derive(Debug, Clone)]
pub struct FileDiscovery {
    path: Arc<PathBuf>,
}

/// Parses a file's content; errors name the line.
pub fn parse_content(path: &Path, content: &str) -> Result<Vec<Entry>, DiscoveryError> {
    let mut out = vec![];
    let mut seen = std::collections::HashSet::new();
    for (i, line) in content.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let wrap = |e: DiscoveryError| DiscoveryError::FileEntry { path: path.display().to_string(), line: i + 1, error: Box::new(e) };
        for part in line.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            for addr in expand_ranges(part).map_err(wrap)? {
                let e = Entry::parse(&addr).map_err(wrap)?;
                if seen.insert(e.clone()) {
                    out.push(e);
                }
            }
        }
    }
    Ok(out)
}

impl FileDiscovery {
    /// `path` is the part after `file://` (`file:///etc/swarm/cluster` -> `/etc/swarm/cluster`).
    pub fn new(path: &str) -> Result<Self, DiscoveryError> {
        if path.trim().is_empty() {
            return Err(DiscoveryError::InvalidUrl { url: format!("file://{path}"), reason: "no file path".into() });
        }
        Ok(FileDiscovery { path: Arc::new(PathBuf::from(path)) })
    }
    pub fn path(&self) -> &Path {
        &self.path
    }
    async fn read(&self) -> Result<Vec<Entry>, DiscoveryError> {
        let content = self.content().await?;
        parse_content(&self.path, &content)
    }
    async fn content(&self) -> Result<String, DiscoveryError> {
        tokio::fs::read_to_string(&*self.path).await.map_err(|e| DiscoveryError::io(&*self.path, e))
    }
}

impl Discovery for FileDiscovery {
    async fn list(&self) -> Result<Vec<Entry>, DiscoveryError> {
        self.read().await
    }
    async fn register(&self, _: &Entry, _: Duration) -> Result<(), DiscoveryError> {
        Err(DiscoveryError::NotSupported { scheme: "file" })
    }
    async fn deregister(&self, _: &Entry) -> Result<(), DiscoveryError> {
        Ok(())
    }
    fn watch(&self, heartbeat: Duration, stop: CancellationToken) -> mpsc::Receiver<WatchEvent> {
        let d = self.clone();
        // The last content and its entries: a file read again unchanged is not parsed again
        // (a 10,000-line file every second).
        let last: Arc<std::sync::Mutex<Option<Parsed>>> = Arc::default();
        watch::poll(heartbeat.min(REREAD), stop, move || {
            let (d, last) = (d.clone(), last.clone());
            async move {
                let content = d.content().await?;
                let mut last = last.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                if let Some((_, entries)) = last.as_ref().filter(|(c, _)| *c == content) {
                    return Ok(entries.clone());
                }
                let entries = parse_content(&d.path, &content)?;
                *last = Some((content, entries.clone()));
                Ok(entries)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn parses_comments_and_ranges() {
        let p = Path::new("/x");
        let e = parse_content(p, "# cluster\n10.0.0.[1:2]:2375 # two\n\n  h:1\n10.0.0.1:2375\n").unwrap();
        assert_eq!(e.iter().map(|x| x.to_string()).collect::<Vec<_>>(), vec!["10.0.0.1:2375", "10.0.0.2:2375", "h:1"]);
        let err = parse_content(p, "h:1\nbad\n").unwrap_err().to_string();
        assert!(err.contains("/x line 2") && err.contains("bad"), "{err}");
        assert!(parse_content(p, "h:70000").is_err());
    }
    #[tokio::test]
    async fn rereads_on_change() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("cluster");
        std::fs::write(&p, "10.0.0.1:1\n").unwrap();
        let d = FileDiscovery::new(p.to_str().unwrap()).unwrap();
        assert_eq!(d.list().await.unwrap().len(), 1);
        let stop = CancellationToken::new();
        let mut rx = d.watch(Duration::from_millis(20), stop.clone());
        assert_eq!(rx.recv().await.unwrap().unwrap().len(), 1);
        std::fs::write(&p, "10.0.0.[1:3]:1\n").unwrap();
        assert_eq!(rx.recv().await.unwrap().unwrap().len(), 3);
        std::fs::remove_file(&p).unwrap();
        assert!(rx.recv().await.unwrap().is_err());
        stop.cancel();
        assert!(FileDiscovery::new("").is_err());
    }
}
