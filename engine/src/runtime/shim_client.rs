//! `ShimRuntime`: the engine's side of the per-container shims (tokio; never forks containers).
use super::gate::Gate;
use super::shim_pool::Outcome;
use super::user::UserFiles;
use super::{spec, AttachOpts, AttachStream, Exit, RunSpec, Runtime, RuntimeError, ShimRuntime};
use crate::shim::protocol::{self, Ready, Request, Response, ShimConfig, Status};
use std::io;
use std::path::Path;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

impl ShimRuntime {
    pub fn new(shim_binary: impl Into<std::path::PathBuf>, runtime_root: impl Into<std::path::PathBuf>) -> Self {
        let (shim_binary, runtime_root) = (shim_binary.into(), runtime_root.into());
        // The runtime root is `<exec_root>/runtime`: spare spawners name the exec root.
        let exec_root = runtime_root.parent().map(Path::to_path_buf).unwrap_or_else(|| runtime_root.clone());
        let pool = std::sync::Arc::new(super::shim_pool::ShimPool::new(shim_binary.clone(), exec_root));
        ShimRuntime { pool, shim_binary, runtime_root, tasks: crate::tasks::Tasks::new("runtime") }
    }
}

/// What `ShimRuntime::state` reports (for reconnecting after an engine restart).
#[derive(Debug, Clone)]
pub struct ShimState {
    pub status: Status,
    pub pid: u32,
    pub exit: Option<Exit>,
}

/// The shim is not there (no socket, refused, or it hung up before answering).
struct Gone;

fn read_exit(state_dir: &Path) -> Result<Option<Exit>, RuntimeError> {
    let path = protocol::exit_path(state_dir);
    crate::fsutil::read_json(&path).map_err(|e| io_err("reading", &path, e))
}

/// Connects and sends one request line.
async fn send(state_dir: &Path, req: &Request) -> Result<UnixStream, Gone> {
    let mut conn = UnixStream::connect(protocol::socket_path(state_dir)).await.map_err(|_| Gone)?;
    let mut line = serde_json::to_vec(req).map_err(|_| Gone)?;
    line.push(b'\n');
    conn.write_all(&line).await.map_err(|_| Gone)?;
    Ok(conn)
}

/// Longest reply line the engine accepts from a shim.
const MAX_RESPONSE: usize = 1 << 20;

/// Reads the response line, and nothing after it: an attach stream follows it on the same
/// connection. Each round peeks at what has arrived and then reads exactly up to the newline,
/// so a reply that arrived whole costs two syscalls (it cost one per byte).
async fn read_response(conn: &mut UnixStream) -> Result<Response, Gone> {
    use nix::sys::socket::{recv, MsgFlags};
    use std::os::fd::AsRawFd;
    let mut line = Vec::with_capacity(256);
    let mut buf = [0u8; 4096];
    loop {
        conn.readable().await.map_err(|_| Gone)?;
        let fd = conn.as_raw_fd();
        let peeked = conn.try_io(tokio::io::Interest::READABLE, || {
            recv(fd, &mut buf, MsgFlags::MSG_PEEK | MsgFlags::MSG_DONTWAIT).map_err(io::Error::from)
        });
        let n = match peeked {
            Ok(0) => return Err(Gone),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(_) => return Err(Gone),
        };
        let end = buf[..n].iter().position(|&b| b == b'\n');
        let take = end.map_or(n, |i| i + 1);
        // What was peeked is there: this read takes exactly it.
        conn.read_exact(&mut buf[..take]).await.map_err(|_| Gone)?;
        if end.is_some() {
            line.extend_from_slice(&buf[..take - 1]);
            break;
        }
        line.extend_from_slice(&buf[..take]);
        if line.len() > MAX_RESPONSE {
            return Err(Gone);
        }
    }
    serde_json::from_slice(&line).map_err(|_| Gone)
}

async fn request(state_dir: &Path, req: &Request) -> Result<Response, Gone> {
    let mut conn = send(state_dir, req).await?;
    read_response(&mut conn).await
}

fn check(id: &str, r: Response) -> Result<Response, RuntimeError> {
    match r.error {
        None => Ok(r),
        Some(_) if r.not_running => Err(RuntimeError::NotRunning(id.to_string())),
        Some(e) => Err(RuntimeError::shim(id, e)),
    }
}

async fn call(id: &str, state_dir: &Path, req: &Request) -> Result<Response, RuntimeError> {
    match request(state_dir, req).await {
        Ok(r) => check(id, r),
        Err(Gone) => Err(RuntimeError::NotRunning(id.to_string())),
    }
}

fn io_err(what: &'static str, path: &Path, e: io::Error) -> RuntimeError {
    RuntimeError::io(what, path, e)
}

