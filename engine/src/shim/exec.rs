//! `docker exec` inside the shim: the tenant build (libcontainer joins the container's
//! namespaces and cgroups) runs in the shim's single thread, so no process is spawned from the
//! engine. The exec'd process is the shim's child (libcontainer clones it as a sibling of its
//! intermediate process): the loop watches its pidfd, reaps it and reports its exit code on the
//! request's connection.
use super::create::{error_chain, pipe, receive_pty_master, CleanSignals};
use super::protocol::{ExecReply, ExecRequest, Status};
use super::supervisor::{pidfd_open, trim_heap, Shim};
use libcontainer::container::builder::ContainerBuilder;
use libcontainer::syscall::syscall::SyscallType;
use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
use nix::sys::wait::{waitpid, WaitPidFlag};
use nix::unistd::Pid;
use std::fs::File;
use std::io::{IoSlice, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;

/// Rewords libcontainer's tenant errors as runc/dockerd do; returns the text and the exit code
/// dockerd gives the exec (127: no such command, 126: cannot run it).
pub fn exec_wording(err: &str) -> (String, i32) {
    const PREFIX: &str = "OCI runtime exec failed: exec failed: unable to start container process";
    let quoted = |rest: &str| rest.split('\'').next().unwrap_or_default().to_string();
    if let Some((_, rest)) = err.split_once("executable '") {
        let exe = quoted(rest);
        if rest.contains("not found in $PATH") {
            return if exe.contains('/') {
                (format!("{PREFIX}: exec: \"{exe}\": stat {exe}: no such file or directory: unknown"), 127)
            } else {
                (format!("{PREFIX}: exec: \"{exe}\": executable file not found in $PATH: unknown"), 127)
            };
        }
        if rest.contains("does not have correct permissions") {
            return (format!("{PREFIX}: exec: \"{exe}\": permission denied: unknown"), 126);
        }
    }
    (format!("OCI runtime exec failed: exec failed: {err}: unknown"), 126)
}

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
    let iov = [IoSlice::new(&line)];
    let cmsgs = [ControlMessage::ScmRights(fds)];
    let cmsgs: &[ControlMessage] = if fds.is_empty() { &[] } else { &cmsgs };
    let n = sendmsg::<()>(ctrl.as_raw_fd(), &iov, cmsgs, MsgFlags::empty(), None).map_err(std::io::Error::from)?;
    if n < line.len() {
        (&*ctrl).write_all(&line[n..])?;
    }
    Ok(())
}

fn fail(ctrl: &UnixStream, message: String, code: i32) {
    let _ = send_line(ctrl, &ExecReply { error: Some(message), code: Some(code), ..Default::default() }, &[]);
}

fn dev_null() -> Result<File, String> {
    std::fs::OpenOptions::new().read(true).write(true).open("/dev/null").map_err(|e| format!("/dev/null: {e}"))
}

/// Handles a [`ExecRequest`]: starts the process and answers with its pid and stdio, or the
/// error; the exit is reported later by the loop ([`Running::report`]).
pub(super) fn start(shim: &mut Shim, conn: UnixStream, req: ExecRequest) {
    let _ = conn.set_nonblocking(false);
    if shim.status != Status::Running || shim.reaped {
        let reply = ExecReply { error: Some(format!("container {} is not running", shim.cfg.id)), not_running: true, ..Default::default() };
        let _ = send_line(&conn, &reply, &[]);
        return;
    }
    let started = run(shim, &req);
    trim_heap();
    let (pid, fds) = match started {
        Ok(x) => x,
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

/// The OCI process as a file libcontainer can open: a memfd, named by its /proc path.
fn process_file(process: &serde_json::Value) -> Result<(File, PathBuf), String> {
    // SAFETY: the name is a valid C string; the flags ask for a close-on-exec memfd.
    let fd = unsafe { libc::memfd_create(c"exec-process".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(format!("memfd: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: the fd is new and ours.
    let mut file = unsafe { File::from_raw_fd(fd) };
    let json = serde_json::to_vec(process).map_err(|e| format!("exec process: {e}"))?;
    file.write_all(&json).map_err(|e| format!("exec process: {e}"))?;
    Ok((file, PathBuf::from(format!("/proc/self/fd/{fd}"))))
}

type Console = Option<(UnixListener, PathBuf)>;

/// Wires the process's stdio; returns the builder, the engine's ends and the console socket.
fn stdio(mut builder: ContainerBuilder, req: &ExecRequest, work_dir: &std::path::Path) -> Result<(ContainerBuilder, Vec<OwnedFd>, Console), String> {
    let short: String = req.exec_id.chars().take(12).collect();
    if req.detach {
        builder = builder.with_stdin(dev_null()?).with_stdout(dev_null()?).with_stderr(dev_null()?);
        return Ok((builder, vec![], None));
    }
    if req.tty {
        let path = work_dir.join(format!("exec-{short}.sock"));
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path).map_err(|e| format!("console socket: {e}"))?;
        builder = builder.with_console_socket(Some(&path));
        return Ok((builder, vec![], Some((listener, path))));
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
    builder = builder.with_stdin(stdin).with_stdout(out_w).with_stderr(err_w);
    Ok((builder, ours, None))
}

/// The tenant build; returns the process's pid and the engine's ends of its stdio.
fn run(shim: &Shim, req: &ExecRequest) -> Result<(Pid, Vec<OwnedFd>), (String, i32)> {
    let (_process, process_path) = process_file(&req.process).map_err(|e| (e, 126))?;
    let builder = ContainerBuilder::new(shim.cfg.id.clone(), SyscallType::Linux)
        .with_root_path(&shim.cfg.runtime_root)
        .map_err(|e| (error_chain(&e), 126))?
        .with_executor(CleanSignals { winsize: req.console_size });
    let (builder, mut ours, console) = stdio(builder, req, &shim.state_dir).map_err(|e| (e, 126))?;
    let built = builder.as_tenant().with_process(Some(process_path)).with_detach(true).build();
    if let Some((_, path)) = &console {
        let _ = std::fs::remove_file(path);
    }
    let pid = built.map_err(|e| exec_wording(&error_chain(&e)))?;
    if let Some((listener, _)) = &console {
        match receive_pty_master(listener) {
            Ok(m) => ours.push(m),
            Err(e) => {
                let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
                let _ = waitpid(pid, Some(WaitPidFlag::__WALL));
                return Err((e, 126));
            }
        }
    }
    Ok((pid, ours))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_errors_in_docker_words() {
        let (m, c) = exec_wording("error in executing process : executable 'nope' not found in $PATH");
        assert_eq!(c, 127);
        assert!(m.ends_with("exec: \"nope\": executable file not found in $PATH: unknown"), "{m}");
        assert!(m.starts_with("OCI runtime exec failed"));
        assert_eq!(exec_wording("x executable '/etc' at path '\"/etc\"' does not have correct permissions").1, 126);
        assert_eq!(exec_wording("other").1, 126);
    }
}
