//! A real etcd (Debian `etcd-server`, 3.4) on free ports with its data in a temp dir, killed
//! and removed on drop; it can be killed and restarted on the same ports and data (to test
//! clients surviving an etcd restart), and serve client TLS with certificates made by
//! [`TlsCerts`].
use crate::cmd::{self, run_args};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const ETCD_BIN: &str = "/usr/bin/etcd";

pub struct Etcd {
    child: Option<Child>,
    dir: Option<tempfile::TempDir>,
    /// Client listen IPs; the first one is advertised.
    ips: Vec<String>,
    client_port: u16,
    peer_port: u16,
    tls: Option<TlsCerts>,
}

/// A CA, a server certificate (for the given IPs) and a client certificate, made with openssl.
#[derive(Debug, Clone)]
pub struct TlsCerts {
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

impl TlsCerts {
    /// Writes the files into `dir`; the server certificate is valid for `ips` and `localhost`.
    pub fn generate(dir: &Path, ips: &[&str]) -> Result<TlsCerts> {
        std::fs::create_dir_all(dir)?;
        let p = |n: &str| dir.join(n);
        let s = |p: PathBuf| p.display().to_string();
        let ossl = |args: &[&str]| -> Result<()> {
            let o = run_args("openssl", args);
            if !o.success() {
                bail!("{o}");
            }
            Ok(())
        };
        ossl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=flotilla-test-ca",
            "-keyout",
            &s(p("ca-key.pem")),
            "-out",
            &s(p("ca.pem")),
        ])?;
        let san: Vec<String> = ips.iter().map(|ip| format!("IP:{ip}")).chain(["DNS:localhost".to_string()]).collect();
        for (name, cn, ext) in [
            ("server", "etcd", format!("subjectAltName={}\nextendedKeyUsage=serverAuth,clientAuth", san.join(","))),
            ("client", "client", "extendedKeyUsage=clientAuth".to_string()),
        ] {
            std::fs::write(p(&format!("{name}.ext")), ext)?;
            ossl(&[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-subj",
                &format!("/CN={cn}"),
                "-keyout",
                &s(p(&format!("{name}-key.pem"))),
                "-out",
                &s(p(&format!("{name}.csr"))),
            ])?;
            ossl(&[
                "x509",
                "-req",
                "-in",
                &s(p(&format!("{name}.csr"))),
                "-CA",
                &s(p("ca.pem")),
                "-CAkey",
                &s(p("ca-key.pem")),
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                &s(p(&format!("{name}.ext"))),
                "-out",
                &s(p(&format!("{name}.pem"))),
            ])?;
        }
        Ok(TlsCerts {
            ca: p("ca.pem"),
            server_cert: p("server.pem"),
            server_key: p("server-key.pem"),
            client_cert: p("client.pem"),
            client_key: p("client-key.pem"),
        })
    }
}

impl Etcd {
    /// etcd listening on 127.0.0.1. Panics on failure.
    pub fn start() -> Etcd {
        Self::start_on(&["127.0.0.1"], None)
    }

    /// etcd listening for clients on each of `ips` (e.g. a test bridge's address too), with
    /// client TLS (and client certificate auth) when `tls` is given.
    pub fn start_on(ips: &[&str], tls: Option<TlsCerts>) -> Etcd {
        Self::try_start(ips, tls).unwrap_or_else(|e| panic!("starting etcd: {e:#}"))
    }

    pub fn try_start(ips: &[&str], tls: Option<TlsCerts>) -> Result<Etcd> {
        if !Path::new(ETCD_BIN).exists() {
            bail!("{ETCD_BIN} is missing: apt-get install etcd-server");
        }
        let mut last = String::new();
        for _ in 0..5 {
            let dir = tempfile::Builder::new().prefix("flotilla-etcd-").tempdir()?;
            let mut e = Etcd {
                child: None,
                dir: Some(dir),
                ips: ips.iter().map(|s| s.to_string()).collect(),
                client_port: crate::port::free_port(),
                peer_port: crate::port::free_port(),
                tls: tls.clone(),
            };
            match e.spawn() {
                Ok(()) => return Ok(e),
                Err(err) => last = format!("{err:#}"),
            }
        }
        bail!("etcd did not start: {last}")
    }

