//! The root of a running container, reached through a handle on its process rather than a bare
//! pid that may have been reused: a pidfd is taken on the recorded pid, `/proc/<pid>` is opened
//! as a directory (an fd bound to that very process: once it is gone every lookup through it
//! fails), the process is checked to be the container's (its cgroup ends with `/<container id>`),
//! `root` is opened through that directory, and only then is the pidfd asked whether the process
//! is still there (`pidfd_send_signal(0)`). If it is, the pid was never recycled in between, so
//! every lookup above hit the container's process.
use super::fsview::open_at;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use std::ffi::OsStr;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// A pidfd of `pid` (fails with ESRCH when no such process exists).
fn pidfd_open(pid: u32) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd (close-on-exec) or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the syscall just returned this fd and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Is the process behind `pidfd` still there (running or not yet reaped)?
fn alive(pidfd: &OwnedFd) -> io::Result<()> {
    // SAFETY: signal 0 checks only; no siginfo is passed.
    let r = unsafe { libc::syscall(libc::SYS_pidfd_send_signal, pidfd.as_raw_fd(), 0, std::ptr::null::<libc::siginfo_t>(), 0) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Does a `/proc/<pid>/cgroup` text put the process in the cgroup of container `id`?
fn in_container_cgroup(cgroups: &str, id: &str) -> bool {
    let tail = format!("/{id}");
    cgroups.lines().filter_map(|l| l.splitn(3, ':').nth(2)).any(|p| p.ends_with(&tail) || p.contains(&format!("{tail}/")))
}

/// An `O_PATH` fd of the root of container `id`'s process `pid` (see the module doc).
pub fn open(pid: u32, id: &str) -> io::Result<OwnedFd> {
    let gone = || io::Error::new(io::ErrorKind::NotFound, format!("container {id} is not running any more (process {pid} is gone)"));
    let pidfd = pidfd_open(pid).map_err(|e| if e.raw_os_error() == Some(libc::ESRCH) { gone() } else { e })?;
    let proc_dir = open_at(libc::AT_FDCWD, OsStr::new(&format!("/proc/{pid}")), OFlag::O_DIRECTORY | OFlag::O_RDONLY, Mode::empty())
        .map_err(|_| gone())?;
    let mut cgroups = String::new();
    let f = open_at(proc_dir.as_raw_fd(), OsStr::new("cgroup"), OFlag::O_RDONLY, Mode::empty()).map_err(|_| gone())?;
    std::fs::File::from(f).take(64 * 1024).read_to_string(&mut cgroups).map_err(|_| gone())?;
    if !in_container_cgroup(&cgroups, id) {
        return Err(gone());
    }
    let root = open_at(proc_dir.as_raw_fd(), OsStr::new("root"), OFlag::O_PATH | OFlag::O_DIRECTORY, Mode::empty()).map_err(|_| gone())?;
    alive(&pidfd).map_err(|e| if e.raw_os_error() == Some(libc::ESRCH) { gone() } else { e })?;
    Ok(root)
}

/// The `(dev, ino)` of what an fd points at.
#[cfg(test)]
fn ident(fd: &OwnedFd) -> (u64, u64) {
    let st = nix::sys::stat::fstat(fd.as_raw_fd()).unwrap();
    (st.st_dev, st.st_ino)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The last path component of our own cgroup in some hierarchy: a stand-in container id.
    fn own_cgroup_leaf() -> Option<String> {
        let s = std::fs::read_to_string("/proc/self/cgroup").ok()?;
        s.lines()
            .filter_map(|l| l.splitn(3, ':').nth(2))
            .filter(|p| *p != "/")
            .map(|p| p.rsplit('/').next().unwrap_or("").to_string())
            .next()
    }

    #[test]
    fn cgroup_lines_name_the_container() {
        let id = "ab".repeat(32);
        assert!(in_container_cgroup(&format!("4:memory:/flotilla/{id}\n0::/\n"), &id));
        assert!(in_container_cgroup(&format!("0::/flt1/{id}/init\n"), &id));
        assert!(!in_container_cgroup("4:memory:/flotilla/other\n0::/\n", &id));
        assert!(!in_container_cgroup(&format!("4:memory:/flotilla/x{id}\n"), &id));
    }

    #[test]
    fn a_live_process_root_and_a_gone_one() {
        let Some(leaf) = own_cgroup_leaf() else { return };
        let mut child = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        let pid = child.id();
        let root = open(pid, &leaf).unwrap();
        let slash = open_at(libc::AT_FDCWD, OsStr::new("/"), OFlag::O_PATH | OFlag::O_DIRECTORY, Mode::empty()).unwrap();
        assert_eq!(ident(&root), ident(&slash), "the child's root is ours");
        // A process that is not the container's (another cgroup) is refused.
        assert_eq!(open(pid, "not-this-container").unwrap_err().kind(), io::ErrorKind::NotFound);
        child.kill().unwrap();
        child.wait().unwrap();
        // Reaped: the pid names nothing (or someone else, which the cgroup check refuses).
        let e = open(pid, &leaf).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound, "{e}");
        assert!(e.to_string().contains("not running any more"), "{e}");
    }
}
