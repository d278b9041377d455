//! The kernel side of an overlay network on one node, over netlink: the VXLAN device (the
//! network's VNI, UDP 4789, learning off, proxy ARP, enslaved to the network's bridge), and the
//! FDB (`bridge fdb add <mac> dev <vxlan> dst <vtep> self permanent`) and neighbour
//! (`ip neigh add <ip> lladdr <mac> dev <vxlan> nud permanent`) entries of the other nodes'
//! endpoints.
use crate::network::bridge::{errno, link_index, NlResult};
use futures_util::TryStreamExt;
use rtnetlink::packet_route::address::AddressAttribute;
use rtnetlink::packet_route::neighbour::{NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState};
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::{Handle, LinkUnspec, LinkVxlan};
use std::net::{IpAddr, Ipv4Addr};

/// VXLAN's IANA port (as libnetwork's overlay driver).
pub const VXLAN_PORT: u16 = 4789;

/// (Re)creates the VXLAN device `name` for `vni` with `local` as its source address, enslaved to
/// the bridge `bridge` and up. A device left from before is replaced (its FDB is rebuilt).
pub async fn ensure_vxlan(h: &Handle, name: &str, vni: u32, local: Ipv4Addr, mtu: u32, bridge: u32) -> NlResult<u32> {
    if let Some(i) = link_index(h, name).await? {
        h.link().del(i).execute().await?;
    }
    let msg = LinkVxlan::new(name, vni).port(VXLAN_PORT).local(local).learning(false).proxy(true).mtu(mtu).controller(bridge).up().build();
    h.link().add(msg).execute().await?;
    link_index(h, name).await?.ok_or(rtnetlink::Error::RequestFailed)
}

/// Sets the MTU of link `name`.
pub async fn set_mtu(h: &Handle, name: &str, mtu: u32) -> NlResult<()> {
    let Some(i) = link_index(h, name).await? else { return Ok(()) };
    h.link().set(LinkUnspec::new_with_index(i).mtu(mtu).build()).execute().await
}

/// Points `mac` at `vtep` and answers ARP for `ip` with `mac` on the VXLAN `vx`.
pub async fn add_peer(h: &Handle, vx: u32, ip: Ipv4Addr, mac: [u8; 6], vtep: Ipv4Addr) -> NlResult<()> {
    h.neighbours().add_bridge(vx, &mac).flags(NeighbourFlags::Own).destination(IpAddr::V4(vtep)).replace().execute().await?;
    h.neighbours().add(vx, IpAddr::V4(ip)).link_layer_address(&mac).state(NeighbourState::Permanent).replace().execute().await
}

/// Removes what [`add_peer`] added; entries already gone are fine.
pub async fn del_peer(h: &Handle, vx: u32, ip: Ipv4Addr, mac: [u8; 6], vtep: Ipv4Addr) -> NlResult<()> {
    let mut fdb = NeighbourMessage::default();
    fdb.header.family = AddressFamily::Bridge;
    fdb.header.ifindex = vx;
    fdb.header.flags = NeighbourFlags::Own;
    fdb.attributes.push(NeighbourAttribute::LinkLayerAddress(mac.to_vec()));
    fdb.attributes.push(NeighbourAttribute::Destination(NeighbourAddress::Inet(vtep)));
    let mut arp = NeighbourMessage::default();
    arp.header.family = AddressFamily::Inet;
    arp.header.ifindex = vx;
    arp.attributes.push(NeighbourAttribute::Destination(NeighbourAddress::Inet(ip)));
    for m in [fdb, arp] {
        match h.neighbours().del(m).execute().await {
            Err(e) if !matches!(errno(&e), Some(libc::ENOENT) | Some(libc::ENODEV)) => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

/// `--cluster-advertise`'s address part: an IPv4 address, or the first IPv4 address of the
/// interface of that name.
pub async fn advertise_ip(h: &Handle, what: &str) -> NlResult<Option<Ipv4Addr>> {
    if let Ok(ip) = what.parse() {
        return Ok(Some(ip));
    }
    let Some(index) = link_index(h, what).await? else { return Ok(None) };
    let mut addrs = h.address().get().set_link_index_filter(index).execute();
    while let Some(msg) = addrs.try_next().await? {
        for a in &msg.attributes {
            if let AddressAttribute::Local(IpAddr::V4(ip)) | AddressAttribute::Address(IpAddr::V4(ip)) = a {
                return Ok(Some(*ip));
            }
        }
    }
    Ok(None)
}
