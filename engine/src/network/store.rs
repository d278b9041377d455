//! Network records on disk, `<data-root>/network/<network id>/network.json` (written atomically
//! and durably); their IPAM state, `<exec-root>/network/<network id>/ipam.json`; one sandbox
//! record per container with a network namespace of ours:
//! `<exec-root>/network/sandboxes/<container id>.json` ([`SandboxRec`]).
//!
//! Allocations and sandboxes only mean something while the containers' netns (under the exec
//! root) exist, so they live beside them, written atomically without fsync: an engine crash
//! keeps them (the page cache), a reboot takes them with the netns, and the start-up reconcile
//! releases whatever has no netns any more. Under the exec root (a tmpfs, as `/run`), an
//! allocation costs no disk journal on every start and exit: on ext4 the atomic replace of a file
//! starts the write of its blocks (`auto_da_alloc`), ~0.1 ms, more while the start mounts its
//! rootfs on the same disk. An `ipam.json` left under the data root by an older engine is read
//! once, when the exec root has none, and removed.
use super::ipam::Ipam;
use super::{io_at, NetworkError};
use crate::fsutil;
use ipnetwork::Ipv4Network;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

/// Name of the default network, as Docker calls it.
pub const DEFAULT_NETWORK: &str = "bridge";

/// A network: what `docker network inspect` shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Network {
    pub id: String,
    pub name: String,
    /// Always `bridge` for now.
    pub driver: String,
    /// Subnet in CIDR form, e.g. `172.31.0.0/16`.
    pub subnet: String,
    pub gateway: Ipv4Addr,
    /// Linux bridge device of this network.
    pub bridge: String,
    /// RFC 3339 creation time.
    pub created: String,
    /// `--ip-range` (CIDR), if given.
    #[serde(default)]
    pub ip_range: Option<String>,
    /// `--internal`: no route to or from the outside.
    #[serde(default)]
    pub internal: bool,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Driver options (`-o`), as given.
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    /// The subnet was given by the user (`--subnet`): `--ip` is allowed, inspect shows it.
    #[serde(default)]
    pub user_subnet: bool,
    /// `--attachable` (overlay networks).
    #[serde(default)]
    pub attachable: bool,
}

impl Network {
    /// The default network `bridge` (no embedded DNS, legacy links).
    pub fn is_default(&self) -> bool {
        self.name == DEFAULT_NETWORK
    }
    /// Containers on user-defined networks resolve each other by name.
    pub fn dns(&self) -> bool {
        !self.is_default()
    }
    fn opt_false(&self, key: &str) -> bool {
        // `flags::check_bridge_options` refuses any value that is not a boolean.
        self.options.get(key).is_some_and(|v| super::flags::go_bool(v) == Some(false))
    }
    /// Outgoing traffic is masqueraded (`com.docker.network.bridge.enable_ip_masquerade`).
    pub fn masquerade(&self) -> bool {
        !self.internal && !self.opt_false("com.docker.network.bridge.enable_ip_masquerade")
    }
    /// Containers on this network talk to each other (`com.docker.network.bridge.enable_icc`).
    pub fn icc(&self) -> bool {
        !self.opt_false(super::flags::OPT_ICC)
    }
}

/// One of a container's interfaces, as persisted in its sandbox record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointRec {
    pub network_id: String,
    /// Interface name inside the container (`eth0`, `eth1`, …).
    pub ifname: String,
    /// Network-scoped aliases (`--network-alias`, `connect --alias`).
    #[serde(default)]
    pub aliases: Vec<String>,
    pub mac: String,
    /// This endpoint carries the container's default route.
    #[serde(default)]
    pub default_route: bool,
}

/// A published port as set up: `host_ip:host_port` (0.0.0.0 = every address) to the
/// container's `container_ip:container_port`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PortMapping {
    /// `tcp` or `udp`.
    pub proto: String,
    pub container_port: u16,
    pub host_ip: Ipv4Addr,
    pub host_port: u16,
    pub container_ip: Ipv4Addr,
}

/// DNS settings of a container that has the embedded resolver.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsConf {
    /// Where names that are not containers' go (`--dns`, else the host's nameservers).
    #[serde(default)]
    pub upstream: Vec<IpAddr>,
}

