//! What the engine's and the manager's API servers share: TLS material loading, the
//! dockerd-style server configuration (`--tls`/`--tlsverify`), and the TLS accept loop that
//! serves an axum app with upgrades (attach/exec hijacks).
mod error;
pub use error::ApiError;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// A `-H` address: `unix:///path`, `tcp://ip:port`, bare `ip:port` or `:port` (all addresses).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    Unix(PathBuf),
    Tcp(std::net::SocketAddr),
}

/// Why a `-H` address does not parse (`{0}` is the address as given).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ListenError {
    #[error("invalid host {0:?}: unix socket path is empty")]
    EmptyUnixPath(String),
    #[error("invalid host {0:?}: only unix:// and tcp:// are supported")]
    UnsupportedScheme(String),
    #[error("invalid host {0:?}: expected tcp://IP:PORT or unix:///path")]
    BadAddress(String),
}

impl Listen {
    pub fn parse(s: &str) -> Result<Self, ListenError> {
        if let Some(p) = s.strip_prefix("unix://") {
            if p.is_empty() {
                return Err(ListenError::EmptyUnixPath(s.to_string()));
            }
            return Ok(Listen::Unix(PathBuf::from(p)));
        }
        if s.contains("://") && !s.starts_with("tcp://") {
            return Err(ListenError::UnsupportedScheme(s.to_string()));
        }
        let rest = s.strip_prefix("tcp://").unwrap_or(s);
        if rest.starts_with('/') {
            return Ok(Listen::Unix(PathBuf::from(rest)));
        }
        let rest = rest.trim_end_matches('/');
        let rest = if rest.starts_with(':') { format!("0.0.0.0{rest}") } else { rest.to_string() };
        let rest = if rest.starts_with("localhost:") { rest.replacen("localhost", "127.0.0.1", 1) } else { rest };
        rest.parse().map(Listen::Tcp).map_err(|_| ListenError::BadAddress(s.to_string()))
    }

    pub fn is_loopback(&self) -> bool {
        match self {
            Listen::Unix(_) => true,
            Listen::Tcp(a) => a.ip().is_loopback(),
        }
    }
}

impl std::fmt::Display for Listen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Listen::Unix(p) => write!(f, "unix://{}", p.display()),
            Listen::Tcp(a) => write!(f, "tcp://{a}"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("could not read {what} {path}: {detail}")]
    Read { what: &'static str, path: PathBuf, detail: String },
    #[error("invalid TLS configuration: {0}")]
    Config(String),
}

/// The TLS flags (dockerd's and classic Swarm's names).
#[derive(Debug, Clone, Default)]
pub struct TlsOptions {
    /// `--tlsverify`: require and verify peer certificates against `ca`.
    pub verify: bool,
    pub ca: Option<PathBuf>,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TlsOptions {
    /// The `--tls/--tlsverify/--tlscacert/--tlscert/--tlskey` flags, checked together.
    pub fn from_flags(
        tls: bool,
        verify: bool,
        ca: Option<PathBuf>,
        cert: Option<PathBuf>,
        key: Option<PathBuf>,
    ) -> Result<Option<TlsOptions>, TlsError> {
        if tls || verify {
            let (Some(cert), Some(key)) = (cert, key) else {
                return Err(TlsError::Config("--tls/--tlsverify need --tlscert and --tlskey".into()));
            };
            if verify && ca.is_none() {
                return Err(TlsError::Config("--tlsverify needs --tlscacert (the CA that signs the peers' certificates)".into()));
            }
            return Ok(Some(TlsOptions { verify, ca, cert, key }));
        }
        if cert.is_some() || key.is_some() || ca.is_some() {
            return Err(TlsError::Config("--tlscert/--tlskey/--tlscacert need --tls or --tlsverify".into()));
        }
        Ok(None)
    }
}

pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The PEM certificates in `path` (at least one).
pub fn certs(path: &Path, what: &'static str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let read = |detail: String| TlsError::Read { what, path: path.to_path_buf(), detail };
    let v: Vec<_> =
        CertificateDer::pem_file_iter(path).map_err(|e| read(e.to_string()))?.collect::<Result<_, _>>().map_err(|e| read(e.to_string()))?;
    if v.is_empty() {
        return Err(read("no PEM certificate found".into()));
    }
    Ok(v)
}

pub fn key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| TlsError::Read { what: "key", path: path.to_path_buf(), detail: e.to_string() })
}

/// The CA of `--tlscacert` as a root store.
pub fn roots(o: &TlsOptions) -> Result<rustls::RootCertStore, TlsError> {
    let ca_path = o.ca.as_ref().ok_or_else(|| TlsError::Config("--tlsverify needs --tlscacert".into()))?;
    let mut roots = rustls::RootCertStore::empty();
    for c in certs(ca_path, "CA certificate")? {
        roots.add(c).map_err(|e| TlsError::Config(format!("CA certificate {}: {e}", ca_path.display())))?;
    }
    Ok(roots)
}

