//! Exec routes (`/containers/{id}/exec`, `/exec/{id}/start|json|resize`), the hijacked exec
//! stream, and detach keys (shared with container attach).
use super::hijack;
use super::{ApiError, AppState, DockerJson, Params};
use crate::container::ExecIo;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bollard_stubs::models::{ExecConfig, ExecStartConfig};
use bytes::Bytes;
use serde_json::json;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

/// How long an exited exec's stream waits for more output while children of the process still
/// hold its pipes open. The stream usually ends at once, at the pipes' EOF; this only bounds a
/// background child's hold (counted from the exit, then from each chunk), and is long enough
/// that a loaded machine still delivers what the process wrote before it exited.
const EXIT_GRACE: Duration = Duration::from_secs(2);
/// Docker's default detach sequence: ctrl-p, ctrl-q.
pub const DEFAULT_DETACH_KEYS: &[u8] = &[16, 17];

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/containers/{id}/exec", post(create))
        .route("/exec/{id}/start", post(start))
        .route("/exec/{id}/json", get(inspect))
        .route("/exec/{id}/resize", post(resize))
}

/// Parses Docker's detach keys (`ctrl-p,ctrl-q`, `a,b`, `ctrl-@`); empty = the default.
pub fn parse_detach_keys(s: &str) -> Result<Vec<u8>, ApiError> {
    if s.is_empty() {
        return Ok(DEFAULT_DETACH_KEYS.to_vec());
    }
    let bad = || ApiError::bad_request(format!("Invalid detach keys ({s}) provided"));
    let mut out = vec![];
    for key in s.split(',') {
        let k = key.trim();
        if let Some(c) = k.strip_prefix("ctrl-") {
            let b = match c.as_bytes() {
                [b] if b.is_ascii_lowercase() => b - b'a' + 1,
                [b'@'] => 0,
                [b'['] => 27,
                [b'\\'] => 28,
                [b']'] => 29,
                [b'^'] => 30,
                [b'_'] => 31,
                _ => return Err(bad()),
            };
            out.push(b);
        } else if k.len() == 1 {
            out.push(k.as_bytes()[0]);
        } else {
            return Err(bad());
        }
    }
    Ok(out)
}

/// Docker's escape proxy: bytes that may start the detach sequence are held back until the
/// sequence completes (detach) or breaks (then they are passed on).
pub struct DetachScanner {
    keys: Vec<u8>,
    matched: usize,
}

impl DetachScanner {
    pub fn new(keys: Vec<u8>) -> Self {
        DetachScanner { keys, matched: 0 }
    }

