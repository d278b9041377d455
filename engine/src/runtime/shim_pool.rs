//! One `swarm shim` spawner started ahead of time, so that a container's start does not wait
//! for the exec of the engine's (large) binary, its dynamic loading and relocations, nor for
//! the fork of its daemon: the pooled process (`swarm shim --pooled <exec_root>`, see
//! [`crate::shim::POOLED_FLAG`]) forks its daemon at once, which blocks reading one line, the
//! container's state dir, from the spawner's stdin, and then runs exactly as the daemon of
//! `swarm shim <state_dir>` does (same exit code, same stderr). The spawner passes the daemon's
//! report on on its stdout, so the engine goes on without waiting for it to exit. A taken
//! spawner is replaced [`SPARE_AFTER`] once the one taken has created its container, and the
//! spare starts at the lowest priority (nice 19): its start-up (the exec of the engine's binary,
//! loading, relocations) should take CPU nothing else wants. Even at nice 19 it slowed the start
//! it overlapped when it began at once (a host of 2 cores runs the client, the engine, the shim
//! and libcontainer's processes at that moment: bench/engine.md, stop 30). It gets the engine's
//! priority back when it is taken, and its daemon takes the same before it creates anything of
//! the container.
//!
//! The spares are forked by the shim zygote (`super::zygote`, `swarm shim --zygote`, started once
//! at the spares' priority) rather than exec'd: a fork of that small process costs ~0.1 ms of
//! CPU where an exec of the engine's binary costs ~1.8 ms, mostly its dynamic loading and the
//! `cpuid` traps of glibc's start-up, which a VM pays in exits (bench/engine.md, stop 32), and
//! in back-to-back `docker run`s the spare of one falls on the start of the next. Where the
//! zygote cannot be started or answer, a spare is exec'd as before.
//!
//! What it leaves on the host: the zygote, at most one idle spawner (the zygote's child, or the
//! engine's) and its daemon. All exit by themselves when the engine's ends close (the engine went
//! away, even by SIGKILL, or dropped the spare: the spawner is killed when it is dropped).
use super::gate::Gate;
use super::zygote::{Forked, Zygote};
use crate::shim::protocol::{Ready, GATE_OPEN, GATE_SHUT_BYTE};
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Output, Stdio};
use std::sync::{Mutex, MutexGuard};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};

/// The longest report line read from a spawner (an error message; more is not a report).
const MAX_REPORT: u64 = 1 << 20;

/// How a create through a spawner ended.
#[derive(Debug)]
pub enum Outcome {
    /// The daemon's report, passed on by the spawner (which exits by itself).
    Reported(Ready),
    /// No report came: the spawner's exit status and output.
    Exited(Output),
}

/// How long after a container's create the next spare is started. Its start-up (the zygote's
/// fork and the spawner's of its daemon, ~0.1-0.2 ms of CPU; an exec'd one's exec, loading and
/// relocations, ~2 ms) would otherwise share the two cores with
/// the create, the start and the first instants of the container it replaces, all on the path of
/// a `docker run`. Since a new container's start is made ahead of its start request
/// (`container::ahead`), the create comes ~5 ms before the start, and a `run --rm busybox true`
/// is done, exit and removal included, ~20 ms after it: 25 ms later the spare's start-up falls
/// in the time the next docker CLI takes to start up (bench/engine.md, stop 31; a fixed delay:
/// on a loaded host the two can still overlap).
pub(super) const SPARE_AFTER: std::time::Duration = std::time::Duration::from_millis(25);

/// The niceness a spare waits at.
const SPARE_NICE: i32 = 19;

