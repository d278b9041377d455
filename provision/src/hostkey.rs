//! SSH host keys, trusted on first use and pinned per machine: the first connection records
//! the key the host presents in `machines/NAME/known_hosts` (OpenSSH's format, mode 0600, so
//! the external `ssh`/`scp`/`rsync` check it too); every later connection must present the
//! same key, or it stops with both fingerprints (`SHA256:…`, as OpenSSH prints them).
//! `regenerate-certs --reset-host-key` (or `rm`) forgets the record.
use base64::Engine as _;
use sha2::Digest;
use std::path::{Path, PathBuf};

/// The record's file name inside the machine's directory.
pub const FILE: &str = "known_hosts";

#[derive(Debug, thiserror::Error)]
pub enum HostKeyError {
    #[error(
        "the SSH host key of machine \"{machine}\" ({addr}) has changed: it presented {presented}, but {recorded} was recorded \
         on first use in {file}. Someone may be intercepting the connection (man-in-the-middle), or the host was reinstalled \
         or its key replaced. If you trust the new key, forget the old one with `machine regenerate-certs --reset-host-key {machine}`"
    )]
    Changed { machine: String, addr: String, recorded: String, presented: String, file: PathBuf },
    #[error("the SSH host of {addr} presented no host key")]
    Missing { addr: String },
    #[error("SSH host key record {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("SSH host key record {path}: line {line} is not `HOST TYPE BASE64-KEY`: remove the file with `machine regenerate-certs --reset-host-key`")]
    Corrupt { path: PathBuf, line: usize },
}

/// A public host key: its type (`ssh-ed25519`, `ssh-rsa`, `ecdsa-sha2-nistp256`, …) and
/// its wire blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostKey {
    pub kind: String,
    pub blob: Vec<u8>,
}

impl HostKey {
    /// Reads the type name from the blob (an SSH string first).
    pub fn from_blob(blob: &[u8]) -> Option<HostKey> {
        let len = u32::from_be_bytes(blob.get(..4)?.try_into().ok()?) as usize;
        let kind = std::str::from_utf8(blob.get(4..4 + len)?).ok()?;
        (!kind.is_empty()).then(|| HostKey { kind: kind.to_string(), blob: blob.to_vec() })
    }

    /// `SHA256:` and the unpadded base64 of the blob's sha256 (OpenSSH's fingerprint).
    pub fn fingerprint(&self) -> String {
        format!("SHA256:{}", base64::engine::general_purpose::STANDARD_NO_PAD.encode(sha2::Sha256::digest(&self.blob)))
    }

    /// `ED25519 key SHA256:…` as OpenSSH names a key in its messages.
    pub fn describe(&self) -> String {
        let short = match self.kind.as_str() {
            "ssh-ed25519" => "ED25519",
            "ssh-rsa" => "RSA",
            "ssh-dss" => "DSA",
            k if k.starts_with("ecdsa-") => "ECDSA",
            k => k,
        };
        format!("{short} key {}", self.fingerprint())
    }

    /// Signature algorithms that authenticate with this key type, best first (libssh2 names).
    pub fn algorithms(&self) -> Vec<&str> {
        match self.kind.as_str() {
            "ssh-rsa" => vec!["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"],
            k => vec![k],
        }
    }

    /// One `known_hosts` line for `pattern`.
    pub fn line(&self, pattern: &str) -> String {
        format!("{pattern} {} {}\n", self.kind, base64::engine::general_purpose::STANDARD.encode(&self.blob))
    }
}

/// `ip` for port 22, else `[ip]:port` (OpenSSH's known_hosts host pattern).
pub fn pattern(host: &str, port: u16) -> String {
    if port == 22 {
        host.to_string()
    } else {
        format!("[{host}]:{port}")
    }
}

/// A machine's record (the file need not exist yet).
#[derive(Debug, Clone, PartialEq)]
pub struct KnownHosts {
    pub machine: String,
    pub path: PathBuf,
}

impl KnownHosts {
    pub fn in_dir(machine: &str, dir: &Path) -> KnownHosts {
        KnownHosts { machine: machine.into(), path: dir.join(FILE) }
    }

