//! TLS for TCP listeners, as dockerd's `--tls`/`--tlsverify`: the server presents
//! `--tlscert`/`--tlskey`; with `--tlsverify` every client must show a certificate signed by
//! `--tlscacert`. Plain HTTP and unsigned clients fail the handshake.
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("could not read {what} {path}: {detail}")]
    Read { what: &'static str, path: PathBuf, detail: String },
    #[error("invalid TLS configuration: {0}")]
    Config(String),
}

/// The TLS flags of `swarm engine` (dockerd's names).
#[derive(Debug, Clone, Default)]
pub struct TlsOptions {
    /// `--tlsverify`: require and verify client certificates.
    pub verify: bool,
    pub ca: Option<PathBuf>,
    pub cert: PathBuf,
    pub key: PathBuf,
}

fn certs(path: &Path, what: &'static str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
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

/// Builds the rustls server configuration (ring provider).
pub fn server_config(o: &TlsOptions) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = certs(&o.cert, "certificate")?;
    let key = PrivateKeyDer::from_pem_file(&o.key)
        .map_err(|e| TlsError::Read { what: "key", path: o.key.clone(), detail: e.to_string() })?;
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let builder = if o.verify {
        let ca_path = o.ca.as_ref().ok_or_else(|| TlsError::Config("--tlsverify needs --tlscacert".into()))?;
        let mut roots = rustls::RootCertStore::empty();
        for c in certs(ca_path, "CA certificate")? {
            roots.add(c).map_err(|e| TlsError::Config(format!("CA certificate {}: {e}", ca_path.display())))?;
        }
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .map_err(|e| TlsError::Config(e.to_string()))?;
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    let mut cfg = builder.with_single_cert(chain, key).map_err(|e| TlsError::Config(format!("certificate and key: {e}")))?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}
