//! start, attach, wait, stop, kill (the exit and the release of resources are in `exit.rs`).
use super::record::{Record, Status};
use super::{ContainerError, ContainerService, Ctr, Gen, PendingAttach};
use crate::runtime::{AttachOpts, AttachStream, Runtime, RuntimeError};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;

/// What `wait` waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitCondition {
    NotRunning,
    NextExit,
    Removed,
}

impl std::str::FromStr for WaitCondition {
    type Err = ContainerError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "" | "not-running" => Ok(WaitCondition::NotRunning),
            "next-exit" => Ok(WaitCondition::NextExit),
            "removed" => Ok(WaitCondition::Removed),
            o => Err(ContainerError::InvalidParam(format!("invalid condition: \"{o}\""))),
        }
    }
}

/// Parses `SIGKILL`, `KILL`, `kill` or `9`.
pub fn parse_signal(s: &str) -> Result<i32, ContainerError> {
    if s.is_empty() {
        return Ok(libc::SIGKILL);
    }
    if let Ok(n) = s.parse::<i32>() {
        if (1..=64).contains(&n) {
            return Ok(n);
        }
    }
    let up = s.to_ascii_uppercase();
    let name = if up.starts_with("SIG") { up } else { format!("SIG{up}") };
    name.parse::<nix::sys::signal::Signal>().map(|s| s as i32).map_err(|_| ContainerError::InvalidParam(format!("Invalid signal: {s}")))
}

pub(super) fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

/// Who starts a container: what a start must still find true once it holds the container.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum StartBy {
    /// `docker start`: also resets the restart count and a user's earlier stop.
    User,
    /// The restart policy after a backoff: only while the restart is still pending (a user's
    /// stop, kill or removal in the meantime ends it).
    Backoff,
    /// The restart policy at engine start (`always`, `unless-stopped`, or a restart that was
    /// pending when the engine went away).
    EngineStart,
}

impl<R: Runtime> ContainerService<R> {
    /// `docker start`: also resets the restart count and a user's earlier stop.
    pub async fn start(self: &Arc<Self>, key: &str) -> Result<(), ContainerError> {
        // In a task of the service: a start runs to its end even when its client goes away (its
        // future dropped half-way would leave what it made, a start made ahead taken over
        // included, to no one until the next engine start).
        use tracing::Instrument;
        let (svc, key) = (self.clone(), key.to_string());
        let start = async move { svc.start_with(&key, StartBy::User).await };
        self.tasks.spawn(start.in_current_span()).await.map_err(ContainerError::task("starting the container"))?
    }

    /// A start by `by`: a start by the restart policy keeps the restart count.
    #[tracing::instrument(skip_all, fields(container = %key, by = ?by))]
    pub(super) async fn start_with(self: &Arc<Self>, key: &str, by: StartBy) -> Result<(), ContainerError> {
        let manual = by == StartBy::User;
        let ctr = self.get(key)?;
        let op = ctr.op.lock().await;
        if manual {
            self.cancel_restart(&ctr, false);
        } else if by == StartBy::Backoff && !ctr.record().state.restarting {
            // A stop, kill or start by the user came first, while this start waited.
            tracing::debug!("restart by policy no longer pending");
            return Ok(());
        }
        let rec = ctr.record();
        match rec.state.status {
            Status::Running => return Err(ContainerError::NotModified("container already started".into())),
            Status::Removing | Status::Dead => {
                return Err(ContainerError::Conflict(format!("container {} is marked for removal and cannot be started", rec.id)))
            }
            _ => {}
        }
        let started = std::time::Instant::now();
        match self.start_inner(&ctr, &rec).await {
            Ok(pid) => {
                let mut r = ctr.rec.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                r.state.status = Status::Running;
                r.state.pid = pid;
                r.state.exit_code = 0;
                r.state.error.clear();
                r.state.oom_killed = false;
                r.state.started_at = now();
                r.state.finished_at = super::record::ZERO_TIME.into();
                r.state.restarting = false;
                r.state.paused = false;
                r.state.health = super::health::initial(&r);
                if manual {
                    r.manually_stopped = false;
                    r.restart_count = 0;
                }
                let snapshot = r.clone();
                drop(r);
                ctr.pending().draining = false;
                // a user's start after a stop must survive a power loss (unless-stopped).
                let saved = if manual && rec.manually_stopped && super::restart::stop_matters(&rec.host_config) {
                    self.save(&snapshot)
                } else {
                    self.save_state(&snapshot)
                };
                // The process runs whatever the disk says: it is watched and announced all the
                // same (as dockerd, which logs a failed checkpoint after a start). An engine
                // restart asks the shim, so a stale record is corrected then.
                if let Err(e) = saved {
                    tracing::error!(error = %e, "recording the start failed; the container runs");
                }
                ctr.gen.send_modify(|g| {
                    g.starts += 1;
                    g.running = true;
                });
                self.publish("start", &snapshot, &[]);
                tracing::info!(pid, ms = started.elapsed().as_millis() as u64, "started");
                self.watch_exit(ctr.clone());
                self.watch_health(ctr.clone());
                Ok(())
            }
            Err(e) => {
                tracing::warn!(error = %e, "start failed");
                self.release_resources(&rec).await;
                self.network_event("disconnect", &rec);
                let msg = e.to_string();
                // dockerd's exit codes for a command that cannot run (127 missing, 126 not
                // executable) come typed from the runtime; any other failure is 128.
                let (code, invalid) = match &e {
                    ContainerError::Runtime(RuntimeError::Exec { code, .. }) => (*code, true),
                    _ => (128, false),
                };
                let snapshot = {
                    let mut r = ctr.rec.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                    r.state.error = msg.clone();
                    r.state.exit_code = code;
                    r.endpoints.clear();
                    r.ports.clear();
                    r.clone()
                };
                let _ = self.save(&snapshot);
                // Attaches waiting for this start get nothing: close them.
                {
                    let mut p = ctr.pending();
                    p.attaches.clear();
                    p.draining = false;
                }
                ctr.gen.send_modify(|g| g.exit_code = code);
                drop(op);
                if snapshot.auto_remove() {
                    if let Err(re) = self.remove_with(&snapshot.id, true, true).await {
                        tracing::warn!(error = %re, "auto-remove after a failed start failed");
                    }
                }
                Err(if invalid { ContainerError::InvalidParam(msg) } else { e })
            }
        }
    }

