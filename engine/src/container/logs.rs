//! `docker logs`: reads the json-file log the shim writes, with tail/since/until/follow.
use super::{ContainerError, ContainerService};
use crate::runtime::Runtime;
use bytes::Bytes;
use std::io::SeekFrom;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::sync::mpsc;

#[derive(Debug, Default, Clone)]
pub struct LogOptions {
    pub stdout: bool,
    pub stderr: bool,
    pub follow: bool,
    pub timestamps: bool,
    /// Number of lines from the end; `None` = all.
    pub tail: Option<usize>,
    /// Unix seconds (fractional).
    pub since: Option<f64>,
    pub until: Option<f64>,
}

#[derive(serde::Deserialize)]
struct Line {
    log: String,
    stream: String,
    time: String,
}

/// Parses `since`/`until`: unix seconds with optional fraction, or RFC 3339.
pub fn parse_ts(s: &str) -> Result<Option<f64>, ContainerError> {
    if s.is_empty() || s == "0" {
        return Ok(None);
    }
    if let Ok(v) = s.parse::<f64>() {
        return Ok(Some(v));
    }
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| Some(t.timestamp() as f64 + t.timestamp_subsec_nanos() as f64 / 1e9))
        .map_err(|_| ContainerError::InvalidParam(format!("invalid timestamp {s:?}")))
}

/// One stdcopy frame (or the raw payload with a tty).
pub fn frame(stream: u8, payload: &[u8], tty: bool) -> Bytes {
    if tty {
        return Bytes::copy_from_slice(payload);
    }
    let mut v = Vec::with_capacity(payload.len() + 8);
    v.extend_from_slice(&[stream, 0, 0, 0]);
    v.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    v.extend_from_slice(payload);
    Bytes::from(v)
}

struct Renderer {
    opts: LogOptions,
    tty: bool,
}

impl Renderer {
    fn render(&self, raw: &str) -> Option<Bytes> {
        let l: Line = serde_json::from_str(raw).ok()?;
        let stream = match l.stream.as_str() {
            "stdout" if self.opts.stdout => 1,
            "stderr" if self.opts.stderr => 2,
            _ => return None,
        };
        if self.opts.since.is_some() || self.opts.until.is_some() {
            let t = chrono::DateTime::parse_from_rfc3339(&l.time).ok()?;
            let ts = t.timestamp() as f64 + t.timestamp_subsec_nanos() as f64 / 1e9;
            if self.opts.since.is_some_and(|s| ts < s) || self.opts.until.is_some_and(|u| ts > u) {
                return None;
            }
        }
        let payload = if self.opts.timestamps {
            // dockerd prints RFC 3339 with exactly nine fraction digits.
            let t = chrono::DateTime::parse_from_rfc3339(&l.time)
                .map(|t| t.with_timezone(&chrono::Utc).format("%Y-%m-%dT%H:%M:%S%.9fZ").to_string())
                .unwrap_or(l.time);
            format!("{t} {}", l.log)
        } else {
            l.log
        };
        Some(frame(stream, payload.as_bytes(), self.tty))
    }
}

