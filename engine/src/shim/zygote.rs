//! `swarm shim --zygote <exec_root>`: forks spare spawners for the engine, so that a spare costs
//! a fork of this small, already started process instead of an exec of the engine's binary (its
//! dynamic loading, and the `cpuid` traps of glibc's start-up, which a VM pays in exits: ~1.8 ms
//! of CPU per container here, bench/engine.md, stop 32).
//!
//! Its stdin is one end of a `SOCK_SEQPACKET` socket pair; the engine holds the other. Each
//! request is one byte with three fds (the spawner's stdin, stdout and stderr: pipes whose other
//! ends the engine keeps). The zygote forks; the child takes them as its fds 0, 1 and 2 and runs
//! as `swarm shim --pooled` does from there (it forks its daemon, relays its report, see
//! [`super::forked_spare`]), and also says how it ended when it has no report to relay: one line
//! `exit <code>` on its stdout ([`exit_line`]), since its exit status goes to the zygote, its
//! parent, not to the engine. The zygote answers each request with the child's pid (`i32`,
//! little endian; a negative errno when the fork failed) and a pidfd of it, then closes its
//! copies of the fds. Children are reaped by the kernel (SIGCHLD ignored here, back to its
//! default in each child). The zygote exits when the engine's end closes.
use nix::sys::socket::MsgFlags;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};

/// The request byte.
const FORK: u8 = b'f';

/// The line a spawner forked by the zygote writes on its stdout when it relays no report.
pub fn exit_line(code: i32) -> String {
    format!("exit {code}\n")
}

/// The code of an [`exit_line`], if `line` (without its newline) is one.
pub fn parse_exit_line(line: &[u8]) -> Option<i32> {
    std::str::from_utf8(line).ok()?.strip_prefix("exit ")?.trim_end().parse().ok()
}

/// Sends one message of `data` with `fds` over a `SOCK_SEQPACKET` socket.
pub fn send_with_fds(sock: BorrowedFd<'_>, data: &[u8], fds: &[RawFd]) -> std::io::Result<()> {
    super::protocol::send_with_fds(sock.as_raw_fd(), data, fds, MsgFlags::MSG_NOSIGNAL).map(drop)
}

/// Receives one message (at most `buf.len()` bytes) and the fds sent with it (close-on-exec).
/// Ok(None) at the end of the stream.
pub fn recv_with_fds(sock: BorrowedFd<'_>, buf: &mut [u8]) -> std::io::Result<Option<(usize, Vec<OwnedFd>)>> {
    let (n, fds) = super::protocol::recv_with_fds(sock.as_raw_fd(), buf, MsgFlags::empty())?;
    Ok((n > 0 || !fds.is_empty()).then_some((n, fds)))
}

fn set_sigchld(handler: libc::sighandler_t) {
    // SAFETY: SIG_IGN and SIG_DFL are valid dispositions for SIGCHLD.
    unsafe { libc::signal(libc::SIGCHLD, handler) };
}

/// The zygote's loop (see the module's doc). Runs single-threaded.
pub(super) fn serve() -> i32 {
    set_sigchld(libc::SIG_IGN);
    // std's CPU feature cache, filled here once (its `cpuid`s trap to the hypervisor in a VM),
    // is inherited by every spawner, daemon and container init forked from here; libcontainer's
    // init would otherwise fill it on the start's path (~0.1 ms).
    #[cfg(target_arch = "x86_64")]
    let _ = std::is_x86_feature_detected!("avx2");
    // SAFETY: fd 0 is the socket the engine gave us as stdin, ours for the process's life.
    let ctl = unsafe { BorrowedFd::borrow_raw(0) };
    let mut buf = [0u8; 16];
    loop {
        let (n, fds) = match recv_with_fds(ctl, &mut buf) {
            Ok(Some(m)) => m,
            Ok(None) => return 0,
            Err(e) => {
                eprintln!("shim zygote: {e}");
                return 1;
            }
        };
        let [stdin, stdout, stderr]: [OwnedFd; 3] = match fds.try_into() {
            Ok(f) if n == 1 && buf[0] == FORK => f,
            _ => {
                eprintln!("shim zygote: a request without its three fds");
                return 1;
            }
        };
        // SAFETY: this process has a single thread.
        let reply = match unsafe { nix::unistd::fork() } {
            Ok(nix::unistd::ForkResult::Child) => {
                set_sigchld(libc::SIG_DFL);
                for (fd, to) in [(&stdin, 0), (&stdout, 1), (&stderr, 2)] {
                    if let Err(e) = nix::unistd::dup2(fd.as_raw_fd(), to) {
                        eprintln!("shim zygote: dup2: {e}");
                        std::process::exit(1);
                    }
                }
                drop((stdin, stdout, stderr));
                std::process::exit(super::forked_spare());
            }
            Ok(nix::unistd::ForkResult::Parent { child }) => match super::supervisor::pidfd_open(child) {
                Ok(pidfd) => Ok((child.as_raw(), pidfd)),
                Err(e) => {
                    // SAFETY: our own child, not reaped while it runs; it would wait forever.
                    unsafe { libc::kill(child.as_raw(), libc::SIGKILL) };
                    Err(e.raw_os_error().unwrap_or(libc::EIO))
                }
            },
            Err(e) => Err(e as i32),
        };
        drop((stdin, stdout, stderr));
        let sent = match &reply {
            Ok((pid, pidfd)) => send_with_fds(ctl, &pid.to_le_bytes(), &[pidfd.as_raw_fd()]),
            Err(errno) => send_with_fds(ctl, &(-errno).to_le_bytes(), &[]),
        };
        if let Err(e) = sent {
            eprintln!("shim zygote: {e}");
            return 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_lines_round_trip_and_reports_are_not_exit_lines() {
        assert_eq!(parse_exit_line(exit_line(3).trim_end().as_bytes()), Some(3));
        assert_eq!(parse_exit_line(b"exit 127"), Some(127));
        assert_eq!(parse_exit_line(b"{}"), None);
        assert_eq!(parse_exit_line(b"{\"error\":\"exit 1\"}"), None);
        assert_eq!(parse_exit_line(b"exit x"), None);
    }
}
