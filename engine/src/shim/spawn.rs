//! Starts a `docker exec` process: a fork of the shim joins the container's cgroups and
//! namespaces ([`Target`]), takes the process's stdio, limits, user and capabilities, and execs
//! the command. What fails before the exec reaches the shim on a close-on-exec pipe, in runc's
//! words, with the exit code dockerd gives it (127: no such command, 126: cannot run it).
//!
//! The shim is one thread, so the child may allocate. It is born in the container's pid
//! namespace (the shim's `pid_for_children`, set to it around the fork only) and not dumpable
//! (the shim is not), so a container
//! process can neither trace it nor open its `/proc/PID/exe` (the shim's binary on the host)
//! before the exec.
use super::create::{receive_fd, reset_signals, wait_readable};
use super::enter::Target;
use super::plan::Plan;
use std::ffi::{CStr, CString};
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

const PREFIX: &str = "OCI runtime exec failed: exec failed: unable to start container process";
/// How long the shim waits for the child to exec (or fail) before it gives up on it.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// The child's stdio.
pub(super) enum Stdio {
    /// stdin, stdout, stderr (pipe ends or /dev/null).
    Fds([OwnedFd; 3]),
    /// A new pty of the container's devpts, of this size (rows, columns); its master comes back.
    Tty(Option<(u16, u16)>),
}

/// A failure before the exec: the text for the client and the exit code.
pub(super) type Failure = (String, i32);

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EIO)
}

/// An errno as Go (and so runc and dockerd) words it: strerror, first letter lower case.
fn errno_text(e: i32) -> String {
    let s = std::io::Error::from_raw_os_error(e).to_string();
    let s = s.split(" (os error").next().unwrap_or_default();
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().chain(c).collect(),
        None => String::new(),
    }
}

fn check(ret: libc::c_long, what: impl FnOnce() -> String) -> Result<(), Failure> {
    if ret < 0 {
        // errno first: building the text allocates.
        let e = errno();
        Err((format!("{PREFIX}: {}: {}: unknown", what(), errno_text(e)), 126))
    } else {
        Ok(())
    }
}

/// A failed start whose child could not be reaped at once (it is stopped or frozen): the
/// caller watches it and reaps it later, or it would keep the container's init from exiting.
pub(super) struct SpawnError {
    pub failure: Failure,
    pub unreaped: Option<libc::pid_t>,
}

impl From<Failure> for SpawnError {
    fn from(failure: Failure) -> Self {
        SpawnError { failure, unreaped: None }
    }
}

