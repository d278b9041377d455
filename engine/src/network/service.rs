//! Starting, stopping and purging the network service, and the default bridge's shortcuts.
use super::netlink::{Netlink, RealNetlink};
use super::{endpoint_id, flags, io_at, nat, netns, nl, os, overlay, store, veth_name};
use super::{Attach, Endpoint, Iptables, NetworkError, NetworkService, RealIptables, SandboxReq, Shared, State, DEFAULT_NETWORK};
use crate::events::EventBus;
use crate::tasks::Tasks;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long [`NetworkService::shutdown`] waits for the service's background tasks.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// The kernel seams of a service: the real ones in the engine, recording fakes in tests.
#[derive(Clone)]
pub(crate) struct Seams {
    pub netlink: Arc<dyn Netlink>,
    pub iptables: Arc<dyn Iptables>,
}

impl Seams {
    /// Netlink and iptables for real, their tasks owned by `tasks`.
    pub(crate) fn real(tasks: &Tasks) -> Seams {
        Seams { netlink: Arc::new(RealNetlink::new(tasks.clone())), iptables: Arc::new(RealIptables) }
    }
}

fn parse_cidr(cfg: &crate::EngineConfig) -> Result<ipnetwork::Ipv4Network, NetworkError> {
    let name = &cfg.bridge_name;
    if name.is_empty() || name.len() > 15 || name.chars().any(|c| c == '/' || c == ':' || c.is_whitespace()) {
        return Err(NetworkError::Setup(format!("invalid bridge name {name:?}")));
    }
    cfg.bridge_cidr.parse().map_err(|e| NetworkError::Setup(format!("invalid bridge address {:?}: {e}", cfg.bridge_cidr)))
}

impl NetworkService {
    /// Ensures the bridges, their addresses, NAT and forwarding rules exist; loads the state from
    /// `<data_root>/network/` and reconciles the host with it (see the module docs). Network
    /// create/destroy events go to `events`.
    #[tracing::instrument(skip_all, fields(bridge = %cfg.bridge_name))]
    pub async fn start(cfg: &crate::EngineConfig, events: EventBus) -> Result<Self, NetworkError> {
        let tasks = Tasks::new("network");
        let seams = Seams::real(&tasks);
        let svc = Self::start_with(cfg, events, tasks, seams).await?;
        svc.refill_netns();
        Ok(svc)
    }

    /// [`NetworkService::start`] over the given seams (fakes in tests).
    pub(crate) async fn start_with(cfg: &crate::EngineConfig, events: EventBus, tasks: Tasks, seams: Seams) -> Result<Self, NetworkError> {
        let cidr = parse_cidr(cfg)?;
        let data_dir = cfg.data_root.join("network");
        let netns_dir = cfg.exec_root.join("netns");
        let run_dir = cfg.exec_root.join("network");
        std::fs::create_dir_all(&data_dir).map_err(io_at("creating", &data_dir))?;
        std::fs::create_dir_all(&netns_dir).map_err(io_at("creating", &netns_dir))?;

        let mut all = store::load_all(&data_dir, &run_dir)?;
        let old = all.iter().position(|s| s.net.name == DEFAULT_NETWORK).map(|i| all.remove(i));
        let mut default = store::default_network(old, &cfg.bridge_name, cidr)?;
        flags::default_options(&mut default.net, &cfg.net);
        store::save_network(&data_dir, &default.net)?;
        let network_id = default.net.id.clone();
        let mut networks = BTreeMap::new();
        networks.insert(network_id.clone(), default);
        networks.extend(all.into_iter().map(|s| (s.net.id.clone(), s)));
        store::settle_ipam(&data_dir, &run_dir, &networks.values().collect::<Vec<_>>())?;

        let mut svc = NetworkService {
            bridge_name: cfg.bridge_name.clone(),
            network_id,
            data_dir,
            run_dir,
            netns_dir,
            shared: Arc::new(Shared {
                state: Mutex::new(State { networks, sandboxes: BTreeMap::new() }),
                live: Mutex::default(),
                fw: Default::default(),
                tag: cfg.bridge_name.clone(),
                remote: Mutex::default(),
                firewall: cfg.net.iptables,
                netlink: seams.netlink,
                iptables: seams.iptables,
                tasks,
            }),
            ops: Default::default(),
            overlay: None,
            events,
            netns_pool: super::netns_pool::NetnsPool::new(),
        };
        if cfg.net.ip_forward {
            enable_ip_forward()?;
        }
        if cfg.net.iptables {
            nat::apply(&*svc.shared.iptables, &nat::plan(&svc.bridge_name)).await?;
        }
        svc.reconcile().await?;
        if let Some(cs) = &cfg.cluster_store {
            svc.overlay = Some(overlay::Slot::start(cs, svc.shared.clone(), svc.data_dir.clone()).await?);
        }
        tracing::info!(network = %svc.network_id, subnet = %cidr, "networks ready");
        Ok(svc)
    }

