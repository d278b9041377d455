//! `docker push`: uploads an image's layers (gzip), config and a schema-2 manifest, with the
//! progress messages dockerd sends.
use super::progress::{layer_msg, Progress};
use super::reference::Reference;
use super::registry::{Credentials, RegistryClient};
use super::store::digest_of;
use super::{hex_of, ImageError, ImageService, IoContext};
use serde_json::json;
use std::io::Read;
use std::sync::Arc;

const MANIFEST_V2: &str = "application/vnd.docker.distribution.manifest.v2+json";
const CONFIG_V1: &str = "application/vnd.docker.container.image.v1+json";
const LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

/// The layer as the registry gets it: the stored blob when it is gzip, else gzip of the tar.
fn gzip_layer(blob: &std::path::Path) -> Result<Vec<u8>, ImageError> {
    let data = std::fs::read(blob).at("reading", blob)?;
    if data.starts_with(&[0x1f, 0x8b]) {
        return Ok(data);
    }
    let mut enc = flate2::read::GzEncoder::new(&data[..], flate2::Compression::fast());
    let mut out = Vec::with_capacity(data.len() / 2);
    enc.read_to_end(&mut out).at("compressing", blob)?;
    Ok(out)
}

impl ImageService {
    /// Pushes `name` (`repo[:tag]`; `tag` overrides) to its registry.
    pub async fn push(self: &Arc<Self>, name: &str, tag: &str, creds: Option<Credentials>, progress: &Progress) -> Result<(), ImageError> {
        let res = self.push_inner(name, tag, creds, progress).await;
        if let Err(e) = &res {
            progress.error(&e.to_string()).await;
        }
        res
    }

    async fn push_inner(
        self: &Arc<Self>,
        name: &str,
        tag: &str,
        creds: Option<Credentials>,
        progress: &Progress,
    ) -> Result<(), ImageError> {
        let mut r = Reference::parse(name)?;
        if !tag.is_empty() {
            r.tag = Some(tag.to_string());
        }
        let tag = r.tag.clone().unwrap_or_else(|| super::reference::DEFAULT_TAG.to_string());
        let r = r.with_tag(&tag);
        let id = self.resolve_id(&r.familiar()).map_err(|_| ImageError::NotFound(r.familiar()))?;
        let (diff_ids, blobs) = {
            let st = self.lock();
            let img = st.images.get(&id).ok_or_else(|| ImageError::NotFound(r.familiar()))?;
            let ids = img.record.diff_ids.clone();
            let blobs: Vec<String> = ids
                .iter()
                .map(|d| st.layers.get(d).map(|m| m.blob.clone()).ok_or_else(|| ImageError::NotFound(format!("layer {d}"))))
                .collect::<Result<_, _>>()?;
            (ids, blobs)
        };
        let host = r.registry_host().to_string();
        progress.send(json!({"status": format!("The push refers to repository [{}]", r.name())})).await;
        let client = RegistryClient::connect_for(&host, &r.path, self.is_insecure(&host), creds, "pull,push").await?;
        for d in diff_ids.iter().rev() {
            progress.send(layer_msg("Preparing", super::pull::short(d))).await;
        }
        let mut layers = vec![];
        for (d, blob) in diff_ids.iter().zip(&blobs).rev() {
            let short = super::pull::short(d).to_string();
            let path = self.blob_path(blob);
            let data = {
                let path2 = path.clone();
                tokio::task::spawn_blocking(move || gzip_layer(&path2))
                    .await
                    .map_err(|source| ImageError::Join { what: "compressing a layer", source })??
            };
            let digest = digest_of(&data);
            let size = data.len() as u64;
            if client.has_blob(&digest).await? {
                progress.send(layer_msg("Layer already exists", &short)).await;
            } else {
                progress.send(super::progress::bar_msg("Pushing", &short, 0, size)).await;
                client.put_blob(&digest, data).await?;
                progress.send(super::progress::bar_msg("Pushing", &short, size, size)).await;
                progress.send(layer_msg("Pushed", &short)).await;
            }
            layers.push((digest, size));
        }
        layers.reverse();
        let config = std::fs::read(self.blob_path(&id)).at("reading", &self.blob_path(&id))?;
        let config_digest = format!("sha256:{}", hex_of(&id));
        if !client.has_blob(&config_digest).await? {
            client.put_blob(&config_digest, config.clone()).await?;
        }
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": MANIFEST_V2,
            "config": {"mediaType": CONFIG_V1, "size": config.len(), "digest": config_digest},
            "layers": layers.iter().map(|(d, s)| json!({"mediaType": LAYER_GZIP, "size": s, "digest": d})).collect::<Vec<_>>(),
        });
        let body = serde_json::to_vec_pretty(&manifest).map_err(|e| ImageError::Registry(e.to_string()))?;
        let digest = digest_of(&body);
        let size = body.len();
        client.put_manifest(&tag, MANIFEST_V2, body).await?;
        progress.send(json!({"status": format!("{tag}: digest: {digest} size: {size}")})).await;
        progress.send(json!({"progressDetail": {}, "aux": {"Tag": tag, "Digest": digest, "Size": size}})).await;
        tracing::info!(image = %r.familiar(), %digest, "pushed");
        Ok(())
    }
}