/// Writes the OCI bundle and the shim's config for `spec` under its state dir, its user looked up
/// in `files`. With `gated`, the engine is still mounting the rootfs (its directory is made: the
/// shim resolves its path) or setting up the network: the shim's init waits at the gate
/// (`ShimConfig::gate`).
fn write_bundle(spec: &RunSpec, runtime_root: &Path, files: &UserFiles, gated: bool) -> Result<(), RuntimeError> {
    let exec_user = files.resolve_user(&spec.user)?;
    let spec::Built { spec: oci, seccomp } = spec::build(spec, &exec_user, &files.group())?;
    if gated {
        std::fs::create_dir_all(&spec.rootfs).map_err(|e| io_err("creating", &spec.rootfs, e))?;
    }
    let bundle = spec.state_dir.join(protocol::BUNDLE_DIR);
    let bpf = bundle.join(super::seccomp::bpf::BPF_FILE);
    match seccomp {
        Some(program) => crate::fsutil::write_runtime(&bpf, &program.encode()).map_err(|e| io_err("writing", &bpf, e))?,
        None => match std::fs::remove_file(&bpf) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io_err("removing", &bpf, e)),
            _ => {}
        },
    }
    let config = bundle.join("config.json");
    protocol::write_runtime_json(&config, &oci).map_err(|e| io_err("writing", &config, e))?;
    let cfg = ShimConfig {
        id: spec.id.clone(),
        bundle,
        runtime_root: runtime_root.to_path_buf(),
        log_path: spec.log_path.clone(),
        tty: spec.tty,
        open_stdin: spec.open_stdin,
        stdin_once: spec.stdin_once,
        cgroup_path: spec.cgroup_path.clone(),
        console_size: spec.console_size,
        log: spec.log.clone(),
        gate: gated,
    };
    let path = spec.state_dir.join(protocol::CONFIG_FILE);
    protocol::write_runtime_json(&path, &cfg).map_err(|e| io_err("writing", &path, e))?;
    // A previous run's leftovers must not answer for this one.
    for stale in [protocol::EXIT_FILE, protocol::SOCKET_FILE] {
        let _ = std::fs::remove_file(spec.state_dir.join(stale));
    }
    Ok(())
}

/// Writes the bundle (see [`write_bundle`]) of a rootfs that is being mounted over `layers` when
/// they tell the container's users plainly (`UserFiles::in_layers`). Returns whether it did: the
/// shim then waits at the gate.
fn write_bundle_early(spec: &RunSpec, runtime_root: &Path, layers: &[std::path::PathBuf]) -> Result<bool, RuntimeError> {
    match UserFiles::in_layers(layers) {
        Some(files) => write_bundle(spec, runtime_root, &files, true).map(|()| true),
        None => Ok(false),
    }
}

