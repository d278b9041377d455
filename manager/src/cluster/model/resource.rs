//! What the manager reads of its nodes' networks, volumes and images (and of pull progress
//! and error answers). Network and volume documents are passed on to clients (local ones
//! renamed `node/name`), so each record keeps the node's document next to the fields the
//! manager decides on.
use super::{lenient, nullable, string_map, strings};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// A network (`GET /networks/{id}`, a `GET /networks` row) or a volume (`GET /volumes/{name}`,
/// a `GET /volumes` row). Volumes have no `Id` and no `Containers`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Resource {
    #[serde(deserialize_with = "lenient")]
    pub id: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub name: Option<String>,
    /// `local`, `global` or `swarm`; absent on old engines (local).
    #[serde(deserialize_with = "lenient")]
    pub scope: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub driver: Option<String>,
    #[serde(deserialize_with = "string_map")]
    pub labels: BTreeMap<String, String>,
    /// A network's attached endpoints, by container ID (`None`: absent or not a map).
    #[serde(deserialize_with = "lenient")]
    pub containers: Option<Map<String, Value>>,
    /// The node's document, passed on as given: held as its text (a network's document as a
    /// `Value` tree is several KiB, and every node holds at least three).
    #[serde(skip)]
    pub doc: crate::cluster::packed::RawJson,
}

impl Resource {
    /// Reads a node's document, kept whole for clients.
    pub fn read(doc: Value) -> Resource {
        let mut r = super::object(&doc).and_then(|d| Resource::deserialize(d).ok()).unwrap_or_default();
        r.doc = crate::cluster::packed::RawJson::new(&doc);
        r
    }

    /// Local scope (or none given): the object exists on its node only.
    pub fn is_local(&self) -> bool {
        self.scope.as_deref().is_none_or(|s| s == "local")
    }

    /// The predefined networks (`type=builtin`).
    pub fn is_builtin_network(&self) -> bool {
        matches!(self.name.as_deref(), Some("bridge" | "host" | "none")) || matches!(self.driver.as_deref(), Some("host" | "null"))
    }

    /// A custom network no container is attached to.
    pub fn is_dangling_network(&self) -> bool {
        !self.is_builtin_network() && self.containers.as_ref().is_none_or(|m| m.is_empty())
    }

    /// `label=k` or `label=k=v`.
    pub fn has_label(&self, want: &str) -> bool {
        match want.split_once('=') {
            Some((k, v)) => self.labels.get(k).is_some_and(|x| x == v),
            None => self.labels.contains_key(want),
        }
    }

    /// The name clients see: `node/name` for a local object.
    pub fn shown_name(&self, node: &str) -> Option<String> {
        match &self.name {
            Some(n) if self.is_local() => Some(format!("{node}/{n}")),
            n => n.clone(),
        }
    }

    /// The document clients see from `node`: named as [`Resource::shown_name`] and, in a list
    /// (`listed`), with a network's endpoints left out as dockerd does.
    pub fn shown(&self, node: &str, listed: bool) -> Value {
        let mut doc = self.doc.value();
        if let Some(obj) = doc.as_object_mut() {
            if let (Some(n), true) = (self.shown_name(node), self.is_local()) {
                obj.insert("Name".into(), Value::String(n));
            }
            if listed {
                if let Some(c) = obj.get_mut("Containers") {
                    *c = Value::Object(Map::new());
                }
            }
        }
        doc
    }
}

/// `GET /volumes`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct VolumeList {
    #[serde(deserialize_with = "lenient")]
    pub volumes: Vec<Value>,
}

/// A `GET /images/json` row: what the manager reads of it (the row is passed on).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ImageRow {
    #[serde(deserialize_with = "lenient")]
    pub id: String,
    #[serde(deserialize_with = "strings")]
    pub repo_tags: Vec<String>,
    #[serde(deserialize_with = "strings")]
    pub repo_digests: Vec<String>,
    #[serde(deserialize_with = "lenient")]
    pub created: Option<i64>,
}

impl ImageRow {
    pub fn read(v: &Value) -> ImageRow {
        super::object(v).and_then(|v| ImageRow::deserialize(v).ok()).unwrap_or_default()
    }
}

/// A container's mount (`Mounts[]` of its inspect): the volume it names, if any.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct MountPoint {
    #[serde(deserialize_with = "lenient")]
    pub name: Option<String>,
}

impl MountPoint {
    /// A container's mounts; what cannot be read is left out.
    pub fn read_all(mounts: &Value) -> Vec<MountPoint> {
        mounts.as_array().into_iter().flatten().filter_map(|m| super::object(m).and_then(|m| MountPoint::deserialize(m).ok())).collect()
    }
}

/// A line of a pull's progress stream (`POST /images/create`): only its error matters.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ProgressLine {
    #[serde(rename = "errorDetail", deserialize_with = "lenient")]
    pub error_detail: Option<ErrorDetail>,
    #[serde(deserialize_with = "lenient")]
    pub error: Option<String>,
    /// The progress text (`Pulling fs layer`, `Download complete`, …).
    #[serde(deserialize_with = "lenient")]
    pub status: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ErrorDetail {
    #[serde(deserialize_with = "lenient")]
    pub message: Option<String>,
}

impl ProgressLine {
    /// The error the line reports, if any (`errorDetail.message`, else `error`).
    pub fn error(&self) -> Option<&str> {
        self.error_detail.as_ref().and_then(|d| d.message.as_deref()).or(self.error.as_deref())
    }
}

/// A node's error answer (`{"message": …}`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ErrorBody {
    #[serde(deserialize_with = "lenient")]
    pub message: Option<String>,
}

