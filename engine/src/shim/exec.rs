//! `docker exec` inside the shim: the shim forks the process itself ([`spawn`]), so nothing is
//! spawned from the engine and no runtime binary runs per exec. The process is the shim's
//! child: the loop watches its pidfd, reaps it and reports its exit code on the request's
//! connection.
use super::create::{pipe, seccomp_program, StdioError};
use super::enter::EnterError;
use super::plan::{Plan, PlanError};
use super::protocol::{ExecReply, ExecRequest, Status};
use super::spawn::{spawn, Failure, Stdio};
use super::supervisor::{pidfd_open, trim_heap, Shim};
use nix::sys::socket::MsgFlags;
use nix::sys::wait::{waitpid, WaitPidFlag};
use nix::unistd::Pid;
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;

/// A running exec process and the connection its exit is reported on.
pub(super) struct Running {
    pub pid: Pid,
    pub pidfd: OwnedFd,
    conn: UnixStream,
}

impl Running {
    pub fn report(self, code: i32) {
        let _ = self.conn.set_nonblocking(false);
        let _ = send_line(&self.conn, &ExecReply { exit: Some(code), ..Default::default() }, &[]);
    }
}

fn send_line(ctrl: &UnixStream, reply: &ExecReply, fds: &[RawFd]) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(reply).unwrap_or_else(|_| b"{}".to_vec());
    line.push(b'\n');
    let n = super::protocol::send_with_fds(ctrl.as_raw_fd(), &line, fds, MsgFlags::empty())?;
    if n < line.len() {
        (&*ctrl).write_all(&line[n..])?;
    }
    Ok(())
}

fn fail(ctrl: &UnixStream, message: String, code: i32) {
    let _ = send_line(ctrl, &ExecReply { error: Some(message), code: Some(code), ..Default::default() }, &[]);
}

/// Why an exec process could not be prepared (the shim answers 126 with it, after
/// `OCI runtime exec failed: exec failed: `).
#[derive(Debug, thiserror::Error)]
enum SetupError {
    #[error("/dev/null: {0}")]
    DevNull(std::io::Error),
    #[error(transparent)]
    Stdio(#[from] StdioError),
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Enter(#[from] EnterError),
}

fn dev_null() -> Result<File, SetupError> {
    std::fs::OpenOptions::new().read(true).write(true).open("/dev/null").map_err(SetupError::DevNull)
}

/// Handles a [`ExecRequest`]: starts the process and answers with its pid and stdio, or the
/// error; the exit is reported later by the loop ([`Running::report`]).
pub(super) fn start(shim: &mut Shim, conn: UnixStream, req: ExecRequest) {
    let _ = conn.set_nonblocking(false);
    let not_running = |conn: &UnixStream, shim: &Shim| {
        let reply = ExecReply { error: Some(format!("container {} is not running", shim.cfg.id)), not_running: true, ..Default::default() };
        let _ = send_line(conn, &reply, &[]);
    };
    if shim.status != Status::Running || shim.reaped {
        return not_running(&conn, shim);
    }
    let started = run(shim, &req);
    trim_heap();
    let (pid, fds) = match started {
        Ok(x) => x,
        // The init ended meanwhile (its namespaces are gone): Docker's words for that.
        Err(_) if shim.init_exited() => return not_running(&conn, shim),
        Err((message, code)) => return fail(&conn, message, code),
    };
    let pidfd = match pidfd_open(pid) {
        Ok(p) => p,
        Err(e) => {
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            let _ = waitpid(pid, Some(WaitPidFlag::__WALL));
            return fail(&conn, format!("pidfd of exec process: {e}"), 126);
        }
    };
    let raw: Vec<RawFd> = fds.iter().map(|f| f.as_raw_fd()).collect();
    if let Err(e) = send_line(&conn, &ExecReply { pid: Some(pid.as_raw() as u32), ..Default::default() }, &raw) {
        eprintln!("shim: exec reply: {e}");
    }
    // Only the engine (and the process) hold these now, so EOF comes when the process ends.
    drop(fds);
    shim.execs.push(Running { pid, pidfd, conn });
}

/// Wires the process's stdio; returns the child's side and the engine's ends.
fn stdio(req: &ExecRequest) -> Result<(Stdio, Vec<OwnedFd>), SetupError> {
    if req.detach {
        return Ok((Stdio::Fds([dev_null()?.into(), dev_null()?.into(), dev_null()?.into()]), vec![]));
    }
    if req.tty {
        return Ok((Stdio::Tty(req.console_size), vec![]));
    }
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    let mut ours: Vec<OwnedFd> = vec![out_r.into(), err_r.into()];
    let stdin: File = if req.stdin {
        let (in_r, in_w) = pipe()?;
        ours.push(in_w.into());
        in_r
    } else {
        dev_null()?
    };
    Ok((Stdio::Fds([stdin.into(), out_w.into(), err_w.into()]), ours))
}

/// Starts the process; returns its pid and the engine's ends of its stdio.
fn run(shim: &mut Shim, req: &ExecRequest) -> Result<(Pid, Vec<OwnedFd>), Failure> {
    let internal = |e: SetupError| (format!("OCI runtime exec failed: exec failed: {e}: unknown"), 126);
    let seccomp = seccomp_program(&shim.cfg.bundle).map_err(|e| internal(e.into()))?;
    let plan = Plan::from_json(&req.process, seccomp).map_err(|e| internal(e.into()))?;
    let (stdio, mut ours) = stdio(req).map_err(internal)?;
    let (target, init) = shim.exec_target().map_err(|e| internal(e.into()))?;
    match spawn(target, init.as_fd(), &plan, stdio) {
        Ok((pid, master)) => {
            ours.extend(master);
            Ok((Pid::from_raw(pid), ours))
        }
        Err(e) => {
            if let Some(pid) = e.unreaped {
                shim.adopt_stray(Pid::from_raw(pid));
            }
            Err(e.failure)
        }
    }
}
