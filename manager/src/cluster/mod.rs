//! The cluster: the nodes discovery reports, what the manager knows of each, container lookup
//! across nodes, and placement with pending reservations.
pub mod client;
pub(crate) mod create;
pub mod engine;
pub mod events;
mod lookup;
pub mod model;
pub mod packed;
pub mod pool;
pub mod ps;
mod refresh;
pub mod resources;
pub mod source;
pub mod status;
pub mod stream;
pub mod view;
mod views;

pub use client::{NodeClient, NodeError, Transport};
pub use engine::{Engine, Health, NodeInfo};
pub use events::EventHub;
pub use refresh::INSPECT_CONCURRENCY;
pub use source::{NodeSource, StaticNodes};
pub use status::{NodeStatus, Summary};
pub use view::Container;

use crate::ha::store::Store;
use crate::ha::Ha;
use crate::metrics::Metrics;
use crate::scheduler::{RequestError, SchedError, Scheduler};
use discovery::Entry;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("No such container: {0}")]
    NoSuchContainer(String),
    #[error("No such exec instance: {0}")]
    NoSuchExec(String),
    #[error("No such image: {0}")]
    NoSuchImage(String),
    #[error("Conflict. The container name \"/{name}\" is already in use by container \"{id}\". You have to remove (or rename) that container to be able to reuse that name.")]
    NameInUse { name: String, id: String },
    #[error(transparent)]
    Sched(#[from] SchedError),
    #[error(transparent)]
    Request(#[from] RequestError),
    #[error(transparent)]
    Node(#[from] NodeError),
    #[error("Container {0} is on node {1}, which is unhealthy")]
    NodeUnhealthy(String, String),
    #[error("{0}")]
    InvalidParameter(String),
    /// This manager lost its primary role while the request was served.
    #[error("this manager is not the primary (its leader lease ended); retry through any manager")]
    NotPrimary,
    #[error(transparent)]
    Store(#[from] crate::ha::store::StoreError),
}

/// How long the manager remembers which node runs an exec instance (dockerd forgets exited
/// ones after minutes; a client asking later gets "No such exec instance").
pub const EXEC_TTL: Duration = Duration::from_secs(3600);
/// Exec records kept before expired ones are pruned.
const EXEC_PRUNE_AT: usize = 10_000;

/// `--strategy`, `--filter`, `--cluster-opt`, `--engine-*`.
#[derive(Debug, Clone)]
pub struct ClusterOpts {
    pub strategy: String,
    /// Empty: the default chain.
    pub filters: Vec<String>,
    /// `swarm.overcommit` (0.05 = 5 %).
    pub overcommit: f64,
    /// `swarm.createretry`.
    pub create_retry: u32,
    pub refresh_min: Duration,
    pub refresh_max: Duration,
    pub failure_retry: u32,
    /// Connections to nodes open at once, all nodes together (event streams included).
    pub max_connections: usize,
    /// `--heartbeat`: paces the retries of a broken node event stream (each failed retry counts
    /// against the node's health) and the rescheduling watchdog's checks.
    pub heartbeat: Duration,
    /// `swarm --experimental`: reported by `/info` and `/version`.
    pub experimental: bool,
    /// Nodes learnt at once, all nodes together: a validation (`/info`, `/version`, the
    /// containers listed and each inspected) and any refresh that has containers to inspect
    /// hold one slot, so at most this many times [`INSPECT_CONCURRENCY`] inspects are
    /// in flight however many nodes join at once.
    pub max_learning: usize,
}

impl Default for ClusterOpts {
    fn default() -> Self {
        ClusterOpts {
            strategy: "spread".into(),
            filters: vec![],
            overcommit: 0.05,
            create_retry: 0,
            refresh_min: Duration::from_secs(30),
            refresh_max: Duration::from_secs(60),
            failure_retry: 3,
            max_connections: pool::default_max_open(),
            heartbeat: Duration::from_secs(60),
            experimental: false,
            max_learning: 64,
        }
    }
}

/// State shared by the API, the node tasks and the discovery watcher.
pub struct Shared {
    pub opts: ClusterOpts,
    pub scheduler: Scheduler,
    pub hub: EventHub,
    pub metrics: Metrics,
    transport: Arc<Transport>,
    /// Slots of nodes being learnt (see [`ClusterOpts::max_learning`]).
    learning: Arc<tokio::sync::Semaphore>,
    engines: RwLock<BTreeMap<String, Arc<Engine>>>,
    /// Daemon ID -> the addresses of the nodes that claimed it at validation: a validation's
    /// duplicate-ID check without a visit to every node.
    validated_ids: Mutex<HashMap<String, Vec<String>>>,
    /// Exec ID -> node address and when it was recorded (entries expire: [`EXEC_TTL`]).
    execs: Mutex<HashMap<String, (String, Instant)>>,
    /// Held while a node is chosen and its reservation recorded.
    place: Mutex<()>,
    pending_seq: std::sync::atomic::AtomicU64,
    dirty: Arc<views::Dirty>,
    view_cache: Mutex<crate::scheduler::NodeIndex>,
    status_order: Mutex<status::StatusOrder>,
    shutdown: CancellationToken,
    /// Primary or replica.
    pub ha: Ha,
    /// Records of reschedulable containers.
    pub(crate) records: Store,
    /// Discovery has delivered its first node set (until then an absent node is not a failed one).
    discovered: AtomicBool,
}

/// A cheap handle on the cluster.
#[derive(Clone)]
pub struct Cluster(pub Arc<Shared>);

impl std::ops::Deref for Cluster {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl Shared {
    /// Claims daemon ID `id` for the node at `addr` (dropping its claim on `old`, the ID it
    /// had): the address of another node of the cluster that holds it, if any. Checked and
    /// claimed in one step, so two nodes validating at once cannot both take one ID.
    pub(crate) fn claim_id(&self, old: &str, id: &str, addr: &str) -> Result<(), String> {
        let mut ids = self.validated_ids.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(addrs) = ids.get(id) {
            // A claim outlives nothing: nodes that left discovery drop theirs (`sync`).
            let engines = self.engines.read().unwrap_or_else(|p| p.into_inner());
            if let Some(other) = addrs.iter().find(|a| *a != addr && engines.contains_key(*a)) {
                return Err(other.clone());
            }
        }
        if old != id {
            Self::unclaim(&mut ids, old, addr);
        }
        let addrs = ids.entry(id.to_string()).or_default();
        if !addrs.iter().any(|a| a == addr) {
            addrs.push(addr.to_string());
        }
        Ok(())
    }

    fn unclaim(ids: &mut HashMap<String, Vec<String>>, id: &str, addr: &str) {
        if let Some(addrs) = ids.get_mut(id) {
            addrs.retain(|a| a != addr);
            if addrs.is_empty() {
                ids.remove(id);
            }
        }
    }
}

impl Cluster {
    pub fn new(opts: ClusterOpts, tls: Option<rustls::ClientConfig>, shutdown: CancellationToken) -> Result<Cluster, ClusterError> {
        Self::with_ha(opts, tls, shutdown, Ha::standalone(), Store::memory())
    }

    /// A cluster whose role comes from `ha` and whose reschedule records live in `records`.
    pub fn with_ha(
        opts: ClusterOpts,
        tls: Option<rustls::ClientConfig>,
        shutdown: CancellationToken,
        ha: Ha,
        records: Store,
    ) -> Result<Cluster, ClusterError> {
        let scheduler = Scheduler::new(&opts.filters, &opts.strategy)?;
        let transport = Arc::new(Transport::new(tls, opts.max_connections)?);
        let learning = Arc::new(tokio::sync::Semaphore::new(opts.max_learning.max(1)));
        Ok(Cluster(Arc::new(Shared {
            opts,
            learning,
            scheduler,
            hub: EventHub::default(),
            metrics: Metrics::default(),
            transport,
            engines: RwLock::new(BTreeMap::new()),
            validated_ids: Mutex::new(HashMap::new()),
            execs: Mutex::new(HashMap::new()),
            place: Mutex::new(()),
            pending_seq: Default::default(),
            dirty: Default::default(),
            view_cache: Default::default(),
            status_order: Default::default(),
            shutdown,
            ha,
            records,
            discovered: AtomicBool::new(false),
        })))
    }

    /// Makes the node set equal to `entries`: new addresses start validating, missing ones are
    /// disconnected and dropped.
    pub fn sync(&self, entries: &[Entry]) {
        let wanted: BTreeMap<String, ()> = entries.iter().map(|e| (e.to_string(), ())).collect();
        let mut engines = self.engines.write().unwrap_or_else(|p| p.into_inner());
        let gone: Vec<String> = engines.keys().filter(|a| !wanted.contains_key(*a)).cloned().collect();
        let mut left = vec![];
        for addr in gone {
            if let Some(e) = engines.remove(&addr) {
                tracing::info!(%addr, "node left discovery");
                left.push((e.lock().info.id.clone(), addr.clone()));
                e.disconnect(self);
            }
        }
        for addr in wanted.keys() {
            if engines.contains_key(addr) {
                continue;
            }
            let mut e = Engine::new(addr, self.transport.client(addr), self.dirty.clone());
            // Cancelled with the manager, or alone when the node leaves (no task per node).
            e.cancel = self.shutdown.child_token();
            let e = Arc::new(e);
            tokio::spawn(e.clone().run(self.0.clone()));
            engines.insert(addr.clone(), e);
        }
        drop(engines);
        // Their daemon IDs are free again (the index is locked after `engines`, never inside it).
        let mut ids = self.validated_ids.lock().unwrap_or_else(|p| p.into_inner());
        for (id, addr) in left {
            Shared::unclaim(&mut ids, &id, &addr);
        }
        drop(ids);
        self.discovered.store(true, Ordering::Release);
    }

    /// Whether discovery has delivered a node set yet.
    pub fn discovered(&self) -> bool {
        self.discovered.load(Ordering::Acquire)
    }

    /// A client for another manager (the primary), with the manager's own TLS.
    pub fn manager_client(&self, addr: &str) -> NodeClient {
        self.transport.client(addr)
    }

    /// The cancellation token everything of this cluster stops with.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Feeds the cluster from a node source until shutdown.
    pub fn watch<S: NodeSource>(&self, source: S) {
        let c = self.clone();
        let mut rx = source.watch(self.shutdown.clone());
        tokio::spawn(async move {
            while let Some(entries) = rx.recv().await {
                c.sync(&entries);
            }
        });
    }

    /// Every node (pending ones included).
    pub fn engines(&self) -> Vec<Arc<Engine>> {
        self.engines.read().unwrap_or_else(|p| p.into_inner()).values().cloned().collect()
    }

    /// Connections to nodes open now.
    pub fn node_connections(&self) -> usize {
        self.transport.open_connections()
    }

    pub fn engine(&self, addr: &str) -> Option<Arc<Engine>> {
        self.engines.read().unwrap_or_else(|p| p.into_inner()).get(addr).cloned()
    }

    /// Validated nodes (healthy or not).
    pub fn validated(&self) -> Vec<Arc<Engine>> {
        self.engines().into_iter().filter(|e| e.is_validated() && e.health() != Health::Disconnected).collect()
    }

    /// A node by name or daemon ID.
    pub fn engine_named(&self, name: &str) -> Option<Arc<Engine>> {
        self.validated().into_iter().find(|e| {
            let i = e.info();
            i.name == name || i.id == name
        })
    }

    /// The node address recorded for an exec instance, unless expired.
    fn exec_addr(&self, exec_id: &str) -> Option<String> {
        let execs = self.execs.lock().unwrap_or_else(|p| p.into_inner());
        execs.get(exec_id).filter(|(_, at)| at.elapsed() < EXEC_TTL).map(|(a, _)| a.clone())
    }

    pub fn record_exec(&self, exec_id: &str, addr: &str) {
        let mut execs = self.execs.lock().unwrap_or_else(|p| p.into_inner());
        if execs.len() >= EXEC_PRUNE_AT {
            execs.retain(|_, (_, at)| at.elapsed() < EXEC_TTL);
            // Still full of fresh ones (a flood of execs): forget the oldest half.
            if execs.len() >= EXEC_PRUNE_AT {
                let mut ages: Vec<Instant> = execs.values().map(|(_, at)| *at).collect();
                ages.sort_unstable();
                let cut = ages[ages.len() / 2];
                execs.retain(|_, (_, at)| *at > cut);
            }
        }
        execs.insert(exec_id.to_string(), (addr.to_string(), Instant::now()));
    }

    pub fn exec_owner(&self, exec_id: &str) -> Result<Arc<Engine>, ClusterError> {
        let addr = self.exec_addr(exec_id);
        addr.and_then(|a| self.engine(&a)).ok_or_else(|| ClusterError::NoSuchExec(exec_id.to_string()))
    }

    /// The node a build goes to, as classic Swarm chose it: build args named `constraint:…` or
    /// `affinity:…` are placement rules (`--build-arg constraint:node==n1` arrives as the arg
    /// `constraint:node` with the value `=n1`), and `cpushares`/`memory` are reserved.
    pub fn engine_for_build(&self, buildargs: &BTreeMap<String, String>, cpus: i64, memory: i64) -> Result<Arc<Engine>, ClusterError> {
        let env: Vec<String> = buildargs
            .iter()
            .filter(|(k, _)| k.starts_with("constraint:") || k.starts_with("affinity:"))
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let mut cfg = serde_json::json!({"Env": env, "HostConfig": {"CpuShares": cpus, "Memory": memory}});
        let req = crate::scheduler::Request::from_config(None, &mut cfg)?;
        let addr = self.with_views(|views| self.scheduler.pick(&req, views).map(|n| n.addr.clone()))?;
        self.engine(&addr).ok_or(ClusterError::Sched(SchedError::NoHealthyNode))
    }

    /// The best healthy node for a request with no requirements (searches, auth).
    pub fn any_engine(&self) -> Result<Arc<Engine>, ClusterError> {
        let req = crate::scheduler::Request::default();
        let addr = self.with_views(|views| self.scheduler.pick(&req, views).map(|n| n.addr.clone()))?;
        self.engine(&addr).ok_or(ClusterError::Sched(SchedError::NoHealthyNode))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[tokio::test]
    async fn exec_records_are_bounded() {
        let c = Cluster::new(ClusterOpts::default(), None, CancellationToken::new()).unwrap();
        for i in 0..EXEC_PRUNE_AT {
            c.record_exec(&format!("e{i}"), "10.0.0.1:2375");
        }
        c.record_exec("newest", "10.0.0.2:2375");
        let n = c.execs.lock().unwrap().len();
        assert!(n <= EXEC_PRUNE_AT / 2 + 1, "{n} records kept");
        assert_eq!(c.exec_addr("e0"), None, "the oldest are forgotten");
        assert_eq!(c.exec_addr(&format!("e{}", EXEC_PRUNE_AT - 1)).as_deref(), Some("10.0.0.1:2375"), "the newer half stays");
        assert_eq!(c.exec_addr("newest").as_deref(), Some("10.0.0.2:2375"));
        // (The monotonic clock starts at boot: a machine up for less than the TTL cannot go back.)
        if let Some(old) = Instant::now().checked_sub(EXEC_TTL) {
            c.execs.lock().unwrap().get_mut("newest").unwrap().1 = old;
            assert_eq!(c.exec_addr("newest"), None, "an expired record answers no more");
            assert!(matches!(c.exec_owner("newest"), Err(ClusterError::NoSuchExec(_))));
        }
    }
}
