//! The container's output: json-file log lines and fan-out to attached clients.
use chrono::{SecondsFormat, Utc};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

/// Stream numbers as in Docker's stdcopy framing.
pub const STDOUT: u8 = 1;
pub const STDERR: u8 = 2;

/// Docker's json-file driver flushes a line without newline at this size.
const MAX_LINE: usize = 16 * 1024;
/// A client that does not read for this long is dropped instead of stalling the container.
const CLIENT_WRITE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the end of the process waits for a client to take its last output.
const CLOSE_FLUSH_TIMEOUT: Duration = Duration::from_secs(2);

/// One json-file log entry (Docker's `jsonlog.JSONLog`).
#[derive(serde::Serialize)]
struct Entry<'a> {
    log: &'a str,
    stream: &'a str,
    time: String,
}

/// Appends json-file lines, rotating the file as `max-size`/`max-file` say: before a line would
/// take the file past `max_size`, `<log>.<n>` moves to `<log>.<n+1>` (the oldest beyond
/// `max_file - 1` is removed), the file to `<log>.1`, and a new file starts.
pub struct LogFile {
    file: Option<File>,
    path: std::path::PathBuf,
    size: u64,
    max_size: Option<u64>,
    max_file: u32,
    cfg: crate::runtime::options::LogConfig,
}

impl LogFile {
    pub fn open(path: &std::path::Path) -> io::Result<Self> {
        Self::open_with(path, &crate::runtime::options::LogConfig::default())
    }

