//! Networks: the default bridge, user-defined bridge networks and overlay networks (IPAM, bridge and veths over
//! netlink, NAT, isolation and published ports with iptables), each container's sandbox (its
//! netns with one interface per network) and the embedded DNS resolver.
//!
//! # What an engine leaves on the host
//!
//! For `--bridge-name <tag>` / `--bip <gw>/<prefix>` (defaults `flt0`, `172.31.0.1/16`):
//! - bridge `<tag>` (with a fixed `02:42:…` MAC) carrying `<gw>/<prefix>`, up; one more bridge
//!   per user-defined network, named `<tag[..8]>-<hex>` (or `-o com.docker.network.bridge.name`);
//!   `net.ipv4.conf.<bridge>.route_localnet=1` on each (published ports answer on 127.0.0.1);
//! - per container with a netns of ours: the netns bind-mounted at `<exec-root>/netns/<id>`, and
//!   per network it is on a host veth `veth<7 hex>` (enslaved to that network's bridge) whose peer
//!   is `eth0`, `eth1`, … inside; the embedded resolver's sockets on 127.0.0.11:53 inside the
//!   netns of containers on user-defined networks (held by the engine process);
//! - a listening socket per published host port (held by the engine process);
//! - with `--cluster-store`, per overlay network (see [`overlay`]): a bridge named as a user
//!   network's, with a VXLAN device `vx<tag[..6]><vni hex>` enslaved (removed by `network rm`
//!   on every node, and by a clean stop where no container uses the network; `purge` removes
//!   the bridge, `ip link del vx…` the VXLAN);
//! - `net.ipv4.ip_forward=1` (never reset; not set with `--ip-forward=false`);
//! - iptables (see [`nat`]): chains `FLT-<tag>` (filter), `FLT-<tag>-NAT` and `FLT-<tag>-DNAT`
//!   (nat), hooked into FORWARD, POSTROUTING, PREROUTING and OUTPUT; every rule carries
//!   `-m comment --comment flotilla:<tag>` (none at all with `--iptables=false`).
//!
//! Everything can be removed with [`NetworkService::purge`], or by hand:
//! ```text
//! for f in <exec-root>/netns/*; do umount -l $f; rm $f; done
//! iptables-save | grep flotilla:<tag>     # delete those rules, then flush and delete FLT-<tag>*
//! ip link del <tag>; ip link del <tag[..8]>-…     # host veths die with their netns
//! ```
//!
//! State (see [`store`]): `<data-root>/network/<network id>/{network.json,ipam.json}` and
//! `<exec-root>/network/sandboxes/<container id>.json`. On start the service reconciles the host
//! with it: bridges of known networks are ensured, our stray bridges and veths deleted, sandboxes
//! whose netns is gone released (a netns whose mount is gone but whose container runs on is
//! mounted again from the container's process), ports taken again, resolvers restarted, and our chains rebuilt.
use crate::{Classify, ErrorKind};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

mod bridge;
pub mod dns;
mod flags;
pub mod ipam;
mod manage;
mod names;
pub mod nat;
mod netns;
pub mod overlay;
mod plumb;
pub mod portmap;
mod reconcile;
mod sandbox;
pub mod store;

pub use manage::{has_label, CreateNetwork, PruneFilters};
pub use portmap::PortSpec;
pub use sandbox::{Attach, Sandbox, SandboxReq};
use store::{NetState, SandboxRec};
pub use store::{Network, PortMapping, DEFAULT_NETWORK};

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
    #[error("network {0} not found")]
    NotFound(String),
    /// Bad user input (400).
    #[error("{0}")]
    Invalid(String),
    /// Name or address clashes (409).
    #[error("{0}")]
    Conflict(String),
    /// Refused by policy: predefined networks, active endpoints, overlapping pools (403).
    #[error("{0}")]
    Forbidden(String),
    /// A host port cannot be taken.
    #[error("{0}")]
    PortInUse(String),
    /// The cluster store (etcd) failed or did not answer.
    #[error("{0}")]
    Store(#[from] overlay::kv::KvError),
    /// The cluster store never answered since the engine started (503).
    #[error("{0}")]
    StoreDown(String),
}

