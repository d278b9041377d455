//! `docker exec`: exec instances of running containers (create, start, inspect, resize).
//!
//! An instance is created with its config, started once (the runtime runs the process in the
//! container's namespaces and cgroups), and kept after it has exited so `GET /exec/{id}/json`
//! can report its exit code; exited instances are forgotten after [`KEEP_EXITED`].
use super::{ContainerError, ContainerService};
use crate::runtime::{ExecSpec, FdStream, Runtime, RuntimeError};
use bollard_stubs::models::ExecConfig;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// How long a tty exec waits for the client's first resize before it starts.
const TTY_SIZE_WAIT: Duration = Duration::from_millis(100);
/// How long an exited exec instance stays inspectable.
const KEEP_EXITED: Duration = Duration::from_secs(300);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Every exec instance of the engine, by id.
#[derive(Default)]
pub struct ExecTable {
    map: Mutex<HashMap<String, Arc<Exec>>>,
}

#[derive(Default)]
struct ExecState {
    started: bool,
    running: bool,
    exit_code: Option<i32>,
    pid: u32,
    pty: Option<OwnedFd>,
    ended: Option<Instant>,
}

/// One exec instance.
pub struct Exec {
    pub id: String,
    pub container_id: String,
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    pub user: String,
    pub tty: bool,
    pub privileged: bool,
    pub attach_stdin: bool,
    pub attach_stdout: bool,
    pub attach_stderr: bool,
    pub detach_keys: String,
    /// The tty size: from `ConsoleSize`, or the client's first resize.
    size: watch::Sender<Option<(u16, u16)>>,
    state: Mutex<ExecState>,
    /// Becomes true once the exit code is recorded.
    done: watch::Sender<bool>,
}

/// What `exec_start` hands the API: the streams to pump, or the error text to show.
pub struct ExecIo {
    pub tty: bool,
    pub stdin: Option<FdStream>,
    pub stdout: Option<FdStream>,
    pub stderr: Option<FdStream>,
    /// Set when the command could not start (dockerd writes it on the attach stream).
    pub failure: Option<String>,
    pub detach_keys: String,
    /// Becomes true once the exit code is recorded (the stream may end then).
    pub done: watch::Receiver<bool>,
}

impl Exec {
    fn command(&self) -> String {
        self.args.join(" ")
    }

    fn finish(&self, code: i32) {
        {
            let mut st = lock(&self.state);
            st.running = false;
            st.exit_code = Some(code);
            st.pty = None;
            st.ended = Some(Instant::now());
        }
        self.done.send_replace(true);
    }

    /// `GET /exec/{id}/json`.
    pub fn inspect(&self) -> Value {
        let st = lock(&self.state);
        let (entrypoint, arguments) = self.args.split_first().map(|(e, a)| (e.clone(), a.to_vec())).unwrap_or_default();
        json!({
            "ID": self.id,
            "Running": st.running,
            "ExitCode": st.exit_code,
            "ProcessConfig": {
                "tty": self.tty,
                "entrypoint": entrypoint,
                "arguments": arguments,
                "privileged": self.privileged,
                "user": self.user,
            },
            "OpenStdin": self.attach_stdin,
            "OpenStderr": self.attach_stderr,
            "OpenStdout": self.attach_stdout,
            "CanRemove": false,
            "ContainerID": self.container_id,
            "DetachKeys": self.detach_keys,
            "Pid": st.pid,
        })
    }
}

impl ExecTable {
    fn get(&self, id: &str) -> Result<Arc<Exec>, ContainerError> {
        lock(&self.map).get(id).cloned().ok_or_else(|| ContainerError::ExecNotFound(id.to_string()))
    }

    fn insert(&self, e: Arc<Exec>) {
        let mut map = lock(&self.map);
        map.retain(|_, x| lock(&x.state).ended.is_none_or(|t| t.elapsed() < KEEP_EXITED));
        map.insert(e.id.clone(), e);
    }

    /// Ids of the container's exec instances that have not exited (inspect's `ExecIDs`; dockerd
    /// drops an exec from there when it exits, though it stays inspectable).
    pub fn of_container(&self, container_id: &str) -> Vec<String> {
        lock(&self.map)
            .values()
            .filter(|e| e.container_id == container_id && lock(&e.state).ended.is_none())
            .map(|e| e.id.clone())
            .collect()
    }

    /// Forgets the instances of a removed container.
    pub fn forget_container(&self, container_id: &str) {
        lock(&self.map).retain(|_, e| e.container_id != container_id);
    }
}