    /// Appends what may be forwarded to `out`; true when the sequence is complete.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> bool {
        for &b in input {
            if !self.keys.is_empty() && b == self.keys[self.matched] {
                self.matched += 1;
                if self.matched == self.keys.len() {
                    self.matched = 0;
                    return true;
                }
                continue;
            }
            if self.matched > 0 {
                out.extend_from_slice(&self.keys[..self.matched]);
                self.matched = 0;
                if b == self.keys[0] {
                    self.matched = 1;
                    continue;
                }
            }
            out.push(b);
        }
        false
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum InputEnd {
    /// The client closed its side (the caller closes the process's stdin).
    Eof,
    /// The client typed the detach sequence.
    Detached,
    /// The process's stdin is gone.
    Closed,
}

/// Copies client input to `w` until EOF or the detach keys.
pub async fn copy_input<Rd: AsyncRead + Unpin, W: AsyncWrite + Unpin>(mut r: Rd, w: &mut W, keys: Vec<u8>) -> InputEnd {
    let mut scanner = DetachScanner::new(keys);
    let mut buf = vec![0u8; 32 * 1024];
    let mut out = Vec::with_capacity(buf.len());
    loop {
        let n = match r.read(&mut buf).await {
            Ok(0) => return InputEnd::Eof,
            Err(e) => {
                tracing::debug!(error = %e, "attach input ended");
                return InputEnd::Eof;
            }
            Ok(n) => n,
        };
        out.clear();
        let detached = scanner.feed(&buf[..n], &mut out);
        if !out.is_empty() {
            if let Err(e) = w.write_all(&out).await {
                tracing::debug!(error = %e, "attach input not delivered");
                return InputEnd::Closed;
            }
        }
        if detached {
            return InputEnd::Detached;
        }
    }
}

async fn create(
    State(st): State<AppState>,
    Path(id): Path<String>,
    DockerJson(body): DockerJson<ExecConfig>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    parse_detach_keys(body.detach_keys.as_deref().unwrap_or(""))?;
    let exec_id = st.containers.exec_create(&id, body)?;
    Ok((StatusCode::CREATED, Json(json!({ "Id": exec_id }))))
}

async fn start(State(st): State<AppState>, Path(id): Path<String>, req: Request) -> Result<Response, ApiError> {
    let (parts, body) = req.into_parts();
    let bytes =
        axum::body::to_bytes(body, 1 << 20).await.map_err(|e| ApiError::bad_request(format!("failed to read request body: {e}")))?;
    let cfg: ExecStartConfig = if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        ExecStartConfig::default()
    } else {
        serde_json::from_slice(&bytes).map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))?
    };
    let req = Request::from_parts(parts, Body::empty());
    let detach = cfg.detach.unwrap_or(false);
    if !detach && !hijack::wants_upgrade(&req) {
        return Err(ApiError::bad_request("exec start needs a connection upgrade (Upgrade: tcp) unless Detach is set"));
    }
    if detach {
        st.containers.exec_start(&id, true).await?;
        return Ok(StatusCode::OK.into_response());
    }
    let (_, keys) = st.containers.exec_check(&id)?;
    // dockerd frames the stream by the start request's Tty, whatever the exec was created
    // with: multiplexed unless it says true (a tty's single stream then goes as stdout).
    let tty = cfg.tty.unwrap_or(false);
    let keys = parse_detach_keys(&keys).unwrap_or_else(|_| DEFAULT_DETACH_KEYS.to_vec());
    // The process starts while the 101 goes out; its output waits in the pipes until the
    // stream pumps it (so nothing precedes the 101 on the wire).
    let svc = st.containers.clone();
    // Owned by its request: the hijacked stream below awaits it.
    let started = tokio::spawn(async move { svc.exec_start(&id, false).await });
    Ok(hijack::upgrade(req, move |client| async move {
        let started = started.await.unwrap_or_else(|e| Err(crate::container::ContainerError::Task { op: "exec start", source: e }));
        match started {
            Ok(mut io) => {
                io.tty = tty;
                pump(client, io, keys).await
            }
            Err(e) => {
                // After the 101, dockerd reports errors as text on the stream.
                let (_, mut cw) = tokio::io::split(client);
                let _ = cw.write_all(&framed(1, format!("{e}\r\n").as_bytes(), tty)).await;
                let _ = cw.shutdown().await;
            }
        }
    }))
}

fn framed(stream: u8, data: &[u8], tty: bool) -> Bytes {
    crate::container::frame_output(stream, data, tty)
}

