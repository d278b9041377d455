//! Recording fakes of the [`Netlink`] and [`Iptables`] seams, for tests that run without root.
//!
//! [`FakeNetlink`] keeps a small model of the host's links (name -> index, master) so lookups
//! answer as the kernel would (a bridge that exists, a veth name already taken -> EEXIST), and
//! records every change as one line (`host add_veth vethX master=2 peer=eth0`,
//! `netns configure_inside eth0 10.0.0.2/24 via 10.0.0.1`). [`FakeIptables`] keeps the chains and
//! rules `iptables -N/-C/-I/-D/-F/-X` would, records each command and each `iptables-restore`
//! input. Both fail on demand.
use super::bridge::{LinkEntry, NlResult};
use super::iptables::{Exit, Iptables, NatError};
use super::netlink::{LinkWatch, Links, Netlink};
use futures_util::future::BoxFuture;
use ipnetwork::Ipv4Network;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::Ipv4Addr;
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A netlink error reply with `errno` (as the kernel sends them).
pub fn nl_error(errno: i32) -> rtnetlink::Error {
    let mut m = rtnetlink::packet_core::ErrorMessage::default();
    m.code = std::num::NonZeroI32::new(-errno);
    rtnetlink::Error::NetlinkError(m)
}

#[derive(Default)]
struct NlState {
    calls: Vec<String>,
    /// One-shot failures: op -> errno.
    fail: HashMap<&'static str, i32>,
    /// Host links: name -> (index, master index).
    links: BTreeMap<String, (u32, Option<u32>)>,
    next: u32,
}

/// Records netlink operations; see the module docs.
#[derive(Clone, Default)]
pub struct FakeNetlink(Arc<Mutex<NlState>>);

impl FakeNetlink {
    /// Every change recorded so far, in order.
    pub fn calls(&self) -> Vec<String> {
        lock(&self.0).calls.clone()
    }

    /// The next `op` (e.g. `"configure_inside"`) fails with `errno`.
    pub fn fail_next(&self, op: &'static str, errno: i32) {
        lock(&self.0).fail.insert(op, errno);
    }

    /// A host link `name` exists (enslaved to `master`, by name); returns its index.
    pub fn add_link(&self, name: &str, master: Option<&str>) -> u32 {
        let mut st = lock(&self.0);
        let master = master.map(|m| st.links.get(m).expect("master exists").0);
        st.next += 1;
        let i = st.next;
        st.links.insert(name.to_string(), (i, master));
        i
    }

    /// Names of the host links now.
    pub fn links(&self) -> Vec<String> {
        lock(&self.0).links.keys().cloned().collect()
    }

    fn links_in(&self, ns: &'static str) -> Box<dyn Links> {
        Box::new(FakeLinks { st: self.0.clone(), ns })
    }
}

impl Netlink for FakeNetlink {
    fn host(&self) -> std::io::Result<Box<dyn Links>> {
        Ok(self.links_in("host"))
    }
    fn in_netns(&self, _socket: OwnedFd) -> Box<dyn Links> {
        self.links_in("netns")
    }
    fn watch_links(&self) -> std::io::Result<Box<dyn LinkWatch>> {
        Ok(Box::new(FakeWatch(self.0.clone())))
    }
    fn route_localnet(&self, dev: &str) -> std::io::Result<()> {
        lock(&self.0).calls.push(format!("host route_localnet {dev}"));
        Ok(())
    }
}

struct FakeLinks {
    st: Arc<Mutex<NlState>>,
    /// `host` or `netns`: only the host's links are modelled.
    ns: &'static str,
}

impl FakeLinks {
    /// Records `op args`; the scripted failure of `op`, if any.
    fn record(&self, op: &'static str, args: String) -> NlResult<()> {
        let mut st = lock(&self.st);
        st.calls.push(format!("{} {op} {args}", self.ns).trim_end().to_string());
        st.fail.remove(op).map_or(Ok(()), |e| Err(nl_error(e)))
    }

    fn index(&self, name: &str) -> Option<u32> {
        (self.ns == "host").then(|| lock(&self.st).links.get(name).map(|l| l.0)).flatten()
    }

    fn remove(&self, name: &str) -> bool {
        lock(&self.st).links.remove(name).is_some()
    }