/// Sets the niceness of process `pid`.
pub(super) fn set_nice(pid: u32, nice: i32) -> io::Result<()> {
    // SAFETY: setpriority with integer arguments.
    if unsafe { libc::setpriority(libc::PRIO_PROCESS, pid, nice) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The engine's own niceness (what a taken spare gets back).
fn own_nice() -> io::Result<i32> {
    // getpriority may return -1 as a niceness: errno tells.
    // SAFETY: errno is thread-local; getpriority takes integers.
    let nice = unsafe {
        *libc::__errno_location() = 0;
        libc::getpriority(libc::PRIO_PROCESS, 0)
    };
    match io::Error::last_os_error() {
        e if nice == -1 && e.raw_os_error().is_some_and(|n| n != 0) => Err(e),
        _ => Ok(nice),
    }
}

/// The cgroup v1 mount points, read once by the engine (libcgroups keeps them per process), as
/// the shims take them; none when they cannot be read.
fn cgroup_v1_mounts() -> Option<std::ffi::OsString> {
    crate::shim::encode_mount_points(&libcgroups::v1::util::list_subsystem_mount_points().ok()?)
}

/// A spawner: exec'd by the engine, or forked by the zygote.
enum Spawner {
    Exec(Child),
    Forked(Forked),
}

impl Spawner {
    fn pid(&self) -> Option<u32> {
        match self {
            Spawner::Exec(c) => c.id(),
            Spawner::Forked(f) => f.alive().then_some(f.pid),
        }
    }

    fn alive(&mut self) -> bool {
        match self {
            Spawner::Exec(c) => matches!(c.try_wait(), Ok(None)),
            Spawner::Forked(f) => f.alive(),
        }
    }
}

pub struct ShimPool {
    binary: PathBuf,
    exec_root: PathBuf,
    ready: Mutex<Option<Spawner>>,
    /// The zygote spares are forked by, once started (none until the first spare, or after it
    /// failed).
    zygote: Mutex<Option<Zygote>>,
    /// A fill is under way: the fills that parallel creates schedule make one spare, not one each.
    filling: std::sync::atomic::AtomicBool,
    /// The engine's cgroup v1 mount points, handed to every shim (see
    /// [`crate::shim::CGROUP_V1_MOUNTS_ENV`]); none where they could not be read.
    cgroup_v1_mounts: Option<std::ffi::OsString>,
}

impl ShimPool {
    pub fn new(binary: PathBuf, exec_root: PathBuf) -> Self {
        ShimPool {
            binary,
            exec_root,
            ready: Mutex::new(None),
            zygote: Mutex::new(None),
            filling: Default::default(),
            cgroup_v1_mounts: cgroup_v1_mounts(),
        }
    }

    fn ready(&self) -> MutexGuard<'_, Option<Spawner>> {
        self.ready.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn spawn(&self) -> io::Result<Child> {
        self.command().spawn()
    }

    /// A spare at [`SPARE_NICE`]: forked by the zygote, or else [`Self::spawn`]ed. One whose
    /// niceness cannot be set is not kept.
    fn spawn_spare(&self) -> io::Result<Spawner> {
        match self.fork_spare() {
            Ok(forked) => return Ok(Spawner::Forked(forked)),
            Err(e) => tracing::debug!(error = %e, "the shim zygote could not fork a spare; exec'ing one"),
        }
        let child = self.spawn()?;
        let pid = child.id().ok_or_else(|| io::Error::other("spare shim exited at once"))?;
        set_nice(pid, SPARE_NICE)?;
        Ok(Spawner::Exec(child))
    }

    /// A spare forked by the zygote, which is started first when it does not run. A zygote that
    /// fails a request is dropped (the next spare starts a new one).
    fn fork_spare(&self) -> io::Result<Forked> {
        let mut zygote = self.zygote.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if !zygote.as_mut().is_some_and(Zygote::alive) {
            let mut cmd = std::process::Command::new(&self.binary);
            cmd.arg("shim").arg(crate::shim::ZYGOTE_FLAG).arg(&self.exec_root);
            self.shim_env(&mut cmd);
            *zygote = Some(Zygote::start(cmd, SPARE_NICE)?);
        }
        let forked = zygote.as_ref().map(Zygote::fork).unwrap_or_else(|| Err(io::Error::other("no shim zygote")));
        if forked.is_err() {
            *zygote = None;
        }
        forked
    }

    /// A spare taken for a container gets the engine's priority back (a failure drops it).
    fn restore(spawner: Spawner) -> io::Result<Spawner> {
        let pid = spawner.pid().ok_or_else(|| io::Error::other("spare shim is gone"))?;
        set_nice(pid, own_nice()?)?;
        Ok(spawner)
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.binary);
        cmd.arg("shim")
            .arg(crate::shim::POOLED_FLAG)
            .arg(&self.exec_root)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        self.shim_env(cmd.as_std_mut());
        cmd
    }

    /// What every shim the pool starts gets in its environment: the cgroup v1 mount points and
    /// the engine's niceness, which a spare's daemon waits at ([`crate::shim::WAIT_NICE_ENV`]).
    fn shim_env(&self, cmd: &mut std::process::Command) {
        if let Some(m) = &self.cgroup_v1_mounts {
            cmd.env(crate::shim::CGROUP_V1_MOUNTS_ENV, m);
        }
        if let Ok(n) = own_nice() {
            cmd.env(crate::shim::WAIT_NICE_ENV, n.to_string());
        }
    }

    /// The spawner made ahead of time, unless it is gone (then none).
    fn take(&self) -> Option<Spawner> {
        let mut spawner = self.ready().take()?;
        spawner.alive().then_some(spawner)
    }

    /// Makes the next spawner unless one is ready. A failure is only logged: the next
    /// [`ShimPool::run`] spawns its own. The caller decides when: not while a container is being
    /// created (see [`SPARE_AFTER`]).
    pub(super) fn fill(&self) {
        use std::sync::atomic::Ordering;
        if self.ready().is_some() || self.filling.compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire).is_err() {
            return;
        }
        match self.spawn_spare() {
            Ok(spawner) => {
                let old = self.ready().replace(spawner);
                drop(old); // none: fills run one at a time and only while no spare is ready
            }
            Err(e) => tracing::warn!(binary = %self.binary.display(), error = %e, "starting a spare shim ahead of time failed"),
        }
        // Cleared once the spare is in place, so a fill that comes meanwhile finds it ready.
        self.filling.store(false, Ordering::Release);
    }

    /// Runs `swarm shim <state_dir>` through the spawner made ahead of time (or a new one) and
    /// returns the daemon's report, or the spawner's exit status and output when none came. With
    /// `gate` (the bundle asks for it), the spawner's stdin says, after the line, whether the
    /// gate opened (`crate::shim::gate`).
    pub async fn run(&self, state_dir: &Path, gate: Option<Gate>) -> io::Result<Outcome> {
        let taken = self.take().map(Self::restore).transpose().unwrap_or_else(|e| {
            tracing::warn!(error = %e, "restoring the priority of the spare shim failed; starting a new one");
            None
        });
        let mut spawner = match taken {
            Some(s) => s,
            None => Spawner::Exec(self.spawn()?),
        };
        let mut line = state_dir.as_os_str().as_encoded_bytes().to_vec();
        line.push(b'\n');
        let stdin = match hand_over(&mut spawner, &line, gate.as_ref()).await {
            Ok(stdin) => stdin,
            Err(_) => {
                // It died after `take` looked: a new one, once.
                spawner = Spawner::Exec(self.spawn()?);
                hand_over(&mut spawner, &line, gate.as_ref()).await?
            }
        };
        match finish_gated(spawner, stdin, gate.clone()).await? {
            // The spare's daemon was gone before it took the container (killed while it
            // waited): once more, with a new spawner.
            Outcome::Exited(out) if out.status.code() == Some(crate::shim::SPARE_LOST) => {
                tracing::warn!(stderr = %String::from_utf8_lossy(&out.stderr).trim(), "the spare shim was lost; starting a new one");
                let mut spawner = Spawner::Exec(self.spawn()?);
                let stdin = hand_over(&mut spawner, &line, gate.as_ref()).await?;
                finish_gated(spawner, stdin, gate).await
            }
            outcome => Ok(outcome),
        }
    }
}

