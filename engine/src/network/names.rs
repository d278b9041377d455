//! What the embedded resolver answers: names of the containers on the asking container's
//! user-defined networks (name, aliases, short id, `name.network`, its legacy links), read from
//! the live state on every query.
use super::store::{EndpointRec, SandboxRec};
use super::{dns, Shared};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// Is `name` (lower-case) one of the names of container `sb` on endpoint `e`?
fn answers_to(sb: &SandboxRec, e: &EndpointRec, name: &str) -> bool {
    sb.name.eq_ignore_ascii_case(name)
        || (name.len() == 12 && sb.container_id.starts_with(name))
        || e.aliases.iter().any(|a| a.eq_ignore_ascii_case(name))
}

impl super::NetworkService {
    /// The id of a container of another node, by name or id (prefix of 12+), with an endpoint on
    /// one of `networks` (ids or names): the target of a `--link` across nodes.
    pub fn remote_container(&self, name: &str, networks: &[&str]) -> Option<String> {
        let ids: Vec<String> = networks.iter().filter_map(|n| self.network(n).ok()).map(|n| n.id).collect();
        let name = name.trim_start_matches('/');
        let remote = self.shared.remote.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        ids.iter()
            .flat_map(|id| remote.get(id).into_iter().flatten())
            .find(|r| r.name == name || r.container_id == name || (name.len() >= 12 && r.container_id.starts_with(name)))
            .map(|r| r.container_id.clone())
    }
}

