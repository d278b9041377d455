//! The daemonized shim: creates the container, then owns it until it has exited and is deleted.
//!
//! One thread and one poll loop: the listener, the control connections (`server.rs`), the
//! container's output, attached clients, and pidfds of the init and of `docker exec` processes
//! (`exec.rs`). With no other thread, forking (libcontainer's create, and every exec's child)
//! is safe at any time, and no thread stack or malloc arena costs memory.
use super::create::{create, error_chain, CreateFailure};
use super::enter::{EnterError, Target};
use super::exec::Running;
use super::io::{Hub, LogFile, Output};
use super::protocol::{self, Ready, Response, ShimConfig, Status};
use super::server::{self, Conn};
use crate::runtime::Exit;
use libcontainer::container::Container;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long the exit sequence waits for the output pipes to reach EOF.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// How long an exited shim stays to answer late `wait`/`state` calls (later ones read exit.json).
const LINGER: Duration = Duration::from_secs(3);

/// Everything the loop owns.
pub(super) struct Shim {
    pub cfg: ShimConfig,
    pub state_dir: PathBuf,
    container: Container,
    pub init: Pid,
    init_pidfd: Option<OwnedFd>,
    pub status: Status,
    /// The init has been reaped: its pid must not be signalled any more.
    pub reaped: bool,
    /// Set at the end of the exit sequence (output drained, exit.json written).
    pub exit: Option<Exit>,
    outputs: Vec<Output>,
    log: LogFile,
    pub hub: Hub,
    /// Write side of the container's stdin (pipe, or a dup of the pty master).
    pub stdin: Option<File>,
    /// The pty master, for resizes.
    pub pty: Option<OwnedFd>,
    /// Connections still sending their request line.
    conns: Vec<Conn>,
    /// `wait` requests, answered at the end of the exit sequence.
    pub waiters: Vec<UnixStream>,
    /// Running `docker exec` processes.
    pub execs: Vec<Running>,
    /// What an exec joins, resolved at the first one.
    target: Option<Target>,
    /// Exec children that failed to start and could not be reaped at once (stopped or
    /// frozen): left a zombie in the container's pid namespace, one would keep the init from
    /// ever exiting.
    strays: Vec<(Pid, OwnedFd)>,
    /// `delete` requests, answered once the process is gone and the container deleted.
    pub deletes: Vec<UnixStream>,
    /// The init's status and the drain deadline, between its exit and `finish`.
    exiting: Option<(WaitStatus, Instant)>,
    /// After `finish`: when the shim exits.
    pub linger_until: Option<Instant>,
    pub quit: bool,
}

fn send_ready(ready: &mut File, error: Option<CreateFailure>) {
    let (error, code) = error.map_or((None, None), |f| (Some(f.message), f.code));
    let mut line = serde_json::to_vec(&Ready { error, code }).unwrap_or_else(|_| b"{}".to_vec());
    line.push(b'\n');
    let _ = ready.write_all(&line);
}

/// A pidfd of `pid` (readable once it has exited).
pub(super) fn pidfd_open(pid: Pid) -> std::io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd (close-on-exec) or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid.as_raw(), 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the fd is new and ours.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

pub(super) fn set_nonblocking(fd: RawFd) {
    // SAFETY: fcntl with integer arguments on an fd we hold.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags >= 0 {
            libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK);
        }
    }
}

