//! The busybox test image (from Debian's busybox-static) as a rootfs tarball and as a
//! docker-archive (`docker save` format), plus hostile layer tarballs for escape tests.
//!
//! Everything is deterministic (fixed mtimes, sorted entries), so the image ID is the same
//! on every build from the same busybox binary.
use anyhow::{bail, Context, Result};
use serde_json::json;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Where Debian's busybox-static installs its binary.
pub const BUSYBOX_BIN: &str = "/bin/busybox";
/// mtime of every entry and `created` of the image config.
const EPOCH: u64 = 1_700_000_000;
const CREATED: &str = "2023-11-14T22:13:20Z";
/// Bump when the rootfs layout changes, so stale caches are not reused.
const FORMAT: u32 = 1;
pub const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// `sha256:<hex>` of some bytes.
pub fn sha256_digest(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Cache directory shared by every test process on this machine.
pub fn cache_dir() -> PathBuf {
    std::env::temp_dir().join("flotilla-testground")
}

/// Writes `data` to `path` atomically (temp file in the same dir, fsync, rename), so parallel
/// test processes never see a half-written file.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    use std::io::Write;
    let dir = path.parent().context("path without parent")?;
    std::fs::create_dir_all(dir).with_context(|| format!("mkdir {}", dir.display()))?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(data)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).with_context(|| format!("rename to {}", path.display()))?;
    Ok(())
}

fn cache_key() -> Result<String> {
    use std::os::unix::fs::MetadataExt;
    let md = std::fs::metadata(BUSYBOX_BIN).with_context(|| format!("{BUSYBOX_BIN} is missing: apt-get install busybox-static"))?;
    Ok(format!("v{FORMAT}-{}-{}", md.len(), md.mtime()))
}

fn applets() -> Result<Vec<String>> {
    let out = Command::new(BUSYBOX_BIN).arg("--list").output().context("running busybox --list")?;
    if !out.status.success() {
        bail!("busybox --list failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let mut v: Vec<String> = String::from_utf8(out.stdout)?
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && *l != "busybox" && !l.contains('/'))
        .map(String::from)
        .collect();
    v.sort();
    v.dedup();
    Ok(v)
}

fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(EPOCH);
    h.set_size(size);
    h
}

/// Small helper over `tar::Builder` with fixed metadata.
pub struct TarWriter {
    b: tar::Builder<Vec<u8>>,
}

impl Default for TarWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl TarWriter {
    pub fn new() -> Self {
        let mut b = tar::Builder::new(Vec::new());
        b.mode(tar::HeaderMode::Deterministic);
        TarWriter { b }
    }
    pub fn dir(&mut self, path: &str, mode: u32) -> Result<&mut Self> {
        let mut h = header(tar::EntryType::Directory, mode, 0);
        self.b.append_data(&mut h, path, std::io::empty())?;
        Ok(self)
    }
    pub fn file(&mut self, path: &str, mode: u32, data: &[u8]) -> Result<&mut Self> {
        let mut h = header(tar::EntryType::Regular, mode, data.len() as u64);
        self.b.append_data(&mut h, path, data)?;
        Ok(self)
    }
    pub fn symlink(&mut self, path: &str, target: &str) -> Result<&mut Self> {
        let mut h = header(tar::EntryType::Symlink, 0o777, 0);
        h.set_link_name_literal(target)?;
        self.b.append_data(&mut h, path, std::io::empty())?;
        Ok(self)
    }
    /// An entry whose name is written verbatim (may contain `..` or be absolute): for hostile
    /// tarballs the `tar` crate would otherwise refuse to build.
    pub fn raw(&mut self, name: &str, kind: tar::EntryType, link: Option<&str>, data: &[u8]) -> Result<&mut Self> {
        let mut h = header(kind, if kind == tar::EntryType::Directory { 0o755 } else { 0o644 }, data.len() as u64);
        let field = &mut h.as_old_mut().name;
        if name.len() >= field.len() {
            bail!("raw tar name too long: {name}");
        }
        field.fill(0);
        field[..name.len()].copy_from_slice(name.as_bytes());
        if let Some(l) = link {
            h.set_link_name_literal(l)?;
        }
        h.set_cksum();
        self.b.append(&h, data)?;
        Ok(self)
    }
    pub fn finish(self) -> Result<Vec<u8>> {
        Ok(self.b.into_inner()?)
    }
}

