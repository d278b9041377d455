//! The start of a new container made ahead of its `start` request.
//!
//! Between a `create`'s answer and the `start` that follows (`docker run` sends an attach and a
//! wait in between), the docker CLI takes a few milliseconds of its own. A task of the service
//! uses them, under the container's operation lock: a start that comes meanwhile waits for it.
//!
//! - When nothing of the start would be seen by anyone else before it ([`preparable`]: no
//!   published port, no link, no user-defined network, whose DNS would answer for it, no mount
//!   of any kind, no other container's namespace), it makes the whole start instead, short of
//!   running the process: the rootfs mounted and the network set up while the runtime's
//!   container is created (`launch`), its init waiting ([`Prepared`]). The start then only connects the
//!   attaches and lets the process run.
//! - Otherwise it mounts the rootfs (the overlay and the directories under it, the /etc mount
//!   targets) and makes the container's hosts, hostname and resolv.conf files and its json-file
//!   log, empty, so that the start and the shim only write them (each new file is an inode
//!   allocation on the start's path). dockerd mounts a new container's rootfs at create too (to
//!   make its working dir), and unmounts it again.
//!
//! A start made ahead is the start's only if the record is still the one it was made from (an
//! update, a rename or a network change in between: the start undoes it and makes its own). It
//! is undone when the container is removed, [`PREPARED_FOR`] after it was made if no start came
//! (a `docker create` whose start comes later, or never, holds no process, address or netns),
//! and at the engine's shutdown; an engine killed meanwhile reclaims it at its next start, as it
//! does for a start it did not finish. Until the start, the container is created in every view:
//! no pid, no address in inspect, not in `docker network inspect`, no events. One difference
//! stays: its address is taken ahead, not at the start as with dockerd, so a container created
//! and never started moves the default bridge's round of addresses on by one.
//!
//! A created container that is never started holds its rootfs mount until it is started or
//! removed, or until the next engine start (which reclaims the mounts of containers that are not
//! running). So that many created containers cannot pile up mounts (each one is copied into
//! every new mount namespace), at most [`MAX_AHEAD`] are held ahead at once; past that a start
//! mounts its own, as it always could.
use super::launch::Created;
use super::record::{NetMode, Record, Status};
use super::{ContainerService, Ctr};
use crate::runtime::Runtime;
use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};

/// How many created containers may hold a rootfs mounted, or a start made, ahead of their start
/// at once.
pub(super) const MAX_AHEAD: usize = 16;

/// The containers whose rootfs is being, or was, mounted (or whose start is being, or was, made)
/// ahead and not yet taken by a start or released by a removal or an undo.
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

/// How long a start made ahead waits for its `start` before it is undone.
pub(super) const PREPARED_FOR: std::time::Duration = std::time::Duration::from_secs(2);

/// A start made ahead: what it made, and the record (as JSON) it was made from.
pub(super) struct Prepared {
    record: Option<Vec<u8>>,
    created: Created,
}

/// The record as the start made ahead saw it; none when it cannot be serialised (then the start
/// finds it changed and makes its own).
fn record_bytes(rec: &Record) -> Option<Vec<u8>> {
    serde_json::to_vec(rec).ok()
}

/// Whether a start made ahead of `rec`'s would be seen by no one before the start: see the
/// module's doc.
pub(super) fn preparable(rec: &Record) -> bool {
    let hc = &rec.host_config;
    let joins = [&hc.pid_mode, &hc.ipc_mode].iter().any(|m| m.as_deref().is_some_and(|m| m.starts_with("container:")));
    let network = match &rec.net_mode {
        NetMode::Host | NetMode::None => true,
        NetMode::Container(_) => false,
        NetMode::Bridge => {
            let default_only = matches!(rec.networks.as_slice(), [n] if n.name == crate::network::DEFAULT_NETWORK);
            let links = hc.links.as_ref().is_some_and(|l| !l.is_empty());
            let exposed = rec.config.exposed_ports.as_deref().unwrap_or(&[]);
            default_only && !links && super::ports::specs(hc, exposed).is_ok_and(|p| p.is_empty())
        }
    };
    // No mount at all: the runtime makes mount targets in the rootfs, which a container never
    // started would then show in `docker diff`.
    network && !joins && rec.mounts.is_empty()
}

impl<R: Runtime> ContainerService<R> {
    /// Makes the start of the created container `ctr` ahead, in a task of the service (see the
    /// module's doc). Does nothing when [`MAX_AHEAD`] containers already hold one.
    pub(super) fn mount_ahead(self: &Arc<Self>, ctr: &Arc<Ctr>) {
        let id = ctr.id();
        if !self.rootfs.mounts_ahead() || !self.ahead.reserve(&id) {
            return;
        }
        let (svc, ctr) = (self.clone(), ctr.clone());
        // Runs to its end once it has the container (shutdown waits for it, then undoes what it
        // made: `release_ahead`).
        self.tasks.spawn(async move { svc.ahead_of_start(&ctr, id).await });
    }

