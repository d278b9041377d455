//! `--registry-mirror`: a Docker Hub image is looked up on each mirror in turn before Docker
//! Hub itself, as dockerd does. A mirror that cannot be reached, or does not have the manifest,
//! is skipped (logged); the pull then goes on with the next one, and at last with Docker Hub.
use super::reference::Reference;
use super::registry::{Credentials, RegistryClient, RemoteError};
use super::{ImageError, ImageService};

/// The registry host of Docker Hub images.
const HUB: &str = "registry-1.docker.io";

/// A connected client and the manifest it answered for the wanted tag or digest.
pub(super) struct Found {
    pub client: RegistryClient,
    pub manifest: Result<(Vec<u8>, Option<String>), RemoteError>,
}

impl ImageService {
    /// Connects to the first mirror that has `wanted` of `r` (Docker Hub images only), else to
    /// `r`'s own registry, and fetches the manifest.
    pub(super) async fn manifest_source(&self, r: &Reference, creds: Option<Credentials>, wanted: &str) -> Result<Found, ImageError> {
        let host = r.registry_host().to_string();
        if host == HUB {
            for m in &self.pull.mirrors {
                let Some((scheme, mhost)) = m.split_once("://") else { continue };
                let insecure = scheme == "http" || self.is_insecure(mhost);
                let client = match RegistryClient::connect(mhost, &r.path, insecure, creds.clone()).await {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!(mirror = %m, error = %e, "registry mirror unreachable; trying the next source");
                        continue;
                    }
                };
                match client.manifest(wanted).await {
                    Ok(Ok(found)) => {
                        tracing::info!(mirror = %m, image = %r, "pulling from registry mirror");
                        return Ok(Found { client, manifest: Ok(found) });
                    }
                    Ok(Err(e)) => tracing::info!(mirror = %m, image = %r, error = %e.text, "not on the registry mirror"),
                    Err(e) => tracing::warn!(mirror = %m, error = %e, "registry mirror failed; trying the next source"),
                }
            }
        }
        let client = RegistryClient::connect(&host, &r.path, self.is_insecure(&host), creds).await?;
        let manifest = client.manifest(wanted).await?;
        Ok(Found { client, manifest })
    }
}