impl From<ipam::IpamError> for NetworkError {
    fn from(e: ipam::IpamError) -> Self {
        match e {
            ipam::IpamError::Exhausted(s) => NetworkError::Exhausted(s),
            e @ ipam::IpamError::InUse(_) => NetworkError::Forbidden(e.to_string()),
            e @ ipam::IpamError::OutOfRange(_) => NetworkError::Invalid(e.to_string()),
            e => NetworkError::Invalid(e.to_string()),
        }
    }
}

impl Classify for NetworkError {
    fn kind(&self) -> ErrorKind {
        match self {
            NetworkError::NotFound(_) => ErrorKind::NotFound,
            NetworkError::Invalid(_) => ErrorKind::InvalidParameter,
            NetworkError::Conflict(_) => ErrorKind::Conflict,
            NetworkError::Forbidden(_) => ErrorKind::Forbidden,
            NetworkError::StoreDown(_) => ErrorKind::Unavailable,
            _ => ErrorKind::Internal,
        }
    }
}

fn nl(op: impl Into<String>) -> impl FnOnce(rtnetlink::Error) -> NetworkError {
    let op = op.into();
    move |source| NetworkError::Netlink { op, source }
}

/// A container's place on one network.
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
    #[serde(default)]
    pub network_name: String,
    /// Interface inside the container (`eth0`, …).
    #[serde(default)]
    pub ifname: String,
    #[serde(default)]
    pub aliases: Vec<String>,
}

/// Shared between the service and the resolver tasks.
pub(crate) struct Shared {
    state: Mutex<State>,
    /// What lives only in this process, per container: resolver, host port reservations.
    live: Mutex<HashMap<String, Live>>,
    /// Serialises iptables updates; holds the rules last applied.
    fw: tokio::sync::Mutex<String>,
    /// The engine's tag (its default bridge's name) in chain names and comments.
    tag: String,
    /// Endpoints of other nodes on overlay networks, by network id (for the resolver).
    remote: Mutex<BTreeMap<String, Vec<overlay::kv::RemoteEndpoint>>>,
    /// `--iptables` (false: no chains, no rules, no published ports).
    firewall: bool,
}

#[derive(Default)]
struct State {
    /// Networks by id.
    networks: BTreeMap<String, NetState>,
    /// Sandboxes by container id.
    sandboxes: BTreeMap<String, SandboxRec>,
}

#[derive(Default)]
struct Live {
    resolver: Option<dns::Resolver>,
    ports: Vec<(PortMapping, portmap::Reservation)>,
    /// The background part of a setup (see `NetworkService::setup_started`).
    pending: Option<tokio::task::JoinHandle<Result<(), NetworkError>>>,
}

pub struct NetworkService {
    /// The default bridge's name; also the engine's tag in iptables chains and comments.
    pub bridge_name: String,
    /// Id of the default network (`bridge`).
    pub network_id: String,
    /// `<data-root>/network`.
    data_dir: PathBuf,
    /// `<exec-root>/network` (sandbox records).
    run_dir: PathBuf,
    /// `<exec-root>/netns`.
    netns_dir: PathBuf,
    shared: Arc<Shared>,
    /// Serialises network create/remove.
    ops: tokio::sync::Mutex<()>,
    /// Overlay networks, with `--cluster-store`.
    overlay: Option<Arc<overlay::Slot>>,
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
    cfg.bridge_cidr.parse().map_err(|e| NetworkError::Setup(format!("invalid bridge address {:?}: {e}", cfg.bridge_cidr)))
}

