//! One network namespace made ahead of time, so that a container's start does not wait for
//! `unshare(CLONE_NEWNET)` (about a millisecond on a small host, most of the network's part of
//! a start, and on its path: the rootfs mount it overlaps is shorter).
//!
//! The spare is held by its fd only: nothing on the host names it, so `ip netns` does not list
//! it and an engine that goes away, even by SIGKILL, leaves nothing behind. A taken spare is
//! bind-mounted on the container's netns path, as a new one is, and replaced in the background.
//! A namespace made ahead of time is the one a start would make: nothing is configured in it
//! until it is taken (its loopback is brought up by the plumbing, as for a new one).
use super::netns::{self, NetNs};
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

#[derive(Default)]
pub(super) struct NetnsPool {
    spare: Mutex<Option<NetNs>>,
}

impl NetnsPool {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// The spare, bind-mounted at `path`; none when there is no spare yet or mounting it failed
    /// (the caller makes a new namespace, as without a pool).
    pub fn take_at(&self, path: &Path) -> Option<NetNs> {
        let ns = self.spare.lock().unwrap_or_else(PoisonError::into_inner).take()?;
        match netns::mount_at(&ns, path) {
            Ok(()) => Some(ns),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "mounting the spare netns failed; making a new one");
                None
            }
        }
    }

    /// Makes the spare unless one is held. A failure is only logged: starts make their own.
    pub async fn fill(&self) {
        if self.spare.lock().unwrap_or_else(PoisonError::into_inner).is_some() {
            return;
        }
        match netns::spare().await {
            // A concurrent fill that won the race keeps its spare; this one is dropped.
            Ok(ns) => drop(self.spare.lock().unwrap_or_else(PoisonError::into_inner).get_or_insert(ns)),
            Err(e) => tracing::warn!(error = %e, "making a spare netns failed"),
        }
    }
}