impl<R: Runtime> ContainerService<R> {
    /// Streams the log; the receiver ends when the log is done (or, with follow, when the container stops).
    pub fn logs(&self, key: &str, opts: LogOptions) -> Result<mpsc::Receiver<Bytes>, ContainerError> {
        let ctr = self.get(key)?;
        let rec = ctr.record();
        let cfg = super::logopts::log_config(&rec.host_config).unwrap_or_default();
        if cfg.driver == crate::runtime::options::LogDriver::None {
            return Err(ContainerError::LogsNotReadable);
        }
        let path = super::logopts::log_file(&super::Record::dir(&self.cfg.data_root, &rec.id), &rec.id, cfg.driver);
        let (tx, rx) = mpsc::channel(64);
        let mut gen = ctr.subscribe();
        let r = Renderer { tty: rec.tty(), opts };
        // Serves one request: it ends when the client goes (the receiver is dropped).
        tokio::spawn(async move {
            let files = cfg.files(&path);
            let older = &files[..files.len() - 1];
            let mut file = tokio::fs::File::open(&path).await.ok();
            let mut ino = inode(file.as_ref()).await;
            let mut pos = 0u64;
            if let Some(n) = r.opts.tail {
                // Read backwards: only the last n lines are held.
                let current = match file.as_ref() {
                    Some(f) => f.try_clone().await.ok(),
                    None => None,
                };
                let current = match current {
                    Some(f) => Some(f.into_std().await),
                    None => None,
                };
                let (older, r2) = (older.to_vec(), Renderer { tty: r.tty, opts: r.opts.clone() });
                let Ok((lines, end)) = tokio::task::spawn_blocking(move || {
                    let len = current.as_ref().and_then(|f| f.metadata().ok()).map_or(0, |m| m.len());
                    tail(&r2, &older, current.as_ref().map(|f| (f, len)), n)
                })
                .await
                else {
                    return;
                };
                for b in lines {
                    if tx.send(b).await.is_err() {
                        return;
                    }
                }
                pos = end;
            } else {
                for old in older {
                    if is_gz(old) {
                        let old = old.clone();
                        let data = tokio::task::spawn_blocking(move || gunzip(&old)).await.ok().flatten().unwrap_or_default();
                        for l in String::from_utf8_lossy(&data).lines() {
                            if let Some(b) = r.render(l) {
                                if tx.send(b).await.is_err() {
                                    return;
                                }
                            }
                        }
                    } else if let Ok(mut f) = tokio::fs::File::open(old).await {
                        if forward(&mut f, 0, &r, &tx).await.is_none() {
                            return;
                        }
                    }
                }
                if let Some(f) = file.as_mut() {
                    match forward(f, 0, &r, &tx).await {
                        Some(p) => pos = p,
                        None => return,
                    }
                }
            }
            if !r.opts.follow {
                return;
            }
            loop {
                let running = gen.borrow_and_update().running;
                if file.is_none() {
                    file = tokio::fs::File::open(&path).await.ok();
                    ino = inode(file.as_ref()).await;
                }
                if let Some(f) = file.as_mut() {
                    match forward(f, pos, &r, &tx).await {
                        Some(p) if p > pos => {
                            pos = p;
                            continue;
                        }
                        Some(_) => {}
                        None => return,
                    }
                }
                // The file was rotated (renamed away, or truncated with max-file=1): what was
                // read of it is all there is; the new file starts at 0.
                let now = tokio::fs::metadata(&path).await.ok();
                let renamed = now.as_ref().is_some_and(|m| Some(std::os::unix::fs::MetadataExt::ino(m)) != ino);
                if renamed || now.as_ref().is_some_and(|m| m.len() < pos) {
                    if renamed {
                        // Lines the old file got after the read above, before it was renamed.
                        if let Some(f) = file.as_mut() {
                            if forward(f, pos, &r, &tx).await.is_none() {
                                return;
                            }
                        }
                    }
                    file = tokio::fs::File::open(&path).await.ok();
                    ino = inode(file.as_ref()).await;
                    pos = 0;
                    continue;
                }
                if !running {
                    return;
                }
                if tx.is_closed() {
                    return;
                }
                tokio::select! {
                    _ = gen.changed() => {}
                    _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                }
            }
        });
        Ok(rx)
    }
}

const CHUNK: usize = 64 * 1024;

/// Sends the rendered complete lines of `f` from `pos` on, a chunk at a time; returns the
/// position after the last complete line (`None` once the receiver is gone).
async fn forward(f: &mut tokio::fs::File, mut pos: u64, r: &Renderer, tx: &mpsc::Sender<Bytes>) -> Option<u64> {
    if f.seek(SeekFrom::Start(pos)).await.is_err() {
        return Some(pos);
    }
    let mut pending: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = match f.read(&mut buf).await {
            Ok(0) | Err(_) => return Some(pos),
            Ok(n) => n,
        };
        pending.extend_from_slice(&buf[..n]);
        let Some(end) = pending.iter().rposition(|&b| b == b'\n').map(|i| i + 1) else { continue };
        for l in String::from_utf8_lossy(&pending[..end]).lines() {
            if let Some(b) = r.render(l) {
                if tx.send(b).await.is_err() {
                    return None;
                }
            }
        }
        pos += end as u64;
        pending.drain(..end);
    }
}

fn is_gz(p: &std::path::Path) -> bool {
    p.extension().is_some_and(|e| e == "gz")
}

/// A compressed rotated file (`compress=true`), whole: it is at most `max-size` unpacked.
fn gunzip(p: &std::path::Path) -> Option<Vec<u8>> {
    use std::io::Read;
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(p).ok()?).read_to_end(&mut out).ok()?;
    Some(out)
}

/// The rendered lines of `f` before `end`, newest first, until `out` holds `want`: read
/// backwards a chunk at a time.
fn backward(f: &std::fs::File, end: u64, r: &Renderer, want: usize, out: &mut Vec<Bytes>) {
    use std::os::unix::fs::FileExt;
    backward_with(|buf, at| f.read_exact_at(buf, at), end, r, want, out)
}

fn backward_with(read_at: impl Fn(&mut [u8], u64) -> std::io::Result<()>, end: u64, r: &Renderer, want: usize, out: &mut Vec<Bytes>) {
    let mut pos = end;
    let mut carry: Vec<u8> = Vec::new();
    while out.len() < want && pos > 0 {
        let start = pos.saturating_sub(CHUNK as u64);
        let mut buf = vec![0u8; (pos - start) as usize];
        if read_at(&mut buf, start).is_err() {
            return;
        }
        buf.extend_from_slice(&carry);
        pos = start;
        let mut parts: Vec<&[u8]> = buf.split(|b| *b == b'\n').collect();
        if parts.last().is_some_and(|p| p.is_empty()) {
            parts.pop();
        }
        // The first piece may be the end of a line that started in the chunk before.
        let first = if start > 0 && !parts.is_empty() { Some(parts.remove(0).to_vec()) } else { None };
        for line in parts.iter().rev() {
            if out.len() == want {
                return;
            }
            if let Some(b) = r.render(&String::from_utf8_lossy(line)) {
                out.push(b);
            }
        }
        carry = first.unwrap_or_default();
    }
}

