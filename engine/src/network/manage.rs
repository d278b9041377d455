//! `docker network create/rm/prune`: user-defined bridge networks.
use super::store::{self, NetState, Network};
use super::{io_at, nl, os, NetworkError, NetworkService, DEFAULT_NETWORK};
use ipnetwork::Ipv4Network;
use std::collections::BTreeMap;
use std::net::Ipv4Addr;

/// `com.docker.network.bridge.name`.
pub const OPT_BRIDGE_NAME: &str = "com.docker.network.bridge.name";
/// Host-wide lock taken while picking a free subnet and creating its bridge, so that engines
/// creating networks at the same moment never pick the same one: an abstract unix socket name
/// (per netns, like the subnets it guards; gone with the process, no file left behind).
const POOL_LOCK: &[u8] = b"flotilla-netpool-lock";

/// What `docker network create` asks for.
#[derive(Debug, Clone, Default)]
pub struct CreateNetwork {
    pub name: String,
    /// Empty or `bridge`.
    pub driver: String,
    pub subnet: Option<String>,
    pub gateway: Option<String>,
    pub ip_range: Option<String>,
    pub internal: bool,
    pub ipv6: bool,
    pub labels: BTreeMap<String, String>,
    pub options: BTreeMap<String, String>,
    /// `--attachable`: overlay networks only.
    pub attachable: bool,
}

/// `docker network prune` filters.
#[derive(Debug, Clone, Default)]
pub struct PruneFilters {
    /// `label=k` or `label=k=v`: all must match.
    pub labels: Vec<String>,
    /// `label!=k` or `label!=k=v`: none may match.
    pub labels_not: Vec<String>,
    /// `until`: only networks created before this time (unix seconds).
    pub until: Option<i64>,
}

/// Does `labels` carry `filter` (`k` or `k=v`)?
pub fn has_label(labels: &BTreeMap<String, String>, filter: &str) -> bool {
    match filter.split_once('=') {
        Some((k, v)) => labels.get(k).is_some_and(|x| x == v),
        None => labels.contains_key(filter),
    }
}

/// A network name as dockerd takes it: anything but blank, spaces included. Refused: `/`
/// (no API path could name it) and `:` (`--network container:x` would be ambiguous).
fn check_name(name: &str) -> Result<(), NetworkError> {
    if name.trim().is_empty() || name.contains('/') || name.contains(':') || name.chars().any(char::is_control) {
        return Err(NetworkError::Invalid(format!(
            "invalid network name {name:?}: it must not be blank, nor contain '/', ':' or control characters"
        )));
    }
    Ok(())
}

pub(super) fn overlaps(a: &Ipv4Network, b: &Ipv4Network) -> bool {
    a.contains(b.network()) || b.contains(a.network())
}

/// Docker's default address pools (172.17 is left to a docker0): 172.18-31.0.0/16, then 192.168.x.0/20.
fn pool() -> impl Iterator<Item = Ipv4Network> {
    let big = (18..=31u8).filter_map(|b| Ipv4Network::new(Ipv4Addr::new(172, b, 0, 0), 16).ok());
    let small = (0..16u8).filter_map(|i| Ipv4Network::new(Ipv4Addr::new(192, 168, i * 16, 0), 20).ok());
    big.chain(small)
}

/// Holds [`POOL_LOCK`] while alive.
struct PoolLock(#[allow(dead_code)] std::os::unix::net::UnixListener);

impl PoolLock {
    async fn acquire() -> Result<PoolLock, NetworkError> {
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(POOL_LOCK).map_err(os("subnet pool lock"))?;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            match std::os::unix::net::UnixListener::bind_addr(&addr) {
                Ok(l) => return Ok(PoolLock(l)),
                Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && std::time::Instant::now() < deadline => {
                    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                }
                Err(e) => return Err(NetworkError::Setup(format!("subnet pool lock: {e}"))),
            }
        }
    }
}

impl NetworkService {
    /// Creates a user-defined network (bridge: its record, IPAM state, bridge and rules; overlay:
    /// in the cluster store) and publishes its `create` event.
    #[tracing::instrument(skip_all, fields(name = %req.name))]
    pub async fn create_network(&self, req: CreateNetwork) -> Result<Network, NetworkError> {
        let net = self.create_locked(req).await?;
        self.publish_event("create", &net);
        Ok(net)
    }

    /// A network's event: `network <action>` with its name and driver.
    fn publish_event(&self, action: &str, net: &Network) {
        self.events.publish("network", action, &net.id, &[("name", net.name.as_str()), ("type", net.driver.as_str())]);
    }

