//! A node simulator: everything a classic Swarm manager (ours or any other) asks of an engine
//! when it validates and refreshes one (`/_ping`, `/version` and `/info` with all their
//! fields, `/containers/json` with filters, `/containers/{id}/json`, `/images/json`,
//! `/networks`, `/volumes`, `/events`), and the container operations a manager forwards
//! (create, start, stop, kill, restart, remove). State lives in memory; no process runs. One
//! process serves thousands of simulated nodes, one loopback port each: for the manager's
//! benchmark and for tests that need no root. Any `/vX.Y/` prefix is accepted.
//!
//! Beyond the Docker API, any node of a [`serve`] group answers `GET /_sim/stats` (counters of
//! the whole group: nodes, containers, open connections, open event streams) and
//! `POST /_sim/reset` (every node of the group goes back to its prefilled containers, and the
//! event streams end), so a benchmark can run several managers, one after the other, against
//! the same nodes in the same state.
//!
//! Nothing is left on the host but the listeners, closed at `shutdown`.
mod handler;
mod listener;
pub mod template;
mod wire;

use bytes::Bytes;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

/// What the benchmark's creates send, and what prefilled containers were created with.
pub const BENCH_CREATE: &str = r#"{"Image":"busybox","Cmd":["true"],"HostConfig":{"Memory":1048576}}"#;

/// A container's state in the simulator (the subset of Docker's a simulated container reaches).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SimState {
    Created,
    Running,
    Exited,
}

impl SimState {
    fn as_str(self) -> &'static str {
        match self {
            SimState::Created => "created",
            SimState::Running => "running",
            SimState::Exited => "exited",
        }
    }
}

/// One simulated container (what its inspect and its `ps` row need).
struct SimContainer {
    name: String,
    /// The create body as the client sent it (shared between prefilled containers).
    config: Arc<Value>,
    created: chrono::DateTime<chrono::Utc>,
    started: Option<chrono::DateTime<chrono::Utc>>,
    finished: Option<chrono::DateTime<chrono::Utc>>,
    state: SimState,
    /// Made by [`SimNode::prefill`], in this state: a reset keeps it and puts it back in it.
    prefilled: Option<SimState>,
    /// Sequence number on its node (its IP address is derived from it).
    seq: u64,
}

#[derive(Default)]
struct NodeState {
    containers: HashMap<String, SimContainer>,
    /// Name (without `/`) to ID.
    names: HashMap<String, String>,
}

impl NodeState {
    /// An ID, a name (with or without `/`) or a unique ID prefix.
    fn resolve(&self, key: &str) -> Option<String> {
        if self.containers.contains_key(key) {
            return Some(key.to_string());
        }
        if let Some(id) = self.names.get(key.trim_start_matches('/')) {
            return Some(id.clone());
        }
        let mut found = self.containers.keys().filter(|id| id.starts_with(key));
        match (found.next(), found.next()) {
            (Some(id), None) if !key.is_empty() => Some(id.clone()),
            _ => None,
        }
    }

    fn insert(&mut self, id: String, c: SimContainer) {
        self.names.insert(c.name.clone(), id.clone());
        self.containers.insert(id, c);
    }

    fn remove(&mut self, id: &str) -> Option<SimContainer> {
        let c = self.containers.remove(id)?;
        self.names.remove(&c.name);
        Some(c)
    }
}

/// One simulated node.
pub struct SimNode {
    pub name: String,
    pub id: String,
    pub ncpu: i64,
    pub memory: i64,
    pub labels: Vec<String>,
    state: Mutex<NodeState>,
    /// Replaced by a reset, which ends the streams of the old one.
    events: Mutex<broadcast::Sender<Bytes>>,
    seq: AtomicU64,
    /// Answer `/events` with 404 (the manager then polls): one connection less per node.
    pub no_events: AtomicBool,
    /// Answer creates without an `Id` (a misbehaving node; the container is still made).
    pub create_without_id: AtomicBool,
    /// Open connections to this node's port.
    connections: AtomicUsize,
    /// Open `/events` streams.
    event_streams: AtomicUsize,
    /// Counts this node's container inspects in flight, with others' (see [`InspectGauge`]).
    inspect_gauge: std::sync::OnceLock<Arc<InspectGauge>>,
}

/// Container inspects in flight across the nodes that share it, and the most seen at once;
/// each inspect is answered after `delay` (a node under load), so concurrency shows.
#[derive(Debug, Default)]
pub struct InspectGauge {
    pub delay: std::time::Duration,
    now: AtomicUsize,
    max: AtomicUsize,
    total: AtomicUsize,
}

impl InspectGauge {
    pub fn new(delay: std::time::Duration) -> Arc<InspectGauge> {
        Arc::new(InspectGauge { delay, ..Default::default() })
    }
    /// The most inspects that were in flight at once.
    pub fn max(&self) -> usize {
        self.max.load(Ordering::SeqCst)
    }
    /// Inspects answered (or begun) so far.
    pub fn total(&self) -> usize {
        self.total.load(Ordering::SeqCst)
    }
    async fn around<T>(&self, f: impl FnOnce() -> T) -> T {
        let n = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.max.fetch_max(n, Ordering::SeqCst);
        self.total.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(self.delay).await;
        let r = f();
        self.now.fetch_sub(1, Ordering::SeqCst);
        r
    }
}