/// Reads a stream to its end in the background (until the process closes it); returns None.
fn drain(tasks: &crate::tasks::Tasks, s: Option<FdStream>) -> Option<FdStream> {
    if let Some(mut s) = s {
        tasks.spawn_until_shutdown(async move {
            let _ = tokio::io::copy(&mut s, &mut tokio::io::sink()).await;
        });
    }
    None
}

/// Docker's `ConsoleSize` `[height, width]`.
pub fn console_size(v: Option<&[usize]>) -> Option<(u16, u16)> {
    match v {
        Some([h, w]) if *h > 0 && *w > 0 => Some(((*h).min(u16::MAX as usize) as u16, (*w).min(u16::MAX as usize) as u16)),
        _ => None,
    }
}

fn merge_env(base: &[String], over: &[String]) -> Vec<String> {
    let key = |e: &str| e.split('=').next().unwrap_or_default().to_string();
    let mut out: Vec<String> = base.iter().filter(|b| !over.iter().any(|o| key(o) == key(b))).cloned().collect();
    out.extend(over.iter().cloned());
    out
}

impl<R: Runtime> ContainerService<R> {
    /// `POST /containers/{id}/exec`: returns the new exec id.
    pub fn exec_create(&self, key: &str, cfg: ExecConfig) -> Result<String, ContainerError> {
        let ctr = self.get(key)?;
        let rec = ctr.record();
        self.check_exec_target(&rec)?;
        let args = cfg.cmd.clone().unwrap_or_default();
        if args.is_empty() {
            return Err(ContainerError::InvalidParam("No exec command specified".into()));
        }
        let id = crate::ids::new_id();
        let exec = Arc::new(Exec {
            id: id.clone(),
            container_id: rec.id.clone(),
            env: merge_env(rec.config.env.as_deref().unwrap_or(&[]), cfg.env.as_deref().unwrap_or(&[])),
            cwd: cfg
                .working_dir
                .clone()
                .filter(|w| !w.is_empty())
                .or_else(|| rec.config.working_dir.clone().filter(|w| !w.is_empty()))
                .unwrap_or_else(|| "/".into()),
            user: cfg.user.clone().filter(|u| !u.is_empty()).or_else(|| rec.config.user.clone()).unwrap_or_default(),
            tty: cfg.tty.unwrap_or(false),
            privileged: cfg.privileged.unwrap_or(false),
            attach_stdin: cfg.attach_stdin.unwrap_or(false),
            attach_stdout: cfg.attach_stdout.unwrap_or(false),
            attach_stderr: cfg.attach_stderr.unwrap_or(false),
            detach_keys: cfg.detach_keys.clone().unwrap_or_default(),
            size: watch::channel(console_size(cfg.console_size.as_deref())).0,
            args,
            state: Mutex::default(),
            done: watch::channel(false).0,
        });
        if !exec.cwd.starts_with('/') {
            return Err(ContainerError::InvalidParam(format!(
                "the working directory '{}' is invalid, it needs to be an absolute path",
                exec.cwd
            )));
        }
        let cmd = exec.command();
        self.execs.insert(exec);
        self.publish(&format!("exec_create: {cmd}"), &rec, &[("execID", id.as_str())]);
        Ok(id)
    }

    fn check_exec_target(&self, rec: &super::record::Record) -> Result<(), ContainerError> {
        // dockerd counts a container waiting to restart as running, but refuses exec into it.
        if rec.state.restarting && !rec.running() {
            return Err(ContainerError::Conflict(format!("Container {} is restarting, wait until the container is running", rec.id)));
        }
        if !rec.running() {
            return Err(ContainerError::Conflict(format!("Container {} is not running", rec.id)));
        }
        if rec.state.paused {
            return Err(ContainerError::Conflict(format!("Container {} is paused, unpause the container before exec", rec.id)));
        }
        Ok(())
    }

    /// The checks of `exec_start` without starting anything: the API answers errors before it
    /// hijacks the connection and starts the process after (so no output can precede the
    /// `101` on the wire). Returns `(tty, detach_keys)`.
    pub fn exec_check(&self, exec_id: &str) -> Result<(bool, String), ContainerError> {
        let exec = self.execs.get(exec_id)?;
        if lock(&exec.state).started {
            return Err(ContainerError::Conflict(format!("Error: Exec command {exec_id} is already running")));
        }
        self.check_exec_target(&self.get(&exec.container_id)?.record())?;
        Ok((exec.tty, exec.detach_keys.clone()))
    }

