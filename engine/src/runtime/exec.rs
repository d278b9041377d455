//! `docker exec` in the real runtime: the container's shim starts the process (an `exec`
//! request on its socket, see `shim::spawn`) and hands the engine the process's stdio.
use super::{spec, user, FdStream, RuntimeError, ShimRuntime};
use crate::shim::protocol::{self, ExecReply, ExecRequest, Request};
use nix::sys::socket::MsgFlags;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, Interest};
use tokio::sync::oneshot;

/// What to run (the container service has merged the container's config in already).
#[derive(Debug, Clone, Default)]
pub struct ExecSpec {
    pub exec_id: String,
    pub args: Vec<String>,
    /// The container's environment with the exec's `-e` applied.
    pub env: Vec<String>,
    /// Absolute; empty = `/`.
    pub cwd: String,
    /// As for `--user`; resolved against the container's /etc/passwd.
    pub user: String,
    pub tty: bool,
    /// Give the process a stdin the client writes to (else /dev/null).
    pub stdin: bool,
    /// Every capability (`--privileged`).
    pub privileged: bool,
    /// No stdio at all (`docker exec -d`).
    pub detach: bool,
    /// Initial tty size (rows, columns).
    pub console_size: Option<(u16, u16)>,
}

/// A running exec process.
#[derive(Debug)]
pub struct ExecProcess {
    pub pid: u32,
    /// Write end of its stdin (with a tty: the pty master).
    pub stdin: Option<FdStream>,
    /// Its stdout (with a tty: the pty master, carrying both streams).
    pub stdout: Option<FdStream>,
    pub stderr: Option<FdStream>,
    /// The pty master, for resizes.
    pub pty: Option<OwnedFd>,
    /// Resolves with the exit code (128+signal when killed).
    pub exit: oneshot::Receiver<i32>,
}

/// Capability names, each at its bit's index.
pub const CAPABILITY_NAMES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// Every capability the running kernel knows and this process may grant (`--privileged`).
pub fn all_capabilities() -> Vec<String> {
    let last: usize = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap").ok().and_then(|s| s.trim().parse().ok()).unwrap_or(40);
    // A capability outside our own permitted set cannot be given (capset fails with EPERM).
    let permitted = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("CapPrm:").map(|v| u64::from_str_radix(v.trim(), 16).ok())))
        .flatten()
        .unwrap_or(u64::MAX);
    CAPABILITY_NAMES.iter().take(last + 1).enumerate().filter(|(i, _)| permitted >> i & 1 == 1).map(|(_, s)| s.to_string()).collect()
}

/// The engine's end of one stdio fd the shim sent over its socket `sock`.
fn stream(fd: OwnedFd, sock: &Path) -> Result<FdStream, RuntimeError> {
    FdStream::new(fd).map_err(|e| RuntimeError::io("registering an exec stdio fd from", sock, e))
}

fn dup(fd: &OwnedFd, sock: &Path) -> Result<OwnedFd, RuntimeError> {
    fd.try_clone().map_err(|e| RuntimeError::io("duplicating the exec pty from", sock, e))
}