    fn insert(&self, name: &str, master: Option<u32>) -> u32 {
        let mut st = lock(&self.st);
        if let Some(l) = st.links.get(name) {
            return l.0;
        }
        st.next += 1;
        let i = st.next;
        st.links.insert(name.to_string(), (i, master));
        i
    }
}

fn ready<'a, T: Send + 'a>(v: T) -> BoxFuture<'a, T> {
    Box::pin(std::future::ready(v))
}

impl Links for FakeLinks {
    fn link_index<'a>(&'a self, name: &'a str) -> BoxFuture<'a, NlResult<Option<u32>>> {
        ready(Ok(self.index(name)))
    }
    fn delete_link<'a>(&'a self, name: &'a str) -> BoxFuture<'a, NlResult<bool>> {
        ready(self.record("delete_link", name.to_string()).map(|()| self.remove(name)))
    }
    fn delete_index(&self, index: u32) -> BoxFuture<'_, NlResult<bool>> {
        let r = self.record("delete_index", index.to_string()).map(|()| {
            let mut st = lock(&self.st);
            let before = st.links.len();
            st.links.retain(|_, l| l.0 != index);
            st.links.len() != before
        });
        ready(r)
    }
    fn ensure_bridge<'a>(&'a self, name: &'a str, addr: Ipv4Network) -> BoxFuture<'a, NlResult<u32>> {
        ready(self.record("ensure_bridge", format!("{name} {addr}")).map(|()| self.insert(name, None)))
    }
    fn add_veth<'a>(
        &'a self,
        host_name: &'a str,
        bridge: u32,
        _netns: &'a OwnedFd,
        peer: &'a str,
        mac: [u8; 6],
    ) -> BoxFuture<'a, NlResult<()>> {
        let mac = super::ipam::mac_string(&mac);
        let r = self.record("add_veth", format!("{host_name} master={bridge} peer={peer} mac={mac}")).and_then(|()| {
            if self.index(host_name).is_some() {
                return Err(nl_error(libc::EEXIST));
            }
            self.insert(host_name, Some(bridge));
            Ok(())
        });
        ready(r)
    }
    fn loopback_up(&self) -> BoxFuture<'_, NlResult<()>> {
        ready(self.record("loopback_up", String::new()))
    }
    fn configure_inside<'a>(&'a self, ifname: &'a str, ip: Ipv4Addr, prefix: u8, gateway: Option<Ipv4Addr>) -> BoxFuture<'a, NlResult<()>> {
        let via = gateway.map(|g| format!(" via {g}")).unwrap_or_default();
        ready(self.record("configure_inside", format!("{ifname} {ip}/{prefix}{via}")))
    }
    fn default_route<'a>(&'a self, ifname: &'a str, gateway: Ipv4Addr) -> BoxFuture<'a, NlResult<()>> {
        ready(self.record("default_route", format!("{ifname} via {gateway}")))
    }
    fn ports_of(&self, master: u32) -> BoxFuture<'_, NlResult<Vec<String>>> {
        let st = lock(&self.st);
        ready(Ok(st.links.iter().filter(|(_, l)| l.1 == Some(master)).map(|(n, _)| n.clone()).collect()))
    }
    fn all_links(&self) -> BoxFuture<'_, NlResult<Vec<LinkEntry>>> {
        let st = lock(&self.st);
        ready(Ok(st.links.iter().map(|(n, l)| (n.clone(), l.1)).collect()))
    }
    fn local_networks(&self) -> BoxFuture<'_, NlResult<Vec<Ipv4Network>>> {
        ready(Ok(vec![]))
    }
    fn set_mtu<'a>(&'a self, name: &'a str, mtu: u32) -> BoxFuture<'a, NlResult<()>> {
        ready(self.record("set_mtu", format!("{name} {mtu}")))
    }
    fn ensure_vxlan<'a>(&'a self, name: &'a str, vni: u32, local: Ipv4Addr, mtu: u32, bridge: u32) -> BoxFuture<'a, NlResult<u32>> {
        let r = self.record("ensure_vxlan", format!("{name} vni={vni} local={local} mtu={mtu} master={bridge}"));
        ready(r.map(|()| self.insert(name, Some(bridge))))
    }
    fn add_peer(&self, vx: u32, ip: Ipv4Addr, mac: [u8; 6], vtep: Ipv4Addr) -> BoxFuture<'_, NlResult<()>> {
        ready(self.record("add_peer", format!("{vx} {ip} {} {vtep}", super::ipam::mac_string(&mac))))
    }
    fn del_peer(&self, vx: u32, ip: Ipv4Addr, mac: [u8; 6], vtep: Ipv4Addr) -> BoxFuture<'_, NlResult<()>> {
        ready(self.record("del_peer", format!("{vx} {ip} {} {vtep}", super::ipam::mac_string(&mac))))
    }
    fn advertise_ip<'a>(&'a self, what: &'a str) -> BoxFuture<'a, NlResult<Option<Ipv4Addr>>> {
        ready(Ok(what.parse().ok()))
    }
}

