//! Registry manifests: Docker v2 schema 2, OCI image manifest, manifest list / OCI index.
use super::ImageError;
use serde::{Deserialize, Serialize};

pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

/// What we send in `Accept` for manifests.
pub const ACCEPT: &str = "application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json";

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Platform {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Descriptor {
    #[serde(rename = "mediaType", default)]
    pub media_type: String,
    pub digest: String,
    #[serde(default)]
    pub size: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<std::collections::BTreeMap<String, String>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct Raw {
    #[serde(rename = "schemaVersion", default)]
    schema_version: i64,
    #[serde(rename = "mediaType", default)]
    media_type: Option<String>,
    #[serde(default)]
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Vec<Descriptor>,
    #[serde(default)]
    manifests: Vec<Descriptor>,
}

fn check_digests<'a>(ds: impl IntoIterator<Item = &'a Descriptor>) -> Result<(), ImageError> {
    for d in ds {
        // Digests become paths of the blob store: nothing else may pass.
        if !super::reference::valid_digest(&d.digest) {
            return Err(ImageError::Registry(format!(
                "invalid manifest: digest {:?} is not sha256: followed by 64 hex characters",
                d.digest
            )));
        }
    }
    Ok(())
}

/// A parsed manifest.
#[derive(Debug, Clone)]
pub enum Manifest {
    Image { config: Descriptor, layers: Vec<Descriptor> },
    Index { manifests: Vec<Descriptor> },
}

impl Manifest {
    /// Parses a manifest body; `content_type` is the response's Content-Type, if any.
    pub fn parse(body: &[u8], content_type: Option<&str>) -> Result<Self, ImageError> {
        let raw: Raw = serde_json::from_slice(body).map_err(|e| ImageError::Registry(format!("invalid manifest: {e}")))?;
        let mt = raw.media_type.clone().or_else(|| content_type.map(|c| c.split(';').next().unwrap_or("").trim().to_string()));
        if raw.schema_version == 1 || mt.as_deref() == Some(DOCKER_SCHEMA1) {
            return Err(ImageError::Registry(
                "Docker Image manifest version 2, schema 1 is not supported: the image must be pushed again with a newer client".into(),
            ));
        }
        let is_index = matches!(mt.as_deref(), Some(DOCKER_LIST | OCI_INDEX)) || (!raw.manifests.is_empty() && raw.config.is_none());
        if is_index {
            check_digests(&raw.manifests)?;
            return Ok(Manifest::Index { manifests: raw.manifests });
        }
        match raw.config {
            Some(config) => {
                check_digests(std::iter::once(&config).chain(&raw.layers))?;
                Ok(Manifest::Image { config, layers: raw.layers })
            }
            None => Err(ImageError::Registry("invalid manifest: no config".into())),
        }
    }
}

/// Picks the linux/amd64 entry of an index (a variant-less or `v1` entry first).
pub fn select_platform(manifests: &[Descriptor]) -> Result<&Descriptor, ImageError> {
    let amd64 = |d: &&Descriptor| d.platform.as_ref().is_some_and(|p| p.os == "linux" && p.architecture == "amd64");
    manifests
        .iter()
        .filter(amd64)
        .min_by_key(|d| match d.platform.as_ref().and_then(|p| p.variant.as_deref()) {
            None | Some("") => 0,
            Some("v1") => 1,
            Some(_) => 2,
        })
        .or_else(|| {
            // An index without platforms (e.g. from `docker save`) with a single image.
            (manifests.len() == 1 && manifests[0].platform.is_none()).then(|| &manifests[0])
        })
        .ok_or_else(|| ImageError::RemoteNotFound("no matching manifest for linux/amd64 in the manifest list entries".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_selects() {
        let idx = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[
            {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa","size":1,"platform":{"architecture":"arm64","os":"linux","variant":"v8"}},
            {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb","size":1,"platform":{"architecture":"amd64","os":"linux","variant":"v3"}},
            {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc","size":1,"platform":{"architecture":"amd64","os":"linux"}},
            {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd","size":1,"platform":{"architecture":"amd64","os":"windows"}}]}"#;
        let Manifest::Index { manifests } = Manifest::parse(idx, None).unwrap() else { panic!("not an index") };
        assert_eq!(select_platform(&manifests).unwrap().digest, "sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc");
        let e = select_platform(&manifests[..1]).unwrap_err().to_string();
        assert_eq!(e, "no matching manifest for linux/amd64 in the manifest list entries");

        let list = br#"{"schemaVersion":2,"manifests":[{"digest":"sha256:eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee","platform":{"architecture":"amd64","os":"linux"}}]}"#;
        assert!(matches!(Manifest::parse(list, Some(DOCKER_LIST)).unwrap(), Manifest::Index { .. }));

        let m = br#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json",
            "config":{"mediaType":"application/vnd.docker.container.image.v1+json","digest":"sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff","size":3},
            "layers":[{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","digest":"sha256:1111111111111111111111111111111111111111111111111111111111111111","size":9}]}"#;
        let Manifest::Image { config, layers } = Manifest::parse(m, None).unwrap() else { panic!("not an image") };
        assert_eq!(config.digest, "sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff");
        assert_eq!(layers[0].size, 9);
        // OCI manifest without mediaType in the body
        let m = br#"{"schemaVersion":2,"config":{"digest":"sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff","size":3},"layers":[]}"#;
        assert!(matches!(Manifest::parse(m, Some(OCI_MANIFEST)).unwrap(), Manifest::Image { .. }));
        assert!(Manifest::parse(br#"{"schemaVersion":1,"fsLayers":[]}"#, None).is_err());
        assert!(Manifest::parse(b"nope", None).is_err());
    }

    #[test]
    fn digests_must_be_sha256_hex_before_they_become_paths() {
        let good = format!("sha256:{}", "f".repeat(64));
        for bad in ["sha256:../../../../etc/passwd", "sha256:FFFF", "md5:abc", &format!("sha256:{}", "F".repeat(64))] {
            let m = format!(r#"{{"schemaVersion":2,"config":{{"digest":"{good}","size":3}},"layers":[{{"digest":"{bad}","size":1}}]}}"#);
            let e = Manifest::parse(m.as_bytes(), Some(OCI_MANIFEST)).unwrap_err().to_string();
            assert!(e.contains("is not sha256: followed by 64 hex characters"), "{bad}: {e}");
            let idx =
                format!(r#"{{"schemaVersion":2,"manifests":[{{"digest":"{bad}","platform":{{"architecture":"amd64","os":"linux"}}}}]}}"#);
            assert!(Manifest::parse(idx.as_bytes(), Some(DOCKER_LIST)).is_err(), "{bad}");
        }
    }
}
