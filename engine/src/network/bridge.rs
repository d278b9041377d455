//! Links over netlink (rtnetlink, no `ip`): the bridge with its address, veth pairs whose peer
//! is created directly inside a container netns as `eth0`, and the netns side (address, `lo`,
//! default route). A connection is opened per operation so the service does not depend on the
//! tokio runtime it was started on; its driver task is spawned on the service's [`Tasks`] (it ends
//! when the last handle is dropped). The service reaches all this through [`super::netlink`].
use futures_util::TryStreamExt;
use ipnetwork::Ipv4Network;
use rtnetlink::packet_route::address::AddressAttribute;
use rtnetlink::packet_route::link::{InfoData, InfoVeth};
use rtnetlink::sys::TokioSocket;
use rtnetlink::{Handle, LinkBridge, LinkMessageBuilder, LinkUnspec, LinkVeth, RouteMessageBuilder};
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd};

use crate::tasks::Tasks;

pub type NlResult<T> = Result<T, rtnetlink::Error>;

/// A link's name and the index of its master (the bridge it is enslaved to).
pub type LinkEntry = (String, Option<u32>);

/// The errno of a netlink error reply (positive, e.g. `libc::EEXIST`).
pub fn errno(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(m) => m.code.map(|c| -c.get()),
        _ => None,
    }
}

/// A handle on a new connection in the caller's (host) netns.
pub fn host(tasks: &Tasks) -> std::io::Result<Handle> {
    let (conn, handle, _) = rtnetlink::new_connection()?;
    tasks.spawn(conn);
    Ok(handle)
}

/// A handle driven by tokio over a netlink socket opened inside another netns.
pub fn in_netns(tasks: &Tasks, socket: OwnedFd) -> Handle {
    // SAFETY: we own `socket`; TokioSocket takes over the descriptor.
    let socket = unsafe { TokioSocket::from_raw_fd(socket.into_raw_fd()) };
    let (conn, handle, _) = rtnetlink::from_socket(socket);
    tasks.spawn(conn);
    handle
}

