//! What the manager reads of a node's `GET /info` and `GET /version` when it validates it.
use super::{lenient, strings};
use serde::Deserialize;
use serde_json::Value;

/// `GET /info`: the node's identity, resources and labels.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct SystemInfo {
    #[serde(rename = "ID", deserialize_with = "lenient")]
    pub id: String,
    #[serde(deserialize_with = "lenient")]
    pub name: String,
    #[serde(rename = "NCPU", deserialize_with = "lenient")]
    pub ncpu: i64,
    #[serde(deserialize_with = "lenient")]
    pub mem_total: i64,
    /// `key=value` daemon labels.
    #[serde(deserialize_with = "strings")]
    pub labels: Vec<String>,
    #[serde(deserialize_with = "lenient")]
    pub server_version: Option<String>,
    /// Storage driver.
    #[serde(deserialize_with = "lenient")]
    pub driver: String,
    #[serde(deserialize_with = "lenient")]
    pub kernel_version: String,
    #[serde(deserialize_with = "lenient")]
    pub operating_system: String,
    /// Absent on old engines (which ran Linux only).
    #[serde(rename = "OSType", deserialize_with = "lenient")]
    pub os_type: Option<String>,
}

impl SystemInfo {
    pub fn read(v: &Value) -> SystemInfo {
        super::object(v).and_then(|v| SystemInfo::deserialize(v).ok()).unwrap_or_default()
    }
}

/// `GET /version`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct SystemVersion {
    #[serde(deserialize_with = "lenient")]
    pub version: String,
    #[serde(deserialize_with = "lenient")]
    pub api_version: String,
}

impl SystemVersion {
    pub fn read(v: &Value) -> SystemVersion {
        super::object(v).and_then(|v| SystemVersion::deserialize(v).ok()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_dockerd_info_and_version() {
        // dockerd 28, abridged; unknown fields are ignored.
        let i = SystemInfo::read(&json!({
            "ID": "2f4b6c1e-aaaa", "Containers": 3, "Driver": "overlay2", "DriverStatus": [["Backing Filesystem", "extfs"]],
            "Plugins": {"Volume": ["local"]}, "NCPU": 2, "MemTotal": 4_104_871_936_i64, "Name": "node-1",
            "Labels": ["zone=eu", 5], "KernelVersion": "6.1.0-28-amd64", "OperatingSystem": "Debian GNU/Linux 12 (bookworm)",
            "OSType": "linux", "Architecture": "x86_64", "ServerVersion": "28.0.1", "Swarm": {"LocalNodeState": "inactive"}
        }));
        assert_eq!((i.id.as_str(), i.name.as_str(), i.ncpu, i.mem_total), ("2f4b6c1e-aaaa", "node-1", 2, 4_104_871_936));
        assert_eq!(i.labels, ["zone=eu"]);
        assert_eq!((i.driver.as_str(), i.os_type.as_deref(), i.server_version.as_deref()), ("overlay2", Some("linux"), Some("28.0.1")));
        let v = SystemVersion::read(&json!({"Version": "28.0.1", "ApiVersion": "1.48", "MinAPIVersion": "1.24", "Os": "linux"}));
        assert_eq!((v.version.as_str(), v.api_version.as_str()), ("28.0.1", "1.48"));
    }

    #[test]
    fn classic_swarm_and_old_engines() {
        // An old engine: no OSType, no ServerVersion; a Swarm manager: NCPU as usual, odd labels.
        let i = SystemInfo::read(&json!({"ID": "X", "NCPU": 1, "MemTotal": 1, "Labels": null}));
        assert_eq!((i.os_type, i.server_version), (None, None));
        assert!(i.labels.is_empty());
        assert_eq!(SystemInfo::read(&json!({"NCPU": "two", "MemTotal": 5})).ncpu, 0);
        assert_eq!(SystemVersion::read(&json!(null)).version, "");
    }
}
