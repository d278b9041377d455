//! Image store: content-addressed blobs, unpacked layers stacked with overlayfs, references,
//! registry pull, import, load/save.
//!
//! On-disk layout under `<data-root>/image/` (JSON state written via `fsutil`):
//!   blobs/sha256/<hex>        verified blobs (layer tars as received, configs, manifests)
//!   layers/<diffid-hex>/diff/ an unpacked layer (lowerdir for overlayfs), plus meta.json
//!   images/<id-hex>.json      one record per image (config digest = image id)
//!   refs.json                 references (`docker.io/library/busybox:latest`,
//!                             `127.0.0.1:5000/busybox@sha256:..`) -> image id
//!   tmp/                      work area (downloads, layers being unpacked); emptied at open
//!
//! A layer is unpacked into `tmp/` and renamed into `layers/` when complete, so a crash never
//! leaves half a layer. Blobs are verified against their digest before they are renamed in.
pub mod archive;
pub mod child;
pub mod config;
pub mod delete;
pub mod distribution;
pub mod import;
pub mod inspect;
pub mod manifest;
mod mirror;
pub mod progress;
mod published;
pub mod pull;
pub mod push;
pub mod reference;
pub mod registry;
pub mod store;
pub mod unpack;

use crate::{Classify, ErrorKind};
use config::ImageConfigFile;
use reference::Reference;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("No such image: {0}")]
    NotFound(String),
    /// A registry (or other remote) said the thing does not exist; the text is Docker's.
    #[error("{0}")]
    RemoteNotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Registry(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Unpack(#[from] unpack::UnpackError),
    /// A file of the image store (or an archive being loaded) that could not be read or written.
    #[error("{op} {}: {source}", path.display())]
    Io { op: &'static str, path: PathBuf, source: std::io::Error },
    /// A task of an image operation (`what`) panicked or was cancelled.
    #[error("{what}: {source}")]
    Join { what: &'static str, source: tokio::task::JoinError },
}

/// Attaches the operation and the path to an io error of this module.
pub(crate) trait IoContext<T> {
    fn at(self, op: &'static str, path: &Path) -> Result<T, ImageError>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, op: &'static str, path: &Path) -> Result<T, ImageError> {
        self.map_err(|source| ImageError::Io { op, path: path.to_path_buf(), source })
    }
}

impl Classify for ImageError {
    fn kind(&self) -> ErrorKind {
        match self {
            ImageError::NotFound(_) | ImageError::RemoteNotFound(_) => ErrorKind::NotFound,
            ImageError::Conflict(_) => ErrorKind::Conflict,
            ImageError::Invalid(_) | ImageError::Unpack(unpack::UnpackError::Refused { .. }) => ErrorKind::InvalidParameter,
            ImageError::Unauthorized(_) => ErrorKind::Forbidden,
            ImageError::Registry(_) | ImageError::Io { .. } | ImageError::Join { .. } | ImageError::Unpack(_) => ErrorKind::Internal,
        }
    }
}

/// The parts of an image's config a container inherits (the image config's `config` object).
#[derive(Debug, Clone, Default)]
pub struct ImageRunConfig {
    pub env: Vec<String>,
    pub cmd: Vec<String>,
    pub entrypoint: Vec<String>,
    pub working_dir: String,
    pub user: String,
    pub labels: BTreeMap<String, String>,
    pub exposed_ports: Vec<String>,
    pub stop_signal: Option<String>,
    /// `HEALTHCHECK`.
    pub healthcheck: Option<bollard_stubs::models::HealthConfig>,
}

/// An image resolved for running a container.
#[derive(Debug, Clone)]
pub struct ResolvedImage {
    /// `sha256:<hex>` of the config blob.
    pub id: String,
    pub run_config: ImageRunConfig,
    /// Unpacked layer directories, bottom (base) first. Overlay lowerdir wants them reversed.
    pub layer_dirs: Vec<PathBuf>,
}

/// A container that uses an image (for `rmi` conflicts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageUser {
    /// Full container id (shown shortened).
    pub container_id: String,
    pub running: bool,
}

/// Tells the image store which containers use an image id (`sha256:<hex>`).
pub type InUse = Arc<dyn Fn(&str) -> Vec<ImageUser> + Send + Sync>;

/// One image in memory: its record plus its parsed config.
#[derive(Debug, Clone)]
pub struct Image {
    pub record: store::ImageRecord,
    pub config: ImageConfigFile,
}

#[derive(Default)]
pub(crate) struct State {
    /// Full reference string -> image id.
    pub refs: BTreeMap<String, String>,
    pub images: HashMap<String, Image>,
    /// diff id -> layer metadata.
    pub layers: HashMap<String, store::LayerMeta>,
}

pub struct ImageService {
    root: PathBuf,
    insecure: Vec<String>,
    state: Mutex<State>,
    pub(crate) in_use: RwLock<Option<InUse>>,
    /// Pulls/loads/imports in progress; garbage collection is deferred while any runs.
    writers: Mutex<usize>,
    gc_pending: std::sync::atomic::AtomicBool,
    /// `--registry-mirror`, `--max-concurrent-downloads`.
    pub(crate) pull: crate::config::PullOptions,
    /// Makes an unpacked layer durable before it is recorded ([`store::syncfs`]; a seam for tests).
    pub(crate) layer_sync: fn(&Path) -> std::io::Result<()>,
    /// Where the client-facing operations publish their `image` events ([`published`]).
    events: crate::events::EventBus,
    /// Pulls and pushes in progress.
    tasks: crate::tasks::Tasks,
}

impl ImageService {
    /// Opens (creating if needed) the store under `<data_root>/image`; image events go to `events`.
    pub fn open(data_root: &Path, insecure_registries: &[String], events: crate::events::EventBus) -> Result<Self, ImageError> {
        let root = data_root.join("image");
        for d in ["blobs/sha256", "layers", "images"] {
            let dir = root.join(d);
            std::fs::create_dir_all(&dir).at("creating", &dir)?;
        }
        let _ = std::fs::remove_dir_all(root.join("tmp"));
        std::fs::create_dir_all(root.join("tmp")).at("creating", &root.join("tmp"))?;
        let state = store::load_state(&root)?;
        tracing::debug!(images = state.images.len(), layers = state.layers.len(), "image store opened");
        let svc = ImageService {
            root,
            insecure: insecure_registries.to_vec(),
            state: Mutex::new(state),
            in_use: RwLock::new(None),
            writers: Mutex::new(0),
            gc_pending: std::sync::atomic::AtomicBool::new(false),
            pull: Default::default(),
            layer_sync: store::syncfs,
            events,
            tasks: crate::tasks::Tasks::new("images"),
        };
        // Whatever an interrupted operation left behind (hidden images wait for `set_in_use`).
        svc.collect_garbage()?;
        Ok(svc)
    }

    /// Sets the daemon's `--registry-mirror` and `--max-concurrent-downloads`.
    pub fn set_pull_options(&mut self, pull: crate::config::PullOptions) {
        self.pull = pull;
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Resolves a name (`busybox`, `busybox:latest`, `127.0.0.1:5000/busybox`, `repo@sha256:..`),
    /// a full or short id, to an image. `NotFound` carries Docker's text `No such image: <name>`.
    pub fn resolve(&self, name: &str) -> Result<ResolvedImage, ImageError> {
        let st = self.lock();
        let id = lookup(&st, name)?;
        let img = st.images.get(&id).ok_or_else(|| ImageError::NotFound(name.to_string()))?;
        Ok(ResolvedImage {
            id: id.clone(),
            run_config: img.config.run_config(),
            layer_dirs: img.record.diff_ids.iter().map(|d| self.layer_dir(d)).collect(),
        })
    }

    /// The image id a name resolves to.
    pub fn resolve_id(&self, name: &str) -> Result<String, ImageError> {
        lookup(&self.lock(), name)
    }

    /// A familiar name for an image id (its first tag), if it has one.
    pub fn image_ref_name(&self, id: &str) -> Option<String> {
        let st = self.lock();
        st.refs
            .iter()
            .filter(|(_, v)| v.as_str() == id)
            .filter_map(|(k, _)| Reference::parse(k).ok())
            .find(|r| !r.is_digest())
            .map(|r| r.familiar())
    }

    /// Number of images (for `docker info`).
    pub fn count(&self) -> usize {
        self.lock().images.values().filter(|i| !i.record.removed).count()
    }

    /// Installs the check used by `rmi` to refuse images in use by containers.
    pub fn set_in_use(&self, cb: InUse) {
        *self.in_use.write().unwrap_or_else(|p| p.into_inner()) = Some(cb);
        // Images deleted while a container still used them may be free now.
        if let Err(e) = self.collect_garbage() {
            tracing::warn!(error = %e, "image garbage collection failed");
        }
    }

    pub(crate) fn users_of(&self, id: &str) -> Vec<ImageUser> {
        let g = self.in_use.read().unwrap_or_else(|p| p.into_inner());
        g.as_ref().map(|f| f(id)).unwrap_or_default()
    }

    /// `layers/<hex>/diff` of a diff id.
    pub fn layer_dir(&self, diff_id: &str) -> PathBuf {
        self.root.join("layers").join(hex_of(diff_id)).join("diff")
    }

    /// `blobs/sha256/<hex>` of a digest.
    pub fn blob_path(&self, digest: &str) -> PathBuf {
        self.root.join("blobs/sha256").join(hex_of(digest))
    }

    /// Whether a registry host is reached over plain HTTP (127.0.0.0/8, localhost, `--insecure-registry`).
    pub fn is_insecure(&self, host: &str) -> bool {
        registry::is_insecure(host, &self.insecure)
    }

    /// Marks a pull/load/import in progress: garbage collection waits until none is.
    pub(crate) fn writer(&self) -> WriterGuard<'_> {
        *self.writers.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        WriterGuard { svc: self }
    }
}

pub(crate) struct WriterGuard<'a> {
    svc: &'a ImageService,
}

impl WriterGuard<'_> {
    /// The operation failed: collect what it left behind once no writer runs.
    pub fn failed(&self) {
        self.svc.gc_pending.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Drop for WriterGuard<'_> {
    fn drop(&mut self) {
        let left = {
            let mut w = self.svc.writers.lock().unwrap_or_else(|p| p.into_inner());
            *w -= 1;
            *w
        };
        if left == 0 && self.svc.gc_pending.swap(false, std::sync::atomic::Ordering::SeqCst) {
            if let Err(e) = self.svc.collect_garbage() {
                tracing::warn!(error = %e, "image garbage collection failed");
            }
        }
    }
}

/// `abc..` for `sha256:abc..` (and for a bare hex).
pub fn hex_of(digest: &str) -> &str {
    digest.strip_prefix("sha256:").unwrap_or(digest)
}

/// Resolves a name or id against the state, in Docker's order: full id, reference, id prefix.
pub(crate) fn lookup(st: &State, name: &str) -> Result<String, ImageError> {
    // dockerd names the normalised reference (`nope:latest`) when the name is one.
    let shown = match Reference::parse_tagged(name) {
        Ok(r) if !name.starts_with("sha256:") => r.familiar(),
        _ => name.to_string(),
    };
    let not_found = || ImageError::NotFound(shown.clone());
    let visible = |id: &String| st.images.get(id).is_some_and(|i| !i.record.removed);
    if let Some(h) = name.strip_prefix("sha256:") {
        if reference::is_hex64(h) {
            return st.images.contains_key(name).then(|| name.to_string()).ok_or_else(not_found);
        }
        return by_prefix(st, h).ok_or_else(not_found)?;
    }
    if reference::is_hex64(name) {
        let id = format!("sha256:{name}");
        return st.images.contains_key(&id).then_some(id).ok_or_else(not_found);
    }
    if let Ok(r) = Reference::parse_tagged(name) {
        if let Some(id) = st.refs.get(&r.to_string()) {
            if visible(id) {
                return Ok(id.clone());
            }
        }
    }
    if !name.is_empty() && name.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        if let Some(r) = by_prefix(st, name) {
            return r;
        }
    }
    Err(not_found())
}