/// Index of the link called `name`, `None` when there is none.
pub async fn link_index(h: &Handle, name: &str) -> NlResult<Option<u32>> {
    let mut links = h.link().get().match_name(name.to_string()).execute();
    match links.try_next().await {
        Ok(link) => Ok(link.map(|l| l.header.index)),
        Err(e) if errno(&e) == Some(libc::ENODEV) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Deletes the link called `name`; `Ok(false)` when it did not exist.
pub async fn delete_link(h: &Handle, name: &str) -> NlResult<bool> {
    let Some(index) = link_index(h, name).await? else { return Ok(false) };
    match h.link().del(index).execute().await {
        Ok(()) => Ok(true),
        Err(e) if errno(&e) == Some(libc::ENODEV) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Makes sure bridge `name` exists, is up and carries exactly `addr` (gateway/prefix) as its
/// IPv4 address. Returns its index.
pub async fn ensure_bridge(h: &Handle, name: &str, addr: Ipv4Network) -> NlResult<u32> {
    let index = match link_index(h, name).await? {
        Some(i) => i,
        None => {
            // A fixed MAC keeps the bridge's address from following its ports as they come and go.
            let mut mac = [0u8; 6];
            mac[..2].copy_from_slice(&[0x02, 0x42]);
            mac[2..].copy_from_slice(&rand::random::<[u8; 4]>());
            let msg = LinkBridge::new(name).address(mac.to_vec()).build();
            match h.link().add(msg).execute().await {
                Ok(()) => {}
                Err(e) if errno(&e) == Some(libc::EEXIST) => {}
                Err(e) => return Err(e),
            }
            link_index(h, name).await?.ok_or(rtnetlink::Error::RequestFailed)?
        }
    };
    let mut have = false;
    let mut addrs = h.address().get().set_link_index_filter(index).execute();
    let mut stale = vec![];
    while let Some(msg) = addrs.try_next().await? {
        let ip = msg.attributes.iter().find_map(|a| match a {
            AddressAttribute::Local(IpAddr::V4(ip)) | AddressAttribute::Address(IpAddr::V4(ip)) => Some(*ip),
            _ => None,
        });
        match ip {
            Some(ip) if ip == addr.ip() && msg.header.prefix_len == addr.prefix() => have = true,
            Some(_) => stale.push(msg),
            None => {}
        }
    }
    for msg in stale {
        tracing::info!(bridge = name, "removing stale bridge address");
        h.address().del(msg).execute().await?;
    }
    if !have {
        match h.address().add(index, IpAddr::V4(addr.ip()), addr.prefix()).execute().await {
            Err(e) if errno(&e) != Some(libc::EEXIST) => return Err(e),
            _ => {}
        }
    }
    h.link().set(LinkUnspec::new_with_index(index).up().build()).execute().await?;
    Ok(index)
}

/// Creates the veth pair `host_name` (enslaved to `bridge`, up) <-> `peer` (e.g. `eth0`, inside
/// the netns `netns`, with `mac`; brought up by [`configure_inside`]) in one request. (Asking for
/// the peer to be up in the same request fails with ENOTCONN, as `ip link add … peer … up` does.)
pub async fn add_veth(h: &Handle, host_name: &str, bridge: u32, netns: &OwnedFd, peer: &str, mac: [u8; 6]) -> NlResult<()> {
    let peer_name = peer;
    let peer =
        LinkMessageBuilder::<LinkUnspec>::new().name(peer_name.to_string()).address(mac.to_vec()).setns_by_fd(netns.as_raw_fd()).build();
    let msg = LinkVeth::new(host_name, peer_name).set_info_data(InfoData::Veth(InfoVeth::Peer(peer))).controller(bridge).up().build();
    h.link().add(msg).execute().await
}

/// Inside a netns: `lo` up (a fresh netns has it down).
pub async fn loopback_up(h: &Handle) -> NlResult<()> {
    if let Some(lo) = link_index(h, "lo").await? {
        h.link().set(LinkUnspec::new_with_index(lo).up().build()).execute().await?;
    }
    Ok(())
}

/// Inside the container netns: `ifname` gets `ip/prefix` and goes up, `lo` goes up, and with
/// `gateway` the default route goes through it.
pub async fn configure_inside(h: &Handle, ifname: &str, ip: Ipv4Addr, prefix: u8, gateway: Option<Ipv4Addr>) -> NlResult<()> {
    let dev = link_index(h, ifname).await?.ok_or(rtnetlink::Error::RequestFailed)?;
    h.address().add(dev, IpAddr::V4(ip), prefix).replace().execute().await?;
    h.link().set(LinkUnspec::new_with_index(dev).up().build()).execute().await?;
    if let Some(lo) = link_index(h, "lo").await? {
        h.link().set(LinkUnspec::new_with_index(lo).up().build()).execute().await?;
    }
    match gateway {
        Some(gw) => default_route_via(h, dev, gw).await,
        None => Ok(()),
    }
}

/// Inside a netns: the default route goes via `gateway` on `ifname` (replacing any other).
pub async fn default_route(h: &Handle, ifname: &str, gateway: Ipv4Addr) -> NlResult<()> {
    let dev = link_index(h, ifname).await?.ok_or(rtnetlink::Error::RequestFailed)?;
    default_route_via(h, dev, gateway).await
}

/// [`default_route`] on the link with index `dev` (no lookup by name).
async fn default_route_via(h: &Handle, dev: u32, gateway: Ipv4Addr) -> NlResult<()> {
    let route = RouteMessageBuilder::<Ipv4Addr>::new().gateway(gateway).output_interface(dev).build();
    h.route().add(route).replace().execute().await
}

/// Names of the links enslaved to the link with index `master`.
pub async fn ports_of(h: &Handle, master: u32) -> NlResult<Vec<String>> {
    Ok(all_links(h).await?.into_iter().filter(|(_, m)| *m == Some(master)).map(|(n, _)| n).collect())
}

/// Every link of the netns: (name, index of its master).
pub async fn all_links(h: &Handle) -> NlResult<Vec<LinkEntry>> {
    use rtnetlink::packet_route::link::LinkAttribute;
    let mut out = vec![];
    let mut links = h.link().get().execute();
    while let Some(l) = links.try_next().await? {
        let name = l.attributes.iter().find_map(|a| if let LinkAttribute::IfName(n) = a { Some(n.clone()) } else { None });
        let master = l.attributes.iter().find_map(|a| if let LinkAttribute::Controller(m) = a { Some(*m) } else { None });
        if let Some(name) = name {
            out.push((name, master));
        }
    }
    Ok(out)
}

/// Every IPv4 network configured on an interface of this netns (for picking a free subnet).
pub async fn local_networks(h: &Handle) -> NlResult<Vec<Ipv4Network>> {
    let mut out = vec![];
    let mut addrs = h.address().get().execute();
    while let Some(msg) = addrs.try_next().await? {
        for a in &msg.attributes {
            if let AddressAttribute::Address(IpAddr::V4(ip)) = a {
                if let Ok(n) = Ipv4Network::new(*ip, msg.header.prefix_len) {
                    out.push(n);
                }
            }
        }
    }
    Ok(out)
}

/// `net.ipv4.conf.<dev>.route_localnet=1`: lets DNAT'd host-loopback traffic leave through `dev`.
pub fn route_localnet(dev: &str) -> std::io::Result<()> {
    std::fs::write(format!("/proc/sys/net/ipv4/conf/{dev}/route_localnet"), b"1\n")
}

/// Link notifications (`RTNLGRP_LINK`) of the host netns, to see links go without polling.
pub struct RealLinkWatch {
    handle: Handle,
    events: LinkEvents,
}

type LinkEvents = futures_util::stream::BoxStream<
    'static,
    (rtnetlink::packet_core::NetlinkMessage<rtnetlink::packet_route::RouteNetlinkMessage>, rtnetlink::sys::SocketAddr),
>;

/// Subscribes to link notifications; links removed from now on are seen by [`RealLinkWatch::wait_gone`].
pub fn watch_links(tasks: &Tasks) -> std::io::Result<RealLinkWatch> {
    let (conn, handle, events) = rtnetlink::new_multicast_connection(&[rtnetlink::MulticastGroup::Link])?;
    tasks.spawn(conn);
    Ok(RealLinkWatch { handle, events: Box::pin(events) })
}

impl RealLinkWatch {
    /// Waits until none of the links `names` (as they are now: by index, so a new link of the
    /// same name does not count) exists, at most `timeout`; returns the indexes of those still there.
    pub async fn wait_gone(mut self, names: &[String], timeout: std::time::Duration) -> NlResult<Vec<u32>> {
        use futures_util::StreamExt;
        use rtnetlink::packet_core::NetlinkPayload;
        use rtnetlink::packet_route::RouteNetlinkMessage;
        let mut left = vec![];
        for n in names {
            if let Some(i) = link_index(&self.handle, n).await? {
                left.push(i);
            }
        }
        let deadline = tokio::time::Instant::now() + timeout;
        while !left.is_empty() {
            let (msg, _) = match tokio::time::timeout_at(deadline, self.events.next()).await {
                Ok(Some(ev)) => ev,
                Ok(None) | Err(_) => break,
            };
            // (A port leaving a bridge is announced as an AF_BRIDGE DELLINK too.)
            if let NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelLink(l)) = msg.payload {
                if u8::from(l.header.interface_family) != libc::AF_BRIDGE as u8 {
                    left.retain(|i| *i != l.header.index);
                }
            }
        }
        Ok(left)
    }
}

/// Deletes the link with index `index`; `Ok(false)` when it did not exist.
pub async fn delete_index(h: &Handle, index: u32) -> NlResult<bool> {
    match h.link().del(index).execute().await {
        Ok(()) => Ok(true),
        Err(e) if errno(&e) == Some(libc::ENODEV) => Ok(false),
        Err(e) => Err(e),
    }
}
