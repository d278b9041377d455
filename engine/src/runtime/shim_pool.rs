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
//! What it leaves on the host: at most one idle spawner, a child of the engine, and its
//! daemon. Both exit by themselves when the spawner's stdin closes (the engine went away, even
//! by SIGKILL, or dropped the spare: the spawner is killed when the pool is dropped).
use crate::shim::protocol::Ready;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::Mutex;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
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

/// How long after a container's create the next spare is started. Its start-up (the exec of the
/// engine's binary, loading, relocations: ~2 ms of CPU) would otherwise share the two cores with
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
fn set_nice(pid: u32, nice: i32) -> io::Result<()> {
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

pub struct ShimPool {
    binary: PathBuf,
    exec_root: PathBuf,
    ready: Mutex<Option<Child>>,
    /// A fill is under way: the fills that parallel creates schedule make one spare, not one each.
    filling: std::sync::atomic::AtomicBool,
    /// The engine's cgroup v1 mount points, handed to every shim (see
    /// [`crate::shim::CGROUP_V1_MOUNTS_ENV`]); none where they could not be read.
    cgroup_v1_mounts: Option<std::ffi::OsString>,
}

impl ShimPool {
    pub fn new(binary: PathBuf, exec_root: PathBuf) -> Self {
        ShimPool { binary, exec_root, ready: Mutex::new(None), filling: Default::default(), cgroup_v1_mounts: cgroup_v1_mounts() }
    }

    fn spawn(&self) -> io::Result<Child> {
        self.command().spawn()
    }

    /// A spare: [`Self::spawn`], at [`SPARE_NICE`]. One whose niceness cannot be set is not kept.
    fn spawn_spare(&self) -> io::Result<Child> {
        let child = self.spawn()?;
        let pid = child.id().ok_or_else(|| io::Error::other("spare shim exited at once"))?;
        set_nice(pid, SPARE_NICE)?;
        Ok(child)
    }

    /// A spare taken for a container gets the engine's priority back (a failure drops it).
    fn restore(child: Child) -> io::Result<Child> {
        let pid = child.id().ok_or_else(|| io::Error::other("spare shim is gone"))?;
        set_nice(pid, own_nice()?)?;
        Ok(child)
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
        if let Some(m) = &self.cgroup_v1_mounts {
            cmd.env(crate::shim::CGROUP_V1_MOUNTS_ENV, m);
        }
        cmd
    }

    /// The spawner made ahead of time, unless it is gone (then none).
    fn take(&self) -> Option<Child> {
        let mut child = self.ready.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take()?;
        match child.try_wait() {
            Ok(None) => Some(child),
            _ => None,
        }
    }

    /// Makes the next spawner unless one is ready. A failure is only logged: the next
    /// [`ShimPool::run`] spawns its own. The caller decides when: not while a container is being
    /// created (see [`SPARE_AFTER`]).
    pub(super) fn fill(&self) {
        use std::sync::atomic::Ordering;
        if self.ready.lock().unwrap_or_else(std::sync::PoisonError::into_inner).is_some()
            || self.filling.compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire).is_err()
        {
            return;
        }
        match self.spawn_spare() {
            Ok(child) => {
                let old = self.ready.lock().unwrap_or_else(std::sync::PoisonError::into_inner).replace(child);
                drop(old); // none: fills run one at a time and only while no spare is ready
            }
            Err(e) => tracing::warn!(binary = %self.binary.display(), error = %e, "starting a spare shim ahead of time failed"),
        }
        // Cleared once the spare is in place, so a fill that comes meanwhile finds it ready.
        self.filling.store(false, Ordering::Release);
    }

    /// Runs `swarm shim <state_dir>` through the spawner made ahead of time (or a new one) and
    /// returns the daemon's report, or the spawner's exit status and output when none came.
    pub async fn run(&self, state_dir: &Path) -> io::Result<Outcome> {
        let taken = self.take().map(Self::restore).transpose().unwrap_or_else(|e| {
            tracing::warn!(error = %e, "restoring the priority of the spare shim failed; starting a new one");
            None
        });
        let mut child = match taken {
            Some(c) => c,
            None => self.spawn()?,
        };
        let mut line = state_dir.as_os_str().as_encoded_bytes().to_vec();
        line.push(b'\n');
        if hand_over(&mut child, &line).await.is_err() {
            // It died after `take` looked: a new one, once.
            child = self.spawn()?;
            hand_over(&mut child, &line).await?;
        }
        match finish(child).await? {
            // The spare's daemon was gone before it took the container (killed while it
            // waited): once more, with a new spawner.
            Outcome::Exited(out) if out.status.code() == Some(crate::shim::SPARE_LOST) => {
                tracing::warn!(stderr = %String::from_utf8_lossy(&out.stderr).trim(), "the spare shim was lost; starting a new one");
                let mut child = self.spawn()?;
                hand_over(&mut child, &line).await?;
                finish(child).await
            }
            outcome => Ok(outcome),
        }
    }
}

/// The daemon's report, passed on by the spawner (which then exits by itself; dropped, it is
/// reaped in the background, and killed if it has not exited yet, which changes nothing: its
/// report is in), or, when none comes, the spawner's exit status and output.
async fn finish(mut child: Child) -> io::Result<Outcome> {
    match read_report(&mut child).await {
        Some(ready) => Ok(Outcome::Reported(ready)),
        None => child.wait_with_output().await.map(Outcome::Exited),
    }
}

/// The one line the spawner passes on, or none (its stdout closed without one).
async fn read_report(child: &mut Child) -> Option<Ready> {
    let stdout = child.stdout.take()?;
    let mut line = Vec::new();
    let mut r = tokio::io::BufReader::new(stdout.take(MAX_REPORT));
    match r.read_until(b'\n', &mut line).await {
        Ok(_) if line.ends_with(b"\n") => serde_json::from_slice(&line).ok(),
        _ => None,
    }
}

/// Writes the state dir line to the spawner and closes its stdin.
async fn hand_over(child: &mut Child, line: &[u8]) -> io::Result<()> {
    let mut stdin = child.stdin.take().ok_or_else(|| io::Error::other("shim spawner without stdin"))?;
    stdin.write_all(line).await
}
