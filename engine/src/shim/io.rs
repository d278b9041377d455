//! The container's output: json-file log lines and fan-out to attached clients.
use chrono::{SecondsFormat, Utc};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// Stream numbers as in Docker's stdcopy framing.
pub const STDOUT: u8 = 1;
pub const STDERR: u8 = 2;

/// Docker's json-file driver flushes a line without newline at this size.
const MAX_LINE: usize = 16 * 1024;
/// A client that does not read for this long is dropped instead of stalling the container.
const CLIENT_WRITE_TIMEOUT: Duration = Duration::from_secs(60);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// One json-file log entry (Docker's `jsonlog.JSONLog`).
#[derive(serde::Serialize)]
struct Entry<'a> {
    log: &'a str,
    stream: &'a str,
    time: String,
}

/// Appends json-file lines; shared by the reader threads.
pub struct LogFile {
    file: Mutex<Option<File>>,
}

impl LogFile {
    pub fn open(path: &std::path::Path) -> io::Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
        Ok(LogFile { file: Mutex::new(Some(file)) })
    }

    /// A log that drops everything (when the log file cannot be opened).
    pub fn discard() -> Self {
        LogFile { file: Mutex::new(None) }
    }

    fn write_line(&self, stream: u8, line: &[u8]) {
        let entry = Entry {
            log: &String::from_utf8_lossy(line),
            stream: if stream == STDERR { "stderr" } else { "stdout" },
            time: Utc::now().to_rfc3339_opts(SecondsFormat::Nanos, true),
        };
        let Ok(mut buf) = serde_json::to_vec(&entry) else { return };
        buf.push(b'\n');
        if let Some(f) = lock(&self.file).as_mut() {
            if let Err(e) = f.write_all(&buf) {
                eprintln!("shim: writing log: {e}");
            }
        }
    }
}

/// Splits one stream's chunks into log lines; a partial line waits for its newline.
pub struct LineSplitter {
    stream: u8,
    pending: Vec<u8>,
}

impl LineSplitter {
    pub fn new(stream: u8) -> Self {
        LineSplitter { stream, pending: Vec::new() }
    }

    pub fn push(&mut self, log: &LogFile, mut data: &[u8]) {
        while let Some(i) = data.iter().position(|&b| b == b'\n') {
            let (line, rest) = data.split_at(i + 1);
            if self.pending.is_empty() {
                log.write_line(self.stream, line);
            } else {
                self.pending.extend_from_slice(line);
                log.write_line(self.stream, &self.pending);
                self.pending.clear();
            }
            data = rest;
        }
        self.pending.extend_from_slice(data);
        if self.pending.len() >= MAX_LINE {
            log.write_line(self.stream, &self.pending);
            self.pending.clear();
        }
    }

    /// Writes a trailing partial line (at EOF).
    pub fn finish(&mut self, log: &LogFile) {
        if !self.pending.is_empty() {
            log.write_line(self.stream, &self.pending);
            self.pending.clear();
        }
    }
}

struct Client {
    conn: UnixStream,
    stdout: bool,
    stderr: bool,
}

#[derive(Default)]
struct HubInner {
    clients: Vec<Client>,
    closed: bool,
}

/// The attached clients. Output is written to each under one lock, so every client sees the
/// bytes in order and an attach registered before `start` misses nothing.
#[derive(Default)]
pub struct Hub {
    inner: Mutex<HubInner>,
    tty: bool,
}

impl Hub {
    pub fn new(tty: bool) -> Self {
        Hub { inner: Mutex::default(), tty }
    }

    /// Sends `reply` on `conn` and registers it for output (and for `close`), atomically with
    /// respect to output.
    /// Returns false when the hub is closed (the process has exited).
    pub fn register(&self, conn: &UnixStream, stdout: bool, stderr: bool, reply: &[u8]) -> io::Result<bool> {
        let mut inner = lock(&self.inner);
        if inner.closed {
            return Ok(false);
        }
        (&*conn).write_all(reply)?;
        // Registered even without output streams, so `close` ends a stdin-only attach too.
        let conn = conn.try_clone()?;
        conn.set_write_timeout(Some(CLIENT_WRITE_TIMEOUT))?;
        inner.clients.push(Client { conn, stdout, stderr });
        Ok(true)
    }

