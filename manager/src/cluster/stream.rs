//! A long `GET` whose answer is a stream that lasts (a node's `/events`), on its own connection
//! with one small buffer: a hyper connection holds about 16 KiB of buffers, which at 10,000
//! nodes, one stream each, is 160 MiB for lines of a few hundred bytes. The connection counts
//! against the pool's bound like any other. HTTP/1.1 only, as the Docker API is; the body may be
//! chunked, sized by `Content-Length`, or last until the node closes it.
use super::client::error_message;
use super::pool::{Io, Pool, PoolError};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::OwnedSemaphorePermit;

/// The longest answer head accepted.
const MAX_HEAD: usize = 64 << 10;
/// Bytes read from the socket at a time.
const READ_SIZE: usize = 2048;
/// The most of an error answer's body read for its message.
const MAX_ERROR_BODY: usize = 64 << 10;

#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("{0}")]
    Connect(#[from] PoolError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("invalid answer: {0}")]
    Invalid(String),
    #[error("the answer's headers did not come within {0:?}")]
    HeadersTimeout(std::time::Duration),
    /// The node answered with an error status.
    #[error("{message}")]
    Status { status: u16, message: String },
}

enum Framing {
    /// In a chunk with this many bytes left (`None`: a chunk-size line is next).
    Chunked(Option<usize>),
    Length(u64),
    UntilClose,
}

/// The body of a streamed answer, read chunk by chunk.
pub struct StreamBody {
    io: Box<dyn Io>,
    /// Bytes read and not yet returned.
    buf: Vec<u8>,
    framing: Framing,
    done: bool,
    _permit: OwnedSemaphorePermit,
}

