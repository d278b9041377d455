//! A minimal HTTP/1.1 client (one request per connection, `Connection: close`) over TCP or a
//! unix socket: enough for the registry API and for raw requests to the engine that the docker
//! CLI would never send (malformed bodies).
use anyhow::{bail, Context, Result};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// First header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn json(&self) -> Result<serde_json::Value> {
        serde_json::from_slice(&self.body).with_context(|| format!("body is not JSON: {}", self.text()))
    }
}

/// A request: method, path (with query), extra headers, body.
pub struct Request<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub headers: &'a [(&'a str, &'a str)],
    pub body: &'a [u8],
}

fn send<S: Read + Write>(mut s: S, host: &str, req: &Request) -> Result<Response> {
    let mut head =
        format!("{} {} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nUser-Agent: flotilla-testground\r\n", req.method, req.path);
    for (k, v) in req.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if !req.body.is_empty() || matches!(req.method, "POST" | "PUT" | "PATCH") {
        head.push_str(&format!("Content-Length: {}\r\n", req.body.len()));
    }
    head.push_str("\r\n");
    // One write: a server that answers from the head alone may close before a separate body
    // write arrives, and the client would see a broken pipe instead of its answer.
    let mut wire = head.into_bytes();
    wire.extend_from_slice(req.body);
    s.write_all(&wire)?;
    s.flush()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).context("reading response")?;
    parse(&raw, req.method == "HEAD")
}

/// Parses a complete response (read until EOF).
pub fn parse(raw: &[u8], head_only: bool) -> Result<Response> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n").context("no end of headers in response")?;
    let head = std::str::from_utf8(&raw[..end]).context("non-UTF-8 headers")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status: u16 =
        status_line.split(' ').nth(1).and_then(|s| s.parse().ok()).with_context(|| format!("bad status line {status_line:?}"))?;
    let headers: Vec<(String, String)> =
        lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_string(), v.trim().to_string())).collect();
    let rest = &raw[end + 4..];
    let find = |n: &str| headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(n)).map(|(_, v)| v.clone());
    let body = if head_only {
        Vec::new()
    } else if find("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        dechunk(rest)?
    } else if let Some(len) = find("content-length").and_then(|v| v.parse::<usize>().ok()) {
        rest[..len.min(rest.len())].to_vec()
    } else {
        rest.to_vec()
    };
    Ok(Response { status, headers, body })
}

fn dechunk(mut data: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = data.windows(2).position(|w| w == b"\r\n") else { bail!("truncated chunk header") };
        let size_str = std::str::from_utf8(&data[..eol])?.split(';').next().unwrap_or("").trim().to_string();
        let size = usize::from_str_radix(&size_str, 16).with_context(|| format!("bad chunk size {size_str:?}"))?;
        data = &data[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        if data.len() < size {
            bail!("truncated chunk");
        }
        out.extend_from_slice(&data[..size]);
        data = data.get(size + 2..).unwrap_or_default();
    }
}

/// One request to `addr` (`host:port`) over TCP.
pub fn tcp(addr: &str, req: &Request) -> Result<Response> {
    let s = TcpStream::connect(addr).with_context(|| format!("connect {addr}"))?;
    s.set_read_timeout(Some(Duration::from_secs(120)))?;
    send(s, addr, req)
}

/// One request over the unix socket at `path` (Host: localhost, like the docker CLI).
pub fn unix(path: &Path, req: &Request) -> Result<Response> {
    let s = UnixStream::connect(path).with_context(|| format!("connect {}", path.display()))?;
    s.set_read_timeout(Some(Duration::from_secs(120)))?;
    send(s, "localhost", req)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_and_chunked() {
        let r = parse(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-A: b\r\n\r\nhiEXTRA", false).unwrap();
        assert_eq!((r.status, r.body.as_slice(), r.header("x-a")), (200, &b"hi"[..], Some("b")));
        let r =
            parse(b"HTTP/1.1 400 Bad Request\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n", false).unwrap();
        assert_eq!((r.status, r.text().as_str()), (400, "abcde"));
        let r = parse(b"HTTP/1.1 101 UPGRADED\r\n\r\n", true).unwrap();
        assert!(r.body.is_empty());
    }

    #[test]
    fn talks_to_a_local_server() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let t = std::thread::spawn(move || {
            let (mut c, _) = l.accept().unwrap();
            let mut buf = Vec::new();
            while !buf.ends_with(b"abc") {
                let mut chunk = [0u8; 4096];
                let n = c.read(&mut chunk).unwrap();
                assert!(n > 0, "eof before body");
                buf.extend_from_slice(&chunk[..n]);
            }
            let req = String::from_utf8_lossy(&buf).into_owned();
            c.write_all(b"HTTP/1.1 201 Created\r\nContent-Length: 4\r\n\r\ndone").unwrap();
            req
        });
        let r = tcp(&addr, &Request { method: "PUT", path: "/x?y=1", headers: &[("A", "b")], body: b"abc" }).unwrap();
        let req = t.join().unwrap();
        assert!(
            req.starts_with("PUT /x?y=1 HTTP/1.1\r\n") && req.contains("Content-Length: 3\r\n") && req.ends_with("\r\n\r\nabc"),
            "{req}"
        );
        assert_eq!((r.status, r.text().as_str()), (201, "done"));
    }
}