    /// Called once when the engine stops cleanly: the overlay side is torn down (see
    /// [`overlay`]'s `teardown`), then the background tasks are stopped and awaited (at most
    /// [`SHUTDOWN_GRACE`]).
    pub async fn shutdown(&self) {
        if let Some(ov) = self.overlay_ready() {
            ov.shutdown(&self.shared).await;
        }
        self.shared.tasks.shutdown(SHUTDOWN_GRACE).await;
    }

    /// Default bridge only: a new sandbox with one endpoint on `bridge`. Idempotent: connecting
    /// again keeps the address and rebuilds the veth.
    pub async fn connect(&self, container_id: &str) -> Result<Endpoint, NetworkError> {
        let req = SandboxReq {
            container_id: container_id.to_string(),
            networks: vec![(self.network_id.clone(), Attach::default())],
            ..Default::default()
        };
        let sb = self.setup(&req).await?;
        sb.endpoints.into_iter().next().ok_or_else(|| NetworkError::Setup("no endpoint".into()))
    }

    /// `--network none`: a sandbox without endpoints (a netns with only `lo`, up, as dockerd
    /// gives it). `disconnect` removes it.
    pub async fn isolate(&self, container_id: &str) -> Result<PathBuf, NetworkError> {
        let req = SandboxReq { container_id: container_id.to_string(), ..Default::default() };
        Ok(self.setup(&req).await?.netns)
    }

    /// Removes everything an engine with this configuration created on the host: netns mounts
    /// under `<exec_root>/netns`, the host veths of recorded endpoints, the bridges of its
    /// networks and the iptables chains/jumps. Keeps the state files. Idempotent; for tests and
    /// uninstall.
    pub async fn purge(cfg: &crate::EngineConfig) -> Result<(), NetworkError> {
        let tasks = Tasks::new("network-purge");
        let r = Self::purge_with(cfg, &Seams::real(&tasks)).await;
        tasks.shutdown(SHUTDOWN_GRACE).await;
        r
    }

    /// [`NetworkService::purge`] over the given seams.
    pub(crate) async fn purge_with(cfg: &crate::EngineConfig, seams: &Seams) -> Result<(), NetworkError> {
        let h = seams.netlink.host().map_err(os("netlink connection"))?;
        let data_dir = cfg.data_root.join("network");
        let nets = store::load_all(&data_dir, &cfg.exec_root.join("network")).unwrap_or_default();
        for sb in store::load_sandboxes(&cfg.exec_root.join("network")).unwrap_or_default() {
            for e in &sb.endpoints {
                let veth = veth_name(&endpoint_id(&e.network_id, &sb.container_id));
                h.delete_link(&veth).await.map_err(nl(format!("delete {veth}")))?;
            }
        }
        if let Ok(rd) = std::fs::read_dir(cfg.exec_root.join("netns")) {
            for e in rd.flatten() {
                netns::remove(&e.path()).map_err(io_at("removing netns", e.path()))?;
            }
        }
        for s in &nets {
            h.delete_link(&s.net.bridge).await.map_err(nl(format!("delete {}", s.net.bridge)))?;
        }
        h.delete_link(&cfg.bridge_name).await.map_err(nl(format!("delete {}", cfg.bridge_name)))?;
        Ok(nat::remove(&*seams.iptables, &nat::plan(&cfg.bridge_name)).await?)
    }
}

/// `net.ipv4.ip_forward=1` (written through /proc; never turned off again).
fn enable_ip_forward() -> Result<(), NetworkError> {
    let p = std::path::Path::new("/proc/sys/net/ipv4/ip_forward");
    if std::fs::read_to_string(p).map(|s| s.trim() == "1").unwrap_or(false) {
        return Ok(());
    }
    std::fs::write(p, b"1\n").map_err(|e| NetworkError::Setup(format!("enable ip_forward: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_names_are_stable_and_short() {
        let a = endpoint_id("net1", "c1");
        assert_eq!(a, endpoint_id("net1", "c1"));
        assert_ne!(a, endpoint_id("net2", "c1"));
        assert_eq!(a.len(), 64);
        let v = veth_name(&a);
        assert_eq!(v.len(), 11);
        assert!(v.starts_with("veth"));
    }

    #[test]
    fn rejects_bad_bridge_config() {
        let mut cfg = crate::EngineConfig::with_defaults();
        cfg.bridge_name = "much-too-long-name".into();
        assert!(parse_cidr(&cfg).is_err());
        cfg.bridge_name = "flt0".into();
        cfg.bridge_cidr = "nonsense".into();
        assert!(parse_cidr(&cfg).is_err());
        cfg.bridge_cidr = "10.1.0.1/24".into();
        assert_eq!(parse_cidr(&cfg).unwrap().ip().to_string(), "10.1.0.1");
    }
}
