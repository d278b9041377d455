//! One remote node: its client, what the manager knows of it (validated facts, containers,
//! images, pending reservations), and its health counter. Keeping it current (validation, the
//! event stream, the safety-net refresh) is in `refresh.rs`.
use super::client::{NodeClient, NodeError};
use super::events::swarm_event;
use super::model::ContainerState;
use super::model::ImageRow;
use super::view::Container;
use super::Shared;
use crate::scheduler::{ContainerView, ImageView, NodeView};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Create events held per node at most while its creates are pending (`hold_create_event`).
const EARLY_CREATES_HELD: usize = 64;

/// A node's state, as `docker info` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    Pending,
    Healthy,
    Unhealthy,
    Disconnected,
}

impl std::fmt::Display for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Health::Pending => "Pending",
            Health::Healthy => "Healthy",
            Health::Unhealthy => "Unhealthy",
            Health::Disconnected => "Disconnected",
        })
    }
}

/// What validation learnt from `/info` and `/version`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeInfo {
    pub id: String,
    pub name: String,
    pub ip: String,
    /// Daemon labels plus built-ins.
    pub labels: BTreeMap<String, String>,
    pub ncpu: i64,
    pub memory: i64,
    pub server_version: String,
    pub api_version: String,
    pub os_type: String,
}

pub(crate) struct Entry {
    pub c: Arc<Container>,
    /// When it was stored (refresh sequence), so a full list never drops a newer record.
    pub seq: u64,
}

pub(crate) struct State {
    pub health: Health,
    pub failures: u32,
    pub error: Option<String>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
    pub info: NodeInfo,
    pub validated: bool,
    pub spec_checked: std::time::Instant,
    /// Use [`State::put`] / [`State::take`] / [`State::retain`] so `names` stays in step.
    /// By ID (the key shares the record's ID).
    pub containers: HashMap<Arc<str>, Entry>,
    /// The networks documents of the latest records, to share their text.
    recent_networks: super::packed::Recent,
    /// How many known containers carry each name (name conflicts without a scan).
    names: HashMap<Arc<str>, u32>,
    /// How many known containers are running and paused (kept by `put`/`take`, for `info`).
    pub running: usize,
    pub paused: usize,
    /// What `docker info` last printed about this node (see `status.rs`).
    pub status: Option<Arc<super::status::NodeStatus>>,
    pub seq: u64,
    /// `GET /images/json` rows.
    pub images: Arc<Vec<Value>>,
    pub image_views: Arc<Vec<ImageView>>,
    pub pending: HashMap<String, Arc<ContainerView>>,
    /// Create events of containers not known yet that came while creates were pending here
    /// (ID, name): most likely of those creates, whose answers bring the records (the node
    /// sends the event before its answer, as dockerd does), so they are not inspected.
    early_creates: Vec<(String, Option<String>)>,
    /// Destroy events of containers not known yet that came while creates were pending here:
    /// a create's answer that comes after its container's destroy event adds no record.
    early_destroys: Vec<String>,
    /// Cached snapshot; `None` when something changed.
    pub view: Option<Arc<NodeView>>,
    pub events_live: bool,
    /// Networks and volumes.
    pub res: super::resources::Resources,
    /// Changed since `docker info` last looked (and listed in `dirty`'s statuses).
    pub(crate) status_marked: bool,
    addr: Arc<str>,
    dirty: Arc<super::views::Dirty>,
}