    /// The log of `cfg`'s driver: nothing is written with `none`.
    pub fn open_with(path: &std::path::Path, cfg: &crate::runtime::options::LogConfig) -> io::Result<Self> {
        if cfg.driver == crate::runtime::options::LogDriver::None {
            return Ok(Self::discard());
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        use std::os::unix::fs::OpenOptionsExt;
        // Root only: a container's output is its own business.
        let file = std::fs::OpenOptions::new().create(true).append(true).mode(0o600).open(path)?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(LogFile {
            file: Some(file),
            path: path.to_path_buf(),
            size,
            max_size: cfg.max_size.filter(|m| *m > 0),
            max_file: cfg.max_file.max(1),
            cfg: cfg.clone(),
        })
    }

    /// A log that drops everything (when the log file cannot be opened).
    pub fn discard() -> Self {
        LogFile { file: None, path: Default::default(), size: 0, max_size: None, max_file: 1, cfg: Default::default() }
    }

    fn rotate(&mut self) -> io::Result<()> {
        use crate::runtime::options::rotated;
        if self.max_file <= 1 {
            // Docker keeps one file: it starts over.
            if let Some(f) = self.file.as_mut() {
                f.set_len(0)?;
            }
            self.size = 0;
            return Ok(());
        }
        let name = |n| self.cfg.rotated(&self.path, n);
        let _ = std::fs::remove_file(name(self.max_file - 1));
        for n in (1..self.max_file - 1).rev() {
            let _ = std::fs::rename(name(n), name(n + 1));
        }
        std::fs::rename(&self.path, rotated(&self.path, 1))?;
        self.file = Some({
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new().create(true).append(true).mode(0o600).open(&self.path)?
        });
        self.size = 0;
        if self.cfg.compress {
            gzip_away(&rotated(&self.path, 1), &name(1))?;
        }
        Ok(())
    }

    fn write_line(&mut self, stream: u8, line: &[u8]) {
        if self.file.is_none() {
            return;
        }
        let entry = Entry {
            log: &String::from_utf8_lossy(line),
            stream: if stream == STDERR { "stderr" } else { "stdout" },
            time: Utc::now().to_rfc3339_opts(SecondsFormat::Nanos, true),
        };
        let Ok(mut buf) = serde_json::to_vec(&entry) else { return };
        buf.push(b'\n');
        if self.max_size.is_some_and(|m| self.size > 0 && self.size + buf.len() as u64 > m) {
            if let Err(e) = self.rotate() {
                eprintln!("shim: rotating log: {e}");
            }
        }
        if let Some(f) = self.file.as_mut() {
            match f.write_all(&buf) {
                Ok(()) => self.size += buf.len() as u64,
                Err(e) => eprintln!("shim: writing log: {e}"),
            }
        }
    }
}

/// Compresses `from` into `to` (through a temporary file) and removes `from`.
fn gzip_away(from: &std::path::Path, to: &std::path::Path) -> io::Result<()> {
    let mut tmp = to.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    let mut enc = flate2::write::GzEncoder::new(File::create(&tmp)?, flate2::Compression::fast());
    io::copy(&mut File::open(from)?, &mut enc)?;
    enc.finish()?;
    std::fs::rename(&tmp, to)?;
    std::fs::remove_file(from)
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

    pub fn push(&mut self, log: &mut LogFile, mut data: &[u8]) {
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
    pub fn finish(&mut self, log: &mut LogFile) {
        if !self.pending.is_empty() {
            log.write_line(self.stream, &self.pending);
            self.pending.clear();
        }
    }
}

/// A client this far behind stops the container's output from being read (back-pressure).
const MAX_BEHIND: usize = 256 * 1024;

/// One attach connection (non-blocking): a client of the output, and maybe of stdin.
pub struct Attach {
    pub conn: UnixStream,
    stdout: bool,
    stderr: bool,
    /// Output not yet taken by the client.
    out: Vec<u8>,
    /// Since when the client has taken nothing of `out`.
    stalled: Option<Instant>,
    /// The client's input is still read (an attach with stdin, before its EOF).
    pub reading: bool,
    /// Input read from the client, not yet written to the container's stdin.
    pub input: Vec<u8>,
    /// Close the container's stdin once `input` is written (StdinOnce, no tty).
    pub close_stdin_after: bool,
    /// Gone: removed at the next sweep.
    pub dead: bool,
}

impl Attach {
    /// Whether the loop should wait for the client to take output.
    pub fn wants_write(&self) -> bool {
        !self.out.is_empty()
    }

    /// Writes what the client can take now; a broken client is marked dead.
    pub fn flush(&mut self) {
        let mut written = 0;
        while written < self.out.len() {
            match (&self.conn).write(&self.out[written..]) {
                Ok(0) => break,
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => {
                    self.dead = true;
                    self.out.clear();
                    return;
                }
            }
        }
        if written > 0 {
            self.out.drain(..written);
            self.stalled = None;
        }
        if !self.out.is_empty() && self.stalled.is_none() {
            self.stalled = Some(Instant::now());
        }
    }
}

/// The attached clients. Output goes to each in order; an attach registered before `start`
/// misses nothing.
pub struct Hub {
    pub clients: Vec<Attach>,
    tty: bool,
    closed: bool,
}

impl Hub {
    pub fn new(tty: bool) -> Self {
        Hub { clients: vec![], tty, closed: false }
    }

    /// Sends `reply` on `conn` and registers it for output (and for `close`); `input` is what
    /// the client sent after its request (with `stdin`). Returns false when the hub is closed
    /// (the process has exited).
    pub fn register(
        &mut self,
        conn: UnixStream,
        stdout: bool,
        stderr: bool,
        stdin: bool,
        reply: &[u8],
        input: Vec<u8>,
    ) -> io::Result<bool> {
        if self.closed {
            return Ok(false);
        }
        (&conn).write_all(reply)?;
        conn.set_nonblocking(true)?;
        // Registered even without output streams, so `close` ends a stdin-only attach too.
        self.clients.push(Attach {
            conn,
            stdout,
            stderr,
            out: vec![],
            stalled: None,
            reading: stdin,
            input: if stdin { input } else { vec![] },
            close_stdin_after: false,
            dead: false,
        });
        Ok(true)
    }

    pub fn broadcast(&mut self, stream: u8, data: &[u8]) {
        let tty = self.tty;
        for c in self.clients.iter_mut().filter(|c| !c.dead) {
            let wanted = if stream == STDERR { c.stderr } else { c.stdout };
            if !wanted {
                continue;
            }
            if !tty {
                c.out.extend_from_slice(&[stream, 0, 0, 0]);
                c.out.extend_from_slice(&(data.len() as u32).to_be_bytes());
            }
            c.out.extend_from_slice(data);
            c.flush();
        }
    }

    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Some client is so far behind that the output should not be read for now.
    pub fn backlogged(&self) -> bool {
        self.clients.iter().any(|c| !c.dead && c.out.len() >= MAX_BEHIND)
    }

    /// Drops clients that took nothing for [`CLIENT_WRITE_TIMEOUT`] and the dead ones.
    pub fn sweep(&mut self, now: Instant) {
        for c in &mut self.clients {
            if c.stalled.is_some_and(|t| now.duration_since(t) >= CLIENT_WRITE_TIMEOUT) {
                c.dead = true;
            }
        }
        self.clients.retain(|c| !c.dead);
    }

    /// When the oldest stalled client times out.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.clients.iter().filter_map(|c| c.stalled).min().map(|t| t + CLIENT_WRITE_TIMEOUT)
    }

    /// Ends every attach stream (the clients see EOF, after their pending output within a few
    /// seconds) and refuses new ones.
    pub fn close(&mut self) {
        self.closed = true;
        for c in self.clients.drain(..) {
            if !c.dead && !c.out.is_empty() && c.conn.set_nonblocking(false).is_ok() {
                let _ = c.conn.set_write_timeout(Some(CLOSE_FLUSH_TIMEOUT));
                let _ = (&c.conn).write_all(&c.out);
            }
            let _ = c.conn.shutdown(std::net::Shutdown::Both);
        }
    }
}

/// One output fd of the container (non-blocking): pipe read end or pty master.
pub struct Output {
    pub file: File,
    pub stream: u8,
    splitter: LineSplitter,
    pub eof: bool,
}

impl Output {
    pub fn new(file: File, stream: u8) -> Self {
        Output { file, stream, splitter: LineSplitter::new(stream), eof: false }
    }

