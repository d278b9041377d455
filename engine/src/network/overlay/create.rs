//! `docker network create/rm -d overlay`, and a container's address and endpoint on an overlay
//! network (claimed in etcd, never given twice cluster-wide).
use super::kv::{GlobalNetwork, RemoteEndpoint, Snapshot};
use super::{Overlay, DRIVER, OPT_MTU};
use crate::network::manage::overlaps;
use crate::network::sandbox::Attach;
use crate::network::store::{self, Network};
use crate::network::{nl, os, CreateNetwork, NetworkError, NetworkService, DEFAULT_NETWORK};
use ipnetwork::Ipv4Network;
use std::net::Ipv4Addr;
use std::sync::Arc;

/// First VNI handed out (libnetwork's overlay driver starts at 256 too).
const FIRST_VNI: u32 = 256;
/// Compare-and-put retries before giving up under contention.
const RETRIES: usize = 20;

/// libnetwork's default pool for global networks: 10.0.0.0/8 in /24s.
fn pool() -> impl Iterator<Item = Ipv4Network> {
    (0..=255u8).flat_map(|b| (0..=255u8).filter_map(move |c| Ipv4Network::new(Ipv4Addr::new(10, b, c, 0), 24).ok()))
}

impl NetworkService {
    fn overlay(&self) -> Result<&Arc<Overlay>, NetworkError> {
        let Some(slot) = &self.overlay else {
            return Err(NetworkError::Invalid(
                "overlay networks need a cluster store: start the engine with --cluster-store etcd://<ip:port>/<prefix> \
                 and --cluster-advertise <ip|interface>:<port>"
                    .into(),
            ));
        };
        slot.overlay()
    }

    /// The overlay side when it is ready (`None`: no cluster store, or not reached yet).
    pub(in crate::network) fn overlay_ready(&self) -> Option<&Arc<Overlay>> {
        self.overlay.as_ref().and_then(|s| s.get())
    }

    /// `--cluster-store` and whether it answers, for `docker info`.
    pub fn cluster_store(&self) -> Option<super::StoreStatus> {
        self.overlay.as_ref().map(|s| s.status())
    }