    async fn create_locked(&self, req: CreateNetwork) -> Result<Network, NetworkError> {
        let _ops = self.ops.lock().await;
        let name = req.name.clone();
        check_name(&name)?;
        match req.driver.as_str() {
            // Attachable asks that standalone containers may join: every bridge network lets
            // them (docker-compose sends Attachable for every network it creates, as dockerd
            // accepts it for local networks).
            "" | "bridge" => {}
            super::overlay::DRIVER => {}
            d @ ("host" | "null") => return Err(NetworkError::Forbidden(format!("only one instance of \"{d}\" network is allowed"))),
            d => {
                return Err(NetworkError::Invalid(format!("plugin \"{d}\" not found: only the bridge driver is supported by this engine")))
            }
        }
        if req.ipv6 {
            return Err(NetworkError::Invalid("IPv6 networks are not supported by this engine".into()));
        }
        if req.driver == super::overlay::DRIVER {
            super::flags::check_mtu_option(&req.options)?;
        } else {
            super::flags::check_bridge_options(&req.options)?;
        }
        if self.networks().iter().any(|n| n.name == name) {
            return Err(NetworkError::Conflict(format!("network with name {name} already exists")));
        }
        if req.subnet.is_none() && (req.gateway.is_some() || req.ip_range.is_some()) {
            return Err(NetworkError::Invalid("a gateway or an ip-range needs a subnet (--subnet)".into()));
        }
        if req.driver == super::overlay::DRIVER {
            super::overlay::check_name(&name)?;
            return self.create_overlay(req, name).await;
        }
        let ours: Vec<(Ipv4Network, String)> = {
            let st = self.shared.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            st.networks.values().filter_map(|s| Some((store::parse_subnet(&s.net.subnet).ok()?, s.net.bridge.clone()))).collect()
        };
        let id = crate::ids::new_id();
        let h = self.shared.netlink.host().map_err(os("netlink connection"))?;
        let bridge_name = match req.options.get(OPT_BRIDGE_NAME).filter(|b| !b.is_empty()) {
            Some(b) => {
                if b.len() > 15 || b.contains('/') || b.chars().any(char::is_whitespace) {
                    return Err(NetworkError::Invalid(format!("invalid bridge name {b:?}")));
                }
                if ours.iter().any(|(_, x)| x == b) || h.link_index(b).await.map_err(nl("find link"))?.is_some() {
                    return Err(NetworkError::Conflict(format!("bridge name {b} is already in use")));
                }
                b.clone()
            }
            None => {
                let tag = &self.bridge_name[..self.bridge_name.len().min(8)];
                format!("{tag}-{}", &id[..14 - tag.len()])
            }
        };
        let _pool = PoolLock::acquire().await?;
        let subnet = match &req.subnet {
            Some(s) => {
                let n = store::parse_subnet(s).map_err(|_| NetworkError::Invalid(format!("invalid subnet {s}")))?;
                if ours.iter().any(|(o, _)| overlaps(o, &n)) {
                    return Err(NetworkError::Forbidden("Pool overlaps with other one on this address space".into()));
                }
                n
            }
            None => {
                let mut taken: Vec<Ipv4Network> = ours.iter().map(|(n, _)| *n).collect();
                taken.extend(h.local_networks().await.map_err(nl("list addresses"))?);
                pool().find(|c| !taken.iter().any(|t| overlaps(t, c))).ok_or_else(|| {
                    NetworkError::Forbidden(
                        "could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network".into(),
                    )
                })?
            }
        };
        let gateway = match &req.gateway {
            Some(g) => g.parse::<Ipv4Addr>().map_err(|_| NetworkError::Invalid(format!("invalid gateway address {g}")))?,
            None => Ipv4Addr::from(u32::from(subnet.network()) + 1),
        };
        if !subnet.contains(gateway) {
            return Err(NetworkError::Invalid(format!("no matching subnet for gateway {gateway}")));
        }
        let net = Network {
            id: id.clone(),
            name,
            driver: "bridge".into(),
            subnet: subnet.to_string(),
            gateway,
            bridge: bridge_name.clone(),
            created: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
            ip_range: req.ip_range.clone(),
            internal: req.internal,
            labels: req.labels,
            options: req.options,
            user_subnet: req.subnet.is_some(),
            attachable: false,
        };
        let ipam = store::new_ipam(&net)?;
        let cidr = Ipv4Network::new(gateway, subnet.prefix()).map_err(|e| NetworkError::Invalid(e.to_string()))?;
        h.ensure_bridge(&bridge_name, cidr).await.map_err(nl(format!("bridge {bridge_name}")))?;
        if let Some(m) = super::flags::bridge_mtu(&net) {
            h.set_mtu(&bridge_name, m).await.map_err(nl(format!("mtu of {bridge_name}")))?;
        }
        let saved = self
            .shared
            .netlink
            .route_localnet(&bridge_name)
            .map_err(io_at("setting route_localnet on", format!("/proc/sys/net/ipv4/conf/{bridge_name}/route_localnet")))
            .and_then(|_| store::save_network(&self.data_dir, &net))
            .and_then(|_| store::save_ipam(&self.run_dir, &net.id, &ipam));
        if let Err(e) = saved {
            let _ = h.delete_link(&bridge_name).await;
            let _ = store::remove_network(&self.data_dir, &net.id);
            let _ = store::remove_network(&self.run_dir, &net.id);
            return Err(e);
        }
        self.shared
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .networks
            .insert(id.clone(), NetState { net: net.clone(), ipam });
        if let Err(e) = self.sync_firewall().await {
            tracing::warn!(error = %e, "firewall update after network create failed");
        }
        tracing::info!(network = %net.id, subnet = %net.subnet, bridge = %bridge_name, "network created");
        Ok(net)
    }

