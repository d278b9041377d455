//! `swarm shim exec`: a short-lived, single-threaded helper that starts one `docker exec`
//! process inside a running container (libcontainer's tenant build: joins the container's
//! namespaces and cgroups), hands the engine the process's stdio, and reports its exit.
//!
//! The engine starts it with a unix socket as stdin (see [`protocol::ExecRequest`]); it never
//! forks in the engine's threaded process. The exec'd process is this helper's child, so
//! the helper reaps it and knows its exit status.
use super::create::{error_chain, pipe, receive_pty_master, CleanSignals};
use super::protocol::{ExecReply, ExecRequest};
use libcontainer::container::builder::ContainerBuilder;
use libcontainer::syscall::syscall::SyscallType;
use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use std::fs::File;
use std::io::{BufRead, BufReader, IoSlice, Write};
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

fn fail(ctrl: &UnixStream, message: String, code: i32) -> i32 {
    let _ = send_line(ctrl, &ExecReply { error: Some(message), code: Some(code), ..Default::default() }, &[]);
    1
}

fn dev_null() -> Result<File, String> {
    std::fs::OpenOptions::new().read(true).write(true).open("/dev/null").map_err(|e| format!("/dev/null: {e}"))
}

/// Entry point of `swarm shim exec` (stdin is the control socket).
pub fn main() -> i32 {
    // SAFETY: fd 0 is the control socket the engine gave us; nothing else owns it.
    let ctrl = unsafe { UnixStream::from_raw_fd(0) };
    let mut line = String::new();
    if let Err(e) = BufReader::new(&ctrl).read_line(&mut line) {
        eprintln!("shim exec: reading request: {e}");
        return 2;
    }
    let req: ExecRequest = match serde_json::from_str(&line) {
        Ok(r) => r,
        Err(e) => return fail(&ctrl, format!("bad exec request: {e}"), 126),
    };
    // Our own stdio (inherited by nothing: every fd we hand over is dup'ed onto 0-2 in the child).
    if let Ok(null) = dev_null() {
        let _ = nix::unistd::dup2(null.as_raw_fd(), 1);
    }
    let short: String = req.exec_id.chars().take(12).collect();
    let process_file = req.work_dir.join(format!("exec-{short}.json"));
    if let Err(e) = crate::fsutil::write_runtime_json(&process_file, &req.process) {
        return fail(&ctrl, format!("writing {}: {e}", process_file.display()), 126);
    }
    let res = run(&ctrl, &req, process_file.clone());
    let _ = std::fs::remove_file(&process_file);
    res
}

type Console = Option<(UnixListener, PathBuf)>;

/// Wires the process's stdio; returns the builder, the engine's ends and the console socket.
fn stdio(mut builder: ContainerBuilder, req: &ExecRequest) -> Result<(ContainerBuilder, Vec<OwnedFd>, Console), String> {
    let short: String = req.exec_id.chars().take(12).collect();
    if req.detach {
        builder = builder.with_stdin(dev_null()?).with_stdout(dev_null()?).with_stderr(dev_null()?);
        return Ok((builder, vec![], None));
    }
    if req.tty {
        let path = req.work_dir.join(format!("exec-{short}.sock"));
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

fn run(ctrl: &UnixStream, req: &ExecRequest, process_file: PathBuf) -> i32 {
    let builder = match ContainerBuilder::new(req.id.clone(), SyscallType::Linux).with_root_path(&req.runtime_root) {
        Ok(b) => b.with_executor(CleanSignals { winsize: req.console_size }),
        Err(e) => return fail(ctrl, error_chain(&e), 126),
    };
    let (builder, mut ours, console) = match stdio(builder, req) {
        Ok(x) => x,
        Err(e) => return fail(ctrl, e, 126),
    };
    let built = builder.as_tenant().with_process(Some(process_file.clone())).with_detach(true).build();
    let _ = std::fs::remove_file(&process_file);
    if let Some((_, path)) = &console {
        let _ = std::fs::remove_file(path);
    }
    let pid = match built {
        Ok(p) => p,
        Err(e) => {
            let (msg, code) = exec_wording(&error_chain(&e));
            return fail(ctrl, msg, code);
        }
    };
    if let Some((listener, _)) = &console {
        match receive_pty_master(listener) {
            Ok(m) => ours.push(m),
            Err(e) => {
                let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
                let _ = waitpid(pid, Some(WaitPidFlag::__WALL));
                return fail(ctrl, e, 126);
            }
        }
    }
    let raw: Vec<RawFd> = ours.iter().map(|f| f.as_raw_fd()).collect();
    if let Err(e) = send_line(ctrl, &ExecReply { pid: Some(pid.as_raw() as u32), ..Default::default() }, &raw) {
        eprintln!("shim exec: sending reply: {e}");
    }
    // Only the engine (and the process) may hold these now, so EOF comes when the process ends.
    drop(ours);
    let code = loop {
        match waitpid(pid, Some(WaitPidFlag::__WALL)) {
            Ok(WaitStatus::Exited(_, c)) => break c,
            Ok(WaitStatus::Signaled(_, sig, _)) => break 128 + sig as i32,
            Ok(_) => continue,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => {
                eprintln!("shim exec: waitpid: {e}");
                break 255;
            }
        }
    };
    let _ = send_line(ctrl, &ExecReply { exit: Some(code), ..Default::default() }, &[]);
    0
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
