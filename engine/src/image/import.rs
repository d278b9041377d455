//! `docker import`: a root filesystem tarball (maybe compressed) becomes a one-layer image.
use super::config::{apply_changes, empty_container_config};
use super::reference::Reference;
use super::{ImageError, ImageService, IoContext};
use futures_util::{Stream, StreamExt};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use tokio::io::AsyncWriteExt;

/// Where an imported image's name comes from: `repo=NAME[:TAG]` and `tag=`.
pub fn import_reference(repo: &str, tag: &str) -> Result<Option<Reference>, ImageError> {
    if repo.is_empty() {
        return Ok(None);
    }
    let mut r = Reference::parse(repo)?;
    if r.digest.is_some() {
        return Err(ImageError::Invalid("cannot import digest reference".into()));
    }
    if !tag.is_empty() {
        if !super::reference::valid_tag(tag) {
            return Err(ImageError::Invalid(format!("invalid tag format: {tag}")));
        }
        r.tag = Some(tag.to_string());
    }
    if r.tag.is_none() {
        r.tag = Some(super::reference::DEFAULT_TAG.into());
    }
    Ok(Some(r))
}

impl ImageService {
    /// Writes a byte stream to a temp file; returns (path, sha256 digest, length).
    pub async fn spool_stream<S, E>(&self, mut body: S) -> Result<(PathBuf, String, u64), ImageError>
    where
        S: Stream<Item = Result<bytes::Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let tmp = self.tmp_path("upload");
        let mut f = tokio::fs::File::create(&tmp).await.at("creating", &tmp)?;
        let mut h = Sha256::new();
        let mut n = 0u64;
        let res: Result<(), ImageError> = async {
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|e| ImageError::Invalid(format!("reading request body: {e}")))?;
                h.update(&chunk);
                n += chunk.len() as u64;
                f.write_all(&chunk).await.at("writing", &tmp)?;
            }
            f.flush().await.at("writing", &tmp)?;
            Ok(())
        }
        .await;
        if let Err(e) = res {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(e);
        }
        Ok((tmp, format!("sha256:{}", hex::encode(h.finalize())), n))
    }

    /// Imports a spooled tarball as a one-layer image (blocking). Returns the image id.
    pub fn import_file(
        &self,
        tmp: &Path,
        digest: &str,
        name: Option<&Reference>,
        changes: &[String],
        message: &str,
    ) -> Result<String, ImageError> {
        let writer = self.writer();
        let res = self.import_inner(tmp, digest, name, changes, message);
        if res.is_err() {
            let _ = std::fs::remove_file(tmp);
            writer.failed();
        }
        res
    }

    fn import_inner(
        &self,
        tmp: &Path,
        digest: &str,
        name: Option<&Reference>,
        changes: &[String],
        message: &str,
    ) -> Result<String, ImageError> {
        let mut cfg = empty_container_config();
        apply_changes(&mut cfg, changes)?;
        let had_blob = self.blob_path(digest).exists();
        if had_blob {
            let _ = std::fs::remove_file(tmp);
        } else {
            self.adopt_blob(tmp, digest)?;
        }
        let layer = self.register_layer(digest, None, &mut |_| {})?;
        if layer.blob != digest && !had_blob {
            // The layer was already stored from another blob: this copy is not needed.
            let _ = std::fs::remove_file(self.blob_path(digest));
        }
        let created = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
        let comment = if message.is_empty() { "Imported from -".to_string() } else { message.to_string() };
        let config = json!({
            "architecture": "amd64",
            "comment": comment,
            "config": Value::Object(cfg),
            "created": created,
            "docker_version": crate::ENGINE_VERSION,
            "history": [{"created": created, "comment": comment}],
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [layer.diff_id]},
        });
        let bytes = serde_json::to_vec(&config).map_err(|e| ImageError::Invalid(e.to_string()))?;
        let id = self.commit_image(&bytes, None)?;
        if let Some(r) = name {
            self.set_ref(r, &id)?;
        }
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn import_refs() {
        assert_eq!(import_reference("", "").unwrap(), None);
        assert_eq!(import_reference("busybox", "").unwrap().unwrap().familiar(), "busybox:latest");
        assert_eq!(import_reference("busybox:1", "").unwrap().unwrap().familiar(), "busybox:1");
        assert_eq!(import_reference("busybox", "2").unwrap().unwrap().familiar(), "busybox:2");
        assert!(import_reference("Bad Name", "").is_err());
    }

    #[tokio::test]
    async fn imports_gzipped_tar_with_changes() {
        let d = tempfile::tempdir().unwrap();
        let svc = Arc::new(ImageService::open(d.path(), &[], Default::default()).unwrap());
        let tar = crate::image::store::tests::layer_tar(&[("bin/x", b"x")]);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &tar).unwrap();
        let gz = gz.finish().unwrap();
        let body = futures_util::stream::iter(vec![Ok::<_, std::io::Error>(bytes::Bytes::from(gz))]);
        let (tmp, dg, _) = svc.spool_stream(body).await.unwrap();
        let r = import_reference("imp:v1", "").unwrap();
        let id = svc.import_file(&tmp, &dg, r.as_ref(), &[r#"CMD ["sh"]"#.into(), "ENV A=b".into()], "").unwrap();
        let res = svc.resolve("imp:v1").unwrap();
        assert_eq!(res.id, id);
        assert_eq!(res.run_config.cmd, vec!["sh"]);
        assert_eq!(res.run_config.env, vec!["A=b"]);
        assert_eq!(std::fs::read(res.layer_dirs[0].join("bin/x")).unwrap(), b"x");
        let st = svc.lock();
        let img = &st.images[&id];
        assert_eq!(img.config.architecture, "amd64");
        assert_eq!(img.config.rootfs.diff_ids[0], crate::image::store::digest_of(&tar));
    }
}
