//! New images on top of another one: `docker commit` and every step of `docker build`.
//! The child's config is written like dockerd's: the parent's history and layers, plus one
//! history entry (an empty layer when the step changed only metadata) and `parent` set.
use super::config::{History, ImageConfigFile};
use super::{ImageError, ImageService};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use std::fs;
use std::io::{self, Write};
use std::path::PathBuf;

/// A layer tar being written to the store's work area, hashed on the way.
pub struct LayerWriter {
    path: PathBuf,
    file: io::BufWriter<fs::File>,
    hash: Sha256,
}

impl Write for LayerWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// A finished layer tar: its temp path and digest (= diff id, it is uncompressed).
pub struct LayerTar {
    path: PathBuf,
    digest: String,
}

impl LayerWriter {
    pub fn finish(mut self) -> io::Result<LayerTar> {
        self.file.flush()?;
        Ok(LayerTar { path: self.path, digest: format!("sha256:{}", hex::encode(self.hash.finalize())) })
    }
}

impl Drop for LayerTar {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// What a new image is made of.
pub struct NewImage {
    /// The parent image id; `None` for an image from `scratch`.
    pub parent: Option<String>,
    /// The new layer; `None` when only the config changes (an empty layer in the history).
    pub layer: Option<LayerTar>,
    /// The image's `config` object (Docker's container config fields).
    pub config: Map<String, Value>,
    /// `container_config` (what made the step: its `Cmd` is the step's description).
    pub container_config: Map<String, Value>,
    /// The container the image was committed from.
    pub container: Option<String>,
    pub author: String,
    pub comment: String,
    /// The history entry's `created_by`.
    pub created_by: String,
}

impl ImageService {
    /// A writer for a new layer tar in the work area.
    pub fn layer_writer(&self) -> io::Result<LayerWriter> {
        let path = self.tmp_path("commit");
        let file = io::BufWriter::with_capacity(256 * 1024, fs::File::create(&path)?);
        Ok(LayerWriter { path, file, hash: Sha256::new() })
    }

    /// The parsed config of an image id.
    pub fn config_of(&self, id: &str) -> Result<ImageConfigFile, ImageError> {
        let st = self.lock();
        st.images.get(id).map(|i| i.config.clone()).ok_or_else(|| ImageError::NotFound(id.to_string()))
    }

    /// Stores `n` as a new image (blocking); returns its id.
    pub fn create_child(&self, n: NewImage) -> Result<String, ImageError> {
        let writer = self.writer();
        let res = self.create_child_inner(n);
        if res.is_err() {
            writer.failed();
        }
        res
    }

    fn create_child_inner(&self, mut n: NewImage) -> Result<String, ImageError> {
        let parent = n.parent.as_deref().map(|p| self.config_of(p)).transpose()?.unwrap_or_default();
        let mut diff_ids = parent.rootfs.diff_ids.clone();
        let mut history = parent.history.clone();
        let created = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
        if let Some(layer) = n.layer.take() {
            if !self.blob_path(&layer.digest).exists() {
                self.adopt_blob(&layer.path, &layer.digest)?;
            }
            let meta = self.register_layer(&layer.digest, Some(&layer.digest), &mut |_| {})?;
            diff_ids.push(meta.diff_id);
        }
        let empty_layer = diff_ids.len() == parent.rootfs.diff_ids.len();
        let opt = |s: &str| (!s.is_empty()).then(|| s.to_string());
        history.push(History {
            created: Some(created.clone()),
            created_by: opt(&n.created_by),
            author: opt(&n.author),
            comment: opt(&n.comment),
            empty_layer,
        });
        let mut cfg = json!({
            "architecture": "amd64",
            "os": "linux",
            "config": Value::Object(n.config),
            "container_config": Value::Object(n.container_config),
            "created": created,
            "docker_version": crate::ENGINE_VERSION,
            "history": history,
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        });
        for (k, v) in
            [("parent", n.parent.clone()), ("container", n.container.clone()), ("author", opt(&n.author)), ("comment", opt(&n.comment))]
        {
            if let Some(v) = v {
                cfg[k] = json!(v);
            }
        }
        let bytes = serde_json::to_vec(&cfg).map_err(|e| ImageError::Invalid(e.to_string()))?;
        self.commit_image(&bytes, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn children_stack_layers_and_history() {
        let d = tempfile::tempdir().unwrap();
        let svc = Arc::new(ImageService::open(d.path(), &[], Default::default()).unwrap());
        let mut w = svc.layer_writer().unwrap();
        w.write_all(&crate::image::store::tests::layer_tar(&[("a", b"1")])).unwrap();
        let base = NewImage {
            parent: None,
            layer: Some(w.finish().unwrap()),
            config: Map::new(),
            container_config: Map::new(),
            container: None,
            author: String::new(),
            comment: String::new(),
            created_by: "ADD a".into(),
        };
        let base = svc.create_child(base).unwrap();
        let mut cfg = Map::new();
        cfg.insert("Cmd".into(), json!(["sh"]));
        let child = NewImage {
            parent: Some(base.clone()),
            layer: None,
            config: cfg,
            container_config: Map::new(),
            container: Some("c1".into()),
            author: "me".into(),
            comment: String::new(),
            created_by: "CMD sh".into(),
        };
        let child = svc.create_child(child).unwrap();
        let c = svc.config_of(&child).unwrap();
        assert_eq!(c.parent.as_deref(), Some(base.as_str()));
        assert_eq!(c.rootfs.diff_ids.len(), 1);
        assert_eq!(c.history.len(), 2);
        assert!(c.history[1].empty_layer && !c.history[0].empty_layer);
        assert_eq!(c.author.as_deref(), Some("me"));
        assert_eq!(svc.resolve(&child).unwrap().run_config.cmd, vec!["sh"]);
        assert_eq!(fs::read(svc.resolve(&child).unwrap().layer_dirs[0].join("a")).unwrap(), b"1");
        // The temp tar is gone.
        assert_eq!(fs::read_dir(svc.root().join("tmp")).unwrap().count(), 0);
    }
}
