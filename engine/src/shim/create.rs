//! Creating the container: stdio (pipes, or a pty received over the console socket), the
//! libcontainer build, and its errors in Docker's words. Runs before the shim has any thread.
use super::io::{STDERR, STDOUT};
use super::protocol::{self, ShimConfig};
use crate::runtime::seccomp::bpf::{self, Program};
use libcontainer::container::builder::ContainerBuilder;
use libcontainer::container::Container;
use libcontainer::syscall::syscall::SyscallType;
use libcontainer::workload::default::DefaultExecutor;
use libcontainer::workload::{Executor, ExecutorError, ExecutorValidationError};
use oci_spec::runtime::Spec;
use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The container's stdio as the shim sees it.
/// libcontainer's executor, but the workload starts with every signal at its default action
/// and none blocked, as under runc: ignored signals survive exec, and the shim (a Rust binary,
/// started by whatever) may have some ignored.
/// With `winsize`, a terminal on stdin gets that size before exec (the client's size from
/// the start, not only after its first resize).
/// With `seccomp`, the container's filter is loaded where runc loads it: just before the init
/// says it is ready and waits for its start (Docker's default), or, with no_new_privileges,
/// just before the exec (see `runtime::seccomp::bpf`).
/// With `gate`, the init waits for the engine to have mounted its rootfs and set up its network
/// before it enters its namespaces (`super::gate`).
#[derive(Clone, Default)]
pub(super) struct CleanSignals {
    pub winsize: Option<(u16, u16)>,
    pub seccomp: Option<Program>,
    pub gate: Option<super::gate::Waiter>,
}

impl Executor for CleanSignals {
    fn exec(&self, spec: &Spec) -> Result<(), ExecutorError> {
        if super::init::wanted(spec) {
            return super::init::run(spec, || self.exec_command(spec));
        }
        self.exec_command(spec)
    }

    fn validate(&self, spec: &Spec) -> Result<(), ExecutorValidationError> {
        DefaultExecutor {}.validate(spec)
    }

    /// In the init, before its namespaces and its rootfs: waits at the gate.
    fn before_namespaces(&self, _spec: &Spec) -> Result<(), ExecutorError> {
        match self.gate {
            Some(gate) => gate.wait().map_err(|e| ExecutorError::Other(e.to_string())),
            None => Ok(()),
        }
    }

    /// Without no_new_privileges, loading the filter is a privileged operation, and runc does it
    /// during the create, before the start (before it drops its capabilities). Here it happens
    /// after libcontainer set them (with CAP_SYS_ADMIN kept for it), before the start too: a
    /// start made ahead of its request no longer loads and compiles the filter after it.
    fn before_ready(&self, spec: &Spec) -> Result<(), ExecutorError> {
        if !no_new_privileges(spec) {
            self.load_seccomp()?;
        }
        Ok(())
    }
}

fn no_new_privileges(spec: &Spec) -> bool {
    spec.process().as_ref().and_then(|p| p.no_new_privileges()).unwrap_or(false)
}

impl CleanSignals {
    fn exec_command(&self, spec: &Spec) -> Result<(), ExecutorError> {
        reset_signals();
        if let Some((rows, cols)) = self.winsize.filter(|(r, c)| *r > 0 && *c > 0) {
            let ws = libc::winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 };
            // SAFETY: TIOCSWINSZ reads one winsize; on a non-tty stdin it fails harmlessly.
            unsafe { libc::ioctl(0, libc::TIOCSWINSZ, &ws) };
        }
        if no_new_privileges(spec) {
            self.load_seccomp()?;
        }
        DefaultExecutor {}.exec(spec)
    }

    fn load_seccomp(&self) -> Result<(), ExecutorError> {
        match &self.seccomp {
            Some(program) => bpf::load_in_init(program).map_err(|e| ExecutorError::Other(e.to_string())),
            None => Ok(()),
        }
    }
}

pub(super) struct Stdio {
    pub outputs: Vec<(File, u8)>,
    pub stdin: Option<File>,
    pub pty: Option<OwnedFd>,
}

pub(super) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}

/// Why a container could not be created, with the exit code dockerd gives a command that
/// cannot run (127: not found, 126: not executable), so the engine decides the container's
/// exit code from a field, never from the message.
#[derive(Debug, Clone, PartialEq)]
pub struct CreateFailure {
    pub message: String,
    pub code: Option<i32>,
}