impl NetworkService {
    /// Ensures the bridges, their addresses, NAT and forwarding rules exist; loads the state from
    /// `<data_root>/network/` and reconciles the host with it (see the module docs).
    #[tracing::instrument(skip_all, fields(bridge = %cfg.bridge_name))]
    pub async fn start(cfg: &crate::EngineConfig) -> Result<Self, NetworkError> {
        let cidr = parse_cidr(cfg)?;
        let data_dir = cfg.data_root.join("network");
        let netns_dir = cfg.exec_root.join("netns");
        let run_dir = cfg.exec_root.join("network");
        std::fs::create_dir_all(&data_dir)?;
        std::fs::create_dir_all(&netns_dir)?;

        let mut all = store::load_all(&data_dir)?;
        let old = all.iter().position(|s| s.net.name == DEFAULT_NETWORK).map(|i| all.remove(i));
        let mut default = store::default_network(old, &cfg.bridge_name, cidr)?;
        flags::default_options(&mut default.net, &cfg.net);
        store::save_network(&data_dir, &default.net)?;
        let network_id = default.net.id.clone();
        let mut networks = BTreeMap::new();
        networks.insert(network_id.clone(), default);
        networks.extend(all.into_iter().map(|s| (s.net.id.clone(), s)));

        let mut svc = NetworkService {
            bridge_name: cfg.bridge_name.clone(),
            network_id,
            data_dir,
            run_dir,
            netns_dir,
            shared: Arc::new(Shared {
                state: Mutex::new(State { networks, sandboxes: BTreeMap::new() }),
                live: Mutex::default(),
                fw: Default::default(),
                tag: cfg.bridge_name.clone(),
                remote: Mutex::default(),
                firewall: cfg.net.iptables,
            }),
            ops: Default::default(),
            overlay: None,
        };
        if cfg.net.ip_forward {
            enable_ip_forward()?;
        }
        if cfg.net.iptables {
            nat::apply(&nat::plan(&svc.bridge_name)).await.map_err(NetworkError::Iptables)?;
        }
        svc.reconcile().await?;
        if let Some(cs) = &cfg.cluster_store {
            svc.overlay = Some(overlay::Slot::start(cs, svc.shared.clone(), svc.data_dir.clone()).await?);
        }
        tracing::info!(network = %svc.network_id, subnet = %cidr, "networks ready");
        Ok(svc)
    }

    /// Default bridge only: a new sandbox with one endpoint on `bridge`. Idempotent: connecting
    /// again keeps the address and rebuilds the veth.
    pub async fn connect(&self, container_id: &str) -> Result<Endpoint, NetworkError> {
        let req = SandboxReq {
            container_id: container_id.to_string(),
            networks: vec![(self.network_id.clone(), Attach::default())],
            ..Default::default()
        };
        let sb = self.setup(&req).await?;
        sb.endpoints.into_iter().next().ok_or_else(|| NetworkError::Setup("no endpoint".into()))
    }

    /// `--network none`: a sandbox without endpoints (a netns with only `lo`, up, as dockerd
    /// gives it). `disconnect` removes it.
    pub async fn isolate(&self, container_id: &str) -> Result<PathBuf, NetworkError> {
        let req = SandboxReq { container_id: container_id.to_string(), ..Default::default() };
        Ok(self.setup(&req).await?.netns)
    }

    /// Subnet (CIDR) and gateway of the default bridge, for `docker network inspect bridge`/info.
    pub fn subnet(&self) -> (String, Ipv4Addr) {
        let st = self.shared.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        st.networks.get(&self.network_id).map(|s| (s.net.subnet.clone(), s.net.gateway)).unwrap_or((String::new(), Ipv4Addr::UNSPECIFIED))
    }

    /// The default network's record.
    pub fn default_network(&self) -> Network {
        let st = self.shared.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        st.networks.get(&self.network_id).map(|s| s.net.clone()).expect("default network is always present")
    }

