//! Bringing the host in line with the state when the engine starts (after a clean stop, a
//! crash or a SIGKILL): the containers' sandboxes survive the engine, everything else is rebuilt.
use super::netlink::Links;
use super::{endpoint_id, io_at, netns, nl, os, portmap, store, veth_name, NetworkError, NetworkService};
use std::collections::BTreeSet;

/// How often a published host port that someone else holds is tried again (see `retake_port`).
const RETAKE_EVERY: std::time::Duration = std::time::Duration::from_millis(200);

/// Is `name` a bridge this engine would have made for a user-defined network (`<tag>-<hex>`)?
/// Only when the tag is short enough to be the whole prefix, so another engine's names never match.
pub(super) fn is_our_bridge_name(tag: &str, name: &str) -> bool {
    if tag.len() > 8 {
        return false;
    }
    name.strip_prefix(tag)
        .and_then(|r| r.strip_prefix('-'))
        .is_some_and(|hex| hex.len() == 14 - tag.len() && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

impl NetworkService {
    /// Binds the host port of mapping `m` of container `cid` again once it is free, for as long
    /// as the container's sandbox maps it. While the engine was away the port had no socket: an
    /// outgoing connection may have got it as its own (random host ports come from the ephemeral
    /// range), and the traffic to the port still reaches the container through its DNAT rule.
    fn retake_port(&self, cid: String, m: store::PortMapping) {
        let shared = self.shared.clone();
        self.shared.tasks.spawn_until_shutdown(async move {
            loop {
                tokio::time::sleep(RETAKE_EVERY).await;
                // Under the state lock, as a disconnect of the endpoint changes the mapping.
                let st = shared.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                if !st.sandboxes.get(&cid).is_some_and(|sb| sb.ports.contains(&m)) {
                    return;
                }
                let mut live = shared.live.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                // A release that came first removed the live entry; a new start of the
                // container with the same mapping holds its own socket for it.
                let Some(entry) = live.get_mut(&cid).filter(|l| !l.ports.iter().any(|(held, _)| *held == m)) else { return };
                match portmap::rebind(&m.proto, m.host_ip, m.host_port) {
                    Ok(r) => {
                        tracing::info!(container = %cid, port = m.host_port, "published host port taken again");
                        entry.ports.push((m, r));
                        return;
                    }
                    // Still held by someone else: tried again later.
                    Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {}
                    // Anything else (the address is gone from the host, ...) a retry cannot mend.
                    Err(e) => {
                        tracing::warn!(container = %cid, port = m.host_port, error = %e, "published host port cannot be bound again; no more tries");
                        return;
                    }
                }
            }
        });
    }

    pub(super) async fn reconcile(&self) -> Result<(), NetworkError> {
        let h = self.shared.netlink.host().map_err(os("netlink connection"))?;
        // Every network's bridge, with its address.
        let nets: Vec<(String, String, String, std::net::Ipv4Addr, Option<u32>)> = {
            let st = self.shared.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            st.networks
                .values()
                .map(|s| (s.net.id.clone(), s.net.bridge.clone(), s.net.subnet.clone(), s.net.gateway, super::flags::bridge_mtu(&s.net)))
                .collect()
        };
        let mut bridges = BTreeSet::new();
        for (_, br, subnet, gw, mtu) in &nets {
            let cidr = format!("{gw}/{}", store::parse_subnet(subnet)?.prefix());
            let cidr = cidr.parse().map_err(|e| NetworkError::Setup(format!("{cidr}: {e}")))?;
            h.ensure_bridge(br, cidr).await.map_err(nl(format!("bridge {br}")))?;
            if let Some(m) = mtu {
                h.set_mtu(br, *m).await.map_err(nl(format!("mtu of {br}")))?;
            }
            self.shared.netlink.route_localnet(br).map_err(|e| NetworkError::Setup(format!("route_localnet on {br}: {e}")))?;
            bridges.insert(br.clone());
        }

        // Sandboxes whose netns survived are kept; the others are released.
        let mut kept = vec![];
        for sb in store::load_sandboxes(&self.run_dir)? {
            if sb.netns == self.netns_path(&sb.container_id) && netns::is_netns(&sb.netns) {
                kept.push(sb);
                continue;
            }
            if sb.netns == self.netns_path(&sb.container_id) && self.adopt(&*h, &sb).await {
                tracing::info!(container = %sb.container_id, "netns of a running container mounted again from its process");
                kept.push(sb);
                continue;
            }
            tracing::info!(container = %sb.container_id, "releasing the network of a container whose netns is gone");
            for e in &sb.endpoints {
                let veth = veth_name(&endpoint_id(&e.network_id, &sb.container_id));
                h.delete_link(&veth).await.map_err(nl(format!("delete {veth}")))?;
            }
            let path = self.netns_path(&sb.container_id);
            netns::remove(&path).map_err(io_at("removing netns", &path))?;
            store::remove_sandbox(&self.run_dir, &sb.container_id)?;
        }
        let kept_ids: BTreeSet<String> = kept.iter().map(|s| s.container_id.clone()).collect();
        if let Ok(rd) = std::fs::read_dir(&self.netns_dir) {
            for e in rd.flatten() {
                if !kept_ids.contains(&*e.file_name().to_string_lossy()) {
                    tracing::info!(netns = %e.path().display(), "removing a netns without a sandbox");
                    netns::remove(&e.path()).map_err(io_at("removing netns", e.path()))?;
                }
            }
        }

        // IPAM follows the sandboxes: no address without an endpoint, no endpoint without one.
        let mut expected_veths = BTreeSet::new();
        {
            let mut st = self.shared.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            for mut sb in kept {
                sb.endpoints.retain(|e| st.networks.get(&e.network_id).is_some_and(|s| s.ipam.get(&sb.container_id).is_some()));
                for e in &sb.endpoints {
                    expected_veths.insert(veth_name(&endpoint_id(&e.network_id, &sb.container_id)));
                }
                st.sandboxes.insert(sb.container_id.clone(), sb);
            }
            let super::State { networks, sandboxes } = &mut *st;
            for s in networks.values_mut() {
                let stale: Vec<String> = s
                    .ipam
                    .allocations()
                    .keys()
                    .filter(|cid| !sandboxes.get(*cid).is_some_and(|sb| sb.endpoints.iter().any(|e| e.network_id == s.net.id)))
                    .cloned()
                    .collect();
                for cid in &stale {
                    tracing::info!(container = %cid, network = %s.net.name, "releasing a stale address");
                    s.ipam.release(cid);
                }
                store::save_ipam(&self.run_dir, &s.net.id, &s.ipam)?;
            }
        }

        // Stray veths on our bridges and stray bridges of ours.
        for (name, _) in h.all_links().await.map_err(nl("list links"))? {
            if is_our_bridge_name(&self.bridge_name, &name) && !bridges.contains(&name) {
                tracing::info!(bridge = %name, "removing a bridge of a network that no longer exists");
                h.delete_link(&name).await.map_err(nl(format!("delete {name}")))?;
            }
        }
        for br in &bridges {
            let Some(idx) = h.link_index(br).await.map_err(nl("find bridge"))? else { continue };
            for port in h.ports_of(idx).await.map_err(nl("list bridge ports"))? {
                if !expected_veths.contains(&port) && !super::overlay::is_our_vxlan(&self.bridge_name, &port) {
                    tracing::info!(link = %port, bridge = %br, "removing a stray veth");
                    h.delete_link(&port).await.map_err(nl(format!("delete {port}")))?;
                }
            }
        }

        // Host ports and resolvers of the surviving sandboxes.
        let (ports, want_dns): (Vec<(String, store::PortMapping)>, Vec<String>) = {
            let st = self.shared.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let ports = st.sandboxes.values().flat_map(|sb| sb.ports.iter().map(|p| (sb.container_id.clone(), p.clone()))).collect();
            let dns = st.sandboxes.keys().cloned().collect();
            // Every surviving sandbox has its live entry: a port taken again later goes there,
            // and only while the entry is there (a release removes it).
            let mut live = self.shared.live.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            for cid in st.sandboxes.keys() {
                live.entry(cid.clone()).or_default();
            }
            (ports, dns)
        };
        for (cid, m) in ports {
            match portmap::rebind(&m.proto, m.host_ip, m.host_port) {
                Ok(r) => {
                    self.shared.live.lock().unwrap_or_else(std::sync::PoisonError::into_inner).entry(cid).or_default().ports.push((m, r))
                }
                Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                    tracing::warn!(container = %cid, port = m.host_port, error = %e, "cannot take a published host port again yet; retrying");
                    self.retake_port(cid, m);
                }
                Err(e) => tracing::warn!(container = %cid, port = m.host_port, error = %e, "cannot take a published host port again"),
            }
        }
        self.sync_firewall().await?;
        for cid in want_dns {
            if self.wants_resolver(&cid) {
                if let Err(e) = self.start_resolver(&cid).await {
                    tracing::warn!(container = %cid, error = %e, "cannot restart the embedded resolver");
                }
            }
        }
        Ok(())
    }
}

impl NetworkService {
    /// The netns of a sandbox whose mount is gone but whose container still runs: mounted again
    /// from a process in it. Only when its host veths are still there (they die with the netns,
    /// so a netns of the same inode made since is never taken for it).
    async fn adopt(&self, h: &dyn Links, sb: &store::SandboxRec) -> bool {
        for e in &sb.endpoints {
            let veth = veth_name(&endpoint_id(&e.network_id, &sb.container_id));
            if !h.link_index(&veth).await.is_ok_and(|i| i.is_some()) {
                return false;
            }
        }
        match netns::adopt(&sb.netns, sb.netns_ino) {
            Ok(found) => found,
            Err(e) => {
                tracing::warn!(container = %sb.container_id, error = %e, "cannot mount the netns of a running container again");
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bridge_names() {
        assert!(is_our_bridge_name("fltt0042", "fltt0042-abc123"));
        assert!(!is_our_bridge_name("fltt0042", "fltt0042-abc12"));
        assert!(!is_our_bridge_name("fltt0042", "fltt00421-abc12"));
        assert!(is_our_bridge_name("flt0", "flt0-0123456789"));
        assert!(!is_our_bridge_name("fltbench0", "fltbench0-abcde"));
        assert!(!is_our_bridge_name("flt0", "flt0"));
    }
}
