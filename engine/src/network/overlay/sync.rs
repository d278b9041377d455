//! Keeping a node in line with the store: every change under `networks/` (watched) brings the
//! node's overlay networks (state, bridge, VXLAN), its FDB/neighbour entries for other nodes'
//! endpoints and the resolver's view of remote names to what etcd holds.
use super::kv::{GlobalNetwork, Snapshot};
use super::{Installed, Overlay, Peer};
use crate::network::store::{self, NetState};
use crate::network::Shared;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

/// Renews the engine's lease every third of its TTL.
/// When it expired (etcd unreachable for longer than its TTL), takes a new one and claims
/// this node's addresses and publishes its endpoints again.
pub(super) async fn keep_alive(ov: Arc<Overlay>, shared: Arc<Shared>) {
    let every = Duration::from_secs((super::kv::LEASE_TTL / 3).max(1) as u64);
    loop {
        tokio::time::sleep(every).await;
        match ov.kv.keep_alive(ov.lease()).await {
            Ok(ttl) if ttl > 0 => {}
            Ok(_) => {
                tracing::warn!(lease = ov.lease(), "cluster store lease expired; taking a new one");
                match ov.kv.grant().await {
                    Ok(l) => {
                        ov.lease.store(l, std::sync::atomic::Ordering::Relaxed);
                        ov.reassert(&shared).await;
                    }
                    Err(e) => tracing::warn!(error = %e, "cluster store lease grant failed"),
                }
            }
            Err(e) => tracing::warn!(error = %e, "cluster store lease keep-alive failed"),
        }
    }
}