    /// `docker network create -d overlay`: validated, then written to etcd with a
    /// compare-and-put on the set of networks (unique name, free VNI, no overlapping subnet).
    pub(crate) async fn create_overlay(&self, req: CreateNetwork, name: String) -> Result<Network, NetworkError> {
        let ov = self.overlay()?.clone();
        if let Some(k) = req.options.keys().find(|k| k.as_str() != OPT_MTU) {
            return Err(NetworkError::Invalid(format!(
                "overlay network option {k} is not supported by this engine (supported: {OPT_MTU})"
            )));
        }
        if let Some(m) = req.options.get(OPT_MTU) {
            if !m.parse::<u32>().is_ok_and(|m| (576..=9000).contains(&m)) {
                return Err(NetworkError::Invalid(format!("invalid {OPT_MTU} {m:?}: a number from 576 to 9000")));
            }
        }
        let user = match &req.subnet {
            Some(s) => Some(store::parse_subnet(s).map_err(|_| NetworkError::Invalid(format!("invalid subnet {s}")))?),
            None => None,
        };
        let h = self.shared.netlink.host().map_err(os("netlink connection"))?;
        let host_nets = h.local_networks().await.map_err(nl("list addresses"))?;
        for _ in 0..RETRIES {
            let snap = ov.kv.snapshot().await?;
            let local: Vec<Network> = self.networks().into_iter().filter(|n| n.driver != DRIVER).collect();
            if snap.networks.iter().any(|g| g.net.name == name) || local.iter().any(|n| n.name == name) {
                return Err(NetworkError::Conflict(format!("network with name {name} already exists")));
            }
            let mut taken: Vec<Ipv4Network> = snap.networks.iter().filter_map(|g| store::parse_subnet(&g.net.subnet).ok()).collect();
            taken.extend(local.iter().filter_map(|n| store::parse_subnet(&n.subnet).ok()));
            let subnet = match user {
                Some(n) if taken.iter().any(|t| overlaps(t, &n)) => {
                    return Err(NetworkError::Forbidden("Pool overlaps with other one on this address space".into()))
                }
                Some(n) => n,
                None => pool().find(|c| !taken.iter().chain(&host_nets).any(|t| overlaps(t, c))).ok_or_else(|| {
                    NetworkError::Forbidden("could not find an available, non-overlapping IPv4 address pool for the overlay network".into())
                })?,
            };
            let gateway = match &req.gateway {
                Some(g) => g.parse::<Ipv4Addr>().map_err(|_| NetworkError::Invalid(format!("invalid gateway address {g}")))?,
                None => Ipv4Addr::from(u32::from(subnet.network()) + 1),
            };
            if !subnet.contains(gateway) {
                return Err(NetworkError::Invalid(format!("no matching subnet for gateway {gateway}")));
            }
            let vni = (FIRST_VNI..).find(|v| !snap.networks.iter().any(|g| g.vni == *v)).expect("a free VNI");
            let net = Network {
                id: crate::ids::new_id(),
                name: name.clone(),
                driver: DRIVER.into(),
                subnet: subnet.to_string(),
                gateway,
                bridge: String::new(),
                created: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
                ip_range: req.ip_range.clone(),
                internal: req.internal,
                labels: req.labels.clone(),
                options: req.options.clone(),
                user_subnet: req.subnet.is_some(),
                attachable: req.attachable,
            };
            store::new_ipam(&net)?; // validates --ip-range
            let g = GlobalNetwork { net, vni };
            if ov.kv.create_network(&snap, &g).await? {
                self.overlay_refresh(&ov).await?;
                tracing::info!(network = %g.net.id, vni, subnet = %g.net.subnet, "overlay network created");
                return Ok(g.net);
            }
        }
        Err(NetworkError::Setup("cluster store busy: too many concurrent network changes, try again".into()))
    }

    /// Re-reads the store and applies it now (so a change is visible here when it returns).
    async fn overlay_refresh(&self, ov: &Overlay) -> Result<Snapshot, NetworkError> {
        let snap = ov.kv.snapshot().await?;
        ov.apply(&self.shared, &snap).await;
        Ok(snap)
    }

    /// `docker network rm` of an overlay network: refused while any node has a container on it.
    pub(crate) async fn remove_overlay(&self, net: &Network) -> Result<(), NetworkError> {
        let ov = self.overlay()?.clone();
        for _ in 0..RETRIES {
            let snap = ov.kv.snapshot().await?;
            let local = {
                let st = self.shared.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                st.sandboxes.values().any(|sb| sb.endpoints.iter().any(|e| e.network_id == net.id))
            };
            if local || snap.endpoints.iter().any(|e| e.network_id == net.id) {
                return Err(NetworkError::Forbidden(format!(
                    "error while removing network: network {} id {} has active endpoints",
                    net.name, net.id
                )));
            }
            if ov.kv.remove_network(&snap, &net.id).await? {
                self.overlay_refresh(&ov).await?;
                store::remove_network(&self.data_dir, &net.id)?;
                tracing::info!(network = %net.id, "overlay network removed");
                return Ok(());
            }
        }
        Err(NetworkError::Setup("cluster store busy: too many concurrent network changes, try again".into()))
    }

