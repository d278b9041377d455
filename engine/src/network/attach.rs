//! `docker network connect/disconnect` of a running container: one endpoint added to, or
//! removed from, its sandbox while it runs.
use super::netlink::Links;
use super::plumb::plumb;
use super::sandbox::Attach;
use super::{endpoint_id, io_at, netns, nl, os, store, veth_name, Endpoint, NetworkError, NetworkService};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::os::fd::OwnedFd;

impl NetworkService {
    /// `docker network connect` of a running container: a new interface in its netns.
    #[tracing::instrument(skip_all, fields(container = %container_id, network = %network))]
    pub async fn connect_endpoint(&self, container_id: &str, network: &str, attach: &Attach) -> Result<Endpoint, NetworkError> {
        let path = self.netns_path(container_id);
        let known = self.shared.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner).sandboxes.contains_key(container_id);
        if !known || !netns::is_netns(&path) {
            return Err(NetworkError::Conflict(format!("container {container_id} has no network namespace of its own")));
        }
        let ns = netns::open_or_create(&path).await.map_err(io_at("opening netns", &path))?;
        let inner = self.shared.netlink.in_netns(ns.netlink);
        let ep = match self.attach_one(container_id, &ns.fd, &*inner, network, attach).await {
            Ok(ep) => ep,
            Err(e) => {
                if let Ok(net) = self.network(network) {
                    let _ = self.detach_one(container_id, &net.id).await;
                }
                return Err(e);
            }
        };
        self.save_sandbox(container_id)?;
        let has_resolver = self
            .shared
            .live
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(container_id)
            .is_some_and(|l| l.resolver.is_some());
        if !has_resolver && self.wants_resolver(container_id) {
            self.start_resolver(container_id).await?;
        }
        Ok(ep)
    }

    /// `docker network disconnect` of a running container: its interface on `network` goes,
    /// with the ports published through it; the default route moves to another network.
    #[tracing::instrument(skip_all, fields(container = %container_id, network = %network))]
    pub async fn disconnect_endpoint(&self, container_id: &str, network: &str) -> Result<(), NetworkError> {
        let net = self.network(network)?;
        let connected = {
            let st = self.shared.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            st.sandboxes.get(container_id).is_some_and(|s| s.endpoints.iter().any(|e| e.network_id == net.id))
        };
        if !connected {
            return Err(NetworkError::Forbidden(format!("container {container_id} is not connected to network {}", net.name)));
        }
        self.detach_one(container_id, &net.id).await?;
        self.save_sandbox(container_id)
    }

    /// Removes one endpoint (record, address, veth, ports through it; moves the default route).
    async fn detach_one(&self, cid: &str, network_id: &str) -> Result<(), NetworkError> {
        let held = self.overlay_held(cid, Some(network_id));
        let (ip, route) = {
            let mut st = self.shared.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let mut ip = None;
            if let Some(s) = st.networks.get_mut(network_id) {
                ip = s.ipam.release(cid);
                if ip.is_some() {
                    store::save_ipam(&self.run_dir, network_id, &s.ipam)?;
                }
            }
            let mut route = None;
            let internal: Vec<String> = st.networks.values().filter(|s| s.net.internal).map(|s| s.net.id.clone()).collect();
            let gateways: BTreeMap<String, Ipv4Addr> = st.networks.values().map(|s| (s.net.id.clone(), s.net.gateway)).collect();
            if let Some(sb) = st.sandboxes.get_mut(cid) {
                let had_route = sb.endpoints.iter().any(|e| e.network_id == network_id && e.default_route);
                sb.endpoints.retain(|e| e.network_id != network_id);
                if had_route {
                    if let Some(e) = sb.endpoints.iter_mut().find(|e| !internal.contains(&e.network_id)) {
                        e.default_route = true;
                        route = gateways.get(&e.network_id).map(|gw| (e.ifname.clone(), *gw));
                    }
                }
            }
            (ip, route)
        };
        let mut ports_changed = false;
        if let Some(ip) = ip {
            let mut st = self.shared.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(sb) = st.sandboxes.get_mut(cid) {
                let before = sb.ports.len();
                sb.ports.retain(|p| p.container_ip != ip);
                ports_changed = sb.ports.len() != before;
            }
            if let Some(live) = self.shared.live.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get_mut(cid) {
                live.ports.retain(|(m, _)| m.container_ip != ip);
            }
        }
        let h = self.shared.netlink.host().map_err(os("netlink connection"))?;
        let veth = veth_name(&endpoint_id(network_id, cid));
        h.delete_link(&veth).await.map_err(nl(format!("delete {veth}")))?;
        if let Some((ifname, gw)) = route {
            let path = self.netns_path(cid);
            if netns::is_netns(&path) {
                let ns = netns::open_or_create(&path).await.map_err(io_at("opening netns", &path))?;
                let inner = self.shared.netlink.in_netns(ns.netlink);
                inner.default_route(&ifname, gw).await.map_err(nl(format!("default route via {ifname}")))?;
            }
        }
        if ports_changed {
            self.schedule_firewall();
        }
        self.overlay_release(cid, held).await;
        Ok(())
    }

    /// Allocates the address of `cid` on `network`, records the endpoint and plumbs its veth.
    async fn attach_one(
        &self,
        cid: &str,
        ns: &OwnedFd,
        inner: &dyn Links,
        network: &str,
        attach: &Attach,
    ) -> Result<Endpoint, NetworkError> {
        let (ep, p) = self.allocate_claimed(cid, network, attach).await?;
        plumb(&*self.shared.netlink, p, ns, inner).await?;
        Ok(ep)
    }
}
