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
        let path = super::Record::dir(&self.cfg.data_root, &rec.id).join(format!("{}-json.log", rec.id));
        let (tx, rx) = mpsc::channel(64);
        let mut gen = ctr.subscribe();
        let r = Renderer { tty: rec.tty(), opts };
        tokio::spawn(async move {
            // The rotated files (oldest first), then the current one, which follow keeps reading.
            let mut out: Vec<Bytes> = vec![];
            for old in cfg.files(&path).iter().filter(|p| **p != path) {
                if let Ok(buf) = tokio::fs::read(old).await {
                    out.extend(String::from_utf8_lossy(&buf).lines().filter_map(|l| r.render(l)));
                }
            }
            let mut file = tokio::fs::File::open(&path).await.ok();
            let mut ino = inode(file.as_ref()).await;
            let mut buf = Vec::new();
            if let Some(f) = file.as_mut() {
                let _ = f.read_to_end(&mut buf).await;
            }
            let end = buf.iter().rposition(|&b| b == b'\n').map(|i| i + 1).unwrap_or(0);
            let mut pos = end as u64;
            let text = String::from_utf8_lossy(&buf[..end]);
            out.extend(text.lines().filter_map(|l| r.render(l)));
            if let Some(n) = r.opts.tail {
                let skip = out.len().saturating_sub(n);
                out.drain(..skip);
            }
            for b in out {
                if tx.send(b).await.is_err() {
                    return;
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
                let mut chunk = Vec::new();
                if let Some(f) = file.as_mut() {
                    if f.seek(SeekFrom::Start(pos)).await.is_ok() {
                        let _ = f.read_to_end(&mut chunk).await;
                    }
                }
                if let Some(end) = chunk.iter().rposition(|&b| b == b'\n').map(|i| i + 1) {
                    pos += end as u64;
                    for l in String::from_utf8_lossy(&chunk[..end]).lines() {
                        if let Some(b) = r.render(l) {
                            if tx.send(b).await.is_err() {
                                return;
                            }
                        }
                    }
                    continue;
                }
                // The file was rotated (renamed away, or truncated with max-file=1): what was
                // read of it is all there is; the new file starts at 0.
                let now = tokio::fs::metadata(&path).await.ok();
                let rotated = now.as_ref().is_some_and(|m| Some(std::os::unix::fs::MetadataExt::ino(m)) != ino || m.len() < pos);
                if rotated {
                    // Lines the old file got after the read above, before it was renamed.
                    let mut rest = Vec::new();
                    if let Some(f) = file.as_mut() {
                        if now.as_ref().is_some_and(|m| Some(std::os::unix::fs::MetadataExt::ino(m)) != ino) && f.seek(SeekFrom::Start(pos)).await.is_ok() {
                            let _ = f.read_to_end(&mut rest).await;
                        }
                    }
                    for l in String::from_utf8_lossy(&rest).lines() {
                        if let Some(b) = r.render(l) {
                            if tx.send(b).await.is_err() {
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

async fn inode(f: Option<&tokio::fs::File>) -> Option<u64> {
    Some(std::os::unix::fs::MetadataExt::ino(&f?.metadata().await.ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
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
