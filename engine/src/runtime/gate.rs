//! What a container's init waits for before its namespaces and its rootfs: the engine's side of
//! its start, done while the runtime's `create` goes on. The create writes the bundle (reading
//! the container's /etc/passwd and /etc/group from the overlay's layers,
//! [`super::layers::read_in_layers`]) and hands the container to its shim, whose init waits at
//! the gate (`crate::shim::gate`) until every part is done: the rootfs mounted and, when the
//! bundle did not wait for it, the network set up (the netns to enter, the /etc files to mount).
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::watch;

/// Whether the gate opens: `None` while a part is being done, `Some(false)` once one failed.
#[derive(Clone)]
pub struct Gate {
    rx: watch::Receiver<Option<bool>>,
    /// The overlay's directories, top first: the container's upper dir, then its image's layers.
    layers: Vec<PathBuf>,
}

/// One part of what the gate waits for, done by the engine. Dropped without a word, it failed.
pub struct Part {
    shared: Arc<Shared>,
    said: bool,
}

struct Shared {
    tx: watch::Sender<Option<bool>>,
    left: AtomicUsize,
}

/// A gate that opens once each of its `parts` is done, over a rootfs of `layers` (top first: see
/// [`Gate`]).
pub fn new(layers: Vec<PathBuf>, parts: usize) -> (Vec<Part>, Gate) {
    let (tx, rx) = watch::channel((parts == 0).then_some(true));
    let shared = Arc::new(Shared { tx, left: AtomicUsize::new(parts) });
    ((0..parts).map(|_| Part { shared: shared.clone(), said: false }).collect(), Gate { rx, layers })
}

impl Part {
    /// This part is done (`ok`) or failed: a failure shuts the gate for good.
    pub fn done(mut self, ok: bool) {
        self.say(ok);
    }

    fn say(&mut self, ok: bool) {
        if std::mem::replace(&mut self.said, true) {
            return;
        }
        let last = self.shared.left.fetch_sub(1, Ordering::AcqRel) == 1;
        self.shared.tx.send_if_modified(|open| match (*open, ok) {
            (None, false) => open.replace(false).is_none(),
            (None, true) if last => open.replace(true).is_none(),
            _ => false,
        });
    }
}

impl Drop for Part {
    fn drop(&mut self) {
        self.say(false);
    }
}

impl Gate {
    /// A gate with nothing to wait for.
    pub fn open() -> Self {
        new(vec![], 0).1
    }

    /// What is known now: `None` while a part is being done.
    pub fn now(&self) -> Option<bool> {
        *self.rx.borrow()
    }

    /// Resolves once every part is done, or one failed: whether the gate opens.
    pub async fn wait(&mut self) -> bool {
        let done = self.rx.wait_for(Option::is_some).await.map(|m| m.unwrap_or(false));
        done.unwrap_or_else(|_| self.now().unwrap_or(false))
    }

    pub fn layers(&self) -> &[PathBuf] {
        &self.layers
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_gate_opens_once_every_part_is_done() {
        let (mut parts, mut gate) = new(vec![], 2);
        parts.pop().unwrap().done(true);
        assert_eq!(gate.now(), None, "one part is left");
        let mut other = gate.clone();
        parts.pop().unwrap().done(true);
        assert!(gate.wait().await && other.wait().await);
        assert!(Gate::open().wait().await);
    }

    #[tokio::test]
    async fn a_part_that_fails_or_ends_without_a_word_shuts_it() {
        let (mut parts, mut gate) = new(vec![], 2);
        drop(parts.pop());
        assert_eq!(gate.now(), Some(false));
        parts.pop().unwrap().done(true);
        assert!(!gate.wait().await, "a later success does not open it");
        let (mut parts, mut gate) = new(vec![], 1);
        parts.pop().unwrap().done(false);
        assert!(!gate.wait().await);
    }
}