impl From<String> for CreateFailure {
    fn from(message: String) -> Self {
        CreateFailure { message, code: None }
    }
}

/// libcontainer's create errors in the words of runc/dockerd (the docker CLI prints them), with
/// the exit code. This is the one place where an error's text is read: libcontainer checks the
/// executable inside the container's init process and sends the result back across that
/// process boundary as text only (`ExecutorValidationError::ArgValidationError(String)`).
fn docker_wording(err: String) -> CreateFailure {
    const PREFIX: &str = "failed to create task for container: failed to create shim task: OCI runtime create failed: runc create failed: unable to start container process";
    let quoted = |rest: &str| rest.split('\'').next().unwrap_or_default().to_string();
    if let Some((_, rest)) = err.split_once("executable '") {
        let exe = quoted(rest);
        if rest.contains("not found in $PATH") {
            let message = if exe.contains('/') {
                format!("{PREFIX}: exec: \"{exe}\": stat {exe}: no such file or directory: unknown")
            } else {
                format!("{PREFIX}: exec: \"{exe}\": executable file not found in $PATH: unknown")
            };
            return CreateFailure { message, code: Some(127) };
        }
        if rest.contains("does not have correct permissions") {
            return CreateFailure { message: format!("{PREFIX}: exec: \"{exe}\": permission denied: unknown"), code: Some(126) };
        }
    }
    CreateFailure::from(err)
}

/// Why the container's stdio or seccomp program could not be set up (the texts reach the user).
#[derive(Debug, thiserror::Error)]
pub(super) enum StdioError {
    #[error("pipe: {0}")]
    Pipe(nix::Error),
    #[error("console socket: {0}")]
    ConsoleSocket(std::io::Error),
    #[error("console socket: no pty received: {0}")]
    NoPtyAccepted(std::io::Error),
    #[error("console socket: no pty received")]
    NoPty,
    #[error("pty: {0}")]
    Pty(std::io::Error),
    #[error("invalid seccomp program {}", .0.display())]
    BadProgram(PathBuf),
    #[error("{}: {source}", path.display())]
    ReadProgram { path: PathBuf, source: std::io::Error },
}

impl From<StdioError> for CreateFailure {
    fn from(e: StdioError) -> Self {
        CreateFailure::from(e.to_string())
    }
}

pub(super) fn pipe() -> Result<(File, File), StdioError> {
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(StdioError::Pipe)?;
    Ok((File::from(r), File::from(w)))
}

/// Creates the container; returns it with the shim's ends of its stdio.
pub(super) fn create(cfg: &ShimConfig, state_dir: &Path, gate: Option<super::gate::Waiter>) -> Result<(Container, Stdio), CreateFailure> {
    let lc_err = |e: libcontainer::error::LibcontainerError| error_chain(&e);
    let mut builder = ContainerBuilder::new(cfg.id.clone(), SyscallType::Linux)
        .with_root_path(&cfg.runtime_root)
        .map_err(lc_err)?
        .with_executor(CleanSignals { winsize: cfg.console_size, seccomp: seccomp_program(&cfg.bundle)?, gate });
    let mut stdio = Stdio { outputs: vec![], stdin: None, pty: None };
    let console = if cfg.tty {
        let path = state_dir.join(protocol::CONSOLE_SOCKET_FILE);
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path).map_err(StdioError::ConsoleSocket)?;
        builder = builder.with_console_socket(Some(&path));
        Some((listener, path))
    } else {
        let (out_r, out_w) = pipe()?;
        let (err_r, err_w) = pipe()?;
        builder = builder.with_stdout(out_w).with_stderr(err_w);
        stdio.outputs = vec![(out_r, STDOUT), (err_r, STDERR)];
        if cfg.open_stdin {
            let (in_r, in_w) = pipe()?;
            builder = builder.with_stdin(in_r);
            stdio.stdin = Some(in_w);
        }
        None
    };
    let container = builder.as_init(&cfg.bundle).with_systemd(false).with_detach(true).build().map_err(|e| docker_wording(lc_err(e)));
    if let Some((listener, path)) = console {
        let _ = std::fs::remove_file(&path);
        let container = container?;
        let master = receive_pty_master(&listener)?;
        let read = master.try_clone().map_err(StdioError::Pty)?;
        if cfg.open_stdin {
            stdio.stdin = Some(File::from(master.try_clone().map_err(StdioError::Pty)?));
        }
        stdio.outputs = vec![(File::from(read), STDOUT)];
        stdio.pty = Some(master);
        return Ok((container, stdio));
    }
    Ok((container?, stdio))
}

