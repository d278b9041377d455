//! What the engine and a shim exchange: the shim's config file, file names in the state dir, and
//! the control protocol on `shim.sock`.
//!
//! Protocol: one request per connection. The client writes one JSON [`Request`] line, the shim
//! answers with one JSON [`Response`] line. After a successful `attach` answer the connection
//! becomes the attach stream (see `crate::runtime` for its framing). `wait` answers only once
//! the process has exited and its output has been drained. `exec` answers twice on its
//! connection: the process's pid and stdio, then its exit code.
use crate::runtime::Exit;
use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};
use serde::{Deserialize, Serialize};
use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

/// Written by the engine to `<state_dir>/shim.json`; the shim's only input.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShimConfig {
    pub id: String,
    /// Bundle dir holding `config.json`.
    pub bundle: PathBuf,
    /// libcontainer's state root.
    pub runtime_root: PathBuf,
    pub log_path: PathBuf,
    pub tty: bool,
    pub open_stdin: bool,
    pub stdin_once: bool,
    /// For the OOM check and leftover cleanup.
    pub cgroup_path: String,
    /// Initial tty size (rows, columns).
    #[serde(default)]
    pub console_size: Option<(u16, u16)>,
    /// Log driver and json-file rotation.
    #[serde(default)]
    pub log: crate::runtime::options::LogConfig,
    /// The engine is still mounting the rootfs or setting up the network: the container's init
    /// waits, before its namespaces and its rootfs, for one byte on the spawner's stdin after the
    /// state dir's line ([`GATE_OPEN`]; anything else, or its end: they failed, and so does the
    /// create). Only a daemon that read its state dir from stdin (`swarm shim --pooled`) has that
    /// stdin.
    #[serde(default)]
    pub gate: bool,
}

/// The byte that lets a waiting init go on ([`ShimConfig::gate`]).
pub const GATE_OPEN: u8 = b'1';
/// The byte that tells it that the engine's side failed.
pub const GATE_SHUT_BYTE: u8 = b'0';
/// Why a create fails at a gate that did not open.
pub const GATE_SHUT: &str = "the engine could not prepare the container's rootfs or network";

pub const CONFIG_FILE: &str = "shim.json";
pub const SOCKET_FILE: &str = "shim.sock";
pub const EXIT_FILE: &str = "exit.json";
pub const BUNDLE_DIR: &str = "bundle";
pub const CONSOLE_SOCKET_FILE: &str = "console.sock";

pub fn socket_path(state_dir: &Path) -> PathBuf {
    state_dir.join(SOCKET_FILE)
}

pub fn exit_path(state_dir: &Path) -> PathBuf {
    state_dir.join(EXIT_FILE)
}

pub use crate::fsutil::write_runtime_json;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Let the created process run; answers with its pid.
    Start,
    /// Signal the container's init process.
    Kill { signal: i32 },
    /// Answers with the exit once the process has exited.
    Wait,
    /// Turns the connection into an attach stream.
    Attach { stdin: bool, stdout: bool, stderr: bool },
    /// Sets the tty window size (ignored without a tty).
    Resize { height: u16, width: u16 },
    /// Current status, pid and exit.
    State,
    /// Kills the process if needed, cleans up, answers, and makes the shim exit at once.
    Delete,
    /// Runs a further process in the container (`docker exec`): answers one [`ExecReply`]
    /// line with `pid` or `error`, carrying the process's stdio as SCM_RIGHTS (see
    /// [`ExecRequest`]), and one more line with `exit` once the process has exited.
    Exec(ExecRequest),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Created,
    Running,
    Stopped,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Response {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Set with `error` when the request needs a running process.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub not_running: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit: Option<Exit>,
}

impl Response {
    pub fn ok() -> Self {
        Response::default()
    }
    pub fn err(msg: impl Into<String>) -> Self {
        Response { error: Some(msg.into()), ..Default::default() }
    }
    pub fn not_running(msg: impl Into<String>) -> Self {
        Response { error: Some(msg.into()), not_running: true, ..Default::default() }
    }
}

/// The line the daemonized shim sends its spawner once the container is created (or failed).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ready {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// With `error`: the exit code dockerd gives a command that cannot run (126, 127).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<i32>,
}