    fn dir(&self) -> &Path {
        self.dir.as_ref().map(|d| d.path()).unwrap_or(Path::new("/nonexistent"))
    }
    fn log_path(&self) -> PathBuf {
        self.dir().join("etcd.log")
    }
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn scheme(&self) -> &'static str {
        if self.tls.is_some() {
            "https"
        } else {
            "http"
        }
    }

    fn spawn(&mut self) -> Result<()> {
        let sch = self.scheme();
        let clients: Vec<String> = self.ips.iter().map(|ip| format!("{sch}://{ip}:{}", self.client_port)).collect();
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let name = format!("flt{}", self.client_port);
        let logf = std::fs::OpenOptions::new().create(true).append(true).open(self.log_path())?;
        let mut c = Command::new(ETCD_BIN);
        c.arg("--name")
            .arg(&name)
            .arg("--data-dir")
            .arg(self.dir().join("data"))
            .arg("--listen-client-urls")
            .arg(clients.join(","))
            .arg("--advertise-client-urls")
            .arg(&clients[0])
            .arg("--listen-peer-urls")
            .arg(&peer)
            .arg("--initial-advertise-peer-urls")
            .arg(&peer)
            .arg("--initial-cluster")
            .arg(format!("{name}={peer}"))
            .arg("--log-level")
            .arg("warn")
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .stdin(Stdio::null())
            .stdout(logf.try_clone()?)
            .stderr(logf);
        if let Some(t) = &self.tls {
            c.arg("--cert-file")
                .arg(&t.server_cert)
                .arg("--key-file")
                .arg(&t.server_key)
                .arg("--trusted-ca-file")
                .arg(&t.ca)
                .arg("--client-cert-auth");
        }
        self.child = Some(c.spawn().context("spawning etcd")?);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(Ok(Some(st))) = self.child.as_mut().map(|c| c.try_wait()) {
                self.child = None;
                bail!("etcd exited with {st}: {}", crate::registry::tail(&self.log(), 30));
            }
            if self.healthy() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("etcd not healthy within 30 s: {}", crate::registry::tail(&self.log(), 30));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `GET /health` answers `"health":"true"`.
    pub fn healthy(&self) -> bool {
        let url = format!("{}://{}/health", self.scheme(), self.endpoint());
        let mut args: Vec<String> = vec!["-s".into(), "-m".into(), "2".into()];
        if let Some(t) = &self.tls {
            for (f, p) in [("--cacert", &t.ca), ("--cert", &t.client_cert), ("--key", &t.client_key)] {
                args.extend([f.to_string(), p.display().to_string()]);
            }
        }
        args.push(url);
        let o = cmd::run(Command::new("curl").args(&args), None, Duration::from_secs(5));
        o.success() && o.stdout.replace(' ', "").contains("\"health\":\"true\"")
    }

    /// `ip:port` of the first client listener.
    pub fn endpoint(&self) -> String {
        format!("{}:{}", self.ips[0], self.client_port)
    }
    /// `ip:port` on each client IP, in order.
    pub fn endpoints(&self) -> Vec<String> {
        self.ips.iter().map(|ip| format!("{ip}:{}", self.client_port)).collect()
    }
    pub fn tls(&self) -> Option<&TlsCerts> {
        self.tls.as_ref()
    }

    /// SIGKILL (a crash). The data stays for [`Etcd::start_again`].
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts etcd again on the same ports and data (after [`Etcd::kill`]).
    pub fn start_again(&mut self) {
        self.kill();
        self.spawn().unwrap_or_else(|e| panic!("restarting etcd: {e:#}"));
    }

    /// Keys (and values) under `prefix`, through the v3 JSON gateway (plain HTTP only).
    pub fn get_prefix(&self, prefix: &str) -> Result<Vec<(String, String)>> {
        let b64 = |s: &[u8]| base64(s);
        let mut end = prefix.as_bytes().to_vec();
        if let Some(last) = end.last_mut() {
            *last += 1;
        }
        let body = format!(r#"{{"key":"{}","range_end":"{}"}}"#, b64(prefix.as_bytes()), b64(&end));
        let r = crate::http::tcp(
            &self.endpoint(),
            &crate::http::Request {
                method: "POST",
                path: "/v3/kv/range",
                headers: &[("Content-Type", "application/json")],
                body: body.as_bytes(),
            },
        )?;
        let v = r.json()?;
        let mut out = vec![];
        for kv in v["kvs"].as_array().cloned().unwrap_or_default() {
            let k = unbase64(kv["key"].as_str().unwrap_or(""));
            let val = unbase64(kv["value"].as_str().unwrap_or(""));
            out.push((String::from_utf8_lossy(&k).into_owned(), String::from_utf8_lossy(&val).into_owned()));
        }
        Ok(out)
    }
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn base64(data: &[u8]) -> String {
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn unbase64(s: &str) -> Vec<u8> {
    let mut out = vec![];
    let (mut acc, mut bits) = (0u32, 0);
    for c in s.bytes() {
        let Some(v) = B64.iter().position(|&x| x == c) else { continue };
        acc = (acc << 6) | v as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

impl Drop for Etcd {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- etcd log tail ---\n{}", crate::registry::tail(&self.log(), 40));
        }
        self.kill();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn base64_roundtrip() {
        for s in ["", "a", "ab", "abc", "/swarm/docker/swarm/nodes0"] {
            assert_eq!(unbase64(&base64(s.as_bytes())), s.as_bytes());
        }
        assert_eq!(base64(b"ab"), "YWI=");
    }
}
