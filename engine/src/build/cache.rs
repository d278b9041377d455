//! The build cache: one file per key (`<data-root>/build/cache/<hex>`) holding the id of the
//! image a step made. The key hashes the parent image, the step as written after variable
//! substitution (with the build args a `RUN` sees), the resulting config, and for
//! `COPY`/`ADD` the hash of the files. An entry whose image is gone is a miss.
use super::BuildError;
use crate::image::ImageService;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::path::PathBuf;

pub struct Cache {
    dir: PathBuf,
}

/// The cache key of a step.
pub fn key(parent: Option<&str>, descriptor: &str, config: &Map<String, Value>) -> String {
    let mut h = Sha256::new();
    h.update(parent.unwrap_or("scratch").as_bytes());
    h.update(b"\n");
    h.update(descriptor.as_bytes());
    h.update(b"\n");
    h.update(serde_json::to_vec(config).unwrap_or_default());
    hex::encode(h.finalize())
}

impl Cache {
    pub fn new(dir: PathBuf) -> Self {
        Cache { dir }
    }

    /// The image of `key`, if it is still there.
    pub fn get(&self, key: &str, images: &ImageService) -> Option<String> {
        let id = std::fs::read_to_string(self.dir.join(key)).ok()?;
        let id = id.trim();
        images.resolve_id(id).ok().filter(|r| r == id)
    }

    pub fn put(&self, key: &str, id: &str) -> Result<(), BuildError> {
        std::fs::create_dir_all(&self.dir).map_err(BuildError::io("creating", &self.dir))?;
        let path = self.dir.join(key);
        crate::fsutil::write_atomic(&path, id.as_bytes()).map_err(BuildError::io("writing", &path))?;
        Ok(())
    }

    /// The entries as `system df` lists build cache records: one per step image still there,
    /// sized by the layer the step added (0 for a config-only step).
    pub fn records(&self, images: &ImageService) -> Vec<serde_json::Value> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else { return vec![] };
        let mut out = vec![];
        for e in entries.flatten() {
            let key = e.file_name().to_string_lossy().into_owned();
            let Some(id) = self.get(&key, images) else { continue };
            let st = images.lock();
            let Some(img) = st.images.get(&id) else { continue };
            let parent = img.config.parent.clone().unwrap_or_default();
            let parent_layers = st.images.get(&parent).map(|p| p.record.diff_ids.len()).unwrap_or(0);
            let size = match img.record.diff_ids.len() > parent_layers {
                true => img.record.diff_ids.last().and_then(|d| st.layers.get(d)).map(|l| l.size).unwrap_or(0),
                false => 0,
            };
            let description = img.config.history.last().and_then(|h| h.created_by.clone()).unwrap_or_default();
            out.push(serde_json::json!({
                "ID": key, "Parent": parent, "Type": "regular", "Description": description,
                "InUse": false, "Shared": false, "Size": size,
                "CreatedAt": img.config.created.clone().unwrap_or_default(), "LastUsedAt": null, "UsageCount": 0,
            }));
        }
        out
    }

    /// Forgets every entry and deletes the step images no tag and no container holds.
    /// Returns the ids of the forgotten entries and the bytes reclaimed. Blocking.
    pub fn prune(&self, images: &ImageService) -> Result<(Vec<String>, u64), BuildError> {
        let layer_bytes = || images.lock().layers.values().map(|l| l.size).sum::<u64>();
        let before = layer_bytes();
        let mut deleted = vec![];
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((vec![], 0)),
            Err(e) => return Err(BuildError::io("reading", &self.dir)(e)),
        };
        for e in entries.flatten() {
            let id = std::fs::read_to_string(e.path()).unwrap_or_default().trim().to_string();
            std::fs::remove_file(e.path()).map_err(BuildError::io("removing", &e.path()))?;
            deleted.push(e.file_name().to_string_lossy().into_owned());
            if images.resolve_id(&id).is_ok_and(|r| r == id) && images.refs_of(&id).is_empty() && images.users_of(&id).is_empty() {
                if let Err(err) = images.delete(&id, false, true) {
                    tracing::debug!(%id, error = %err, "build prune: image kept");
                }
            }
        }
        Ok((deleted, before.saturating_sub(layer_bytes())))
    }
}
