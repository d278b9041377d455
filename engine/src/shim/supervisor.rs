//! The daemonized shim: creates the container, then owns it until it has exited and is deleted.
//!
//! Threads: this (main) thread holds the libcontainer `Container` (not `Send`) and handles
//! start/delete and the exit sequence; a reaper thread waits for the init; one thread per
//! output fd; an accept thread plus one thread per control connection (`server.rs`).
use super::create::{create, error_chain};
use super::io::{pump_output, Hub, LogFile};
use super::protocol::{self, Ready, Response, ShimConfig, Status};
use super::server;
use crate::runtime::Exit;
use libcontainer::container::Container;
use nix::sys::wait::{waitid, waitpid, Id, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use std::fs::File;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How long the exit sequence waits for the output pipes to reach EOF.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// How long an exited shim stays to answer late `wait`/`state` calls (later ones read exit.json).
const LINGER: Duration = Duration::from_secs(3);

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

pub(super) struct ProcState {
    pub pid: Pid,
    pub status: Status,
    /// The init has been reaped: its pid must not be signalled any more.
    pub reaped: bool,
    /// Set at the end of the exit sequence (output drained, exit.json written).
    pub exit: Option<Exit>,
}

/// Work only the main thread can do.
pub(super) enum Cmd {
    Start(Sender<Response>),
    Delete(Sender<Response>),
    Exited(WaitStatus),
}

/// What every thread shares.
pub(super) struct Shared {
    pub cfg: ShimConfig,
    pub hub: Arc<Hub>,
    pub proc: Mutex<ProcState>,
    pub exited: Condvar,
    /// Write side of the container's stdin (pipe, or a dup of the pty master).
    pub stdin: Mutex<Option<File>>,
    /// The pty master, for resizes.
    pub pty: Option<OwnedFd>,
    pub cmds: Mutex<Sender<Cmd>>,
}

impl Shared {
    pub fn send(&self, cmd: Cmd) {
        let _ = lock(&self.cmds).send(cmd);
    }

    pub fn kill(&self, signal: i32) -> Response {
        let st = lock(&self.proc);
        if st.reaped {
            return Response::not_running(format!("container {} is not running", self.cfg.id));
        }
        // Under the lock: the reaper cannot reap (and free the pid) meanwhile.
        match unsafe { libc::kill(st.pid.as_raw(), signal) } {
            0 => Response::ok(),
            _ => Response::err(format!("cannot kill container {}: {}", self.cfg.id, std::io::Error::last_os_error())),
        }
    }
}

fn send_ready(ready: &mut File, error: Option<String>) {
    let mut line = serde_json::to_vec(&Ready { error }).unwrap_or_else(|_| b"{}".to_vec());
    line.push(b'\n');
    let _ = ready.write_all(&line);
}

/// Runs the daemonized shim. `ready` gets one [`Ready`] line once the container is created.
pub fn run(cfg: ShimConfig, state_dir: PathBuf, ready: OwnedFd) -> i32 {
    let mut ready = File::from(ready);
    if let Err(e) = nix::sys::prctl::set_child_subreaper(true) {
        eprintln!("shim: PR_SET_CHILD_SUBREAPER: {e}");
    }
    // Everything that forks happens here, before any thread exists.
    let (container, stdio) = match create(&cfg, &state_dir) {
        Ok(c) => c,
        Err(e) => {
            send_ready(&mut ready, Some(e));
            return 1;
        }
    };
    let Some(pid) = container.pid() else {
        send_ready(&mut ready, Some("container has no init pid".into()));
        return 1;
    };
    let sock = protocol::socket_path(&state_dir);
    let _ = std::fs::remove_file(&sock);
    let listener = match UnixListener::bind(&sock) {
        Ok(l) => l,
        Err(e) => {
            send_ready(&mut ready, Some(format!("shim socket {}: {e}", sock.display())));
            let mut container = container;
            let _ = container.delete(true);
            return 1;
        }
    };
    let sock_ino = std::fs::metadata(&sock).map(|m| m.ino()).unwrap_or(0);
    let log = Arc::new(LogFile::open(&cfg.log_path).unwrap_or_else(|e| {
        eprintln!("shim: log file {}: {e}", cfg.log_path.display());
        LogFile::discard()
    }));
    let (tx, rx) = mpsc::channel();
    let shared = Arc::new(Shared {
        hub: Arc::new(Hub::new(cfg.tty)),
        proc: Mutex::new(ProcState { pid, status: Status::Created, reaped: false, exit: None }),
        exited: Condvar::new(),
        stdin: Mutex::new(stdio.stdin),
        pty: stdio.pty,
        cmds: Mutex::new(tx),
        cfg,
    });
    let (done_tx, done_rx) = mpsc::channel();
    let mut pumps = 0;
    for (file, stream) in stdio.outputs {
        let (log, hub, done) = (log.clone(), shared.hub.clone(), done_tx.clone());
        let spawned = std::thread::Builder::new().name(format!("out{stream}")).stack_size(128 * 1024).spawn(move || {
            pump_output(file, stream, log, hub);
            let _ = done.send(());
        });
        match spawned {
            Ok(_) => pumps += 1,
            Err(e) => eprintln!("shim: output thread: {e}"),
        }
    }
    drop(done_tx);
    let reaper_shared = shared.clone();
    if let Err(e) = std::thread::Builder::new().name("reaper".into()).stack_size(64 * 1024).spawn(move || reap(&reaper_shared)) {
        send_ready(&mut ready, Some(format!("reaper thread: {e}")));
        let mut container = container;
        let _ = container.delete(true);
        return 1;
    }
    server::spawn_accept(listener, shared.clone());
    send_ready(&mut ready, None);
    drop(ready);
    let mut main = Main { shared, container, state_dir, done_rx, pumps, pending_deletes: vec![] };
    main.serve(rx);
    remove_own_socket(&sock, sock_ino);
    0
}

/// Removes the socket unless a newer shim of the same container has replaced it meanwhile.
fn remove_own_socket(sock: &Path, ino: u64) {
    if std::fs::metadata(sock).is_ok_and(|m| m.ino() == ino) {
        let _ = std::fs::remove_file(sock);
    }
}

/// Waits for the init without stealing the pid while another thread may signal it.
fn reap(shared: &Shared) {
    let init = lock(&shared.proc).pid;
    loop {
        let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT | WaitPidFlag::__WALL;
        match waitid(Id::All, flags) {
            Ok(ws) => {
                let Some(pid) = ws.pid() else { continue };
                let mut st = lock(&shared.proc);
                let status = waitpid(pid, Some(WaitPidFlag::WNOHANG | WaitPidFlag::__WALL));
                if pid == init {
                    st.reaped = true;
                    st.status = Status::Stopped;
                    drop(st);
                    shared.send(Cmd::Exited(status.unwrap_or(ws)));
                    return;
                }
            }
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => {
                eprintln!("shim: waitid: {e}");
                let mut st = lock(&shared.proc);
                st.reaped = true;
                st.status = Status::Stopped;
                drop(st);
                shared.send(Cmd::Exited(WaitStatus::Exited(init, 255)));
                return;
            }
        }
    }
}

fn exit_code(ws: WaitStatus) -> i32 {
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
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("oom_kill ").and_then(|n| n.trim().parse().ok()))
            })
            .unwrap_or(0)
    };
    count(Path::new("/sys/fs/cgroup/memory").join(rel).join("memory.oom_control")) > 0
        || count(Path::new("/sys/fs/cgroup").join(rel).join("memory.events")) > 0
}

