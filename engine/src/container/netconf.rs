//! A container's networking: the plan made at create (mode, networks, published ports, checks
//! with Docker's messages), what start sets up (the sandbox, /etc/hosts, /etc/resolv.conf,
//! legacy link variables) and `docker network connect/disconnect`.
use super::record::{NetConf, NetMode, Record};
use super::{etcfiles, ports, ContainerError, ContainerService};
use crate::network::{Attach, NetworkError, SandboxReq};
use crate::runtime::{NetNs, Runtime};
use bollard_stubs::models::{ContainerCreateBody, EndpointSettings, HostConfig};
use std::path::{Path, PathBuf};

/// What the runtime takes of a container's network.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct NetPlan {
    pub netns: NetNs,
    /// (file in the container dir, path inside): hosts, hostname, resolv.conf.
    pub mounts: Vec<(PathBuf, &'static str)>,
    /// Legacy link variables.
    pub env: Vec<String>,
    /// `container:` mode: the hostname of the container whose netns is shared.
    pub hostname: Option<String>,
}

/// What a start's network setup made.
pub(super) struct NetSetup {
    /// What the runtime takes of it.
    pub plan: NetPlan,
    /// The sandbox is being plumbed in the background: await `NetworkService::ready` before
    /// the process starts.
    pub pending: bool,
    /// The sandbox's endpoints and published ports (the record's once the container runs).
    pub endpoints: Vec<crate::network::Endpoint>,
    pub ports: Vec<crate::network::PortMapping>,
}

fn has(v: &Option<Vec<String>>) -> bool {
    v.as_ref().is_some_and(|x| !x.is_empty())
}

/// A `--link` to a container of another node: (alias, container id).
type RemoteLink = (String, String);

fn bad(msg: impl Into<String>) -> ContainerError {
    ContainerError::InvalidParam(msg.into())
}

/// The endpoint settings of the API as an [`Attach`].
pub fn attach_of(ep: Option<&EndpointSettings>) -> Result<Attach, ContainerError> {
    let Some(ep) = ep else { return Ok(Attach::default()) };
    if let Some(v6) = ep.ipam_config.as_ref().and_then(|c| c.ipv6_address.as_deref()).filter(|s| !s.is_empty()) {
        return Err(bad(format!("IPv6 address {v6} (--ip6): IPv6 is not supported by this engine")));
    }
    if ep.ipam_config.as_ref().is_some_and(|c| has(&c.link_local_ips)) {
        return Err(bad("link-local addresses (--link-local-ip) are not supported by this engine"));
    }
    if let Some((k, _)) = ep.driver_opts.iter().flatten().next() {
        return Err(bad(format!("endpoint driver option {k:?} (--driver-opt) is not supported by this engine")));
    }
    let ipv4 = match ep.ipam_config.as_ref().and_then(|c| c.ipv4_address.as_deref()).filter(|s| !s.is_empty()) {
        Some(s) => Some(s.parse().map_err(|_| bad(format!("invalid IPv4 address: {s}")))?),
        None => None,
    };
    let mac = ep.mac_address.clone().filter(|m| !m.is_empty());
    Ok(Attach { aliases: ep.aliases.clone().unwrap_or_default(), ipv4, mac })
}

/// `name` or `/name:/me/alias` or `name:alias` -> (target, alias).
pub fn parse_link(l: &str) -> Result<(String, String), ContainerError> {
    let (name, alias) = l.split_once(':').unwrap_or((l, l));
    let name = name.trim_start_matches('/');
    let alias = alias.rsplit('/').next().unwrap_or(alias);
    if name.is_empty() || alias.is_empty() {
        return Err(bad(format!("invalid link: {l}")));
    }
    Ok((name.to_string(), alias.to_string()))
}

