//! `FakeRuntime`: a recording stand-in for tests of the container service (no root, no shim).
//!
//! Every call is recorded as one line (`create <id>`, `start <id>`, `signal <id> <sig>`, `wait
//! <id>`, `attach <id> in=.. out=.. err=..`, `delete <id>`). A failure can be scripted once per
//! operation. `wait` resolves once the test calls [`FakeRuntime::exit`], or `start` when
//! `exit_on_start` is set or an exit is scripted ([`FakeRuntime::script_exits`]), or a
//! terminating signal (SIGKILL/SIGTERM/SIGINT/SIGHUP/SIGQUIT) is sent.
use super::{AttachOpts, AttachStream, ExecProcess, ExecSpec, Exit, FdStream, RunSpec, Runtime, RuntimeError};
use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use tokio::sync::watch;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[derive(Default)]
pub struct FakeRuntime {
    calls: Mutex<Vec<String>>,
    fail: Mutex<HashMap<&'static str, RuntimeError>>,
    exits: Mutex<HashMap<String, watch::Sender<Option<Exit>>>>,
    specs: Mutex<HashMap<String, RunSpec>>,
    peers: Mutex<HashMap<String, Vec<tokio::net::UnixStream>>>,
    /// Exit codes of the next starts, one each (before `exit_on_start`).
    scripted: Mutex<VecDeque<i32>>,
    /// When set, `start` makes the process exit at once with this code.
    pub exit_on_start: Mutex<Option<i32>>,
    /// Exit code of every exec (which prints `exec <args>` on stdout and exits at once).
    pub exec_exit: Mutex<i32>,
    /// While set (and false), deletes wait ([`FakeRuntime::hold_deletes`]).
    delete_gate: Mutex<Option<watch::Receiver<bool>>>,
    /// The ids whose delete has finished, in order.
    deleted: Mutex<Vec<String>>,
}

impl FakeRuntime {
    pub fn new() -> Self {
        Self::default()
    }

    fn record(&self, op: &'static str, what: String) -> Result<(), RuntimeError> {
        lock(&self.calls).push(what);
        lock(&self.fail).remove(op).map_or(Ok(()), Err)
    }

    /// Everything called so far, in order.
    pub fn calls(&self) -> Vec<String> {
        lock(&self.calls).clone()
    }

    /// The next call of `op` ("create", "start", "signal", "wait", "attach", "delete") fails.
    pub fn fail_next(&self, op: &'static str, err: RuntimeError) {
        lock(&self.fail).insert(op, err);
    }

    /// The next starts exit at once with these codes, one each, in order; later starts run on
    /// (or exit with `exit_on_start`).
    pub fn script_exits(&self, codes: &[i32]) {
        lock(&self.scripted).extend(codes.iter().copied());
    }

    /// How many calls so far start with `prefix` (`"start "`, `"signal <id> 9"`).
    pub fn count(&self, prefix: &str) -> usize {
        lock(&self.calls).iter().filter(|c| c.starts_with(prefix)).count()
    }

    /// The spec `create` received for `id`.
    pub fn spec(&self, id: &str) -> Option<RunSpec> {
        lock(&self.specs).get(id).cloned()
    }

    /// Deletes wait (after being recorded) until the returned sender sends `true` or is dropped.
    pub fn hold_deletes(&self) -> watch::Sender<bool> {
        let (tx, rx) = watch::channel(false);
        *lock(&self.delete_gate) = Some(rx);
        tx
    }

    /// The ids (as passed) whose delete has finished, in order.
    pub fn deleted(&self) -> Vec<String> {
        lock(&self.deleted).clone()
    }

    /// Makes the process of `id` exit with `code` (resolves `wait`).
    pub fn exit(&self, id: &str, code: i32) {
        let exit = Exit { code, oom_killed: false, finished_at: chrono::Utc::now().to_rfc3339() };
        lock(&self.exits).entry(id.to_string()).or_insert_with(|| watch::channel(None).0).send_replace(Some(exit));
    }

    /// The container's end of the oldest attach stream of `id` not yet taken: write to it what
    /// the container "prints" (framed as the real shim would), read what the client sent.
    pub fn take_attach_peer(&self, id: &str) -> Option<tokio::net::UnixStream> {
        let mut peers = lock(&self.peers);
        let v = peers.get_mut(id)?;
        (!v.is_empty()).then(|| v.remove(0))
    }
}

/// An io error of the fake (it has no paths: the op names the fd or call).
fn io(op: &'static str) -> impl FnOnce(std::io::Error) -> RuntimeError {
    move |e| RuntimeError::io(op, Path::new("fake"), e)
}

impl Runtime for FakeRuntime {
    async fn create(&self, spec: &RunSpec, mut gate: super::gate::Gate) -> Result<(), RuntimeError> {
        self.record("create", format!("create {}", spec.id))?;
        // As the shim's init: nothing of the container is made before the gate opens.
        if !gate.wait().await {
            return Err(RuntimeError::shim(&spec.id, crate::shim::protocol::GATE_SHUT));
        }
        lock(&self.specs).insert(spec.id.clone(), spec.clone());
        lock(&self.exits).insert(spec.id.clone(), watch::channel(None).0);
        Ok(())
    }

