//! A real registry (Debian `docker-registry`, distribution 2.8) on a free 127.0.0.1 port,
//! with storage in a temp dir. Killed and removed on drop.
use crate::http::{self, Request, Response};
use crate::image;
use anyhow::{bail, Context, Result};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const REGISTRY_BIN: &str = "/usr/bin/docker-registry";
pub const MANIFEST_V2: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const CONFIG_V1: &str = "application/vnd.docker.container.image.v1+json";
pub const LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

pub struct Registry {
    child: Child,
    addr: String,
    dir: Option<tempfile::TempDir>,
    log: PathBuf,
}

impl Registry {
    /// Starts `docker-registry serve` and waits until `GET /v2/` answers. Panics on failure.
    pub fn start() -> Registry {
        Self::try_start().unwrap_or_else(|e| panic!("starting docker-registry: {e:#}"))
    }

    pub fn try_start() -> Result<Registry> {
        if !Path::new(REGISTRY_BIN).exists() {
            bail!("{REGISTRY_BIN} is missing: apt-get install docker-registry");
        }
        let dir = tempfile::Builder::new().prefix("flotilla-registry-").tempdir()?;
        let mut last = String::new();
        for _ in 0..5 {
            let addr = format!("127.0.0.1:{}", crate::port::free_port());
            let config = dir.path().join("config.yml");
            let data = dir.path().join("data");
            std::fs::write(
                &config,
                format!(
                    "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n",
                    data.display()
                ),
            )?;
            let log = dir.path().join("registry.log");
            let logf = std::fs::File::create(&log)?;
            let child = Command::new(REGISTRY_BIN)
                .arg("serve")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(logf.try_clone()?)
                .stderr(logf)
                .spawn()
                .context("spawning docker-registry")?;
            let mut reg = Registry { child, addr, dir: None, log };
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                if let Ok(Some(st)) = reg.child.try_wait() {
                    last = format!("exited with {st}: {}", std::fs::read_to_string(&reg.log).unwrap_or_default());
                    break;
                }
                if reg.get("/v2/").is_ok_and(|r| r.status == 200) {
                    reg.dir = Some(dir);
                    return Ok(reg);
                }
                if Instant::now() > deadline {
                    last = "did not answer GET /v2/ within 20 s".into();
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            // `reg` is dropped here, which kills the child.
        }
        bail!("docker-registry did not start: {last}")
    }

    /// `127.0.0.1:PORT`
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The registry's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn request(&self, req: &Request) -> Result<Response> {
        http::tcp(&self.addr, req)
    }

    pub fn get(&self, path: &str) -> Result<Response> {
        self.request(&Request { method: "GET", path, headers: &[], body: b"" })
    }

    /// Uploads a blob (monolithic: POST an upload, PUT it with `?digest=`). Returns the digest.
    pub fn push_blob(&self, name: &str, data: &[u8]) -> Result<String> {
        let digest = image::sha256_digest(data);
        let head = self.request(&Request { method: "HEAD", path: &format!("/v2/{name}/blobs/{digest}"), headers: &[], body: b"" })?;
        if head.status == 200 {
            return Ok(digest);
        }
        let r = self.request(&Request { method: "POST", path: &format!("/v2/{name}/blobs/uploads/"), headers: &[], body: b"" })?;
        if r.status != 202 {
            bail!("POST blob upload: {} {}", r.status, r.text());
        }
        let loc = r.header("Location").context("upload without Location")?;
        // Location is absolute (http://127.0.0.1:PORT/v2/...); keep the path and query.
        let path = match loc.find("://") {
            Some(i) => loc[i + 3..].find('/').map(|j| &loc[i + 3 + j..]).unwrap_or("/"),
            None => loc,
        };
        let sep = if path.contains('?') { '&' } else { '?' };
        let put_path = format!("{path}{sep}digest={digest}");
        let r = self.request(&Request {
            method: "PUT",
            path: &put_path,
            headers: &[("Content-Type", "application/octet-stream")],
            body: data,
        })?;
        if r.status != 201 {
            bail!("PUT blob {digest}: {} {}", r.status, r.text());
        }
        Ok(digest)
    }