impl<R: Runtime> ContainerService<R> {
    /// Network mode and networks of a new container; refuses what Docker refuses.
    pub(super) fn plan_network(
        &self,
        body: &ContainerCreateBody,
        hc: &HostConfig,
        mac: Option<&str>,
    ) -> Result<(NetMode, Vec<NetConf>), ContainerError> {
        let mode = hc.network_mode.as_deref().unwrap_or("");
        let eps = body.networking_config.as_ref().and_then(|n| n.endpoints_config.as_ref());
        let publishing = hc.port_bindings.as_ref().is_some_and(|p| !p.is_empty()) || hc.publish_all_ports == Some(true);
        let mac = mac.filter(|m| !m.is_empty());
        for d in hc.dns.iter().flatten() {
            d.parse::<std::net::IpAddr>().map_err(|_| bad(format!("{d} is not an ip address")))?;
        }
        for h in hc.extra_hosts.iter().flatten() {
            etcfiles::parse_extra_host(h, std::net::Ipv4Addr::UNSPECIFIED)?;
        }
        if !matches!(mode, "host" | "none") && !mode.starts_with("container:") {
            ports::specs(hc, body.exposed_ports.as_deref().unwrap_or(&[]))?;
        }
        if matches!(mode, "host" | "none") {
            // dockerd's refusals: these settings only exist on a network of the container's own.
            for ep in eps.into_iter().flat_map(|m| m.values()) {
                if has(&ep.aliases) {
                    return Err(bad("network-scoped alias is supported only for containers in user defined networks"));
                }
                if ep.ipam_config.as_ref().and_then(|c| c.ipv4_address.as_deref()).is_some_and(|a| !a.is_empty()) {
                    return Err(bad("user specified IP address is supported on user defined networks only"));
                }
            }
        }
        match mode {
            "host" => {
                if has(&hc.links) {
                    return Err(bad(
                        "conflicting options: host type networking can't be used with links. This would result in undefined behavior",
                    ));
                }
                if mac.is_some() {
                    return Err(bad("conflicting options: mac-address and the network mode"));
                }
                Ok((NetMode::Host, vec![]))
            }
            "none" => Ok((NetMode::None, vec![])),
            m if m.starts_with("container:") => {
                let target = &m["container:".len()..];
                if body.hostname.as_ref().is_some_and(|h| !h.is_empty()) {
                    return Err(bad("conflicting options: hostname and the network mode"));
                }
                if has(&hc.dns) || has(&hc.dns_search) || has(&hc.dns_options) {
                    return Err(bad("conflicting options: dns and the network mode"));
                }
                if has(&hc.extra_hosts) {
                    return Err(bad("conflicting options: custom host-to-IP mapping and the network mode"));
                }
                if publishing {
                    return Err(bad("conflicting options: port publishing and the container type network mode"));
                }
                if mac.is_some() {
                    return Err(bad("conflicting options: mac-address and the network mode"));
                }
                if has(&hc.links) {
                    return Err(bad(
                        "conflicting options: container type network can't be used with links. This would result in undefined behavior",
                    ));
                }
                // 400, not 404: the CLI answers a 404 of create by pulling the image.
                let t = self.get(target).map_err(|e| bad(e.to_string()))?;
                Ok((NetMode::Container(t.id()), vec![]))
            }
            m => {
                let primary = if matches!(m, "" | "default") { crate::network::DEFAULT_NETWORK } else { m };
                let mut keys: Vec<&str> = vec![primary];
                keys.extend(
                    eps.iter()
                        .flat_map(|e| e.keys())
                        .map(String::as_str)
                        .filter(|k| !matches!(*k, "default" | "") && *k != primary && *k != m),
                );
                let mut out: Vec<NetConf> = vec![];
                for (i, key) in keys.iter().enumerate() {
                    let net = self.network.network(key).map_err(|_| bad(format!("network {key} not found")))?;
                    if net.driver != "bridge" && net.driver != crate::network::overlay::DRIVER {
                        return Err(bad(format!("container cannot be connected to network {} together with others", net.name)));
                    }
                    let ep = eps.and_then(|e| e.get(*key).or_else(|| if i == 0 { e.get(m).or_else(|| e.get("default")) } else { None }));
                    let mut attach = attach_of(ep)?;
                    if i == 0 && attach.mac.is_none() {
                        attach.mac = mac.map(String::from);
                    }
                    self.check_attach(&net, &attach)?;
                    if !out.iter().any(|n| n.id == net.id) {
                        out.push(NetConf { name: net.name.clone(), id: net.id.clone(), attach });
                    }
                }
                Ok((NetMode::Bridge, out))
            }
        }
    }