/// Gives the heap's free pages back to the kernel (what a create or an exec needed).
pub(super) fn trim_heap() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only releases free memory.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Runs the daemonized shim. `ready` gets one [`Ready`] line once the container is created. With
/// `gate`, the container's init waits for the engine's word that its rootfs and network are
/// ready (`super::gate`); the daemon's copy is closed once the create is over.
pub fn run(cfg: ShimConfig, state_dir: PathBuf, ready: OwnedFd, gate: Option<super::gate::StdinGate>) -> i32 {
    let mut ready = File::from(ready);
    if let Err(e) = nix::sys::prctl::set_child_subreaper(true) {
        eprintln!("shim: PR_SET_CHILD_SUBREAPER: {e}");
    }
    let created = create(&cfg, &state_dir, gate.as_ref().map(super::gate::StdinGate::waiter));
    drop(gate);
    let (mut container, stdio) = match created {
        Ok(c) => c,
        Err(e) => {
            send_ready(&mut ready, Some(e));
            return 1;
        }
    };
    let fail = |ready: &mut File, container: &mut Container, e: String| {
        send_ready(ready, Some(e.into()));
        let _ = container.delete(true);
        1
    };
    let Some(init) = container.pid() else {
        return fail(&mut ready, &mut container, "container has no init pid".into());
    };
    let init_pidfd = match pidfd_open(init) {
        Ok(p) => p,
        Err(e) => return fail(&mut ready, &mut container, format!("pidfd of the container's init: {e}")),
    };
    let sock = protocol::socket_path(&state_dir);
    let _ = std::fs::remove_file(&sock);
    let listener = match UnixListener::bind(&sock).and_then(|l| l.set_nonblocking(true).map(|_| l)) {
        Ok(l) => l,
        Err(e) => return fail(&mut ready, &mut container, format!("shim socket {}: {e}", sock.display())),
    };
    let sock_ino = std::fs::metadata(&sock).map(|m| m.ino()).unwrap_or(0);
    let log = LogFile::open_with(&cfg.log_path, &cfg.log).unwrap_or_else(|e| {
        eprintln!("shim: log file {}: {e}", cfg.log_path.display());
        LogFile::discard()
    });
    // Every fd the loop reads or writes is non-blocking (the pty's dups share the flag).
    let outputs: Vec<Output> = stdio
        .outputs
        .into_iter()
        .map(|(file, stream)| {
            set_nonblocking(file.as_raw_fd());
            Output::new(file, stream)
        })
        .collect();
    if let Some(s) = &stdio.stdin {
        set_nonblocking(s.as_raw_fd());
    }
    let mut shim = Shim {
        hub: Hub::new(cfg.tty),
        cfg,
        state_dir,
        container,
        init,
        init_pidfd: Some(init_pidfd),
        status: Status::Created,
        reaped: false,
        exit: None,
        outputs,
        log,
        stdin: stdio.stdin,
        pty: stdio.pty,
        conns: vec![],
        waiters: vec![],
        execs: vec![],
        target: None,
        strays: vec![],
        deletes: vec![],
        exiting: None,
        linger_until: None,
        quit: false,
    };
    // Children (exec'd processes until their exec) inherit this: a container process can
    // neither trace them nor open their /proc/PID/exe, the shim's binary.
    // SAFETY: prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    send_ready(&mut ready, None);
    drop(ready);
    trim_heap();
    shim.serve(&listener);
    remove_own_socket(&sock, sock_ino);
    0
}

/// Removes the socket unless a newer shim of the same container has replaced it meanwhile.
fn remove_own_socket(sock: &Path, ino: u64) {
    if std::fs::metadata(sock).is_ok_and(|m| m.ino() == ino) {
        let _ = std::fs::remove_file(sock);
    }
}

pub(super) fn exit_code(ws: WaitStatus) -> i32 {
    match ws {
        WaitStatus::Exited(_, code) => code,
        WaitStatus::Signaled(_, sig, _) => 128 + sig as i32,
        _ => 255,
    }
}

/// Whether the kernel OOM-killed a process of the cgroup (v1 memory controller, or v2).
fn oom_killed(cgroup_path: &str) -> bool {
    let rel = cgroup_path.trim_start_matches('/');
    let count = |file: PathBuf| -> u64 {
        std::fs::read_to_string(file)
            .ok()
            .and_then(|s| s.lines().find_map(|l| l.strip_prefix("oom_kill ").and_then(|n| n.trim().parse().ok())))
            .unwrap_or(0)
    };
    count(Path::new("/sys/fs/cgroup/memory").join(rel).join("memory.oom_control")) > 0
        || count(Path::new("/sys/fs/cgroup").join(rel).join("memory.events")) > 0
}

/// What a pollfd stands for.
#[derive(Clone, Copy)]
enum Tag {
    Listener,
    Child,
    Output(usize),
    Attach(usize),
    Stdin,
    Conn(usize),
}

fn pollfd(fd: RawFd, events: i16) -> libc::pollfd {
    libc::pollfd { fd, events, revents: 0 }
}