/// Forks and starts the process. Returns its pid and, with a tty, the pty master.
pub(super) fn spawn(t: &Target, init: BorrowedFd, plan: &Plan, stdio: Stdio) -> Result<(libc::pid_t, Option<OwnedFd>), SpawnError> {
    let internal = |what: &str, e: std::io::Error| (format!("{PREFIX}: {what}: {e}: unknown"), 126);
    let (err_r, err_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| internal("pipe", e.into()))?;
    let tty = match &stdio {
        Stdio::Tty(size) => Some((UnixStream::pair().map_err(|e| internal("socketpair", e))?, *size)),
        Stdio::Fds(_) => None,
    };
    let pid_ns = |fd: RawFd| -> Result<(), Failure> {
        // SAFETY: setns with CLONE_NEWPID only changes where this process's children are born.
        check(unsafe { libc::setns(fd, libc::CLONE_NEWPID) } as _, || "entering the container's pid namespace".into())
    };
    if t.own_pid_ns.is_some() {
        pid_ns(init.as_raw_fd())?;
    }
    // SAFETY: the shim has one thread, so the child may run any code.
    let pid = unsafe { libc::fork() };
    let fork_errno = errno();
    if let (Some(own), true) = (&t.own_pid_ns, pid != 0) {
        if let Err(f) = pid_ns(own.as_raw_fd()) {
            eprintln!("shim: back to its own pid namespace: {}", f.0);
        }
    }
    if pid < 0 {
        let e = fork_errno;
        let text = if e == libc::ENOMEM { "the container's pid namespace is gone".to_string() } else { errno_text(e) };
        return Err((format!("{PREFIX}: fork: {text}: unknown"), 126).into());
    }
    if pid == 0 {
        drop(err_r);
        let sock = tty.as_ref().map(|((_, child), size)| (child.as_raw_fd(), *size));
        // A panic must not unwind into the shim's own frames in this process.
        let run = std::panic::AssertUnwindSafe(|| child(t, init.as_raw_fd(), plan, &stdio, sock));
        let (message, code) = match std::panic::catch_unwind(run) {
            Ok(Err(f)) => f,
            Ok(Ok(never)) => match never {},
            Err(_) => (format!("{PREFIX}: the exec child panicked: unknown"), 126),
        };
        let line = format!("{code} {message}");
        // SAFETY: writes our own buffer to our pipe, then ends the child without unwinding.
        unsafe {
            libc::write(err_w.as_raw_fd(), line.as_ptr().cast(), line.len());
            libc::_exit(code);
        }
    }
    drop((err_w, stdio));
    let deadline = Instant::now() + START_TIMEOUT;
    let wants_pty = tty.is_some();
    let master = match tty {
        Some(((ours, child_end), _)) => {
            drop(child_end);
            receive_fd(&ours, deadline)
        }
        None => None,
    };
    let failure = match read_to_end(&err_r, deadline) {
        Ok(r) if r.is_empty() && wants_pty && master.is_none() => Some((format!("{PREFIX}: no pty received: unknown"), 126)),
        Ok(r) if r.is_empty() => None,
        Ok(r) => {
            let r = String::from_utf8_lossy(&r).into_owned();
            let (code, message) = r.split_once(' ').unwrap_or(("126", r.as_str()));
            Some((message.to_string(), code.parse().unwrap_or(126)))
        }
        Err(()) => Some((format!("{PREFIX}: the process did not start within {}s: unknown", START_TIMEOUT.as_secs()), 126)),
    };
    if let Some(failure) = failure {
        // SAFETY: the child is ours; it is killed and reaped if it has gone already (a stopped
        // or frozen one is left to the caller, so the shim never blocks on it).
        let reaped = unsafe {
            libc::kill(pid, libc::SIGKILL);
            libc::waitpid(pid, std::ptr::null_mut(), libc::__WALL | libc::WNOHANG) == pid
        };
        return Err(SpawnError { failure, unreaped: (!reaped).then_some(pid) });
    }
    Ok((pid, master))
}

/// The child's report: empty once it has exec'd. Err when it takes too long.
fn read_to_end(fd: &OwnedFd, deadline: Instant) -> Result<Vec<u8>, ()> {
    let mut out = vec![];
    let mut buf = [0u8; 4096];
    loop {
        if !wait_readable(fd.as_raw_fd(), deadline) {
            return Err(());
        }
        // SAFETY: reads into our buffer.
        let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        match n {
            0 => return Ok(out),
            n if n > 0 => out.extend_from_slice(&buf[..n as usize]),
            _ if errno() == libc::EINTR => {}
            _ => return Ok(out),
        }
    }
}

fn send_fd(sock: RawFd, fd: RawFd) -> Result<(), Failure> {
    super::protocol::send_with_fds(sock, b"m", &[fd], nix::sys::socket::MsgFlags::empty())
        .map(|_| ())
        .map_err(|e| (format!("{PREFIX}: sending the pty master: {}: unknown", errno_text(e.raw_os_error().unwrap_or(libc::EIO))), 126))
}