    /// Reads what is there (EOF, or EIO for a pty master whose last slave closed, ends it),
    /// logging and fanning out every chunk.
    pub fn pump(&mut self, buf: &mut [u8], log: &mut LogFile, hub: &mut Hub) {
        loop {
            match self.file.read(buf) {
                Ok(0) => break,
                Ok(n) => {
                    hub.broadcast(self.stream, &buf[..n]);
                    self.splitter.push(log, &buf[..n]);
                    if hub.backlogged() {
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(_) => break,
            }
        }
        self.eof = true;
        self.splitter.finish(log);
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    fn log_lines(path: &std::path::Path) -> Vec<serde_json::Value> {
        std::fs::read_to_string(path).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }

    #[test]
    fn splitter_writes_whole_lines_and_trailing_partial() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("c-json.log");
        let mut log = LogFile::open(&p).unwrap();
        let mut s = LineSplitter::new(STDOUT);
        s.push(&mut log, b"hel");
        s.push(&mut log, b"lo\nwor");
        s.push(&mut log, b"ld\nx\ntail");
        s.finish(&mut log);
        let mut e = LineSplitter::new(STDERR);
        e.push(&mut log, b"oops\n");
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
        let mut log = LogFile::open(&p).unwrap();
        let mut s = LineSplitter::new(STDOUT);
        s.push(&mut log, &vec![b'a'; MAX_LINE + 10]);
        s.finish(&mut log);
        let lines = log_lines(&p);
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0]["log"].as_str().unwrap().len(), MAX_LINE + 10);
    }

    #[test]
    fn hub_frames_and_filters_streams() {
        let mut hub = Hub::new(false);
        let (a, mut a_peer) = UnixStream::pair().unwrap();
        let (b, mut b_peer) = UnixStream::pair().unwrap();
        assert!(hub.register(a, true, true, false, b"{}\n", vec![]).unwrap());
        assert!(hub.register(b, false, true, false, b"{}\n", vec![]).unwrap());
        hub.broadcast(STDOUT, b"hi\n");
        hub.broadcast(STDERR, b"e");
        hub.close();
        let mut got = Vec::new();
        a_peer.read_to_end(&mut got).unwrap();
        assert_eq!(got, b"{}\n\x01\0\0\0\0\0\0\x03hi\n\x02\0\0\0\0\0\0\x01e");
        got.clear();
        b_peer.read_to_end(&mut got).unwrap();
        assert_eq!(got, b"{}\n\x02\0\0\0\0\0\0\x01e");
        let (c, _) = UnixStream::pair().unwrap();
        assert!(!hub.register(c, true, true, false, b"{}\n", vec![]).unwrap());
    }