    /// Before an attach to `network`: on an overlay network, claims the address in the store
    /// (`--ip` or the first free one) and returns the attach with it; else `attach` as it is.
    pub(crate) async fn overlay_claim(&self, cid: &str, network: &str, attach: &Attach) -> Result<Attach, NetworkError> {
        let Ok(net) = self.network(network) else { return Ok(attach.clone()) };
        if net.driver != DRIVER {
            return Ok(attach.clone());
        }
        let ov = self.overlay()?.clone();
        let subnet = store::parse_subnet(&net.subnet)?;
        let range = match &net.ip_range {
            Some(r) => store::parse_subnet(r)?,
            None => subnet,
        };
        let usable = |ip: Ipv4Addr| subnet.contains(ip) && ip != subnet.network() && ip != subnet.broadcast() && ip != net.gateway;
        let mut out = attach.clone();
        if let Some(want) = attach.ipv4 {
            if !net.user_subnet {
                return Err(NetworkError::Invalid(
                    "user specified IP address is supported only when connecting to networks with user configured subnets".into(),
                ));
            }
            if !usable(want) {
                return Err(NetworkError::Invalid(format!(
                    "invalid address {want}: it does not belong to any of this network's subnets ({subnet})"
                )));
            }
            if !ov.kv.claim(&net.id, want, cid, ov.lease()).await? {
                return Err(NetworkError::Conflict(format!("Address already in use: {want} on network {}", net.name)));
            }
            return Ok(out);
        }
        let snap = ov.kv.snapshot().await?;
        let taken: std::collections::BTreeSet<Ipv4Addr> = snap.claims.iter().filter(|(n, _)| *n == net.id).map(|(_, ip)| *ip).collect();
        for ip in range.iter().filter(|ip| usable(*ip) && !taken.contains(ip)) {
            if ov.kv.claim(&net.id, ip, cid, ov.lease()).await? {
                out.ipv4 = Some(ip);
                return Ok(out);
            }
        }
        Err(NetworkError::Exhausted(net.subnet.clone()))
    }

    /// After an attach: publishes the endpoint (with this node as its VXLAN endpoint).
    pub(crate) async fn overlay_publish(&self, cid: &str, ep: &crate::network::Endpoint) -> Result<(), NetworkError> {
        let Some(ov) = self.overlay_ready() else { return Ok(()) };
        let (is_overlay, name) = {
            let st = self.shared.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            (
                st.networks.get(&ep.network_id).is_some_and(|s| s.net.driver == DRIVER),
                st.sandboxes.get(cid).map(|s| s.name.clone()).unwrap_or_default(),
            )
        };
        if !is_overlay {
            return Ok(());
        }
        let rec = RemoteEndpoint {
            network_id: ep.network_id.clone(),
            container_id: cid.to_string(),
            name,
            aliases: ep.aliases.clone(),
            ip: ep.ip,
            mac: ep.mac.clone(),
            vtep: ov.vtep,
        };
        Ok(ov.kv.put_endpoint(&rec, ov.lease()).await?)
    }

    /// The overlay addresses `cid` holds: (network id, address), to give back with [`Self::overlay_release`].
    pub(crate) fn overlay_held(&self, cid: &str, only: Option<&str>) -> Vec<(String, Ipv4Addr)> {
        let st = self.shared.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        st.networks
            .values()
            .filter(|s| s.net.driver == DRIVER && only.is_none_or(|o| o == s.net.id))
            .filter_map(|s| Some((s.net.id.clone(), s.ipam.get(cid)?)))
            .collect()
    }

    /// Removes the endpoints of `cid` from the store and gives its addresses back.
    pub(crate) async fn overlay_release(&self, cid: &str, held: Vec<(String, Ipv4Addr)>) {
        let Some(ov) = self.overlay_ready() else { return };
        for (net, ip) in held {
            let r = async {
                ov.kv.delete_endpoint(&net, cid).await?;
                ov.kv.release(&net, ip, cid).await
            };
            if let Err(e) = r.await {
                tracing::error!(network = %net, container = %cid, %ip, error = %e, "overlay endpoint not removed from the cluster store");
            }
        }
    }
}

/// The predefined networks' names are refused as an overlay's too.
pub fn check_name(name: &str) -> Result<(), NetworkError> {
    if name == DEFAULT_NETWORK || name == "host" || name == "none" {
        return Err(NetworkError::Conflict(format!("network with name {name} already exists")));
    }
    Ok(())
}
