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
//! removes both on every node, and a clean engine stop removes them where no container uses the
//! network ([`teardown`]). In etcd: claims and endpoints under the engine's lease (gone
//! [`kv::LEASE_TTL`] seconds after it dies; published again by the next start, which keeps the
//! containers' addresses). A store that does not answer at start is waited for ([`slot`]).
pub mod config;
mod create;
pub mod kv;
pub(super) mod link;
mod slot;
mod sync;
mod teardown;

use super::{nl, os, NetworkError, Shared};
use kv::{GlobalNetwork, Kv, RemoteEndpoint};
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};

pub use config::ClusterStore;
pub use create::check_name;
pub(crate) use slot::Slot;
pub use slot::StoreStatus;

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
    /// The engine's lease: its claims and endpoints live under it (replaced when it expires).
    lease: std::sync::atomic::AtomicI64,
    /// `<data-root>/network`: overlay networks are recorded there too, so that a restart
    /// keeps their bridges and the containers' addresses.
    data_dir: std::path::PathBuf,
    /// Per overlay network: its VXLAN index and the peers installed in it.
    installed: tokio::sync::Mutex<BTreeMap<String, Installed>>,
    /// The global networks as last read (by id).
    known: Mutex<BTreeMap<String, GlobalNetwork>>,
    /// Set at a clean engine stop: store changes are no longer applied.
    stopped: std::sync::atomic::AtomicBool,
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
    pub(super) async fn start(cfg: &ClusterStore, shared: Arc<Shared>, data_dir: std::path::PathBuf) -> Result<Arc<Overlay>, NetworkError> {
        let h = shared.netlink.host().map_err(os("netlink connection"))?;
        let vtep = h.advertise_ip(&cfg.advertise).await.map_err(nl(format!("address of {}", cfg.advertise)))?.ok_or_else(|| {
            NetworkError::Setup(format!("--cluster-advertise {}: no such address or interface with an IPv4 address", cfg.advertise))
        })?;
        let kv = Kv::connect(cfg).await?;
        let lease = kv.grant().await?;
        let ov = Arc::new(Overlay {
            kv,
            vtep,
            lease: lease.into(),
            data_dir,
            installed: Default::default(),
            known: Default::default(),
            stopped: Default::default(),
        });
        let snap = ov.kv.snapshot().await?;
        ov.apply(&shared, &snap).await;
        // Containers that outlived an engine restart: their addresses and endpoints, under the new lease.
        ov.reassert(&shared).await;
        shared.tasks.spawn_until_shutdown(sync::keep_alive(ov.clone(), shared.clone()));
        shared.tasks.spawn_until_shutdown(sync::watch(ov.clone(), shared.clone(), snap.revision));
        tracing::info!(vtep = %vtep, store = ?cfg.endpoints, "overlay networks ready");
        Ok(ov)
    }

    pub(super) fn lease(&self) -> i64 {
        self.lease.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Claims again, under the current lease, the address of every local container on an
    /// overlay network and publishes its endpoint again.
    pub(super) async fn reassert(&self, shared: &Shared) {
        let mine: Vec<(String, RemoteEndpoint)> = {
            let st = shared.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let mut out = vec![];
            for sb in st.sandboxes.values() {
                for e in &sb.endpoints {
                    let Some(s) = st.networks.get(&e.network_id).filter(|s| s.net.driver == DRIVER) else { continue };
                    let Some(ip) = s.ipam.get(&sb.container_id) else { continue };
                    out.push((
                        sb.container_id.clone(),
                        RemoteEndpoint {
                            network_id: e.network_id.clone(),
                            container_id: sb.container_id.clone(),
                            name: sb.name.clone(),
                            aliases: e.aliases.clone(),
                            ip,
                            mac: e.mac.clone(),
                            vtep: self.vtep,
                        },
                    ));
                }
            }
            out
        };
        for (cid, ep) in mine {
            let r = async {
                if !self.kv.reclaim(&ep.network_id, ep.ip, &cid, self.lease()).await? {
                    tracing::error!(container = %cid, ip = %ep.ip, network = %ep.network_id, "address taken by another container while this engine was away");
                }
                self.kv.put_endpoint(&ep, self.lease()).await
            };
            if let Err(e) = r.await {
                tracing::warn!(container = %cid, error = %e, "overlay endpoint not published again");
            }
        }
    }

    fn vxlan_name(tag: &str, vni: u32) -> String {
        format!("vx{}{vni:06x}", &tag[..tag.len().min(6)])
    }
}

/// Is `name` a VXLAN device this engine (tag `tag`) makes? Such a port of an overlay bridge is
/// no stray veth: it is kept at start, so traffic flows on until the store is read again.
pub(super) fn is_our_vxlan(tag: &str, name: &str) -> bool {
    let t = &tag[..tag.len().min(6)];
    name.strip_prefix("vx").and_then(|r| r.strip_prefix(t)).is_some_and(|hex| hex.len() == 6 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn our_vxlan_names() {
        let n = super::Overlay::vxlan_name("fltt0042", 256);
        assert_eq!(n, "vxfltt00000100");
        assert!(n.len() <= 15);
        assert!(super::is_our_vxlan("fltt0042", &n));
        assert!(!super::is_our_vxlan("fltt0042", "vxfltt0000010"));
        assert!(!super::is_our_vxlan("flt0", &n));
        assert!(!super::is_our_vxlan("fltt0042", "vethabcdef0"));
    }
}