/// Sends `GET path` to `addr` on a connection of its own and reads the answer's head; a
/// non-2xx answer is [`StreamError::Status`] with the node's message.
pub async fn get(pool: &Arc<Pool>, addr: &str, path: &str) -> Result<StreamBody, StreamError> {
    let permit = pool.slot().await?;
    let mut io = pool.dial(addr).await?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: swarm\r\nAccept: */*\r\n\r\n");
    let head = async {
        io.write_all(req.as_bytes()).await?;
        io.flush().await?;
        read_head(&mut io).await
    };
    let limit = pool.headers_timeout();
    let (status, framing, rest) = tokio::time::timeout(limit, head).await.map_err(|_| StreamError::HeadersTimeout(limit))??;
    let mut body = StreamBody { io, buf: rest, framing, done: false, _permit: permit };
    if !(200..300).contains(&status) {
        // The message is read within the headers' bound too: a node that answers an error and
        // then holds the connection open does not hold up the caller.
        let mut text = vec![];
        let read = async {
            while text.len() < MAX_ERROR_BODY {
                match body.next().await {
                    Some(Ok(c)) => text.extend_from_slice(&c),
                    _ => break,
                }
            }
        };
        let _ = tokio::time::timeout(limit, read).await;
        return Err(StreamError::Status { status, message: error_message(&text) });
    }
    Ok(body)
}

/// Reads up to the end of the head; returns the status, the body's framing and the bytes of
/// the body read with the head.
async fn read_head(io: &mut Box<dyn Io>) -> Result<(u16, Framing, Vec<u8>), StreamError> {
    let mut buf = Vec::with_capacity(READ_SIZE);
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let (status, framing) = parse_head(&buf[..end])?;
            return Ok((status, framing, buf.split_off(end + 4)));
        }
        if buf.len() > MAX_HEAD {
            return Err(StreamError::Invalid(format!("an answer head longer than {MAX_HEAD} bytes")));
        }
        let mut chunk = [0u8; READ_SIZE];
        let n = io.read(&mut chunk).await?;
        if n == 0 {
            return Err(StreamError::Invalid("the node closed the connection before answering".into()));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn parse_head(head: &[u8]) -> Result<(u16, Framing), StreamError> {
    let head = std::str::from_utf8(head).map_err(|_| StreamError::Invalid("an answer head that is not text".into()))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = match status_line.split(' ').collect::<Vec<_>>().as_slice() {
        [v, code, ..] if v.starts_with("HTTP/1.") => code.parse::<u16>().ok(),
        _ => None,
    }
    .ok_or_else(|| StreamError::Invalid(format!("status line {status_line:?}")))?;
    let mut framing = Framing::UntilClose;
    for line in lines {
        let Some((k, v)) = line.split_once(':') else {
            return Err(StreamError::Invalid(format!("header line {line:?}")));
        };
        let v = v.trim();
        if k.eq_ignore_ascii_case("transfer-encoding") && v.to_ascii_lowercase().ends_with("chunked") {
            framing = Framing::Chunked(None);
        } else if k.eq_ignore_ascii_case("content-length") && !matches!(framing, Framing::Chunked(_)) {
            let n = v.parse().map_err(|_| StreamError::Invalid(format!("Content-Length {v:?}")))?;
            framing = Framing::Length(n);
        }
    }
    if status == 204 || status == 304 {
        framing = Framing::Length(0);
    }
    Ok((status, framing))
}

impl StreamBody {
    /// The next piece of the body; `None` at its end.
    pub async fn next(&mut self) -> Option<Result<Vec<u8>, StreamError>> {
        if self.done {
            return None;
        }
        let r = self.next_inner().await;
        if !matches!(r, Some(Ok(_))) {
            self.done = true;
        }
        r
    }

    async fn fill(&mut self) -> Result<usize, StreamError> {
        let mut chunk = [0u8; READ_SIZE];
        let n = self.io.read(&mut chunk).await?;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n)
    }

    /// Takes up to `max` buffered bytes, keeping the buffer small once drained.
    fn take(&mut self, max: usize) -> Vec<u8> {
        let n = max.min(self.buf.len());
        let out = self.buf.drain(..n).collect();
        if self.buf.is_empty() && self.buf.capacity() > READ_SIZE {
            self.buf = Vec::new();
        }
        out
    }

    async fn next_inner(&mut self) -> Option<Result<Vec<u8>, StreamError>> {
        loop {
            match self.framing {
                Framing::Length(0) => return None,
                Framing::Length(left) if !self.buf.is_empty() => {
                    let out = self.take(usize::try_from(left).unwrap_or(usize::MAX));
                    self.framing = Framing::Length(left - out.len() as u64);
                    return Some(Ok(out));
                }
                Framing::UntilClose if !self.buf.is_empty() => return Some(Ok(self.take(usize::MAX))),
                // The CRLF after a chunk's data (with fewer than 2 bytes buffered, more are read).
                Framing::Chunked(Some(0)) if self.buf.len() >= 2 => {
                    if &self.buf[..2] != b"\r\n" {
                        return Some(Err(StreamError::Invalid("a chunk not followed by CRLF".into())));
                    }
                    self.buf.drain(..2);
                    self.framing = Framing::Chunked(None);
                    continue;
                }
                Framing::Chunked(Some(left)) if left > 0 && !self.buf.is_empty() => {
                    let out = self.take(left);
                    self.framing = Framing::Chunked(Some(left - out.len()));
                    return Some(Ok(out));
                }
                Framing::Chunked(None) => {
                    if let Some(nl) = self.buf.windows(2).position(|w| w == b"\r\n") {
                        let line = String::from_utf8_lossy(&self.buf[..nl]).into_owned();
                        let size = line.split(';').next().unwrap_or_default().trim();
                        let Ok(size) = usize::from_str_radix(size, 16) else {
                            return Some(Err(StreamError::Invalid(format!("chunk size {line:?}"))));
                        };
                        self.buf.drain(..nl + 2);
                        if size == 0 {
                            return None;
                        }
                        self.framing = Framing::Chunked(Some(size));
                        continue;
                    }
                    if self.buf.len() > 1024 {
                        return Some(Err(StreamError::Invalid("a chunk-size line longer than 1024 bytes".into())));
                    }
                }
                _ => {}
            }
            match self.fill().await {
                Ok(0) if matches!(self.framing, Framing::UntilClose) => return None,
                Ok(0) => return Some(Err(StreamError::Invalid("the node closed the connection in the middle of the answer".into()))),
                Ok(_) => {}
                Err(e) => return Some(Err(e)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    /// A node that answers one request with `answer`, sent in pieces of `piece` bytes.
    async fn node(answer: Vec<u8>, piece: usize) -> String {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut req = vec![0u8; 1024];
            let _ = s.read(&mut req).await.unwrap();
            for p in answer.chunks(piece) {
                s.write_all(p).await.unwrap();
                s.flush().await.unwrap();
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
        });
        addr
    }

    async fn body_of(answer: &[u8], piece: usize) -> Result<Vec<u8>, StreamError> {
        let addr = node(answer.to_vec(), piece).await;
        let pool = Arc::new(Pool::new(None, 4));
        let mut b = get(&pool, &addr, "/events").await?;
        let mut out = vec![];
        while let Some(c) = b.next().await {
            out.extend_from_slice(&c?);
        }
        Ok(out)
    }

    #[tokio::test]
    async fn reads_chunked_sized_and_close_delimited_bodies_in_any_pieces() {
        let chunked = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n\
            8\r\n{\"a\":1}\n\r\n9;ext=1\r\n{\"b\":22}\n\r\n0\r\n\r\n";
        let sized = b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\n{\"a\":1}\n";
        let close = b"HTTP/1.1 200 OK\r\n\r\n{\"a\":1}\n{\"b\":22}\n";
        for piece in [1, 3, 7, 4096] {
            assert_eq!(body_of(chunked, piece).await.unwrap(), b"{\"a\":1}\n{\"b\":22}\n", "chunked, pieces of {piece}");
            assert_eq!(body_of(sized, piece).await.unwrap(), b"{\"a\":1}\n", "sized, pieces of {piece}");
            assert_eq!(body_of(close, piece).await.unwrap(), b"{\"a\":1}\n{\"b\":22}\n", "until close, pieces of {piece}");
        }
    }

    #[tokio::test]
    async fn an_error_answer_carries_the_nodes_message_and_a_broken_one_is_an_error() {
        let nf = b"HTTP/1.1 404 Not Found\r\nContent-Length: 28\r\n\r\n{\"message\":\"page not found\"}";
        assert!(matches!(body_of(nf, 5).await, Err(StreamError::Status { status: 404, message }) if message == "page not found"));
        let cut = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n{\"a\":1}";
        assert!(matches!(body_of(cut, 4).await, Err(StreamError::Invalid(_))), "cut in the middle of a chunk");
        let bad = b"SSH-2.0-OpenSSH\r\n\r\n";
        assert!(matches!(body_of(bad, 64).await, Err(StreamError::Invalid(_))));
    }
}
