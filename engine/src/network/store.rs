//! Network records and their IPAM state on disk:
//! `<data-root>/network/<network id>/network.json` and `.../ipam.json`, both written atomically.
use super::ipam::Ipam;
use super::NetworkError;
use crate::fsutil;
use ipnetwork::Ipv4Network;
use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

/// Name of the default network, as Docker calls it.
pub const DEFAULT_NETWORK: &str = "bridge";

/// A network: what `docker network inspect` shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Network {
    pub id: String,
    pub name: String,
    /// Always `bridge` for now.
    pub driver: String,
    /// Subnet in CIDR form, e.g. `172.31.0.0/16`.
    pub subnet: String,
    pub gateway: Ipv4Addr,
    /// Linux bridge device of this network.
    pub bridge: String,
    /// RFC 3339 creation time.
    pub created: String,
}

/// A network with its allocations, as held in memory.
#[derive(Debug, Clone)]
pub struct NetState {
    pub net: Network,
    pub ipam: Ipam,
}

fn net_dir(root: &Path, id: &str) -> PathBuf {
    root.join(id)
}

/// Loads every network under `root` (`<data-root>/network`). Unreadable entries are skipped
/// with a warning.
pub fn load_all(root: &Path) -> Result<Vec<NetState>, NetworkError> {
    let mut out = vec![];
    let rd = match std::fs::read_dir(root) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e.into()),
    };
    for entry in rd.flatten() {
        let dir = entry.path();
        if !dir.is_dir() {
            continue;
        }
        fsutil::remove_stale_tmp(&dir)?;
        let loaded = (|| -> Result<Option<NetState>, NetworkError> {
            let Some(net) = fsutil::read_json::<Network>(&dir.join("network.json"))? else { return Ok(None) };
            let ipam = match fsutil::read_json::<Ipam>(&dir.join("ipam.json"))? {
                Some(mut ipam) => {
                    ipam.reindex();
                    ipam
                }
                None => Ipam::new(parse_subnet(&net.subnet)?, net.gateway)?,
            };
            Ok(Some(NetState { net, ipam }))
        })();
        match loaded {
            Ok(Some(s)) => out.push(s),
            Ok(None) => {}
            Err(e) => tracing::warn!(dir = %dir.display(), error = %e, "skipping unreadable network"),
        }
    }
    Ok(out)
}

pub fn save_network(root: &Path, net: &Network) -> Result<(), NetworkError> {
    Ok(fsutil::write_json(&net_dir(root, &net.id).join("network.json"), net)?)
}

pub fn save_ipam(root: &Path, id: &str, ipam: &Ipam) -> Result<(), NetworkError> {
    Ok(fsutil::write_json(&net_dir(root, id).join("ipam.json"), ipam)?)
}

/// Parses `a.b.c.d/n` into its network (host bits cleared).
pub fn parse_subnet(s: &str) -> Result<Ipv4Network, NetworkError> {
    let n: Ipv4Network = s.parse().map_err(|e| NetworkError::Setup(format!("invalid subnet {s:?}: {e}")))?;
    Ipv4Network::new(n.network(), n.prefix()).map_err(|e| NetworkError::Setup(format!("invalid subnet {s:?}: {e}")))
}

/// The default network for a bridge `name` with address `cidr` (gateway/prefix): reuses the
/// stored record `old` (keeping its id and, when the subnet did not change, its allocations).
pub fn default_network(old: Option<NetState>, bridge: &str, cidr: Ipv4Network) -> Result<NetState, NetworkError> {
    let subnet = Ipv4Network::new(cidr.network(), cidr.prefix())
        .map_err(|e| NetworkError::Setup(format!("invalid bridge address {cidr}: {e}")))?;
    let gateway = cidr.ip();
    match old {
        Some(mut s) if s.net.subnet == subnet.to_string() && s.net.gateway == gateway => {
            s.net.bridge = bridge.to_string();
            Ok(s)
        }
        old => {
            if let Some(o) = &old {
                if !o.ipam.allocations().is_empty() {
                    tracing::warn!(old = %o.net.subnet, new = %subnet, "bridge subnet changed; dropping allocations");
                }
            }
            let (id, created) = match old {
                Some(o) => (o.net.id, o.net.created),
                None => (crate::ids::new_id(), chrono::Utc::now().to_rfc3339()),
            };
            let net = Network {
                id,
                name: DEFAULT_NETWORK.into(),
                driver: "bridge".into(),
                subnet: subnet.to_string(),
                gateway,
                bridge: bridge.to_string(),
                created,
            };
            Ok(NetState { ipam: Ipam::new(subnet, gateway)?, net })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_keep_allocations_when_subnet_unchanged() {
        let d = tempfile::tempdir().unwrap();
        let mut s = default_network(None, "flt9", "10.7.0.1/24".parse().unwrap()).unwrap();
        assert_eq!(s.net.subnet, "10.7.0.0/24");
        assert_eq!(s.net.name, "bridge");
        let ip = s.ipam.allocate("c1").unwrap();
        save_network(d.path(), &s.net).unwrap();
        save_ipam(d.path(), &s.net.id, &s.ipam).unwrap();

        let mut all = load_all(d.path()).unwrap();
        assert_eq!(all.len(), 1);
        let again = default_network(all.pop(), "flt9", "10.7.0.1/24".parse().unwrap()).unwrap();
        assert_eq!(again.net, s.net);
        assert_eq!(again.ipam.get("c1"), Some(ip));

        let moved = default_network(Some(again), "flt9", "10.8.0.1/24".parse().unwrap()).unwrap();
        assert_eq!(moved.net.id, s.net.id);
        assert_eq!(moved.net.subnet, "10.8.0.0/24");
        assert!(moved.ipam.allocations().is_empty());
    }

    #[test]
    fn missing_root_is_empty() {
        let d = tempfile::tempdir().unwrap();
        assert!(load_all(&d.path().join("nope")).unwrap().is_empty());
    }
}
