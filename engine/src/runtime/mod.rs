//! The `Runtime` seam between the container service and the per-container shim.
//! The container service only calls this trait.
//!
//! Contract:
//! - `create` writes the OCI bundle for `spec` under `spec.state_dir`, starts a shim
//!   (`<shim_binary> shim ...`, its own session, survives the engine; the spawner itself is
//!   started ahead of time, one spare at a time: [`shim_pool`]), which creates the
//!   container with libcontainer (state Created, the process not yet running) and listens
//!   on `<state_dir>/shim.sock`. Returns once the shim answers or with the shim's error text.
//!   The engine may still be mounting the rootfs and setting up the network: the container's
//!   init waits for them at a gate ([`gate`]) before its namespaces and its rootfs.
//! - `attach` connects to the shim and returns a stream: reading yields exactly what the
//!   client must see (stdcopy frames `[stream,0,0,0,len BE32]+data` when `tty` is false,
//!   raw bytes with a tty); writing feeds the container's stdin; shutting down the write half
//!   closes the container's stdin (see Stdin below). Attaches made before `start` get output
//!   from the first byte. When the process has exited and its output is drained, the shim
//!   closes every attach stream (reads see EOF).
//! - `start` lets the process run. `wait` resolves with the exit once the process has exited
//!   (also after an engine restart: from the shim, or from the exit file if the shim is gone).
//! - `delete` makes the shim kill the process if still there, delete the container (cgroups,
//!   libcontainer state) and exit; then removes the state dir.
//! - Stdin: with `open_stdin` the container's stdin is a pipe (or the pty). When an attach client
//!   with stdin shuts down its write half and `stdin_once` is set (and no tty), the container's
//!   stdin is closed, as dockerd does; otherwise it stays open for the next attach.
//! - The shim writes the json-file log at `spec.log_path` (one
//!   `{"log":"..","stream":"stdout|stderr","time":"RFC3339Nano"}` object per line).
pub mod exec;
#[cfg(any(test, feature = "testing"))]
pub mod fake;
pub mod fdstream;
pub mod gate;
pub mod layers;
pub mod options;
pub mod seccomp;
pub mod shim_client;
pub mod shim_pool;
pub mod spec;
pub mod spec_opts;
pub mod user;
mod zygote;

pub use crate::shim::protocol::Status;
pub use exec::{ExecProcess, ExecSpec};
pub use fdstream::FdStream;
pub use shim_client::ShimState;

use crate::{Classify, ErrorKind};
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The container's shim failed or answered with an error.
    #[error("{detail}")]
    Shim { id: String, detail: String },
    #[error("container {0} is not running")]
    NotRunning(String),
    /// The configuration cannot be turned into a runnable spec (e.g. an unknown `--user`).
    #[error("{0}")]
    Spec(String),
    /// `op` (what was being done) on `path` failed.
    #[error("{op} {}: {source}", path.display())]
    Io { op: &'static str, path: PathBuf, source: std::io::Error },
    #[error("{0}")]
    Seccomp(#[from] seccomp::SeccompError),
    /// A container's or an exec's command could not start; `code` is what dockerd reports
    /// (126 not executable, 127 not found).
    #[error("{message}")]
    Exec { message: String, code: i32 },
}

impl RuntimeError {
    /// `op` on `path` failed with `source`.
    pub fn io(op: &'static str, path: &std::path::Path, source: std::io::Error) -> RuntimeError {
        RuntimeError::Io { op, path: path.to_path_buf(), source }
    }

    /// A shim error of container `id`.
    pub fn shim(id: &str, detail: impl Into<String>) -> RuntimeError {
        RuntimeError::Shim { id: id.to_string(), detail: detail.into() }
    }
}

impl Classify for RuntimeError {
    fn kind(&self) -> ErrorKind {
        match self {
            RuntimeError::NotRunning(_) => ErrorKind::Conflict,
            RuntimeError::Seccomp(_) => ErrorKind::InvalidParameter,
            _ => ErrorKind::Internal,
        }
    }
}

/// Network namespace for the container.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum NetNs {
    /// Share the host's network namespace (`--network host`).
    Host,
    /// A fresh, empty namespace with only `lo` (`--network none`).
    New,
    /// Join the namespace bind-mounted at this path (prepared by the network service).
    Path(PathBuf),
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct BindMount {
    pub source: PathBuf,
    pub destination: String,
    pub readonly: bool,
    /// `rprivate` (Docker's default for binds, also when empty), `private`, `rshared`,
    /// `shared`, `rslave` or `slave`.
    #[serde(default)]
    pub propagation: String,
}

/// A tmpfs mount (`--tmpfs`, `--mount type=tmpfs`): `options` are mount(8) options
/// (`nosuid`, `nodev`, `noexec`, `size=...`, `mode=...`, `ro`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TmpfsMount {
    pub destination: String,
    pub options: Vec<String>,
}

