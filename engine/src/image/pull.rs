//! `docker pull`: resolve the manifest (before any output, so "not found" is a plain HTTP
//! error like dockerd's), then stream dockerd's progress messages while layers download
//! (`--max-concurrent-downloads` at a time, 3 by default, digests verified) and unpack in order.
use super::manifest::{select_platform, Descriptor, Manifest};
use super::progress::{bar_msg, layer_msg, Progress};
use super::reference::Reference;
use super::registry::{Credentials, RegistryClient, RemoteError};
use super::store::digest_of;
use super::{hex_of, ImageError, ImageService, IoContext};
use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;

/// A pull whose manifest is known; `run` downloads and unpacks it.
pub struct PreparedPull {
    svc: Arc<ImageService>,
    client: Arc<RegistryClient>,
    reference: Reference,
    /// Digest of the manifest (or index) the reference named.
    digest: String,
    /// Every manifest body fetched (index and image manifest): kept as blobs.
    manifests: Vec<Vec<u8>>,
    config: Descriptor,
    layers: Vec<Descriptor>,
}

pub(crate) fn not_found(r: &Reference, e: &RemoteError) -> ImageError {
    match e.code.as_str() {
        "MANIFEST_UNKNOWN" => ImageError::RemoteNotFound(format!("manifest for {} not found: {}", r.familiar(), e.text)),
        "NAME_UNKNOWN" => ImageError::RemoteNotFound(format!("repository {} not found: {}", r.familiar_name(), e.text)),
        "DENIED" | "UNAUTHORIZED" => ImageError::RemoteNotFound(format!(
            "pull access denied for {}, repository does not exist or may require 'docker login': {}",
            r.familiar_name(),
            e.text
        )),
        _ if e.status == reqwest::StatusCode::NOT_FOUND => {
            ImageError::RemoteNotFound(format!("manifest for {} not found: {}", r.familiar(), e.text))
        }
        _ => ImageError::Registry(e.text.clone()),
    }
}

impl ImageService {
    /// Connects to the registry and fetches the manifest for `r` (which has a tag or digest).
    pub async fn prepare_pull(self: &Arc<Self>, r: Reference, creds: Option<Credentials>) -> Result<PreparedPull, ImageError> {
        let wanted = r.digest.clone().or_else(|| r.tag.clone()).unwrap_or_else(|| "latest".into());
        let super::mirror::Found { client, manifest } = self.manifest_source(&r, creds, &wanted).await?;
        let (body, ct) = manifest.map_err(|e| not_found(&r, &e))?;
        let digest = digest_of(&body);
        if let Some(d) = &r.digest {
            if d != &digest {
                return Err(ImageError::Registry(format!("manifest verification failed for digest {d}")));
            }
        }
        let mut manifests = vec![body.clone()];
        let (config, layers) = match Manifest::parse(&body, ct.as_deref())? {
            Manifest::Image { config, layers } => (config, layers),
            Manifest::Index { manifests: list } => {
                let pick = select_platform(&list)?.digest.clone();
                let (b, ct) = client.manifest(&pick).await?.map_err(|e| not_found(&r, &e))?;
                if digest_of(&b) != pick {
                    return Err(ImageError::Registry(format!("manifest verification failed for digest {pick}")));
                }
                manifests.push(b.clone());
                match Manifest::parse(&b, ct.as_deref())? {
                    Manifest::Image { config, layers } => (config, layers),
                    Manifest::Index { .. } => return Err(ImageError::Registry("nested manifest lists are not supported".into())),
                }
            }
        };
        Ok(PreparedPull { svc: self.clone(), client: Arc::new(client), reference: r, digest, manifests, config, layers })
    }

    /// Prepares and runs a pull; returns the image id.
    pub async fn pull(self: &Arc<Self>, r: Reference, creds: Option<Credentials>, progress: &Progress) -> Result<String, ImageError> {
        let p = self.prepare_pull(r, creds).await?;
        p.run(progress).await
    }
}

impl PreparedPull {
    /// The reference being pulled.
    pub fn reference(&self) -> &Reference {
        &self.reference
    }

    /// Downloads, verifies and unpacks; reports progress; returns the image id. Errors are also
    /// sent on the progress stream (dockerd's `errorDetail`).
    pub async fn run(self, progress: &Progress) -> Result<String, ImageError> {
        let svc = self.svc.clone();
        let writer = svc.writer();
        match self.run_inner(progress).await {
            Ok(id) => Ok(id),
            Err(e) => {
                writer.failed();
                progress.error(&e.to_string()).await;
                Err(e)
            }
        }
    }

