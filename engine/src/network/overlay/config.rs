//! `--cluster-store etcd://ip:port[,ip:port]/prefix`, `--cluster-advertise <ip|iface>:port` and
//! `--cluster-store-opt kv.cacertfile=…` (dockerd's flags), parsed once.
use std::path::PathBuf;

/// Where the engine keeps its global (overlay) networks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterStore {
    /// etcd endpoints, `ip:port`.
    pub endpoints: Vec<String>,
    /// Key prefix, without slashes at either end (may be empty).
    pub prefix: String,
    /// `--cluster-advertise`: an IPv4 address or an interface name (its first IPv4 address is
    /// this node's VXLAN tunnel endpoint), and the engine's API port.
    pub advertise: String,
    pub advertise_port: u16,
    pub tls: Option<StoreTls>,
}

/// TLS to etcd: `kv.cacertfile` with `kv.certfile` and `kv.keyfile` (a client identity).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreTls {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("invalid --cluster-store {0:?}: {1}")]
    Store(String, &'static str),
    #[error("invalid --cluster-advertise {0:?}: expected <ip|interface>:port")]
    Advertise(String),
    #[error("--cluster-advertise is required with --cluster-store (the address other nodes reach this one at, <ip|interface>:port)")]
    NoAdvertise,
    #[error("--{0} needs --cluster-store")]
    NoStore(&'static str),
    #[error("invalid --cluster-store-opt {0:?}: {1}")]
    Opt(String, &'static str),
}

impl ClusterStore {
    /// Parses the three flags. `None` without `--cluster-store` (and then neither of the others
    /// may be given).
    pub fn parse(store: Option<&str>, advertise: Option<&str>, opts: &[String]) -> Result<Option<ClusterStore>, ConfigError> {
        let Some(url) = store.filter(|s| !s.trim().is_empty()) else {
            if advertise.is_some_and(|a| !a.trim().is_empty()) {
                return Err(ConfigError::NoStore("cluster-advertise"));
            }
            if !opts.is_empty() {
                return Err(ConfigError::NoStore("cluster-store-opt"));
            }
            return Ok(None);
        };
        let bad = |why| ConfigError::Store(url.to_string(), why);
        let rest = url.strip_prefix("etcd://").ok_or_else(|| bad("only etcd:// stores are supported"))?;
        let (hosts, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let endpoints: Vec<String> = hosts.split(',').map(|h| h.trim().to_string()).collect();
        if endpoints.iter().any(|e| e.rsplit_once(':').is_none_or(|(h, p)| h.is_empty() || p.parse::<u16>().is_err())) {
            return Err(bad("expected etcd://ip:port[,ip:port]/prefix"));
        }
        let advertise = advertise.filter(|s| !s.trim().is_empty()).ok_or(ConfigError::NoAdvertise)?;
        let (addr, port) = advertise
            .rsplit_once(':')
            .and_then(|(a, p)| Some((a, p.parse::<u16>().ok()?)))
            .filter(|(a, _)| !a.is_empty())
            .ok_or_else(|| ConfigError::Advertise(advertise.to_string()))?;
        let (mut ca, mut cert, mut key) = (None, None, None);
        for o in opts {
            let (k, v) = o.split_once('=').ok_or_else(|| ConfigError::Opt(o.clone(), "expected key=value"))?;
            match k.trim() {
                "kv.cacertfile" => ca = Some(PathBuf::from(v)),
                "kv.certfile" => cert = Some(PathBuf::from(v)),
                "kv.keyfile" => key = Some(PathBuf::from(v)),
                _ => return Err(ConfigError::Opt(o.clone(), "unknown key (known: kv.cacertfile, kv.certfile, kv.keyfile)")),
            }
        }
        let tls = match (ca, cert, key) {
            (None, None, None) => None,
            (Some(ca), Some(cert), Some(key)) => Some(StoreTls { ca, cert, key }),
            _ => return Err(ConfigError::Opt(opts.join(","), "kv.cacertfile, kv.certfile and kv.keyfile go together")),
        };
        Ok(Some(ClusterStore {
            endpoints,
            prefix: prefix.trim_matches('/').to_string(),
            advertise: addr.to_string(),
            advertise_port: port,
            tls,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_dockerd_flags() {
        let c = ClusterStore::parse(Some("etcd://10.0.0.1:2379,10.0.0.2:2379/flt/x/"), Some("eth0:2375"), &[]).unwrap().unwrap();
        assert_eq!(c.endpoints, vec!["10.0.0.1:2379", "10.0.0.2:2379"]);
        assert_eq!(c.prefix, "flt/x");
        assert_eq!((c.advertise.as_str(), c.advertise_port), ("eth0", 2375));
        assert_eq!(c.tls, None);
        let o = ["kv.cacertfile=/a".to_string(), "kv.certfile=/b".into(), "kv.keyfile=/c".into()];
        let c = ClusterStore::parse(Some("etcd://h:1"), Some("1.2.3.4:5"), &o).unwrap().unwrap();
        assert_eq!(c.tls.unwrap().key, PathBuf::from("/c"));
        assert_eq!(c.prefix, "");
        assert_eq!(ClusterStore::parse(None, None, &[]), Ok(None));
    }

    #[test]
    fn refuses_what_it_cannot_honour() {
        assert!(matches!(ClusterStore::parse(Some("consul://h:1/p"), Some("1.2.3.4:5"), &[]), Err(ConfigError::Store(..))));
        assert!(matches!(ClusterStore::parse(Some("etcd://h/p"), Some("1.2.3.4:5"), &[]), Err(ConfigError::Store(..))));
        assert_eq!(ClusterStore::parse(Some("etcd://h:1/p"), None, &[]), Err(ConfigError::NoAdvertise));
        assert!(matches!(ClusterStore::parse(Some("etcd://h:1/p"), Some("1.2.3.4"), &[]), Err(ConfigError::Advertise(_))));
        assert_eq!(ClusterStore::parse(None, Some("1.2.3.4:5"), &[]), Err(ConfigError::NoStore("cluster-advertise")));
        let o = ["kv.path=x".to_string()];
        assert!(matches!(ClusterStore::parse(Some("etcd://h:1"), Some("1.2.3.4:5"), &o), Err(ConfigError::Opt(..))));
        let o = ["kv.cacertfile=/a".to_string()];
        assert!(matches!(ClusterStore::parse(Some("etcd://h:1"), Some("1.2.3.4:5"), &o), Err(ConfigError::Opt(..))));
    }
}
