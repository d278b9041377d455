//! What the engine's and the manager's API servers share: TLS material loading, the
//! dockerd-style server configuration (`--tls`/`--tlsverify`), and the TLS accept loop that
//! serves an axum app with upgrades (attach/exec hijacks).
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

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

pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The PEM certificates in `path` (at least one).
pub fn certs(path: &Path, what: &'static str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let read = |detail: String| TlsError::Read { what, path: path.to_path_buf(), detail };
    let v: Vec<_> = CertificateDer::pem_file_iter(path)
        .map_err(|e| read(e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| read(e.to_string()))?;
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
        let (tcp, peer) = tokio::select! {
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
            let svc = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                app.clone().oneshot(req.map(axum::body::Body::new))
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