impl State {
    /// The scheduler's snapshot of this node is out of date.
    pub fn invalidate(&mut self) {
        self.view = None;
        self.dirty.mark(&self.addr);
    }
    fn counted(&mut self, state: ContainerState, add: bool) {
        let n = match state {
            ContainerState::Running => &mut self.running,
            ContainerState::Paused => &mut self.paused,
            _ => return,
        };
        *n = if add { *n + 1 } else { n.saturating_sub(1) };
    }
    fn name_added(&mut self, name: &Arc<str>) {
        if !name.is_empty() {
            *self.names.entry(name.clone()).or_default() += 1;
        }
    }
    fn name_removed(&mut self, name: &str) {
        if let Some(n) = self.names.get_mut(name) {
            *n -= 1;
            if *n == 0 {
                self.names.remove(name);
            }
        }
    }
    /// Stores a record (replacing any with the same ID); the scheduler's view is rebuilt only
    /// when what it sees changed. Networks equal to a recent record's share its text.
    pub fn put(&mut self, mut c: Container) {
        c.networks = self.recent_networks.share(std::mem::take(&mut c.networks));
        let c = Arc::new(c);
        self.seq += 1;
        let (sched, name, state) = (c.sched.clone(), c.name.clone(), c.state);
        self.counted(state, true);
        // Removed first: a replaced entry would keep its old key, a second copy of the ID.
        let old = self.containers.remove(c.id());
        self.containers.insert(c.sched.id.clone(), Entry { c, seq: self.seq });
        let sched_changed = match old {
            Some(old) => {
                self.name_removed(&old.c.name);
                self.counted(old.c.state, false);
                !Arc::ptr_eq(&old.c.sched, &sched)
            }
            None => true,
        };
        self.name_added(&name);
        if sched_changed {
            self.invalidate();
        }
    }
    pub fn take(&mut self, id: &str) -> Option<Entry> {
        let e = self.containers.remove(id)?;
        self.name_removed(&e.c.name);
        self.counted(e.c.state, false);
        self.invalidate();
        Some(e)
    }
    pub fn retain(&mut self, mut keep: impl FnMut(&str, &Entry) -> bool) {
        let gone: Vec<Arc<str>> = self.containers.iter().filter(|(id, e)| !keep(id, e)).map(|(id, _)| id.clone()).collect();
        for id in gone {
            self.take(&id);
        }
    }
    pub fn clear_containers(&mut self) {
        self.containers.clear();
        self.names.clear();
        (self.running, self.paused) = (0, 0);
        self.invalidate();
    }
    pub fn has_name(&self, name: &str) -> bool {
        self.names.contains_key(name)
    }
}

/// A node's state, locked. Any mutable use marks the node (once until `docker info` looks
/// again), so `info` rereads only the nodes that changed, and no change can be missed.
pub(crate) struct StateGuard<'a> {
    g: MutexGuard<'a, State>,
    changed: bool,
}

impl std::ops::Deref for StateGuard<'_> {
    type Target = State;
    fn deref(&self) -> &State {
        &self.g
    }
}

impl std::ops::DerefMut for StateGuard<'_> {
    fn deref_mut(&mut self) -> &mut State {
        self.changed = true;
        &mut self.g
    }
}

impl Drop for StateGuard<'_> {
    fn drop(&mut self) {
        if self.changed && !self.g.status_marked {
            self.g.status_marked = true;
            self.g.dirty.mark_status(&self.g.addr);
        }
    }
}

pub struct Engine {
    pub addr: String,
    pub client: NodeClient,
    state: Mutex<State>,
    pub(crate) cancel: CancellationToken,
    pub(crate) wake: Notify,
}

impl Engine {
    /// `dirty` is told whenever the node's scheduler snapshot changes.
    pub fn new(addr: &str, client: NodeClient, dirty: Arc<super::views::Dirty>) -> Engine {
        let ip = addr.rsplit_once(':').map_or(addr, |(h, _)| h).trim_matches(['[', ']']).to_string();
        Engine {
            addr: addr.to_string(),
            client,
            state: Mutex::new(State {
                health: Health::Pending,
                failures: 0,
                error: None,
                updated_at: chrono::Utc::now(),
                info: NodeInfo { id: addr.to_string(), name: String::new(), ip, ..Default::default() },
                validated: false,
                spec_checked: std::time::Instant::now(),
                containers: HashMap::new(),
                names: HashMap::new(),
                recent_networks: Default::default(),
                running: 0,
                paused: 0,
                status: None,
                seq: 0,
                images: Arc::new(vec![]),
                image_views: Arc::new(vec![]),
                pending: HashMap::new(),
                early_creates: Vec::new(),
                early_destroys: Vec::new(),
                view: None,
                events_live: false,
                res: Default::default(),
                status_marked: false,
                addr: addr.into(),
                dirty,
            }),
            cancel: CancellationToken::new(),
            wake: Notify::new(),
        }
    }

