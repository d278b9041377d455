//! A container's sandbox: its netns with one interface per network, its published ports and
//! its embedded resolver. Set up at start, torn down at exit, changed live by
//! `docker network connect/disconnect` ([`super::attach`]).
use super::plumb::{plumb, reap_veths, start_resolver_in, Plumb};
use super::store::{self, DnsConf, EndpointRec, SandboxRec};
use super::{dns, endpoint_id, io_at, ipam, netns, netns_pool, nl, os, portmap, veth_name};
use super::{Endpoint, NetworkError, NetworkService, PortMapping, PortSpec};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

/// How a container joins one network.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Attach {
    /// `--network-alias`, `connect --alias`.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// `--ip`, `connect --ip`.
    #[serde(default)]
    pub ipv4: Option<Ipv4Addr>,
    /// `--mac-address`.
    #[serde(default)]
    pub mac: Option<String>,
}

/// Everything a container's start needs from the network service.
#[derive(Debug, Clone, Default)]
pub struct SandboxReq {
    pub container_id: String,
    /// Container name: its DNS name on user-defined networks.
    pub name: String,
    /// (network id or name, how to attach); the first is the primary network (default route,
    /// published ports). Empty: only `lo` (`--network none`).
    pub networks: Vec<(String, Attach)>,
    pub ports: Vec<PortSpec>,
    /// `--dns` servers; empty: the host's nameservers.
    pub dns_servers: Vec<IpAddr>,
    /// Legacy links: alias -> container id (answered by this container's resolver).
    pub links: BTreeMap<String, String>,
}

/// What was set up.
#[derive(Debug, Clone)]
pub struct Sandbox {
    pub netns: PathBuf,
    pub endpoints: Vec<Endpoint>,
    pub ports: Vec<PortMapping>,
    /// The embedded resolver answers at 127.0.0.11 (resolv.conf should point at it).
    pub resolver: bool,
}

fn parse_mac(s: &str) -> Result<[u8; 6], NetworkError> {
    let bad = || NetworkError::Invalid(format!("invalid MAC address: {s}"));
    let parts: Vec<u8> = s.split(':').map(|p| u8::from_str_radix(p, 16).map_err(|_| bad())).collect::<Result<_, _>>()?;
    parts.try_into().map_err(|_| bad())
}

/// The host's nameservers (what containers without `--dns` forward to).
fn host_nameservers() -> Vec<IpAddr> {
    let ns = dns::nameservers(&std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default());
    if ns.is_empty() {
        vec![IpAddr::V4(Ipv4Addr::new(8, 8, 8, 8)), IpAddr::V4(Ipv4Addr::new(8, 8, 4, 4))]
    } else {
        ns
    }
}

impl NetworkService {
    /// Creates the container's sandbox as `req` asks. On failure nothing is left behind.
    /// A sandbox left from before (a crash, a failed exit) is removed first.
    #[tracing::instrument(skip_all, fields(container = %req.container_id))]
    pub async fn setup(&self, req: &SandboxReq) -> Result<Sandbox, NetworkError> {
        let sb = self.setup_started(req).await?;
        match self.ready(&req.container_id).await {
            Ok(()) => Ok(sb),
            Err(e) => {
                if let Err(e2) = self.disconnect(&req.container_id).await {
                    tracing::warn!(error = %e2, "cleanup after a failed network setup");
                }
                Err(e)
            }
        }
    }

    /// As [`NetworkService::setup`], but the kernel side (veths, addresses, routes, the
    /// resolver's sockets, NAT rules) is done in the background, while the runtime creates the
    /// container: [`NetworkService::ready`] must be awaited before its process starts, and
    /// [`NetworkService::disconnect`] undoes it all when that fails. Addresses, MACs and ports
    /// are all known when this returns (for /etc/hosts and inspect).
    #[tracing::instrument(skip_all, fields(container = %req.container_id))]
    pub async fn setup_started(&self, req: &SandboxReq) -> Result<Sandbox, NetworkError> {
        match self.setup_inner(req).await {
            Ok(sb) => Ok(sb),
            Err(e) => {
                if let Err(e2) = self.disconnect(&req.container_id).await {
                    tracing::warn!(error = %e2, "cleanup after a failed network setup");
                }
                Err(e)
            }
        }
    }