    async fn start_inner(&self, ctr: &Arc<Ctr>, rec: &Record) -> Result<u32, ContainerError> {
        // A rootfs mounted (or a start made) ahead is this start's now.
        self.ahead.forget(&rec.id);
        let t0 = std::time::Instant::now();
        let created = match self.take_prepared(ctr, rec).await {
            Some(created) => {
                self.network_event("connect", rec);
                tracing::debug!(us = crate::micros_since(t0), "runtime created ahead");
                created
            }
            None => self.create_runtime(rec, true).await?,
        };
        {
            let mut r = ctr.rec.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            r.endpoints = created.endpoints;
            r.ports = created.ports;
        }
        // Attaches that arrived before start are connected now, so they see the first byte; one
        // that comes from here on waits for the start (`Pending::draining`).
        let pending = {
            let mut p = ctr.pending();
            p.draining = true;
            std::mem::take(&mut p.attaches)
        };
        let state_dir = self.state_dir(&rec.id);
        for p in pending {
            match self.runtime.attach(&rec.id, &state_dir, p.opts).await {
                Ok(stream) => {
                    let _ = p.tx.send(stream);
                }
                Err(e) => tracing::warn!(error = %e, "connecting an early attach failed"),
            }
        }
        tracing::debug!(us = crate::micros_since(t0), "network ready");
        let pid = self.runtime.start(&rec.id, &state_dir).await?;
        tracing::debug!(us = crate::micros_since(t0), "runtime started");
        Ok(pid)
    }

    /// Resolves when `cond` holds; returns the exit code.
    pub async fn wait(&self, key: &str, cond: WaitCondition) -> Result<impl std::future::Future<Output = Gen> + Send, ContainerError> {
        let ctr = self.get(key)?;
        let mut rx = ctr.subscribe();
        let at = *rx.borrow();
        Ok(async move {
            loop {
                let g = *rx.borrow_and_update();
                let done = match cond {
                    WaitCondition::NotRunning => !g.running,
                    WaitCondition::NextExit => g.exits > at.exits,
                    WaitCondition::Removed => g.removed,
                };
                if done {
                    return g;
                }
                if rx.changed().await.is_err() {
                    // The container is gone: it was removed.
                    let mut g = *rx.borrow();
                    g.removed = true;
                    return g;
                }
            }
        })
    }

    /// An attach stream. Before start it resolves when the container starts.
    pub async fn attach(&self, key: &str, opts: AttachOpts) -> Result<oneshot::Receiver<AttachStream>, ContainerError> {
        let ctr = self.get(key)?;
        let rec = ctr.record();
        let (tx, rx) = oneshot::channel();
        match rec.state.status {
            Status::Running => {
                let s = self.runtime.attach(&rec.id, &self.state_dir(&rec.id), opts).await?;
                let _ = tx.send(s);
            }
            // `docker start -a` attaches to a created or exited container, then starts it.
            Status::Created | Status::Exited => {
                // Before any start took the attaches (`docker run` attaches while the start is
                // being made ahead, under the op lock): the start will find this one.
                let tx = {
                    let mut p = ctr.pending();
                    let waiting = matches!(ctr.record().state.status, Status::Created | Status::Exited);
                    if !p.draining && waiting {
                        p.attaches.push(PendingAttach { opts, tx });
                        return Ok(rx);
                    }
                    tx
                };
                // A start is under way: once it is done, the container runs (or it failed and
                // the next start connects this one).
                let _op = ctr.op.lock().await;
                if ctr.record().running() {
                    let s = self.runtime.attach(&rec.id, &self.state_dir(&rec.id), opts).await?;
                    let _ = tx.send(s);
                } else {
                    ctr.pending().attaches.push(PendingAttach { opts, tx });
                }
            }
            _ => {
                return Err(ContainerError::Conflict("You cannot attach to a stopped container, start it first".into()));
            }
        }
        Ok(rx)
    }

