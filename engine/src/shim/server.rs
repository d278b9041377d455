//! The control socket: one thread per connection, one request per connection.
use super::protocol::{Request, Response};
use super::supervisor::{lock, Cmd, Shared};
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::{mpsc, Arc};

const MAX_REQUEST: usize = 4096;

pub(super) fn spawn_accept(listener: UnixListener, shared: Arc<Shared>) {
    let spawned = std::thread::Builder::new().name("accept".into()).stack_size(64 * 1024).spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            let shared = shared.clone();
            let res = std::thread::Builder::new().name("conn".into()).stack_size(128 * 1024).spawn(move || {
                if let Err(e) = handle(conn, &shared) {
                    if e.kind() != io::ErrorKind::BrokenPipe {
                        eprintln!("shim: connection: {e}");
                    }
                }
            });
            if let Err(e) = res {
                eprintln!("shim: connection thread: {e}");
            }
        }
    });
    if let Err(e) = spawned {
        eprintln!("shim: accept thread: {e}");
    }
}

/// Reads the request line byte by byte so nothing after it (attach stdin) is consumed.
fn read_request(conn: &mut UnixStream) -> io::Result<Request> {
    let mut line = Vec::with_capacity(128);
    let mut b = [0u8; 1];
    loop {
        if conn.read(&mut b)? == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed before request"));
        }
        if b[0] == b'\n' {
            break;
        }
        line.push(b[0]);
        if line.len() > MAX_REQUEST {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "request too long"));
        }
    }
    serde_json::from_slice(&line).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

fn encode(r: &Response) -> Vec<u8> {
    let mut v = serde_json::to_vec(r).unwrap_or_else(|_| b"{}".to_vec());
    v.push(b'\n');
    v
}

fn reply(conn: &mut UnixStream, r: &Response) -> io::Result<()> {
    conn.write_all(&encode(r))
}

fn via_main(shared: &Shared, make: impl FnOnce(mpsc::Sender<Response>) -> Cmd) -> Response {
    let (tx, rx) = mpsc::channel();
    shared.send(make(tx));
    rx.recv().unwrap_or_else(|_| Response::err("shim is shutting down"))
}

fn handle(mut conn: UnixStream, shared: &Shared) -> io::Result<()> {
    let req = match read_request(&mut conn) {
        Ok(r) => r,
        Err(e) if e.kind() == io::ErrorKind::InvalidData => return reply(&mut conn, &Response::err(format!("bad request: {e}"))),
        Err(e) => return Err(e),
    };
    match req {
        Request::Start => reply(&mut conn, &via_main(shared, Cmd::Start)),
        Request::Delete => reply(&mut conn, &via_main(shared, Cmd::Delete)),
        Request::Kill { signal } => reply(&mut conn, &shared.kill(signal)),
        Request::State => {
            let st = lock(&shared.proc);
            let r = Response { pid: Some(st.pid.as_raw() as u32), status: Some(st.status), exit: st.exit.clone(), ..Response::ok() };
            drop(st);
            reply(&mut conn, &r)
        }
        Request::Wait => {
            let mut st = lock(&shared.proc);
            while st.exit.is_none() {
                st = shared.exited.wait(st).unwrap_or_else(|p| p.into_inner());
            }
            let r = Response { exit: st.exit.clone(), ..Response::ok() };
            drop(st);
            reply(&mut conn, &r)
        }
        Request::Resize { height, width } => {
            if let Some(pty) = &shared.pty {
                let ws = libc::winsize { ws_row: height, ws_col: width, ws_xpixel: 0, ws_ypixel: 0 };
                // SAFETY: TIOCSWINSZ reads one winsize from the pointer.
                if unsafe { libc::ioctl(pty.as_raw_fd(), libc::TIOCSWINSZ, &ws) } != 0 {
                    return reply(&mut conn, &Response::err(format!("resize: {}", io::Error::last_os_error())));
                }
            }
            reply(&mut conn, &Response::ok())
        }
        Request::Attach { stdin, stdout, stderr } => attach(conn, shared, stdin, stdout, stderr),
    }
}

fn attach(mut conn: UnixStream, shared: &Shared, stdin: bool, stdout: bool, stderr: bool) -> io::Result<()> {
    if !shared.hub.register(&conn, stdout, stderr, &encode(&Response::ok()))? {
        return reply(&mut conn, &Response::not_running(format!("container {} is not running", shared.cfg.id)));
    }
    if !stdin || lock(&shared.stdin).is_none() {
        return Ok(());
    }
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        let n = match conn.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let mut guard = lock(&shared.stdin);
        let Some(w) = guard.as_mut() else { return Ok(()) };
        if w.write_all(&buf[..n]).is_err() {
            return Ok(());
        }
    }
    // Docker closes the container's stdin when a StdinOnce client detaches (not with a tty).
    if shared.cfg.stdin_once && !shared.cfg.tty {
        lock(&shared.stdin).take();
    }
    Ok(())
}