    #[test]
    fn tty_hub_sends_raw_bytes() {
        let mut hub = Hub::new(true);
        let (a, mut peer) = UnixStream::pair().unwrap();
        hub.register(a, true, false, false, b"", vec![]).unwrap();
        hub.broadcast(STDOUT, b"raw");
        hub.close();
        let mut got = Vec::new();
        peer.read_to_end(&mut got).unwrap();
        assert_eq!(got, b"raw");
    }

    #[test]
    fn log_rotates_by_size_and_count() {
        use crate::runtime::options::{rotated, LogConfig};
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("c-json.log");
        let cfg = LogConfig { max_size: Some(300), max_file: 3, ..Default::default() };
        let mut log = LogFile::open_with(&p, &cfg).unwrap();
        let mut s = LineSplitter::new(STDOUT);
        for i in 0..40 {
            s.push(&mut log, format!("line {i}\n").as_bytes());
        }
        let files = cfg.files(&p);
        assert_eq!(files, vec![rotated(&p, 2), rotated(&p, 1), p.clone()]);
        let mut all = vec![];
        for f in &files {
            assert!(std::fs::metadata(f).unwrap().len() <= 300, "{f:?}");
            all.extend(log_lines(f));
        }
        assert!(!rotated(&p, 3).exists());
        let logs: Vec<_> = all.iter().map(|l| l["log"].as_str().unwrap().to_string()).collect();
        assert_eq!(logs.last().unwrap(), "line 39\n");
        // Consecutive lines across the files, none lost between them.
        let first: usize = logs[0].trim().strip_prefix("line ").unwrap().parse().unwrap();
        assert_eq!(logs.len(), 40 - first);
        // Compressed: the rotated files are gzip, read back whole.
        let z = d.path().join("z-json.log");
        let zcfg = LogConfig { max_size: Some(300), max_file: 3, compress: true, ..Default::default() };
        let mut log = LogFile::open_with(&z, &zcfg).unwrap();
        for i in 0..40 {
            s.push(&mut log, format!("line {i}\n").as_bytes());
        }
        let files = zcfg.files(&z);
        assert!(files[0].to_string_lossy().ends_with(".2.gz") && files[1].to_string_lossy().ends_with(".1.gz"));
        let mut text = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(File::open(&files[1]).unwrap()), &mut text).unwrap();
        assert!(text.contains("\"stream\":\"stdout\""), "{text}");
        assert!(!rotated(&z, 1).exists());
        let none = LogConfig { driver: crate::runtime::options::LogDriver::None, ..Default::default() };
        let q = d.path().join("none.log");
        let mut log = LogFile::open_with(&q, &none).unwrap();
        s.push(&mut log, b"x\n");
        assert!(!q.exists());
    }

    #[test]
    fn slow_client_is_buffered_then_backlogged() {
        let mut hub = Hub::new(true);
        let (a, mut peer) = UnixStream::pair().unwrap();
        hub.register(a, true, false, false, b"", vec![]).unwrap();
        let chunk = vec![b'x'; 64 * 1024];
        let mut sent = 0;
        while !hub.backlogged() {
            hub.broadcast(STDOUT, &chunk);
            sent += chunk.len();
        }
        assert!(hub.next_deadline().is_some());
        let mut got = vec![0u8; 1 << 20];
        let mut total = 0;
        while total < sent {
            total += peer.read(&mut got).unwrap();
            hub.clients[0].flush();
        }
        assert_eq!(total, sent);
        assert!(!hub.backlogged());
    }
}
