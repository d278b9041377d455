//! `docker rm`: refused while running unless forced (then killed first), the rootfs unmounted,
//! the record and its directory gone, a `destroy` event.
//!
//! The answer comes once nothing a user sees or a new container could clash with is left: the
//! process is gone, its network released (at its exit), the rootfs unmounted, the record's
//! directory renamed away, the id and name free. What is left of the runtime (the shim, the
//! libcontainer state, the cgroups, the state dir under the exec root) is no one's but this
//! container's: it is cleaned by a task of the service after the answer ([`Self::cleanup_runtime`]),
//! awaited at shutdown, and swept at the next engine start if the engine died first
//! ([`Self::sweep_runtime_leftovers`]).
use super::record::{Record, Status};
use super::{ContainerError, ContainerService};
use crate::runtime::{Runtime, RuntimeError};
use std::collections::HashSet;

impl<R: Runtime> ContainerService<R> {
    /// Removes a container (`force` kills a running one first).
    pub async fn remove(&self, key: &str, force: bool) -> Result<(), ContainerError> {
        self.remove_with(key, force, false).await
    }

    /// Removes a container; `volumes` also removes its anonymous volumes (`rm -v`, `--rm`).
    #[tracing::instrument(skip_all, fields(container = %key))]
    pub async fn remove_with(&self, key: &str, force: bool, volumes: bool) -> Result<(), ContainerError> {
        let t0 = std::time::Instant::now();
        let ctr = self.get(key)?;
        let _op = ctr.op.lock().await;
        if ctr.subscribe().borrow().removed {
            // Another removal came first, while this one waited for the container.
            return Err(ContainerError::NotFound(key.to_string()));
        }
        let rec = ctr.record();
        if (rec.running() || rec.state.restarting) && !force {
            let state = if rec.running() { "running" } else { "restarting" };
            return Err(ContainerError::Conflict(format!(
                "You cannot remove a {state} container {}. Stop the container before attempting removal or force remove",
                rec.id
            )));
        }
        // Marked as stopped by the user, so its exit does not schedule a restart.
        self.cancel_restart(&ctr, true);
        let mut rx = ctr.subscribe();
        let exits = rx.borrow().exits;
        // Read after the exit count: an exit is written to the record before it is counted, so
        // one not yet in the record is still to be counted, and the wait below cannot miss it.
        let rec = ctr.record();
        if rec.running() {
            if !force {
                return Err(ContainerError::Conflict(format!(
                    "You cannot remove a running container {}. Stop the container before attempting removal or force remove",
                    rec.id
                )));
            }
            match self.runtime.signal(&rec.id, &self.state_dir(&rec.id), libc::SIGKILL).await {
                Ok(()) => {
                    self.thaw_for_signal(&rec).await;
                    let _ = rx.wait_for(|g| g.exits > exits).await;
                }
                // It exited by itself meanwhile (a restarting container's run, say): its exit
                // is being recorded, and `rm -f` goes on as dockerd's does. A shim gone without
                // an exit fails the removal as before, after a bounded wait.
                Err(RuntimeError::NotRunning(id)) => {
                    let counted = tokio::time::timeout(std::time::Duration::from_secs(10), rx.wait_for(|g| g.exits > exits)).await;
                    if !matches!(counted, Ok(Ok(_))) {
                        return Err(RuntimeError::NotRunning(id).into());
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
        // A start made ahead holds a process, a netns and an address: released first.
        self.undo_prepared(&ctr).await;
        let rec = ctr.record();
        let dir = Record::dir(&self.cfg.data_root, &rec.id);
        self.rootfs.unmount(&dir).map_err(ContainerError::io("unmounting the rootfs of", &dir))?;
        self.ahead.forget(&rec.id);
        if self.rootfs.is_mounted(&dir) {
            return Err(ContainerError::Conflict(format!("container {} rootfs is still mounted", rec.id)));
        }
        // From here on the removal happens: an operation that waited for this container (a
        // start) finds it marked, and nothing can find it by id or name any more.
        ctr.rec.lock().unwrap_or_else(std::sync::PoisonError::into_inner).state.status = Status::Removing;
        {
            let mut t = self.table.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            t.by_id.remove(&rec.id);
            if t.names.get(&rec.name) == Some(&rec.id) {
                t.names.remove(&rec.name);
            }
        }
        // renamed away at once, deleted in the background.
        Record::remove_dir(&self.cfg.data_root, &rec.id);
        self.cleanup_runtime(&rec.id);
        ctr.pending().attaches.clear();
        self.execs.forget_container(&rec.id);
        ctr.gen.send_modify(|g| g.removed = true);
        self.publish("destroy", &rec, &[]);
        if volumes {
            self.drop_anonymous(&rec.mounts);
        }
        tracing::info!(us = crate::micros_since(t0), "removed");
        Ok(())
    }

    /// Cleans what the runtime keeps of removed container `id` (its shim, libcontainer state,
    /// cgroups and state dir) in a task of the service: after the removal's answer, finished
    /// before the engine stops.
    fn cleanup_runtime(&self, id: &str) {
        let runtime = self.runtime.clone();
        let state_dir = self.state_dir(id);
        let id = id.to_string();
        self.tasks.spawn(async move {
            if let Err(e) = runtime.delete(&id, &state_dir).await {
                tracing::warn!(container = %id, error = %e, "runtime cleanup of a removed container failed");
            }
        });
    }

    /// At engine start: what the runtime keeps of containers that have no record any more (an
    /// engine killed between a removal's answer and its cleanup) is cleaned, as the removal would
    /// have. Their state dirs under the exec root (named by the id's first 16 hex digits) lead
    /// to the rest. Returns how many were cleaned.
    pub(super) async fn sweep_runtime_leftovers(&self) -> usize {
        // Every container with a record, loaded or not (an unreadable record is still someone's).
        let mut ids: Vec<String> = self.table.lock().unwrap_or_else(std::sync::PoisonError::into_inner).by_id.keys().cloned().collect();
        if let Ok(rd) = std::fs::read_dir(self.cfg.data_root.join("containers")) {
            ids.extend(rd.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).filter(|n| !super::record::is_trash(n)));
        }
        let known: HashSet<String> =
            ids.iter().filter_map(|id| self.state_dir(id).file_name().map(|n| n.to_string_lossy().into_owned())).collect();
        let Ok(rd) = std::fs::read_dir(&self.cfg.exec_root) else { return 0 };
        let orphans: Vec<String> = rd
            .flatten()
            .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| is_state_dir_name(n) && !known.contains(n))
            .collect();
        let cleanups = orphans.iter().map(|short| async move {
            tracing::info!(container = %short, "cleaning the runtime leftovers of a removed container");
            if let Err(e) = self.runtime.delete(short, &self.cfg.exec_root.join(short)).await {
                tracing::warn!(container = %short, error = %e, "runtime cleanup of a removed container failed");
            }
        });
        futures_util::future::join_all(cleanups).await;
        orphans.len()
    }
}

/// A container's state dir under the exec root is named by the first 16 hex digits of its id
/// (the exec root also holds `runtime`, `netns`, `network`).
fn is_state_dir_name(name: &str) -> bool {
    name.len() == 16 && name.bytes().all(|b| b.is_ascii_hexdigit())
}
