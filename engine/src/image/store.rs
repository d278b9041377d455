//! Persistence: blobs, layers, image records, references, and garbage collection.
use super::config::ImageConfigFile;
use super::reference::Reference;
use super::unpack::{self, UnpackOptions, UnpackStats};
use super::{hex_of, Image, ImageError, ImageService, IoContext, State};
use crate::fsutil;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

/// Flushes every file of the filesystem holding `dir` (one `syncfs`: an unpacked layer's files
/// and directories at once, without a walk).
pub fn syncfs(dir: &Path) -> io::Result<()> {
    let d = fs::File::open(dir)?;
    use std::os::fd::AsRawFd;
    // SAFETY: syncfs takes an open fd and touches no memory of ours.
    if unsafe { libc::syncfs(d.as_raw_fd()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `images/<hex>.json`
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImageRecord {
    pub id: String,
    pub diff_ids: Vec<String>,
    /// Manifests this image was pulled with (kept as blobs).
    #[serde(default)]
    pub manifests: Vec<String>,
    #[serde(default)]
    pub last_tag_time: Option<String>,
    /// Deleted by `rmi -f` while a (stopped) container still uses it: hidden from names and
    /// listings, resolvable by full id, dropped once no container uses it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub removed: bool,
}

impl ImageRecord {
    pub fn new(id: &str, diff_ids: Vec<String>) -> Self {
        ImageRecord { id: id.to_string(), diff_ids, manifests: vec![], last_tag_time: None, removed: false }
    }
}

/// `layers/<hex>/meta.json`
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LayerMeta {
    pub diff_id: String,
    /// The blob the layer came from (compressed or not), kept for `save`.
    pub blob: String,
    /// Length of the uncompressed tar (its sha256 is the diff id).
    pub tar_size: u64,
    /// Bytes of file content in the layer.
    pub size: u64,
}

pub(crate) fn load_state(root: &Path) -> Result<State, ImageError> {
    let mut st = State::default();
    for e in fs::read_dir(root.join("layers")).at("listing", &root.join("layers"))?.flatten() {
        let meta: Option<LayerMeta> = fsutil::read_json(&e.path().join("meta.json")).unwrap_or(None);
        match meta {
            Some(m) if e.path().join("diff").is_dir() => {
                st.layers.insert(m.diff_id.clone(), m);
            }
            _ => tracing::warn!(path = %e.path().display(), "ignoring incomplete layer"),
        }
    }
    for e in fs::read_dir(root.join("images")).at("listing", &root.join("images"))?.flatten() {
        let rec: Option<ImageRecord> = match fsutil::read_json(&e.path()) {
            Ok(r) => r,
            Err(err) => {
                tracing::warn!(path = %e.path().display(), %err, "ignoring unreadable image record");
                continue;
            }
        };
        let Some(rec) = rec else { continue };
        let config_path = root.join("blobs/sha256").join(hex_of(&rec.id));
        let cfg = fs::read(&config_path).at("reading", &config_path).and_then(|b| ImageConfigFile::parse(&b));
        match cfg {
            Ok(config) if rec.diff_ids.iter().all(|d| st.layers.contains_key(d)) => {
                st.images.insert(rec.id.clone(), Image { record: rec, config });
            }
            _ => tracing::warn!(id = %rec.id, "ignoring image with missing config or layers"),
        }
    }
    let refs_path = root.join("refs.json");
    let refs: BTreeMap<String, String> = fsutil::read_json(&refs_path).at("reading", &refs_path)?.unwrap_or_default();
    st.refs = refs.into_iter().filter(|(_, id)| st.images.contains_key(id)).collect();
    Ok(st)
}

/// sha256 of bytes as `sha256:<hex>`.
pub fn digest_of(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

impl ImageService {
    /// A fresh unique path under `tmp/`.
    pub(crate) fn tmp_path(&self, prefix: &str) -> PathBuf {
        self.root().join("tmp").join(format!("{prefix}-{}", crate::ids::new_id()))
    }

    /// Stores bytes as a blob (verifying `expected` when given); returns the digest.
    pub fn put_blob(&self, data: &[u8], expected: Option<&str>) -> Result<String, ImageError> {
        let d = digest_of(data);
        if let Some(e) = expected {
            if e != d {
                return Err(ImageError::Invalid(format!("digest mismatch: expected {e}, got {d}")));
            }
        }
        let path = self.blob_path(&d);
        if !path.exists() {
            fsutil::write_atomic(&path, data).at("writing", &path)?;
        }
        Ok(d)
    }

    /// Moves a fully written temp file into the blob store after checking its digest.
    pub fn adopt_blob(&self, tmp: &Path, digest: &str) -> Result<(), ImageError> {
        let path = self.blob_path(digest);
        fs::File::open(tmp).and_then(|f| f.sync_all()).at("syncing", tmp)?;
        fs::rename(tmp, &path).at("moving a blob into place at", &path)?;
        let dir = path.parent().unwrap_or(self.root());
        fs::File::open(dir).and_then(|f| f.sync_all()).at("syncing", dir)?;
        Ok(())
    }

    /// Copies a stream into a temp file, hashing it; returns (temp path, digest, length).
    pub fn spool<R: Read>(&self, mut r: R) -> Result<(PathBuf, String, u64), ImageError> {
        let tmp = self.tmp_path("blob");
        let mut f = fs::File::create(&tmp).at("creating", &tmp)?;
        let mut h = Sha256::new();
        let mut buf = vec![0u8; 256 * 1024];
        let mut n = 0u64;
        loop {
            let k = match r.read(&mut buf) {
                Ok(0) => break,
                Ok(k) => k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    let _ = fs::remove_file(&tmp);
                    return Err(e).at("spooling a stream into", &tmp);
                }
            };
            h.update(&buf[..k]);
            f.write_all(&buf[..k]).at("writing", &tmp)?;
            n += k as u64;
        }
        Ok((tmp, format!("sha256:{}", hex::encode(h.finalize())), n))
    }

    pub fn has_layer(&self, diff_id: &str) -> bool {
        self.lock().layers.contains_key(diff_id)
    }

    /// A layer already unpacked from this blob digest, if any.
    pub fn layer_for_blob(&self, blob: &str) -> Option<String> {
        self.lock().layers.values().find(|l| l.blob == blob).map(|l| l.diff_id.clone())
    }

    /// Unpacks the stored blob `blob` as a layer, once per diff id; checks the diff id when
    /// `expected` is given. `progress` sees the compressed bytes read. Blocking.
    pub fn register_layer(&self, blob: &str, expected: Option<&str>, progress: &mut dyn FnMut(u64)) -> Result<LayerMeta, ImageError> {
        if let Some(e) = expected {
            if let Some(m) = self.lock().layers.get(e) {
                return Ok(m.clone());
            }
        }
        let work = self.tmp_path("layer");
        fs::create_dir_all(work.join("diff")).at("creating", &work.join("diff"))?;
        let res = (|| {
            let f = fs::File::open(self.blob_path(blob)).at("opening", &self.blob_path(blob))?;
            let reader = Counting { inner: io::BufReader::new(f), n: 0, cb: progress };
            let st: UnpackStats = unpack::unpack(reader, &work.join("diff"), UnpackOptions::LAYER)?;
            if let Some(e) = expected {
                if e != st.diff_id {
                    return Err(ImageError::Invalid(format!("layer {blob}: diff id mismatch: expected {e}, got {}", st.diff_id)));
                }
            }
            let meta = LayerMeta { diff_id: st.diff_id.clone(), blob: blob.to_string(), tar_size: st.tar_size, size: st.size };
            // The contents reach the disk before the layer is marked complete (meta.json, then
            // the rename into layers/): a crash never leaves a truncated layer that is reused.
            (self.layer_sync)(&work.join("diff")).at("syncing", &work.join("diff"))?;
            fsutil::write_json(&work.join("meta.json"), &meta).at("writing", &work.join("meta.json"))?;
            Ok(meta)
        })();
        let meta = match res {
            Ok(m) => m,
            Err(e) => {
                let _ = fs::remove_dir_all(&work);
                return Err(e);
            }
        };
        let mut st = self.lock();
        if let Some(m) = st.layers.get(&meta.diff_id) {
            let m = m.clone();
            drop(st);
            let _ = fs::remove_dir_all(&work);
            return Ok(m);
        }
        let dest = self.root().join("layers").join(hex_of(&meta.diff_id));
        if dest.exists() {
            // Left over from an interrupted run and not in the state: replace it.
            let junk = self.tmp_path("junk");
            fs::rename(&dest, &junk).at("moving aside", &dest)?;
            let _ = fs::remove_dir_all(&junk);
        }
        fs::rename(&work, &dest).at("moving a layer into place at", &dest)?;
        let layers = self.root().join("layers");
        fs::File::open(&layers).and_then(|f| f.sync_all()).at("syncing", &layers)?;
        st.layers.insert(meta.diff_id.clone(), meta.clone());
        Ok(meta)
    }

    /// Records an image whose config blob and layers are stored. Returns the id.
    pub fn commit_image(&self, config_bytes: &[u8], manifest: Option<&str>) -> Result<String, ImageError> {
        let config = ImageConfigFile::parse(config_bytes)?;
        let id = self.put_blob(config_bytes, None)?;
        let mut st = self.lock();
        for d in &config.rootfs.diff_ids {
            if !st.layers.contains_key(d) {
                return Err(ImageError::Invalid(format!("image {id}: layer {d} is missing")));
            }
        }
        let mut rec = st.images.get(&id).map(|i| i.record.clone()).unwrap_or_else(|| ImageRecord::new(&id, config.rootfs.diff_ids.clone()));
        if let Some(m) = manifest {
            if !rec.manifests.iter().any(|x| x == m) {
                rec.manifests.push(m.to_string());
            }
        }
        let path = self.root().join("images").join(format!("{}.json", hex_of(&id)));
        fsutil::write_json(&path, &rec).at("writing", &path)?;
        st.images.insert(id.clone(), Image { record: rec, config });
        Ok(id)
    }

    /// Points `r` at image `id`. Returns the image the reference pointed at before, if other.
    pub fn set_ref(&self, r: &Reference, id: &str) -> Result<Option<String>, ImageError> {
        let mut st = self.lock();
        let prev = st.refs.insert(r.to_string(), id.to_string());
        if !r.is_digest() {
            if let Some(img) = st.images.get_mut(id) {
                img.record.last_tag_time = Some(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true));
                let rec = img.record.clone();
                let path = self.root().join("images").join(format!("{}.json", hex_of(id)));
                fsutil::write_json(&path, &rec).at("writing", &path)?;
            }
        }
        // A tag that already names this image (every warm `docker build -t`) leaves the file as
        // it is: no rewrite, no fsync.
        if prev.as_deref() != Some(id) {
            self.write_refs(&st.refs)?;
        }
        Ok(prev.filter(|p| p != id))
    }

    fn write_refs(&self, refs: &BTreeMap<String, String>) -> Result<(), ImageError> {
        let path = self.root().join("refs.json");
        fsutil::write_json(&path, refs).at("writing", &path)
    }

    /// Removes a reference; returns whether it existed.
    pub fn remove_ref(&self, r: &Reference) -> Result<bool, ImageError> {
        let mut st = self.lock();
        let had = st.refs.remove(&r.to_string()).is_some();
        if had {
            self.write_refs(&st.refs)?;
        }
        Ok(had)
    }

    /// All references of an image.
    pub fn refs_of(&self, id: &str) -> Vec<Reference> {
        refs_of(&self.lock(), id)
    }

    /// Deletes the record of `id` and its references; with `keep` (a container still uses it)
    /// the record stays, hidden, so its layers survive until garbage collection finds it unused.
    pub(crate) fn remove_image_record(&self, id: &str, keep: bool) -> Result<(), ImageError> {
        let mut st = self.lock();
        st.refs.retain(|_, v| v != id);
        self.write_refs(&st.refs)?;
        let path = self.root().join("images").join(format!("{}.json", hex_of(id)));
        if keep {
            if let Some(img) = st.images.get_mut(id) {
                img.record.removed = true;
                fsutil::write_json(&path, &img.record).at("writing", &path)?;
            }
        } else {
            st.images.remove(id);
            let _ = fs::remove_file(path);
        }
        Ok(())
    }

    /// Removes layers and blobs that no image needs. Deferred while a pull/load/import runs.
    /// Returns the layers removed.
    pub fn collect_garbage(&self) -> Result<Vec<String>, ImageError> {
        let mut doomed_dirs = Vec::new();
        let mut removed = Vec::new();
        // Hidden images no container uses any more go first (asked without holding our lock).
        let hidden: Vec<String> = self.lock().images.values().filter(|i| i.record.removed).map(|i| i.record.id.clone()).collect();
        let can_ask = self.in_use.read().unwrap_or_else(|p| p.into_inner()).is_some();
        let unused: Vec<String> = if can_ask { hidden.into_iter().filter(|id| self.users_of(id).is_empty()).collect() } else { vec![] };
        for id in &unused {
            self.remove_image_record(id, false)?;
        }
        {
            let writers = self.writers.lock().unwrap_or_else(|p| p.into_inner());
            if *writers > 0 {
                self.gc_pending.store(true, std::sync::atomic::Ordering::SeqCst);
                return Ok(removed);
            }
            let mut st = self.lock();
            let live_layers: HashSet<&String> = st.images.values().flat_map(|i| i.record.diff_ids.iter()).collect();
            let dead: Vec<String> = st.layers.keys().filter(|d| !live_layers.contains(d)).cloned().collect();
            for d in dead {
                let dir = self.root().join("layers").join(hex_of(&d));
                let junk = self.tmp_path("gc");
                if fs::rename(&dir, &junk).is_ok() {
                    doomed_dirs.push(junk);
                }
                st.layers.remove(&d);
                removed.push(d);
            }
            let mut live: HashSet<String> = st.layers.values().map(|l| l.blob.clone()).collect();
            for img in st.images.values() {
                live.insert(img.record.id.clone());
                live.extend(img.record.manifests.iter().cloned());
            }
            drop(st);
            let blobs = self.root().join("blobs/sha256");
            for e in fs::read_dir(&blobs).at("listing", &blobs)?.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if !live.contains(&format!("sha256:{name}")) && !name.ends_with(".tmp") {
                    let _ = fs::remove_file(e.path());
                }
            }
            drop(writers);
        }
        for d in doomed_dirs {
            if let Err(e) = fs::remove_dir_all(&d) {
                tracing::warn!(path = %d.display(), %e, "cannot remove layer");
            }
        }
        Ok(removed)
    }
}

pub(crate) fn refs_of(st: &State, id: &str) -> Vec<Reference> {
    st.refs.iter().filter(|(_, v)| v.as_str() == id).filter_map(|(k, _)| Reference::parse(k).ok()).collect()
}

/// Counts bytes read and reports them (at most every 256 KiB).
struct Counting<'a, R> {
    inner: R,
    n: u64,
    cb: &'a mut dyn FnMut(u64),
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let k = self.inner.read(buf)?;
        let before = self.n / (256 * 1024);
        self.n += k as u64;
        if self.n / (256 * 1024) != before || k == 0 {
            (self.cb)(self.n);
        }
        Ok(k)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::sync::Arc;

    pub(crate) fn layer_tar(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (n, d) in files {
            let mut h = tar::Header::new_gnu();
            h.set_path(n).unwrap();
            h.set_size(d.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append(&h, *d).unwrap();
        }
        b.into_inner().unwrap()
    }

    /// A store in a temp dir holding one one-layer image tagged `busybox`: (dir, store, image id).
    pub(crate) fn one_layer_image(bus: crate::events::EventBus) -> (tempfile::TempDir, Arc<ImageService>, String) {
        let d = tempfile::tempdir().unwrap();
        let svc = Arc::new(ImageService::open(d.path(), &[], bus).unwrap());
        let tar = layer_tar(&[("f", b"x")]);
        let blob = svc.put_blob(&tar, None).unwrap();
        let m = svc.register_layer(&blob, None, &mut |_| {}).unwrap();
        let cfg = serde_json::to_vec(&serde_json::json!({"os":"linux","rootfs":{"type":"layers","diff_ids":[m.diff_id]}})).unwrap();
        let id = svc.commit_image(&cfg, None).unwrap();
        svc.set_ref(&crate::image::Reference::parse_tagged("busybox").unwrap(), &id).unwrap();
        (d, svc, id)
    }

    /// What the recording layer sync saw: (the dir, whether meta.json existed then).
    static SYNCED: std::sync::Mutex<Vec<(PathBuf, bool)>> = std::sync::Mutex::new(Vec::new());

    fn recording_sync(dir: &Path) -> io::Result<()> {
        let marked = dir.parent().is_some_and(|w| w.join("meta.json").exists());
        SYNCED.lock().unwrap().push((dir.to_path_buf(), marked));
        syncfs(dir)
    }

    fn failing_sync(_: &Path) -> io::Result<()> {
        Err(io::Error::other("disk on fire"))
    }

    #[test]
    fn layer_contents_are_synced_before_the_layer_is_complete() {
        let d = tempfile::tempdir().unwrap();
        let mut svc = ImageService::open(d.path(), &[], Default::default()).unwrap();
        svc.layer_sync = failing_sync;
        let blob = svc.put_blob(&layer_tar(&[("a.txt", b"contents")]), None).unwrap();
        // A sync that fails leaves no layer behind, on disk or in the state.
        assert!(svc.register_layer(&blob, Some(&blob), &mut |_| {}).unwrap_err().to_string().contains("disk on fire"));
        assert!(!svc.has_layer(&blob));
        assert_eq!(fs::read_dir(svc.root().join("layers")).unwrap().count(), 0);
        svc.layer_sync = recording_sync;
        let m = svc.register_layer(&blob, Some(&blob), &mut |_| {}).unwrap();
        let seen = SYNCED.lock().unwrap().clone();
        assert_eq!(seen.len(), 1, "one sync per layer: {seen:?}");
        assert!(seen[0].0.ends_with("diff"), "{seen:?}");
        assert!(!seen[0].1, "synced before meta.json marked the layer complete");
        assert!(svc.layer_dir(&m.diff_id).join("a.txt").exists());
        assert!(svc.layer_dir(&m.diff_id).parent().unwrap().join("meta.json").exists());
    }

    #[test]
    fn layers_once_images_refs_gc_and_reopen() {
        let d = tempfile::tempdir().unwrap();
        let svc = Arc::new(ImageService::open(d.path(), &[], Default::default()).unwrap());
        let tar = layer_tar(&[("hello.txt", b"hi")]);
        let blob = svc.put_blob(&tar, None).unwrap();
        let m = svc.register_layer(&blob, Some(&blob), &mut |_| {}).unwrap();
        assert_eq!(m.diff_id, blob);
        assert_eq!(m.size, 2);
        // second time: no new unpack
        let m2 = svc.register_layer(&blob, None, &mut |_| {}).unwrap();
        assert_eq!(m2.diff_id, m.diff_id);
        assert_eq!(fs::read(svc.layer_dir(&m.diff_id).join("hello.txt")).unwrap(), b"hi");
        assert!(svc.register_layer(&blob, Some("sha256:00"), &mut |_| {}).is_err()); // wrong diff id
        let cfg = serde_json::to_vec(&serde_json::json!({
            "architecture": "amd64", "os": "linux", "config": {"Cmd": ["sh"]},
            "rootfs": {"type": "layers", "diff_ids": [m.diff_id]}
        }))
        .unwrap();
        let id = svc.commit_image(&cfg, None).unwrap();
        assert_eq!(id, digest_of(&cfg));
        let r = Reference::parse_tagged("busybox").unwrap();
        svc.set_ref(&r, &id).unwrap();
        let res = svc.resolve("busybox").unwrap();
        assert_eq!(res.run_config.cmd, vec!["sh"]);
        assert_eq!(res.layer_dirs, vec![svc.layer_dir(&m.diff_id)]);
        drop(svc);
        let svc = ImageService::open(d.path(), &[], Default::default()).unwrap();
        assert_eq!(svc.count(), 1);
        assert_eq!(svc.resolve_id("busybox:latest").unwrap(), id);
        assert_eq!(svc.image_ref_name(&id).as_deref(), Some("busybox:latest"));
        svc.remove_image_record(&id, false).unwrap();
        svc.collect_garbage().unwrap();
        assert!(!svc.layer_dir(&m.diff_id).exists());
        assert!(!svc.blob_path(&blob).exists());
        assert!(!svc.blob_path(&id).exists());
        assert_eq!(svc.count(), 0);
    }
}
