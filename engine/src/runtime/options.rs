//! The `docker run` options a container's process gets beyond its command, user and mounts:
//! limits, groups, devices, privileges, namespaces shared with the host or another container,
//! an init. Checked at create (`container::runopts`), turned into the OCI spec by
//! [`super::spec_opts`].
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// One `--ulimit name=soft:hard` (validated: a known name, soft <= hard).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ulimit {
    /// Docker's name: `nofile`, `nproc`, `core`, ...
    pub name: String,
    pub soft: u64,
    pub hard: u64,
}

/// The rlimit names Docker accepts, each with its OCI type.
pub const ULIMITS: &[(&str, &str)] = &[
    ("core", "RLIMIT_CORE"),
    ("cpu", "RLIMIT_CPU"),
    ("data", "RLIMIT_DATA"),
    ("fsize", "RLIMIT_FSIZE"),
    ("locks", "RLIMIT_LOCKS"),
    ("memlock", "RLIMIT_MEMLOCK"),
    ("msgqueue", "RLIMIT_MSGQUEUE"),
    ("nice", "RLIMIT_NICE"),
    ("nofile", "RLIMIT_NOFILE"),
    ("nproc", "RLIMIT_NPROC"),
    ("rss", "RLIMIT_RSS"),
    ("rtprio", "RLIMIT_RTPRIO"),
    ("rttime", "RLIMIT_RTTIME"),
    ("sigpending", "RLIMIT_SIGPENDING"),
    ("stack", "RLIMIT_STACK"),
];

/// One `--device HOST[:CONTAINER[:PERMISSIONS]]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Device {
    pub host: PathBuf,
    pub container: String,
    /// Any of `r`, `w`, `m`.
    pub permissions: String,
}

/// One `--device-cgroup-rule 'c 1:3 rwm'` (major/minor `None` = `*`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceRule {
    /// `a`, `b` or `c`.
    pub kind: char,
    pub major: Option<i64>,
    pub minor: Option<i64>,
    pub access: String,
}

/// A namespace of the container: its own, the host's, or one at a path (another container's).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Namespace {
    #[default]
    Private,
    Host,
    /// Join the namespace at this path (`/proc/<pid>/ns/<kind>`).
    Join(PathBuf),
}

/// Everything of `docker run` that shapes the process beyond [`super::RunSpec`]'s basics.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RunOptions {
    /// `--privileged`: every capability of the engine's bounding set, every host device, no
    /// masked or read-only paths, writable /sys.
    pub privileged: bool,
    /// `--cap-add` / `--cap-drop`, as `CAP_X` names or `ALL`.
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    /// `--security-opt no-new-privileges`.
    pub no_new_privileges: bool,
    /// `HostConfig.MaskedPaths`/`ReadonlyPaths` (the CLI's `--security-opt
    /// systempaths=unconfined` sends them empty): `None` keeps Docker's lists.
    pub masked_paths: Option<Vec<String>>,
    pub readonly_paths: Option<Vec<String>>,
    pub ulimits: Vec<Ulimit>,
    /// `--shm-size` in bytes (`None`: Docker's 64 MiB).
    pub shm_size: Option<u64>,
    /// `--group-add`: group names (looked up in the container's /etc/group) or numbers.
    pub group_add: Vec<String>,
    pub devices: Vec<Device>,
    pub device_rules: Vec<DeviceRule>,
    /// `--init`: a small init is PID 1 and runs the command as its child.
    pub init: bool,
    pub pid: Namespace,
    pub ipc: Namespace,
    /// `--uts host`.
    pub uts_host: bool,
    /// `/dev/shm` from this host directory (`--ipc shareable` and `container:X`), else a
    /// private tmpfs (or the host's /dev/shm with `--ipc host`).
    pub shm_dir: Option<PathBuf>,
    /// `--oom-kill-disable`.
    pub oom_kill_disable: bool,
    /// `--sysctl` (namespaced ones only; checked at create).
    pub sysctls: std::collections::BTreeMap<String, String>,
    /// `--oom-score-adj`.
    pub oom_score_adj: Option<i64>,
    /// `--memory-swappiness` (0-100).
    pub memory_swappiness: Option<u64>,
    /// `HostConfig.Annotations`, handed to the runtime as OCI annotations.
    pub annotations: std::collections::BTreeMap<String, String>,
    /// `--cgroupns host`: no cgroup namespace.
    pub cgroupns_host: bool,
}

/// The OCI annotation that makes the shim run the init (`--init`) as PID 1.
pub const INIT_ANNOTATION: &str = "org.flotilla.init";
/// The OCI annotation listing `--group-add` gids (for `docker exec` processes).
pub const GROUPS_ANNOTATION: &str = "org.flotilla.group-add";

/// Where the container's output goes (`--log-driver`, `--log-opt`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum LogDriver {
    #[default]
    JsonFile,
    /// Output goes nowhere; `docker logs` is refused.
    None,
    /// dockerd's `local` driver: the same lines as json-file, in `local-logs/container.log`
    /// of the container's directory, rotated by default (20m, 5 files, compressed).
    Local,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LogConfig {
    pub driver: LogDriver,
    /// json-file `max-size` in bytes: the file is rotated before it grows past it.
    pub max_size: Option<u64>,
    /// json-file `max-file`: how many files (the current one and rotated ones) are kept.
    pub max_file: u32,
    /// json-file `compress`: rotated files are gzipped (`<log>.<n>.gz`).
    pub compress: bool,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig { driver: LogDriver::JsonFile, max_size: None, max_file: 1, compress: false }
    }
}

impl LogConfig {
    /// The rotated files of the log at `path`, oldest first, then `path` itself.
    pub fn files(&self, path: &std::path::Path) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = (1..self.max_file.max(1)).rev().map(|i| self.rotated(path, i)).collect();
        v.push(path.to_path_buf());
        v
    }
}

impl LogConfig {
    /// The n-th rotated file (1 = the most recent): `<path>.<n>`, `.gz` when compressed.
    pub fn rotated(&self, path: &std::path::Path, n: u32) -> PathBuf {
        let p = rotated(path, n);
        if self.compress {
            let mut s = p.into_os_string();
            s.push(".gz");
            PathBuf::from(s)
        } else {
            p
        }
    }
}

/// `<path>.<n>`: the n-th rotated file (1 = the most recent).
pub fn rotated(path: &std::path::Path, n: u32) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}
