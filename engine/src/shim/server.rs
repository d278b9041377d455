//! The control socket: one request per connection, handled in the shim's loop.
use super::protocol::{Request, Response};
use super::supervisor::Shim;
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;

/// An exec request carries the process's environment: allow a large one.
const MAX_REQUEST: usize = 1 << 20;

/// A connection still sending its request line (non-blocking).
pub(super) struct Conn {
    pub stream: UnixStream,
    buf: Vec<u8>,
}

impl Conn {
    pub fn new(stream: UnixStream) -> io::Result<Self> {
        stream.set_nonblocking(true)?;
        Ok(Conn { stream, buf: Vec::new() })
    }
}

fn encode(r: &Response) -> Vec<u8> {
    let mut line = serde_json::to_vec(r).unwrap_or_else(|_| b"{}".to_vec());
    line.push(b'\n');
    line
}

/// Writes one response line; a client that went away is no concern of the shim.
pub(super) fn reply(conn: &UnixStream, r: &Response) {
    let _ = conn.set_nonblocking(false);
    let _ = (&*conn).write_all(&encode(r));
}

/// Reads what the client has sent; once the request line is complete, handles it (bytes after
/// it are an attach's first input). Returns the connection while its line is incomplete.
pub(super) fn on_readable(shim: &mut Shim, mut c: Conn) -> Option<Conn> {
    let mut chunk = [0u8; 8192];
    let nl = loop {
        match (&c.stream).read(&mut chunk) {
            Ok(0) => return None,
            Ok(n) => {
                let from = c.buf.len();
                c.buf.extend_from_slice(&chunk[..n]);
                if let Some(i) = c.buf[from..].iter().position(|&b| b == b'\n') {
                    break from + i;
                }
                if c.buf.len() > MAX_REQUEST {
                    reply(&c.stream, &Response::err("bad request: request too long"));
                    return None;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Some(c),
            Err(_) => return None,
        }
    };
    let rest = c.buf.split_off(nl + 1);
    match serde_json::from_slice::<Request>(&c.buf[..nl]) {
        Ok(req) => handle(shim, c.stream, req, rest),
        Err(e) => reply(&c.stream, &Response::err(format!("bad request: {e}"))),
    }
    None
}

fn handle(shim: &mut Shim, conn: UnixStream, req: Request, rest: Vec<u8>) {
    match req {
        Request::Start => reply(&conn, &shim.start()),
        Request::Kill { signal } => reply(&conn, &shim.kill(signal)),
        Request::Delete => {
            if shim.linger_until.is_some() {
                reply(&conn, &Response::ok());
                shim.quit = true;
                return;
            }
            let _ = shim.kill(libc::SIGKILL);
            shim.deletes.push(conn);
        }
        Request::State => {
            let r = Response { pid: Some(shim.init.as_raw() as u32), status: Some(shim.status), exit: shim.exit.clone(), ..Response::ok() };
            reply(&conn, &r)
        }
        Request::Wait => match &shim.exit {
            Some(e) => reply(&conn, &Response { exit: Some(e.clone()), ..Response::ok() }),
            None => shim.waiters.push(conn),
        },
        Request::Resize { height, width } => {
            if let Some(pty) = &shim.pty {
                let ws = libc::winsize { ws_row: height, ws_col: width, ws_xpixel: 0, ws_ypixel: 0 };
                // SAFETY: TIOCSWINSZ reads one winsize from the pointer.
                if unsafe { libc::ioctl(pty.as_raw_fd(), libc::TIOCSWINSZ, &ws) } != 0 {
                    return reply(&conn, &Response::err(format!("resize: {}", io::Error::last_os_error())));
                }
            }
            reply(&conn, &Response::ok())
        }
        Request::Attach { stdin, stdout, stderr } => {
            if shim.hub.is_closed() {
                return reply(&conn, &Response::not_running(format!("container {} is not running", shim.cfg.id)));
            }
            let stdin = stdin && shim.stdin.is_some();
            let _ = conn.set_nonblocking(false);
            match shim.hub.register(conn, stdout, stderr, stdin, &encode(&Response::ok()), rest) {
                Ok(_) => feed_stdin(shim),
                Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {}
                Err(e) => eprintln!("shim: attach: {e}"),
            }
        }
        Request::Exec(req) => super::exec::start(shim, conn, req),
    }
}

/// An attach connection is ready: take output, read input, or see it gone.
pub(super) fn on_attach(shim: &mut Shim, i: usize, revents: i16, buf: &mut [u8]) {
    let (stdin_once, tty) = (shim.cfg.stdin_once, shim.cfg.tty);
    let a = &mut shim.hub.clients[i];
    if revents & libc::POLLOUT != 0 {
        a.flush();
    }
    if a.reading && revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0 {
        match (&a.conn).read(buf) {
            Ok(n) if n > 0 => a.input.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) => {}
            _ => {
                a.reading = false;
                // Docker closes the container's stdin when a StdinOnce client detaches (not
                // with a tty).
                a.close_stdin_after = stdin_once && !tty;
            }
        }
    } else if revents & (libc::POLLHUP | libc::POLLERR) != 0 {
        a.dead = true;
    }
    if !a.input.is_empty() || a.close_stdin_after {
        feed_stdin(shim);
    }
}

/// Writes pending client input to the container's stdin, as far as it takes it now.
pub(super) fn feed_stdin(shim: &mut Shim) {
    for a in shim.hub.clients.iter_mut() {
        let Some(stdin) = shim.stdin.as_mut() else {
            a.input.clear();
            a.close_stdin_after = false;
            continue;
        };
        while !a.input.is_empty() {
            match stdin.write(&a.input) {
                Ok(n) => {
                    a.input.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(_) => {
                    // The process closed its stdin: stop reading this client's input.
                    a.input.clear();
                    a.reading = false;
                }
            }
        }
        if a.close_stdin_after {
            a.close_stdin_after = false;
            shim.stdin = None;
        }
    }
}