    pub fn broadcast(&self, stream: u8, data: &[u8]) {
        let mut inner = lock(&self.inner);
        if inner.clients.is_empty() {
            return;
        }
        let framed;
        let bytes: &[u8] = if self.tty {
            data
        } else {
            let mut f = Vec::with_capacity(8 + data.len());
            f.extend_from_slice(&[stream, 0, 0, 0]);
            f.extend_from_slice(&(data.len() as u32).to_be_bytes());
            f.extend_from_slice(data);
            framed = f;
            &framed
        };
        inner.clients.retain(|c| {
            let wanted = if stream == STDERR { c.stderr } else { c.stdout };
            !wanted || (&c.conn).write_all(bytes).is_ok()
        });
    }

    /// Ends every attach stream (the clients see EOF) and refuses new ones.
    pub fn close(&self) {
        let mut inner = lock(&self.inner);
        inner.closed = true;
        for c in inner.clients.drain(..) {
            let _ = c.conn.shutdown(std::net::Shutdown::Both);
        }
    }
}

/// Reads one output fd until EOF (EIO for a pty master), logging and fanning out every chunk.
pub fn pump_output(mut src: File, stream: u8, log: Arc<LogFile>, hub: Arc<Hub>) {
    let mut splitter = LineSplitter::new(stream);
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        match src.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                hub.broadcast(stream, &buf[..n]);
                splitter.push(&log, &buf[..n]);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break, // EIO: the pty's last slave closed
        }
    }
    splitter.finish(&log);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log_lines(path: &std::path::Path) -> Vec<serde_json::Value> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn splitter_writes_whole_lines_and_trailing_partial() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("c-json.log");
        let log = LogFile::open(&p).unwrap();
        let mut s = LineSplitter::new(STDOUT);
        s.push(&log, b"hel");
        s.push(&log, b"lo\nwor");
        s.push(&log, b"ld\nx\ntail");
        s.finish(&log);
        let mut e = LineSplitter::new(STDERR);
        e.push(&log, b"oops\n");
        let lines = log_lines(&p);
        let logs: Vec<_> = lines.iter().map(|l| l["log"].as_str().unwrap()).collect();
        assert_eq!(logs, ["hello\n", "world\n", "x\n", "tail", "oops\n"]);
        assert_eq!(lines[4]["stream"], "stderr");
        let t = lines[0]["time"].as_str().unwrap();
        assert!(t.ends_with('Z') && t.len() == 30, "{t}");
    }

    #[test]
    fn long_lines_are_flushed_in_pieces() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("l.log");
        let log = LogFile::open(&p).unwrap();
        let mut s = LineSplitter::new(STDOUT);
        s.push(&log, &vec![b'a'; MAX_LINE + 10]);
        s.finish(&log);
        let lines = log_lines(&p);
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0]["log"].as_str().unwrap().len(), MAX_LINE + 10);
    }

    #[test]
    fn hub_frames_and_filters_streams() {
        let hub = Hub::new(false);
        let (a, mut a_peer) = UnixStream::pair().unwrap();
        let (b, mut b_peer) = UnixStream::pair().unwrap();
        assert!(hub.register(&a, true, true, b"{}\n").unwrap());
        assert!(hub.register(&b, false, true, b"{}\n").unwrap());
        hub.broadcast(STDOUT, b"hi\n");
        hub.broadcast(STDERR, b"e");
        hub.close();
        drop((a, b));
        let mut got = Vec::new();
        a_peer.read_to_end(&mut got).unwrap();
        assert_eq!(got, b"{}\n\x01\0\0\0\0\0\0\x03hi\n\x02\0\0\0\0\0\0\x01e");
        got.clear();
        b_peer.read_to_end(&mut got).unwrap();
        assert_eq!(got, b"{}\n\x02\0\0\0\0\0\0\x01e");
        let (c, _) = UnixStream::pair().unwrap();
        assert!(!hub.register(&c, true, true, b"{}\n").unwrap());
    }

    #[test]
    fn tty_hub_sends_raw_bytes() {
        let hub = Hub::new(true);
        let (a, mut peer) = UnixStream::pair().unwrap();
        hub.register(&a, true, false, b"").unwrap();
        hub.broadcast(STDOUT, b"raw");
        hub.close();
        drop(a);
        let mut got = Vec::new();
        peer.read_to_end(&mut got).unwrap();
        assert_eq!(got, b"raw");
    }
}
