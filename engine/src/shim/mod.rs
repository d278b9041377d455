//! `swarm shim`: the per-container supervisor process (no tokio).
//!
//! `swarm shim <state_dir>` reads `<state_dir>/shim.json` ([`protocol::ShimConfig`]), forks a
//! daemon (own session, stdio on /dev/null, its stderr appended to `<state_dir>/shim.log`) and
//! waits for it to report: exit 0 once the container is created and `shim.sock` listens, or
//! exit 1 with libcontainer's error on stderr. The daemon is a child subreaper, the parent of the
//! container's init, and lives until the process has exited and the container is deleted, so
//! the engine may die and come back meanwhile. It also runs `docker exec` processes ([`exec`]).
mod create;
mod enter;
mod exec;
mod gate;
mod init;
pub mod io;
mod plan;
pub mod protocol;
mod server;
mod spawn;
mod supervisor;
pub mod zygote;

use protocol::{Ready, ShimConfig};
use std::fs::File;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::path::PathBuf;

extern "C" fn ignore_signal(_: libc::c_int) {}

/// Rust starts every binary with SIGPIPE ignored, and an ignored signal stays ignored across
/// exec: the container's processes would inherit it (`yes | head` would never end by SIGPIPE).
/// A no-op handler keeps the shim alive on a closed client (writes fail with EPIPE) and is
/// reset to the default action by exec.
fn reset_sigpipe() {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
    let action = SigAction::new(SigHandler::Handler(ignore_signal), SaFlags::SA_RESTART, SigSet::empty());
    // SAFETY: the handler does nothing, which is async-signal-safe.
    if let Err(e) = unsafe { sigaction(Signal::SIGPIPE, &action) } {
        eprintln!("shim: SIGPIPE handler: {e}");
    }
}

/// `swarm shim --pooled <exec_root>`: started ahead of time by the engine
/// (`runtime::shim_pool`), it forks its daemon at once, and the daemon waits for one line on
/// stdin, the state dir of the container to create, then runs as the daemon of
/// `swarm shim <state_dir>` does (same exit code and stderr for the spawner). The daemon
/// reads EOF first (the engine went away, or dropped the spare): both exit 0 having done
/// nothing. The exec root is in its arguments only so that whoever looks for an engine's
/// processes by their command line finds it and its daemon.
pub const POOLED_FLAG: &str = "--pooled";

/// `swarm shim --zygote <exec_root>`: forks spares for the engine instead of it exec'ing one
/// each time (see [`zygote`]).
pub const ZYGOTE_FLAG: &str = "--zygote";

/// Where the daemon learns its state dir.
enum StateDir {
    /// `swarm shim <state_dir>`.
    Given(PathBuf),
    /// `swarm shim --pooled`: a line on stdin, once the container is to be created.
    Stdin,
}

/// Entry point of `swarm shim <args>`; returns the process exit code.
///
/// The spawner (this process) forks the daemon first thing, also as a spare, so that a
/// container's create does not wait for the fork; it then relays the daemon's report (see
/// [`relay`]) and exits.
pub fn main(args: Vec<String>) -> i32 {
    reset_sigpipe();
    take_cgroup_mount_points();
    take_wait_nice();
    let source = match args.first().map(String::as_str) {
        Some(ZYGOTE_FLAG) => return zygote::serve(),
        Some(POOLED_FLAG) => StateDir::Stdin,
        Some(dir) => StateDir::Given(PathBuf::from(dir)),
        None => {
            eprintln!("usage: swarm shim <state-dir>");
            return 2;
        }
    };
    spawner(source, false)
}

/// A spare spawner forked by the zygote, its fds 0-2 in place: as `swarm shim --pooled`, and it
/// says how it ended on its stdout when it relays no report ([`zygote::exit_line`]).
fn forked_spare() -> i32 {
    spawner(StateDir::Stdin, true)
}

/// The spawner: forks the daemon, then relays its report. With `forked` (by the zygote), an exit
/// with no report relayed is told on stdout too.
fn spawner(source: StateDir, forked: bool) -> i32 {
    let (ready_r, ready_w) = match nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("shim: pipe: {e}");
            return 1;
        }
    };
    // SAFETY: the shim process has a single thread at this point.
    match unsafe { nix::unistd::fork() } {
        Err(e) => {
            eprintln!("shim: fork: {e}");
            1
        }
        Ok(nix::unistd::ForkResult::Parent { child }) => {
            drop(ready_w);
            let relayed = relay(File::from(ready_r), child, matches!(source, StateDir::Stdin));
            if forked && !relayed.reported {
                let _ = std::io::Write::write_all(&mut std::io::stdout().lock(), zygote::exit_line(relayed.code).as_bytes());
            }
            relayed.code
        }
        Ok(nix::unistd::ForkResult::Child) => {
            drop(ready_r);
            if let Err(e) = nix::unistd::setsid() {
                eprintln!("shim: setsid: {e}");
            }
            daemon(source, ready_w)
        }
    }
}

