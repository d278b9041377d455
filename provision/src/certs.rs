//! TLS material as Docker Machine lays it out: a CA and a client certificate in the store's
//! `certs/` (created once, under a lock, so parallel creates share them — Docker Machine races
//! here, its issue #3634), and a server certificate per machine with the host's IP,
//! `localhost` and the `--tls-san` values. Keys are ECDSA P-256 (rcgen, ring).
use crate::fsutil::{write_atomic, FileLock};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    SanType, SerialNumber,
};
use std::io::Read;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use time::{Duration, OffsetDateTime};

/// Validity of every certificate (Docker Machine: 1080 days).
pub const VALIDITY_DAYS: i64 = 1080;
/// Certificates expiring sooner than this are treated as expired and re-issued.
pub const RENEW_BEFORE_DAYS: i64 = 30;

#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("generating certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("{path}: not a valid PEM certificate: {detail}")]
    Parse { path: PathBuf, detail: String },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CertError + '_ {
    move |source| CertError::Io { path: path.to_path_buf(), source }
}

/// `$USER`, or `unknown` (Docker Machine's organisation prefix).
pub fn user_org() -> String {
    std::env::var("USER").ok().filter(|u| !u.is_empty()).unwrap_or_else(|| "unknown".into())
}

/// The four global files.
#[derive(Debug, Clone)]
pub struct CaPaths {
    pub ca_cert: PathBuf,
    pub ca_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

impl CaPaths {
    pub fn in_dir(dir: &Path) -> CaPaths {
        CaPaths {
            ca_cert: dir.join("ca.pem"),
            ca_key: dir.join("ca-key.pem"),
            client_cert: dir.join("cert.pem"),
            client_key: dir.join("key.pem"),
        }
    }
    fn lock_path(&self) -> PathBuf {
        self.ca_cert.with_file_name(".certs.lock")
    }
}

/// What [`bootstrap`] did.
#[derive(Debug, Default, PartialEq)]
pub struct Bootstrapped {
    pub created_ca: bool,
    pub created_client: bool,
}

/// Creates the CA and the client certificate unless they exist and are valid for at least
/// [`RENEW_BEFORE_DAYS`]; `force_client` re-issues the client certificate anyway. Holds an
/// exclusive lock on `certs/.certs.lock` throughout, so concurrent callers (threads or
/// processes) end up with one CA and one client certificate.
pub fn bootstrap(p: &CaPaths, force_client: bool) -> Result<Bootstrapped, CertError> {
    let lock = p.lock_path();
    let _l = FileLock::acquire(&lock).map_err(io(&lock))?;
    let mut done = Bootstrapped::default();
    let ca_ok =
        [&p.ca_cert, &p.ca_key].iter().all(|f| f.is_file()) && cert_info(&p.ca_cert).is_ok_and(|i| i.valid_for_days(RENEW_BEFORE_DAYS));
    if !ca_ok {
        tracing::info!("creating CA: {}", p.ca_cert.display());
        let (cert, key) = make_ca(&user_org())?;
        write_atomic(&p.ca_key, key.as_bytes(), 0o600).map_err(io(&p.ca_key))?;
        write_atomic(&p.ca_cert, cert.as_bytes(), 0o600).map_err(io(&p.ca_cert))?;
        done.created_ca = true;
    }
    let client_ok = !done.created_ca
        && !force_client
        && [&p.client_cert, &p.client_key].iter().all(|f| f.is_file())
        && cert_info(&p.client_cert).is_ok_and(|i| i.valid_for_days(RENEW_BEFORE_DAYS));
    if !client_ok {
        tracing::info!("creating client certificate: {}", p.client_cert.display());
        let org = format!("{}.{}", user_org(), "<bootstrap>");
        let (cert, key) = issue(p, &org, &[], false, true)?;
        write_atomic(&p.client_key, key.as_bytes(), 0o600).map_err(io(&p.client_key))?;
        write_atomic(&p.client_cert, cert.as_bytes(), 0o600).map_err(io(&p.client_cert))?;
        done.created_client = true;
    }
    Ok(done)
}

fn random_serial() -> SerialNumber {
    let mut b = [0u8; 16];
    let _ = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut b));
    b[0] &= 0x7f; // positive
    if b[0] == 0 {
        b[0] = 1;
    }
    SerialNumber::from_slice(&b)
}

