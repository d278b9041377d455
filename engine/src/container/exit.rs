//! What happens when a container's process exits: the exit is read from the runtime, the
//! network and rootfs are released, the exit recorded and announced, and an auto-remove
//! container removed. Also the release of what a start set up (shared with a failed start).
use super::lifecycle::now;
use super::record::{NetMode, Record, Status};
use super::{ContainerError, ContainerService, Ctr};
use crate::runtime::{Exit, Runtime};
use std::sync::Arc;

impl<R: Runtime> ContainerService<R> {
    /// Undoes what start set up: network endpoint, rootfs mount, shim leftovers.
    pub(super) async fn release_resources(&self, rec: &Record) {
        self.release_resources_with(rec, true).await
    }

    /// [`Self::release_resources`]; without `runtime` the runtime's leftovers stay for the
    /// removal that follows to clean after its answer (an auto-remove container's exit).
    async fn release_resources_with(&self, rec: &Record, runtime: bool) {
        let network = async {
            if matches!(rec.net_mode, NetMode::Bridge | NetMode::None) {
                if let Err(e) = self.network.release(&rec.id).await {
                    tracing::warn!(container = %rec.id, error = %e, "network cleanup failed");
                }
            }
        };
        let own = async {
            let dir = Record::dir(&self.cfg.data_root, &rec.id);
            // Off the async worker: the network's release blocks it too (the netns unmount), and
            // each unmount can wait for an RCU grace period, so the two overlap.
            let fs = self.rootfs.clone();
            let unmounted = tokio::task::spawn_blocking(move || {
                super::joins::release_shm(&dir);
                fs.unmount(&dir)
            })
            .await;
            match unmounted {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(container = %rec.id, error = %e, "unmount failed"),
                Err(e) => tracing::warn!(container = %rec.id, error = %e, "unmount task failed"),
            }
            if !runtime {
                return;
            }
            if let Err(e) = self.runtime.delete(&rec.id, &self.state_dir(&rec.id)).await {
                tracing::warn!(container = %rec.id, error = %e, "runtime cleanup failed");
            }
        };
        // Independent (the network's side, the container's own): on the path of every `run --rm`.
        tokio::join!(network, own);
    }

    /// Waits (in a task) for the process to exit, then records it. The wait ends at the
    /// service's shutdown (the container keeps running); an exit being recorded is finished.
    pub(super) fn watch_exit(self: &Arc<Self>, ctr: Arc<Ctr>) {
        let svc = self.clone();
        let stop = self.tasks.token();
        self.tasks.spawn(async move {
            let id = ctr.id();
            let state_dir = svc.state_dir(&id);
            let waited = tokio::select! {
                _ = stop.cancelled() => return,
                w = svc.runtime.wait(&id, &state_dir) => w,
            };
            let exit = match waited {
                Ok(e) => e,
                Err(e) => {
                    tracing::error!(container = %id, error = %e, "lost track of the container's process");
                    Exit { code: 255, oom_killed: false, finished_at: now() }
                }
            };
            tracing::debug!(container = %id, finished_at = %exit.finished_at, "exit reported by the shim");
            svc.on_exit(&ctr, exit).await;
        });
    }

    pub(super) async fn on_exit(self: &Arc<Self>, ctr: &Arc<Ctr>, exit: Exit) {
        let rec = ctr.record();
        let t0 = std::time::Instant::now();
        // An auto-remove container is removed right after (`--rm` excludes a restart policy):
        // its removal cleans the runtime's side after answering `docker run --rm`.
        self.release_resources_with(&rec, !rec.auto_remove()).await;
        tracing::debug!(container = %rec.id, us = crate::micros_since(t0), "resources released at exit");
        let snapshot = {
            let mut r = ctr.rec.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            r.state.status = Status::Exited;
            r.state.pid = 0;
            r.state.exit_code = exit.code;
            r.state.oom_killed = exit.oom_killed;
            r.state.finished_at = exit.finished_at.clone();
            r.state.paused = false;
            // Restarting from the moment the exit is recorded, as dockerd's `SetRestarting`:
            // never an instant where a container its policy restarts looks plainly exited (a
            // `docker rm` without -f then would remove it).
            r.state.restarting = super::restart::restart_wanted(&r);
            r.endpoints.clear();
            r.ports.clear();
            r.clone()
        };
        // An auto-remove container's record is removed right after: writing its exit first
        // (a rename over the old record, which ext4 makes flush the new file) is on the path of
        // every `docker run --rm` for nothing. An engine killed before the removal finds the
        // record running, asks the shim (or its exit file) and records the exit then, and
        // removes it; a removal that fails records the exit (below).
        let removing = !snapshot.state.restarting && snapshot.auto_remove();
        if !removing {
            if let Err(e) = self.save_state(&snapshot) {
                tracing::error!(container = %snapshot.id, error = %e, "saving the exit state failed");
            }
        }
        tracing::debug!(container = %snapshot.id, us = crate::micros_since(t0), "exit saved");
        let code = exit.code.to_string();
        if exit.oom_killed {
            self.publish("oom", &snapshot, &[]);
        }
        self.publish("die", &snapshot, &[("exitCode", code.as_str())]);
        self.network_event("disconnect", &snapshot);
        self.unmount_events(&snapshot);
        tracing::info!(container = %snapshot.id, code = exit.code, "exited");
        ctr.gen.send_modify(|g| {
            g.exits += 1;
            g.running = false;
            g.exit_code = exit.code;
        });
        if !self.schedule_restart(ctr, &snapshot) && removing {
            let svc = self.clone();
            let ctr = ctr.clone();
            self.tasks.spawn(async move {
                let id = ctr.id();
                match svc.remove_with(&id, true, true).await {
                    // A user's `rm -f` came first.
                    Ok(()) | Err(ContainerError::NotFound(_)) => {}
                    Err(e) => {
                        tracing::warn!(container = %id, error = %e, "auto-remove failed");
                        // The container stays: its record says how it ended.
                        if let Err(e) = svc.save_state(&ctr.record()) {
                            tracing::error!(container = %id, error = %e, "saving the exit state failed");
                        }
                    }
                }
            });
        }
    }
}