impl ShimRuntime {
    pub(super) async fn exec_process(&self, id: &str, state_dir: &Path, es: &ExecSpec) -> Result<ExecProcess, RuntimeError> {
        let bundle_config = state_dir.join(protocol::BUNDLE_DIR).join("config.json");
        let es2 = es.clone();
        let process = tokio::task::spawn_blocking(move || -> Result<_, RuntimeError> {
            let base: spec::ExecBase = crate::fsutil::read_json(&bundle_config)
                .map_err(|e| RuntimeError::io("reading", &bundle_config, e))?
                .ok_or_else(|| RuntimeError::NotRunning(String::new()))?;
            let user = user::resolve_user(&base.rootfs(), &es2.user)?;
            Ok(spec::exec_process(&base, &es2, &user))
        })
        .await
        .map_err(|e| RuntimeError::shim(id, format!("exec: {e}")))?
        .map_err(|e| match e {
            RuntimeError::NotRunning(_) => RuntimeError::NotRunning(id.to_string()),
            e => e,
        })?;
        let req = Request::Exec(ExecRequest {
            exec_id: es.exec_id.clone(),
            process,
            tty: es.tty,
            stdin: es.stdin,
            detach: es.detach,
            console_size: es.console_size,
        });
        let mut line = serde_json::to_vec(&req).map_err(|e| RuntimeError::shim(id, e.to_string()))?;
        line.push(b'\n');
        let sock = protocol::socket_path(state_dir);
        let mut ctrl = tokio::net::UnixStream::connect(&sock).await.map_err(|_| RuntimeError::NotRunning(id.to_string()))?;
        ctrl.write_all(&line).await.map_err(|e| RuntimeError::io("sending the exec request to", &sock, e))?;
        // The first reply line, with the fds it carries.
        let mut got = Vec::new();
        let mut fds = Vec::new();
        let mut buf = [0u8; 4096];
        let nl = loop {
            if let Some(i) = got.iter().position(|&b| b == b'\n') {
                break i;
            }
            ctrl.readable().await.map_err(|e| RuntimeError::io("waiting for the exec reply on", &sock, e))?;
            let recv = || protocol::recv_with_fds(ctrl.as_raw_fd(), &mut buf, MsgFlags::MSG_DONTWAIT);
            match ctrl.try_io(Interest::READABLE, recv).map(|(n, got)| {
                fds.extend(got);
                n
            }) {
                Ok(0) => return Err(RuntimeError::NotRunning(id.to_string())),
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(RuntimeError::io("reading the exec reply from", &sock, e)),
            }
        };
        let reply: ExecReply = serde_json::from_slice(&got[..nl]).map_err(|e| RuntimeError::shim(id, format!("exec: {e}")))?;
        if reply.not_running {
            return Err(RuntimeError::NotRunning(id.to_string()));
        }
        if let Some(message) = reply.error {
            return Err(RuntimeError::Exec { message, code: reply.code.unwrap_or(126) });
        }
        let rest = got[nl + 1..].to_vec();
        let (tx, exit) = oneshot::channel();
        self.tasks.spawn_until_shutdown(async move {
            let code = read_exit(ctrl, rest).await;
            let _ = tx.send(code.unwrap_or(255));
        });
        let mut fds = fds.into_iter();
        let mut p = ExecProcess { pid: reply.pid.unwrap_or(0), stdin: None, stdout: None, stderr: None, pty: None, exit };
        if es.detach {
            return Ok(p);
        }
        let missing = || RuntimeError::shim(id, "the shim sent no stdio for the exec");
        if es.tty {
            let master = fds.next().ok_or_else(missing)?;
            if es.stdin {
                p.stdin = Some(stream(dup(&master, &sock)?, &sock)?);
            }
            p.stdout = Some(stream(dup(&master, &sock)?, &sock)?);
            p.pty = Some(master);
        } else {
            p.stdout = Some(stream(fds.next().ok_or_else(missing)?, &sock)?);
            p.stderr = Some(stream(fds.next().ok_or_else(missing)?, &sock)?);
            if es.stdin {
                p.stdin = Some(stream(fds.next().ok_or_else(missing)?, &sock)?);
            }
        }
        Ok(p)
    }
}

/// Reads reply lines until the one with `exit`.
async fn read_exit(ctrl: tokio::net::UnixStream, rest: Vec<u8>) -> Option<i32> {
    let mut reader = tokio::io::BufReader::new(tokio::io::AsyncReadExt::chain(std::io::Cursor::new(rest), ctrl));
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).await.ok()? == 0 {
            return None;
        }
        if let Ok(ExecReply { exit: Some(code), .. }) = serde_json::from_str(line.trim()) {
            return Some(code);
        }
    }
}