struct Main {
    shared: Arc<Shared>,
    container: Container,
    state_dir: PathBuf,
    done_rx: Receiver<()>,
    pumps: usize,
    pending_deletes: Vec<Sender<Response>>,
}

impl Main {
    fn serve(&mut self, rx: Receiver<Cmd>) {
        let mut linger_until: Option<Instant> = None;
        loop {
            let cmd = match linger_until {
                None => match rx.recv() {
                    Ok(c) => c,
                    Err(_) => return,
                },
                Some(t) => match rx.recv_timeout(t.saturating_duration_since(Instant::now())) {
                    Ok(c) => c,
                    Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => return,
                },
            };
            match cmd {
                Cmd::Start(reply) => {
                    let _ = reply.send(self.start());
                }
                Cmd::Exited(ws) => {
                    self.finish(ws);
                    if !self.pending_deletes.is_empty() {
                        for r in self.pending_deletes.drain(..) {
                            let _ = r.send(Response::ok());
                        }
                        return;
                    }
                    linger_until = Some(Instant::now() + LINGER);
                }
                Cmd::Delete(reply) => {
                    if linger_until.is_some() {
                        let _ = reply.send(Response::ok());
                        return;
                    }
                    let _ = self.shared.kill(libc::SIGKILL);
                    self.pending_deletes.push(reply);
                }
            }
        }
    }

    fn start(&mut self) -> Response {
        let status = lock(&self.shared.proc).status;
        if status != Status::Created {
            return Response::not_running(format!("container {} cannot be started: it has already run", self.shared.cfg.id));
        }
        if let Err(e) = self.container.start() {
            return Response::err(error_chain(&e));
        }
        let mut st = lock(&self.shared.proc);
        if st.status == Status::Created {
            st.status = Status::Running;
        }
        Response { pid: Some(st.pid.as_raw() as u32), ..Response::ok() }
    }

    /// Drain output, end attaches, record the exit, answer waiters, delete the container.
    fn finish(&mut self, ws: WaitStatus) {
        let deadline = Instant::now() + DRAIN_TIMEOUT;
        while self.pumps > 0 {
            match self.done_rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(()) => self.pumps -= 1,
                Err(_) => {
                    eprintln!("shim: output not drained after {DRAIN_TIMEOUT:?}");
                    break;
                }
            }
        }
        self.shared.hub.close();
        lock(&self.shared.stdin).take();
        let exit = Exit {
            code: exit_code(ws),
            oom_killed: oom_killed(&self.shared.cfg.cgroup_path),
            finished_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
        };
        if let Err(e) = protocol::write_runtime_json(&protocol::exit_path(&self.state_dir), &exit) {
            eprintln!("shim: writing exit file: {e}");
        }
        lock(&self.shared.proc).exit = Some(exit);
        self.shared.exited.notify_all();
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