/// Everything the network service set up for one container (persisted, so an engine restart
/// finds its endpoints, published ports and resolver again).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxRec {
    pub container_id: String,
    /// Container name (without `/`): the DNS name on user-defined networks.
    pub name: String,
    pub netns: PathBuf,
    /// In attach order; keyed by network id.
    #[serde(default)]
    pub endpoints: Vec<EndpointRec>,
    #[serde(default)]
    pub ports: Vec<PortMapping>,
    #[serde(default)]
    pub dns: DnsConf,
    /// Legacy links on user-defined networks: alias -> container id (resolved by this container only).
    #[serde(default)]
    pub links: BTreeMap<String, String>,
    /// Inode of the netns (0: unknown), to find it again through a process in it when its
    /// mount is gone (see [`super::netns::adopt`]).
    #[serde(default)]
    pub netns_ino: u64,
}

fn sandbox_dir(root: &Path) -> PathBuf {
    root.join("sandboxes")
}

pub fn save_sandbox(root: &Path, sb: &SandboxRec) -> Result<(), NetworkError> {
    let path = sandbox_dir(root).join(format!("{}.json", sb.container_id));
    fsutil::write_runtime_json(&path, sb).map_err(io_at("writing", &path))
}

pub fn remove_sandbox(root: &Path, container_id: &str) -> Result<(), NetworkError> {
    let path = sandbox_dir(root).join(format!("{container_id}.json"));
    match std::fs::remove_file(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_at("removing", path)(e)),
        _ => Ok(()),
    }
}

/// Every sandbox record; unreadable ones are skipped with a warning.
pub fn load_sandboxes(root: &Path) -> Result<Vec<SandboxRec>, NetworkError> {
    let dir = sandbox_dir(root);
    let rd = match std::fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(io_at("reading", dir)(e)),
    };
    fsutil::remove_stale_tmp(&dir).map_err(io_at("cleaning", &dir))?;
    let mut out = vec![];
    for e in rd.flatten() {
        let p = e.path();
        if p.extension().is_none_or(|x| x != "json") {
            continue;
        }
        match fsutil::read_json::<SandboxRec>(&p) {
            Ok(Some(sb)) => out.push(sb),
            Ok(None) => {}
            Err(err) => tracing::warn!(file = %p.display(), error = %err, "skipping unreadable sandbox record"),
        }
    }
    Ok(out)
}

/// Removes a network's directory (records and IPAM state).
pub fn remove_network(root: &Path, id: &str) -> Result<(), NetworkError> {
    let dir = net_dir(root, id);
    match std::fs::remove_dir_all(&dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_at("removing", dir)(e)),
        _ => Ok(()),
    }
}

/// A network with its allocations, as held in memory.
#[derive(Debug, Clone)]
pub struct NetState {
    pub net: Network,
    pub ipam: Ipam,
}

fn net_dir(root: &Path, id: &str) -> PathBuf {
    root.join(id)
}

/// Loads every network under `root` (`<data-root>/network`) with its IPAM state from under
/// `run` (`<exec-root>/network`; else an older engine's under `root`). Unreadable entries are
/// skipped with a warning.
pub fn load_all(root: &Path, run: &Path) -> Result<Vec<NetState>, NetworkError> {
    let mut out = vec![];
    let rd = match std::fs::read_dir(root) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(io_at("reading", root)(e)),
    };
    for entry in rd.flatten() {
        let dir = entry.path();
        if !dir.is_dir() {
            continue;
        }
        fsutil::remove_stale_tmp(&dir).map_err(io_at("cleaning", &dir))?;
        let loaded = (|| -> Result<Option<NetState>, NetworkError> {
            let net_file = dir.join("network.json");
            let Some(net) = fsutil::read_json::<Network>(&net_file).map_err(io_at("reading", &net_file))? else { return Ok(None) };
            let ipam_file =
                [ipam_path(run, &net.id), dir.join(IPAM_FILE)].into_iter().find(|p| p.exists()).unwrap_or_else(|| ipam_path(run, &net.id));
            let ipam = match fsutil::read_json::<Ipam>(&ipam_file).map_err(io_at("reading", &ipam_file))? {
                Some(mut ipam) => {
                    ipam.reindex();
                    ipam
                }
                None => new_ipam(&net)?,
            };
            Ok(Some(NetState { net, ipam }))
        })();
        match loaded {
            Ok(Some(s)) => out.push(s),
            Ok(None) => {}
            Err(e) => tracing::warn!(dir = %dir.display(), error = %e, "skipping unreadable network"),
        }
    }
    Ok(out)
}