    /// All networks, the predefined `host` and `none` included (for `docker network ls`).
    pub fn networks(&self) -> Vec<Network> {
        let mut out: Vec<Network> =
            self.shared.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner).networks.values().map(|s| s.net.clone()).collect();
        out.extend(self.predefined());
        out
    }

    /// The pseudo networks `host` and `none` (stable ids derived from the default network's).
    pub fn predefined(&self) -> Vec<Network> {
        let created = self.default_network().created;
        [("host", "host"), ("none", "null")]
            .into_iter()
            .map(|(name, driver)| Network {
                id: hex::encode(Sha256::digest(format!("{}/{name}", self.network_id).as_bytes())),
                name: name.into(),
                driver: driver.into(),
                subnet: String::new(),
                gateway: Ipv4Addr::UNSPECIFIED,
                bridge: String::new(),
                created: created.clone(),
                ip_range: None,
                internal: false,
                labels: BTreeMap::new(),
                options: BTreeMap::new(),
                user_subnet: false,
                attachable: false,
            })
            .collect()
    }

    /// A network by id, name or unique id prefix (Docker's order).
    pub fn network(&self, id_or_name: &str) -> Result<Network, NetworkError> {
        let all = self.networks();
        if let Some(n) = all.iter().find(|n| n.id == id_or_name).or_else(|| all.iter().find(|n| n.name == id_or_name)) {
            return Ok(n.clone());
        }
        let mut hits = all.iter().filter(|n| !id_or_name.is_empty() && n.id.starts_with(id_or_name));
        match (hits.next(), hits.next()) {
            (Some(n), None) => Ok(n.clone()),
            (Some(_), Some(_)) => Err(NetworkError::NotFound(format!("{id_or_name} (multiple networks match)"))),
            _ => Err(NetworkError::NotFound(id_or_name.to_string())),
        }
    }

    /// The first endpoint (the one on the container's primary network) of a container, if any.
    pub fn endpoint(&self, container_id: &str) -> Option<Endpoint> {
        self.sandbox_endpoints(container_id).into_iter().next()
    }

    /// Every endpoint of a container, in attach order.
    pub fn sandbox_endpoints(&self, container_id: &str) -> Vec<Endpoint> {
        let st = self.shared.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(sb) = st.sandboxes.get(container_id) else { return vec![] };
        sb.endpoints.iter().filter_map(|e| self.make_endpoint(&st, sb, e)).collect()
    }

    /// The published ports of a running container.
    pub fn ports(&self, container_id: &str) -> Vec<PortMapping> {
        let st = self.shared.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        st.sandboxes.get(container_id).map(|s| s.ports.clone()).unwrap_or_default()
    }

    /// Containers with an endpoint on the default network, with their endpoints.
    pub fn endpoints(&self) -> Vec<(String, Endpoint)> {
        self.containers_of(&self.network_id).into_iter().map(|(id, _, ep)| (id, ep)).collect()
    }

    /// Containers with an endpoint on network `network_id`: (container id, name, endpoint).
    pub fn containers_of(&self, network_id: &str) -> Vec<(String, String, Endpoint)> {
        let st = self.shared.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut out = vec![];
        for sb in st.sandboxes.values() {
            for e in sb.endpoints.iter().filter(|e| e.network_id == network_id) {
                if let Some(ep) = self.make_endpoint(&st, sb, e) {
                    out.push((sb.container_id.clone(), sb.name.clone(), ep));
                }
            }
        }
        out
    }

    /// `<exec_root>/netns/<container id>`.
    pub fn netns_path(&self, container_id: &str) -> PathBuf {
        netns::path_in(&self.netns_dir, container_id)
    }

    /// Removes everything an engine with this configuration created on the host: netns mounts
    /// under `<exec_root>/netns`, the host veths of recorded endpoints, the bridges of its
    /// networks and the iptables chains/jumps. Keeps the state files. Idempotent; for tests and
    /// uninstall.
    pub async fn purge(cfg: &crate::EngineConfig) -> Result<(), NetworkError> {
        let h = bridge::host()?;
        let data_dir = cfg.data_root.join("network");
        let nets = store::load_all(&data_dir).unwrap_or_default();
        for sb in store::load_sandboxes(&cfg.exec_root.join("network")).unwrap_or_default() {
            for e in &sb.endpoints {
                let veth = veth_name(&endpoint_id(&e.network_id, &sb.container_id));
                bridge::delete_link(&h, &veth).await.map_err(nl(format!("delete {veth}")))?;
            }
        }
        if let Ok(rd) = std::fs::read_dir(cfg.exec_root.join("netns")) {
            for e in rd.flatten() {
                netns::remove(&e.path())?;
            }
        }
        for s in &nets {
            bridge::delete_link(&h, &s.net.bridge).await.map_err(nl(format!("delete {}", s.net.bridge)))?;
        }
        bridge::delete_link(&h, &cfg.bridge_name).await.map_err(nl(format!("delete {}", cfg.bridge_name)))?;
        nat::remove(&nat::plan(&cfg.bridge_name)).await.map_err(NetworkError::Iptables)
    }

    fn make_endpoint(&self, st: &State, sb: &SandboxRec, e: &store::EndpointRec) -> Option<Endpoint> {
        let s = st.networks.get(&e.network_id)?;
        let ip = s.ipam.get(&sb.container_id)?;
        let endpoint_id = endpoint_id(&s.net.id, &sb.container_id);
        Some(Endpoint {
            netns: sb.netns.clone(),
            ip,
            prefix_len: s.ipam.subnet().prefix(),
            gateway: s.net.gateway,
            mac: e.mac.clone(),
            veth: veth_name(&endpoint_id),
            network_id: s.net.id.clone(),
            endpoint_id,
            network_name: s.net.name.clone(),
            ifname: e.ifname.clone(),
            aliases: e.aliases.clone(),
        })
    }

    /// Brings our iptables chains in line with the state now.
    async fn sync_firewall(&self) -> Result<(), NetworkError> {
        self.shared.sync_firewall().await
    }

    /// The same in the background, for removals: a rule left a few milliseconds longer only
    /// points at an address nobody has any more, and `docker run --rm` does not wait for it.
    fn schedule_firewall(&self) {
        let shared = self.shared.clone();
        tokio::spawn(async move {
            if let Err(e) = shared.sync_firewall().await {
                tracing::warn!(error = %e, "firewall update failed");
            }
        });
    }
}