fn base_params(org: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, org);
    params.distinguished_name = dn;
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::minutes(5);
    params.not_after = now + Duration::days(VALIDITY_DAYS);
    params.serial_number = Some(random_serial());
    params
}

fn make_ca(org: &str) -> Result<(String, String), CertError> {
    let mut params = base_params(org);
    params.distinguished_name.push(DnType::CommonName, format!("{org} flotilla machine CA"));
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let key = KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    Ok((cert.pem(), key.serialize_pem()))
}

fn read(path: &Path) -> Result<String, CertError> {
    std::fs::read_to_string(path).map_err(io(path))
}

/// Issues a leaf certificate signed by the CA at `p`: server (ServerAuth, plus ClientAuth when
/// `client_auth`, e.g. a swarm manager that also talks to nodes) or client (`client` = true).
/// `sans` are IP addresses or DNS names. Returns (cert PEM, key PEM).
pub fn issue(p: &CaPaths, org: &str, sans: &[String], client_auth: bool, client: bool) -> Result<(String, String), CertError> {
    let ca_key = KeyPair::from_pem(&read(&p.ca_key)?).map_err(|e| CertError::Parse { path: p.ca_key.clone(), detail: e.to_string() })?;
    let issuer = Issuer::from_ca_cert_pem(&read(&p.ca_cert)?, ca_key)
        .map_err(|e| CertError::Parse { path: p.ca_cert.clone(), detail: e.to_string() })?;
    let mut params = base_params(org);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment, KeyUsagePurpose::KeyAgreement];
    params.use_authority_key_identifier_extension = true;
    if client {
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    } else {
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        if client_auth {
            params.extended_key_usages.push(ExtendedKeyUsagePurpose::ClientAuth);
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    for s in sans.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
        if !seen.insert(s.to_string()) {
            continue;
        }
        let san = match s.parse::<IpAddr>() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => SanType::DnsName(s.try_into()?),
        };
        params.subject_alt_names.push(san);
    }
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &issuer)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// Writes a server certificate for a machine: SANs = `extra_sans` + `ip` + `localhost`.
pub fn write_server_cert(
    p: &CaPaths,
    machine: &str,
    ip: &str,
    extra_sans: &[String],
    client_auth: bool,
    cert_path: &Path,
    key_path: &Path,
) -> Result<(), CertError> {
    let mut sans: Vec<String> = extra_sans.to_vec();
    sans.push(ip.to_string());
    sans.push("localhost".into());
    let (cert, key) = issue(p, &format!("{}.{machine}", user_org()), &sans, client_auth, false)?;
    write_atomic(key_path, key.as_bytes(), 0o600).map_err(io(key_path))?;
    write_atomic(cert_path, cert.as_bytes(), 0o600).map_err(io(cert_path))
}

/// What matters about an existing certificate.
#[derive(Debug, Clone)]
pub struct CertInfo {
    pub not_after: i64,
    /// IP addresses and DNS names from the SAN extension, as text.
    pub sans: Vec<String>,
    pub issuer: String,
    pub subject: String,
}

impl CertInfo {
    pub fn valid_for_days(&self, days: i64) -> bool {
        let now = OffsetDateTime::now_utc().unix_timestamp();
        self.not_after > now + days * 86400
    }
    /// True when `host` (IP or name) is among the SANs.
    pub fn covers(&self, host: &str) -> bool {
        match host.parse::<IpAddr>() {
            Ok(ip) => self.sans.iter().any(|s| s.parse::<IpAddr>().is_ok_and(|x| x == ip)),
            Err(_) => self.sans.iter().any(|s| s.eq_ignore_ascii_case(host)),
        }
    }
}

