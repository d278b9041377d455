//! The netlink seam (youki's `Syscall` pattern): the link, address, route and neighbour
//! operations the network code uses, as a trait. [`RealNetlink`] does them over rtnetlink
//! ([`super::bridge`], [`super::overlay`]'s `link`); the tests' fake records them and fails on demand.
//!
//! A [`Netlink`] opens connections: [`Netlink::host`] in the engine's netns, [`Netlink::in_netns`]
//! over a socket opened inside a container's netns. Each connection is a [`Links`], on which the
//! operations run. The service opens one per operation (as before), so it does not depend on the
//! tokio runtime it was started on.
use super::bridge::{self, LinkEntry, NlResult};
use super::overlay::link;
use crate::tasks::Tasks;
use futures_util::future::BoxFuture;
use ipnetwork::Ipv4Network;
use std::net::Ipv4Addr;
use std::os::fd::OwnedFd;
use std::time::Duration;

/// Operations over one netlink connection (one netns).
pub trait Links: Send + Sync {
    /// Index of the link called `name`, `None` when there is none.
    fn link_index<'a>(&'a self, name: &'a str) -> BoxFuture<'a, NlResult<Option<u32>>>;
    /// Deletes the link called `name`; `Ok(false)` when it did not exist.
    fn delete_link<'a>(&'a self, name: &'a str) -> BoxFuture<'a, NlResult<bool>>;
    /// Deletes the link with index `index`; `Ok(false)` when it did not exist.
    fn delete_index(&self, index: u32) -> BoxFuture<'_, NlResult<bool>>;
    /// Bridge `name` exists, is up and carries exactly `addr`; returns its index.
    fn ensure_bridge<'a>(&'a self, name: &'a str, addr: Ipv4Network) -> BoxFuture<'a, NlResult<u32>>;
    /// The veth pair `host_name` (on bridge index `bridge`) <-> `peer` inside `netns`, with `mac`.
    fn add_veth<'a>(
        &'a self,
        host_name: &'a str,
        bridge: u32,
        netns: &'a OwnedFd,
        peer: &'a str,
        mac: [u8; 6],
    ) -> BoxFuture<'a, NlResult<()>>;
    /// `lo` up.
    fn loopback_up(&self) -> BoxFuture<'_, NlResult<()>>;
    /// `ifname` gets `ip/prefix` and goes up, `lo` up, default route via `gateway` if given.
    fn configure_inside<'a>(&'a self, ifname: &'a str, ip: Ipv4Addr, prefix: u8, gateway: Option<Ipv4Addr>) -> BoxFuture<'a, NlResult<()>>;
    /// The default route goes via `gateway` on `ifname`.
    fn default_route<'a>(&'a self, ifname: &'a str, gateway: Ipv4Addr) -> BoxFuture<'a, NlResult<()>>;
    /// Names of the links enslaved to the link with index `master`.
    fn ports_of(&self, master: u32) -> BoxFuture<'_, NlResult<Vec<String>>>;
    /// Every link: (name, index of its master).
    fn all_links(&self) -> BoxFuture<'_, NlResult<Vec<LinkEntry>>>;
    /// Every IPv4 network configured on an interface.
    fn local_networks(&self) -> BoxFuture<'_, NlResult<Vec<Ipv4Network>>>;
    /// The MTU of link `name` (nothing when it does not exist).
    fn set_mtu<'a>(&'a self, name: &'a str, mtu: u32) -> BoxFuture<'a, NlResult<()>>;
    /// (Re)creates the VXLAN device `name`; returns its index.
    fn ensure_vxlan<'a>(&'a self, name: &'a str, vni: u32, local: Ipv4Addr, mtu: u32, bridge: u32) -> BoxFuture<'a, NlResult<u32>>;
    /// FDB + neighbour entries of a remote endpoint on VXLAN index `vx`.
    fn add_peer(&self, vx: u32, ip: Ipv4Addr, mac: [u8; 6], vtep: Ipv4Addr) -> BoxFuture<'_, NlResult<()>>;
    /// Removes what `add_peer` added.
    fn del_peer(&self, vx: u32, ip: Ipv4Addr, mac: [u8; 6], vtep: Ipv4Addr) -> BoxFuture<'_, NlResult<()>>;
    /// `--cluster-advertise`'s address: an IPv4 address, or the first one of that interface.
    fn advertise_ip<'a>(&'a self, what: &'a str) -> BoxFuture<'a, NlResult<Option<Ipv4Addr>>>;
}

/// Link removals seen as they happen (host netns).
pub trait LinkWatch: Send {
    /// Waits until none of `names` (as they are now) exists, at most `timeout`; returns the
    /// indexes of those still there.
    fn wait_gone<'a>(self: Box<Self>, names: &'a [String], timeout: Duration) -> BoxFuture<'a, NlResult<Vec<u32>>>;
}

/// Opens netlink connections.
pub trait Netlink: Send + Sync {
    /// A connection in the engine's (host) netns.
    fn host(&self) -> std::io::Result<Box<dyn Links>>;
    /// A connection over `socket`, a netlink socket opened inside another netns.
    fn in_netns(&self, socket: OwnedFd) -> Box<dyn Links>;
    /// Subscribes to link notifications of the host netns.
    fn watch_links(&self) -> std::io::Result<Box<dyn LinkWatch>>;
    /// `net.ipv4.conf.<dev>.route_localnet=1`.
    fn route_localnet(&self, dev: &str) -> std::io::Result<()>;
}