/// Builds the busybox rootfs tarball in memory.
pub fn build_busybox_rootfs() -> Result<Vec<u8>> {
    let bin = std::fs::read(BUSYBOX_BIN).with_context(|| format!("reading {BUSYBOX_BIN}"))?;
    let mut t = TarWriter::new();
    t.dir("bin", 0o755)?.file("bin/busybox", 0o755, &bin)?;
    for a in applets()? {
        // Relative target: resolves inside the container whatever the rootfs path.
        t.symlink(&format!("bin/{a}"), "busybox")?;
    }
    t.dir("dev", 0o755)?.dir("etc", 0o755)?;
    t.file("etc/passwd", 0o644, b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")?;
    t.file("etc/group", 0o644, b"root:x:0:\nnogroup:x:65534:\n")?;
    t.dir("proc", 0o555)?.dir("root", 0o700)?.dir("sys", 0o555)?.dir("tmp", 0o1777)?;
    t.dir("var", 0o755)?.dir("var/www", 0o755)?;
    t.file("var/www/index.html", 0o644, b"<h1>hello from busybox httpd</h1>\n")?;
    t.finish()
}

/// An image built by [`docker_archive`]: the `docker load` tarball and its ID.
pub struct Archive {
    pub tar: Vec<u8>,
    /// `sha256:<hex of the config>`, what `docker images --no-trunc` shows.
    pub image_id: String,
    pub config: Vec<u8>,
}

/// The image config JSON for the given layers (diff_ids = sha256 of the uncompressed tars).
pub fn image_config(layers: &[&[u8]], cmd: &[&str]) -> Vec<u8> {
    let diff_ids: Vec<String> = layers.iter().map(|l| sha256_digest(l)).collect();
    let history: Vec<_> =
        layers.iter().map(|_| json!({"created": CREATED, "created_by": "flotilla testground: busybox-static rootfs"})).collect();
    let cfg = json!({
        "architecture": "amd64",
        "os": "linux",
        "created": CREATED,
        "config": { "Env": [DEFAULT_PATH], "Cmd": cmd },
        "rootfs": { "type": "layers", "diff_ids": diff_ids },
        "history": history,
    });
    serde_json::to_vec(&cfg).unwrap_or_default()
}

/// A docker-archive in the layout `docker save` (dockerd 20.10) writes: `<v1id>/{VERSION,json,layer.tar}`
/// per layer, `<imageid>.json` config, `manifest.json` and `repositories`.
pub fn docker_archive(layers: &[&[u8]], repo_tag: &str, cmd: &[&str]) -> Result<Archive> {
    let config = image_config(layers, cmd);
    let id_hex = sha256_hex(&config);
    let mut t = TarWriter::new();
    let mut layer_paths = Vec::new();
    let mut parent: Option<String> = None;
    let mut last_v1 = String::new();
    for (i, layer) in layers.iter().enumerate() {
        let v1 = sha256_hex(format!("{}:{}:{}", parent.as_deref().unwrap_or(""), sha256_digest(layer), i).as_bytes());
        let mut v1json = json!({
            "id": v1, "created": CREATED, "os": "linux",
            "container_config": {"Hostname": "", "Env": null, "Cmd": null, "Image": ""},
        });
        if let Some(p) = &parent {
            v1json["parent"] = json!(p);
        }
        if i + 1 == layers.len() {
            v1json["config"] = json!({"Env": [DEFAULT_PATH], "Cmd": cmd});
        }
        t.dir(&v1, 0o755)?;
        t.file(&format!("{v1}/VERSION"), 0o644, b"1.0")?;
        t.file(&format!("{v1}/json"), 0o644, &serde_json::to_vec(&v1json)?)?;
        t.file(&format!("{v1}/layer.tar"), 0o644, layer)?;
        layer_paths.push(format!("{v1}/layer.tar"));
        parent = Some(v1.clone());
        last_v1 = v1;
    }
    t.file(&format!("{id_hex}.json"), 0o644, &config)?;
    let manifest = json!([{ "Config": format!("{id_hex}.json"), "RepoTags": [repo_tag], "Layers": layer_paths }]);
    t.file("manifest.json", 0o644, &serde_json::to_vec(&manifest)?)?;
    let (repo, tag) = split_repo_tag(repo_tag);
    let repos = json!({ repo: { tag: last_v1 } });
    t.file("repositories", 0o644, &serde_json::to_vec(&repos)?)?;
    Ok(Archive { tar: t.finish()?, image_id: format!("sha256:{id_hex}"), config })
}

/// `"127.0.0.1:5000/busybox:v1"` -> `("127.0.0.1:5000/busybox", "v1")`; no tag -> `latest`.
pub fn split_repo_tag(s: &str) -> (&str, &str) {
    match s.rfind(':') {
        Some(i) if !s[i + 1..].contains('/') => (&s[..i], &s[i + 1..]),
        _ => (s, "latest"),
    }
}

fn cached(name: &str, build: impl FnOnce() -> Result<Vec<u8>>) -> Result<PathBuf> {
    let path = cache_dir().join(format!("{name}-{}.tar", cache_key()?));
    if !path.exists() {
        write_atomic(&path, &build()?)?;
    }
    Ok(path)
}

/// The busybox rootfs tarball, built once per machine and cached; importable with
/// `docker import -c 'CMD ["sh"]' <tar> busybox:latest`.
pub fn busybox_rootfs_tar() -> PathBuf {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| cached("busybox-rootfs", build_busybox_rootfs).unwrap_or_else(|e| panic!("busybox rootfs: {e:#}"))).clone()
}

