//! Reading the state: networks, endpoints and published ports, as the API and the container
//! service ask for them.
use super::store::{self, SandboxRec};
use super::{endpoint_id, netns, veth_name, Endpoint, Network, NetworkError, NetworkService, PortMapping, State};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;

impl NetworkService {
    /// Subnet (CIDR) and gateway of the default bridge, for `docker network inspect bridge`/info.
    pub fn subnet(&self) -> (String, Ipv4Addr) {
        let st = self.shared.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        st.networks.get(&self.network_id).map(|s| (s.net.subnet.clone(), s.net.gateway)).unwrap_or((String::new(), Ipv4Addr::UNSPECIFIED))
    }

    /// The default network's record.
    pub fn default_network(&self) -> Network {
        let st = self.shared.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        st.networks.get(&self.network_id).map(|s| s.net.clone()).expect("default network is always present")
    }

    /// All networks, the predefined `host` and `none` included (for `docker network ls`).
    pub fn networks(&self) -> Vec<Network> {
        let mut out: Vec<Network> =
            self.shared.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner).networks.values().map(|s| s.net.clone()).collect();
        out.extend(self.predefined());
        out
    }

    /// The pseudo networks `host` and `none` (stable ids derived from the default network's).
    pub fn predefined(&self) -> Vec<Network> {
        let created = self.default_network().created;
        [("host", "host"), ("none", "null")]
            .into_iter()
            .map(|(name, driver)| Network {
                id: hex::encode(Sha256::digest(format!("{}/{name}", self.network_id).as_bytes())),
                name: name.into(),
                driver: driver.into(),
                subnet: String::new(),
                gateway: Ipv4Addr::UNSPECIFIED,
                bridge: String::new(),
                created: created.clone(),
                ip_range: None,
                internal: false,
                labels: BTreeMap::new(),
                options: BTreeMap::new(),
                user_subnet: false,
                attachable: false,
            })
            .collect()
    }

    /// A network by id, name or unique id prefix (Docker's order).
    pub fn network(&self, id_or_name: &str) -> Result<Network, NetworkError> {
        let all = self.networks();
        if let Some(n) = all.iter().find(|n| n.id == id_or_name).or_else(|| all.iter().find(|n| n.name == id_or_name)) {
            return Ok(n.clone());
        }
        let mut hits = all.iter().filter(|n| !id_or_name.is_empty() && n.id.starts_with(id_or_name));
        match (hits.next(), hits.next()) {
            (Some(n), None) => Ok(n.clone()),
            (Some(_), Some(_)) => Err(NetworkError::NotFound(format!("{id_or_name} (multiple networks match)"))),
            _ => Err(NetworkError::NotFound(id_or_name.to_string())),
        }
    }

    /// The first endpoint (the one on the container's primary network) of a container, if any.
    pub fn endpoint(&self, container_id: &str) -> Option<Endpoint> {
        self.sandbox_endpoints(container_id).into_iter().next()
    }

    /// Every endpoint of a container, in attach order.
    pub fn sandbox_endpoints(&self, container_id: &str) -> Vec<Endpoint> {
        let st = self.shared.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(sb) = st.sandboxes.get(container_id) else { return vec![] };
        sb.endpoints.iter().filter_map(|e| self.make_endpoint(&st, sb, e)).collect()
    }

    /// The published ports of a running container.
    pub fn ports(&self, container_id: &str) -> Vec<PortMapping> {
        let st = self.shared.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        st.sandboxes.get(container_id).map(|s| s.ports.clone()).unwrap_or_default()
    }

    /// Containers with an endpoint on the default network, with their endpoints.
    pub fn endpoints(&self) -> Vec<(String, Endpoint)> {
        self.containers_of(&self.network_id).into_iter().map(|(id, _, ep)| (id, ep)).collect()
    }

    /// Containers with an endpoint on network `network_id`: (container id, name, endpoint).
    pub fn containers_of(&self, network_id: &str) -> Vec<(String, String, Endpoint)> {
        let st = self.shared.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut out = vec![];
        for sb in st.sandboxes.values() {
            for e in sb.endpoints.iter().filter(|e| e.network_id == network_id) {
                if let Some(ep) = self.make_endpoint(&st, sb, e) {
                    out.push((sb.container_id.clone(), sb.name.clone(), ep));
                }
            }
        }
        out
    }

    /// `<exec_root>/netns/<container id>`.
    pub fn netns_path(&self, container_id: &str) -> PathBuf {
        netns::path_in(&self.netns_dir, container_id)
    }

    fn make_endpoint(&self, st: &State, sb: &SandboxRec, e: &store::EndpointRec) -> Option<Endpoint> {
        let s = st.networks.get(&e.network_id)?;
        let ip = s.ipam.get(&sb.container_id)?;
        let endpoint_id = endpoint_id(&s.net.id, &sb.container_id);
        Some(Endpoint {
            netns: sb.netns.clone(),
            ip,
            prefix_len: s.ipam.subnet().prefix(),
            gateway: s.net.gateway,
            mac: e.mac.clone(),
            veth: veth_name(&endpoint_id),
            network_id: s.net.id.clone(),
            endpoint_id,
            network_name: s.net.name.clone(),
            ifname: e.ifname.clone(),
            aliases: e.aliases.clone(),
        })
    }
}
