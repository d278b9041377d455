//! The rootfs of a new container mounted ahead of its start.
//!
//! Between a `create`'s answer and the `start` that follows (`docker run` sends an attach and a
//! wait in between), the docker CLI takes a few milliseconds of its own. The overlay mount and
//! the directories under it (the upper and work dirs, the /etc mount targets) are the longest
//! branch of a start, so a task of the service makes them in that time, under the container's
//! operation lock: a start that comes meanwhile waits for it and then finds the rootfs mounted
//! (mounting is idempotent). The same task makes the container's hosts, hostname and resolv.conf
//! files and its json-file log, empty, so that the start and the shim only write them (each new
//! file is an inode allocation on the start's path). dockerd mounts a new container's rootfs at
//! create too (to make its working dir), and unmounts it again.
//!
//! A created container that is never started holds its mount until it is started or removed, or
//! until the next engine start (which reclaims the mounts of containers that are not running).
//! So that many created containers cannot pile up mounts (each one is copied into every new mount
//! namespace), at most [`MAX_AHEAD`] are held ahead at once; past that a start mounts its own, as
//! it always could.
use super::record::Status;
use super::{ContainerService, Ctr};
use crate::runtime::Runtime;
use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard};

/// How many created containers may hold a rootfs mounted ahead of their start at once.
pub(super) const MAX_AHEAD: usize = 16;

/// The containers whose rootfs is being, or was, mounted ahead and not yet taken by a start or
/// released by a removal.
#[derive(Default)]
pub(super) struct Ahead {
    ids: Mutex<HashSet<String>>,
}

impl Ahead {
    fn ids(&self) -> MutexGuard<'_, HashSet<String>> {
        self.ids.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Takes a place for `id`; false when all places are taken (or `id` has one).
    fn reserve(&self, id: &str) -> bool {
        let mut ids = self.ids();
        if ids.len() >= MAX_AHEAD || ids.contains(id) {
            return false;
        }
        ids.insert(id.to_string())
    }

    /// Gives `id`'s place back: its start took the mount over, or it is being removed.
    pub(super) fn forget(&self, id: &str) {
        self.ids().remove(id);
    }

    /// Whether `id` holds a place.
    fn contains(&self, id: &str) -> bool {
        self.ids().contains(id)
    }

    /// The containers holding a place.
    pub(super) fn list(&self) -> Vec<String> {
        self.ids().iter().cloned().collect()
    }

    /// How many places are taken.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.ids().len()
    }
}

impl<R: Runtime> ContainerService<R> {
    /// Mounts the rootfs of the created container `ctr` in a task of the service (see the
    /// module's doc). Does nothing when [`MAX_AHEAD`] containers already hold one.
    pub(super) fn mount_ahead(&self, ctr: &Arc<Ctr>) {
        let id = ctr.id();
        if !self.rootfs.mounts_ahead() || !self.ahead.reserve(&id) {
            return;
        }
        let (ctr, ahead, fs, tasks) = (ctr.clone(), self.ahead.clone(), self.rootfs.clone(), self.tasks.clone());
        let dir = super::record::Record::dir(&self.cfg.data_root, &id);
        // Dropped once shutdown begins; a mount under way is waited for, and the shutdown
        // unmounts what is held ahead (`release_ahead`).
        self.tasks.spawn_until_shutdown(async move {
            let _op = ctr.op.lock().await;
            let rec = ctr.record();
            // A start or a removal came first: it had the lock and gave the place back (even a
            // start that failed), and the mount is its business.
            if rec.state.status != Status::Created || ctr.subscribe().borrow().removed || !ahead.contains(&id) {
                ahead.forget(&id);
                return;
            }
            let t0 = std::time::Instant::now();
            let volatile = rec.auto_remove();
            let layers = rec.layer_dirs;
            // The start writes the /etc files in place and its shim appends to the json-file
            // log (made 0600, as the shim makes it): made here, they cost its path no inode.
            let own_etc_files = !matches!(rec.net_mode, super::record::NetMode::Container(_));
            let json_log = super::logopts::log_config(&rec.host_config)
                .is_ok_and(|l| l.driver == crate::runtime::options::LogDriver::JsonFile)
                .then(|| super::logopts::log_file(&dir, &rec.id, crate::runtime::options::LogDriver::JsonFile));
            let made = tasks.spawn_blocking(move || {
                if own_etc_files {
                    if let Err(e) = super::etcfiles::make_empty(&dir) {
                        tracing::debug!(error = %e, "making the /etc files ahead failed");
                    }
                }
                if let Some(log) = json_log {
                    if let Err(e) = crate::fsutil::create_empty(&log, 0o600) {
                        tracing::debug!(error = %e, "making the log file ahead failed");
                    }
                }
                fs.mount(&dir, &layers, volatile)
            });
            match made.await.map_err(|e| e.to_string()).and_then(|m| m.map_err(|e| e.to_string())) {
                Ok(_) => tracing::debug!(container = %id, us = crate::micros_since(t0), "rootfs mounted ahead of the start"),
                // The start mounts it (and reports what fails) as it would have without this.
                Err(e) => {
                    tracing::debug!(container = %id, error = %e, "mounting the rootfs ahead failed");
                    ahead.forget(&id);
                }
            }
        });
    }

    /// At shutdown, once the service's tasks are done: unmounts the rootfs of the created
    /// containers that hold one mounted ahead, so that a clean stop leaves no mount behind. A
    /// start that came meanwhile took its place back and mounts its own.
    pub(super) async fn release_ahead(&self) {
        for id in self.ahead.list() {
            let Ok(ctr) = self.get(&id) else {
                self.ahead.forget(&id);
                continue;
            };
            let _op = ctr.op.lock().await;
            if !self.ahead.contains(&id) || ctr.record().state.status != Status::Created {
                continue;
            }
            self.ahead.forget(&id);
            let dir = super::record::Record::dir(&self.cfg.data_root, &id);
            let fs = self.rootfs.clone();
            let unmounted = tokio::task::spawn_blocking(move || fs.unmount(&dir)).await.map_err(std::io::Error::other);
            if let Err(e) = unmounted.and_then(|r| r) {
                tracing::warn!(container = %id, error = %e, "unmounting a rootfs mounted ahead failed");
            }
        }
    }
}
