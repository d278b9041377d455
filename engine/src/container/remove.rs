//! `docker rm`: refused while running unless forced (then killed first), the rootfs unmounted,
//! the record and its directory gone, a `destroy` event.
use super::record::Record;
use super::{ContainerError, ContainerService};
use crate::runtime::{Runtime, RuntimeError};

impl<R: Runtime> ContainerService<R> {
    /// Removes a container (`force` kills a running one first).
    pub async fn remove(&self, key: &str, force: bool) -> Result<(), ContainerError> {
        self.remove_with(key, force, false).await
    }

    /// Removes a container; `volumes` also removes its anonymous volumes (`rm -v`, `--rm`).
    #[tracing::instrument(skip_all, fields(container = %key))]
    pub async fn remove_with(&self, key: &str, force: bool, volumes: bool) -> Result<(), ContainerError> {
        let ctr = self.get(key)?;
        let _op = ctr.op.lock().await;
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
        let rec = ctr.record();
        let dir = Record::dir(&self.cfg.data_root, &rec.id);
        self.rootfs.unmount(&dir).map_err(ContainerError::io("unmounting the rootfs of", &dir))?;
        if self.rootfs.is_mounted(&dir) {
            return Err(ContainerError::Conflict(format!("container {} rootfs is still mounted", rec.id)));
        }
        {
            let mut t = self.table.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            t.by_id.remove(&rec.id);
            if t.names.get(&rec.name) == Some(&rec.id) {
                t.names.remove(&rec.name);
            }
        }
        let _ = self.runtime.delete(&rec.id, &self.state_dir(&rec.id)).await;
        // renamed away at once, deleted in the background.
        Record::remove_dir(&self.cfg.data_root, &rec.id);
        ctr.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clear();
        self.execs.forget_container(&rec.id);
        ctr.gen.send_modify(|g| g.removed = true);
        self.publish("destroy", &rec, &[]);
        if volumes {
            self.drop_anonymous(&rec.mounts);
        }
        tracing::info!("removed");
        Ok(())
    }
}