/// The daemon: learns its state dir, reads its config, detaches from the spawner's stdio and
/// supervises the container. What fails before the detach goes to the spawner's stderr.
fn daemon(source: StateDir, ready: std::os::fd::OwnedFd) -> i32 {
    let (state_dir, handed) = match source {
        StateDir::Given(dir) => (dir, None),
        StateDir::Stdin => match read_handed_at_engine_priority() {
            Ok(Some(h)) if !h.state_dir.as_os_str().is_empty() => {
                take_spawner_priority();
                (h.state_dir.clone(), Some(h))
            }
            Ok(_) => return 0,
            Err(e) => {
                eprintln!("shim: reading the state dir: {e}");
                return 2;
            }
        },
    };
    let state_dir = std::path::absolute(&state_dir).unwrap_or(state_dir);
    let cfg: ShimConfig = match crate::fsutil::read_json(&state_dir.join(protocol::CONFIG_FILE)) {
        Ok(Some(c)) => c,
        Ok(None) => {
            eprintln!("shim: {} not found", state_dir.join(protocol::CONFIG_FILE).display());
            return 2;
        }
        Err(e) => {
            eprintln!("shim: {e}");
            return 2;
        }
    };
    // The gate is the spawner's stdin: kept under another fd before stdin goes to /dev/null.
    let gate = match (cfg.gate, &handed) {
        (false, _) => None,
        (true, Some(h)) => match gate::StdinGate::from_stdin(h) {
            Ok(g) => Some(g),
            Err(e) => {
                eprintln!("shim: keeping the gate: {e}");
                return 2;
            }
        },
        (true, None) => {
            eprintln!("shim: the config asks for a gate, which only `swarm shim {POOLED_FLAG}` has");
            return 2;
        }
    };
    detach_stdio(&state_dir);
    // Hold no directory of the engine's busy (the config's paths are absolute).
    let _ = std::env::set_current_dir("/");
    supervisor::run(cfg, state_dir, ready, gate)
}

/// The engine's cgroup v1 mount points, one per line, in the environment of the shims it starts
/// (`runtime::shim_pool`). Unset where the engine could not read them.
pub const CGROUP_V1_MOUNTS_ENV: &str = "FLOTILLA_SHIM_CGROUP_V1_MOUNTS";

/// The engine's cgroup v1 mount points become this process's (libcgroups keeps them per
/// process, vendor/README.md), and are taken out of the environment. libcontainer's
/// intermediate and init processes, copies of the daemon, then find them instead of reading
/// and parsing mountinfo, whose size grows with every container's overlay (~1.6 and ~1 ms of
/// each start with 100 containers running). Without them here, the first use reads mountinfo.
fn take_cgroup_mount_points() {
    let Some(v) = std::env::var_os(CGROUP_V1_MOUNTS_ENV) else { return };
    // SAFETY: called first thing, while the shim has a single thread.
    unsafe { std::env::remove_var(CGROUP_V1_MOUNTS_ENV) };
    libcgroups::v1::util::set_subsystem_mount_points(decode_mount_points(&v));
}

/// Mount points one per line, for [`CGROUP_V1_MOUNTS_ENV`]; none when a path has a newline.
pub fn encode_mount_points(points: &[PathBuf]) -> Option<std::ffi::OsString> {
    let mut out = Vec::new();
    for p in points {
        let b = p.as_os_str().as_encoded_bytes();
        if b.contains(&b'\n') {
            return None;
        }
        out.extend_from_slice(b);
        out.push(b'\n');
    }
    Some(std::os::unix::ffi::OsStringExt::from_vec(out))
}

fn decode_mount_points(v: &std::ffi::OsStr) -> Vec<PathBuf> {
    use std::os::unix::ffi::OsStrExt;
    v.as_bytes().split(|b| *b == b'\n').filter(|l| !l.is_empty()).map(|l| PathBuf::from(std::ffi::OsStr::from_bytes(l))).collect()
}