/// A new pty from the container's devpts: sends the master on `sock`, makes the slave the
/// controlling terminal and stdio.
fn pty(sock: RawFd, size: Option<(u16, u16)>, uid: libc::uid_t) -> Result<(), Failure> {
    // SAFETY (this block): open/ioctl/dup2/close on fds this child owns, with valid pointers.
    unsafe {
        let master = libc::open(c"/dev/ptmx".as_ptr(), libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC);
        check(master as _, || "open /dev/ptmx".into())?;
        let unlock: libc::c_int = 0;
        check(libc::ioctl(master, libc::TIOCSPTLCK, &unlock) as _, || "unlockpt".into())?;
        let slave = libc::ioctl(master, libc::TIOCGPTPEER, libc::O_RDWR | libc::O_NOCTTY);
        check(slave as _, || "open the pty slave".into())?;
        if let Some((rows, cols)) = size.filter(|(r, c)| *r > 0 && *c > 0) {
            let ws = libc::winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 };
            libc::ioctl(slave, libc::TIOCSWINSZ, &ws);
        }
        // The user's terminal, as a login gives it.
        libc::fchown(slave, uid, u32::MAX);
        send_fd(sock, master)?;
        libc::close(master);
        check(libc::ioctl(slave, libc::TIOCSCTTY, 0) as _, || "setting the controlling terminal".into())?;
        for target in 0..3 {
            check(libc::dup2(slave, target) as _, || "dup2 of the pty".into())?;
        }
        if slave > 2 {
            libc::close(slave);
        }
    }
    Ok(())
}

/// Go's `exec.LookPath` in the container: a name with a slash as it is, else the first
/// executable regular file of that name in `PATH`.
fn look_path(arg0: &str, path: &str) -> Result<CString, Failure> {
    let executable = |p: &str| -> Result<CString, i32> {
        let c = CString::new(p).map_err(|_| libc::ENOENT)?;
        // SAFETY: stat into a zeroed struct we own.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        if unsafe { libc::stat(c.as_ptr(), &mut st) } != 0 {
            return Err(errno());
        }
        if st.st_mode & libc::S_IFMT == libc::S_IFDIR || st.st_mode & 0o111 == 0 {
            return Err(libc::EACCES);
        }
        Ok(c)
    };
    if arg0.contains('/') {
        return executable(arg0).map_err(|e| match e {
            libc::EACCES => (format!("{PREFIX}: exec: \"{arg0}\": permission denied: unknown"), 126),
            e => (format!("{PREFIX}: exec: \"{arg0}\": stat {arg0}: {}: unknown", errno_text(e)), 127),
        });
    }
    for dir in path.split(':') {
        let dir = if dir.is_empty() { "." } else { dir };
        if let Ok(c) = executable(&format!("{}/{arg0}", dir.trim_end_matches('/'))) {
            return Ok(c);
        }
    }
    Err((format!("{PREFIX}: exec: \"{arg0}\": executable file not found in $PATH: unknown"), 127))
}

/// As runc's `fixStdioPermissions`: the process's user owns its stdio pipes, so it may reopen
/// them (`/dev/stdout`); /dev/null is never changed.
fn own_stdio(uid: libc::uid_t, gid: libc::gid_t) {
    let null = std::fs::metadata("/dev/null").map(|m| std::os::unix::fs::MetadataExt::rdev(&m)).ok();
    for fd in 0..3 {
        // SAFETY: fstat into a zeroed struct we own; fchown of our own stdio fd.
        unsafe {
            let mut st: libc::stat = std::mem::zeroed();
            if libc::fstat(fd, &mut st) != 0 || (st.st_mode & libc::S_IFMT == libc::S_IFCHR && Some(st.st_rdev) == null) {
                continue;
            }
            // Errors (a read-only or foreign file) are ignored, as runc does.
            libc::fchown(fd, uid, gid);
        }
    }
}

/// Refuses to run the shim's own binary (`/proc/self/exe` before the exec): the process would
/// run the host's file and could find it through /proc.
fn refuse_shim_binary(exe: &CStr, shim: (u64, u64), arg0: &str) -> Result<(), Failure> {
    // SAFETY: open by a C path with O_PATH; fstat into a zeroed struct we own; close.
    let same = unsafe {
        let fd = libc::open(exe.as_ptr(), libc::O_PATH | libc::O_CLOEXEC);
        let mut st: libc::stat = std::mem::zeroed();
        let same = fd >= 0 && libc::fstat(fd, &mut st) == 0 && (st.st_dev, st.st_ino) == shim;
        if fd >= 0 {
            libc::close(fd);
        }
        same
    };
    if same {
        return Err((format!("{PREFIX}: exec: \"{arg0}\": permission denied: unknown"), 126));
    }
    Ok(())
}