/// Counters of a group of nodes (`GET /_sim/stats`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SimStats {
    pub nodes: usize,
    pub containers: usize,
    pub connections: usize,
    pub event_streams: usize,
}

impl SimNode {
    pub fn new(name: &str, ncpu: i64, memory: i64, labels: &[&str]) -> Arc<SimNode> {
        Arc::new(SimNode {
            name: name.to_string(),
            id: wire::node_id(name),
            ncpu,
            memory,
            labels: labels.iter().map(|l| l.to_string()).collect(),
            state: Mutex::new(NodeState::default()),
            events: Mutex::new(broadcast::channel(256).0),
            seq: AtomicU64::new(0),
            no_events: Default::default(),
            create_without_id: Default::default(),
            connections: AtomicUsize::new(0),
            event_streams: AtomicUsize::new(0),
            inspect_gauge: Default::default(),
        })
    }

    /// Counts this node's container inspects in `g` (once; later calls are refused).
    pub fn count_inspects(&self, g: Arc<InspectGauge>) -> Result<(), Arc<InspectGauge>> {
        self.inspect_gauge.set(g)
    }

    pub fn container_count(&self) -> usize {
        self.lock().containers.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, NodeState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn sender(&self) -> broadcast::Sender<Bytes> {
        self.events.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Adds `count` containers as if created (with [`BENCH_CREATE`]) before the simulator
    /// started, without events: every other one running, the rest exited.
    pub fn prefill(&self, count: usize) {
        let config: Arc<Value> = Arc::new(serde_json::from_str(BENCH_CREATE).expect("a constant JSON body"));
        let now = chrono::Utc::now();
        let mut st = self.lock();
        st.containers.reserve(count);
        st.names.reserve(count);
        for i in 0..count {
            let seq = self.seq.fetch_add(1, Ordering::Relaxed);
            let state = if i % 2 == 0 { SimState::Running } else { SimState::Exited };
            let c = SimContainer {
                name: format!("pre_{}_{i}", self.name),
                config: config.clone(),
                created: now,
                started: Some(now),
                finished: (state == SimState::Exited).then_some(now),
                state,
                prefilled: Some(state),
                seq,
            };
            st.insert(self.new_id(seq), c);
        }
    }

    /// Back to the prefilled containers (as they were), and every event stream ends.
    pub fn reset(&self) {
        {
            let mut st = self.lock();
            let gone: Vec<String> = st.containers.iter().filter(|(_, c)| c.prefilled.is_none()).map(|(id, _)| id.clone()).collect();
            for id in gone {
                st.remove(&id);
            }
            for c in st.containers.values_mut() {
                if let Some(state) = c.prefilled {
                    c.state = state;
                    c.finished = (state == SimState::Exited).then_some(c.created);
                }
            }
        }
        *self.events.lock().unwrap_or_else(|p| p.into_inner()) = broadcast::channel(256).0;
    }

    fn new_id(&self, seq: u64) -> String {
        format!("{:016x}{:048x}", rand::random::<u64>(), seq)
    }

    fn event(&self, action: &str, id: &str, name: &str, extra: &[(&str, String)]) {
        let mut b = serde_json::to_vec(&wire::container_event(action, id, name, extra)).unwrap_or_default();
        b.push(b'\n');
        // No subscriber is fine: nobody listens.
        let _ = self.sender().send(Bytes::from(b));
    }

    fn stats(&self) -> SimStats {
        SimStats {
            nodes: 1,
            containers: self.container_count(),
            connections: self.connections.load(Ordering::Relaxed),
            event_streams: self.event_streams.load(Ordering::Relaxed),
        }
    }
}

/// The nodes of one [`serve`] call: what `/_sim/stats` and `/_sim/reset` act on.
struct Group {
    nodes: Vec<Arc<SimNode>>,
}

impl Group {
    fn stats(&self) -> SimStats {
        self.nodes.iter().map(|n| n.stats()).fold(SimStats::default(), |a, s| SimStats {
            nodes: a.nodes + s.nodes,
            containers: a.containers + s.containers,
            connections: a.connections + s.connections,
            event_streams: a.event_streams + s.event_streams,
        })
    }
}

/// Serves `nodes` on loopback ports until `shutdown`; returns their addresses.
pub async fn serve(nodes: Vec<Arc<SimNode>>, shutdown: CancellationToken) -> std::io::Result<Vec<String>> {
    let group = Arc::new(Group { nodes });
    let mut addrs = Vec::with_capacity(group.nodes.len());
    for node in &group.nodes {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        addrs.push(l.local_addr()?.to_string());
        let app = handler::router(node.clone(), group.clone());
        let t = shutdown.clone();
        let l = listener::Counted::new(l, node.clone());
        tokio::spawn(async move {
            if let Err(e) = axum::serve(l, app).with_graceful_shutdown(t.cancelled_owned()).await {
                tracing::warn!(error = %e, "simulated node stopped serving");
            }
        });
    }
    Ok(addrs)
}

fn err_body(message: String) -> Value {
    json!({ "message": message })
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod wire_tests;
