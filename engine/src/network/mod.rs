//! Default bridge network: IPAM, bridge and veth over netlink, NAT with iptables.
//! OWNER: network helper.
//!
//! # What an engine leaves on the host
//!
//! For `--bridge-name <br>` / `--bip <gw>/<prefix>` (defaults `flt0`, `172.31.0.1/16`):
//! - bridge `<br>` (with a fixed `02:42:…` MAC) carrying `<gw>/<prefix>`, up;
//! - per connected container: host veth `veth<7 hex>` (enslaved to `<br>`) whose peer is `eth0`
//!   in the netns bind-mounted at `<exec-root>/netns/<container id>`;
//! - `net.ipv4.ip_forward=1` (never reset);
//! - iptables (see [`nat`]): filter chain `FLT-<br>` jumped to from `FORWARD`, nat chain
//!   `FLT-<br>-NAT` jumped to from `POSTROUTING`; every rule carries
//!   `-m comment --comment flotilla:<br>`.
//!
//! Everything can be removed with [`NetworkService::purge`], or by hand:
//! ```text
//! for f in <exec-root>/netns/*; do umount -l $f; rm $f; done
//! iptables -w -D FORWARD -m comment --comment flotilla:<br> -j FLT-<br>
//! iptables -w -F FLT-<br>; iptables -w -X FLT-<br>
//! iptables -w -t nat -D POSTROUTING -m comment --comment flotilla:<br> -j FLT-<br>-NAT
//! iptables -w -t nat -F FLT-<br>-NAT; iptables -w -t nat -X FLT-<br>-NAT
//! ip link del <br>        # host veths die with their netns
//! ```
//!
//! State: `<data-root>/network/<network id>/{network.json,ipam.json}` (see [`store`]).
//! The design keeps several networks in mind (a map of [`Network`]s by id, endpoints derived from
//! network id + container id); only the default one, named `bridge`, exists for now.
use crate::{Classify, ErrorKind};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

mod bridge;
pub mod ipam;
pub mod nat;
mod netns;
pub mod store;

pub use store::{Network, DEFAULT_NETWORK};
use store::NetState;

#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    #[error("{0}")]
    Setup(String),
    #[error("no free address in {0}")]
    Exhausted(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{op}: {source}")]
    Netlink { op: String, source: rtnetlink::Error },
    #[error("{0}")]
    Iptables(String),
    #[error("No such network: {0}")]
    NotFound(String),
}

impl From<ipam::IpamError> for NetworkError {
    fn from(e: ipam::IpamError) -> Self {
        match e {
            ipam::IpamError::Exhausted(s) => NetworkError::Exhausted(s),
            e => NetworkError::Setup(e.to_string()),
        }
    }
}

impl Classify for NetworkError {
    fn kind(&self) -> ErrorKind {
        match self {
            NetworkError::NotFound(_) => ErrorKind::NotFound,
            _ => ErrorKind::Internal,
        }
    }
}

fn nl(op: impl Into<String>) -> impl FnOnce(rtnetlink::Error) -> NetworkError {
    let op = op.into();
    move |source| NetworkError::Netlink { op, source }
}

/// A container's place on the default bridge.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Endpoint {
    /// Bind-mounted network namespace to give the runtime (`NetNs::Path`).
    pub netns: PathBuf,
    pub ip: Ipv4Addr,
    pub prefix_len: u8,
    pub gateway: Ipv4Addr,
    pub mac: String,
    /// Host side of the veth pair.
    pub veth: String,
    pub network_id: String,
    pub endpoint_id: String,
}

pub struct NetworkService {
    pub bridge_name: String,
    /// Id of the default network (`bridge`).
    pub network_id: String,
    /// `<data-root>/network`.
    data_dir: PathBuf,
    /// `<exec-root>/netns`.
    netns_dir: PathBuf,
    /// Networks by id.
    networks: Mutex<BTreeMap<String, NetState>>,
}

/// Endpoint id of `container_id` on network `network_id`: deterministic, so disconnect and
/// inspect after a restart need no extra state.
fn endpoint_id(network_id: &str, container_id: &str) -> String {
    hex::encode(Sha256::digest(format!("{network_id}/{container_id}").as_bytes()))
}

fn veth_name(endpoint_id: &str) -> String {
    format!("veth{}", &endpoint_id[..7])
}