/// `--tail n` over the rotated files and the current one (open, with its length): the lines in
/// order, and where the current file's complete lines end (where `follow` goes on).
fn tail(r: &Renderer, older: &[std::path::PathBuf], current: Option<(&std::fs::File, u64)>, n: usize) -> (Vec<Bytes>, u64) {
    use std::os::unix::fs::FileExt;
    let mut out = Vec::new();
    let mut end = 0;
    if let Some((f, len)) = current {
        // Up to the last newline: a partial last line waits for follow.
        let from = len.saturating_sub(CHUNK as u64);
        let mut buf = vec![0u8; (len - from) as usize];
        end = match f.read_exact_at(&mut buf, from) {
            Ok(()) => buf.iter().rposition(|&b| b == b'\n').map(|i| from + i as u64 + 1).unwrap_or(from),
            Err(_) => 0,
        };
        backward(f, end, r, n, &mut out);
    }
    for p in older.iter().rev() {
        if out.len() >= n {
            break;
        }
        if is_gz(p) {
            let Some(data) = gunzip(p) else { continue };
            let read_at = |buf: &mut [u8], at: u64| {
                let at = at as usize;
                buf.copy_from_slice(&data[at..at + buf.len()]);
                Ok(())
            };
            backward_with(read_at, data.len() as u64, r, n, &mut out);
        } else if let Ok(f) = std::fs::File::open(p) {
            let len = f.metadata().map(|m| m.len()).unwrap_or(0);
            backward(&f, len, r, n, &mut out);
        }
    }
    out.reverse();
    (out, end)
}

async fn inode(f: Option<&tokio::fs::File>) -> Option<u64> {
    Some(std::os::unix::fs::MetadataExt::ino(&f?.metadata().await.ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn tail_reads_backwards_across_chunks_and_files() {
        use std::io::Write;
        let d = tempfile::tempdir().unwrap();
        let line = |i: usize| {
            format!("{{\"log\":\"line {i} {}\\n\",\"stream\":\"stdout\",\"time\":\"2026-01-01T00:00:00Z\"}}\n", "x".repeat(i % 300))
        };
        let old = d.path().join("c.log.1");
        let cur = d.path().join("c.log");
        let mut f = std::fs::File::create(&old).unwrap();
        (0..1000).for_each(|i| f.write_all(line(i).as_bytes()).unwrap());
        let mut f = std::fs::File::create(&cur).unwrap();
        (1000..1500).for_each(|i| f.write_all(line(i).as_bytes()).unwrap());
        f.write_all(b"{\"log\":\"partial").unwrap();
        let r = Renderer { tty: true, opts: LogOptions { stdout: true, ..Default::default() } };
        let f = std::fs::File::open(&cur).unwrap();
        let len = f.metadata().unwrap().len();
        let text =
            |v: &[Bytes]| v.iter().map(|b| String::from_utf8_lossy(b).split(' ').take(2).collect::<Vec<_>>().join(" ")).collect::<Vec<_>>();
        let (v, end) = tail(&r, std::slice::from_ref(&old), Some((&f, len)), 600);
        assert_eq!(v.len(), 600);
        assert_eq!(text(&v[..1]), ["line 900"]);
        assert_eq!(text(&v[599..]), ["line 1499"]);
        assert_eq!(end, len - b"{\"log\":\"partial".len() as u64);
        let (v, _) = tail(&r, &[], Some((&f, len)), 3);
        assert_eq!(text(&v), ["line 1497", "line 1498", "line 1499"]);
        let (v, _) = tail(&r, std::slice::from_ref(&old), Some((&f, len)), 5000);
        assert_eq!(v.len(), 1500);
    }

    #[test]
    fn renders_frames_and_filters() {
        let r = Renderer { tty: false, opts: LogOptions { stdout: true, stderr: false, timestamps: true, ..Default::default() } };
        let b = r.render(r#"{"log":"hi\n","stream":"stdout","time":"2026-01-01T00:00:00.5Z"}"#).unwrap();
        assert_eq!(&b[..8], &[1, 0, 0, 0, 0, 0, 0, 34]);
        assert_eq!(&b[8..], b"2026-01-01T00:00:00.500000000Z hi\n");
        assert!(r.render(r#"{"log":"e\n","stream":"stderr","time":"2026-01-01T00:00:00Z"}"#).is_none());
        assert_eq!(parse_ts("1700000000.5").unwrap(), Some(1700000000.5));
        assert!(parse_ts("x").is_err());
    }
}