/// Everything needed to run one container's process.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct RunSpec {
    pub id: String,
    /// The mounted overlay root filesystem.
    pub rootfs: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    /// `user`, `uid`, `user:group` or `uid:gid` as given; names resolved from the rootfs /etc/passwd.
    pub user: String,
    pub hostname: String,
    /// The NIS domain name (`--domainname`); empty: none (and in what older engines wrote).
    #[serde(default)]
    pub domainname: String,
    pub tty: bool,
    pub open_stdin: bool,
    pub stdin_once: bool,
    pub netns: NetNs,
    /// Extra bind mounts (volumes, binds, /etc/hosts, /etc/hostname, /etc/resolv.conf), in
    /// mount order: a parent directory before what is mounted below it.
    pub mounts: Vec<BindMount>,
    /// tmpfs mounts; to be mounted in the same parent-first order together with `mounts`.
    #[serde(default)]
    pub tmpfs: Vec<TmpfsMount>,
    /// Cgroup path, e.g. `/flotilla/<id>` (cgroupfs layout, every v1 hierarchy).
    pub cgroup_path: String,
    pub log_path: PathBuf,
    /// Per-container directory under the exec root: bundle, shim socket, exit file.
    pub state_dir: PathBuf,
    pub readonly_rootfs: bool,
    /// cgroup limits (`-m`, `--cpus`, `--pids-limit`, ...).
    #[serde(default)]
    pub resources: crate::cgroups::Resources,
    /// Initial tty size (rows, columns), from the client's terminal.
    #[serde(default)]
    pub console_size: Option<(u16, u16)>,
    /// `--security-opt seccomp=...` (Docker's default profile unless set).
    #[serde(default)]
    pub seccomp: seccomp::SeccompProfile,
    /// `docker run` options beyond the above (limits, devices, privileges, namespaces, init).
    #[serde(default)]
    pub options: options::RunOptions,
    /// The log driver and its rotation.
    #[serde(default)]
    pub log: options::LogConfig,
}

/// How a container's process ended.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Exit {
    pub code: i32,
    pub oom_killed: bool,
    /// RFC 3339 with nanoseconds.
    pub finished_at: String,
}

/// Which streams an attach wants.
#[derive(Debug, Clone, Copy, Default)]
pub struct AttachOpts {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
}

/// The stream `attach` returns.
pub type AttachStream = tokio::net::UnixStream;

#[allow(async_fn_in_trait)]
pub trait Runtime: Send + Sync + 'static {
    /// Creates the container of `spec` (see the module's doc). The engine may still be mounting
    /// its rootfs and setting up its network: `gate` opens once it is done, and the create waits
    /// for it only where it must (the init's namespaces and rootfs; a bundle that must read the
    /// mounted rootfs). A gate that fails fails the create.
    fn create(&self, spec: &RunSpec, gate: gate::Gate) -> impl std::future::Future<Output = Result<(), RuntimeError>> + Send;
    fn start(&self, id: &str, state_dir: &std::path::Path) -> impl std::future::Future<Output = Result<u32, RuntimeError>> + Send;
    fn signal(
        &self,
        id: &str,
        state_dir: &std::path::Path,
        signal: i32,
    ) -> impl std::future::Future<Output = Result<(), RuntimeError>> + Send;
    fn wait(&self, id: &str, state_dir: &std::path::Path) -> impl std::future::Future<Output = Result<Exit, RuntimeError>> + Send;
    fn attach(
        &self,
        id: &str,
        state_dir: &std::path::Path,
        opts: AttachOpts,
    ) -> impl std::future::Future<Output = Result<AttachStream, RuntimeError>> + Send;
    /// Removes what the shim left (bundle, libcontainer state, cgroups, the state dir).
    /// Idempotent. `id` may be only the state dir's name (the engine's start-up sweep of
    /// removed containers): the full id is then read from the state dir.
    fn delete(&self, id: &str, state_dir: &std::path::Path) -> impl std::future::Future<Output = Result<(), RuntimeError>> + Send;
    /// Status, pid and (once exited) the exit of a container, from its shim or its exit file;
    /// `None` when neither exists (the shim is gone without a trace, e.g. after a reboot).
    fn state(
        &self,
        id: &str,
        state_dir: &std::path::Path,
    ) -> impl std::future::Future<Output = Result<Option<ShimState>, RuntimeError>> + Send;
    /// Sets the tty size of a container started with a tty (no-op without one).
    fn resize(
        &self,
        id: &str,
        state_dir: &std::path::Path,
        height: u16,
        width: u16,
    ) -> impl std::future::Future<Output = Result<(), RuntimeError>> + Send;
    /// Runs a further process in the running container's namespaces and cgroups (`docker
    /// exec`). Returns once the process runs, with its stdio; `ExecProcess::exit` resolves with
    /// its exit code. Errors of a command that cannot run come back as `RuntimeError::Exec`.
    fn exec(
        &self,
        id: &str,
        state_dir: &std::path::Path,
        spec: &ExecSpec,
    ) -> impl std::future::Future<Output = Result<ExecProcess, RuntimeError>> + Send;
    /// Stops the runtime's own background work, for the engine's shutdown (containers and
    /// their shims keep running). Nothing to stop by default.
    fn shutdown(&self) -> impl std::future::Future<Output = ()> + Send {
        async {}
    }
}

/// The real runtime: one `swarm shim` process per container.
pub struct ShimRuntime {
    pub shim_binary: PathBuf,
    /// libcontainer's state root (under the exec root).
    pub runtime_root: PathBuf,
    /// The next container's spawner, started ahead of time.
    pool: std::sync::Arc<shim_pool::ShimPool>,
    /// The readers of exec exits (one per running exec).
    tasks: crate::tasks::Tasks,
}
