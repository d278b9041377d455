//! TLS as classic Swarm's `--tls`/`--tlsverify`: one certificate and key, presented to clients
//! (server side) and to nodes (client certificates). With `--tlsverify` clients must show a
//! certificate signed by `--tlscacert` and nodes are verified against it; with `--tls` alone
//! node certificates are not verified.
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use std::sync::Arc;

pub use apiserve::{certs, key, provider, roots, server_config, TlsError, TlsOptions};

/// The client side (connections to nodes and to the primary manager): our certificate as
/// client certificate; peers verified against the CA whenever one is given (`--tlsverify`, or
/// `--tls --tlscacert`), not verified with `--tls` alone and no CA (classic Swarm's
/// InsecureSkipVerify, which it also applied when a CA was given: not here).
pub fn client_config(o: &TlsOptions) -> Result<rustls::ClientConfig, TlsError> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let builder = if o.verify || o.ca.is_some() {
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