/// The program the engine wrote next to the bundle (none: the container runs unconfined).
pub(super) fn seccomp_program(bundle: &Path) -> Result<Option<Program>, StdioError> {
    let path = bundle.join(bpf::BPF_FILE);
    match std::fs::read(&path) {
        Ok(data) => Program::decode(&data).map(Some).ok_or(StdioError::BadProgram(path)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(StdioError::ReadProgram { path, source }),
    }
}

/// libcontainer's init sent the pty master over the console socket before `build` returned.
fn receive_pty_master(listener: &UnixListener) -> Result<OwnedFd, StdioError> {
    listener.set_nonblocking(true).map_err(StdioError::ConsoleSocket)?;
    let (conn, _) = listener.accept().map_err(StdioError::NoPtyAccepted)?;
    conn.set_nonblocking(false).map_err(StdioError::ConsoleSocket)?;
    receive_fd(&conn, Instant::now() + Duration::from_secs(5)).ok_or(StdioError::NoPty)
}

/// Every signal back to its default action and unblocked (the shim's handlers and mask must
/// not reach the container's process).
pub(super) fn reset_signals() {
    for sig in 1..=64 {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // The raw syscall: glibc's wrappers refuse its internal signals (32, 33).
        // Kernel struct sigaction: handler (SIG_DFL = 0), flags, restorer, mask.
        let act: [u64; 4] = [0; 4];
        // SAFETY: rt_sigaction reads one kernel sigaction; the old action is not asked for.
        unsafe { libc::syscall(libc::SYS_rt_sigaction, sig, act.as_ptr(), std::ptr::null_mut::<u64>(), 8) };
    }
    let empty: [u64; 1] = [0];
    // SAFETY: sets the signal mask from our buffer (kernel sigset of 8 bytes).
    unsafe { libc::syscall(libc::SYS_rt_sigprocmask, libc::SIG_SETMASK, empty.as_ptr(), std::ptr::null_mut::<u64>(), 8) };
}

/// Waits until `fd` is readable or `deadline` passes (false).
pub(super) fn wait_readable(fd: RawFd, deadline: Instant) -> bool {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let mut p = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
        // SAFETY: polls one pollfd we own.
        let n = unsafe { libc::poll(&mut p, 1, left.as_millis().min(i32::MAX as u128) as i32) };
        if n > 0 {
            return true;
        }
        if n == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return false;
        }
    }
}

/// The pty master the child sends (None if it ended first).
pub(super) fn receive_fd(sock: &UnixStream, deadline: Instant) -> Option<OwnedFd> {
    if !wait_readable(sock.as_raw_fd(), deadline) {
        return None;
    }
    let mut buf = [0u8; 1];
    let (_, fds) = protocol::recv_with_fds(sock.as_raw_fd(), &mut buf, nix::sys::socket::MsgFlags::empty()).ok()?;
    fds.into_iter().next()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_errors_in_docker_words() {
        let lc =
            "failed to create container: exec process failed with error error in executing process : executable 'nope' not found in $PATH";
        let f = docker_wording(lc.into());
        assert!(f.message.ends_with(": exec: \"nope\": executable file not found in $PATH: unknown"));
        assert_eq!(f.code, Some(127));
        let abs = "x: executable '/bin/nope' not found in $PATH";
        let f = docker_wording(abs.into());
        assert!(f.message.contains("stat /bin/nope: no such file or directory"));
        assert_eq!(f.code, Some(127));
        let perm = "x: executable '/etc' at path '\"/etc\"' does not have correct permissions";
        let f = docker_wording(perm.into());
        assert!(f.message.contains("exec: \"/etc\": permission denied"));
        assert_eq!(f.code, Some(126));
        assert_eq!(docker_wording("other".into()), CreateFailure { message: "other".into(), code: None });
    }

    #[test]
    fn error_chain_skips_repeats() {
        let e = std::io::Error::other("outer");
        assert_eq!(error_chain(&e), "outer");
    }
}