    /// Pushes an image made of uncompressed layer tars (gzip'd here) and a config, as a
    /// schema 2 manifest. Returns the manifest digest.
    pub fn push_image(&self, name: &str, tag: &str, layers: &[&[u8]], config: &[u8]) -> Result<String> {
        let mut descs = Vec::new();
        for l in layers {
            let gz = image::gzip(l)?;
            let digest = self.push_blob(name, &gz)?;
            descs.push(json!({"mediaType": LAYER_GZIP, "size": gz.len(), "digest": digest}));
        }
        let cfg_digest = self.push_blob(name, config)?;
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": MANIFEST_V2,
            "config": {"mediaType": CONFIG_V1, "size": config.len(), "digest": cfg_digest},
            "layers": descs,
        }))?;
        let r = self.request(&Request {
            method: "PUT",
            path: &format!("/v2/{name}/manifests/{tag}"),
            headers: &[("Content-Type", MANIFEST_V2)],
            body: &manifest,
        })?;
        if r.status != 201 {
            bail!("PUT manifest {name}:{tag}: {} {}", r.status, r.text());
        }
        Ok(image::sha256_digest(&manifest))
    }

    /// Pushes the busybox test image as `name:tag`; its image ID is [`image::busybox_image_id`].
    /// Returns the manifest digest. Panics on failure.
    pub fn push_busybox(&self, name: &str, tag: &str) -> String {
        let res = (|| {
            let rootfs = std::fs::read(image::busybox_rootfs_tar())?;
            let config = image::image_config(&[&rootfs], &["sh"]);
            self.push_image(name, tag, &[&rootfs], &config)
        })();
        res.unwrap_or_else(|e| panic!("pushing busybox to {}: {e:#}\nregistry log:\n{}", self.addr, self.log()))
    }

    /// `GET /v2/<name>/manifests/<reference>` accepting schema 2.
    pub fn manifest(&self, name: &str, reference: &str) -> Result<Response> {
        self.request(&Request {
            method: "GET",
            path: &format!("/v2/{name}/manifests/{reference}"),
            headers: &[("Accept", MANIFEST_V2)],
            body: b"",
        })
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- docker-registry log ({}) ---\n{}", self.addr, tail(&self.log(), 40));
        }
    }
}

pub(crate) fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_serves_pushed_busybox() {
        let reg = Registry::start();
        let v2 = reg.get("/v2/").unwrap();
        assert_eq!(v2.status, 200);
        assert_eq!(v2.header("Docker-Distribution-Api-Version"), Some("registry/2.0"));
        let digest = reg.push_busybox("busybox", "latest");
        let m = reg.manifest("busybox", "latest").unwrap();
        assert_eq!(m.status, 200, "{}", m.text());
        assert_eq!(m.header("Docker-Content-Digest"), Some(digest.as_str()));
        assert_eq!(image::sha256_digest(&m.body), digest);
        let mj = m.json().unwrap();
        assert_eq!(mj["mediaType"], MANIFEST_V2);
        let cfg_digest = mj["config"]["digest"].as_str().unwrap();
        assert_eq!(cfg_digest, image::busybox_image_id());
        let layer = mj["layers"][0]["digest"].as_str().unwrap();
        let blob = reg.get(&format!("/v2/busybox/blobs/{layer}")).unwrap();
        assert_eq!((blob.status, image::sha256_digest(&blob.body).as_str()), (200, layer));
        let tags = reg.get("/v2/busybox/tags/list").unwrap().json().unwrap();
        assert_eq!(tags["tags"], json!(["latest"]));
        // pushing again is idempotent (blobs exist)
        assert_eq!(reg.push_busybox("busybox", "latest"), digest);
    }
}
