//! What the scheduler sees of a node: a plain snapshot with no network handle and no lock.
//! The cluster rebuilds a node's snapshot only when that node changes.
use std::collections::BTreeMap;
use std::sync::Arc;

/// A host port binding (`-p [ip:]host:container/proto`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PortBinding {
    /// "" or "0.0.0.0" / "::" mean every address.
    pub host_ip: String,
    pub host_port: String,
    /// `80/tcp`
    pub container_port: String,
}

impl PortBinding {
    /// Every binding of a `PortBindings` map (`HostConfig`), in the map's order.
    pub fn all_of(map: &crate::cluster::model::PortMap) -> Vec<PortBinding> {
        let mut out = vec![];
        for (cport, list) in map {
            for b in list.iter().flatten() {
                out.push(PortBinding { host_ip: b.host_ip.clone(), host_port: b.host_port.clone(), container_port: cport.clone() });
            }
        }
        out
    }

    pub fn any_ip(&self) -> bool {
        matches!(self.host_ip.as_str(), "" | "0.0.0.0" | "::")
    }
}

/// A container as placement needs it (running, stopped or pending).
#[derive(Debug, Clone, Default)]
pub struct ContainerView {
    /// Shared with the key of the node's record (`cluster/engine.rs`).
    pub id: Arc<str>,
    /// Names without the leading `/` (shared with the node's record).
    pub names: Box<[Arc<str>]>,
    /// The image as asked for (`busybox`, `busybox:latest`, …); shared (`labels::intern`).
    pub image: Arc<str>,
    pub image_id: Arc<str>,
    pub labels: super::Labels,
    /// CPUs reserved (Swarm's meaning of CpuShares).
    pub cpus: i64,
    pub memory: i64,
    pub port_bindings: Vec<PortBinding>,
    /// `80/tcp`, used for host-network port conflicts.
    pub exposed_ports: Vec<String>,
    pub network_mode: Arc<str>,
    /// A reservation for a create still in flight.
    pub pending: bool,
}

impl ContainerView {
    pub fn host_network(&self) -> bool {
        &*self.network_mode == "host"
    }
}

/// An image on a node.
#[derive(Debug, Clone, Default)]
pub struct ImageView {
    pub id: String,
    pub repo_tags: Vec<String>,
}

impl ImageView {
    /// Strings an `image==` affinity is matched against: the ID (full and short), every tag, and
    /// every repository name without its tag.
    pub fn match_candidates(&self) -> impl Iterator<Item = &str> {
        let short = self.id.strip_prefix("sha256:").unwrap_or(&self.id);
        let short = &short[..short.len().min(12)];
        [self.id.as_str(), short].into_iter().chain(self.repo_tags.iter().flat_map(|t| [t.as_str(), repo_of(t)]))
    }
}

/// `registry:5000/a/b:tag` -> `registry:5000/a/b` (a `:` after the last `/` starts the tag).
pub fn repo_of(reference: &str) -> &str {
    let reference = reference.split('@').next().unwrap_or(reference);
    let last = reference.rfind('/').map_or(0, |i| i + 1);
    match reference[last..].find(':') {
        Some(i) => &reference[..last + i],
        None => reference,
    }
}

/// One node.
#[derive(Debug, Clone, Default)]
pub struct NodeView {
    /// Daemon ID (the address while pending).
    pub id: String,
    pub name: String,
    /// `ip:port` from discovery.
    pub addr: String,
    pub ip: String,
    /// Daemon labels plus built-ins (storagedriver, kernelversion, operatingsystem, ostype).
    pub labels: BTreeMap<String, String>,
    /// Every container, all states, pending reservations included.
    pub containers: Vec<Arc<ContainerView>>,
    pub images: Arc<Vec<ImageView>>,
    /// Capacity with overcommit applied.
    pub total_cpus: i64,
    pub total_memory: i64,
    pub used_cpus: i64,
    pub used_memory: i64,
    /// 0..=100: 100 minus the share of the failure budget used; 0 when not healthy.
    pub health: i64,
    pub healthy: bool,
    /// The `containerslots` label, parsed once per snapshot.
    pub slots: std::sync::OnceLock<Option<usize>>,
}

impl NodeView {
    /// Sums the reservations of `containers` into `used_*`.
    pub fn recount(&mut self) {
        self.used_cpus = self.containers.iter().map(|c| c.cpus).sum();
        self.used_memory = self.containers.iter().map(|c| c.memory).sum();
    }

    /// Finds a container by full or 12+ char ID prefix, or by name.
    pub fn container(&self, id_or_name: &str) -> Option<&ContainerView> {
        let n = id_or_name.trim_start_matches('/');
        self.containers
            .iter()
            .find(|c| &*c.id == n || c.names.iter().any(|x| &**x == n))
            .or_else(|| if n.len() >= 12 { self.containers.iter().find(|c| c.id.starts_with(n)) } else { None })
            .map(|c| c.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn repo_names() {
        assert_eq!(repo_of("busybox:latest"), "busybox");
        assert_eq!(repo_of("localhost:5000/a/b:1"), "localhost:5000/a/b");
        assert_eq!(repo_of("localhost:5000/a"), "localhost:5000/a");
        assert_eq!(repo_of("a@sha256:00"), "a");
    }
    #[test]
    fn image_candidates() {
        let i = ImageView { id: "sha256:0123456789abcdef".into(), repo_tags: vec!["busybox:latest".into()] };
        let c: Vec<_> = i.match_candidates().collect();
        assert!(c.contains(&"0123456789ab") && c.contains(&"busybox") && c.contains(&"busybox:latest"));
    }
}