    fn check_attach(&self, net: &crate::network::Network, a: &Attach) -> Result<(), ContainerError> {
        if net.is_default() && a.ipv4.is_some() {
            return Err(bad("user specified IP address is supported on user defined networks only"));
        }
        if net.is_default() && !a.aliases.is_empty() {
            return Err(bad("network-scoped alias is supported only for containers in user defined networks"));
        }
        if a.ipv4.is_some() && !net.user_subnet {
            return Err(bad("user specified IP address is supported only when connecting to networks with user configured subnets"));
        }
        if let Some(m) = &a.mac {
            let ok = m.split(':').count() == 6 && m.split(':').all(|p| p.len() == 2 && u8::from_str_radix(p, 16).is_ok());
            if !ok {
                return Err(bad(format!("invalid MAC address: {m}")));
            }
        }
        Ok(())
    }

    /// What the runtime will take of `rec`'s network, known before it is set up (see `launch`):
    /// its netns and /etc files, where the setup adds nothing else (no legacy link variables; not
    /// another container's netns and hostname).
    pub(super) fn net_plan(&self, rec: &Record, dir: &Path) -> Option<NetPlan> {
        let plan = |netns| NetPlan { netns, mounts: etcfiles::paths(dir), env: vec![], hostname: None };
        match &rec.net_mode {
            NetMode::Host => Some(plan(NetNs::Host)),
            NetMode::None | NetMode::Bridge if !has(&rec.host_config.links) => Some(plan(NetNs::Path(self.network.netns_path(&rec.id)))),
            _ => None,
        }
    }

    /// Sets up the container's network for a start and writes its /etc files into `dir`.
    pub(super) async fn setup_network(&self, rec: &Record, dir: &Path) -> Result<NetSetup, ContainerError> {
        let hc = &rec.host_config;
        let hostname = rec.config.hostname.clone().unwrap_or_default();
        let gw = self.network.subnet().1;
        let extra = etcfiles::extra_hosts(hc.extra_hosts.as_deref().unwrap_or(&[]), gw)?;
        let host_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        let dns = etcfiles::DnsOpts::of(hc);
        match &rec.net_mode {
            NetMode::Container(tid) => {
                let t = self.get(tid).map_err(|_| ContainerError::NotFound(tid.clone()))?.record();
                if !t.running() {
                    return Err(ContainerError::Conflict(format!("cannot join network of a non running container: {tid}")));
                }
                let netns = match &t.net_mode {
                    NetMode::Host => NetNs::Host,
                    NetMode::Container(_) => {
                        return Err(bad(format!("cannot join network of container {tid}: it shares another container's")))
                    }
                    _ => NetNs::Path(self.network.netns_path(&t.id)),
                };
                let tdir = Record::dir(&self.cfg.data_root, &t.id);
                let mounts = vec![
                    (tdir.join("hosts"), "/etc/hosts"),
                    (tdir.join("hostname"), "/etc/hostname"),
                    (tdir.join("resolv.conf"), "/etc/resolv.conf"),
                ];
                Ok(NetSetup {
                    plan: NetPlan { netns, mounts, env: vec![], hostname: t.config.hostname.clone() },
                    pending: false,
                    endpoints: vec![],
                    ports: vec![],
                })
            }
            NetMode::Host => {
                let mut hosts = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
                hosts.push_str(&extra);
                let resolv = if dns.is_empty() { host_resolv } else { etcfiles::resolv_conf(&host_resolv, false, &dns) };
                let mounts = etcfiles::write(dir, &hosts, &hostname, &resolv).map_err(ContainerError::io("writing /etc files in", dir))?;
                let plan = NetPlan { netns: NetNs::Host, mounts, env: vec![], hostname: None };
                Ok(NetSetup { plan, pending: false, endpoints: vec![], ports: vec![] })
            }
            NetMode::None | NetMode::Bridge => {
                let (links, remote_links) = self.resolve_links(rec)?;
                let mut networks = vec![];
                for n in &rec.networks {
                    let key = if self.network.network(&n.id).is_ok() { n.id.clone() } else { n.name.clone() };
                    networks.push((key, n.attach.clone()));
                }
                let on_default = rec.networks.first().is_some_and(|n| n.name == crate::network::DEFAULT_NETWORK);
                let req = SandboxReq {
                    container_id: rec.id.clone(),
                    name: rec.name.clone(),
                    networks,
                    ports: if rec.net_mode == NetMode::Bridge {
                        ports::specs(hc, rec.config.exposed_ports.as_deref().unwrap_or(&[]))?
                    } else {
                        vec![]
                    },
                    dns_servers: dns.servers.iter().filter_map(|s| s.parse().ok()).collect(),
                    links: links.iter().map(|l| (l.alias.clone(), l.target.id.clone())).chain(remote_links).collect(),
                };
                let sb = self.network.setup_started(&req).await.map_err(|e| match e {
                    NetworkError::NotFound(n) => ContainerError::NetworkNotFound(n),
                    e => e.into(),
                })?;
                let mut hosts = etcfiles::BASE_HOSTS.to_string();
                if let Some(ep) = sb.endpoints.first() {
                    hosts.push_str(&format!("{}\t{hostname}\n", ep.ip));
                }
                let mut env = vec![];
                if on_default {
                    for l in &links {
                        if let Some(ip) = self
                            .network
                            .sandbox_endpoints(&l.target.id)
                            .iter()
                            .find(|e| e.network_id == self.network.default_network_id())
                            .map(|e| e.ip)
                        {
                            hosts.push_str(&format!("{ip}\t{} {} {}\n", l.alias, &l.target.id[..12], l.target.name));
                            env.extend(etcfiles::link_env(&rec.name, &l.alias, ip, &l.target));
                        }
                    }
                }
                hosts.push_str(&extra);
                let resolv = etcfiles::resolv_conf(&host_resolv, sb.resolver, &dns);
                let mounts = etcfiles::write(dir, &hosts, &hostname, &resolv).map_err(ContainerError::io("writing /etc files in", dir))?;
                Ok(NetSetup {
                    plan: NetPlan { netns: NetNs::Path(sb.netns), mounts, env, hostname: None },
                    pending: true,
                    endpoints: sb.endpoints,
                    ports: sb.ports,
                })
            }
        }
    }