/// Links named in `wait_gone` are gone at once (as when the kernel removes a netns's veths).
struct FakeWatch(Arc<Mutex<NlState>>);

impl LinkWatch for FakeWatch {
    fn wait_gone<'a>(self: Box<Self>, names: &'a [String], _timeout: Duration) -> BoxFuture<'a, NlResult<Vec<u32>>> {
        let mut st = lock(&self.0);
        for n in names {
            st.links.remove(n);
        }
        ready(Ok(vec![]))
    }
}

#[derive(Default)]
struct IptState {
    /// `iptables -t <table> <args>` per command, and `iptables-restore` per restore, in order.
    calls: Vec<String>,
    /// The input of each `iptables-restore`.
    restores: Vec<String>,
    chains: BTreeSet<(String, String)>,
    rules: Vec<(String, String, Vec<String>)>,
    /// A command starting with this (`-I FORWARD`) exits non-zero with that stderr.
    fail_run: Option<(String, String)>,
    /// The next restore exits non-zero with this stderr.
    fail_restore: Option<String>,
}

/// Records iptables commands; see the module docs.
#[derive(Clone, Default)]
pub struct FakeIptables(Arc<Mutex<IptState>>);

impl FakeIptables {
    pub fn calls(&self) -> Vec<String> {
        lock(&self.0).calls.clone()
    }

    pub fn restores(&self) -> Vec<String> {
        lock(&self.0).restores.clone()
    }

    /// Commands whose arguments start with `prefix` exit non-zero with `stderr`.
    pub fn fail_run(&self, prefix: &str, stderr: &str) {
        lock(&self.0).fail_run = Some((prefix.into(), stderr.into()));
    }

    /// The next `iptables-restore` exits non-zero with `stderr`.
    pub fn fail_restore(&self, stderr: &str) {
        lock(&self.0).fail_restore = Some(stderr.into());
    }
}

impl Iptables for FakeIptables {
    fn run<'a>(&'a self, table: &'a str, args: &'a [String]) -> BoxFuture<'a, Result<Exit, NatError>> {
        let mut st = lock(&self.0);
        let line = args.join(" ");
        st.calls.push(format!("iptables -t {table} {line}"));
        if let Some((prefix, stderr)) = st.fail_run.clone() {
            if line.starts_with(&prefix) {
                return ready(Ok(Exit { success: false, stderr }));
            }
        }
        let (t, op, chain) = (table.to_string(), args[0].as_str(), args[1].clone());
        let success = match op {
            "-N" => st.chains.insert((t, chain)),
            "-F" => st.chains.contains(&(t, chain)),
            "-X" => st.chains.remove(&(t, chain)),
            "-C" => st.rules.contains(&(t, chain, args[2..].to_vec())),
            "-I" => {
                st.rules.push((t, chain, args[3..].to_vec()));
                true
            }
            "-D" => {
                let r = (t, chain, args[2..].to_vec());
                let found = st.rules.iter().position(|x| *x == r);
                found.map(|i| st.rules.remove(i)).is_some()
            }
            _ => true,
        };
        ready(Ok(Exit { success, stderr: String::new() }))
    }

    fn restore<'a>(&'a self, rules: &'a str) -> BoxFuture<'a, Result<(), NatError>> {
        let mut st = lock(&self.0);
        st.calls.push("iptables-restore".into());
        if let Some(stderr) = st.fail_restore.take() {
            return ready(Err(NatError::Restore { command: "iptables-restore".into(), stderr, rules: rules.into() }));
        }
        st.restores.push(rules.to_string());
        ready(Ok(()))
    }
}