/// Parses the first certificate of a PEM file.
pub fn cert_info(path: &Path) -> Result<CertInfo, CertError> {
    let data = std::fs::read(path).map_err(io(path))?;
    let perr = |detail: String| CertError::Parse { path: path.to_path_buf(), detail };
    let (_, pem) = x509_parser::pem::parse_x509_pem(&data).map_err(|e| perr(e.to_string()))?;
    let x = pem.parse_x509().map_err(|e| perr(e.to_string()))?;
    let mut sans = vec![];
    if let Ok(Some(ext)) = x.subject_alternative_name() {
        for g in &ext.value.general_names {
            match g {
                x509_parser::extensions::GeneralName::DNSName(d) => sans.push(d.to_string()),
                x509_parser::extensions::GeneralName::IPAddress(b) => match b.len() {
                    4 => sans.push(IpAddr::from(<[u8; 4]>::try_from(*b).unwrap_or_default()).to_string()),
                    16 => sans.push(IpAddr::from(<[u8; 16]>::try_from(*b).unwrap_or_default()).to_string()),
                    _ => {}
                },
                _ => {}
            }
        }
    }
    Ok(CertInfo { not_after: x.validity().not_after.timestamp(), sans, issuer: x.issuer().to_string(), subject: x.subject().to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bootstrap_once_then_server_cert() {
        let d = tempfile::tempdir().unwrap();
        let p = CaPaths::in_dir(&d.path().join("certs"));
        assert_eq!(bootstrap(&p, false).unwrap(), Bootstrapped { created_ca: true, created_client: true });
        let ca1 = std::fs::read(&p.ca_cert).unwrap();
        assert_eq!(bootstrap(&p, false).unwrap(), Bootstrapped::default());
        assert_eq!(std::fs::read(&p.ca_cert).unwrap(), ca1);
        let c1 = std::fs::read(&p.client_cert).unwrap();
        assert_eq!(bootstrap(&p, true).unwrap(), Bootstrapped { created_ca: false, created_client: true });
        assert_ne!(std::fs::read(&p.client_cert).unwrap(), c1, "--client-certs re-issues");
        let mode = |f: &Path| std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(f).unwrap().permissions()) & 0o777;
        assert_eq!(mode(&p.ca_key), 0o600);
        assert_eq!(mode(&p.client_key), 0o600);

        let (sc, sk) = (d.path().join("server.pem"), d.path().join("server-key.pem"));
        write_server_cert(&p, "m1", "10.1.2.3", &["foo.bar.tld".into(), "10.42.42.42".into()], true, &sc, &sk).unwrap();
        let i = cert_info(&sc).unwrap();
        assert!(i.covers("10.1.2.3") && i.covers("localhost") && i.covers("foo.bar.tld") && i.covers("10.42.42.42"));
        assert!(!i.covers("10.1.2.4"));
        assert!(i.valid_for_days(1000) && !i.valid_for_days(1100));
        assert!(i.subject.contains(".m1"), "{}", i.subject);
        assert_eq!(i.issuer, cert_info(&p.ca_cert).unwrap().subject);
        // openssl agrees that the chain verifies, when it is installed.
        if let Ok(o) =
            std::process::Command::new("openssl").arg("verify").arg("-CAfile").arg(&p.ca_cert).arg(&sc).arg(&p.client_cert).output()
        {
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
        }
    }

    #[test]
    fn parallel_bootstrap_yields_one_ca() {
        let d = tempfile::tempdir().unwrap();
        let p = CaPaths::in_dir(&d.path().join("certs"));
        let results: Vec<Bootstrapped> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..6).map(|_| s.spawn(|| bootstrap(&p, false).unwrap())).collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(results.iter().filter(|b| b.created_ca).count(), 1);
        assert_eq!(cert_info(&p.client_cert).unwrap().issuer, cert_info(&p.ca_cert).unwrap().subject);
    }
}
