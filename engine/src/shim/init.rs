//! `--init`: a small init as the container's PID 1 (dockerd runs tini as `docker-init`).
//!
//! The shim's binary cannot be exec'd inside the container (it needs the host's libc), so the
//! init is the container's first process itself, at the point where it would exec the
//! command: it forks, the child execs the command (in its own process group, in the
//! foreground of a tty), and PID 1 stays behind as the init. It reaps every process that ends
//! in the container, forwards the signals it gets to the command, and exits with the
//! command's status (128+signal when it was killed), as tini does. It names itself
//! `docker-init` (/proc/1/comm and cmdline), keeps no fd beyond stdio and is not dumpable, so
//! the container's processes can neither read its memory nor open its executable.
use libcontainer::workload::ExecutorError;
use oci_spec::runtime::Spec;

/// True when the spec asks for the init.
pub(super) fn wanted(spec: &Spec) -> bool {
    spec.annotations().as_ref().is_some_and(|a| a.contains_key(crate::runtime::options::INIT_ANNOTATION))
}

fn all_signals() -> libc::sigset_t {
    // SAFETY: sigfillset initialises the set we own.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut set);
        set
    }
}

/// Forks: the child runs `exec` (which replaces it with the command); this process becomes
/// the init and never returns.
pub(super) fn run(spec: &Spec, exec: impl FnOnce() -> Result<(), ExecutorError>) -> Result<(), ExecutorError> {
    let set = all_signals();
    // SAFETY: blocks every signal of this (single-threaded) process; the child's executor
    // resets the mask before its exec.
    unsafe { libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    // SAFETY: the container's init is single-threaded here.
    let child = unsafe { libc::fork() };
    if child < 0 {
        return Err(ExecutorError::Other(format!("docker-init: fork: {}", std::io::Error::last_os_error())));
    }
    if child == 0 {
        // SAFETY: plain syscalls on this process and its stdin.
        unsafe {
            libc::setpgid(0, 0);
            if libc::isatty(0) == 1 {
                libc::signal(libc::SIGTTOU, libc::SIG_IGN);
                libc::tcsetpgrp(0, libc::getpid());
            }
        }
        let err = exec().err().map(|e| e.to_string()).unwrap_or_default();
        eprintln!("docker-init: {err}");
        // SAFETY: ends the child without running the parent's destructors.
        unsafe { libc::_exit(127) };
    }
    become_init(spec);
    // SAFETY: close_range on our own fds (stdio stays).
    unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) };
    let code = supervise(child, &set);
    // SAFETY: the init's end; the kernel kills what is left in the pid namespace.
    unsafe { libc::_exit(code) }
}

/// Name (`docker-init`), command line (`/sbin/docker-init -- <command>`, as far as the
/// original one has room) and no dumping.
fn become_init(spec: &Spec) {
    // SAFETY: prctl with constant arguments and a NUL-terminated name.
    unsafe {
        libc::prctl(libc::PR_SET_NAME, c"docker-init".as_ptr() as libc::c_ulong, 0, 0, 0);
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
    }
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else { return };
    let Some(after) = stat.rsplit_once(')').map(|(_, a)| a) else { return };
    // Fields after the command: the 3rd field of stat is the first here; arg_start is the 48th.
    let fields: Vec<&str> = after.split_whitespace().collect();
    let (Some(start), Some(end)) =
        (fields.get(45).and_then(|s| s.parse::<usize>().ok()), fields.get(46).and_then(|s| s.parse::<usize>().ok()))
    else {
        return;
    };
    if end <= start {
        return;
    }
    let mut line: Vec<u8> = b"/sbin/docker-init\0--\0".to_vec();
    for a in spec.process().as_ref().and_then(|p| p.args().as_ref()).into_iter().flatten() {
        line.extend_from_slice(a.as_bytes());
        line.push(0);
    }
    let room = end - start;
    line.truncate(room - 1);
    line.resize(room, 0);
    // SAFETY: [arg_start, arg_end) is this process's own argument area (on its stack).
    unsafe { std::ptr::copy_nonoverlapping(line.as_ptr(), start as *mut u8, room) };
}

/// Waits for signals: SIGCHLD reaps every ended child, any other goes to the command. Returns
/// the command's exit code once it has ended.
fn supervise(child: libc::pid_t, set: &libc::sigset_t) -> i32 {
    loop {
        // SAFETY: waits for one of the blocked signals; info is ours.
        let sig = unsafe {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            libc::sigwaitinfo(set, &mut info)
        };
        if sig < 0 {
            continue;
        }
        if sig != libc::SIGCHLD {
            // SAFETY: forwards the signal to the command.
            unsafe { libc::kill(child, sig) };
            continue;
        }
        let mut done = None;
        loop {
            let mut status = 0;
            // SAFETY: reaps any ended child without blocking.
            let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
            if pid <= 0 {
                break;
            }
            if pid == child {
                done = Some(if libc::WIFEXITED(status) {
                    libc::WEXITSTATUS(status)
                } else if libc::WIFSIGNALED(status) {
                    128 + libc::WTERMSIG(status)
                } else {
                    1
                });
            }
        }
        if let Some(code) = done {
            return code;
        }
    }
}