fn parse_cidr(cfg: &crate::EngineConfig) -> Result<ipnetwork::Ipv4Network, NetworkError> {
    let name = &cfg.bridge_name;
    if name.is_empty() || name.len() > 15 || name.chars().any(|c| c == '/' || c == ':' || c.is_whitespace()) {
        return Err(NetworkError::Setup(format!("invalid bridge name {name:?}")));
    }
    cfg.bridge_cidr
        .parse()
        .map_err(|e| NetworkError::Setup(format!("invalid bridge address {:?}: {e}", cfg.bridge_cidr)))
}

impl NetworkService {
    /// Ensures the bridge, its address, NAT and forwarding rules exist; loads IPAM state
    /// from `<data_root>/network/` and releases the addresses of containers whose netns is gone.
    #[tracing::instrument(skip_all, fields(bridge = %cfg.bridge_name))]
    pub async fn start(cfg: &crate::EngineConfig) -> Result<Self, NetworkError> {
        let cidr = parse_cidr(cfg)?;
        let data_dir = cfg.data_root.join("network");
        let netns_dir = cfg.exec_root.join("netns");
        std::fs::create_dir_all(&data_dir)?;
        std::fs::create_dir_all(&netns_dir)?;

        let mut all = store::load_all(&data_dir)?;
        let old = all.iter().position(|s| s.net.name == DEFAULT_NETWORK).map(|i| all.remove(i));
        let mut default = store::default_network(old, &cfg.bridge_name, cidr)?;
        store::save_network(&data_dir, &default.net)?;

        let h = bridge::host()?;
        bridge::ensure_bridge(&h, &cfg.bridge_name, cidr).await.map_err(nl(format!("bridge {}", cfg.bridge_name)))?;
        enable_ip_forward()?;
        nat::apply(&nat::plan(&cfg.bridge_name, &default.net.subnet)).await.map_err(NetworkError::Iptables)?;

        // Reconcile: an address whose container netns no longer exists is free again.
        let stale: Vec<String> = default
            .ipam
            .allocations()
            .keys()
            .filter(|id| !netns::is_netns(&netns::path_in(&netns_dir, id)))
            .cloned()
            .collect();
        for id in &stale {
            tracing::info!(container = %id, "releasing address of a container whose netns is gone");
            let veth = veth_name(&endpoint_id(&default.net.id, id));
            bridge::delete_link(&h, &veth).await.map_err(nl(format!("delete {veth}")))?;
            netns::remove(&netns::path_in(&netns_dir, id))?;
            default.ipam.release(id);
        }
        store::save_ipam(&data_dir, &default.net.id, &default.ipam)?;

        let network_id = default.net.id.clone();
        let mut networks = BTreeMap::new();
        networks.insert(network_id.clone(), default);
        networks.extend(all.into_iter().map(|s| (s.net.id.clone(), s)));
        tracing::info!(network = %network_id, subnet = %cidr, "default bridge ready");
        Ok(NetworkService {
            bridge_name: cfg.bridge_name.clone(),
            network_id,
            data_dir,
            netns_dir,
            networks: Mutex::new(networks),
        })
    }

    /// Allocates an address and creates the container's netns (bind-mounted under
    /// `<exec_root>/netns/<id>`) with `eth0` (veth peer on the bridge), `lo` up, default route.
    /// Idempotent: connecting again keeps the address and rebuilds the veth.
    #[tracing::instrument(skip_all, fields(container = %container_id))]
    pub async fn connect(&self, container_id: &str) -> Result<Endpoint, NetworkError> {
        let ep = self.allocate(&self.network_id, container_id)?;
        match self.plumb(&ep).await {
            Ok(()) => Ok(ep),
            Err(e) => {
                if let Err(e2) = self.disconnect(container_id).await {
                    tracing::warn!(error = %e2, "cleanup after failed connect");
                }
                Err(e)
            }
        }
    }

    /// `--network none`: a netns of the container's own at [`Self::netns_path`] with only
    /// `lo`, up (as dockerd gives it). `disconnect` removes it.
    pub async fn isolate(&self, container_id: &str) -> Result<PathBuf, NetworkError> {
        let path = self.netns_path(container_id);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let ns = netns::open_or_create(&path).await?;
        let h = bridge::in_netns(ns.netlink);
        if let Err(e) = bridge::loopback_up(&h).await {
            let _ = netns::remove(&path);
            return Err(nl("bring lo up".to_string())(e));
        }
        Ok(path)
    }

