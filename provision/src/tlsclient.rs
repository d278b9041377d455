//! A small blocking TLS client for machine's own checks against an engine: the handshake
//! check Docker Machine runs before `env`/`config`, and `GET /version` for `ls`/`version`.
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum TlsCheckError {
    #[error("{0}")]
    Config(String),
    #[error("dial tcp {addr}: {detail}")]
    Dial { addr: String, detail: String },
    /// The server's certificate does not name the address (e.g. the host's IP changed).
    #[error("x509: certificate is not valid for {0}")]
    NameMismatch(String),
    #[error("remote error: {0}")]
    Tls(String),
    #[error("{0}")]
    Http(String),
}

/// Client configuration with the CA to trust and our client certificate.
pub fn client_config(ca: &Path, cert: &Path, key: &Path) -> Result<Arc<rustls::ClientConfig>, TlsCheckError> {
    let cfgerr = |p: &Path, e: String| TlsCheckError::Config(format!("{}: {e}", p.display()));
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).map_err(|e| cfgerr(ca, e.to_string()))? {
        roots.add(c.map_err(|e| cfgerr(ca, e.to_string()))?).map_err(|e| cfgerr(ca, e.to_string()))?;
    }
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| cfgerr(cert, e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| cfgerr(cert, e.to_string()))?;
    let k = PrivateKeyDer::from_pem_file(key).map_err(|e| cfgerr(key, e.to_string()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsCheckError::Config(e.to_string()))?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, k)
        .map_err(|e| TlsCheckError::Config(e.to_string()))?;
    Ok(Arc::new(cfg))
}

fn connect(
    cfg: &Arc<rustls::ClientConfig>,
    host: &str,
    port: u16,
    timeout: Duration,
) -> Result<rustls::StreamOwned<rustls::ClientConnection, TcpStream>, TlsCheckError> {
    let addr = crate::driver::generic::join_host_port(host, port);
    let dial = |detail: String| TlsCheckError::Dial { addr: addr.clone(), detail };
    let sa = addr.to_socket_addrs().map_err(|e| dial(e.to_string()))?.next().ok_or_else(|| dial("no address".into()))?;
    let tcp = TcpStream::connect_timeout(&sa, timeout).map_err(|e| dial(e.to_string()))?;
    let _ = tcp.set_read_timeout(Some(timeout));
    let _ = tcp.set_write_timeout(Some(timeout));
    let name = ServerName::try_from(host.to_string()).map_err(|e| TlsCheckError::Config(format!("server name {host}: {e}")))?;
    let conn = rustls::ClientConnection::new(cfg.clone(), name).map_err(|e| TlsCheckError::Config(e.to_string()))?;
    let mut s = rustls::StreamOwned::new(conn, tcp);
    while s.conn.is_handshaking() {
        if let Err(e) = s.conn.complete_io(&mut s.sock) {
            return Err(classify(e, host));
        }
    }
    Ok(s)
}

fn classify(e: std::io::Error, host: &str) -> TlsCheckError {
    let inner = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()).cloned();
    match inner {
        Some(rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName))
        | Some(rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForNameContext { .. })) => {
            TlsCheckError::NameMismatch(host.to_string())
        }
        Some(other) => TlsCheckError::Tls(other.to_string()),
        None => TlsCheckError::Tls(e.to_string()),
    }
}

/// Docker Machine's check: a TLS handshake (server verified, client cert presented).
pub fn handshake(cfg: &Arc<rustls::ClientConfig>, host: &str, port: u16, timeout: Duration) -> Result<(), TlsCheckError> {
    let mut s = connect(cfg, host, port, timeout)?;
    s.conn.send_close_notify();
    let _ = s.flush();
    Ok(())
}

/// `GET path` over TLS; returns (status, body).
pub fn get(cfg: &Arc<rustls::ClientConfig>, host: &str, port: u16, path: &str, timeout: Duration) -> Result<(u16, String), TlsCheckError> {
    let mut s = connect(cfg, host, port, timeout)?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: flotilla-machine\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).map_err(|e| classify(e, host))?;
    let mut buf = Vec::new();
    match s.read_to_end(&mut buf) {
        Ok(_) => {}
        // Servers that close without close_notify: keep what arrived.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !buf.is_empty() => {}
        Err(e) => return Err(classify(e, host)),
    }
    parse_response(&buf)
}

fn parse_response(buf: &[u8]) -> Result<(u16, String), TlsCheckError> {
    let text = String::from_utf8_lossy(buf);
    let (head, body) = text.split_once("\r\n\r\n").ok_or_else(|| TlsCheckError::Http("malformed HTTP response".into()))?;
    let status: u16 =
        head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).ok_or_else(|| TlsCheckError::Http("malformed status line".into()))?;
    let chunked =
        head.lines().any(|l| l.to_ascii_lowercase().starts_with("transfer-encoding:") && l.to_ascii_lowercase().contains("chunked"));
    let body = if chunked { dechunk(body) } else { body.to_string() };
    Ok((status, body))
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// The engine's version (`vX.Y.Z` as `ls` shows it) from `GET /version`.
pub fn docker_version(cfg: &Arc<rustls::ClientConfig>, host: &str, port: u16, timeout: Duration) -> Result<String, TlsCheckError> {
    let (status, body) = get(cfg, host, port, "/version", timeout)?;
    if status != 200 {
        return Err(TlsCheckError::Http(format!("GET /version: status {status}: {}", body.trim())));
    }
    let v: serde_json::Value = serde_json::from_str(&body).map_err(|e| TlsCheckError::Http(format!("GET /version: {e}")))?;
    let ver = v["Version"].as_str().unwrap_or("").to_string();
    Ok(if ver.starts_with('v') { ver } else { format!("v{ver}") })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses() {
        assert_eq!(parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}").unwrap(), (200, "{}".into()));
        let c = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
        assert_eq!(parse_response(c).unwrap(), (200, "abcde".into()));
        assert!(parse_response(b"garbage").is_err());
    }

    #[test]
    fn dial_error_names_the_address() {
        let d = tempfile::tempdir().unwrap();
        let p = crate::certs::CaPaths::in_dir(d.path());
        crate::certs::bootstrap(&p, false).unwrap();
        let cfg = client_config(&p.ca_cert, &p.client_cert, &p.client_key).unwrap();
        let e = handshake(&cfg, "127.0.0.1", 1, Duration::from_secs(1)).unwrap_err();
        assert!(e.to_string().starts_with("dial tcp 127.0.0.1:1: "), "{e}");
    }
}