/// Server side: present `cert`/`key`; with `verify`, require client certificates signed by `ca`.
pub fn server_config(o: &TlsOptions) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let builder = if o.verify {
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots(o)?), provider())
            .build()
            .map_err(|e| TlsError::Config(e.to_string()))?;
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    let mut cfg = builder
        .with_single_cert(certs(&o.cert, "certificate")?, key(&o.key)?)
        .map_err(|e| TlsError::Config(format!("certificate and key: {e}")))?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// Sets TCP_NODELAY on an accepted API connection, as dockerd has it (Go sets it on every TCP
/// connection): a large answer's last segment does not wait for the client's delayed ACK
/// (Nagle). Every TCP listener of the API, plain (`listener.tap_io(set_nodelay)`) or TLS.
pub fn set_nodelay(tcp: &mut tokio::net::TcpStream) {
    if let Err(e) = tcp.set_nodelay(true) {
        tracing::debug!(error = %e, "TCP_NODELAY not set");
    }
}

/// Accepts TLS connections and serves `app` on each (upgrades included, for attach/exec).
pub async fn serve_tls<S>(l: tokio::net::TcpListener, acceptor: tokio_rustls::TlsAcceptor, app: S, token: CancellationToken)
where
    S: tower::Service<axum::extract::Request, Response = axum::response::Response, Error = std::convert::Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use tower::ServiceExt;
    loop {
        let (mut tcp, peer) = tokio::select! {
            r = l.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = token.cancelled() => return,
        };
        set_nodelay(&mut tcp);
        let acceptor = acceptor.clone();
        let app = app.clone();
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(std::time::Duration::from_secs(10), acceptor.accept(tcp)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::info!(%peer, error = %e, "TLS handshake refused");
                    return;
                }
                Err(_) => return,
            };
            // The client's address, as `axum::serve(.., into_make_service_with_connect_info)` gives it.
            let svc = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let mut req = req.map(axum::body::Body::new);
                req.extensions_mut().insert(axum::extract::ConnectInfo(peer));
                app.clone().oneshot(req)
            });
            if let Err(e) = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection_with_upgrades(TokioIo::new(tls), svc)
                .await
            {
                tracing::debug!(%peer, error = %e, "connection ended");
            }
        });
    }
}

/// The Docker Engine API version the engine and the manager advertise (what dockerd 20.10
/// serves; docker 28 negotiates down to it).
pub const API_VERSION: &str = "1.41";
/// The oldest API version they accept.
pub const MIN_API_VERSION: &str = "1.24";

/// Compares `a.b` version strings numerically.
pub fn version_lt(a: &str, b: &str) -> bool {
    let p = |s: &str| -> (u32, u32) {
        let mut it = s.split('.').map(|x| x.parse().unwrap_or(0));
        (it.next().unwrap_or(0), it.next().unwrap_or(0))
    };
    p(a) < p(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A plain listener tapped with `set_nodelay` hands over connections without Nagle.
    #[tokio::test]
    async fn api_connections_have_no_nagle_delay() {
        use axum::serve::{Listener, ListenerExt};
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let mut l = l.tap_io(set_nodelay);
        let _client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (accepted, _) = l.accept().await;
        assert!(accepted.nodelay().unwrap());
    }
    #[test]
    fn parses_hosts() {
        assert_eq!(Listen::parse("unix:///tmp/x.sock").unwrap(), Listen::Unix("/tmp/x.sock".into()));
        assert_eq!(Listen::parse("tcp://127.0.0.1:2375").unwrap(), Listen::Tcp("127.0.0.1:2375".parse().unwrap()));
        assert_eq!(Listen::parse("tcp://:2375").unwrap(), Listen::Tcp("0.0.0.0:2375".parse().unwrap()));
        assert_eq!(Listen::parse("localhost:1").unwrap(), Listen::Tcp("127.0.0.1:1".parse().unwrap()));
        assert_eq!(Listen::parse("tcp://nohost").unwrap_err(), ListenError::BadAddress("tcp://nohost".into()));
        assert_eq!(Listen::parse("fd://").unwrap_err().to_string(), "invalid host \"fd://\": only unix:// and tcp:// are supported");
        assert_eq!(Listen::parse("unix://").unwrap_err(), ListenError::EmptyUnixPath("unix://".into()));
    }
    #[test]
    fn tls_flags_are_checked_together() {
        assert!(TlsOptions::from_flags(false, false, None, None, None).unwrap().is_none());
        assert!(TlsOptions::from_flags(true, false, None, Some("/c".into()), None).unwrap_err().to_string().contains("--tlskey"));
        assert!(TlsOptions::from_flags(false, true, None, Some("/c".into()), Some("/k".into())).is_err());
        assert!(TlsOptions::from_flags(false, false, None, Some("/c".into()), None).is_err());
        assert!(TlsOptions::from_flags(false, true, Some("/ca".into()), Some("/c".into()), Some("/k".into())).unwrap().unwrap().verify);
    }
}
