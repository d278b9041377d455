//! Engine configuration: what `swarm engine` flags turn into.
use std::collections::BTreeMap;
use std::path::PathBuf;

/// A listener address from `-H`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    Unix(PathBuf),
    Tcp(std::net::SocketAddr),
}

impl Listen {
    /// Parses `unix:///path`, `tcp://host:port`, `fd://` is refused.
    pub fn parse(s: &str) -> Result<Self, String> {
        if let Some(p) = s.strip_prefix("unix://") {
            if p.is_empty() {
                return Err(format!("invalid host {s:?}: unix socket path is empty"));
            }
            return Ok(Listen::Unix(PathBuf::from(p)));
        }
        let rest = s.strip_prefix("tcp://").unwrap_or(s);
        if rest.starts_with('/') {
            return Ok(Listen::Unix(PathBuf::from(rest)));
        }
        if s.contains("://") && !s.starts_with("tcp://") {
            return Err(format!("invalid host {s:?}: only unix:// and tcp:// are supported"));
        }
        let rest = rest.trim_end_matches('/');
        let with_port = if rest.starts_with(':') { format!("0.0.0.0{rest}") } else { rest.to_string() };
        with_port
            .parse()
            .map(Listen::Tcp)
            .map_err(|_| format!("invalid host {s:?}: expected tcp://IP:PORT or unix:///path"))
    }
}

impl std::fmt::Display for Listen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Listen::Unix(p) => write!(f, "unix://{}", p.display()),
            Listen::Tcp(a) => write!(f, "tcp://{a}"),
        }
    }
}

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
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn parses_hosts() {
        assert_eq!(Listen::parse("unix:///tmp/x.sock").unwrap(), Listen::Unix("/tmp/x.sock".into()));
        assert_eq!(Listen::parse("tcp://127.0.0.1:2375").unwrap(), Listen::Tcp("127.0.0.1:2375".parse().unwrap()));
        assert_eq!(Listen::parse("tcp://:2375").unwrap(), Listen::Tcp("0.0.0.0:2375".parse().unwrap()));
        assert!(Listen::parse("tcp://nohost").is_err());
        assert!(Listen::parse("fd://").is_err());
        assert!(Listen::parse("unix://").is_err());
    }
}