/// [`finish`], and meanwhile the gate's byte once the gate opens or shuts, when the spawner's
/// stdin is still open for it (then closed).
async fn finish_gated(spawner: Spawner, stdin: Option<Stdin>, gate: Option<Gate>) -> io::Result<Outcome> {
    let (Some(mut stdin), Some(mut gate)) = (stdin, gate) else { return finish(spawner).await };
    let open = async move {
        let byte = if gate.wait().await { GATE_OPEN } else { GATE_SHUT_BYTE };
        // A daemon that failed first is gone: nobody reads it, which changes nothing.
        let _ = stdin.write_all(&[byte]).await;
    };
    let (outcome, ()) = tokio::join!(finish(spawner), open);
    outcome
}

/// What a spawner's stdout said.
enum Said {
    /// The daemon's report, passed on.
    Report(Ready),
    /// A spawner forked by the zygote ended with this code and no report.
    Exit(i32),
    Nothing,
}

/// The daemon's report, passed on by the spawner (which then exits by itself; dropped, it is
/// reaped in the background, and killed if it has not exited yet, which changes nothing: its
/// report is in), or, when none comes, the spawner's exit status and output. A spawner forked by
/// the zygote is not the engine's child: it tells its exit code on stdout
/// (`crate::shim::zygote::exit_line`; one killed says nothing and counts as a failure).
async fn finish(spawner: Spawner) -> io::Result<Outcome> {
    match spawner {
        Spawner::Exec(mut child) => match read_report(child.stdout.take()).await {
            Said::Report(ready) => Ok(Outcome::Reported(ready)),
            _ => child.wait_with_output().await.map(Outcome::Exited),
        },
        Spawner::Forked(mut forked) => {
            let stdout = forked.stdout.take().map(tokio::net::unix::pipe::Receiver::from_owned_fd).transpose()?;
            let code = match read_report(stdout).await {
                Said::Report(ready) => return Ok(Outcome::Reported(ready)),
                Said::Exit(code) => code,
                Said::Nothing => 1,
            };
            let mut stderr = Vec::new();
            if let Some(fd) = forked.stderr.take() {
                let pipe = tokio::net::unix::pipe::Receiver::from_owned_fd(fd)?;
                pipe.take(MAX_REPORT).read_to_end(&mut stderr).await?;
            }
            Ok(Outcome::Exited(Output { status: ExitStatus::from_raw((code & 0xff) << 8), stdout: vec![], stderr }))
        }
    }
}

