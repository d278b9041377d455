//! Image store: content-addressed blobs, unpacked layers stacked with overlayfs, references,
//! registry pull, import, load/save. OWNER: image helper (see the interface contract below).
//!
//! On-disk layout under `<data-root>/image/` (all state written via `fsutil`):
//!   blobs/sha256/<hex>        verified blobs (layer tars as received, configs, manifests)
//!   layers/<diffid-hex>/diff/ an unpacked layer (lowerdir for overlayfs), plus meta.json
//!   images/<id-hex>.json      one record per image (config digest = image id)
//!   refs.json                 references (`busybox:latest`, `127.0.0.1:5000/busybox:latest`,
//!                             digests) -> image id
use crate::{Classify, ErrorKind};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("No such image: {0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Registry(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl Classify for ImageError {
    fn kind(&self) -> ErrorKind {
        match self {
            ImageError::NotFound(_) => ErrorKind::NotFound,
            ImageError::Conflict(_) => ErrorKind::Conflict,
            ImageError::Invalid(_) => ErrorKind::InvalidParameter,
            ImageError::Registry(_) | ImageError::Io(_) => ErrorKind::Internal,
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

/// Tells the image store whether an image id (`sha256:<hex>`) is used by any container.
pub type InUse = Arc<dyn Fn(&str) -> bool + Send + Sync>;

pub struct ImageService {
    root: PathBuf,
    insecure: Vec<String>,
}

impl ImageService {
    /// Opens (creating if needed) the store under `<data_root>/image`.
    pub fn open(data_root: &Path, insecure_registries: &[String]) -> Result<Self, ImageError> {
        let root = data_root.join("image");
        std::fs::create_dir_all(&root)?;
        Ok(ImageService { root, insecure: insecure_registries.to_vec() })
    }

    /// Resolves a name (`busybox`, `busybox:latest`, `127.0.0.1:5000/busybox`, `repo@sha256:..`),
    /// a full or short id, to an image. `NotFound` carries Docker's text `No such image: <name>`.
    pub fn resolve(&self, name: &str) -> Result<ResolvedImage, ImageError> {
        let _ = (&self.root, &self.insecure);
        Err(ImageError::NotFound(name.to_string()))
    }

    /// Number of images (for `docker info`).
    pub fn count(&self) -> usize {
        0
    }

    /// Installs the check used by `rmi` to refuse images in use by containers.
    pub fn set_in_use(&self, _f: InUse) {}
}
