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
//! State (see [`store`]): `<data-root>/network/<network id>/network.json`,
//! `<exec-root>/network/<network id>/ipam.json` and
//! `<exec-root>/network/sandboxes/<container id>.json`. On start the service reconciles the host
//! with it: bridges of known networks are ensured, our stray bridges and veths deleted, sandboxes
//! whose netns is gone released (a netns whose mount is gone but whose container runs on is
//! mounted again from the container's process), ports taken again, resolvers restarted, and our chains rebuilt.
//!
//! The kernel is reached through two seams, [`netlink::Netlink`] and [`iptables::Iptables`]
//! (real in the engine, recording fakes in the root-free tests of [`tests`]). The service's
//! background work (netlink connections, resolvers, veth reaping, deferred rule updates, the
//! overlay's store watch) runs on one [`Tasks`], stopped and awaited by [`NetworkService::shutdown`].
use crate::events::EventBus;
use crate::tasks::Tasks;
use crate::{Classify, ErrorKind};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

mod attach;
mod bridge;
pub mod dns;
#[cfg(test)]
mod fake;
mod firewall;
mod flags;
pub mod ipam;
pub mod iptables;
mod lookup;
mod manage;
mod names;
pub mod nat;
pub mod netlink;
mod netns;
mod netns_pool;
pub mod overlay;
mod plumb;
pub mod portmap;
mod reconcile;
mod sandbox;
mod service;
pub mod store;
#[cfg(test)]
mod tests;

pub use iptables::{Iptables, NatError, RealIptables};
pub use manage::{has_label, CreateNetwork, PruneFilters};
pub use netlink::{Netlink, RealNetlink};
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
    /// A file or directory of ours (state, netns mounts).
    #[error("{op} {}: {source}", path.display())]
    Io { op: &'static str, path: PathBuf, source: std::io::Error },
    /// A socket or connection without a path (netlink, a host port, the resolver's sockets).
    #[error("{op}: {source}")]
    Os { op: String, source: std::io::Error },
    #[error("{op}: {source}")]
    Netlink { op: String, source: rtnetlink::Error },
    #[error("{0}")]
    Iptables(#[from] NatError),
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

/// Maps an io error on `path` to [`NetworkError::Io`].
fn io_at(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> NetworkError {
    let path = path.into();
    move |source| NetworkError::Io { op, path, source }
}

/// Maps an io error without a path to [`NetworkError::Os`].
fn os(op: impl Into<String>) -> impl FnOnce(std::io::Error) -> NetworkError {
    let op = op.into();
    move |source| NetworkError::Os { op, source }
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
    /// Links, addresses, routes (real, or a fake in tests).
    netlink: Arc<dyn Netlink>,
    /// iptables commands (real, or a fake in tests).
    iptables: Arc<dyn Iptables>,
    /// The service's background tasks, awaited by [`NetworkService::shutdown`].
    tasks: Tasks,
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
    /// Network create/destroy events are published here.
    events: EventBus,
    /// The network namespace made ahead of time for the next sandbox.
    netns_pool: Arc<netns_pool::NetnsPool>,
}

/// Endpoint id of `container_id` on network `network_id`: deterministic, so disconnect and
/// inspect after a restart need no extra state.
fn endpoint_id(network_id: &str, container_id: &str) -> String {
    hex::encode(Sha256::digest(format!("{network_id}/{container_id}").as_bytes()))
}

fn veth_name(endpoint_id: &str) -> String {
    format!("veth{}", &endpoint_id[..7])
}
