//! The machine record, `machines/NAME/config.json`, in Docker Machine's ConfigVersion 3 field
//! names, so `inspect -f` templates written for Docker Machine keep working.
use serde::{Deserialize, Serialize};
use std::path::Path;

pub const CONFIG_VERSION: u32 = 3;
/// Default engine (TLS) port.
pub const ENGINE_PORT: u16 = 2376;
/// Default swarm manager address.
pub const SWARM_HOST: &str = "tcp://0.0.0.0:3376";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct Host {
    pub config_version: u32,
    /// The driver's own state (BaseDriver fields + driver fields).
    pub driver: serde_json::Value,
    pub driver_name: String,
    pub host_options: HostOptions,
    pub name: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct HostOptions {
    pub driver: String,
    pub memory: i64,
    pub disk: i64,
    pub engine_options: EngineOptions,
    pub swarm_options: SwarmOptions,
    pub auth_options: AuthOptions,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct EngineOptions {
    pub arbitrary_flags: Vec<String>,
    pub dns: Option<Vec<String>>,
    pub graph_dir: String,
    pub env: Vec<String>,
    pub ipv6: bool,
    pub insecure_registry: Vec<String>,
    pub labels: Vec<String>,
    pub log_level: String,
    pub storage_driver: String,
    pub selinux_enabled: bool,
    pub tls_verify: bool,
    pub registry_mirror: Vec<String>,
    #[serde(rename = "InstallURL")]
    pub install_url: String,
    /// `--engine-cluster-store` (Flotilla's): the engine's `--cluster-store` for overlay
    /// networks (with `--cluster-advertise` at the machine's engine address).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub cluster_store: String,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            arbitrary_flags: vec![],
            dns: None,
            graph_dir: String::new(),
            env: vec![],
            ipv6: false,
            insecure_registry: vec![],
            labels: vec![],
            log_level: String::new(),
            storage_driver: String::new(),
            selinux_enabled: false,
            tls_verify: true,
            registry_mirror: vec![],
            install_url: String::new(),
            cluster_store: String::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct SwarmOptions {
    pub is_swarm: bool,
    pub address: String,
    pub discovery: String,
    pub agent: bool,
    pub master: bool,
    pub host: String,
    pub image: String,
    pub strategy: String,
    pub heartbeat: i64,
    pub overcommit: i64,
    pub arbitrary_flags: Vec<String>,
    pub arbitrary_join_flags: Vec<String>,
    pub env: Option<Vec<String>>,
    pub is_experimental: bool,
}

impl Default for SwarmOptions {
    fn default() -> Self {
        SwarmOptions {
            is_swarm: false,
            address: String::new(),
            discovery: String::new(),
            agent: false,
            master: false,
            host: SWARM_HOST.into(),
            image: "swarm:latest".into(),
            strategy: "spread".into(),
            heartbeat: 0,
            overcommit: 0,
            arbitrary_flags: vec![],
            arbitrary_join_flags: vec![],
            env: None,
            is_experimental: false,
        }
    }
}

impl SwarmOptions {
    /// Port of the manager (`Host`'s port), default 3376.
    pub fn manager_port(&self) -> u16 {
        self.host.rsplit(':').next().and_then(|p| p.parse().ok()).unwrap_or(3376)
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct AuthOptions {
    pub cert_dir: String,
    pub ca_cert_path: String,
    pub ca_private_key_path: String,
    pub ca_cert_remote_path: String,
    pub server_cert_path: String,
    pub server_key_path: String,
    pub client_key_path: String,
    pub server_cert_remote_path: String,
    pub server_key_remote_path: String,
    pub client_cert_path: String,
    #[serde(rename = "ServerCertSANs")]
    pub server_cert_sans: Vec<String>,
    pub store_path: String,
}

impl AuthOptions {
    /// The paths Docker Machine records: CA and client cert in the store's `certs/`, the
    /// server cert in the machine's directory.
    pub fn for_machine(certs_dir: &Path, machine_dir: &Path, sans: Vec<String>) -> AuthOptions {
        let c = |f: &str| certs_dir.join(f).display().to_string();
        let m = |f: &str| machine_dir.join(f).display().to_string();
        AuthOptions {
            cert_dir: certs_dir.display().to_string(),
            ca_cert_path: c("ca.pem"),
            ca_private_key_path: c("ca-key.pem"),
            server_cert_path: m("server.pem"),
            server_key_path: m("server-key.pem"),
            client_key_path: c("key.pem"),
            client_cert_path: c("cert.pem"),
            server_cert_sans: sans,
            store_path: machine_dir.display().to_string(),
            ..Default::default()
        }
    }
}

/// The fields every driver serialises (Docker Machine's `BaseDriver`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct BaseDriver {
    #[serde(rename = "IPAddress")]
    pub ip_address: String,
    #[serde(rename = "MachineName")]
    pub machine_name: String,
    #[serde(rename = "SSHUser")]
    pub ssh_user: String,
    #[serde(rename = "SSHPort")]
    pub ssh_port: u16,
    #[serde(rename = "SSHKeyPath")]
    pub ssh_key_path: String,
    #[serde(rename = "StorePath")]
    pub store_path: String,
    #[serde(rename = "SwarmMaster")]
    pub swarm_master: bool,
    #[serde(rename = "SwarmHost")]
    pub swarm_host: String,
    #[serde(rename = "SwarmDiscovery")]
    pub swarm_discovery: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_machine_field_names() {
        let h = Host {
            config_version: CONFIG_VERSION,
            driver: serde_json::json!({}),
            driver_name: "generic".into(),
            host_options: HostOptions::default(),
            name: "m".into(),
        };
        let v = serde_json::to_value(&h).unwrap();
        let ho = &v["HostOptions"];
        assert_eq!(ho["EngineOptions"]["InstallURL"], "");
        assert_eq!(ho["EngineOptions"]["TlsVerify"], true);
        assert!(ho["EngineOptions"]["Dns"].is_null());
        assert_eq!(ho["SwarmOptions"]["Host"], "tcp://0.0.0.0:3376");
        assert_eq!(ho["SwarmOptions"]["IsSwarm"], false);
        assert!(ho["AuthOptions"]["ServerCertSANs"].is_array());
        assert_eq!(v["ConfigVersion"], 3);
        let b = serde_json::to_value(BaseDriver::default()).unwrap();
        for k in ["IPAddress", "MachineName", "SSHUser", "SSHPort", "SSHKeyPath", "StorePath", "SwarmMaster", "SwarmHost", "SwarmDiscovery"]
        {
            assert!(b.get(k).is_some(), "{k}");
        }
    }

    #[test]
    fn reads_a_docker_machine_config() {
        let j = r#"{"ConfigVersion":3,"Driver":{"IPAddress":"10.0.0.5","SSHUser":"root","SSHPort":22,"EnginePort":2376},
            "DriverName":"generic","HostOptions":{"Driver":"","Memory":0,"Disk":0,
            "EngineOptions":{"ArbitraryFlags":[],"Dns":null,"InstallURL":"https://get.docker.com","Labels":["a=b"],"TlsVerify":true},
            "SwarmOptions":{"IsSwarm":true,"Master":true,"Host":"tcp://0.0.0.0:3377","Discovery":"token://x"},
            "AuthOptions":{"CaCertPath":"/s/certs/ca.pem","ServerCertSANs":[]}},"Name":"m1"}"#;
        let h: Host = serde_json::from_str(j).unwrap();
        assert_eq!(h.host_options.engine_options.labels, vec!["a=b"]);
        assert_eq!(h.host_options.swarm_options.manager_port(), 3377);
        assert_eq!(h.host_options.swarm_options.strategy, "spread");
        assert_eq!(h.host_options.auth_options.ca_cert_path, "/s/certs/ca.pem");
    }
}