    async fn start(&self, id: &str, _state_dir: &Path) -> Result<u32, RuntimeError> {
        self.record("start", format!("start {id}"))?;
        let scripted = lock(&self.scripted).pop_front();
        if let Some(code) = scripted.or(*lock(&self.exit_on_start)) {
            self.exit(id, code);
        }
        Ok(4242)
    }

    async fn signal(&self, id: &str, _state_dir: &Path, signal: i32) -> Result<(), RuntimeError> {
        self.record("signal", format!("signal {id} {signal}"))?;
        if [libc::SIGKILL, libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGQUIT].contains(&signal) {
            self.exit(id, 128 + signal);
        }
        Ok(())
    }

    async fn wait(&self, id: &str, _state_dir: &Path) -> Result<Exit, RuntimeError> {
        self.record("wait", format!("wait {id}"))?;
        let mut rx = lock(&self.exits).get(id).map(|tx| tx.subscribe()).ok_or_else(|| RuntimeError::NotRunning(id.to_string()))?;
        let exit = rx.wait_for(|e| e.is_some()).await.map_err(|_| RuntimeError::shim(id, "fake runtime dropped"))?.clone();
        exit.ok_or_else(|| RuntimeError::shim(id, "no exit"))
    }

    async fn attach(&self, id: &str, _state_dir: &Path, o: AttachOpts) -> Result<AttachStream, RuntimeError> {
        self.record("attach", format!("attach {id} in={} out={} err={}", o.stdin, o.stdout, o.stderr))?;
        let (ours, theirs) = tokio::net::UnixStream::pair().map_err(io("socketpair"))?;
        lock(&self.peers).entry(id.to_string()).or_default().push(theirs);
        Ok(ours)
    }

    async fn state(&self, id: &str, _state_dir: &Path) -> Result<Option<super::ShimState>, RuntimeError> {
        self.record("state", format!("state {id}"))?;
        let exits = lock(&self.exits);
        Ok(exits.get(id).map(|tx| {
            let exit = tx.borrow().clone();
            let status = if exit.is_some() { super::Status::Stopped } else { super::Status::Running };
            super::ShimState { status, pid: 4242, exit }
        }))
    }

    async fn resize(&self, id: &str, _state_dir: &Path, height: u16, width: u16) -> Result<(), RuntimeError> {
        self.record("resize", format!("resize {id} {height}x{width}"))
    }

    async fn exec(&self, id: &str, _state_dir: &Path, spec: &ExecSpec) -> Result<ExecProcess, RuntimeError> {
        self.record("exec", format!("exec {id} {}", spec.args.join(" ")))?;
        let (out_r, out_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| io("pipe")(e.into()))?;
        let (err_r, err_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| io("pipe")(e.into()))?;
        std::fs::File::from(out_w).write_all(format!("exec {}\n", spec.args.join(" ")).as_bytes()).map_err(io("write"))?;
        drop(err_w);
        let (tx, exit) = tokio::sync::oneshot::channel();
        let _ = tx.send(*lock(&self.exec_exit));
        let detach = spec.detach;
        Ok(ExecProcess {
            pid: 4243,
            stdin: None,
            stdout: if detach { None } else { Some(FdStream::new(out_r).map_err(io("stdout"))?) },
            stderr: if detach { None } else { Some(FdStream::new(err_r).map_err(io("stderr"))?) },
            pty: None,
            exit,
        })
    }

    async fn delete(&self, id: &str, _state_dir: &Path) -> Result<(), RuntimeError> {
        self.record("delete", format!("delete {id}"))?;
        let gate = lock(&self.delete_gate).clone();
        if let Some(mut rx) = gate {
            // A dropped sender releases the deletes too.
            let _ = rx.wait_for(|open| *open).await;
        }
        lock(&self.exits).remove(id);
        lock(&self.deleted).push(id.to_string());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn records_and_resolves_wait_on_kill() {
        let rt = FakeRuntime::new();
        let spec: RunSpec = serde_json::from_value(serde_json::json!({
            "id": "c1", "rootfs": "/r", "args": ["true"], "env": [], "cwd": "/", "user": "", "hostname": "h",
            "tty": false, "open_stdin": false, "stdin_once": false, "netns": "New", "mounts": [],
            "cgroup_path": "/x/c1", "log_path": "/l", "state_dir": "/s", "readonly_rootfs": false
        }))
        .unwrap();
        let d = Path::new("/s");
        rt.create(&spec, crate::runtime::gate::Gate::open()).await.unwrap();
        assert_eq!(rt.start("c1", d).await.unwrap(), 4242);
        let waiter = rt.wait("c1", d);
        rt.signal("c1", d, libc::SIGTERM).await.unwrap();
        assert_eq!(waiter.await.unwrap().code, 143);
        rt.fail_next("delete", RuntimeError::shim("c1", "boom"));
        assert!(rt.delete("c1", d).await.is_err());
        assert_eq!(rt.calls(), ["create c1", "start c1", "signal c1 15", "wait c1", "delete c1"]);
    }

    #[tokio::test]
    async fn attach_gives_a_peer() {
        let rt = FakeRuntime::new();
        let mut s = rt.attach("c", Path::new("/s"), AttachOpts { stdin: true, stdout: true, stderr: false }).await.unwrap();
        let mut peer = rt.take_attach_peer("c").unwrap();
        peer.write_all(b"x").await.unwrap();
        let mut b = [0u8; 1];
        s.read_exact(&mut b).await.unwrap();
        assert_eq!(&b, b"x");
    }
}