async fn read_into(mut src: crate::runtime::FdStream, stream: u8, tty: bool, tx: mpsc::Sender<Bytes>) {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        match src.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if tx.send(framed(stream, &buf[..n], tty)).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// The exec stream: process output to the client (framed unless tty), client input to the
/// process; ends once the output is drained and the exit code is recorded, or on detach.
async fn pump(client: hijack::Upgraded, mut io: ExecIo, keys: Vec<u8>) {
    let (cr, mut cw) = tokio::io::split(client);
    if let Some(msg) = io.failure.take() {
        let _ = cw.write_all(&framed(1, format!("{msg}\r\n").as_bytes(), io.tty)).await;
        let _ = cw.shutdown().await;
        return;
    }
    let (tx, mut rx) = mpsc::channel::<Bytes>(16);
    let mut readers = vec![];
    for (src, stream) in [(io.stdout.take(), 1u8), (io.stderr.take(), 2u8)] {
        if let Some(src) = src {
            // Owned by its hijacked stream: they end with the process's output.
            readers.push(tokio::spawn(read_into(src, stream, io.tty, tx.clone())));
        }
    }
    drop(tx);
    let (det_tx, mut det_rx) = tokio::sync::oneshot::channel::<()>();
    // Owned by its hijacked stream (aborted when the exec's stream ends).
    let input = match io.stdin.take() {
        Some(mut stdin) => tokio::spawn(async move {
            if copy_input(cr, &mut stdin, keys).await == InputEnd::Detached {
                let _ = det_tx.send(());
            }
            // Dropping stdin closes it: the process reads EOF.
        }),
        None => tokio::spawn(async move {
            let _keep = (cr, det_tx);
            std::future::pending::<()>().await
        }),
    };
    let mut done = io.done.clone();
    let mut grace: Option<tokio::time::Instant> = None;
    let mut input_ended = false;
    loop {
        let deadline = grace.unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(86_400));
        tokio::select! {
            chunk = rx.recv() => match chunk {
                Some(b) => {
                    // Output still coming after the exit: the grace counts from the last chunk.
                    if grace.is_some() {
                        grace = Some(tokio::time::Instant::now() + EXIT_GRACE);
                    }
                    if cw.write_all(&b).await.is_err() {
                        // The client is gone: let go of the process (a tty hangs up).
                        input.abort();
                        readers.iter().for_each(|r| r.abort());
                        return;
                    }
                }
                None => break,
            },
            r = &mut det_rx, if !input_ended => {
                if r.is_ok() {
                    input.abort();
                    readers.iter().for_each(|r| r.abort());
                    let _ = cw.shutdown().await;
                    return;
                }
                input_ended = true;
            }
            r = async { done.wait_for(|d| *d).await.map(|_| ()) }, if grace.is_none() => {
                if r.is_err() { break; }
                grace = Some(tokio::time::Instant::now() + EXIT_GRACE);
            }
            _ = tokio::time::sleep_until(deadline), if grace.is_some() => break,
        }
    }
    // The client reads the exit code right after the stream ends: record it first.
    let _ = io.done.wait_for(|d| *d).await.map(|_| ());
    input.abort();
    readers.iter().for_each(|r| r.abort());
    let _ = cw.flush().await;
    let _ = cw.shutdown().await;
}

async fn inspect(State(st): State<AppState>, Path(id): Path<String>) -> Result<Json<serde_json::Value>, ApiError> {
    Ok(Json(st.containers.exec_inspect(&id)?))
}

fn size(p: &Params) -> Result<(u16, u16), ApiError> {
    let h = p.int("h")?.unwrap_or(0);
    let w = p.int("w")?.unwrap_or(0);
    let ok = |v: i64| u16::try_from(v).map_err(|_| ApiError::bad_request(format!("invalid size: {v}")));
    Ok((ok(h)?, ok(w)?))
}

async fn resize(State(st): State<AppState>, Path(id): Path<String>, p: Params) -> Result<StatusCode, ApiError> {
    let (h, w) = size(&p)?;
    st.containers.exec_resize(&id, h, w)?;
    Ok(StatusCode::OK)
}

/// `POST /containers/{id}/resize`.
pub async fn resize_container(State(st): State<AppState>, Path(id): Path<String>, p: Params) -> Result<StatusCode, ApiError> {
    let (h, w) = size(&p)?;
    st.containers.resize(&id, h, w).await?;
    Ok(StatusCode::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detach_keys_parse() {
        assert_eq!(parse_detach_keys("").unwrap(), vec![16, 17]);
        assert_eq!(parse_detach_keys("ctrl-a,x,ctrl-@,ctrl-_").unwrap(), vec![1, b'x', 0, 31]);
        assert!(parse_detach_keys("ctrl-1").is_err());
        assert!(parse_detach_keys("abc").is_err());
    }

    #[test]
    fn scanner_holds_back_partial_sequences() {
        let mut s = DetachScanner::new(vec![16, 17]);
        let mut out = vec![];
        assert!(!s.feed(b"ab\x10", &mut out));
        assert_eq!(out, b"ab");
        assert!(!s.feed(b"c", &mut out));
        assert_eq!(out, b"ab\x10c");
        out.clear();
        assert!(!s.feed(b"\x10\x10", &mut out));
        assert_eq!(out, b"\x10");
        assert!(s.feed(b"\x11rest", &mut out));
        assert_eq!(out, b"\x10");
    }

    #[tokio::test]
    async fn copy_input_stops_at_detach() {
        let mut sink = Vec::new();
        let end = copy_input(&b"hello\x10\x11ignored"[..], &mut sink, vec![16, 17]).await;
        assert_eq!(end, InputEnd::Detached);
        assert_eq!(sink, b"hello");
        let mut sink = Vec::new();
        assert_eq!(copy_input(&b"x"[..], &mut sink, vec![16, 17]).await, InputEnd::Eof);
    }
}
