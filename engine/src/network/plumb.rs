//! The kernel side of a container's sandbox, apart from the state: a veth per endpoint (host
//! end on the network's bridge, the other end configured inside the netns) and the embedded
//! resolver's sockets. `NetworkService::setup_started` runs it in the background while the
//! runtime creates the container; `connect_endpoint` awaits it. And the veths of a sandbox
//! torn down, watched as they go with its netns.
use super::netlink::{LinkWatch, Links, Netlink};
use super::{bridge, dns, netns, nl, os, store, Endpoint, NetworkError, Shared};
use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::Arc;

/// What [`plumb`] needs to know about one endpoint just allocated.
pub(super) struct Plumb {
    pub ep: Endpoint,
    pub bridge: String,
    pub subnet: String,
    /// The default route goes through this endpoint.
    pub route: bool,
    pub mac: [u8; 6],
    /// MTU of both ends (overlay networks); `None`: the kernel's default.
    pub mtu: Option<u32>,
}

/// Creates the endpoint's veth pair (the inside end directly in the netns `ns`, as `ep.ifname`)
/// and configures the inside through `inner` (a netlink connection in that netns).
pub(super) async fn plumb(netlink: &dyn Netlink, p: Plumb, ns: &OwnedFd, inner: &dyn Links) -> Result<(), NetworkError> {
    let t0 = std::time::Instant::now();
    let Plumb { ep, bridge: bridge_name, subnet, route, mac, mtu } = p;
    let h = netlink.host().map_err(os("netlink connection"))?;
    let br = match h.link_index(&bridge_name).await.map_err(nl("find bridge"))? {
        Some(i) => i,
        None => {
            tracing::warn!(bridge = %bridge_name, "bridge vanished; recreating it");
            let cidr = format!("{}/{}", ep.gateway, store::parse_subnet(&subnet)?.prefix());
            let cidr = cidr.parse().map_err(|e| NetworkError::Setup(format!("{cidr}: {e}")))?;
            let i = h.ensure_bridge(&bridge_name, cidr).await.map_err(nl(format!("bridge {bridge_name}")))?;
            let _ = netlink.route_localnet(&bridge_name);
            i
        }
    };
    // A leftover pair of an earlier attempt makes the name clash: deleted, then created again
    // (asked only then, not before every creation: one netlink round trip less).
    match h.add_veth(&ep.veth, br, ns, &ep.ifname, mac).await {
        Err(e) if bridge::errno(&e) == Some(libc::EEXIST) => {
            tracing::debug!(veth = %ep.veth, "a leftover veth had the name; replacing it");
            h.delete_link(&ep.veth).await.map_err(nl(format!("delete {}", ep.veth)))?;
            h.add_veth(&ep.veth, br, ns, &ep.ifname, mac).await.map_err(nl(format!("create veth {}", ep.veth)))?;
        }
        r => r.map_err(nl(format!("create veth {}", ep.veth)))?,
    }
    if let Some(mtu) = mtu {
        h.set_mtu(&ep.veth, mtu).await.map_err(nl(format!("mtu of {}", ep.veth)))?;
        inner.set_mtu(&ep.ifname, mtu).await.map_err(nl(format!("mtu of {}", ep.ifname)))?;
    }
    inner.configure_inside(&ep.ifname, ep.ip, ep.prefix_len, route.then_some(ep.gateway)).await.map_err(nl(format!(
        "configure {} in {}",
        ep.ifname,
        ep.netns.display()
    )))?;
    tracing::debug!(network = %ep.network_name, ifname = %ep.ifname, us = crate::micros_since(t0), "endpoint plumbed");
    Ok(())
}

/// Binds 127.0.0.11:53 inside the netns at `path` and serves it for container `cid`.
pub(super) async fn start_resolver_in(shared: &Arc<Shared>, cid: &str, path: &Path) -> Result<(), NetworkError> {
    let addr = dns::ADDR.parse().map_err(|e| NetworkError::Setup(format!("{e}")))?;
    let (udp, tcp) = netns::resolver_sockets(path, addr).await.map_err(|source| NetworkError::Io {
        op: "binding the resolver's sockets in",
        path: path.to_path_buf(),
        source,
    })?;
    let r = dns::spawn(&shared.tasks, shared.clone(), cid.to_string(), udp, tcp).map_err(os("serving the resolver's sockets"))?;
    shared.live.lock().unwrap_or_else(std::sync::PoisonError::into_inner).entry(cid.to_string()).or_default().resolver = Some(r);
    Ok(())
}

/// How long [`reap_veths`] waits for the kernel to remove a dead netns's veths before deleting
/// them itself (the netns is still in use).
const NETNS_TEARDOWN_WAIT: std::time::Duration = std::time::Duration::from_millis(300);

/// Waits for the veths of a netns just unmounted to go with it; deletes those still there after
/// [`NETNS_TEARDOWN_WAIT`] (something else still holds the netns).
pub(super) async fn reap_veths(netlink: std::sync::Arc<dyn Netlink>, watch: Box<dyn LinkWatch>, veths: Vec<String>) {
    let t0 = std::time::Instant::now();
    let left = match watch.wait_gone(&veths, NETNS_TEARDOWN_WAIT).await {
        Ok(left) => left,
        Err(e) => {
            tracing::warn!(links = ?veths, error = %e, "watching veths go failed");
            return;
        }
    };
    if !left.is_empty() {
        tracing::debug!(links = ?veths, "the netns is still in use; deleting its veths");
        match netlink.host() {
            Ok(h) => {
                for i in left {
                    if let Err(e) = h.delete_index(i).await {
                        tracing::warn!(index = i, error = %e, "deleting a veth failed");
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "deleting veths failed"),
        }
    }
    tracing::debug!(us = crate::micros_since(t0), "veths gone");
}