impl Shared {
    /// One `iptables-restore` with the rules of the current state, skipped when they equal the
    /// rules last applied. Serialised, so the last caller always applies the latest state.
    async fn sync_firewall(&self) -> Result<(), NetworkError> {
        if !self.firewall {
            return Ok(());
        }
        let mut last = self.fw.lock().await;
        let rules = {
            let st = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let nets: Vec<nat::NetRules> = st
                .networks
                .values()
                .map(|s| nat::NetRules {
                    bridge: s.net.bridge.clone(),
                    subnet: s.net.subnet.clone(),
                    internal: s.net.internal,
                    masquerade: s.net.masquerade(),
                    icc: s.net.icc(),
                })
                .collect();
            let ports: Vec<nat::PortRule> = st
                .sandboxes
                .values()
                .flat_map(|sb| sb.ports.iter())
                .map(|p| nat::PortRule {
                    proto: p.proto.clone(),
                    host_ip: (!p.host_ip.is_unspecified()).then_some(p.host_ip),
                    host_port: p.host_port,
                    ip: p.container_ip,
                    port: p.container_port,
                })
                .collect();
            nat::render(&self.tag, &nets, &ports)
        };
        if *last == rules {
            return Ok(());
        }
        nat::restore(&rules).await.map_err(NetworkError::Iptables)?;
        *last = rules;
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