pub fn save_network(root: &Path, net: &Network) -> Result<(), NetworkError> {
    let path = net_dir(root, &net.id).join("network.json");
    fsutil::write_json(&path, net).map_err(io_at("writing", &path))
}

/// The IPAM state file of network `id` under `run` (`<exec-root>/network`).
fn ipam_path(run: &Path, id: &str) -> PathBuf {
    net_dir(run, id).join(IPAM_FILE)
}

const IPAM_FILE: &str = "ipam.json";

/// Writes the IPAM state of network `id` under `run` (`<exec-root>/network`).
pub fn save_ipam(run: &Path, id: &str, ipam: &Ipam) -> Result<(), NetworkError> {
    let path = ipam_path(run, id);
    fsutil::write_runtime_json(&path, ipam).map_err(io_at("writing", &path))
}

/// After [`load_all`]: the IPAM state an older engine kept under `root` is written under `run`
/// (as loaded) and removed, and the state of networks that are gone is removed from under `run`.
pub fn settle_ipam(root: &Path, run: &Path, nets: &[&NetState]) -> Result<(), NetworkError> {
    for s in nets {
        let legacy = net_dir(root, &s.net.id).join(IPAM_FILE);
        if legacy.exists() {
            save_ipam(run, &s.net.id, &s.ipam)?;
            std::fs::remove_file(&legacy).map_err(io_at("removing", legacy))?;
        }
    }
    let Ok(rd) = std::fs::read_dir(run) else { return Ok(()) };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if e.path().join(IPAM_FILE).exists() && !nets.iter().any(|s| s.net.id == name) {
            remove_network(run, &name)?;
        }
    }
    Ok(())
}

/// A fresh allocator for `net` (its subnet, gateway and `--ip-range`).
pub fn new_ipam(net: &Network) -> Result<Ipam, NetworkError> {
    let mut ipam = Ipam::new(parse_subnet(&net.subnet)?, net.gateway)?;
    if let Some(r) = &net.ip_range {
        ipam = ipam.with_range(parse_subnet(r)?)?;
    }
    Ok(ipam)
}

/// Parses `a.b.c.d/n` into its network (host bits cleared).
pub fn parse_subnet(s: &str) -> Result<Ipv4Network, NetworkError> {
    let n: Ipv4Network = s.parse().map_err(|e| NetworkError::Setup(format!("invalid subnet {s:?}: {e}")))?;
    Ipv4Network::new(n.network(), n.prefix()).map_err(|e| NetworkError::Setup(format!("invalid subnet {s:?}: {e}")))
}

