//! Overlay networks (`docker network create -d overlay`), global in scope, for engines started
//! with `--cluster-store etcd://…` and `--cluster-advertise`: the networks, a cluster-wide IPAM
//! and every container's endpoint live in etcd ([`kv`]); each engine watches them and keeps,
//! per overlay network, a bridge (carrying the network's gateway, so containers reach the
//! outside through NAT on their own node as on a bridge network) with a VXLAN device
//! ([`link`]) enslaved, and FDB + neighbour entries for the endpoints of other nodes ([`sync`]).
//! No flooding: ARP is answered by the VXLAN device (proxy) from those entries.
//!
//! What an engine leaves on the host, besides a bridge network's: per overlay network the
//! VXLAN device `vx<tag[..6]><vni hex>`; its bridge is named as a bridge network's. `network rm`
//! removes both on every node. In etcd: claims and endpoints under the engine's lease (gone
//! [`kv::LEASE_TTL`] seconds after it dies).
pub mod config;
mod create;
pub mod kv;
mod link;
mod sync;

use super::{bridge, nl, NetworkError, Shared};
use kv::{GlobalNetwork, Kv, RemoteEndpoint};
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};

pub use config::ClusterStore;
pub use create::check_name;
pub(super) use link::set_mtu;

/// The driver name.
pub const DRIVER: &str = "overlay";
/// `-o com.docker.network.driver.mtu`.
pub const OPT_MTU: &str = "com.docker.network.driver.mtu";
/// VXLAN over an underlay of 1500 bytes (libnetwork's default too).
const DEFAULT_MTU: u32 = 1450;

/// The MTU of an overlay network's links.
pub fn mtu_of(net: &super::Network) -> Option<u32> {
    (net.driver == DRIVER).then(|| net.options.get(OPT_MTU).and_then(|m| m.parse().ok()).unwrap_or(DEFAULT_MTU))
}

/// One node's part of the overlay networks.
pub struct Overlay {
    pub(super) kv: Kv,
    /// This node's VXLAN tunnel endpoint (`--cluster-advertise`).
    pub(super) vtep: Ipv4Addr,
    /// The engine's lease: its claims and endpoints live under it.
    pub(super) lease: i64,
    /// Per overlay network: its VXLAN index and the peers installed in it.
    installed: tokio::sync::Mutex<BTreeMap<String, Installed>>,
    /// The global networks as last read (by id).
    known: Mutex<BTreeMap<String, GlobalNetwork>>,
}

#[derive(Default)]
struct Installed {
    vxlan: String,
    index: u32,
    peers: BTreeSet<Peer>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Peer {
    ip: Ipv4Addr,
    mac: [u8; 6],
    vtep: Ipv4Addr,
}

impl Overlay {
    /// Connects to the store, takes a lease and starts the watch and keep-alive tasks.
    pub(super) async fn start(cfg: &ClusterStore, shared: Arc<Shared>) -> Result<Arc<Overlay>, NetworkError> {
        let h = bridge::host()?;
        let vtep = link::advertise_ip(&h, &cfg.advertise)
            .await
            .map_err(nl(format!("address of {}", cfg.advertise)))?
            .ok_or_else(|| NetworkError::Setup(format!("--cluster-advertise {}: no such address or interface with an IPv4 address", cfg.advertise)))?;
        let kv = Kv::connect(cfg).await?;
        let lease = kv.grant().await?;
        let ov = Arc::new(Overlay { kv, vtep, lease, installed: Default::default(), known: Default::default() });
        tokio::spawn(sync::keep_alive(ov.clone()));
        let snap = ov.kv.snapshot().await?;
        ov.apply(&shared, &snap).await;
        tokio::spawn(sync::watch(ov.clone(), shared, snap.revision));
        tracing::info!(vtep = %vtep, store = ?cfg.endpoints, "overlay networks ready");
        Ok(ov)
    }

    fn vxlan_name(tag: &str, vni: u32) -> String {
        format!("vx{}{vni:06x}", &tag[..tag.len().min(6)])
    }
}

impl From<kv::KvError> for NetworkError {
    fn from(e: kv::KvError) -> Self {
        NetworkError::Setup(e.to_string())
    }
}