fn busybox_archive() -> Result<Archive> {
    let rootfs = std::fs::read(busybox_rootfs_tar())?;
    docker_archive(&[&rootfs], "busybox:latest", &["sh"])
}

/// The busybox image as a `docker load` tarball tagged `busybox:latest`, cached per machine.
pub fn busybox_image_archive() -> PathBuf {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| cached("busybox-image", || Ok(busybox_archive()?.tar)).unwrap_or_else(|e| panic!("busybox archive: {e:#}"))).clone()
}

/// The image ID (`sha256:<hex>`) that `busybox_image_archive()` loads as (and that a pull of
/// `Registry::push_busybox` yields).
pub fn busybox_image_id() -> String {
    static P: OnceLock<String> = OnceLock::new();
    P.get_or_init(|| {
        let rootfs = std::fs::read(busybox_rootfs_tar()).unwrap_or_else(|e| panic!("reading rootfs: {e}"));
        sha256_digest(&image_config(&[&rootfs], &["sh"]))
    })
    .clone()
}

/// Gzip with a zero mtime (deterministic).
pub fn gzip(data: &[u8]) -> Result<Vec<u8>> {
    use std::io::Write;
    let mut e = flate2::GzBuilder::new().mtime(0).write(Vec::new(), flate2::Compression::fast());
    e.write_all(data)?;
    Ok(e.finish()?)
}

/// Kinds of layer tarballs that try to write outside the layer root.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hostile {
    /// An entry named `../../…/<canary>`.
    DotDot,
    /// `escape -> /`, then an entry `escape/<canary>` written through it.
    AbsoluteSymlink,
    /// `up -> ../../../…`, then an entry `up/<canary>`.
    RelativeSymlink,
    /// A hard link whose target is `../../…/<canary>` outside the tree.
    Hardlink,
}

impl Hostile {
    pub const ALL: [Hostile; 4] = [Hostile::DotDot, Hostile::AbsoluteSymlink, Hostile::RelativeSymlink, Hostile::Hardlink];
}

