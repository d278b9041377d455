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
    /// What a container gets when its create does not say (dockerd's daemon flags).
    pub run_defaults: RunDefaults,
    /// `--mtu`, `--iptables`, `--ip-forward`, `--ip-masq` (dockerd's networking flags).
    pub net: NetFlags,
    /// `--registry-mirror`, `--max-concurrent-downloads`.
    pub pull: PullOptions,
}

/// dockerd's host networking flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetFlags {
    /// MTU of the default bridge and of its containers' veths (`None`: the kernel's 1500).
    pub mtu: Option<u32>,
    /// `--iptables=false`: no chains and no rules at all (no NAT, no isolation, no published ports).
    pub iptables: bool,
    /// `--ip-forward=false`: `net.ipv4.ip_forward` is left as it is.
    pub ip_forward: bool,
    /// `--ip-masq=false`: no MASQUERADE rule for the default bridge's subnet.
    pub ip_masq: bool,
}

impl Default for NetFlags {
    fn default() -> Self {
        NetFlags { mtu: None, iptables: true, ip_forward: true, ip_masq: true }
    }
}

/// A daemon flag this engine refuses, with the flag's value.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid --registry-mirror {mirror:?}: it must start with http:// or https://")]
    MirrorScheme { mirror: String },
    #[error("invalid --registry-mirror {mirror:?}: a mirror is a scheme and host[:port], with no path")]
    MirrorPath { mirror: String },
    #[error("--dns {value}: not an IP address")]
    Dns { value: String },
    /// `--log-driver`, `--log-opt`, `--default-ulimit` or `--default-shm-size`, refused as a create would refuse it.
    #[error("{0}")]
    RunDefaults(#[source] crate::container::ContainerError),
}

/// How images are pulled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullOptions {
    /// Registries tried, in order, before Docker Hub for Docker Hub images (`http(s)://host[:port]`).
    pub mirrors: Vec<String>,
    /// Layers downloaded at the same time by one pull (dockerd: 3).
    pub max_concurrent_downloads: usize,
}

impl Default for PullOptions {
    fn default() -> Self {
        PullOptions { mirrors: vec![], max_concurrent_downloads: 3 }
    }
}

impl PullOptions {
    /// Checks a `--registry-mirror` as dockerd does (`http://` or `https://`, a host, no path
    /// beyond `/`) and returns it without a trailing slash.
    pub fn parse_mirror(m: &str) -> Result<String, ConfigError> {
        let m = m.trim_end_matches('/');
        let rest = m
            .strip_prefix("http://")
            .or_else(|| m.strip_prefix("https://"))
            .ok_or_else(|| ConfigError::MirrorScheme { mirror: m.to_string() })?;
        if rest.is_empty() || rest.contains('/') || rest.contains('?') || rest.contains('#') {
            return Err(ConfigError::MirrorPath { mirror: m.to_string() });
        }
        Ok(m.to_string())
    }
}

/// `--log-driver`, `--log-opt`, `--default-ulimit`, `--default-shm-size` of the daemon.
#[derive(Debug, Clone, Default)]
pub struct RunDefaults {
    /// Default log driver (`None`: json-file) and its options.
    pub log_driver: Option<String>,
    pub log_opts: std::collections::HashMap<String, String>,
    pub ulimits: Vec<bollard_stubs::models::ResourcesUlimits>,
    /// Bytes (`None`: 64 MiB).
    pub shm_size: Option<i64>,
    /// `--dns`, `--dns-search`, `--dns-opt`: for containers whose create gives none.
    pub dns: Vec<String>,
    pub dns_search: Vec<String>,
    pub dns_options: Vec<String>,
}

impl RunDefaults {
    /// Checks the flags as a create would check a container's own (a bad daemon flag stops
    /// the engine at start with the option named).
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(bad) = self.dns.iter().find(|d| d.parse::<std::net::IpAddr>().is_err()) {
            return Err(ConfigError::Dns { value: bad.clone() });
        }
        let hc = bollard_stubs::models::HostConfig {
            log_config: Some(bollard_stubs::models::HostConfigLogConfig {
                typ: self.log_driver.clone(),
                config: Some(self.log_opts.clone()),
            }),
            ulimits: Some(self.ulimits.clone()),
            shm_size: self.shm_size,
            ..Default::default()
        };
        crate::container::runopts::validate(&hc).map_err(ConfigError::RunDefaults)
    }
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
            run_defaults: RunDefaults::default(),
            net: NetFlags::default(),
            pull: PullOptions::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirrors_are_scheme_and_host() {
        assert_eq!(PullOptions::parse_mirror("http://127.0.0.1:5000/").unwrap(), "http://127.0.0.1:5000");
        assert_eq!(PullOptions::parse_mirror("https://mirror.example").unwrap(), "https://mirror.example");
        let e = PullOptions::parse_mirror("127.0.0.1:5000").unwrap_err();
        assert!(matches!(&e, ConfigError::MirrorScheme { mirror } if mirror == "127.0.0.1:5000"), "{e:?}");
        assert!(e.to_string().contains("http://"));
        let e = PullOptions::parse_mirror("http://m.example/v2/x").unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid --registry-mirror \"http://m.example/v2/x\": a mirror is a scheme and host[:port], with no path"
        );
    }

    #[test]
    fn a_bad_dns_default_is_named() {
        let d = RunDefaults { dns: vec!["8.8.8.8".into(), "dns.example".into()], ..Default::default() };
        let e = d.validate().unwrap_err();
        assert!(matches!(&e, ConfigError::Dns { value } if value == "dns.example"), "{e:?}");
        assert_eq!(e.to_string(), "--dns dns.example: not an IP address");
    }
}