    /// The node's state, locked. A change made through the guard marks the node for
    /// `docker info` to look at again (see [`StateGuard`]).
    pub(crate) fn lock(&self) -> StateGuard<'_> {
        StateGuard { g: self.lock_quiet(), changed: false }
    }

    /// The state, locked, without marking a change: only for caches derived from the state
    /// (the scheduler's view, the `docker info` lines).
    pub(crate) fn lock_quiet(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn health(&self) -> Health {
        self.lock().health
    }
    pub fn info(&self) -> NodeInfo {
        self.lock().info.clone()
    }
    /// The node's CPUs (nothing cloned: every create reads it).
    pub fn ncpu(&self) -> i64 {
        self.lock_quiet().info.ncpu
    }
    pub fn name(&self) -> String {
        self.lock().info.name.clone()
    }
    pub fn is_validated(&self) -> bool {
        self.lock().validated
    }
    pub fn events_live(&self) -> bool {
        self.lock().events_live
    }

    /// Health accounting after any call to the node (classic Swarm's CheckConnectionErr).
    pub fn note<T>(&self, sh: &Shared, r: &Result<T, NodeError>) {
        let ev = {
            let mut st = self.lock();
            match r {
                Ok(_) => {
                    let was = st.health;
                    if st.failures != 0 || st.error.is_some() {
                        st.failures = 0;
                        st.error = None;
                        st.invalidate();
                    }
                    if was == Health::Unhealthy {
                        st.health = Health::Healthy;
                        tracing::info!(node = %st.info.name, addr = %self.addr, "node is healthy again");
                        self.wake.notify_one();
                        Some(swarm_event("engine_reconnect", &self.addr, &st.info))
                    } else {
                        None
                    }
                }
                Err(e) if e.is_connection() => {
                    st.failures += 1;
                    st.error = Some(e.to_string());
                    st.invalidate();
                    if st.failures >= sh.opts.failure_retry && st.health == Health::Healthy {
                        st.health = Health::Unhealthy;
                        tracing::warn!(node = %st.info.name, addr = %self.addr, error = %e, "node is unhealthy");
                        Some(swarm_event("engine_disconnect", &self.addr, &st.info))
                    } else {
                        None
                    }
                }
                Err(_) => None,
            }
        };
        if let Some(ev) = ev {
            sh.hub.publish(ev);
        }
    }

    /// The scheduler's snapshot (rebuilt only after a change); `None` until validated.
    pub fn view(&self, sh: &Shared) -> Option<Arc<NodeView>> {
        let mut st = self.lock_quiet();
        if !st.validated || matches!(st.health, Health::Pending | Health::Disconnected) {
            return None;
        }
        if let Some(v) = &st.view {
            return Some(v.clone());
        }
        let pct = (sh.opts.overcommit * 100.0) as i64;
        let healthy = st.health == Health::Healthy;
        let health = if healthy { 100 - (st.failures as i64) * 100 / (sh.opts.failure_retry.max(1) as i64) } else { 0 };
        let mut containers: Vec<Arc<ContainerView>> = st.containers.values().map(|e| e.c.sched.clone()).collect();
        containers.extend(st.pending.values().cloned());
        let mut v = NodeView {
            id: st.info.id.clone(),
            name: st.info.name.clone(),
            addr: self.addr.clone(),
            ip: st.info.ip.clone(),
            labels: st.info.labels.clone(),
            containers,
            images: st.image_views.clone(),
            total_cpus: st.info.ncpu + st.info.ncpu * pct / 100,
            total_memory: st.info.memory + st.info.memory * pct / 100,
            used_cpus: 0,
            used_memory: 0,
            health: health.max(0),
            healthy,
            slots: Default::default(),
        };
        v.recount();
        let v = Arc::new(v);
        st.view = Some(v.clone());
        Some(v)
    }

    pub fn add_pending(&self, id: &str, c: ContainerView) {
        let mut st = self.lock();
        st.pending.insert(id.to_string(), Arc::new(c));
        st.invalidate();
    }
    pub fn remove_pending(&self, id: &str) {
        let mut st = self.lock();
        if st.pending.remove(id).is_some() {
            st.invalidate();
        }
    }
    pub fn pending_names(&self) -> Vec<String> {
        self.lock().pending.values().flat_map(|c| c.names.iter().map(|n| n.to_string())).collect()
    }

    pub fn upsert(&self, c: Container) {
        let mut st = self.lock();
        st.put(c);
        st.updated_at = chrono::Utc::now();
    }

    /// Stores `c` unless the container is already known (an event may have been faster).
    pub fn insert_new(&self, c: Container) {
        let mut st = self.lock();
        if !st.containers.contains_key(c.id()) {
            st.put(c);
        }
    }

    /// Replaces a create's pending reservation by the record of the container `id` it created,
    /// in one step. A create event of it that came first names a record that has no name.
    pub fn created(&self, pending: &str, id: &str, c: Option<Container>) {
        let mut st = self.lock();
        if st.pending.remove(pending).is_some() {
            st.invalidate();
        }
        let early = st.early_creates.iter().position(|(e, _)| e == id).map(|i| st.early_creates.swap_remove(i));
        if let Some(i) = st.early_destroys.iter().position(|e| e == id) {
            st.early_destroys.swap_remove(i);
            return;
        }
        if let Some(mut c) = c.filter(|c| !st.containers.contains_key(c.id())) {
            if let Some((_, Some(name))) = early.filter(|_| c.name.is_empty()) {
                c.set_name(&name);
            }
            st.put(c);
        }
    }

    /// Holds the create event of a container not known yet while creates are pending here
    /// (see `early_creates`); false when none is pending or too many are held: inspect it now.
    pub fn hold_create_event(&self, id: &str, name: Option<&str>) -> bool {
        let mut st = self.lock_quiet();
        if st.pending.is_empty() || st.early_creates.len() >= EARLY_CREATES_HELD {
            return false;
        }
        st.early_creates.push((id.to_string(), name.map(str::to_string)));
        true
    }

    /// Once no create is pending here, the held create events no create claimed (containers
    /// created on the node by someone else meanwhile): they are to be inspected.
    pub fn unclaimed_creates(&self) -> Vec<String> {
        let mut st = self.lock_quiet();
        if !st.pending.is_empty() {
            return vec![];
        }
        st.early_destroys.clear();
        st.early_creates.drain(..).map(|(id, _)| id).collect()
    }

    /// Applies `f` to a copy of a known container; false when it is not known. The scheduler's
    /// view is rebuilt only if `f` replaced `sched`.
    pub fn update(&self, id: &str, f: impl FnOnce(&mut Container)) -> bool {
        let mut st = self.lock();
        let Some(e) = st.containers.get(id) else { return false };
        let mut c = (*e.c).clone();
        f(&mut c);
        st.put(c);
        true
    }

    /// Whether a known container (or a pending create) on this node is named `name`.
    pub fn name_taken(&self, name: &str) -> bool {
        let st = self.lock();
        st.has_name(name) || st.pending.values().any(|c| c.names.iter().any(|n| &**n == name))
    }

    /// The ID of the container named `name` here, if any.
    pub fn id_named(&self, name: &str) -> Option<String> {
        let st = self.lock();
        if !st.has_name(name) {
            return None;
        }
        st.containers.values().find(|e| &*e.c.name == name).map(|e| e.c.id().to_string())
    }

    /// Drops a container's record. A container not known yet while creates are pending here
    /// may be one of theirs, removed before the create's answer came: that answer adds nothing
    /// (see `created`), and its held create event is not inspected.
    pub fn remove(&self, id: &str) {
        let mut st = self.lock();
        if st.take(id).is_some() || st.pending.is_empty() {
            return;
        }
        st.early_creates.retain(|(e, _)| e != id);
        if st.early_destroys.len() < EARLY_CREATES_HELD {
            st.early_destroys.push(id.to_string());
        }
    }

    /// Calls `f` on every record, under the node's lock (no copies).
    pub fn each_container(&self, mut f: impl FnMut(&Arc<Container>)) {
        for e in self.lock().containers.values() {
            f(&e.c);
        }
    }

    pub fn containers(&self) -> Vec<Arc<Container>> {
        self.lock().containers.values().map(|e| e.c.clone()).collect()
    }
    pub fn container_count(&self) -> usize {
        self.lock().containers.len()
    }
    pub fn get(&self, id: &str) -> Option<Arc<Container>> {
        self.lock().containers.get(id).map(|e| e.c.clone())
    }
    pub fn images(&self) -> Arc<Vec<Value>> {
        self.lock().images.clone()
    }
    pub fn has_image(&self, name: &str) -> bool {
        let st = self.lock();
        let n = name.strip_prefix("sha256:").unwrap_or(name);
        let tagged =
            if crate::scheduler::node::repo_of(name) == name && !name.contains('@') { format!("{name}:latest") } else { name.to_string() };
        st.image_views.iter().any(|i| {
            let id = i.id.strip_prefix("sha256:").unwrap_or(&i.id);
            (n.len() >= 12 && id.starts_with(n)) || i.repo_tags.iter().any(|t| *t == tagged || t == name)
        })
    }

    /// Stores the node's image list; the same list as before changes nothing (the periodic
    /// refresh reads it again and again: the scheduler's view of the node is kept).
    pub fn set_images(&self, rows: Vec<Value>) {
        if *self.lock_quiet().images == rows {
            return;
        }
        let views = rows
            .iter()
            .map(|r| {
                let row = ImageRow::read(r);
                ImageView { id: row.id, repo_tags: row.repo_tags.into_iter().filter(|t| t != "<none>:<none>").collect() }
            })
            .collect();
        let mut st = self.lock();
        st.images = Arc::new(rows);
        st.image_views = Arc::new(views);
        st.invalidate();
    }

    /// Marks the node gone (removed from discovery) and stops its tasks.
    pub fn disconnect(&self, sh: &Shared) {
        self.cancel.cancel();
        let ev = {
            let mut st = self.lock();
            let was = st.health;
            st.health = Health::Disconnected;
            st.invalidate();
            (was != Health::Pending).then(|| swarm_event("engine_disconnect", &self.addr, &st.info))
        };
        if let Some(ev) = ev {
            sh.hub.publish(ev);
        }
    }
}