    /// Removes the veth, the netns and releases the address. Idempotent.
    #[tracing::instrument(skip_all, fields(container = %container_id))]
    pub async fn disconnect(&self, container_id: &str) -> Result<(), NetworkError> {
        let veth = veth_name(&endpoint_id(&self.network_id, container_id));
        let h = bridge::host()?;
        bridge::delete_link(&h, &veth).await.map_err(nl(format!("delete {veth}")))?;
        netns::remove(&self.netns_path(container_id))?;
        let mut nets = self.networks.lock().expect("network map lock");
        let state = nets.get_mut(&self.network_id).ok_or_else(|| NetworkError::NotFound(self.network_id.clone()))?;
        if state.ipam.release(container_id).is_some() {
            store::save_ipam(&self.data_dir, &state.net.id, &state.ipam)?;
        }
        Ok(())
    }

    /// Subnet (CIDR) and gateway of the default bridge, for `docker network inspect bridge`/info.
    pub fn subnet(&self) -> (String, Ipv4Addr) {
        let nets = self.networks.lock().expect("network map lock");
        nets.get(&self.network_id)
            .map(|s| (s.net.subnet.clone(), s.net.gateway))
            .unwrap_or((String::new(), Ipv4Addr::UNSPECIFIED))
    }

    /// The default network's record.
    pub fn default_network(&self) -> Network {
        let nets = self.networks.lock().expect("network map lock");
        nets.get(&self.network_id).map(|s| s.net.clone()).expect("default network is always present")
    }

    /// All networks (for `docker network ls`).
    pub fn networks(&self) -> Vec<Network> {
        self.networks.lock().expect("network map lock").values().map(|s| s.net.clone()).collect()
    }

    /// A network by id, id prefix or name.
    pub fn network(&self, id_or_name: &str) -> Result<Network, NetworkError> {
        let nets = self.networks.lock().expect("network map lock");
        nets.values()
            .find(|s| s.net.id == id_or_name || s.net.name == id_or_name)
            .or_else(|| nets.values().find(|s| !id_or_name.is_empty() && s.net.id.starts_with(id_or_name)))
            .map(|s| s.net.clone())
            .ok_or_else(|| NetworkError::NotFound(id_or_name.to_string()))
    }

    /// The endpoint of a connected container on the default network (for inspect), if any.
    pub fn endpoint(&self, container_id: &str) -> Option<Endpoint> {
        let nets = self.networks.lock().expect("network map lock");
        let s = nets.get(&self.network_id)?;
        Some(self.make_endpoint(s, container_id, s.ipam.get(container_id)?))
    }

    /// Containers with an address on the default network, with their endpoints.
    pub fn endpoints(&self) -> Vec<(String, Endpoint)> {
        let nets = self.networks.lock().expect("network map lock");
        let Some(s) = nets.get(&self.network_id) else { return vec![] };
        s.ipam.allocations().iter().map(|(id, ip)| (id.clone(), self.make_endpoint(s, id, *ip))).collect()
    }

    /// `<exec_root>/netns/<container id>`.
    pub fn netns_path(&self, container_id: &str) -> PathBuf {
        netns::path_in(&self.netns_dir, container_id)
    }

    /// Removes everything an engine with this configuration created on the host: netns mounts
    /// under `<exec_root>/netns`, the host veths of recorded endpoints, the bridge and the
    /// iptables chains/jumps. Keeps the state files. Idempotent; for tests and uninstall.
    pub async fn purge(cfg: &crate::EngineConfig) -> Result<(), NetworkError> {
        let h = bridge::host()?;
        let data_dir = cfg.data_root.join("network");
        for s in store::load_all(&data_dir).unwrap_or_default() {
            for id in s.ipam.allocations().keys() {
                let veth = veth_name(&endpoint_id(&s.net.id, id));
                bridge::delete_link(&h, &veth).await.map_err(nl(format!("delete {veth}")))?;
            }
        }
        if let Ok(rd) = std::fs::read_dir(cfg.exec_root.join("netns")) {
            for e in rd.flatten() {
                netns::remove(&e.path())?;
            }
        }
        bridge::delete_link(&h, &cfg.bridge_name).await.map_err(nl(format!("delete {}", cfg.bridge_name)))?;
        // The subnet does not matter for removal: chains and jumps are found by name.
        nat::remove(&nat::plan(&cfg.bridge_name, "0.0.0.0/0")).await.map_err(NetworkError::Iptables)
    }