/// The one line the spawner passes on (a report, or a forked spawner's exit), if any (its
/// stdout closed without one).
async fn read_report(stdout: Option<impl AsyncRead + Unpin>) -> Said {
    let Some(stdout) = stdout else { return Said::Nothing };
    let mut line = Vec::new();
    let mut r = tokio::io::BufReader::new(stdout.take(MAX_REPORT));
    match r.read_until(b'\n', &mut line).await {
        Ok(_) if line.ends_with(b"\n") => {
            line.pop();
            if let Some(code) = crate::shim::zygote::parse_exit_line(&line) {
                return Said::Exit(code);
            }
            serde_json::from_slice(&line).map_or(Said::Nothing, Said::Report)
        }
        _ => Said::Nothing,
    }
}

/// The engine's end of a spawner's stdin.
type Stdin = std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>>;

/// Writes the state dir line to the spawner. Without `gate`, or with one already open or shut (its
/// byte goes with the line), its stdin is closed; otherwise it is returned, open for the byte.
async fn hand_over(spawner: &mut Spawner, line: &[u8], gate: Option<&Gate>) -> io::Result<Option<Stdin>> {
    let mut stdin: Stdin = match spawner {
        Spawner::Exec(child) => Box::pin(child.stdin.take().ok_or_else(|| io::Error::other("shim spawner without stdin"))?),
        Spawner::Forked(forked) => {
            let fd = forked.stdin.take().ok_or_else(|| io::Error::other("shim spawner without stdin"))?;
            Box::pin(tokio::net::unix::pipe::Sender::from_owned_fd(fd)?)
        }
    };
    let mut line = line.to_vec();
    let pending = match gate.map(Gate::now) {
        Some(Some(open)) => {
            line.push(if open { GATE_OPEN } else { GATE_SHUT_BYTE });
            false
        }
        Some(None) => true,
        None => false,
    };
    stdin.write_all(&line).await?;
    Ok(pending.then_some(stdin))
}