/// A container's endpoint on one network (`NetworkSettings.Networks.<name>`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct EndpointSettings {
    #[serde(rename = "NetworkID", deserialize_with = "nullable")]
    pub network_id: String,
}

impl EndpointSettings {
    /// A container's networks, by name; what cannot be read is left out.
    pub fn read_all(networks: &Value) -> BTreeMap<String, EndpointSettings> {
        match networks.as_object() {
            Some(m) => m
                .iter()
                .map(|(k, v)| (k.clone(), super::object(v).and_then(|v| EndpointSettings::deserialize(v).ok()).unwrap_or_default()))
                .collect(),
            None => BTreeMap::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// `GET /networks/front` from dockerd 28, abridged.
    fn dockerd_network() -> Value {
        json!({
            "Name": "front", "Id": "5e1f0c0d2a", "Created": "2026-12-01T10:00:00.000000000Z", "Scope": "local",
            "Driver": "bridge", "EnableIPv4": true, "EnableIPv6": false,
            "IPAM": {"Driver": "default", "Options": {}, "Config": [{"Subnet": "172.20.0.0/16", "Gateway": "172.20.0.1"}]},
            "Internal": false, "Attachable": false, "Ingress": false, "ConfigFrom": {"Network": ""}, "ConfigOnly": false,
            "Containers": {"c0ffee": {"Name": "web", "EndpointID": "e1", "MacAddress": "", "IPv4Address": "172.20.0.2/16", "IPv6Address": ""}},
            "Options": {}, "Labels": {"com.docker.compose.project": "shop"}
        })
    }

    #[test]
    fn reads_a_dockerd_network_and_keeps_its_document() {
        let n = Resource::read(dockerd_network());
        assert_eq!((n.id.as_deref(), n.name.as_deref(), n.driver.as_deref()), (Some("5e1f0c0d2a"), Some("front"), Some("bridge")));
        assert!(n.is_local() && !n.is_builtin_network() && !n.is_dangling_network());
        assert!(n.has_label("com.docker.compose.project=shop") && n.has_label("com.docker.compose.project"));
        assert!(!n.has_label("com.docker.compose.project=other"));
        let listed = n.shown("node-1", true);
        assert_eq!(listed["Name"], "node-1/front");
        assert_eq!(listed["Containers"], json!({}));
        assert_eq!(listed["IPAM"]["Config"][0]["Subnet"], "172.20.0.0/16", "unknown fields pass through");
        assert_eq!(n.shown("node-1", false)["Containers"]["c0ffee"]["Name"], "web");
    }

    #[test]
    fn missing_and_odd_fields() {
        // A volume: no Id, no Containers; a global one keeps its name.
        let v = Resource::read(json!({"Name": "data", "Driver": "local", "Scope": "global", "Labels": null, "Mountpoint": "/x"}));
        assert_eq!(v.id, None);
        assert!(!v.is_local() && v.labels.is_empty());
        assert_eq!(
            v.shown("node-1", true),
            json!({"Name": "data", "Driver": "local", "Scope": "global", "Labels": null, "Mountpoint": "/x"})
        );
        // No scope (old engines) is local; a nameless row gets no name.
        let old = Resource::read(json!({"Id": "1", "Driver": "null", "Containers": null}));
        assert!(old.is_local() && old.is_builtin_network() && old.shown_name("n").is_none());
        assert_eq!(old.shown("n", true), json!({"Id": "1", "Driver": "null", "Containers": {}}));
        assert_eq!(Resource::read(json!({"Id": 5, "Name": "x"})).id, None);
        assert_eq!(Resource::read(json!("junk")).doc.value(), json!("junk"));
    }

    #[test]
    fn image_rows_and_endpoints() {
        let row = ImageRow::read(
            &json!({"Id": "sha256:ab", "RepoTags": ["busybox:latest", null], "RepoDigests": null, "Created": 1700000000, "Size": 1}),
        );
        assert_eq!(
            (row.id.as_str(), row.repo_tags.as_slice(), row.created),
            ("sha256:ab", &["busybox:latest".to_string()][..], Some(1700000000))
        );
        assert!(row.repo_digests.is_empty());
        let eps = EndpointSettings::read_all(&json!({"bridge": {"NetworkID": "n1", "IPAddress": "172.17.0.2"}, "odd": 3}));
        assert_eq!(eps["bridge"].network_id, "n1");
        assert_eq!(eps["odd"].network_id, "");
        assert!(EndpointSettings::read_all(&Value::Null).is_empty());
        let line = |s: &str| serde_json::from_str::<ProgressLine>(s).unwrap();
        assert_eq!(line(r#"{"errorDetail":{"message":"pull access denied"},"error":"denied"}"#).error(), Some("pull access denied"));
        assert_eq!(line(r#"{"error":"not found"}"#).error(), Some("not found"));
        assert_eq!(line(r#"{"status":"Downloading","progressDetail":{"current":1}}"#).error(), None);
        let mounts = MountPoint::read_all(&json!([{"Type": "volume", "Name": "data"}, {"Type": "bind", "Source": "/x"}, 3]));
        assert_eq!(mounts.iter().map(|m| m.name.as_deref()).collect::<Vec<_>>(), [Some("data"), None]);
        assert_eq!(
            serde_json::from_str::<ErrorBody>(r#"{"message":"No such image: x"}"#).unwrap().message.as_deref(),
            Some("No such image: x")
        );
        assert_eq!(serde_json::from_str::<ErrorBody>(r#"{"error":"x"}"#).unwrap().message, None);
        assert_eq!(VolumeList::deserialize(json!({"Volumes": null, "Warnings": null})).unwrap().volumes.len(), 0);
    }
}