impl Shim {
    fn serve(&mut self, listener: &UnixListener) {
        let mut buf = vec![0u8; 32 * 1024];
        let mut fds: Vec<libc::pollfd> = Vec::with_capacity(16);
        let mut tags: Vec<Tag> = Vec::with_capacity(16);
        while !self.quit {
            let now = Instant::now();
            if let Some((ws, deadline)) = self.exiting {
                if self.outputs.iter().all(|o| o.eof) || now >= deadline {
                    self.exiting = None;
                    self.finish(ws);
                    if !self.deletes.is_empty() {
                        for d in self.deletes.drain(..) {
                            server::reply(&d, &Response::ok());
                        }
                        return;
                    }
                    self.linger_until = Some(now + LINGER);
                }
            }
            if self.linger_until.is_some_and(|t| now >= t) {
                return;
            }
            self.hub.sweep(now);
            fds.clear();
            tags.clear();
            let mut add = |fd: RawFd, events: i16, tag: Tag| {
                fds.push(pollfd(fd, events));
                tags.push(tag);
            };
            add(listener.as_raw_fd(), libc::POLLIN, Tag::Listener);
            if let Some(p) = &self.init_pidfd {
                add(p.as_raw_fd(), libc::POLLIN, Tag::Child);
            }
            for fd in self.execs.iter().map(|e| &e.pidfd).chain(self.strays.iter().map(|(_, fd)| fd)) {
                add(fd.as_raw_fd(), libc::POLLIN, Tag::Child);
            }
            if !self.hub.backlogged() {
                for (i, o) in self.outputs.iter().enumerate().filter(|(_, o)| !o.eof) {
                    add(o.file.as_raw_fd(), libc::POLLIN, Tag::Output(i));
                }
            }
            for (i, a) in self.hub.clients.iter().enumerate() {
                let mut ev = 0;
                if a.reading && a.input.is_empty() {
                    ev |= libc::POLLIN;
                }
                if a.wants_write() {
                    ev |= libc::POLLOUT;
                }
                add(a.conn.as_raw_fd(), ev, Tag::Attach(i));
            }
            if let Some(s) = &self.stdin {
                if self.hub.clients.iter().any(|a| !a.input.is_empty()) {
                    add(s.as_raw_fd(), libc::POLLOUT, Tag::Stdin);
                }
            }
            for (i, c) in self.conns.iter().enumerate() {
                add(c.stream.as_raw_fd(), libc::POLLIN, Tag::Conn(i));
            }
            let deadline = [self.exiting.map(|(_, d)| d), self.linger_until, self.hub.next_deadline()].into_iter().flatten().min();
            let timeout = match deadline {
                None => -1,
                Some(d) => d.saturating_duration_since(now).as_millis().min(60_000) as i32 + 1,
            };
            // SAFETY: fds is a valid array of fds.len() pollfds.
            let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
            if n < 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() != std::io::ErrorKind::Interrupted {
                    eprintln!("shim: poll: {e}");
                    std::thread::sleep(Duration::from_millis(100));
                }
                continue;
            }
            let mut reap = false;
            let mut accept = false;
            let mut ready_conns = vec![];
            for (p, tag) in fds.iter().zip(tags.iter()) {
                let rev = p.revents;
                if rev == 0 {
                    continue;
                }
                match *tag {
                    Tag::Listener => accept = true,
                    Tag::Child => reap = true,
                    Tag::Output(i) => self.outputs[i].pump(&mut buf, &mut self.log, &mut self.hub),
                    Tag::Attach(i) => server::on_attach(self, i, rev, &mut buf),
                    Tag::Stdin => server::feed_stdin(self),
                    Tag::Conn(i) => ready_conns.push(i),
                }
            }
            if reap {
                self.reap();
            }
            // Highest index first, so the lower ones stay valid.
            for i in ready_conns.into_iter().rev() {
                let c = self.conns.swap_remove(i);
                if let Some(c) = server::on_readable(self, c) {
                    self.conns.push(c);
                }
            }
            if accept {
                self.accept(listener);
            }
        }
    }

    fn accept(&mut self, listener: &UnixListener) {
        loop {
            match listener.accept() {
                Ok((s, _)) => match Conn::new(s) {
                    Ok(c) => self.conns.push(c),
                    Err(e) => eprintln!("shim: connection: {e}"),
                },
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    eprintln!("shim: accept: {e}");
                    return;
                }
            }
        }
    }

    /// Reaps every exited child: the init starts the exit sequence, an exec reports its exit.
    pub fn reap(&mut self) {
        loop {
            match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG | WaitPidFlag::__WALL)) {
                Ok(WaitStatus::StillAlive) => return,
                Ok(ws) => {
                    let Some(pid) = ws.pid() else { return };
                    if pid == self.init {
                        self.reaped = true;
                        self.status = Status::Stopped;
                        self.init_pidfd = None;
                        self.exiting = Some((ws, Instant::now() + DRAIN_TIMEOUT));
                    } else if let Some(i) = self.execs.iter().position(|e| e.pid == pid) {
                        self.execs.swap_remove(i).report(exit_code(ws));
                    } else {
                        self.strays.retain(|(p, _)| *p != pid);
                    }
                }
                Err(nix::errno::Errno::EINTR) => continue,
                Err(nix::errno::Errno::ECHILD) => return,
                Err(e) => {
                    eprintln!("shim: waitpid: {e}");
                    return;
                }
            }
        }
    }

    /// The init has exited, reaped or not.
    pub fn init_exited(&self) -> bool {
        let Some(fd) = &self.init_pidfd else { return true };
        let mut p = libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: polls one pollfd we own, without waiting.
        unsafe { libc::poll(&mut p, 1, 0) == 1 }
    }

    /// Watches a child the loop must reap later.
    pub fn adopt_stray(&mut self, pid: Pid) {
        match pidfd_open(pid) {
            Ok(fd) => self.strays.push((pid, fd)),
            Err(e) => eprintln!("shim: pidfd of exec child {pid}: {e}"),
        }
    }

    /// What an exec joins (resolved at the first one), and the init's pidfd.
    pub fn exec_target(&mut self) -> Result<(&Target, BorrowedFd<'_>), EnterError> {
        if self.init_pidfd.is_none() {
            return Err(EnterError::NotRunning(self.cfg.id.clone()));
        }
        if self.target.is_none() {
            self.target = Some(Target::resolve(self.init.as_raw())?);
        }
        match (&self.target, &self.init_pidfd) {
            (Some(t), Some(p)) => Ok((t, p.as_fd())),
            _ => Err(EnterError::NotRunning(self.cfg.id.clone())),
        }
    }

    pub fn kill(&self, signal: i32) -> Response {
        if self.reaped {
            return Response::not_running(format!("container {} is not running", self.cfg.id));
        }
        // SAFETY: kill with a pid we have not reaped (it cannot have been reused).
        match unsafe { libc::kill(self.init.as_raw(), signal) } {
            0 => Response::ok(),
            _ => Response::err(format!("cannot kill container {}: {}", self.cfg.id, std::io::Error::last_os_error())),
        }
    }

    pub fn start(&mut self) -> Response {
        if self.status != Status::Created {
            return Response::not_running(format!("container {} cannot be started: it has already run", self.cfg.id));
        }
        if let Err(e) = self.container.start() {
            return Response::err(error_chain(&e));
        }
        if self.status == Status::Created {
            self.status = Status::Running;
        }
        trim_heap();
        Response { pid: Some(self.init.as_raw() as u32), ..Response::ok() }
    }

    /// End attaches, record the exit, answer waiters, delete the container.
    fn finish(&mut self, ws: WaitStatus) {
        self.hub.close();
        self.stdin = None;
        self.outputs.clear();
        let exit = Exit {
            code: exit_code(ws),
            oom_killed: oom_killed(&self.cfg.cgroup_path),
            finished_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
        };
        if let Err(e) = protocol::write_runtime_json(&protocol::exit_path(&self.state_dir), &exit) {
            eprintln!("shim: writing exit file: {e}");
        }
        let r = Response { exit: Some(exit.clone()), ..Response::ok() };
        for w in self.waiters.drain(..) {
            server::reply(&w, &r);
        }
        self.exit = Some(exit);
        if let Err(e) = self.container.delete(true) {
            eprintln!("shim: deleting container: {}", error_chain(&e));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_like_docker() {
        let p = Pid::from_raw(1);
        assert_eq!(exit_code(WaitStatus::Exited(p, 3)), 3);
        assert_eq!(exit_code(WaitStatus::Signaled(p, nix::sys::signal::Signal::SIGTERM, false)), 143);
        assert_eq!(exit_code(WaitStatus::Signaled(p, nix::sys::signal::Signal::SIGKILL, true)), 137);
    }

    #[test]
    fn oom_of_missing_cgroup_is_false() {
        assert!(!oom_killed("/flotilla-test-does-not-exist/x"));
    }
}
