//! The gate: a pooled shim's daemon is handed its container while the engine is still mounting
//! its rootfs or setting up its network ([`ShimConfig::gate`], `crate::runtime::gate`). The
//! daemon builds the container and clones its init, which joins the cgroups and then waits, before
//! its namespaces and its rootfs (libcontainer's `Executor::before_namespaces`), for one byte on
//! the spawner's stdin, after the state dir's line: [`GATE_OPEN`], or anything else (or the end of
//! stdin: the engine went away) when the engine's side failed, and the create fails.
//!
//! [`ShimConfig::gate`]: super::protocol::ShimConfig::gate
use super::protocol::GATE_OPEN;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;

/// The longest state dir line read from stdin.
const MAX_LINE: usize = 64 << 10;

/// What a pooled daemon read from its stdin: the state dir line, and what came after it in the
/// same read (the gate's byte, when the engine had it at once).
pub(super) struct Handed {
    pub state_dir: PathBuf,
    early: Option<u8>,
}

/// Reads the state dir line from `fd` (stdin) without reading past it into a buffer of its own (the
/// gate's byte, when it comes later, is the init's to read). `Ok(None)`: stdin ended with
/// nothing (the engine dropped the spare).
pub(super) fn read_handed(fd: RawFd) -> std::io::Result<Option<Handed>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        // SAFETY: reads into our own buffer.
        let n = unsafe { libc::read(fd, chunk.as_mut_ptr().cast(), chunk.len()) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        let n = n as usize;
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.iter().position(|b| *b == b'\n') {
            let early = buf.get(end + 1).copied();
            buf.truncate(end);
            return Ok(Some(handed(buf, early)));
        }
        if n == 0 {
            return Ok((!buf.is_empty()).then(|| handed(buf, None)));
        }
        if buf.len() > MAX_LINE {
            return Err(std::io::Error::other("the state dir line is too long"));
        }
    }
}

fn handed(line: Vec<u8>, early: Option<u8>) -> Handed {
    let state_dir = PathBuf::from(<std::ffi::OsString as std::os::unix::ffi::OsStringExt>::from_vec(line));
    Handed { state_dir, early }
}

/// The daemon's copy of the gate: stdin, kept open under another fd when the daemon detaches
/// from the spawner's stdio, until the create is over (the init has its own copy).
pub(super) struct StdinGate {
    fd: OwnedFd,
    early: Option<u8>,
}

impl StdinGate {
    /// The gate of a daemon that was handed `handed` on stdin (fd 0, still the spawner's).
    pub fn from_stdin(handed: &Handed) -> std::io::Result<Self> {
        // SAFETY: F_DUPFD_CLOEXEC returns a new fd or -1; a new fd is ours alone.
        let fd = unsafe { libc::fcntl(0, libc::F_DUPFD_CLOEXEC, 3) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: just made.
        Ok(StdinGate { fd: unsafe { OwnedFd::from_raw_fd(fd) }, early: handed.early })
    }

    /// What the init waits on ([`Waiter::wait`]).
    pub fn waiter(&self) -> Waiter {
        Waiter { fd: self.fd.as_raw_fd(), early: self.early }
    }
}

/// The gate as the container's init sees it (its copy of the daemon's fd; `Copy`, as the
/// executor that holds it is cloned).
#[derive(Clone, Copy, Debug)]
pub(super) struct Waiter {
    fd: RawFd,
    early: Option<u8>,
}

/// Why an init did not get through the gate.
#[derive(Debug, thiserror::Error, PartialEq)]
pub(super) enum GateError {
    #[error("{}", super::protocol::GATE_SHUT)]
    Shut,
    #[error("the engine went away before it prepared the container's rootfs and network")]
    Closed,
    #[error("waiting for the engine to prepare the container's rootfs and network: {0}")]
    Read(std::io::ErrorKind),
}

impl Waiter {
    /// Blocks until the engine says whether the gate opens, then closes the init's copy of the
    /// fd (it is close-on-exec too).
    pub fn wait(self) -> Result<(), GateError> {
        let byte = match self.early {
            Some(b) => Ok(b),
            None => read_byte(self.fd),
        };
        // SAFETY: the init's own copy of the daemon's fd, closed once, here.
        unsafe { libc::close(self.fd) };
        match byte? {
            GATE_OPEN => Ok(()),
            _ => Err(GateError::Shut),
        }
    }
}

fn read_byte(fd: RawFd) -> Result<u8, GateError> {
    let mut b = 0u8;
    loop {
        // SAFETY: reads one byte into `b`.
        match unsafe { libc::read(fd, (&mut b as *mut u8).cast(), 1) } {
            1 => return Ok(b),
            0 => return Err(GateError::Closed),
            _ => {
                let e = std::io::Error::last_os_error();
                if e.kind() != std::io::ErrorKind::Interrupted {
                    return Err(GateError::Read(e.kind()));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::IntoRawFd;

    fn pipe() -> (OwnedFd, std::fs::File) {
        let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
        (r, std::fs::File::from(w))
    }

    fn waiter(r: OwnedFd, early: Option<u8>) -> Waiter {
        Waiter { fd: r.into_raw_fd(), early }
    }

    #[test]
    fn the_gate_opens_on_its_byte_only() {
        assert_eq!(waiter(pipe().0, Some(GATE_OPEN)).wait(), Ok(()));
        let (r, mut w) = pipe();
        w.write_all(&[GATE_OPEN]).unwrap();
        assert_eq!(waiter(r, None).wait(), Ok(()));
        let (r, mut w) = pipe();
        w.write_all(&[super::super::protocol::GATE_SHUT_BYTE]).unwrap();
        assert_eq!(waiter(r, None).wait(), Err(GateError::Shut));
        let (r, w) = pipe();
        drop(w);
        assert_eq!(waiter(r, None).wait(), Err(GateError::Closed), "the engine went away");
    }

    #[test]
    fn the_line_is_read_without_the_byte_that_follows_later() {
        let (r, mut w) = pipe();
        w.write_all(b"/run/x/state\n1").unwrap();
        let h = read_handed(r.as_raw_fd()).unwrap().unwrap();
        assert_eq!((h.state_dir, h.early), (PathBuf::from("/run/x/state"), Some(GATE_OPEN)));
        let (r, mut w) = pipe();
        w.write_all(b"/run/y\n").unwrap();
        let h = read_handed(r.as_raw_fd()).unwrap().unwrap();
        assert_eq!((h.state_dir, h.early), (PathBuf::from("/run/y"), None));
        // The byte that comes after the line is left in the pipe for the init.
        w.write_all(&[GATE_OPEN]).unwrap();
        assert_eq!(waiter(r, None).wait(), Ok(()));
        let (r, w) = pipe();
        drop(w);
        assert!(read_handed(r.as_raw_fd()).unwrap().is_none(), "a spare dropped");
    }
}