/// A layer tarball that tries to create the absolute path `canary` (e.g.
/// `/tmp/flotilla-canary-…`) outside the layer root. A safe extractor refuses it.
pub fn hostile_layer(kind: Hostile, canary: &Path) -> Result<Vec<u8>> {
    let rel = canary.to_str().context("canary path")?.trim_start_matches('/');
    let ups = "../".repeat(12);
    let mut t = TarWriter::new();
    t.dir("ok", 0o755)?.file("ok/file", 0o644, b"fine\n")?;
    match kind {
        Hostile::DotDot => {
            t.raw(&format!("{ups}{rel}"), tar::EntryType::Regular, None, b"escaped\n")?;
        }
        Hostile::AbsoluteSymlink => {
            t.symlink("escape", "/")?;
            t.raw(&format!("escape/{rel}"), tar::EntryType::Regular, None, b"escaped\n")?;
        }
        Hostile::RelativeSymlink => {
            t.symlink("up", ups.trim_end_matches('/'))?;
            t.raw(&format!("up/{rel}"), tar::EntryType::Regular, None, b"escaped\n")?;
        }
        Hostile::Hardlink => {
            t.raw("hl", tar::EntryType::Link, Some(&format!("{ups}{rel}")), b"")?;
        }
    }
    t.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(data: &[u8]) -> Vec<(String, tar::EntryType, Option<String>, Vec<u8>)> {
        use std::io::Read;
        let mut a = tar::Archive::new(data);
        a.entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let name = String::from_utf8_lossy(&e.path_bytes()).into_owned();
                let kind = e.header().entry_type();
                let link = e.link_name_bytes().map(|l| String::from_utf8_lossy(&l).into_owned());
                let mut body = Vec::new();
                e.read_to_end(&mut body).unwrap();
                (name, kind, link, body)
            })
            .collect()
    }

    #[test]
    fn rootfs_has_relative_applet_links() {
        let data = std::fs::read(busybox_rootfs_tar()).unwrap();
        let es = entries(&data);
        let sh = es.iter().find(|e| e.0 == "bin/sh").expect("bin/sh");
        assert_eq!(sh.1, tar::EntryType::Symlink);
        assert_eq!(sh.2.as_deref(), Some("busybox"));
        let links = es.iter().filter(|e| e.1 == tar::EntryType::Symlink).count();
        assert!(links > 200, "only {links} applet links");
        assert!(es.iter().all(|e| e.2.as_deref().is_none_or(|l| !l.starts_with('/'))), "absolute link");
        let bb = es.iter().find(|e| e.0 == "bin/busybox").unwrap();
        assert_eq!(bb.3.len() as u64, std::fs::metadata(BUSYBOX_BIN).unwrap().len());
        for p in ["etc/passwd", "etc/group", "tmp", "root", "var/www"] {
            assert!(es.iter().any(|e| e.0.trim_end_matches('/') == p), "{p} missing");
        }
        let passwd = es.iter().find(|e| e.0 == "etc/passwd").unwrap();
        let passwd = String::from_utf8_lossy(&passwd.3);
        assert!(passwd.starts_with("root:x:0:0:") && passwd.contains("\nnobody:x:65534:"));
    }

    #[test]
    fn rootfs_is_deterministic() {
        assert_eq!(build_busybox_rootfs().unwrap(), build_busybox_rootfs().unwrap());
    }

    #[test]
    fn archive_manifest_is_valid() {
        let data = std::fs::read(busybox_image_archive()).unwrap();
        let es = entries(&data);
        let get = |n: &str| es.iter().find(|e| e.0 == n).unwrap_or_else(|| panic!("{n} missing")).3.clone();
        let manifest: serde_json::Value = serde_json::from_slice(&get("manifest.json")).unwrap();
        let m = &manifest[0];
        assert_eq!(m["RepoTags"], json!(["busybox:latest"]));
        let cfg_name = m["Config"].as_str().unwrap();
        let cfg_bytes = get(cfg_name);
        assert_eq!(format!("{}.json", &sha256_digest(&cfg_bytes)[7..]), cfg_name);
        assert_eq!(sha256_digest(&cfg_bytes), busybox_image_id());
        let cfg: serde_json::Value = serde_json::from_slice(&cfg_bytes).unwrap();
        let layers = m["Layers"].as_array().unwrap();
        assert_eq!(layers.len(), 1);
        let layer = get(layers[0].as_str().unwrap());
        assert_eq!(cfg["rootfs"]["diff_ids"][0].as_str().unwrap(), sha256_digest(&layer));
        assert_eq!(layer, std::fs::read(busybox_rootfs_tar()).unwrap());
        assert_eq!(cfg["config"]["Cmd"], json!(["sh"]));
        let repos: serde_json::Value = serde_json::from_slice(&get("repositories")).unwrap();
        let v1 = repos["busybox"]["latest"].as_str().unwrap();
        assert_eq!(format!("{v1}/layer.tar"), layers[0].as_str().unwrap());
        assert_eq!(get(&format!("{v1}/VERSION")), b"1.0");
    }

    #[test]
    fn hostile_layers_have_escaping_entries() {
        let canary = Path::new("/tmp/flotilla-canary-x");
        for k in Hostile::ALL {
            let es = entries(&hostile_layer(k, canary).unwrap());
            let bad = es.iter().any(|e| e.0.contains("..") || e.2.as_deref().is_some_and(|l| l == "/" || l.contains("..")));
            assert!(bad, "{k:?} has no escaping entry: {:?}", es.iter().map(|e| &e.0).collect::<Vec<_>>());
        }
    }

    #[test]
    fn repo_tag_split() {
        assert_eq!(split_repo_tag("busybox"), ("busybox", "latest"));
        assert_eq!(split_repo_tag("busybox:1"), ("busybox", "1"));
        assert_eq!(split_repo_tag("127.0.0.1:5000/busybox"), ("127.0.0.1:5000/busybox", "latest"));
        assert_eq!(split_repo_tag("127.0.0.1:5000/b:x"), ("127.0.0.1:5000/b", "x"));
    }
}