    pub async fn kill(&self, key: &str, signal: &str) -> Result<(), ContainerError> {
        let sig = parse_signal(signal)?;
        let ctr = self.get(key)?;
        let rec = ctr.record();
        if rec.state.restarting {
            self.cancel_restart(&ctr, true);
            return Ok(());
        }
        if !rec.running() {
            return Err(ContainerError::Conflict(format!("Container {} is not running", rec.id)));
        }
        self.cancel_restart(&ctr, true);
        self.runtime.signal(&rec.id, &self.state_dir(&rec.id), sig).await?;
        self.thaw_for_signal(&rec).await;
        let s = sig.to_string();
        self.publish("kill", &rec, &[("signal", s.as_str())]);
        Ok(())
    }

    /// SIGTERM (or the image's StopSignal), then SIGKILL after `timeout`; returns after the exit is recorded.
    #[tracing::instrument(skip_all, fields(container = %key))]
    pub async fn stop(&self, key: &str, timeout: Option<i64>) -> Result<(), ContainerError> {
        let ctr = self.get(key)?;
        let _op = ctr.op.lock().await;
        self.stop_locked(&ctr, timeout).await
    }

    async fn stop_locked(&self, ctr: &Arc<Ctr>, timeout: Option<i64>) -> Result<(), ContainerError> {
        let rec = ctr.record();
        if rec.state.restarting {
            self.cancel_restart(ctr, true);
            self.publish("stop", &rec, &[]);
            return Ok(());
        }
        if !rec.running() {
            return Err(ContainerError::NotModified("container already stopped".into()));
        }
        self.cancel_restart(ctr, true);
        let mut rx = ctr.subscribe();
        let exits = rx.borrow().exits;
        let sig = rec.config.stop_signal.as_deref().map(parse_signal).transpose()?.unwrap_or(libc::SIGTERM);
        let secs = timeout.or(rec.config.stop_timeout).unwrap_or(10);
        let sd = self.state_dir(&rec.id);
        let _ = self.runtime.signal(&rec.id, &sd, sig).await;
        self.thaw_for_signal(&rec).await;
        let exited = |rx: &mut tokio::sync::watch::Receiver<Gen>| {
            let mut rx = rx.clone();
            async move {
                let _ = rx.wait_for(|g| g.exits > exits).await;
            }
        };
        if secs < 0 || tokio::time::timeout(Duration::from_secs(secs as u64), exited(&mut rx)).await.is_err() {
            tracing::info!("did not stop in time; killing");
            let _ = self.runtime.signal(&rec.id, &sd, libc::SIGKILL).await;
            exited(&mut rx).await;
        }
        self.publish("stop", &rec, &[]);
        Ok(())
    }

    /// Publishes a network event (`connect`, `disconnect`) for the container's network.
    pub(super) fn network_event(&self, action: &str, rec: &Record) {
        let nets: Vec<(String, String)> = if rec.networks.is_empty() {
            self.network.network(rec.net_mode.name()).ok().map(|n| (n.id, n.name)).into_iter().collect()
        } else {
            rec.networks.iter().map(|n| (n.id.clone(), n.name.clone())).collect()
        };
        for (id, name) in nets {
            self.events.publish("network", action, &id, &[("container", &rec.id), ("name", &name), ("type", "bridge")]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn signals() {
        assert_eq!(parse_signal("SIGKILL").unwrap(), 9);
        assert_eq!(parse_signal("term").unwrap(), 15);
        assert_eq!(parse_signal("HUP").unwrap(), 1);
        assert_eq!(parse_signal("10").unwrap(), 10);
        assert_eq!(parse_signal("").unwrap(), 9);
        assert!(parse_signal("NOPE").is_err());
        assert!(parse_signal("99").is_err());
    }
    #[test]
    fn conditions() {
        assert_eq!("".parse::<WaitCondition>().unwrap(), WaitCondition::NotRunning);
        assert_eq!("removed".parse::<WaitCondition>().unwrap(), WaitCondition::Removed);
        assert!("x".parse::<WaitCondition>().is_err());
    }
}
