//! Engine configuration: what `swarm engine` flags turn into.
use std::collections::BTreeMap;
use std::path::PathBuf;

/// A listener address from `-H` (shared with the manager).
pub use apiserve::Listen;

/// Everything the engine needs to start.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub hosts: Vec<Listen>,
    /// Allow TCP listeners without TLS (logs a warning).
    pub insecure_tcp: bool,
    pub data_root: PathBuf,
    pub exec_root: PathBuf,
    pub labels: BTreeMap<String, String>,
    /// Registries reached over plain HTTP (CIDRs or host[:port]); 127.0.0.0/8 always is.
    pub insecure_registries: Vec<String>,
    /// Name of the default bridge (dockerd: docker0).
    pub bridge_name: String,
    /// Address of the bridge with prefix, e.g. 172.31.0.1/16 (dockerd: --bip).
    pub bridge_cidr: String,
    /// Path of our own binary, re-executed as `swarm shim`.
    pub shim_binary: PathBuf,
    /// Name shown in `docker info` (defaults to the hostname).
    pub name: Option<String>,
    /// TLS for TCP listeners (`--tls`/`--tlsverify`); `None` = plain TCP (needs `insecure_tcp`).
    pub tls: Option<crate::tls::TlsOptions>,
    /// Parent of every container's cgroup (cgroupfs layout), e.g. `/flotilla` -> `/flotilla/<id>`.
    pub cgroup_parent: String,
    /// `swarm --experimental`: reported by `/info`, `/version` and the `Docker-Experimental` header.
    pub experimental: bool,
    /// `--cluster-store` (with `--cluster-advertise`, `--cluster-store-opt`): overlay networks.
    pub cluster_store: Option<crate::network::overlay::ClusterStore>,
}

impl EngineConfig {
    /// Defaults as dockerd's, under our own names.
    pub fn with_defaults() -> Self {
        EngineConfig {
            hosts: vec![Listen::Unix(PathBuf::from("/var/run/flotilla.sock"))],
            insecure_tcp: false,
            data_root: PathBuf::from("/var/lib/flotilla"),
            exec_root: PathBuf::from("/var/run/flotilla"),
            labels: BTreeMap::new(),
            insecure_registries: vec![],
            bridge_name: "flt0".into(),
            bridge_cidr: "172.31.0.1/16".into(),
            shim_binary: std::env::current_exe().unwrap_or_else(|_| PathBuf::from("swarm")),
            name: None,
            cgroup_parent: "/flotilla".into(),
            tls: None,
            experimental: false,
            cluster_store: None,
        }
    }
}