fn capset(effective: u64, permitted: u64, inheritable: u64) -> libc::c_long {
    const V3: u32 = 0x2008_0522;
    let header: [u32; 2] = [V3, 0];
    let lo = |m: u64| m as u32;
    let hi = |m: u64| (m >> 32) as u32;
    let data: [u32; 6] = [lo(effective), lo(permitted), lo(inheritable), hi(effective), hi(permitted), hi(inheritable)];
    // SAFETY: capset reads a v3 header and two data structs from our arrays.
    unsafe { libc::syscall(libc::SYS_capset, header.as_ptr(), data.as_ptr()) }
}

/// The child: everything up to the exec. Returns only on failure.
fn child(
    t: &Target,
    init: RawFd,
    plan: &Plan,
    stdio: &Stdio,
    sock: Option<(RawFd, Option<(u16, u16)>)>,
) -> Result<std::convert::Infallible, Failure> {
    reset_signals();
    // Nothing of the shim's stays open in the container's process.
    // SAFETY: marks our own fds close-on-exec.
    let r = unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, libc::CLOSE_RANGE_CLOEXEC) };
    check(r, || "marking the shim's files close-on-exec".into())?;
    // The container's OOM score, not the engine's. Best effort: going below the shim's own
    // floor needs CAP_SYS_RESOURCE, and the init could not have gone there either.
    if let Some(adj) = &t.oom_score_adj {
        // SAFETY: open/write/close of a /proc file by a C path, from our buffer.
        unsafe {
            let fd = libc::open(c"/proc/self/oom_score_adj".as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            if fd >= 0 {
                libc::write(fd, adj.as_ptr().cast(), adj.len());
                libc::close(fd);
            }
        }
    }
    for (fd, path) in &t.cgroup_files {
        // SAFETY: writes one byte from a static buffer to an open cgroup file.
        let n = unsafe { libc::write(fd.as_raw_fd(), b"0".as_ptr().cast(), 1) };
        check(n as _, || format!("joining cgroup {path}"))?;
    }
    if t.ns_flags != 0 {
        // SAFETY: joins the namespaces of the init's pidfd.
        check(unsafe { libc::setns(init, t.ns_flags) } as _, || "joining the container's namespaces".into())?;
    }
    // SAFETY: the child is no group leader, so setsid makes it one of a new session.
    unsafe { libc::setsid() };
    match (stdio, sock) {
        (Stdio::Tty(_), Some((sock, size))) => pty(sock, size, plan.uid)?,
        (Stdio::Fds(fds), _) => {
            for (target, fd) in fds.iter().enumerate() {
                // SAFETY: dup2 of an fd we hold onto stdio.
                check(unsafe { libc::dup2(fd.as_raw_fd(), target as i32) } as _, || "dup2 of stdio".into())?;
            }
        }
        (Stdio::Tty(_), None) => return Err((format!("{PREFIX}: no console socket: unknown"), 126)),
    }
    for (res, lim) in &plan.rlimits {
        // SAFETY: setrlimit reads one rlimit.
        check(unsafe { libc::setrlimit(*res as _, lim) } as _, || format!("setting rlimit {res}"))?;
    }
    // SAFETY: chdir to a C path.
    if unsafe { libc::chdir(plan.cwd.as_ptr()) } != 0 {
        let e = errno();
        let cwd = plan.cwd.to_string_lossy();
        return Err((format!("{PREFIX}: chdir to cwd (\"{cwd}\") set in config.json failed: {}: unknown", errno_text(e)), 126));
    }
    // As runc: a working directory outside the container's root (reached through a leaked
    // directory fd) is refused.
    let mut buf = [0u8; 4096];
    // SAFETY: getcwd writes at most buf.len() bytes into our buffer.
    let inside = !unsafe { libc::getcwd(buf.as_mut_ptr().cast(), buf.len()) }.is_null() && buf[0] == b'/';
    if !inside {
        return Err((format!("{PREFIX}: current working directory is outside of container mount namespace root -- possible container breakout detected: unknown"), 126));
    }
    if plan.uid != 0 {
        own_stdio(plan.uid, plan.gid);
    }
    // SAFETY (this block): prctl/setgroups/setres[ug]id with integer arguments or our buffers.
    unsafe {
        if plan.no_new_privileges {
            check(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) as _, || "no_new_privs".into())?;
        }
    }
    // The container's filter, as runc does for exec: while the process still has CAP_SYS_ADMIN
    // (without no_new_privs that is what loading one needs). What follows is allowed by it.
    if let Some(program) = &plan.seccomp {
        program.load().map_err(|e| (format!("{PREFIX}: loading the seccomp filter: {}: unknown", errno_text(e)), 126))?;
    }
    // SAFETY (this block): prctl/setgroups/setres[ug]id with integer arguments or our buffers.
    unsafe {
        // The bounding set first (that needs CAP_SETPCAP), then the user with the capabilities
        // kept, then the process's own sets.
        for cap in 0..=t.last_cap.min(63) {
            if plan.bounding >> cap & 1 == 0 {
                check(libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) as _, || format!("dropping capability {cap}"))?;
            }
        }
        check(libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) as _, || "keepcaps".into())?;
        check(libc::setgroups(plan.groups.len(), plan.groups.as_ptr()) as _, || "setgroups".into())?;
        check(libc::setresgid(plan.gid, plan.gid, plan.gid) as _, || format!("setgid {}", plan.gid))?;
        check(libc::setresuid(plan.uid, plan.uid, plan.uid) as _, || format!("setuid {}", plan.uid))?;
        check(libc::prctl(libc::PR_SET_KEEPCAPS, 0, 0, 0, 0) as _, || "keepcaps".into())?;
        check(capset(plan.effective & plan.permitted, plan.permitted, plan.inheritable), || "setting capabilities".into())?;
        libc::prctl(libc::PR_CAP_AMBIENT, libc::PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
    }
    let exe = look_path(&plan.arg0, &plan.path)?;
    refuse_shim_binary(&exe, t.shim_exe, &plan.arg0)?;
    let mut argv: Vec<*const libc::c_char> = plan.argv.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    let mut envp: Vec<*const libc::c_char> = plan.envp.iter().map(|e| e.as_ptr()).collect();
    envp.push(std::ptr::null());
    // SAFETY: NULL-terminated arrays of C strings that outlive the call.
    unsafe { libc::execve(exe.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
    let e = errno();
    let exe: &CStr = &exe;
    let code = if e == libc::ENOENT { 127 } else { 126 };
    Err((format!("{PREFIX}: exec {}: {}: unknown", exe.to_string_lossy(), errno_text(e)), code))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn look_path_in_docker_words() {
        assert_eq!(look_path("sh", "/nonexistent:/bin").unwrap().to_str().unwrap(), "/bin/sh");
        let (m, c) = look_path("no-such-cmd", "/bin:/usr/bin").unwrap_err();
        assert_eq!(c, 127);
        assert!(m.ends_with("exec: \"no-such-cmd\": executable file not found in $PATH: unknown"), "{m}");
        let (m, c) = look_path("/nope/x", "/bin").unwrap_err();
        assert_eq!(c, 127);
        assert!(m.ends_with("exec: \"/nope/x\": stat /nope/x: no such file or directory: unknown"), "{m}");
        let (m, c) = look_path("/etc", "").unwrap_err();
        assert_eq!(c, 126);
        assert!(m.ends_with("exec: \"/etc\": permission denied: unknown"), "{m}");
        // A directory or a non-executable file in PATH is skipped.
        assert!(look_path("passwd", "/etc").is_err());
    }

    #[test]
    fn errno_in_go_words() {
        assert_eq!(errno_text(libc::ENOENT), "no such file or directory");
        assert_eq!(errno_text(libc::EACCES), "permission denied");
    }
}