    /// Waits for the background part of [`NetworkService::setup_started`] of `container_id`
    /// and for the NAT rules of its published ports; its error if it failed.
    pub async fn ready(&self, container_id: &str) -> Result<(), NetworkError> {
        let pending =
            self.shared.live.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get_mut(container_id).and_then(|l| l.pending.take());
        if let Some(task) = pending {
            task.await.map_err(|e| NetworkError::Setup(format!("network setup: {e}")))??;
        }
        let ports = self
            .shared
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .sandboxes
            .get(container_id)
            .is_some_and(|s| !s.ports.is_empty());
        if ports {
            self.sync_firewall().await?;
        }
        Ok(())
    }

    async fn setup_inner(&self, req: &SandboxReq) -> Result<Sandbox, NetworkError> {
        let cid = req.container_id.as_str();
        let t0 = std::time::Instant::now();
        let path = self.netns_path(cid);
        let exists = self.shared.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner).sandboxes.contains_key(cid);
        if exists || netns::is_netns(&path) {
            self.disconnect(cid).await?;
        }
        std::fs::create_dir_all(&self.netns_dir).map_err(io_at("creating", &self.netns_dir))?;
        let ns = match self.netns_pool.take_at(&path) {
            Some(ns) => ns,
            None => netns::open_or_create(&path).await.map_err(io_at("creating netns", &path))?,
        };
        self.refill_netns_later();
        let upstream = if req.dns_servers.is_empty() { host_nameservers() } else { req.dns_servers.clone() };
        let rec = SandboxRec {
            container_id: cid.to_string(),
            name: req.name.clone(),
            netns: path.clone(),
            endpoints: vec![],
            ports: vec![],
            dns: DnsConf { upstream },
            links: req.links.clone(),
            netns_ino: netns::inode(&ns.fd),
        };
        self.shared.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner).sandboxes.insert(cid.to_string(), rec);
        let t_ns = t0.elapsed();
        let mut endpoints = vec![];
        let mut plumbs = vec![];
        for (net, attach) in &req.networks {
            let (ep, p) = self.allocate_claimed(cid, net, attach).await?;
            endpoints.push(ep);
            plumbs.push(p);
        }
        let ports = self.publish(cid, &req.ports)?;
        self.save_sandbox(cid)?;
        let resolver = self.wants_resolver(cid);
        if !ports.is_empty() {
            // iptables-restore runs meanwhile too; `ready` waits for it.
            self.schedule_firewall();
        }
        let shared = self.shared.clone();
        let (id, p2) = (cid.to_string(), path.clone());
        let task = self.shared.tasks.spawn(async move {
            let t0 = std::time::Instant::now();
            let inner = shared.netlink.in_netns(ns.netlink);
            inner.loopback_up().await.map_err(nl("bring lo up"))?;
            for p in plumbs {
                plumb(&*shared.netlink, p, &ns.fd, &*inner).await?;
            }
            if resolver {
                start_resolver_in(&shared, &id, &p2).await?;
            }
            tracing::debug!(container = %id, us = crate::micros_since(t0), "sandbox plumbed");
            Ok(())
        });
        self.shared.live.lock().unwrap_or_else(std::sync::PoisonError::into_inner).entry(cid.to_string()).or_default().pending = Some(task);
        tracing::debug!(netns_us = t_ns.as_micros() as u64, us = crate::micros_since(t0), "sandbox allocated");
        Ok(Sandbox { netns: path, endpoints, ports, resolver })
    }

    /// Makes the next spare netns in the background (see `netns_pool`).
    pub(super) fn refill_netns(&self) {
        let pool = self.netns_pool.clone();
        self.shared.tasks.spawn(async move { pool.fill().await });
    }

    /// [`Self::refill_netns`], [`netns_pool::REFILL_AFTER`] from now, when the start that took the
    /// spare is usually done.
    fn refill_netns_later(&self) {
        let pool = self.netns_pool.clone();
        self.shared.tasks.spawn_until_shutdown(async move {
            tokio::time::sleep(netns_pool::REFILL_AFTER).await;
            pool.fill().await
        });
    }

    /// Tears down everything of a container: resolver, host ports, every endpoint (veth and
    /// address), the netns and its record. Idempotent.
    #[tracing::instrument(skip_all, fields(container = %container_id))]
    pub async fn disconnect(&self, container_id: &str) -> Result<(), NetworkError> {
        // A setup still plumbing in the background is stopped first (it could start a resolver).
        let pending =
            self.shared.live.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get_mut(container_id).and_then(|l| l.pending.take());
        if let Some(task) = pending {
            task.abort();
            let _ = task.await;
        }
        // Closing the resolver's sockets first lets the netns die with its last process.
        drop(self.shared.live.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(container_id));
        let held = self.overlay_held(container_id, None);
        let (nets, had_ports) = {
            let mut st = self.shared.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let sb = st.sandboxes.remove(container_id);
            let mut nets: Vec<String> = sb.as_ref().map(|s| s.endpoints.iter().map(|e| e.network_id.clone()).collect()).unwrap_or_default();
            for s in st.networks.values_mut() {
                if s.ipam.release(container_id).is_some() {
                    store::save_ipam(&self.run_dir, &s.net.id, &s.ipam)?;
                    nets.push(s.net.id.clone());
                }
            }
            nets.sort();
            nets.dedup();
            (nets, sb.is_some_and(|s| !s.ports.is_empty()))
        };
        // The netns goes first: with the container's processes gone, unmounting it drops its
        // last reference and the kernel removes its veths (both ends) in its namespace cleanup,
        // in one batch, within milliseconds, instead of 30-50 ms per pair deleted by hand on a
        // loaded host (mostly RCU grace periods) on the path of every exit and `docker rm`. A
        // task watches them go, as iptables rules go in the background too; whatever still
        // holds the netns (a container sharing it) gets its veths deleted one by one after a
        // short while. A new start of the container deletes a leftover pair first.
        let t0 = std::time::Instant::now();
        let veths: Vec<String> = nets.iter().map(|net| veth_name(&endpoint_id(net, container_id))).collect();
        let watch = if veths.is_empty() { None } else { Some(self.shared.netlink.watch_links().map_err(os("watching links"))?) };
        let path = self.netns_path(container_id);
        netns::remove(&path).map_err(io_at("removing netns", &path))?;
        store::remove_sandbox(&self.run_dir, container_id)?;
        if had_ports {
            self.schedule_firewall();
        }
        if let Some(watch) = watch {
            self.shared.tasks.spawn(reap_veths(self.shared.netlink.clone(), watch, veths));
        }
        self.overlay_release(container_id, held).await;
        tracing::debug!(us = crate::micros_since(t0), "sandbox removed");
        Ok(())
    }

    /// [`Self::allocate`], with the address claimed in the cluster store first on an overlay
    /// network (given back if the allocation fails) and the endpoint published after.
    pub(super) async fn allocate_claimed(&self, cid: &str, network: &str, attach: &Attach) -> Result<(Endpoint, Plumb), NetworkError> {
        let claimed = self.overlay_claim(cid, network, attach).await?;
        let (ep, p) = match self.allocate(cid, network, &claimed) {
            Ok(r) => r,
            Err(e) => {
                if let (Some(ip), Ok(net)) = (claimed.ipv4, self.network(network)) {
                    if net.driver == super::overlay::DRIVER {
                        self.overlay_release(cid, vec![(net.id, ip)]).await;
                    }
                }
                return Err(e);
            }
        };
        self.overlay_publish(cid, &ep).await?;
        Ok((ep, p))
    }

    /// The state side of an attach: allocates the address of `cid` on `network` and records the
    /// endpoint; [`plumb`] does the kernel side.
    fn allocate(&self, cid: &str, network: &str, attach: &Attach) -> Result<(Endpoint, Plumb), NetworkError> {
        let (ep, bridge_name, subnet, route, mtu) = {
            let mut st = self.shared.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let net_id = st
                .networks
                .values()
                .find(|s| s.net.id == network || s.net.name == network)
                .or_else(|| st.networks.values().find(|s| !network.is_empty() && s.net.id.starts_with(network)))
                .map(|s| s.net.id.clone())
                .ok_or_else(|| NetworkError::NotFound(network.to_string()))?;
            let has_route = st.sandboxes.get(cid).is_some_and(|s| s.endpoints.iter().any(|e| e.default_route));
            let s = st.networks.get_mut(&net_id).expect("network just found");
            if s.net.is_default() && attach.ipv4.is_some() {
                return Err(NetworkError::Invalid("user specified IP address is supported on user defined networks only".into()));
            }
            // (An overlay's address was claimed in the cluster store, with its checks, before.)
            if attach.ipv4.is_some() && !s.net.user_subnet && s.net.driver != super::overlay::DRIVER {
                return Err(NetworkError::Invalid(
                    "user specified IP address is supported only when connecting to networks with user configured subnets".into(),
                ));
            }
            if s.net.is_default() && !attach.aliases.is_empty() {
                return Err(NetworkError::Invalid("network-scoped alias is supported only for containers in user defined networks".into()));
            }
            let ip = match attach.ipv4 {
                Some(want) => s.ipam.allocate_static(cid, want)?,
                None => s.ipam.allocate(cid)?,
            };
            store::save_ipam(&self.run_dir, &s.net.id, &s.ipam)?;
            let mac = match &attach.mac {
                Some(m) => ipam::mac_string(&parse_mac(m)?),
                None => ipam::mac_string(&ipam::mac_for(ip)),
            };
            let route = !s.net.internal && !has_route;
            let (gateway, prefix, bridge_name, subnet, net_name) =
                (s.net.gateway, s.ipam.subnet().prefix(), s.net.bridge.clone(), s.net.subnet.clone(), s.net.name.clone());
            let mtu = super::overlay::mtu_of(&s.net).or_else(|| super::flags::bridge_mtu(&s.net));
            let sb = st.sandboxes.get_mut(cid).ok_or_else(|| NetworkError::Setup(format!("no sandbox for {cid}")))?;
            if sb.endpoints.iter().any(|e| e.network_id == net_id) {
                let who = if sb.name.is_empty() { cid.to_string() } else { sb.name.clone() };
                return Err(NetworkError::Forbidden(format!("endpoint with name {who} already exists in network {net_name}")));
            }
            let ifname = (0..).map(|i| format!("eth{i}")).find(|n| !sb.endpoints.iter().any(|e| &e.ifname == n)).expect("a free name");
            let rec = EndpointRec {
                network_id: net_id.clone(),
                ifname: ifname.clone(),
                aliases: attach.aliases.clone(),
                mac: mac.clone(),
                default_route: route,
            };
            sb.endpoints.push(rec);
            let eid = endpoint_id(&net_id, cid);
            let ep = Endpoint {
                netns: sb.netns.clone(),
                ip,
                prefix_len: prefix,
                gateway,
                mac,
                veth: veth_name(&eid),
                network_id: net_id,
                endpoint_id: eid,
                network_name: net_name,
                ifname,
                aliases: attach.aliases.clone(),
            };
            (ep, bridge_name, subnet, route, mtu)
        };
        let mac = parse_mac(&ep.mac)?;
        Ok((ep.clone(), Plumb { ep, bridge: bridge_name, subnet, route, mac, mtu }))
    }

    /// Takes the host ports of `specs`, pointing at the container's primary (first non-internal)
    /// endpoint. Docker's wording when a port is taken.
    pub(super) fn publish(&self, cid: &str, specs: &[PortSpec]) -> Result<Vec<PortMapping>, NetworkError> {
        if specs.is_empty() {
            return Ok(vec![]);
        }
        if !self.shared.firewall {
            return Err(NetworkError::Invalid(
                "cannot publish ports: the engine runs with --iptables=false, and publishes ports through NAT only (no userland proxy)"
                    .into(),
            ));
        }
        let (target, name, eid, claimed) = {
            let st = self.shared.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let Some(sb) = st.sandboxes.get(cid) else { return Ok(vec![]) };
            // Other containers' mappings: after a restart, one whose port someone else held
            // has no socket until it is taken again, and its DNAT rule is in force meanwhile.
            let claimed = portmap::Claimed::new(
                st.sandboxes
                    .iter()
                    .filter(|(other, _)| other.as_str() != cid)
                    .flat_map(|(_, sb)| sb.ports.iter().map(|m| (m.proto.clone(), m.host_ip, m.host_port))),
            );
            let primary = sb.endpoints.iter().find_map(|e| {
                let s = st.networks.get(&e.network_id).filter(|s| !s.net.internal)?;
                Some((s.ipam.get(cid)?, endpoint_id(&s.net.id, cid)))
            });
            match primary {
                Some((ip, eid)) => (ip, sb.name.clone(), eid, claimed),
                None => return Ok(vec![]),
            }
        };
        let mut out = vec![];
        for spec in specs {
            let (port, res) = portmap::reserve(spec, &claimed).map_err(|e| match e {
                NetworkError::PortInUse(m) => {
                    NetworkError::PortInUse(format!("driver failed programming external connectivity on endpoint {name} ({eid}): {m}"))
                }
                e => e,
            })?;
            let m = PortMapping {
                proto: spec.proto.clone(),
                container_port: spec.container_port,
                host_ip: spec.host_ip.unwrap_or(Ipv4Addr::UNSPECIFIED),
                host_port: port,
                container_ip: target,
            };
            self.shared
                .live
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .entry(cid.to_string())
                .or_default()
                .ports
                .push((m.clone(), res));
            out.push(m);
        }
        let mut st = self.shared.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(sb) = st.sandboxes.get_mut(cid) {
            sb.ports.extend(out.iter().cloned());
        }
        Ok(out)
    }

    /// Does `cid` sit on a network with DNS?
    pub(super) fn wants_resolver(&self, cid: &str) -> bool {
        let st = self.shared.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        st.sandboxes.get(cid).is_some_and(|sb| sb.endpoints.iter().any(|e| st.networks.get(&e.network_id).is_some_and(|s| s.net.dns())))
    }

    /// Binds 127.0.0.11:53 inside the container's netns and serves it.
    pub(super) async fn start_resolver(&self, cid: &str) -> Result<(), NetworkError> {
        start_resolver_in(&self.shared, cid, &self.netns_path(cid)).await
    }

    pub(super) fn save_sandbox(&self, cid: &str) -> Result<(), NetworkError> {
        let sb = self.shared.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner).sandboxes.get(cid).cloned();
        match sb {
            Some(sb) => store::save_sandbox(&self.run_dir, &sb),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs() {
        assert_eq!(parse_mac("02:42:ac:11:00:09").unwrap(), [2, 0x42, 0xac, 0x11, 0, 9]);
        assert!(parse_mac("02:42:ac:11:00").is_err());
        assert!(parse_mac("zz:42:ac:11:00:09").is_err());
    }
}
