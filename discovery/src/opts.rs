//! `--discovery-opt key=value` and `--discovery-url`: options shared by every backend.
use crate::DiscoveryError;
use std::path::PathBuf;

/// Classic Swarm's default `kv.path`: keys are `<prefix>/docker/swarm/nodes/<ip:port>`.
pub const DEFAULT_KV_PATH: &str = "docker/swarm/nodes";

/// Client certificate, key and CA for TLS to the KV store (`kv.certfile`, `kv.keyfile`,
/// `kv.cacertfile`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoveryOpts {
    /// `kv.path`: the middle part of KV keys.
    pub kv_path: String,
    /// TLS to etcd, when all three `kv.*file` options are given.
    pub tls: Option<TlsFiles>,
    /// Base URL of the token service for `token://<token>` and `swarm create`
    /// (`--discovery-url` / `SWARM_DISCOVERY_URL`), e.g. `http://10.0.0.1:8500/v1`.
    pub token_url: Option<String>,
    /// CA certificate(s) that sign an https token service's certificate
    /// (`--discovery-cacert` / `SWARM_DISCOVERY_CACERT`). With one (or an https `token_url`),
    /// the explicit form `token://<host:port>/<token>` speaks https too.
    pub token_ca: Option<PathBuf>,
}

impl Default for DiscoveryOpts {
    fn default() -> Self {
        DiscoveryOpts { kv_path: DEFAULT_KV_PATH.into(), tls: None, token_url: None, token_ca: None }
    }
}

impl DiscoveryOpts {
    /// Sets the token service's CA file (`--discovery-cacert`); an empty value is none.
    pub fn with_token_ca(mut self, ca: Option<PathBuf>) -> Self {
        self.token_ca = ca.filter(|p| !p.as_os_str().is_empty());
        self
    }

    /// Parses repeated `--discovery-opt key=value` flags. Unknown keys are refused (a typo
    /// would otherwise silently drop TLS).
    pub fn parse(opts: &[String], token_url: Option<String>) -> Result<Self, DiscoveryError> {
        let mut out = DiscoveryOpts { token_url: token_url.filter(|u| !u.trim().is_empty()), ..Default::default() };
        let (mut ca, mut cert, mut key) = (None, None, None);
        for o in opts {
            let Some((k, v)) = o.split_once('=') else {
                return Err(DiscoveryError::InvalidOpt(format!("{o}: --discovery-opt must contain key=value strings")));
            };
            match k.trim() {
                "kv.path" => {
                    let v = v.trim().trim_matches('/');
                    if v.is_empty() {
                        return Err(DiscoveryError::InvalidOpt(format!("{o}: kv.path must not be empty")));
                    }
                    out.kv_path = v.to_string();
                }
                "kv.cacertfile" => ca = Some(PathBuf::from(v)),
                "kv.certfile" => cert = Some(PathBuf::from(v)),
                "kv.keyfile" => key = Some(PathBuf::from(v)),
                _ => {
                    return Err(DiscoveryError::InvalidOpt(format!(
                        "{o}: unknown key (known: kv.path, kv.cacertfile, kv.certfile, kv.keyfile)"
                    )))
                }
            }
        }
        out.tls = match (ca, cert, key) {
            (Some(ca), Some(cert), Some(key)) => Some(TlsFiles { ca, cert, key }),
            (None, None, None) => None,
            _ => {
                return Err(DiscoveryError::InvalidOpt("TLS to the KV store needs all of kv.cacertfile, kv.certfile and kv.keyfile".into()))
            }
        };
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }
    #[test]
    fn parses_opts() {
        let o = DiscoveryOpts::parse(&[], None).unwrap();
        assert_eq!(o.kv_path, "docker/swarm/nodes");
        assert!(o.tls.is_none());
        let o = DiscoveryOpts::parse(&s(&["kv.path=/docker/nodes/"]), Some("http://x".into())).unwrap();
        assert_eq!((o.kv_path.as_str(), o.token_url.as_deref()), ("docker/nodes", Some("http://x")));
        let o = DiscoveryOpts::parse(&s(&["kv.cacertfile=/a", "kv.certfile=/b", "kv.keyfile=/c"]), None).unwrap();
        assert_eq!(o.tls.unwrap().key, PathBuf::from("/c"));
        assert!(DiscoveryOpts::parse(&s(&["kv.cacertfile=/a"]), None).is_err());
        assert!(DiscoveryOpts::parse(&s(&["novalue"]), None).is_err());
        assert!(DiscoveryOpts::parse(&s(&["kv.typo=1"]), None).is_err());
        assert!(DiscoveryOpts::parse(&s(&["kv.path="]), None).is_err());
    }
}