    /// The running containers `--link` names; Docker's error when one is not running. And
    /// (alias, container id) of those running on another node, on one of the container's
    /// overlay networks (answered by the embedded DNS only).
    fn resolve_links(&self, rec: &Record) -> Result<(Vec<etcfiles::Link>, Vec<RemoteLink>), ContainerError> {
        let mut out = vec![];
        let mut remote = vec![];
        for l in rec.host_config.links.iter().flatten() {
            let (name, alias) = parse_link(l)?;
            let target = match self.get(&name) {
                Ok(c) => c.record(),
                Err(_) => {
                    let nets: Vec<&str> = rec.networks.iter().flat_map(|n| [n.id.as_str(), n.name.as_str()]).collect();
                    let id =
                        self.network.remote_container(&name, &nets).ok_or_else(|| bad(format!("could not get container for {name}")))?;
                    remote.push((alias, id));
                    continue;
                }
            };
            if !target.running() {
                return Err(bad(format!("Cannot link to a non running container: /{} AS /{}/{alias}", target.name, rec.name)));
            }
            out.push(etcfiles::Link { alias, target });
        }
        Ok((out, remote))
    }

    /// `docker network connect`: live for a running container, recorded for the next start otherwise.
    pub async fn network_connect(&self, network: &str, container: &str, ep: Option<&EndpointSettings>) -> Result<(), ContainerError> {
        let ctr = self.get(container)?;
        let _op = ctr.op.lock().await;
        let rec = ctr.record();
        let net = self.network.network(network).map_err(|_| ContainerError::NetworkNotFound(network.to_string()))?;
        let forbid = |m: String| ContainerError::Network(NetworkError::Forbidden(m));
        match &rec.net_mode {
            NetMode::Host => return Err(forbid("container cannot be disconnected from host network or connected to host network".into())),
            NetMode::None | NetMode::Container(_) => {
                return Err(forbid(
                    "container sharing network namespace with another container or host cannot be connected to any other network".into(),
                ))
            }
            NetMode::Bridge => {}
        }
        if net.driver != "bridge" && net.driver != crate::network::overlay::DRIVER {
            return Err(forbid("container cannot be disconnected from host network or connected to host network".into()));
        }
        if rec.networks.iter().any(|n| n.id == net.id) {
            return Err(forbid(format!("endpoint with name {} already exists in network {}", rec.name, net.name)));
        }
        let attach = attach_of(ep)?;
        self.check_attach(&net, &attach)?;
        if rec.running() {
            self.network.connect_endpoint(&rec.id, &net.id, &attach).await?;
            if net.dns() {
                self.point_resolv_conf_at_resolver(&rec);
            }
        }
        let snapshot = {
            let mut r = ctr.rec.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            r.networks.push(NetConf { name: net.name.clone(), id: net.id.clone(), attach });
            if r.running() {
                r.endpoints = self.network.sandbox_endpoints(&r.id);
            }
            r.clone()
        };
        self.save(&snapshot)?;
        self.events.publish(
            "network",
            "connect",
            &net.id,
            &[("container", rec.id.as_str()), ("name", net.name.as_str()), ("type", "bridge")],
        );
        Ok(())
    }