    /// `POST /exec/{id}/start`: runs the process. With `detach` its stdio is /dev/null.
    pub async fn exec_start(self: &Arc<Self>, exec_id: &str, detach: bool) -> Result<ExecIo, ContainerError> {
        let exec = self.execs.get(exec_id)?;
        {
            let mut st = lock(&exec.state);
            if st.started {
                return Err(ContainerError::Conflict(if st.running {
                    format!("Error: Exec command {exec_id} is already running")
                } else {
                    format!("Error: Exec command {exec_id} has already run")
                }));
            }
            st.started = true;
        }
        let ctr = self.get(&exec.container_id)?;
        let rec = ctr.record();
        if let Err(e) = self.check_exec_target(&rec) {
            exec.finish(126);
            return Err(e);
        }
        let spec = ExecSpec {
            exec_id: exec.id.clone(),
            args: exec.args.clone(),
            env: exec.env.clone(),
            cwd: exec.cwd.clone(),
            user: exec.user.clone(),
            tty: exec.tty,
            stdin: exec.attach_stdin && !detach,
            privileged: exec.privileged,
            detach,
            console_size: None,
        };
        let mut spec = spec;
        if exec.tty && !detach {
            // The client resizes right after the 101: give the process that size from its
            // start (dockerd's slower start usually lets the resize win the same race).
            let mut size = exec.size.subscribe();
            let _ = tokio::time::timeout(TTY_SIZE_WAIT, size.wait_for(|s| s.is_some())).await;
            spec.console_size = *size.borrow();
        }
        let mut io = ExecIo {
            tty: exec.tty,
            stdin: None,
            stdout: None,
            stderr: None,
            failure: None,
            detach_keys: exec.detach_keys.clone(),
            done: exec.done.subscribe(),
        };
        let p = match self.runtime.exec(&rec.id, &self.state_dir(&rec.id), &spec).await {
            Ok(p) => p,
            Err(RuntimeError::Exec { message, code }) => {
                tracing::info!(container = %rec.id, exec = %exec.id, code, "exec could not start: {message}");
                exec.finish(code);
                io.failure = Some(message);
                return Ok(io);
            }
            Err(e) => {
                exec.finish(126);
                return Err(e.into());
            }
        };
        {
            let mut st = lock(&exec.state);
            st.running = true;
            st.pid = p.pid;
            st.pty = p.pty;
        }
        let cmd = exec.command();
        self.publish(&format!("exec_start: {cmd}"), &rec, &[("execID", exec.id.as_str())]);
        io.stdin = p.stdin;
        // Output nobody attached to is read and dropped (the process must not get EPIPE).
        io.stdout = if exec.attach_stdout || exec.tty { p.stdout } else { drain(&self.tasks, p.stdout) };
        io.stderr = if exec.attach_stderr { p.stderr } else { drain(&self.tasks, p.stderr) };
        let svc = self.clone();
        let exit = p.exit;
        self.tasks.spawn_until_shutdown(async move {
            let code = exit.await.unwrap_or(255);
            exec.finish(code);
            let c = code.to_string();
            svc.publish("exec_die", &rec, &[("execID", exec.id.as_str()), ("exitCode", c.as_str())]);
            tracing::debug!(container = %rec.id, exec = %exec.id, code, "exec exited");
        });
        Ok(io)
    }

    /// `POST /containers/{id}/resize`: the tty size of a container started with `-t`.
    pub async fn resize(&self, key: &str, height: u16, width: u16) -> Result<(), ContainerError> {
        let rec = self.get(key)?.record();
        if !rec.running() {
            return Err(ContainerError::Conflict(format!("Container {} is not running", rec.id)));
        }
        Ok(self.runtime.resize(&rec.id, &self.state_dir(&rec.id), height, width).await?)
    }

    pub fn exec_inspect(&self, exec_id: &str) -> Result<Value, ContainerError> {
        Ok(self.execs.get(exec_id)?.inspect())
    }

    /// `POST /exec/{id}/resize`.
    pub fn exec_resize(&self, exec_id: &str, height: u16, width: u16) -> Result<(), ContainerError> {
        let exec = self.execs.get(exec_id)?;
        let st = lock(&exec.state);
        match &st.pty {
            Some(pty) => crate::runtime::fdstream::resize_pty(pty.as_raw_fd(), height, width).map_err(ContainerError::Resize),
            None if st.running => Ok(()),
            None if st.ended.is_none() => {
                exec.size.send_replace(Some((height, width)));
                Ok(())
            }
            None => Err(ContainerError::Conflict(format!("Exec {exec_id} is not running"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_env_overrides_by_key() {
        let m = merge_env(&["PATH=/bin".into(), "A=1".into()], &["A=2".into(), "B=3".into()]);
        assert_eq!(m, vec!["PATH=/bin", "A=2", "B=3"]);
    }
}
