//! One network namespace made ahead of time, so that a container's start does not wait for
//! `unshare(CLONE_NEWNET)` (about a millisecond on a small host, most of the network's part of
//! a start, and on its path: the rootfs mount it overlaps is shorter).
//!
//! The spare is held by its fd only: nothing on the host names it, so `ip netns` does not list
//! it and an engine that goes away, even by SIGKILL, leaves nothing behind. A taken spare is
//! bind-mounted on the container's netns path, as a new one is, and replaced in the background
//! [`REFILL_AFTER`] later, when that start is usually done.
//! A namespace made ahead of time is the one a start would make: nothing is configured in it
//! until it is taken (its loopback is brought up by the plumbing, as for a new one).
use super::netns::{self, NetNs};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// How long after a start takes the spare the next one is made. Making one (`unshare` on a
/// thread of its own, ~1 ms of kernel CPU) shares the host's cores with the rest of that start
/// (the shim and libcontainer's processes on a host of 2 cores) when it begins at once. The
/// spare is taken when the start is made ahead (`container::ahead`), ~5 ms before the start
/// request; 25 ms later that start, and a short container's exit and removal, are usually done
/// (a fixed delay: on a loaded host they can still overlap; bench/engine.md, stops 30 and 31).
/// Parallel starts meanwhile make their own.
pub(super) const REFILL_AFTER: std::time::Duration = std::time::Duration::from_millis(25);

#[derive(Default)]
pub(super) struct NetnsPool {
    spare: Mutex<Option<NetNs>>,
    /// A fill is under way: parallel starts (each asks for one) make one spare, not one each.
    filling: AtomicBool,
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

    /// Makes the spare unless one is held or being made. A failure is only logged: starts make
    /// their own.
    pub async fn fill(&self) {
        if self.spare.lock().unwrap_or_else(PoisonError::into_inner).is_some()
            || self.filling.compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire).is_err()
        {
            return;
        }
        // Cleared however the fill ends (a cancelled one too).
        let _filling = Filling(&self.filling);
        match netns::spare().await {
            Ok(ns) => *self.spare.lock().unwrap_or_else(PoisonError::into_inner) = Some(ns),
            Err(e) => tracing::warn!(error = %e, "making a spare netns failed"),
        }
    }
}

/// Clears the pool's `filling` flag when dropped.
struct Filling<'a>(&'a AtomicBool);

impl Drop for Filling<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Needs root (a real namespace); skipped without it.
    #[tokio::test]
    async fn parallel_fills_make_one_spare_and_a_take_mounts_it_once() {
        if !nix::unistd::geteuid().is_root() {
            return;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let pool = NetnsPool::new();
        tokio::join!(pool.fill(), pool.fill(), pool.fill());
        let first = dir.path().join("first");
        let ns = pool.take_at(&first).expect("a spare after the fills");
        assert!(netns::is_netns(&first), "the spare is mounted where it was taken");
        assert_eq!(std::fs::metadata(&first).map(|m| std::os::unix::fs::MetadataExt::ino(&m)).ok(), Some(netns::inode(&ns.fd)));
        assert!(pool.take_at(&dir.path().join("second")).is_none(), "one spare, taken once");
        assert!(!dir.path().join("second").exists());
        pool.fill().await;
        let second = dir.path().join("second");
        let again = pool.take_at(&second).expect("a new spare");
        assert_ne!(netns::inode(&again.fd), netns::inode(&ns.fd), "a new namespace each time");
        netns::remove(&first).unwrap();
        netns::remove(&second).unwrap();
    }
}