impl dns::Names for Shared {
    fn lookup(&self, cid: &str, name: &str) -> Option<Vec<Ipv4Addr>> {
        let st = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let me = st.sandboxes.get(cid)?;
        let mut ips = vec![];
        for mine in &me.endpoints {
            let Some(net) = st.networks.get(&mine.network_id).filter(|n| n.net.dns()) else { continue };
            let suffix = format!(".{}", net.net.name.to_ascii_lowercase());
            let short = name.strip_suffix(suffix.as_str());
            // Legacy links of this container: alias -> that container's address here.
            if let Some(target) = me.links.get(name).or_else(|| short.and_then(|s| me.links.get(s))) {
                ips.extend(net.ipam.get(target));
                // Or a container of another node on this overlay network.
                let remote = self.remote.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                ips.extend(remote.get(&mine.network_id).into_iter().flatten().filter(|r| &r.container_id == target).map(|r| r.ip));
            }
            for other in st.sandboxes.values() {
                for e in other.endpoints.iter().filter(|e| e.network_id == mine.network_id) {
                    if answers_to(other, e, name) || short.is_some_and(|s| answers_to(other, e, s)) {
                        ips.extend(net.ipam.get(&other.container_id));
                    }
                }
            }
            // Containers of other nodes on the same overlay network.
            for r in self.remote.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(&mine.network_id).into_iter().flatten() {
                let hit = |n: &str| {
                    r.name.eq_ignore_ascii_case(n)
                        || (n.len() == 12 && r.container_id.starts_with(n))
                        || r.aliases.iter().any(|a| a.eq_ignore_ascii_case(n))
                };
                if hit(name) || short.is_some_and(hit) {
                    ips.push(r.ip);
                }
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        ips.retain(|ip| seen.insert(*ip));
        (!ips.is_empty()).then_some(ips)
    }

    fn reverse(&self, cid: &str, ip: Ipv4Addr) -> Option<String> {
        let st = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let me = st.sandboxes.get(cid)?;
        for mine in &me.endpoints {
            let Some(net) = st.networks.get(&mine.network_id).filter(|n| n.net.dns()) else { continue };
            let owner = net.ipam.allocations().iter().find(|(_, a)| **a == ip).map(|(k, _)| k);
            if let Some(other) = owner.and_then(|o| st.sandboxes.get(o)) {
                return Some(format!("{}.{}", other.name, net.net.name));
            }
            let remote = self.remote.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(r) = remote.get(&mine.network_id).into_iter().flatten().find(|r| r.ip == ip) {
                return Some(format!("{}.{}", r.name, net.net.name));
            }
        }
        None
    }

    fn upstream(&self, cid: &str) -> Vec<SocketAddr> {
        let st = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(sb) = st.sandboxes.get(cid) else { return vec![] };
        // A container only on `--internal` networks has no way out, DNS included (no data
        // leaves through queries for names an outside server answers).
        let internal_only = sb.endpoints.iter().all(|e| st.networks.get(&e.network_id).is_some_and(|n| n.net.internal));
        if internal_only {
            return vec![];
        }
        let servers: Vec<IpAddr> = sb.dns.upstream.clone();
        servers.into_iter().map(|ip| SocketAddr::new(ip, 53)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::super::{store, State};
    use super::*;
    use dns::Names;
    use std::collections::BTreeMap;
    use std::path::PathBuf;
    use std::sync::Mutex;

    fn sandbox(id: &str, name: &str, net: &str, aliases: &[&str]) -> SandboxRec {
        SandboxRec {
            container_id: id.into(),
            name: name.into(),
            netns: PathBuf::from("/nope"),
            endpoints: vec![store::EndpointRec {
                network_id: net.into(),
                ifname: "eth0".into(),
                aliases: aliases.iter().map(|s| s.to_string()).collect(),
                mac: String::new(),
                default_route: true,
            }],
            ports: vec![],
            dns: store::DnsConf { upstream: vec!["10.0.0.53".parse().unwrap()] },
            links: BTreeMap::new(),
            netns_ino: 0,
        }
    }

    #[test]
    fn names_resolve_on_shared_user_networks_only() {
        let mut st = State::default();
        let mut add_net = |id: &str, name: &str, cidr: &str| {
            let mut s = store::default_network(None, "b", cidr.parse().unwrap()).unwrap();
            s.net.id = id.into();
            s.net.name = name.into();
            st.networks.insert(id.into(), s);
        };
        add_net("n1", "appnet", "10.77.0.1/24");
        add_net("n2", "other", "10.78.0.1/24");
        add_net("n0", "bridge", "10.79.0.1/24");
        let web_id = format!("{}{}", "ab".repeat(6), "0".repeat(52));
        for (id, name, net, aliases) in [
            (web_id.as_str(), "web", "n1", &["www"][..]),
            ("c2", "client", "n1", &[][..]),
            ("c3", "lonely", "n2", &[][..]),
            ("c4", "b1", "n0", &[][..]),
            ("c5", "b2", "n0", &[][..]),
        ] {
            st.networks.get_mut(net).unwrap().ipam.allocate(id).unwrap();
            st.sandboxes.insert(id.into(), sandbox(id, name, net, aliases));
        }
        let shared = Shared {
            state: Mutex::new(st),
            live: Mutex::default(),
            fw: Default::default(),
            tag: "t".into(),
            remote: Mutex::default(),
            firewall: true,
            netlink: std::sync::Arc::new(crate::network::fake::FakeNetlink::default()),
            iptables: std::sync::Arc::new(crate::network::fake::FakeIptables::default()),
            tasks: crate::tasks::Tasks::new("test"),
        };
        let web = vec!["10.77.0.2".parse::<Ipv4Addr>().unwrap()];
        assert_eq!(shared.lookup("c2", "web"), Some(web.clone()));
        assert_eq!(shared.lookup("c2", "www"), Some(web.clone()));
        assert_eq!(shared.lookup("c2", "web.appnet"), Some(web.clone()));
        assert_eq!(shared.lookup("c2", "abababababab"), Some(web.clone()));
        assert_eq!(shared.lookup("c3", "web"), None, "other network");
        assert_eq!(shared.lookup("c4", "b2"), None, "no names on the default bridge");
        assert_eq!(shared.lookup("c2", "example.com"), None);
        assert_eq!(shared.reverse("c2", web[0]), Some("web.appnet".into()));
        assert_eq!(shared.upstream("c2"), vec!["10.0.0.53:53".parse::<SocketAddr>().unwrap()]);
        // Only on internal networks: nothing is forwarded.
        shared.state.lock().unwrap().networks.get_mut("n2").unwrap().net.internal = true;
        assert_eq!(shared.upstream("c3"), vec![]);
        assert_eq!(shared.upstream("c2").len(), 1);
    }
}
