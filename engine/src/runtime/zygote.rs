//! The engine's side of the shim zygote (`crate::shim::zygote`): one `swarm shim --zygote`
//! process, started once at the spares' priority, that forks each spare spawner instead of the
//! engine exec'ing its binary for every one.
use crate::shim::zygote::{recv_with_fds, send_with_fds};
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::process::{Child, Command, Stdio};

/// How long a fork request may wait for the zygote's answer before the zygote is given up.
const REPLY_TIMEOUT_MS: i32 = 2_000;

/// A running zygote and the engine's end of its socket.
pub(super) struct Zygote {
    child: Child,
    ctl: OwnedFd,
}

impl Zygote {
    /// Starts `cmd` (`swarm shim --zygote <exec_root>`, its environment set) at niceness `nice`,
    /// which every spare it forks then has.
    pub fn start(mut cmd: Command, nice: i32) -> io::Result<Zygote> {
        use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
        let (ctl, theirs) = socketpair(AddressFamily::Unix, SockType::SeqPacket, None, SockFlag::SOCK_CLOEXEC).map_err(io::Error::from)?;
        let mut child = cmd.stdin(Stdio::from(theirs)).stdout(Stdio::null()).stderr(Stdio::inherit()).spawn()?;
        if let Err(e) = super::shim_pool::set_nice(child.id(), nice) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(e);
        }
        Ok(Zygote { child, ctl })
    }

    /// Whether the zygote still runs.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// A new spare spawner, forked by the zygote. An error leaves the zygote unusable (drop it).
    pub fn fork(&self) -> io::Result<Forked> {
        let pipe = || nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(io::Error::from);
        let ((in_r, in_w), (out_r, out_w), (err_r, err_w)) = (pipe()?, pipe()?, pipe()?);
        send_with_fds(self.ctl.as_fd(), b"f", &[in_r.as_raw_fd(), out_w.as_raw_fd(), err_w.as_raw_fd()])?;
        // The spawner holds the other ends now: only it may close them.
        drop((in_r, out_w, err_w));
        let mut p = libc::pollfd { fd: self.ctl.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        loop {
            // SAFETY: one valid pollfd.
            match unsafe { libc::poll(&mut p, 1, REPLY_TIMEOUT_MS) } {
                1 => break,
                0 => return Err(io::Error::new(io::ErrorKind::TimedOut, "the shim zygote did not answer")),
                _ if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted => continue,
                _ => return Err(io::Error::last_os_error()),
            }
        }
        let mut buf = [0u8; 8];
        let (n, mut fds) = recv_with_fds(self.ctl.as_fd(), &mut buf)?.ok_or_else(|| io::Error::other("the shim zygote is gone"))?;
        let pid = match buf.first_chunk::<4>() {
            Some(b) if n == 4 => i32::from_le_bytes(*b),
            _ => return Err(io::Error::other("the shim zygote answered nonsense")),
        };
        if pid <= 0 {
            return Err(io::Error::from_raw_os_error(-pid));
        }
        let pidfd = fds.pop().filter(|_| fds.is_empty()).ok_or_else(|| io::Error::other("the shim zygote sent no pidfd"))?;
        Ok(Forked { pid: pid as u32, pidfd, stdin: Some(in_w), stdout: Some(out_r), stderr: Some(err_r) })
    }
}

impl Drop for Zygote {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A spare spawner forked by the zygote (not the engine's child: its pidfd stands for it), with
/// the engine's ends of its stdio. Killed when dropped, as an exec'd one is.
pub(super) struct Forked {
    pub pid: u32,
    pidfd: OwnedFd,
    pub stdin: Option<OwnedFd>,
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
}

impl Forked {
    /// Whether the spawner still runs.
    pub fn alive(&self) -> bool {
        let mut p = libc::pollfd { fd: self.pidfd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd, no wait.
        unsafe { libc::poll(&mut p, 1, 0) == 0 }
    }
}

impl Drop for Forked {
    fn drop(&mut self) {
        // SAFETY: pidfd_send_signal on a pidfd we own (it cannot name another process).
        unsafe { libc::syscall(libc::SYS_pidfd_send_signal, self.pidfd.as_raw_fd(), libc::SIGKILL, std::ptr::null::<u8>(), 0) };
    }
}