    fn make_endpoint(&self, s: &NetState, container_id: &str, ip: Ipv4Addr) -> Endpoint {
        let endpoint_id = endpoint_id(&s.net.id, container_id);
        Endpoint {
            netns: self.netns_path(container_id),
            ip,
            prefix_len: s.ipam.subnet().prefix(),
            gateway: s.net.gateway,
            mac: ipam::mac_string(&ipam::mac_for(ip)),
            veth: veth_name(&endpoint_id),
            network_id: s.net.id.clone(),
            endpoint_id,
        }
    }

    /// Takes (or finds) the address of `container_id` on `network_id` and persists the change.
    fn allocate(&self, network_id: &str, container_id: &str) -> Result<Endpoint, NetworkError> {
        let mut nets = self.networks.lock().expect("network map lock");
        let s = nets.get_mut(network_id).ok_or_else(|| NetworkError::NotFound(network_id.to_string()))?;
        let fresh = s.ipam.get(container_id).is_none();
        let ip = s.ipam.allocate(container_id)?;
        if fresh {
            if let Err(e) = store::save_ipam(&self.data_dir, network_id, &s.ipam) {
                s.ipam.release(container_id);
                return Err(e);
            }
        }
        Ok(self.make_endpoint(s, container_id, ip))
    }

    /// Creates the netns, the veth pair and configures the container side.
    async fn plumb(&self, ep: &Endpoint) -> Result<(), NetworkError> {
        let (subnet, bridge_name) = {
            let nets = self.networks.lock().expect("network map lock");
            let s = nets.get(&ep.network_id).ok_or_else(|| NetworkError::NotFound(ep.network_id.clone()))?;
            (s.net.subnet.clone(), s.net.bridge.clone())
        };
        let ns = netns::open_or_create(&ep.netns).await?;
        let h = bridge::host()?;
        let br = match bridge::link_index(&h, &bridge_name).await.map_err(nl("find bridge"))? {
            Some(i) => i,
            None => {
                tracing::warn!(bridge = %bridge_name, "bridge vanished; recreating it");
                let cidr = format!("{}/{}", ep.gateway, store::parse_subnet(&subnet)?.prefix());
                let cidr = cidr.parse().map_err(|e| NetworkError::Setup(format!("{cidr}: {e}")))?;
                bridge::ensure_bridge(&h, &bridge_name, cidr).await.map_err(nl(format!("bridge {bridge_name}")))?
            }
        };
        // A leftover pair of an earlier attempt would make the name clash.
        bridge::delete_link(&h, &ep.veth).await.map_err(nl(format!("delete {}", ep.veth)))?;
        let mac = ipam::mac_for(ep.ip);
        bridge::add_veth(&h, &ep.veth, br, &ns.fd, mac).await.map_err(nl(format!("create veth {}", ep.veth)))?;
        let inner = bridge::in_netns(ns.netlink);
        bridge::configure_inside(&inner, ep.ip, ep.prefix_len, ep.gateway)
            .await
            .map_err(nl(format!("configure eth0 in {}", ep.netns.display())))?;
        Ok(())
    }
}

/// `net.ipv4.ip_forward=1` (written through /proc; never turned off again).
fn enable_ip_forward() -> Result<(), NetworkError> {
    let p = Path::new("/proc/sys/net/ipv4/ip_forward");
    if std::fs::read_to_string(p).map(|s| s.trim() == "1").unwrap_or(false) {
        return Ok(());
    }
    std::fs::write(p, b"1\n").map_err(|e| NetworkError::Setup(format!("enable ip_forward: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_names_are_stable_and_short() {
        let a = endpoint_id("net1", "c1");
        assert_eq!(a, endpoint_id("net1", "c1"));
        assert_ne!(a, endpoint_id("net2", "c1"));
        assert_eq!(a.len(), 64);
        let v = veth_name(&a);
        assert_eq!(v.len(), 11);
        assert!(v.starts_with("veth"));
    }

    #[test]
    fn rejects_bad_bridge_config() {
        let mut cfg = crate::EngineConfig::with_defaults();
        cfg.bridge_name = "much-too-long-name".into();
        assert!(parse_cidr(&cfg).is_err());
        cfg.bridge_name = "flt0".into();
        cfg.bridge_cidr = "nonsense".into();
        assert!(parse_cidr(&cfg).is_err());
        cfg.bridge_cidr = "10.1.0.1/24".into();
        assert_eq!(parse_cidr(&cfg).unwrap().ip().to_string(), "10.1.0.1");
    }
}