/// The niceness a spare's daemon waits for its container at, in the environment of the shims the
/// engine starts (`runtime::shim_pool`): the engine's own. A spare starts at the lowest priority,
/// so that its start-up takes CPU nothing else wants, but once it only waits, its priority costs
/// nothing until its container comes, and then it must not queue behind everything else on a
/// busy host (a daemon woken at nice 19 read its line up to ~2 ms late while the client and the
/// engine ran).
pub const WAIT_NICE_ENV: &str = "FLOTILLA_SHIM_WAIT_NICE";

static WAIT_NICE: std::sync::OnceLock<i32> = std::sync::OnceLock::new();

/// Takes [`WAIT_NICE_ENV`] out of the environment (the zygote's spares keep the value).
fn take_wait_nice() {
    let Some(v) = std::env::var_os(WAIT_NICE_ENV) else { return };
    // SAFETY: called first thing, while the shim has a single thread.
    unsafe { std::env::remove_var(WAIT_NICE_ENV) };
    if let Some(n) = v.to_str().and_then(|s| s.parse().ok()) {
        let _ = WAIT_NICE.set(n);
    }
}

/// A spare's daemon takes [`WAIT_NICE_ENV`]'s priority, then waits for its state dir on stdin.
fn read_handed_at_engine_priority() -> std::io::Result<Option<gate::Handed>> {
    if let Some(n) = WAIT_NICE.get() {
        // SAFETY: setpriority with integer arguments, on this process.
        if unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, *n) } != 0 {
            eprintln!("shim: setting the waiting priority: {}", std::io::Error::last_os_error());
        }
    }
    gate::read_handed(0)
}

/// A spare waits at the lowest priority and the engine gives its spawner (this daemon's parent)
/// the engine's priority back before it hands the spare a container: the daemon, forked
/// earlier, takes the same, before it creates anything.
fn take_spawner_priority() {
    let spawner = nix::unistd::getppid().as_raw() as libc::id_t;
    // getpriority may return -1 as a niceness: errno tells.
    // SAFETY: errno is thread-local; getpriority and setpriority take integers.
    unsafe {
        *libc::__errno_location() = 0;
        let nice = libc::getpriority(libc::PRIO_PROCESS, spawner);
        if nice == -1 && *libc::__errno_location() != 0 {
            eprintln!("shim: the spawner's priority: {}", std::io::Error::last_os_error());
            return;
        }
        if libc::setpriority(libc::PRIO_PROCESS, 0, nice) != 0 {
            eprintln!("shim: setting the priority: {}", std::io::Error::last_os_error());
        }
    }
}

/// Blocks until `r` is readable or the daemon has exited (then it will never write).
fn wait_readable_or_exit(r: &File, daemon: nix::unistd::Pid) {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, daemon.as_raw(), 0) } as libc::c_int;
    if pidfd < 0 {
        // Old kernel: wait for the pipe alone (readable at EOF too).
        let mut p = libc::pollfd { fd: r.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd.
        while unsafe { libc::poll(&mut p, 1, -1) } < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {}
        return;
    }
    let mut fds = [
        libc::pollfd { fd: r.as_raw_fd(), events: libc::POLLIN, revents: 0 },
        libc::pollfd { fd: pidfd, events: libc::POLLIN, revents: 0 },
    ];
    // SAFETY: fds is a valid array of two pollfds.
    while unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) } < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {}
    // SAFETY: pidfd is ours and closed once.
    unsafe { libc::close(pidfd) };
}

/// The spawner's exit status for a container whose command cannot run (dockerd's exit codes).
pub const COMMAND_NOT_EXECUTABLE: i32 = 126;
pub const COMMAND_NOT_FOUND: i32 = 127;

/// How [`relay`] ended: the spawner's exit code, and whether a report was passed on.
struct Relayed {
    code: i32,
    reported: bool,
}

/// The spawner's side: one line from the daemon, passed on to the engine on stdout (the
/// engine reads it there and need not wait for this process to exit), and the exit status
/// that says the same (126 and 127 for a command that cannot run, 1 for any other failure).
/// The container's init keeps a copy of the pipe until it execs, so EOF never comes while it
/// waits for `start`: if the daemon dies before it reports, notice that through its pidfd
/// instead, and exit as it did (0: a spare the engine dropped; 2: its error is on stderr).
fn relay(r: File, daemon: nix::unistd::Pid, pooled: bool) -> Relayed {
    match relay_line(r, daemon, pooled) {
        Ok(code) => Relayed { code, reported: true },
        Err(code) => Relayed { code, reported: false },
    }
}

