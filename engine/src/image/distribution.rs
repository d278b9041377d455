//! `GET /distribution/{name}/json`: what a registry says about an image without pulling it:
//! the manifest's descriptor and the platforms it has.
use super::manifest::Manifest;
use super::reference::Reference;
use super::registry::{Credentials, RegistryClient};
use super::store::digest_of;
use super::{ImageError, ImageService};
use serde_json::{json, Value};

impl ImageService {
    pub async fn distribution(&self, name: &str, creds: Option<Credentials>) -> Result<Value, ImageError> {
        let mut r = Reference::parse_tagged(name)?;
        if r.tag.is_none() && r.digest.is_none() {
            r.tag = Some(super::reference::DEFAULT_TAG.into());
        }
        let host = r.registry_host().to_string();
        let client = RegistryClient::connect(&host, &r.path, self.is_insecure(&host), creds).await?;
        let wanted = r.digest.clone().or_else(|| r.tag.clone()).unwrap_or_else(|| "latest".into());
        let (body, ct) = client.manifest(&wanted).await?.map_err(|e| super::pull::not_found(&r, &e))?;
        let media_type = serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|v| v.get("mediaType").and_then(|m| m.as_str()).map(String::from))
            .or_else(|| ct.as_deref().map(|c| c.split(';').next().unwrap_or("").trim().to_string()))
            .unwrap_or_default();
        let platforms: Vec<Value> = match Manifest::parse(&body, ct.as_deref())? {
            Manifest::Index { manifests } => manifests
                .iter()
                .filter_map(|d| d.platform.as_ref())
                .map(|p| {
                    let mut v = json!({ "architecture": p.architecture, "os": p.os });
                    if let Some(var) = &p.variant {
                        v["variant"] = json!(var);
                    }
                    v
                })
                .collect(),
            Manifest::Image { config, .. } => {
                let bytes = client.blob(&config.digest).await?.bytes().await.map_err(|e| ImageError::Registry(e.to_string()))?;
                let cfg = super::config::ImageConfigFile::parse(&bytes)?;
                vec![json!({ "architecture": cfg.architecture, "os": cfg.os })]
            }
        };
        Ok(json!({
            "Descriptor": { "mediaType": media_type, "digest": digest_of(&body), "size": body.len() },
            "Platforms": platforms,
        }))
    }
}