    /// `docker network rm`: refused for predefined networks and while containers are attached.
    /// Publishes the network's `destroy` event.
    #[tracing::instrument(skip_all, fields(network = %key))]
    pub async fn remove_network(&self, key: &str) -> Result<(), NetworkError> {
        let _ops = self.ops.lock().await;
        let net = self.network(key)?;
        self.remove_locked(&net).await
    }

    async fn remove_locked(&self, net: &Network) -> Result<(), NetworkError> {
        if net.name == DEFAULT_NETWORK || net.driver == "host" || net.driver == "null" {
            return Err(NetworkError::Forbidden(format!("{} is a pre-defined network and cannot be removed", net.name)));
        }
        if net.driver == super::overlay::DRIVER {
            self.remove_overlay(net).await?;
            self.publish_event("destroy", net);
            return Ok(());
        }
        {
            let mut st = self.shared.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let busy = st.sandboxes.values().any(|sb| sb.endpoints.iter().any(|e| e.network_id == net.id));
            if busy {
                return Err(NetworkError::Forbidden(format!(
                    "error while removing network: network {} id {} has active endpoints",
                    net.name, net.id
                )));
            }
            st.networks.remove(&net.id);
        }
        let h = self.shared.netlink.host().map_err(os("netlink connection"))?;
        h.delete_link(&net.bridge).await.map_err(nl(format!("delete {}", net.bridge)))?;
        store::remove_network(&self.data_dir, &net.id)?;
        store::remove_network(&self.run_dir, &net.id)?;
        // Gone from here on (as `prune` removes networks too): its event goes out even when the
        // firewall update below fails (the next update drops the rules left behind).
        self.publish_event("destroy", net);
        self.sync_firewall().await?;
        tracing::info!(network = %net.id, "network removed");
        Ok(())
    }

    /// `docker network prune`: removes the user-defined networks without endpoints; returns their names.
    pub async fn prune_networks(&self, f: &PruneFilters) -> Result<Vec<String>, NetworkError> {
        let _ops = self.ops.lock().await;
        let candidates: Vec<Network> = {
            let st = self.shared.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            st.networks
                .values()
                .map(|s| &s.net)
                .filter(|n| !n.is_default())
                .filter(|n| !st.sandboxes.values().any(|sb| sb.endpoints.iter().any(|e| e.network_id == n.id)))
                .filter(|n| f.labels.iter().all(|l| has_label(&n.labels, l)))
                .filter(|n| !f.labels_not.iter().any(|l| has_label(&n.labels, l)))
                .filter(|n| f.until.is_none_or(|u| chrono::DateTime::parse_from_rfc3339(&n.created).is_ok_and(|c| c.timestamp() < u)))
                .cloned()
                .collect()
        };
        let mut out = vec![];
        for n in candidates {
            match self.remove_locked(&n).await {
                Ok(()) => out.push(n.name),
                Err(e) => tracing::warn!(network = %n.name, error = %e, "prune: not removed"),
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pools_and_overlaps() {
        let p: Vec<String> = pool().map(|n| n.to_string()).collect();
        assert_eq!(p[0], "172.18.0.0/16");
        assert_eq!(p[14], "192.168.0.0/20");
        assert_eq!(p.len(), 30);
        let a: Ipv4Network = "10.1.0.0/16".parse().unwrap();
        assert!(overlaps(&a, &"10.1.2.0/24".parse().unwrap()));
        assert!(overlaps(&"10.0.0.0/8".parse().unwrap(), &a));
        assert!(!overlaps(&a, &"10.2.0.0/16".parse().unwrap()));
    }

    #[test]
    fn names_may_have_spaces() {
        assert!(check_name("my net").is_ok());
        assert!(check_name("  ").is_err());
        assert!(check_name("a/b").is_err());
        assert!(check_name("a\nb").is_err());
    }

    #[test]
    fn labels() {
        let l: BTreeMap<String, String> = [("a".to_string(), "1".to_string())].into();
        assert!(has_label(&l, "a"));
        assert!(has_label(&l, "a=1"));
        assert!(!has_label(&l, "a=2"));
        assert!(!has_label(&l, "b"));
    }
}