/// What `docker exec` runs (see [`Request::Exec`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecRequest {
    pub exec_id: String,
    /// The OCI `process` object to run.
    pub process: serde_json::Value,
    /// A pty: the reply carries its master.
    pub tty: bool,
    /// Without a tty: the reply carries [stdout, stderr] read ends, plus a stdin write end
    /// when set (else the process's stdin is /dev/null).
    pub stdin: bool,
    /// Every stdio on /dev/null; the reply carries no fds.
    pub detach: bool,
    /// Initial tty size (rows, columns).
    #[serde(default)]
    pub console_size: Option<(u16, u16)>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ExecReply {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// With `error`: the exit code dockerd reports for it (126, 127).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit: Option<i32>,
    /// With `error`: the container's process is not running (any more).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub not_running: bool,
}

/// Sends `data` on the unix socket `sock`, with `fds` (SCM_RIGHTS) when there are any; returns
/// how many bytes were sent. Retried on EINTR.
pub fn send_with_fds(sock: RawFd, data: &[u8], fds: &[RawFd], flags: MsgFlags) -> std::io::Result<usize> {
    let iov = [IoSlice::new(data)];
    let rights = [ControlMessage::ScmRights(fds)];
    let cmsgs: &[ControlMessage] = if fds.is_empty() { &[] } else { &rights };
    loop {
        match sendmsg::<()>(sock, &iov, cmsgs, flags, None) {
            Err(nix::errno::Errno::EINTR) => continue,
            r => return r.map_err(std::io::Error::from),
        }
    }
}

/// Receives at most `buf.len()` bytes from the unix socket `sock`, and the fds sent with them
/// (close-on-exec, ours). Retried on EINTR; `flags` add to MSG_CMSG_CLOEXEC.
pub fn recv_with_fds(sock: RawFd, buf: &mut [u8], flags: MsgFlags) -> std::io::Result<(usize, Vec<OwnedFd>)> {
    let mut cmsg = nix::cmsg_space!([RawFd; 4]);
    let mut iov = [IoSliceMut::new(buf)];
    let msg = loop {
        match recvmsg::<()>(sock, &mut iov, Some(&mut cmsg), MsgFlags::MSG_CMSG_CLOEXEC | flags) {
            Err(nix::errno::Errno::EINTR) => continue,
            r => break r.map_err(std::io::Error::from)?,
        }
    };
    let mut fds = vec![];
    for c in msg.cmsgs().map_err(std::io::Error::from)? {
        if let ControlMessageOwned::ScmRights(raw) = c {
            // SAFETY: the kernel just installed these fds for us; each is owned once.
            fds.extend(raw.into_iter().map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }));
        }
    }
    Ok((msg.bytes, fds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_wire_format() {
        let r: Request = serde_json::from_str(r#"{"op":"kill","signal":15}"#).unwrap();
        assert_eq!(r, Request::Kill { signal: 15 });
        assert_eq!(serde_json::to_string(&Request::Start).unwrap(), r#"{"op":"start"}"#);
        let a = Request::Attach { stdin: true, stdout: true, stderr: false };
        assert_eq!(serde_json::from_str::<Request>(&serde_json::to_string(&a).unwrap()).unwrap(), a);
        let e = Request::Exec(ExecRequest {
            exec_id: "x".into(),
            process: serde_json::json!({"args": ["true"]}),
            tty: false,
            stdin: true,
            detach: false,
            console_size: Some((24, 80)),
        });
        let line = serde_json::to_string(&e).unwrap();
        assert!(line.starts_with(r#"{"op":"exec","#), "{line}");
        assert_eq!(serde_json::from_str::<Request>(&line).unwrap(), e);
    }

    #[test]
    fn runtime_json_is_written_whole() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a/exit.json");
        write_runtime_json(&p, &serde_json::json!({"code": 3})).unwrap();
        write_runtime_json(&p, &serde_json::json!({"code": 4})).unwrap();
        let v: serde_json::Value = crate::fsutil::read_json(&p).unwrap().unwrap();
        assert_eq!(v["code"], 4);
        assert_eq!(std::fs::read_dir(d.path().join("a")).unwrap().count(), 1);
    }

    #[test]
    fn response_is_compact() {
        assert_eq!(serde_json::to_string(&Response::ok()).unwrap(), "{}");
        let r: Response = serde_json::from_str(r#"{"error":"x","not_running":true}"#).unwrap();
        assert!(r.not_running);
    }
}