/// [`relay`]: Ok with the exit code once the report is passed on, Err with it when there was none.
fn relay_line(mut r: File, daemon: nix::unistd::Pid, pooled: bool) -> Result<i32, i32> {
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    loop {
        if line.is_empty() {
            wait_readable_or_exit(&r, daemon);
            let mut probe = libc::pollfd { fd: r.as_raw_fd(), events: libc::POLLIN, revents: 0 };
            // SAFETY: one valid pollfd, zero timeout.
            if unsafe { libc::poll(&mut probe, 1, 0) } == 0 {
                return Err(daemon_gone(daemon, false, pooled));
            }
        }
        match r.read(&mut b) {
            // Every copy closed without a word: the daemon is exiting.
            Ok(0) if line.is_empty() => return Err(daemon_gone(daemon, true, pooled)),
            Ok(0) => break,
            Ok(_) if b[0] == b'\n' => break,
            Ok(_) => line.push(b[0]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                eprintln!("shim: {e}");
                return Err(1);
            }
        }
    }
    let ready = match serde_json::from_slice::<Ready>(&line) {
        Ok(r) => r,
        Err(_) => {
            eprintln!("shim exited before the container was created");
            return Err(1);
        }
    };
    line.push(b'\n');
    let _ = std::io::Write::write_all(&mut std::io::stdout().lock(), &line);
    Ok(match ready {
        Ready { error: None, .. } => 0,
        Ready { error: Some(e), code } => {
            eprintln!("{e}");
            exit_code(code)
        }
    })
}

/// The spawner's exit status for a daemon's report of `code` (the engine reads the same).
pub fn exit_code(code: Option<i32>) -> i32 {
    code.filter(|c| matches!(*c, COMMAND_NOT_EXECUTABLE | COMMAND_NOT_FOUND)).unwrap_or(1)
}

/// The daemon ended without a report: its own exit code when it exited (0 for a spare that
/// was dropped, 2 with its error on stderr), else 1; [`SPARE_LOST`] when a spare's daemon ended
/// before it read the line it was handed (something killed it while it waited: the engine tries
/// again with a new spawner). A spare's spawner reads its stdin to its end to know: until the
/// engine hands it a container (or drops it) it stays, so a start that takes it meanwhile always
/// gets that answer. With `block`, the daemon is known to be exiting.
fn daemon_gone(daemon: nix::unistd::Pid, block: bool, pooled: bool) -> i32 {
    use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
    let status = waitpid(daemon, (!block).then_some(WaitPidFlag::WNOHANG));
    if pooled && handed_a_line() {
        eprintln!("shim: the spare's daemon ended before it took the container ({status:?})");
        return SPARE_LOST;
    }
    match status {
        Ok(WaitStatus::Exited(_, code)) => code,
        status => {
            eprintln!("shim exited before the container was created: {status:?}");
            1
        }
    }
}

/// The spawner's exit status when its spare daemon was gone before it read its state dir.
pub const SPARE_LOST: i32 = 3;

/// Reads stdin to its end: whether a line (the state dir line nobody read) came. A byte of the
/// gate alone (`gate`) is not one: the daemon read its line, and the gate came after.
fn handed_a_line() -> bool {
    let mut buf = [0u8; 512];
    let mut line = false;
    loop {
        match std::io::stdin().lock().read(&mut buf) {
            Ok(0) => return line,
            Ok(n) => line |= buf[..n].contains(&b'\n'),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return line,
        }
    }
}

/// stdin/stdout on /dev/null, stderr to `<state_dir>/shim.log`, so the spawner's pipes close.
fn detach_stdio(state_dir: &std::path::Path) {
    let null = std::fs::OpenOptions::new().read(true).write(true).open("/dev/null");
    let log = std::fs::OpenOptions::new().create(true).append(true).open(state_dir.join("shim.log"));
    if let Ok(null) = &null {
        let _ = nix::unistd::dup2(null.as_raw_fd(), 0);
        let _ = nix::unistd::dup2(null.as_raw_fd(), 1);
        let err = log.as_ref().map(|f| f.as_raw_fd()).unwrap_or(null.as_raw_fd());
        let _ = nix::unistd::dup2(err, 2);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_points_pass_through_the_environment_whole() {
        let points: Vec<PathBuf> = ["/sys/fs/cgroup/cpu,cpuacct", "/sys/fs/cgroup/a b", "/x/systemd"].iter().map(PathBuf::from).collect();
        let v = encode_mount_points(&points).unwrap();
        assert_eq!(decode_mount_points(&v), points);
        assert_eq!(decode_mount_points(&encode_mount_points(&[]).unwrap()), Vec::<PathBuf>::new());
        assert_eq!(encode_mount_points(&[PathBuf::from("/a\nb")]), None);
    }
}