    async fn run_inner(self, progress: &Progress) -> Result<String, ImageError> {
        let r = &self.reference;
        let shown = r.digest.clone().or_else(|| r.tag.clone()).unwrap_or_default();
        progress.status_id(&format!("Pulling from {}", r.path), &shown).await;

        let resp = self.client.blob(&self.config.digest).await?;
        let config_bytes = super::registry::read_capped(resp, super::registry::MAX_CONFIG, "image config").await?;
        if digest_of(&config_bytes) != self.config.digest {
            return Err(ImageError::Registry(format!("config digest mismatch for {}", self.config.digest)));
        }
        let cfg = super::config::ImageConfigFile::parse(&config_bytes)?;
        let diff_ids = cfg.rootfs.diff_ids.clone();
        if diff_ids.len() != self.layers.len() {
            return Err(ImageError::Registry(format!(
                "image config has {} layers but the manifest has {}",
                diff_ids.len(),
                self.layers.len()
            )));
        }

        // Which layers are new; announce them all first, like dockerd.
        let mut todo = Vec::new();
        for (i, l) in self.layers.iter().enumerate() {
            let exists = self.svc.has_layer(&diff_ids[i]) || self.svc.layer_for_blob(&l.digest).as_deref() == Some(diff_ids[i].as_str());
            if exists {
                progress.layer("Already exists", short(&l.digest)).await;
            } else {
                progress.layer("Pulling fs layer", short(&l.digest)).await;
                todo.push(i);
            }
        }
        let parallel = self.svc.pull.max_concurrent_downloads.max(1);
        for &i in todo.iter().skip(parallel) {
            progress.layer("Waiting", short(&self.layers[i].digest)).await;
        }
        let sem = Arc::new(tokio::sync::Semaphore::new(parallel));
        let mut handles = std::collections::HashMap::new();
        for &i in &todo {
            let (svc, client, desc, p, sem) =
                (self.svc.clone(), self.client.clone(), self.layers[i].clone(), progress.clone(), sem.clone());
            let blob_present = svc.blob_path(&desc.digest).exists();
            handles.insert(
                i,
                AbortOnDrop(self.svc.tasks().spawn(async move {
                    if blob_present {
                        p.layer("Download complete", short(&desc.digest)).await;
                        return Ok(());
                    }
                    let _permit = sem.acquire_owned().await.map_err(|_| ImageError::Registry("pull cancelled".into()))?;
                    download(&svc, &client, &desc, &p).await
                })),
            );
        }
        for &i in &todo {
            let desc = &self.layers[i];
            let Some(mut h) = handles.remove(&i) else { continue };
            (&mut h.0).await.map_err(|source| ImageError::Join { what: "download task failed", source })??;
            let total = desc.size.max(0) as u64;
            let (svc, p, blob, diff, id12) =
                (self.svc.clone(), progress.clone(), desc.digest.clone(), diff_ids[i].clone(), short(&desc.digest).to_string());
            self.svc
                .tasks()
                .spawn_blocking(move || {
                    let mut last = Instant::now() - Duration::from_secs(1);
                    let mut cb = |n: u64| {
                        if last.elapsed() >= Duration::from_millis(100) || n >= total {
                            last = Instant::now();
                            p.send_blocking(bar_msg("Extracting", &id12, n, total.max(n)));
                        }
                    };
                    svc.register_layer(&blob, Some(&diff), &mut cb)
                })
                .await
                .map_err(|source| ImageError::Join { what: "extract task failed", source })??;
            progress.layer("Pull complete", short(&desc.digest)).await;
        }

        for m in &self.manifests {
            self.svc.put_blob(m, None)?;
        }
        let existed = self.svc.lock().images.contains_key(&digest_of(&config_bytes));
        let id = self.svc.commit_image(&config_bytes, Some(&self.digest))?;
        let mut updated = !existed;
        if r.tag.is_some() && r.digest.is_none() {
            let prev = self.svc.lock().refs.get(&r.to_string()).cloned();
            if prev.as_deref() != Some(id.as_str()) {
                updated = true;
                self.svc.set_ref(r, &id)?;
            }
        }
        self.svc.set_ref(&r.with_digest(&self.digest), &id)?;
        progress.status(&format!("Digest: {}", self.digest)).await;
        let what = if updated { "Downloaded newer image for" } else { "Image is up to date for" };
        progress.status(&format!("Status: {what} {}", r.familiar())).await;
        Ok(id)
    }
}

/// Aborts a download when the pull gives up early.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// `abcdef012345` from `sha256:abcdef012345...`
pub fn short(digest: &str) -> &str {
    let h = hex_of(digest);
    &h[..h.len().min(12)]
}

async fn download(svc: &ImageService, client: &RegistryClient, desc: &Descriptor, p: &Progress) -> Result<(), ImageError> {
    let id12 = short(&desc.digest);
    let resp = client.blob(&desc.digest).await?;
    let total = if desc.size > 0 { desc.size as u64 } else { resp.content_length().unwrap_or(0) };
    let tmp = svc.tmp_path("dl");
    let mut f = tokio::fs::File::create(&tmp).await.at("creating", &tmp)?;
    let mut h = Sha256::new();
    let mut n = 0u64;
    let mut last = Instant::now() - Duration::from_secs(1);
    let mut stream = resp.bytes_stream();
    let res: Result<(), ImageError> = async {
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| ImageError::Registry(format!("downloading {}: {e}", desc.digest)))?;
            // The download stops at the size the manifest declares.
            if desc.size > 0 && n + chunk.len() as u64 > desc.size as u64 {
                return Err(ImageError::Registry(format!(
                    "filesystem layer {} is larger than its declared size of {} bytes",
                    desc.digest, desc.size
                )));
            }
            h.update(&chunk);
            f.write_all(&chunk).await.at("writing", &tmp)?;
            n += chunk.len() as u64;
            if last.elapsed() >= Duration::from_millis(100) {
                last = Instant::now();
                p.send(bar_msg("Downloading", id12, n, total)).await;
            }
        }
        f.flush().await.at("writing", &tmp)?;
        f.sync_all().await.at("syncing", &tmp)?;
        Ok(())
    }
    .await;
    if let Err(e) = res {
        let _ = tokio::fs::remove_file(&tmp).await;
        return Err(e);
    }
    p.send(bar_msg("Downloading", id12, n, total)).await;
    p.layer("Verifying Checksum", id12).await;
    let got = format!("sha256:{}", hex::encode(h.finalize()));
    if got != desc.digest || (desc.size > 0 && n != desc.size as u64) {
        let _ = tokio::fs::remove_file(&tmp).await;
        return Err(ImageError::Registry(format!("filesystem layer verification failed for digest {}", desc.digest)));
    }
    svc.adopt_blob(&tmp, &desc.digest)?;
    p.send(layer_msg("Download complete", id12)).await;
    Ok(())
}
