//! Where the node list comes from. The manager only needs full entry sets whenever they
//! change; a static `nodes://` list is one source, and discovery's watch channel (token, etcd,
//! file backends) plugs in as another since it yields the same thing.
use discovery::{Entry, WatchEvent};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub trait NodeSource: Send + 'static {
    /// Full entry sets, each time the set changes, until `stop` is cancelled.
    fn watch(self, stop: CancellationToken) -> mpsc::Receiver<Vec<Entry>>;
}

/// A fixed list (`nodes://a:p,b:[1:3]`).
pub struct StaticNodes(pub Vec<Entry>);

impl StaticNodes {
    /// Parses `nodes://…` or a bare comma-separated list.
    pub fn parse(spec: &str) -> Result<Self, discovery::DiscoveryError> {
        discovery::nodes::parse(spec).map(StaticNodes)
    }
}

impl NodeSource for StaticNodes {
    fn watch(self, _stop: CancellationToken) -> mpsc::Receiver<Vec<Entry>> {
        let (tx, rx) = mpsc::channel(1);
        let _ = tx.try_send(self.0);
        rx
    }
}

/// A channel of entry sets, such as the discovery crate's watch.
impl NodeSource for mpsc::Receiver<Vec<Entry>> {
    fn watch(self, _stop: CancellationToken) -> mpsc::Receiver<Vec<Entry>> {
        self
    }
}

/// A discovery watch (`Discovery::watch`: full sets, or errors while the backend is
/// unreachable). Errors are logged and the current node set is kept.
impl NodeSource for mpsc::Receiver<WatchEvent> {
    fn watch(mut self, stop: CancellationToken) -> mpsc::Receiver<Vec<Entry>> {
        let (tx, rx) = mpsc::channel(16);
        tokio::spawn(async move {
            loop {
                let ev = tokio::select! {
                    _ = stop.cancelled() => return,
                    ev = self.recv() => ev,
                };
                match ev {
                    None => return,
                    Some(Ok(set)) => {
                        if tx.send(set).await.is_err() {
                            return;
                        }
                    }
                    Some(Err(e)) => tracing::warn!(error = %e, "discovery failed; keeping the current node set"),
                }
            }
        });
        rx
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[tokio::test]
    async fn static_list_is_sent_once() {
        let mut rx = StaticNodes::parse("nodes://127.0.0.1:[1:2]").unwrap().watch(CancellationToken::new());
        assert_eq!(rx.recv().await.unwrap().len(), 2);
        assert!(rx.recv().await.is_none());
    }

    #[tokio::test]
    async fn watch_errors_keep_the_set() {
        let (tx, raw) = mpsc::channel::<WatchEvent>(4);
        let mut rx = raw.watch(CancellationToken::new());
        tx.send(Err(discovery::DiscoveryError::Etcd { endpoints: "10.0.0.9:2379".into(), reason: "down".into() })).await.unwrap();
        tx.send(Ok(vec![Entry::parse("10.0.0.1:2375").unwrap()])).await.unwrap();
        drop(tx);
        assert_eq!(rx.recv().await.unwrap().len(), 1);
        assert!(rx.recv().await.is_none());
    }
}