/// Watches `networks/` and applies every change; re-reads everything after a broken watch.
pub(super) async fn watch(ov: Arc<Overlay>, shared: Arc<Shared>, mut revision: i64) {
    loop {
        match ov.kv.watch(revision).await {
            Ok(mut stream) => loop {
                match stream.message().await {
                    Ok(Some(r)) if !r.canceled() => match ov.kv.snapshot().await {
                        Ok(snap) => {
                            revision = snap.revision;
                            ov.apply(&shared, &snap).await;
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "cluster store read failed");
                            break;
                        }
                    },
                    other => {
                        tracing::warn!(what = ?other.err(), "cluster store watch ended; watching again");
                        break;
                    }
                }
            },
            Err(e) => tracing::warn!(error = %e, "cluster store watch failed"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        if let Ok(snap) = ov.kv.snapshot().await {
            revision = snap.revision;
            ov.apply(&shared, &snap).await;
        }
    }
}

fn mac_bytes(s: &str) -> Option<[u8; 6]> {
    let v: Vec<u8> = s.split(':').map(|p| u8::from_str_radix(p, 16).ok()).collect::<Option<_>>()?;
    v.try_into().ok()
}

impl Overlay {
    /// Brings this node in line with `snap`. Errors are logged (the next change retries).
    pub(crate) async fn apply(&self, shared: &Shared, snap: &Snapshot) {
        let mut installed = self.installed.lock().await;
        if self.stopped.load(std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        let want: BTreeMap<String, GlobalNetwork> = snap.networks.iter().map(|g| (g.net.id.clone(), g.clone())).collect();
        *self.known.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = want.clone();
        let Ok(h) = shared.netlink.host() else { return };
        let mut changed = false;
        // Networks gone from the store (also those recorded here and removed while this engine was away).
        let mut gone: Vec<String> = installed.keys().filter(|id| !want.contains_key(*id)).cloned().collect();
        {
            let st = shared.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            gone.extend(
                st.networks
                    .values()
                    .filter(|s| s.net.driver == super::DRIVER && !want.contains_key(&s.net.id) && !installed.contains_key(&s.net.id))
                    .map(|s| s.net.id.clone()),
            );
        }
        for id in gone {
            let inst = installed.remove(&id).unwrap_or_default();
            let br = shared.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner).networks.remove(&id).map(|s| s.net.bridge);
            let _ = h.delete_link(&inst.vxlan).await;
            if let Some(br) = br {
                if let Err(e) = h.delete_link(&br).await {
                    tracing::warn!(bridge = %br, error = %e, "overlay bridge not removed");
                }
            }
            shared.remote.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&id);
            if let Err(e) = store::remove_network(&self.data_dir, &id) {
                tracing::warn!(network = %id, error = %e, "overlay network record not removed");
            }
            tracing::info!(network = %id, "overlay network removed");
            changed = true;
        }
        // New networks.
        for (id, g) in &want {
            if installed.contains_key(id) {
                continue;
            }
            let mut net = g.net.clone();
            let tag = &shared.tag[..shared.tag.len().min(8)];
            net.bridge = format!("{tag}-{}", &id[..14 - tag.len()]);
            let vxlan = Overlay::vxlan_name(&shared.tag, g.vni);
            let mtu = super::mtu_of(&net).unwrap_or(super::DEFAULT_MTU);
            let made = async {
                let subnet = store::parse_subnet(&net.subnet)?;
                let cidr = ipnetwork::Ipv4Network::new(net.gateway, subnet.prefix())
                    .map_err(|e| crate::network::NetworkError::Invalid(e.to_string()))?;
                let br = h.ensure_bridge(&net.bridge, cidr).await.map_err(crate::network::nl(format!("bridge {}", net.bridge)))?;
                shared.netlink.route_localnet(&net.bridge).map_err(crate::network::io_at(
                    "setting route_localnet on",
                    format!("/proc/sys/net/ipv4/conf/{}/route_localnet", net.bridge),
                ))?;
                let index =
                    h.ensure_vxlan(&vxlan, g.vni, self.vtep, mtu, br).await.map_err(crate::network::nl(format!("vxlan {vxlan}")))?;
                h.set_mtu(&net.bridge, mtu).await.map_err(crate::network::nl(format!("mtu of {}", net.bridge)))?;
                store::save_network(&self.data_dir, &net)?;
                let ipam = store::new_ipam(&net)?;
                Ok::<_, crate::network::NetworkError>((index, ipam))
            }
            .await;
            match made {
                Ok((index, ipam)) => {
                    // A network recorded before a restart keeps its allocations.
                    let mut st = shared.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                    match st.networks.get_mut(id) {
                        Some(s) => s.net = net,
                        None => {
                            st.networks.insert(id.clone(), NetState { net, ipam });
                        }
                    }
                    drop(st);
                    installed.insert(id.clone(), Installed { vxlan, index, peers: BTreeSet::new() });
                    tracing::info!(network = %id, vni = g.vni, "overlay network set up");
                    changed = true;
                }
                Err(e) => tracing::error!(network = %id, error = %e, "overlay network not set up"),
            }
        }
        // Peers: the other nodes' endpoints.
        let mut remote: BTreeMap<String, Vec<super::RemoteEndpoint>> = BTreeMap::new();
        for ep in snap.endpoints.iter().filter(|e| e.vtep != self.vtep) {
            remote.entry(ep.network_id.clone()).or_default().push(ep.clone());
        }
        for (id, inst) in installed.iter_mut() {
            let want: BTreeSet<Peer> = remote
                .get(id)
                .into_iter()
                .flatten()
                .filter_map(|e| Some(Peer { ip: e.ip, mac: mac_bytes(&e.mac)?, vtep: e.vtep }))
                .collect();
            for p in inst.peers.difference(&want).cloned().collect::<Vec<_>>() {
                match h.del_peer(inst.index, p.ip, p.mac, p.vtep).await {
                    Ok(()) => {
                        inst.peers.remove(&p);
                    }
                    Err(e) => tracing::warn!(network = %id, ip = %p.ip, error = %e, "peer not removed"),
                }
            }
            for p in want.difference(&inst.peers.clone()).cloned().collect::<Vec<_>>() {
                match h.add_peer(inst.index, p.ip, p.mac, p.vtep).await {
                    Ok(()) => {
                        tracing::debug!(network = %id, ip = %p.ip, vtep = %p.vtep, "peer added");
                        inst.peers.insert(p);
                    }
                    Err(e) => tracing::warn!(network = %id, ip = %p.ip, error = %e, "peer not added"),
                }
            }
        }
        *shared.remote.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = remote;
        drop(installed);
        if changed {
            if let Err(e) = shared.sync_firewall().await {
                tracing::warn!(error = %e, "firewall update after an overlay change failed");
            }
        }
    }
}