    /// A running container that joins its first user-defined network gets the embedded resolver:
    /// its resolv.conf is rewritten in place (the bind mount keeps the inode), as dockerd does.
    fn point_resolv_conf_at_resolver(&self, rec: &Record) {
        let p = Record::dir(&self.cfg.data_root, &rec.id).join("resolv.conf");
        let Ok(cur) = std::fs::read_to_string(&p) else { return };
        if cur.lines().any(|l| l.trim() == "nameserver 127.0.0.11") {
            return;
        }
        let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        let new = etcfiles::resolv_conf(&host, true, &etcfiles::DnsOpts::of(&rec.host_config));
        if let Err(e) = std::fs::write(&p, new) {
            tracing::warn!(container = %rec.id, error = %e, "rewriting resolv.conf failed");
        }
    }

    /// `docker network disconnect`.
    pub async fn network_disconnect(&self, network: &str, container: &str, force: bool) -> Result<(), ContainerError> {
        let ctr = self.get(container)?;
        let _op = ctr.op.lock().await;
        let rec = ctr.record();
        let net = match self.network.network(network) {
            Ok(n) => Some(n),
            Err(_) if force => None,
            Err(_) => return Err(ContainerError::NetworkNotFound(network.to_string())),
        };
        let forbid = |m: String| ContainerError::Network(NetworkError::Forbidden(m));
        if matches!(rec.net_mode, NetMode::Host) || net.as_ref().is_some_and(|n| n.driver == "host") {
            return Err(forbid("container cannot be disconnected from host network or connected to host network".into()));
        }
        let idx = rec.networks.iter().position(|n| match &net {
            Some(net) => n.id == net.id,
            None => n.name == network || n.id == network,
        });
        let Some(idx) = idx else {
            return Err(forbid(format!("container {} is not connected to network {network}", rec.id)));
        };
        let conf = rec.networks[idx].clone();
        if rec.running() {
            match self.network.disconnect_endpoint(&rec.id, &conf.id).await {
                Ok(()) => {}
                Err(e) if force => tracing::warn!(error = %e, "forced disconnect"),
                Err(e) => return Err(e.into()),
            }
        }
        let snapshot = {
            let mut r = ctr.rec.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            r.networks.retain(|n| n.id != conf.id);
            if r.running() {
                r.endpoints = self.network.sandbox_endpoints(&r.id);
                r.ports = self.network.ports(&r.id);
            }
            r.clone()
        };
        self.save(&snapshot)?;
        self.events.publish(
            "network",
            "disconnect",
            &conf.id,
            &[("container", rec.id.as_str()), ("name", conf.name.as_str()), ("type", "bridge")],
        );
        Ok(())
    }

    /// Containers attached (or to be attached at start) to network `id`, for `network rm` checks
    /// and inspect: (container id, name).
    pub fn network_users(&self, id: &str) -> Vec<(String, String)> {
        let t = self.table.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut out: Vec<(String, String)> = t
            .by_id
            .values()
            .filter_map(|c| {
                let r = c.rec.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                r.networks.iter().any(|n| n.id == id).then(|| (r.id.clone(), r.name.clone()))
            })
            .collect();
        out.sort();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links() {
        assert_eq!(parse_link("web:www").unwrap(), ("web".into(), "www".into()));
        assert_eq!(parse_link("/web:/me/www").unwrap(), ("web".into(), "www".into()));
        assert_eq!(parse_link("web").unwrap(), ("web".into(), "web".into()));
        assert!(parse_link(":x").is_err());
    }

    #[test]
    fn endpoint_settings() {
        let ep = EndpointSettings {
            aliases: Some(vec!["a".into()]),
            ipam_config: Some(bollard_stubs::models::EndpointIpamConfig { ipv4_address: Some("10.1.0.9".into()), ..Default::default() }),
            ..Default::default()
        };
        let a = attach_of(Some(&ep)).unwrap();
        assert_eq!(a.aliases, vec!["a"]);
        assert_eq!(a.ipv4, Some("10.1.0.9".parse().unwrap()));
        assert_eq!(attach_of(None).unwrap(), Attach::default());
    }
}
