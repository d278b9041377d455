//! TLS as classic Swarm's `--tls`/`--tlsverify`: one certificate and key, presented to clients
//! (server side) and to nodes (client certificates). With `--tlsverify` clients must show a
//! certificate signed by `--tlscacert` and nodes are verified against it; with `--tls` alone
//! node certificates are not verified.
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{DigitallySignedStruct, SignatureScheme};
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("could not read {what} {path}: {detail}")]
    Read { what: &'static str, path: PathBuf, detail: String },
    #[error("invalid TLS configuration: {0}")]
    Config(String),
}

/// The TLS flags of `swarm manage`.
#[derive(Debug, Clone, Default)]
pub struct TlsOptions {
    /// `--tlsverify`: verify clients and nodes against `ca`.
    pub verify: bool,
    pub ca: Option<PathBuf>,
    pub cert: PathBuf,
    pub key: PathBuf,
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
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

fn key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| TlsError::Read { what: "key", path: path.to_path_buf(), detail: e.to_string() })
}

fn roots(o: &TlsOptions) -> Result<rustls::RootCertStore, TlsError> {
    let ca_path = o.ca.as_ref().ok_or_else(|| TlsError::Config("--tlsverify needs --tlscacert".into()))?;
    let mut roots = rustls::RootCertStore::empty();
    for c in certs(ca_path, "CA certificate")? {
        roots.add(c).map_err(|e| TlsError::Config(format!("CA certificate {}: {e}", ca_path.display())))?;
    }
    Ok(roots)
}

/// The server side (listeners).
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

/// The client side (connections to nodes): our certificate as client certificate; nodes
/// verified against the CA with `--tlsverify`, not verified with `--tls` alone.
pub fn client_config(o: &TlsOptions) -> Result<rustls::ClientConfig, TlsError> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let builder = if o.verify {
        builder.with_root_certificates(roots(o)?)
    } else {
        builder.dangerous().with_custom_certificate_verifier(Arc::new(NoVerify(provider())))
    };
    let mut cfg = builder
        .with_client_auth_cert(certs(&o.cert, "certificate")?, key(&o.key)?)
        .map_err(|e| TlsError::Config(format!("client certificate and key: {e}")))?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(cfg)
}

/// A client configuration for plain-HTTP use (reqwest still wants one).
pub fn plain_client_config() -> rustls::ClientConfig {
    rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth()
}

/// `--tls` without `--tlsverify`: node certificates are accepted as they are (classic Swarm's
/// InsecureSkipVerify); signatures are still checked.
#[derive(Debug)]
struct NoVerify(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