fn by_prefix(st: &State, prefix: &str) -> Option<Result<String, ImageError>> {
    let mut hits = st.images.values().filter(|i| !i.record.removed).map(|i| &i.record.id).filter(|id| hex_of(id).starts_with(prefix));
    let first = hits.next()?;
    if hits.next().is_some() {
        return Some(Err(ImageError::Invalid(format!("multiple IDs found with provided prefix: {prefix}"))));
    }
    Some(Ok(first.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_order() {
        let mut st = State::default();
        let id = format!("sha256:{}", "ab".repeat(32));
        let img = Image { record: store::ImageRecord::new(&id, vec![]), config: Default::default() };
        st.images.insert(id.clone(), img);
        st.refs.insert("docker.io/library/busybox:latest".into(), id.clone());
        assert_eq!(lookup(&st, "busybox").unwrap(), id);
        assert_eq!(lookup(&st, "busybox:latest").unwrap(), id);
        assert_eq!(lookup(&st, "docker.io/library/busybox").unwrap(), id);
        assert_eq!(lookup(&st, &id).unwrap(), id);
        assert_eq!(lookup(&st, hex_of(&id)).unwrap(), id);
        assert_eq!(lookup(&st, "abab").unwrap(), id);
        assert_eq!(lookup(&st, "sha256:abab").unwrap(), id);
        let e = lookup(&st, "busybox:1").unwrap_err();
        assert_eq!(e.to_string(), "No such image: busybox:1");
        assert_eq!(lookup(&st, "nope").unwrap_err().to_string(), "No such image: nope:latest");
        assert_eq!(lookup(&st, "sha256:ff").unwrap_err().to_string(), "No such image: sha256:ff");
        assert!(matches!(lookup(&st, "nope"), Err(ImageError::NotFound(_))));
    }

    #[test]
    fn io_errors_name_the_operation_and_path() {
        let d = tempfile::tempdir().unwrap();
        // A file where the store wants its directories.
        std::fs::write(d.path().join("image"), b"").unwrap();
        let e = ImageService::open(d.path(), &[], Default::default()).err().expect("open over a file fails");
        let want = d.path().join("image/blobs/sha256");
        assert!(matches!(&e, ImageError::Io { op: "creating", path, .. } if *path == want), "{e:?}");
        assert!(e.to_string().starts_with(&format!("creating {}: ", want.display())), "{e}");
        assert_eq!(e.kind(), ErrorKind::Internal);
    }

    #[test]
    fn in_use_callback() {
        let d = tempfile::tempdir().unwrap();
        let svc = ImageService::open(d.path(), &[], Default::default()).unwrap();
        assert!(svc.users_of("x").is_empty());
        svc.set_in_use(Arc::new(|id: &str| vec![ImageUser { container_id: format!("c-{id}"), running: false }]));
        assert_eq!(svc.users_of("x")[0].container_id, "c-x");
        assert!(!svc.users_of("x")[0].running);
    }
}