    fn io(&self) -> impl FnOnce(std::io::Error) -> HostKeyError + '_ {
        |source| HostKeyError::Io { path: self.path.clone(), source }
    }

    /// The recorded key and the host pattern it is filed under, if any.
    pub fn load(&self) -> Result<Option<(String, HostKey)>, HostKeyError> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.io()(e)),
        };
        for (i, l) in text.lines().enumerate() {
            let l = l.trim();
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            let corrupt = || HostKeyError::Corrupt { path: self.path.clone(), line: i + 1 };
            let mut f = l.split_whitespace();
            let (Some(pat), Some(kind), Some(b64)) = (f.next(), f.next(), f.next()) else { return Err(corrupt()) };
            let blob = base64::engine::general_purpose::STANDARD.decode(b64).map_err(|_| corrupt())?;
            let key = HostKey::from_blob(&blob).filter(|k| k.kind == kind).ok_or_else(corrupt)?;
            return Ok(Some((pat.to_string(), key)));
        }
        Ok(None)
    }

    /// Writes the record (0600), filed under `pattern`.
    pub fn record(&self, key: &HostKey, pattern: &str) -> Result<(), HostKeyError> {
        crate::fsutil::write_atomic(&self.path, key.line(pattern).as_bytes(), 0o600).map_err(self.io())
    }

    /// Forgets the record; returns the key it held.
    pub fn reset(&self) -> Result<Option<HostKey>, HostKeyError> {
        let old = self.load().ok().flatten().map(|(_, k)| k);
        match std::fs::remove_file(&self.path) {
            Ok(()) => Ok(old),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.io()(e)),
        }
    }

    /// Checks the key `host:port` presented against the record: the first use records it,
    /// a different key is [`HostKeyError::Changed`]. The record follows the machine's
    /// current address (the pattern is rewritten, the key never). Returns what happened.
    pub fn verify(&self, host: &str, port: u16, presented: &HostKey) -> Result<Verified, HostKeyError> {
        let pat = pattern(host, port);
        match self.load()? {
            Some((_, recorded)) if &recorded != presented => Err(HostKeyError::Changed {
                machine: self.machine.clone(),
                addr: crate::driver::generic::join_host_port(host, port),
                recorded: recorded.describe(),
                presented: presented.describe(),
                file: self.path.clone(),
            }),
            Some((p, _)) if p == pat => Ok(Verified::Known),
            Some(_) => {
                self.record(presented, &pat)?;
                Ok(Verified::Known)
            }
            None => {
                self.record(presented, &pat)?;
                tracing::info!(machine = %self.machine, key = %presented.describe(), "SSH host key trusted on first use");
                Ok(Verified::Recorded(presented.describe()))
            }
        }
    }
}

/// The outcome of a successful [`KnownHosts::verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verified {
    /// The key matches the record (or nothing was to be checked).
    Known,
    /// First use: this key (as [`HostKey::describe`] puts it) was recorded.
    Recorded(String),
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn key(kind: &str, body: &[u8]) -> HostKey {
        let mut blob = (kind.len() as u32).to_be_bytes().to_vec();
        blob.extend_from_slice(kind.as_bytes());
        blob.extend_from_slice(body);
        HostKey::from_blob(&blob).unwrap()
    }

    #[test]
    fn fingerprint_matches_openssh() {
        // `ssh-keygen -lf` of this public key prints SHA256:+xeLSfjJUPOoRlrrPF9346+HSk0cu1rwmikVVskhjvU
        let line = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA9uJRcDKUN2Kgbp62yVCQgxRnTUXx9KRhzEo0y+dqEa";
        let b64 = line.split_whitespace().nth(1).unwrap();
        let k = HostKey::from_blob(&base64::engine::general_purpose::STANDARD.decode(b64).unwrap()).unwrap();
        assert_eq!(k.kind, "ssh-ed25519");
        assert_eq!(k.fingerprint(), "SHA256:+xeLSfjJUPOoRlrrPF9346+HSk0cu1rwmikVVskhjvU");
        assert_eq!(k.line("10.0.0.5"), format!("10.0.0.5 {line}\n"));
        assert!(k.describe().starts_with("ED25519 key SHA256:"));
    }

    #[test]
    fn first_use_records_then_pins() {
        let d = tempfile::tempdir().unwrap();
        let kh = KnownHosts::in_dir("m1", d.path());
        let (a, b) = (key("ssh-ed25519", b"one"), key("ssh-ed25519", b"two"));
        assert_eq!(kh.verify("10.0.0.5", 22, &a).unwrap(), Verified::Recorded(a.describe()));
        assert_eq!(std::fs::metadata(&kh.path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(kh.verify("10.0.0.5", 22, &a).unwrap(), Verified::Known);
        let e = kh.verify("10.0.0.5", 22, &b).unwrap_err().to_string();
        assert!(e.contains(&a.fingerprint()) && e.contains(&b.fingerprint()) && e.contains("--reset-host-key m1"), "{e}");
        // A new address keeps the key and refiles it.
        assert_eq!(kh.verify("10.0.0.6", 2222, &a).unwrap(), Verified::Known);
        assert_eq!(kh.load().unwrap().unwrap().0, "[10.0.0.6]:2222");
        assert_eq!(kh.reset().unwrap(), Some(a));
        assert_eq!(kh.verify("10.0.0.6", 2222, &b).unwrap(), Verified::Recorded(b.describe()));
        std::fs::write(&kh.path, "junk\n").unwrap();
        assert!(matches!(kh.load(), Err(HostKeyError::Corrupt { line: 1, .. })));
        assert_eq!(key("ssh-rsa", b"x").algorithms(), ["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"]);
    }
}