    async fn ahead_of_start(self: &Arc<Self>, ctr: &Arc<Ctr>, id: String) {
        // Shutdown does not wait for the lock (a slow `docker export` may hold it); its
        // `release_ahead` gives the place back.
        let stop = self.tasks.token();
        let _op = tokio::select! {
            _ = stop.cancelled() => return,
            op = ctr.op.lock() => op,
        };
        let rec = ctr.record();
        // A start or a removal came first: it had the lock and gave the place back (even a start
        // that failed), and the mount is its business.
        if self.tasks.is_shutting_down()
            || rec.state.status != Status::Created
            || ctr.subscribe().borrow().removed
            || !self.ahead.contains(&id)
        {
            self.ahead.forget(&id);
            return;
        }
        let t0 = std::time::Instant::now();
        if preparable(&rec) {
            return self.prepare(ctr, &rec, t0).await;
        }
        let dir = super::record::Record::dir(&self.cfg.data_root, &id);
        let volatile = rec.auto_remove();
        let layers = rec.layer_dirs.clone();
        // The start writes the /etc files in place and its shim appends to the json-file log
        // (made 0600, as the shim makes it): made here, they cost its path no inode.
        let own_etc_files = !matches!(rec.net_mode, NetMode::Container(_));
        let json_log = super::logopts::log_config(&rec.host_config)
            .is_ok_and(|l| l.driver == crate::runtime::options::LogDriver::JsonFile)
            .then(|| super::logopts::log_file(&dir, &rec.id, crate::runtime::options::LogDriver::JsonFile));
        let fs = self.rootfs.clone();
        let made = self.tasks.spawn_blocking(move || {
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
                self.ahead.forget(&id);
            }
        }
    }

    /// The start of `rec` made ahead, short of running its process (as a start makes it:
    /// `launch`). Under the container's op lock.
    async fn prepare(self: &Arc<Self>, ctr: &Arc<Ctr>, rec: &Record, t0: std::time::Instant) {
        let id = &rec.id;
        // Hidden from here on: the sandbox is in the network's state before the runtime is done.
        ctr.unseen.store(true, Ordering::Release);
        match self.create_runtime(rec, false).await {
            Ok(created) => {
                *ctr.prepared() = Some(Prepared { record: record_bytes(rec), created });
                tracing::debug!(container = %id, us = crate::micros_since(t0), "start made ahead");
                self.undo_prepared_later(ctr.clone());
            }
            // The start makes its own, and reports what fails.
            Err(e) => {
                tracing::debug!(container = %id, error = %e, "making the start ahead failed");
                self.release_prepared(ctr, rec).await;
            }
        }
    }

    /// The start made ahead for `rec`, when there is one and the record is still the one it was
    /// made from; one made from another record is undone. Under the container's op lock.
    pub(super) async fn take_prepared(&self, ctr: &Ctr, rec: &Record) -> Option<Created> {
        let prepared = ctr.prepared().take()?;
        if prepared.record.is_some() && prepared.record == record_bytes(rec) {
            ctr.unseen.store(false, Ordering::Release);
            return Some(prepared.created);
        }
        tracing::debug!("the container changed since its start was made ahead: undone");
        self.release_prepared(ctr, rec).await;
        None
    }

    /// Undoes the start made ahead of `ctr`, if there is one (under its op lock): the process,
    /// network and rootfs mount it made are released. Returns whether there was one.
    pub(super) async fn undo_prepared(&self, ctr: &Ctr) -> bool {
        if ctr.prepared().take().is_none() {
            return false;
        }
        let rec = ctr.record();
        self.release_prepared(ctr, &rec).await;
        tracing::debug!(container = %rec.id, "start made ahead undone");
        true
    }

    /// A create that failed after its start began to be made ahead (its record could not be
    /// written): the container is marked removed, so that a start made ahead that has not begun
    /// does nothing; one under way is waited for, and what it made (process, network, rootfs
    /// mount) is undone.
    pub(super) async fn abandon_ahead(&self, ctr: &Ctr) {
        ctr.gen.send_modify(|g| g.removed = true);
        let _op = ctr.op.lock().await;
        self.undo_prepared(ctr).await;
        self.unmount_ahead(&ctr.id()).await;
    }

    /// Gives `id`'s place back and unmounts the rootfs mounted ahead for it, if it is mounted
    /// (a failure is logged: the next engine start reclaims the mount).
    async fn unmount_ahead(&self, id: &str) {
        self.ahead.forget(id);
        let dir = super::record::Record::dir(&self.cfg.data_root, id);
        let fs = self.rootfs.clone();
        let unmounted = tokio::task::spawn_blocking(move || fs.unmount(&dir)).await.map_err(std::io::Error::other);
        if let Err(e) = unmounted.and_then(|r| r) {
            tracing::warn!(container = %id, error = %e, "unmounting a rootfs mounted ahead failed");
        }
    }

    /// Releases what a start made ahead made (or began to make) for `rec`, then shows the
    /// container again and gives its place back.
    async fn release_prepared(&self, ctr: &Ctr, rec: &Record) {
        self.release_resources(rec).await;
        ctr.unseen.store(false, Ordering::Release);
        self.ahead.forget(&rec.id);
    }

    /// [`Self::undo_prepared`] after [`PREPARED_FOR`], unless a start or a removal took it first.
    /// Shutdown ends the wait (and undoes it itself).
    fn undo_prepared_later(self: &Arc<Self>, ctr: Arc<Ctr>) {
        let (svc, stop) = (self.clone(), self.tasks.token());
        self.tasks.spawn(async move {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(PREPARED_FOR) => {}
            }
            let _op = tokio::select! {
                _ = stop.cancelled() => return,
                op = ctr.op.lock() => op,
            };
            svc.undo_prepared(&ctr).await;
        });
    }

    /// Whether container `id` holds a start made ahead, or one being made or undone (it is not
    /// started: `docker network inspect` leaves its endpoint out).
    pub fn made_ahead(&self, id: &str) -> bool {
        self.get(id).is_ok_and(|c| c.unseen.load(Ordering::Acquire))
    }

    /// At shutdown, once the service's tasks are done: undoes the starts made ahead and unmounts
    /// the rootfs of the created containers that hold one mounted ahead, so that a clean stop
    /// leaves no mount or process behind. A start that came meanwhile took its place back.
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
            if self.undo_prepared(&ctr).await {
                continue;
            }
            self.unmount_ahead(&id).await;
        }
    }
}