/// Netlink over rtnetlink; each connection's driver task is owned by the service's [`Tasks`].
pub struct RealNetlink {
    tasks: Tasks,
}

impl RealNetlink {
    pub fn new(tasks: Tasks) -> Self {
        RealNetlink { tasks }
    }
}

impl Netlink for RealNetlink {
    fn host(&self) -> std::io::Result<Box<dyn Links>> {
        Ok(Box::new(RealLinks(bridge::host(&self.tasks)?)))
    }

    fn in_netns(&self, socket: OwnedFd) -> Box<dyn Links> {
        Box::new(RealLinks(bridge::in_netns(&self.tasks, socket)))
    }

    fn watch_links(&self) -> std::io::Result<Box<dyn LinkWatch>> {
        Ok(Box::new(bridge::watch_links(&self.tasks)?))
    }

    fn route_localnet(&self, dev: &str) -> std::io::Result<()> {
        bridge::route_localnet(dev)
    }
}

struct RealLinks(rtnetlink::Handle);

impl Links for RealLinks {
    fn link_index<'a>(&'a self, name: &'a str) -> BoxFuture<'a, NlResult<Option<u32>>> {
        Box::pin(bridge::link_index(&self.0, name))
    }
    fn delete_link<'a>(&'a self, name: &'a str) -> BoxFuture<'a, NlResult<bool>> {
        Box::pin(bridge::delete_link(&self.0, name))
    }
    fn delete_index(&self, index: u32) -> BoxFuture<'_, NlResult<bool>> {
        Box::pin(bridge::delete_index(&self.0, index))
    }
    fn ensure_bridge<'a>(&'a self, name: &'a str, addr: Ipv4Network) -> BoxFuture<'a, NlResult<u32>> {
        Box::pin(bridge::ensure_bridge(&self.0, name, addr))
    }
    fn add_veth<'a>(
        &'a self,
        host_name: &'a str,
        bridge: u32,
        netns: &'a OwnedFd,
        peer: &'a str,
        mac: [u8; 6],
    ) -> BoxFuture<'a, NlResult<()>> {
        Box::pin(bridge::add_veth(&self.0, host_name, bridge, netns, peer, mac))
    }
    fn loopback_up(&self) -> BoxFuture<'_, NlResult<()>> {
        Box::pin(bridge::loopback_up(&self.0))
    }
    fn configure_inside<'a>(&'a self, ifname: &'a str, ip: Ipv4Addr, prefix: u8, gateway: Option<Ipv4Addr>) -> BoxFuture<'a, NlResult<()>> {
        Box::pin(bridge::configure_inside(&self.0, ifname, ip, prefix, gateway))
    }
    fn default_route<'a>(&'a self, ifname: &'a str, gateway: Ipv4Addr) -> BoxFuture<'a, NlResult<()>> {
        Box::pin(bridge::default_route(&self.0, ifname, gateway))
    }
    fn ports_of(&self, master: u32) -> BoxFuture<'_, NlResult<Vec<String>>> {
        Box::pin(bridge::ports_of(&self.0, master))
    }
    fn all_links(&self) -> BoxFuture<'_, NlResult<Vec<LinkEntry>>> {
        Box::pin(bridge::all_links(&self.0))
    }
    fn local_networks(&self) -> BoxFuture<'_, NlResult<Vec<Ipv4Network>>> {
        Box::pin(bridge::local_networks(&self.0))
    }
    fn set_mtu<'a>(&'a self, name: &'a str, mtu: u32) -> BoxFuture<'a, NlResult<()>> {
        Box::pin(link::set_mtu(&self.0, name, mtu))
    }
    fn ensure_vxlan<'a>(&'a self, name: &'a str, vni: u32, local: Ipv4Addr, mtu: u32, bridge: u32) -> BoxFuture<'a, NlResult<u32>> {
        Box::pin(link::ensure_vxlan(&self.0, name, vni, local, mtu, bridge))
    }
    fn add_peer(&self, vx: u32, ip: Ipv4Addr, mac: [u8; 6], vtep: Ipv4Addr) -> BoxFuture<'_, NlResult<()>> {
        Box::pin(link::add_peer(&self.0, vx, ip, mac, vtep))
    }
    fn del_peer(&self, vx: u32, ip: Ipv4Addr, mac: [u8; 6], vtep: Ipv4Addr) -> BoxFuture<'_, NlResult<()>> {
        Box::pin(link::del_peer(&self.0, vx, ip, mac, vtep))
    }
    fn advertise_ip<'a>(&'a self, what: &'a str) -> BoxFuture<'a, NlResult<Option<Ipv4Addr>>> {
        Box::pin(link::advertise_ip(&self.0, what))
    }
}

impl LinkWatch for bridge::RealLinkWatch {
    fn wait_gone<'a>(self: Box<Self>, names: &'a [String], timeout: Duration) -> BoxFuture<'a, NlResult<Vec<u32>>> {
        Box::pin((*self).wait_gone(names, timeout))
    }
}