/// Removes the cgroup dirs a crashed shim may have left (every v1 hierarchy and v2), killing
/// what still runs in them first: the init of a container whose shim died while creating it
/// (an engine killed in the middle of `docker run`).
fn remove_cgroups(cgroup_path: &str) {
    let rel = cgroup_path.trim_start_matches('/');
    if rel.is_empty() || rel.contains("..") {
        return;
    }
    let Ok(rd) = std::fs::read_dir("/sys/fs/cgroup") else { return };
    let root = Path::new("/sys/fs/cgroup");
    let dirs: Vec<std::path::PathBuf> =
        std::iter::once(root.join(rel)).chain(rd.flatten().map(|e| e.path().join(rel))).filter(|d| d.is_dir()).collect();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    for dir in &dirs {
        loop {
            let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
            let pids: Vec<i32> = procs.lines().filter_map(|l| l.trim().parse().ok()).filter(|p| *p > 0).collect();
            if pids.is_empty() || std::time::Instant::now() > deadline {
                break;
            }
            for pid in pids {
                // SAFETY: kill(2) of a process in the container's own cgroup.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let _ = std::fs::remove_dir(dir);
    }
}

impl Runtime for ShimRuntime {
    /// Stops reading exec exits (their waiters see the exit as unknown).
    async fn shutdown(&self) {
        self.tasks.shutdown(std::time::Duration::from_secs(1)).await;
    }

    async fn create(&self, spec: &RunSpec, mut gate: Gate) -> Result<(), RuntimeError> {
        // A shim of a previous run of this container may still linger: let it finish (it
        // deletes its libcontainer state) and go, so it can't answer for the new one.
        let _ = request(&spec.state_dir, &Request::Delete).await;
        let task_err = |e: tokio::task::JoinError| RuntimeError::shim(&spec.id, format!("writing bundle: {e}"));
        let gated = gate.now().is_none() && {
            let (owned, runtime_root, layers) = (spec.clone(), self.runtime_root.clone(), gate.layers().to_vec());
            tokio::task::spawn_blocking(move || write_bundle_early(&owned, &runtime_root, &layers)).await.map_err(task_err)??
        };
        if !gated {
            if !gate.wait().await {
                return Err(RuntimeError::shim(&spec.id, crate::shim::protocol::GATE_SHUT));
            }
            let (owned, runtime_root) = (spec.clone(), self.runtime_root.clone());
            tokio::task::spawn_blocking(move || write_bundle(&owned, &runtime_root, &UserFiles::in_root(&owned.rootfs), false))
                .await
                .map_err(task_err)??;
        }
        tracing::debug!(container = %spec.id, gated, "bundle written");
        let outcome = self.pool.run(&spec.state_dir, gated.then_some(gate)).await;
        let pool = self.pool.clone();
        self.tasks.spawn_until_shutdown(async move {
            tokio::time::sleep(super::shim_pool::SPARE_AFTER).await;
            // The zygote's fork is a request and an answer: not on a worker thread.
            let _ = tokio::task::spawn_blocking(move || pool.fill()).await;
        });
        let outcome = outcome.map_err(|e| io_err("starting shim", &self.shim_binary, e))?;
        let (message, code) = match outcome {
            Outcome::Reported(Ready { error: None, .. }) => return Ok(()),
            Outcome::Reported(Ready { error: Some(message), code }) => (message, crate::shim::exit_code(code)),
            Outcome::Exited(out) if out.status.success() => return Ok(()),
            Outcome::Exited(out) => {
                let msg = String::from_utf8_lossy(&out.stderr).trim().to_string();
                let message = if msg.is_empty() { format!("shim failed: {}", out.status) } else { msg };
                (message, out.status.code().unwrap_or(1))
            }
        };
        Err(match code {
            // The command cannot run: the exit code the container gets (dockerd's 126, 127).
            code @ (crate::shim::COMMAND_NOT_EXECUTABLE | crate::shim::COMMAND_NOT_FOUND) => RuntimeError::Exec { message, code },
            _ => RuntimeError::shim(&spec.id, message),
        })
    }

    async fn start(&self, id: &str, state_dir: &Path) -> Result<u32, RuntimeError> {
        let r = call(id, state_dir, &Request::Start).await?;
        r.pid.ok_or_else(|| RuntimeError::shim(id, "shim did not report a pid"))
    }

    async fn signal(&self, id: &str, state_dir: &Path, signal: i32) -> Result<(), RuntimeError> {
        call(id, state_dir, &Request::Kill { signal }).await.map(|_| ())
    }

    async fn wait(&self, id: &str, state_dir: &Path) -> Result<Exit, RuntimeError> {
        if let Ok(r) = request(state_dir, &Request::Wait).await {
            if let Some(exit) = check(id, r)?.exit {
                return Ok(exit);
            }
        }
        // The shim is gone (or hung up): it wrote the exit file before answering anyone.
        read_exit(state_dir)?.ok_or_else(|| RuntimeError::shim(id, format!("container {id}: shim is gone and left no exit status")))
    }

    async fn attach(&self, id: &str, state_dir: &Path, opts: AttachOpts) -> Result<AttachStream, RuntimeError> {
        let req = Request::Attach { stdin: opts.stdin, stdout: opts.stdout, stderr: opts.stderr };
        let mut conn = send(state_dir, &req).await.map_err(|_| RuntimeError::NotRunning(id.to_string()))?;
        let r = read_response(&mut conn).await.map_err(|_| RuntimeError::NotRunning(id.to_string()))?;
        check(id, r)?;
        Ok(conn)
    }

    async fn state(&self, _id: &str, state_dir: &Path) -> Result<Option<ShimState>, RuntimeError> {
        match request(state_dir, &Request::State).await {
            Ok(r) => Ok(Some(ShimState { status: r.status.unwrap_or(Status::Stopped), pid: r.pid.unwrap_or(0), exit: r.exit })),
            Err(Gone) => Ok(read_exit(state_dir)?.map(|e| ShimState { status: Status::Stopped, pid: 0, exit: Some(e) })),
        }
    }

    async fn resize(&self, id: &str, state_dir: &Path, height: u16, width: u16) -> Result<(), RuntimeError> {
        call(id, state_dir, &Request::Resize { height, width }).await.map(|_| ())
    }

    async fn exec(&self, id: &str, state_dir: &Path, spec: &super::ExecSpec) -> Result<super::ExecProcess, RuntimeError> {
        self.exec_process(id, state_dir, spec).await
    }

    async fn delete(&self, id: &str, state_dir: &Path) -> Result<(), RuntimeError> {
        let _ = request(state_dir, &Request::Delete).await;
        let state_dir = state_dir.to_path_buf();
        let runtime_root = self.runtime_root.clone();
        let owned_id = id.to_string();
        tokio::task::spawn_blocking(move || {
            let cfg: Option<ShimConfig> = crate::fsutil::read_json(&state_dir.join(protocol::CONFIG_FILE)).ok().flatten();
            // The config names the full id (the start-up sweep knows only the state dir's name).
            let id = cfg.as_ref().map_or(owned_id, |c| c.id.clone());
            if let Some(cfg) = &cfg {
                remove_cgroups(&cfg.cgroup_path);
            }
            if !id.is_empty() && !id.contains('/') && !id.contains("..") {
                let _ = std::fs::remove_dir_all(runtime_root.join(&id));
            }
            match std::fs::remove_dir_all(&state_dir) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err("removing", &state_dir, e)),
                _ => Ok(()),
            }
        })
        .await
        .map_err(|e| RuntimeError::shim(id, format!("delete: {e}")))?
    }
}