/// The default network for a bridge `name` with address `cidr` (gateway/prefix): reuses the
/// stored record `old` (keeping its id and, when the subnet did not change, its allocations).
pub fn default_network(old: Option<NetState>, bridge: &str, cidr: Ipv4Network) -> Result<NetState, NetworkError> {
    let subnet =
        Ipv4Network::new(cidr.network(), cidr.prefix()).map_err(|e| NetworkError::Setup(format!("invalid bridge address {cidr}: {e}")))?;
    let gateway = cidr.ip();
    match old {
        Some(mut s) if s.net.subnet == subnet.to_string() && s.net.gateway == gateway => {
            s.net.bridge = bridge.to_string();
            Ok(s)
        }
        old => {
            if let Some(o) = &old {
                if !o.ipam.allocations().is_empty() {
                    tracing::warn!(old = %o.net.subnet, new = %subnet, "bridge subnet changed; dropping allocations");
                }
            }
            let (id, created) = match old {
                Some(o) => (o.net.id, o.net.created),
                None => (crate::ids::new_id(), chrono::Utc::now().to_rfc3339()),
            };
            let net = Network {
                id,
                name: DEFAULT_NETWORK.into(),
                driver: "bridge".into(),
                subnet: subnet.to_string(),
                gateway,
                bridge: bridge.to_string(),
                created,
                ip_range: None,
                internal: false,
                labels: BTreeMap::new(),
                options: BTreeMap::new(),
                user_subnet: false,
                attachable: false,
            };
            Ok(NetState { ipam: Ipam::new(subnet, gateway)?, net })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_keep_allocations_when_subnet_unchanged() {
        let (d, run) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let mut s = default_network(None, "flt9", "10.7.0.1/24".parse().unwrap()).unwrap();
        assert_eq!(s.net.subnet, "10.7.0.0/24");
        assert_eq!(s.net.name, "bridge");
        let ip = s.ipam.allocate("c1").unwrap();
        save_network(d.path(), &s.net).unwrap();
        save_ipam(run.path(), &s.net.id, &s.ipam).unwrap();
        assert!(!d.path().join(&s.net.id).join(IPAM_FILE).exists(), "IPAM state under the data root");

        let mut all = load_all(d.path(), run.path()).unwrap();
        assert_eq!(all.len(), 1);
        let again = default_network(all.pop(), "flt9", "10.7.0.1/24".parse().unwrap()).unwrap();
        assert_eq!(again.net, s.net);
        assert_eq!(again.ipam.get("c1"), Some(ip));

        let moved = default_network(Some(again), "flt9", "10.8.0.1/24".parse().unwrap()).unwrap();
        assert_eq!(moved.net.id, s.net.id);
        assert_eq!(moved.net.subnet, "10.8.0.0/24");
        assert!(moved.ipam.allocations().is_empty());
    }

    #[test]
    fn sandboxes_roundtrip() {
        let d = tempfile::tempdir().unwrap();
        let sb = SandboxRec {
            container_id: "c1".into(),
            name: "web".into(),
            netns: "/x/c1".into(),
            endpoints: vec![EndpointRec {
                network_id: "n".into(),
                ifname: "eth0".into(),
                aliases: vec!["w".into()],
                mac: "02:42:0a:00:00:02".into(),
                default_route: true,
            }],
            ports: vec![],
            dns: DnsConf::default(),
            links: BTreeMap::new(),
            netns_ino: 0,
        };
        save_sandbox(d.path(), &sb).unwrap();
        // A sandbox directory is not mistaken for a network.
        assert!(load_all(d.path(), d.path()).unwrap().is_empty());
        assert_eq!(load_sandboxes(d.path()).unwrap(), vec![sb]);
        remove_sandbox(d.path(), "c1").unwrap();
        remove_sandbox(d.path(), "c1").unwrap();
        assert!(load_sandboxes(d.path()).unwrap().is_empty());
    }

    #[test]
    fn missing_root_is_empty() {
        let d = tempfile::tempdir().unwrap();
        assert!(load_all(&d.path().join("nope"), &d.path().join("nope")).unwrap().is_empty());
    }

    /// An older engine kept the IPAM state under the data root: read once, then under the exec
    /// root only. Networks that are gone leave no state there.
    #[test]
    fn ipam_state_moves_from_the_data_root_to_the_exec_root() {
        let (d, run) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let mut s = default_network(None, "flt9", "10.7.0.1/24".parse().unwrap()).unwrap();
        let ip = s.ipam.allocate("c1").unwrap();
        save_network(d.path(), &s.net).unwrap();
        let legacy = d.path().join(&s.net.id).join(IPAM_FILE);
        fsutil::write_runtime_json(&legacy, &s.ipam).unwrap();
        let mut gone = s.clone();
        gone.net.id = "f".repeat(64);
        save_ipam(run.path(), &gone.net.id, &gone.ipam).unwrap();

        let all = load_all(d.path(), run.path()).unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].ipam.get("c1"), Some(ip));
        settle_ipam(d.path(), run.path(), &all.iter().collect::<Vec<_>>()).unwrap();
        assert!(!legacy.exists(), "the data root's IPAM state is left");
        assert!(ipam_path(run.path(), &s.net.id).exists());
        assert!(!run.path().join(&gone.net.id).exists(), "the state of a network that is gone is left");
        let again = load_all(d.path(), run.path()).unwrap();
        assert_eq!(again[0].ipam.get("c1"), Some(ip));
    }
}
