//! Throw-away TLS material made with the `openssl` CLI: a CA, a server certificate for
//! 127.0.0.1/localhost and a client certificate, laid out as `DOCKER_CERT_PATH` expects
//! (`ca.pem`, `cert.pem`, `key.pem`) plus `server-cert.pem`/`server-key.pem`.
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

pub struct Certs {
    pub dir: tempfile::TempDir,
}

fn openssl(dir: &Path, args: &[&str]) -> Result<()> {
    let o = Command::new("openssl").args(args).current_dir(dir).output().context("running openssl")?;
    if !o.status.success() {
        bail!("openssl {args:?}: {}", String::from_utf8_lossy(&o.stderr));
    }
    Ok(())
}

fn leaf(dir: &Path, ca: &str, name: &str, cn: &str, ext: &str) -> Result<()> {
    let key = format!("{name}-key.pem");
    let csr = format!("{name}.csr");
    let crt = format!("{name}-cert.pem");
    let extfile = format!("{name}.ext");
    std::fs::write(dir.join(&extfile), ext)?;
    openssl(dir, &["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", &key])?;
    openssl(dir, &["req", "-new", "-key", &key, "-subj", &format!("/CN={cn}"), "-out", &csr])?;
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &format!("{ca}-key.pem"),
            "-CAcreateserial",
            "-days",
            "2",
            "-out",
            &crt,
            "-extfile",
            &extfile,
        ],
    )
}

fn ca(dir: &Path, name: &str) -> Result<()> {
    openssl(dir, &["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", &format!("{name}-key.pem")])?;
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-new",
            "-key",
            &format!("{name}-key.pem"),
            "-subj",
            &format!("/CN={name}"),
            "-days",
            "2",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-out",
            &format!("{name}.pem"),
        ],
    )
}

impl Certs {
    /// CA `ca.pem`, server `server-{cert,key}.pem`, client `cert.pem`/`key.pem`, and a second,
    /// untrusted CA's client `rogue-{cert,key}.pem`.
    pub fn generate() -> Result<Certs> {
        Certs::generate_for(&[])
    }

    /// As [`Certs::generate`], with the server certificate also valid for `ips`.
    pub fn generate_for(ips: &[&str]) -> Result<Certs> {
        let dir = tempfile::Builder::new().prefix("flotilla-tls-").tempdir()?;
        let d = dir.path();
        ca(d, "ca")?;
        let san: String = ips.iter().map(|ip| format!(",IP:{ip}")).collect();
        leaf(d, "ca", "server", "localhost", &format!("subjectAltName=IP:127.0.0.1,DNS:localhost{san}\nextendedKeyUsage=serverAuth\n"))?;
        leaf(d, "ca", "client", "client", "extendedKeyUsage=clientAuth\n")?;
        std::fs::rename(d.join("client-cert.pem"), d.join("cert.pem"))?;
        std::fs::rename(d.join("client-key.pem"), d.join("key.pem"))?;
        ca(d, "rogueca")?;
        leaf(d, "rogueca", "rogue", "rogue", "extendedKeyUsage=clientAuth\n")?;
        Ok(Certs { dir })
    }
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Another certificate signed by the test CA: `<name>-cert.pem` and `<name>-key.pem`, with
    /// `ext` (openssl extension lines, e.g. subjectAltName and extendedKeyUsage).
    pub fn add_leaf(&self, name: &str, cn: &str, ext: &str) -> Result<()> {
        leaf(self.dir.path(), "ca", name, cn, ext)
    }

    /// `manager-{cert,key}.pem`: good for both ends (a manager serves clients and is a client
    /// of its nodes and of the primary), for 127.0.0.1.
    pub fn add_manager(&self) -> Result<()> {
        self.add_leaf("manager", "manager", "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n")
    }
}
