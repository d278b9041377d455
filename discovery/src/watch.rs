//! The watch loop of the polling backends (token, file): fetch, send the full set when it
//! changed (and the first time), send errors as they happen, sleep, repeat.
use crate::{Entry, WatchEvent};
use std::future::Future;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Capacity of every watch channel: a slow consumer delays polling rather than losing sets.
pub const CHANNEL: usize = 16;

/// Sorts and removes duplicates: the canonical form of a set sent by KV backends.
pub fn canonical(mut v: Vec<Entry>) -> Vec<Entry> {
    v.sort();
    v.dedup();
    v
}

/// Spawns a task calling `fetch` every `every` until `stop` is cancelled or the receiver is
/// dropped.
pub fn poll<F, Fut>(every: Duration, stop: CancellationToken, fetch: F) -> mpsc::Receiver<WatchEvent>
where
    F: Fn() -> Fut + Send + 'static,
    Fut: Future<Output = WatchEvent> + Send,
{
    let (tx, rx) = mpsc::channel(CHANNEL);
    tokio::spawn(async move {
        let mut last: Option<Vec<Entry>> = None;
        loop {
            let ev = tokio::select! {
                _ = stop.cancelled() => return,
                _ = tx.closed() => return,
                ev = fetch() => ev,
            };
            let send = match ev {
                Ok(set) if last.as_ref() == Some(&set) => None,
                Ok(set) => {
                    last = Some(set.clone());
                    Some(Ok(set))
                }
                Err(e) => {
                    tracing::debug!(error = %e, "discovery watch error");
                    Some(Err(e))
                }
            };
            if let Some(ev) = send {
                if tx.send(ev).await.is_err() {
                    return;
                }
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tx.closed() => return,
                _ = tokio::time::sleep(every) => {}
            }
        }
    });
    rx
}

/// Sends one set and keeps the channel open until `stop` (static backends).
pub fn once(set: Vec<Entry>, stop: CancellationToken) -> mpsc::Receiver<WatchEvent> {
    let (tx, rx) = mpsc::channel(CHANNEL);
    tokio::spawn(async move {
        if tx.send(Ok(set)).await.is_err() {
            return;
        }
        tokio::select! { _ = stop.cancelled() => {}, _ = tx.closed() => {} }
    });
    rx
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    fn e(s: &str) -> Entry {
        Entry::parse(s).unwrap()
    }

    #[tokio::test]
    async fn sends_only_changes_and_errors() {
        let n = Arc::new(AtomicUsize::new(0));
        let stop = CancellationToken::new();
        let n2 = n.clone();
        let mut rx = poll(Duration::from_millis(5), stop.clone(), move || {
            let i = n2.fetch_add(1, Ordering::SeqCst);
            async move {
                match i {
                    0 | 1 => Ok(vec![e("a:1")]),
                    2 => Err(crate::DiscoveryError::Empty),
                    _ => Ok(vec![e("a:1"), e("b:2")]),
                }
            }
        });
        assert_eq!(rx.recv().await.unwrap().unwrap(), vec![e("a:1")]);
        assert!(rx.recv().await.unwrap().is_err());
        assert_eq!(rx.recv().await.unwrap().unwrap().len(), 2);
        stop.cancel();
        while rx.recv().await.is_some() {}
        assert_eq!(canonical(vec![e("b:1"), e("a:1"), e("b:1")]), vec![e("a:1"), e("b:1")]);
    }
}
