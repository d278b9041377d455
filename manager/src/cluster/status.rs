//! What `docker info` prints about each node, kept per node: the counts come from counters the
//! node's record keeps as containers come and go (no scan of its containers), and the node's
//! lines are rendered once and rendered again only when something they show changed.
use super::engine::{Engine, Health, NodeInfo, State};
use super::Shared;
use crate::scheduler::NodeView;
use std::collections::HashMap;
use std::sync::Arc;

/// A copy of what `docker info` prints about a node.
#[derive(Debug, Clone)]
pub struct Summary {
    pub addr: String,
    pub health: Health,
    pub info: NodeInfo,
    pub validated: bool,
    pub error: Option<String>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
    pub containers: usize,
    pub running: usize,
    pub paused: usize,
    pub images: usize,
    pub used_cpus: i64,
    pub used_memory: i64,
    pub total_cpus: i64,
    pub total_memory: i64,
}

/// A node's summary with its rendered `SystemStatus` lines.
#[derive(Debug)]
pub struct NodeStatus {
    pub summary: Summary,
    /// What the renderer made of `summary` (JSON rows for `docker info`) after a comma, or
    /// nothing when it made nothing: the node's part of the answer, sent as it is kept.
    pub row: bytes::Bytes,
}

impl NodeStatus {
    fn new(summary: Summary, lines: &str) -> NodeStatus {
        let row = if lines.is_empty() { bytes::Bytes::new() } else { [",", lines].concat().into() };
        NodeStatus { summary, row }
    }

    /// The rendered lines (the row without its comma).
    pub fn lines(&self) -> &str {
        std::str::from_utf8(self.row.get(1..).unwrap_or_default()).expect("rendered from a str")
    }
}

/// Renders a node's lines (the API decides how they read).
pub type Render = fn(&Summary) -> Box<str>;

/// What `docker info` last showed of every node, in its order. A node is read again only when
/// its state changed since (the engine's lock marks it: `engine::StateGuard`), or when the
/// nodes themselves changed; a changed node's row replaces its old one in the answer, and
/// nothing is joined: the answer is sent as the nodes' own buffers.
#[derive(Default)]
pub struct StatusOrder {
    /// The nodes, in the order of the node map.
    engines: Vec<Arc<Engine>>,
    /// Position of each node's address in `engines`.
    at: HashMap<String, usize>,
    /// Each node's status, as `engines`.
    statuses: Vec<Arc<NodeStatus>>,
    /// Positions in `docker info`'s order.
    order: Vec<usize>,
    /// Where each node (as `engines`) is in `order`.
    place: Vec<usize>,
    /// What `docker info` shows of all of them: the sums and the rows.
    shown: Option<Arc<Statuses>>,
}

/// Every node's part of `docker info`.
#[derive(Debug, Default, Clone)]
pub struct Statuses {
    pub nodes: usize,
    pub containers: usize,
    pub running: usize,
    pub paused: usize,
    pub images: usize,
    /// CPUs and memory of the validated nodes still in the cluster.
    pub ncpu: i64,
    pub memory: i64,
    /// Every node's row (`NodeStatus::row`) in order: their concatenation is the nodes' part of
    /// `SystemStatus`, each but the empty ones after a comma.
    pub rows: Vec<bytes::Bytes>,
    /// The length of that concatenation.
    pub bytes: usize,
}

impl Statuses {
    fn of(all: &[Arc<NodeStatus>], order: &[usize]) -> Statuses {
        let mut s = Statuses { rows: order.iter().map(|i| all[*i].row.clone()).collect(), ..Default::default() };
        s.sum(all);
        s
    }

    /// Sums the nodes' counts and the rows' length again (the rows stay).
    fn sum(&mut self, all: &[Arc<NodeStatus>]) {
        let rows = std::mem::take(&mut self.rows);
        *self = Statuses { nodes: all.len(), bytes: rows.iter().map(|r| r.len()).sum(), rows, ..Default::default() };
        for m in all.iter().map(|n| &n.summary) {
            self.containers += m.containers;
            self.running += m.running;
            self.paused += m.paused;
            self.images += m.images;
            if m.validated && m.health != Health::Disconnected {
                self.ncpu += m.total_cpus;
                self.memory += m.total_memory;
            }
        }
    }
}

impl super::Cluster {
    /// Every node's part of `docker info`, in `cmp`'s order (sorted again only when the nodes
    /// or their names changed). Only the nodes whose state changed since the last call are
    /// read; `render` and `cmp` must be the same functions on every call.
    pub fn node_statuses(&self, render: Render, cmp: fn(&Summary, &Summary) -> std::cmp::Ordering) -> Arc<Statuses> {
        let engines = self.engines();
        let mut guard = self.status_order.lock().unwrap_or_else(|p| p.into_inner());
        let o = &mut *guard;
        let changed = self.dirty.take_statuses();
        let same_nodes = o.engines.len() == engines.len() && o.engines.iter().zip(&engines).all(|(a, b)| Arc::ptr_eq(a, b));
        let mut resort = !same_nodes;
        // Whether the shown sums are still those of `statuses`.
        let mut summed = true;
        if !same_nodes {
            o.statuses = engines.iter().map(|e| e.status(self, render)).collect();
            o.at = engines.iter().enumerate().map(|(i, e)| (e.addr.clone(), i)).collect();
            o.engines = engines;
            o.shown = None;
        } else {
            for addr in changed {
                let Some(&i) = o.at.get(&*addr) else { continue };
                let s = o.engines[i].status(self, render);
                if Arc::ptr_eq(&s, &o.statuses[i]) {
                    continue;
                }
                resort |= s.summary.info.name != o.statuses[i].summary.info.name;
                if let Some(shown) = &mut o.shown {
                    // A copy only if an answer still being sent holds the old one.
                    Arc::make_mut(shown).rows[o.place[i]] = s.row.clone();
                }
                o.statuses[i] = s;
                summed = false;
            }
        }
        if resort {
            let mut order: Vec<usize> = (0..o.statuses.len()).collect();
            order.sort_by(|a, b| cmp(&o.statuses[*a].summary, &o.statuses[*b].summary));
            o.place = vec![0; order.len()];
            for (at, i) in order.iter().enumerate() {
                o.place[*i] = at;
            }
            o.order = order;
            o.shown = None;
        }
        match &mut o.shown {
            None => o.shown = Some(Arc::new(Statuses::of(&o.statuses, &o.order))),
            Some(shown) if !summed => Arc::make_mut(shown).sum(&o.statuses),
            Some(_) => {}
        }
        o.shown.clone().expect("just set")
    }
}

impl Engine {
    /// What `docker info` shows of this node now.
    pub fn summary(&self, sh: &Shared) -> Summary {
        let view = self.view(sh);
        let st = self.lock();
        let (used, total) = resources(&st, view.as_deref());
        summary_of(&self.addr, &st, used, total)
    }

    /// The summary and its rendered lines, rendered again only when what they show changed
    /// (`UpdatedAt` is shown to the second). `render` must be the same function on every call.
    /// Clears the node's mark: a change from here on marks it again.
    pub fn status(&self, sh: &Shared, render: Render) -> Arc<NodeStatus> {
        self.lock_quiet().status_marked = false;
        let view = self.view(sh);
        let mut st = self.lock_quiet();
        let ((used_cpus, used_memory), (total_cpus, total_memory)) = resources(&st, view.as_deref());
        if let Some(s) = &st.status {
            let m = &s.summary;
            let same = m.health == st.health
                && m.validated == st.validated
                && m.updated_at.timestamp() == st.updated_at.timestamp()
                && m.containers == st.containers.len()
                && m.running == st.running
                && m.paused == st.paused
                && m.images == st.images.len()
                && (m.used_cpus, m.used_memory, m.total_cpus, m.total_memory) == (used_cpus, used_memory, total_cpus, total_memory)
                && m.error == st.error
                && m.info == st.info;
            if same {
                return s.clone();
            }
        }
        let summary = summary_of(&self.addr, &st, (used_cpus, used_memory), (total_cpus, total_memory));
        let lines = render(&summary);
        let s = Arc::new(NodeStatus::new(summary, &lines));
        st.status = Some(s.clone());
        s
    }
}

/// (used CPUs, used memory) and (total CPUs, total memory) of a node: from its scheduler view,
/// or its `/info` before it has one.
fn resources(st: &State, view: Option<&NodeView>) -> ((i64, i64), (i64, i64)) {
    view.map_or(((0, 0), (st.info.ncpu, st.info.memory)), |v| ((v.used_cpus, v.used_memory), (v.total_cpus, v.total_memory)))
}

fn summary_of(addr: &str, st: &State, (used_cpus, used_memory): (i64, i64), (total_cpus, total_memory): (i64, i64)) -> Summary {
    Summary {
        addr: addr.to_string(),
        health: st.health,
        info: st.info.clone(),
        validated: st.validated,
        error: st.error.clone(),
        updated_at: st.updated_at,
        containers: st.containers.len(),
        running: st.running,
        paused: st.paused,
        images: st.images.len(),
        used_cpus,
        used_memory,
        total_cpus,
        total_memory,
    }
}

#[cfg(test)]
impl super::Cluster {
    /// A node known to the cluster at `addr`, named `name` (tests).
    pub(crate) fn test_node(&self, addr: &str, name: &str) -> Arc<Engine> {
        let e = Arc::new(Engine::new(addr, self.transport.client(addr), self.dirty.clone()));
        e.lock().info.name = name.into();
        self.engines.write().unwrap().insert(addr.into(), e.clone());
        e
    }

    /// Drops the node at `addr` from the cluster (tests).
    pub(crate) fn test_remove_node(&self, addr: &str) {
        self.engines.write().unwrap().remove(addr);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::view::Container;
    use crate::cluster::{Cluster, ClusterOpts};
    use tokio_util::sync::CancellationToken;

    fn container(id: &str, status: &str) -> Container {
        Container::from_inspect(&serde_json::json!({"Id": id, "Name": format!("/{id}"), "State": {"Status": status}}), 1)
    }

    fn render(s: &Summary) -> Box<str> {
        format!("{}/{}/{}", s.containers, s.running, s.paused).into()
    }

    #[tokio::test]
    async fn counts_follow_the_records_and_lines_are_rendered_once_per_change() {
        let c = Cluster::new(ClusterOpts::default(), None, CancellationToken::new()).unwrap();
        let e = Engine::new("10.0.0.1:2375", c.transport.client("10.0.0.1:2375"), c.dirty.clone());
        e.upsert(container("a", "running"));
        e.upsert(container("b", "paused"));
        e.upsert(container("c", "exited"));
        let first = e.status(&c, render);
        assert_eq!(first.lines(), "3/1/1");
        assert!(Arc::ptr_eq(&first, &e.status(&c, render)), "nothing changed: the same rows");
        e.upsert(container("a", "exited"));
        assert_eq!(e.status(&c, render).lines(), "3/0/1");
        e.lock().take("b");
        assert_eq!(e.status(&c, render).lines(), "2/0/0");
        e.upsert(container("b", "running"));
        let s = e.summary(&c);
        assert_eq!((s.containers, s.running, s.paused), (3, 1, 0));
        e.lock().clear_containers();
        assert_eq!(e.status(&c, render).lines(), "0/0/0");
    }

    fn named(s: &Summary) -> Box<str> {
        format!("\"{}={}\"", s.info.name, s.containers).into()
    }

    fn by_name(a: &Summary, b: &Summary) -> std::cmp::Ordering {
        a.info.name.cmp(&b.info.name)
    }

    #[tokio::test]
    async fn info_follows_every_change_and_rereads_only_changed_nodes() {
        let c = Cluster::new(ClusterOpts::default(), None, CancellationToken::new()).unwrap();
        let mut es = vec![];
        for (i, name) in ["b", "a", "c"].into_iter().enumerate() {
            let addr = format!("10.0.0.{i}:2375");
            let e = Arc::new(Engine::new(&addr, c.transport.client(&addr), c.dirty.clone()));
            e.lock().info.name = name.into();
            c.engines.write().unwrap().insert(addr, e.clone());
            es.push(e);
        }
        let rows = |s: &Statuses| String::from_utf8(s.rows.concat()).unwrap();
        let first = c.node_statuses(named, by_name);
        assert_eq!((rows(&first).as_str(), first.nodes, first.containers), (r#","a=0","b=0","c=0""#, 3, 0));
        assert!(Arc::ptr_eq(&first, &c.node_statuses(named, by_name)), "nothing changed: the same answer");
        es[0].upsert(container("x", "running"));
        let s = c.node_statuses(named, by_name);
        assert_eq!((rows(&s).as_str(), s.containers, s.running), (r#","a=0","b=1","c=0""#, 1, 1));
        es[2].lock().info.name = "0".into();
        assert_eq!(rows(&c.node_statuses(named, by_name)), r#","0=0","a=0","b=1""#, "a new name sorts again");
        es[1].lock().spec_checked = std::time::Instant::now();
        let before = c.node_statuses(named, by_name);
        es[1].lock().spec_checked = std::time::Instant::now();
        assert!(Arc::ptr_eq(&before, &c.node_statuses(named, by_name)), "a change info does not show keeps the answer");
        es[0].update("x", |c| c.state = crate::cluster::model::ContainerState::Paused);
        let s = c.node_statuses(named, by_name);
        assert_eq!((s.running, s.paused), (0, 1));
        c.engines.write().unwrap().remove("10.0.0.1:2375");
        assert_eq!(rows(&c.node_statuses(named, by_name)), r#","0=0","b=1""#);
    }
}

#[cfg(test)]
pub(crate) mod speed {
    use super::*;
    use crate::cluster::view::Container;
    use crate::cluster::{Cluster, ClusterOpts};
    use tokio_util::sync::CancellationToken;

    /// CPU time of the calling thread (speed tests read it around the work they time).
    pub(crate) fn thread_cpu() -> std::time::Duration {
        let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: `ts` is a valid timespec for the call to fill.
        unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
        std::time::Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
    }

    /// A cluster of `n` validated, healthy nodes of 10 running containers each.
    fn cluster_of(n: usize) -> Arc<Cluster> {
        let c = Arc::new(Cluster::new(ClusterOpts::default(), None, CancellationToken::new()).unwrap());
        for i in 0..n {
            let addr = format!("10.0.{}.{}:2375", i / 250, i % 250);
            let e = Arc::new(Engine::new(&addr, c.transport.client(&addr), c.dirty.clone()));
            {
                let mut st = e.lock();
                st.validated = true;
                st.health = Health::Healthy;
                st.info = NodeInfo {
                    id: format!("ID{i}"),
                    name: format!("sim-{i}"),
                    ip: "127.0.0.1".into(),
                    labels: [("storagedriver", "overlay2"), ("kernelversion", "6.1"), ("ostype", "linux")]
                        .into_iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                    ncpu: 4,
                    memory: 8 << 30,
                    server_version: "28.0".into(),
                    ..Default::default()
                };
            }
            for k in 0..10 {
                let id = format!("{i:032x}{k:032x}");
                e.upsert(Container::from_inspect(
                    &serde_json::json!({"Id": id, "Name": format!("/c{k}"), "State": {"Status": "running"}}),
                    4,
                ));
            }
            c.engines.write().unwrap().insert(addr, e);
        }
        c
    }

    /// `docker info` over 10,000 nodes of 10 containers, wall and CPU time:
    /// `cargo test --release -p manager --lib info_speed -- --ignored --nocapture`
    #[tokio::test]
    #[ignore]
    async fn info_speed() {
        let c = cluster_of(10_000);
        for round in 0..5 {
            let (t, cpu) = (std::time::Instant::now(), thread_cpu());
            let r = crate::api::system::info(&c);
            let body = axum::body::to_bytes(r.into_body(), usize::MAX).await.unwrap();
            eprintln!("info {round}: {:?} wall, {:?} CPU, {} KiB", t.elapsed(), thread_cpu() - cpu, body.len() >> 10);
        }
    }

    /// CPU time of the whole process.
    fn process_cpu() -> std::time::Duration {
        let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: `ts` is a valid timespec for the call to fill.
        unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
        std::time::Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
    }

    /// `docker info` over 10,000 nodes served on a loopback socket (as `swarm manage` serves it,
    /// `TCP_NODELAY` as `NODELAY=0|1` says) to a client that reads the whole answer, while 250
    /// nodes a second change (their refresh): wall time, and the process's CPU (server and
    /// client) per answer. `FRAME=bytes`: the body's frames (0: one node's rows each).
    /// `NODELAY=1 cargo test --release -p manager --lib info_socket_speed -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn info_socket_speed() {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        rt.block_on(async {
            let c = cluster_of(10_000);
            let nodelay = std::env::var("NODELAY").map_or(true, |v| v == "1");
            let frame: usize = std::env::var("FRAME").map_or(128 << 10, |v| v.parse().unwrap());
            let app = {
                let c = c.clone();
                axum::Router::new().route("/info", axum::routing::get(move || async move { crate::api::system::info_in_frames(&c, frame) }))
            };
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = l.local_addr().unwrap();
            use axum::serve::ListenerExt;
            let l = l.tap_io(move |s| s.set_nodelay(nodelay).unwrap());
            tokio::spawn(async move { axum::serve(l, app).await });
            let _ = rustls::crypto::ring::default_provider().install_default();
            let client = reqwest::Client::builder().tls_backend_preconfigured(crate::tls::plain_client_config()).build().unwrap();
            let engines = c.engines();
            let (mut wall, mut cpu) = (vec![], vec![]);
            for round in 0..41 {
                // What the nodes' refreshes change between two answers a second apart.
                for k in 0..250 {
                    engines[(round * 250 + k) * 7 % engines.len()].lock().updated_at =
                        chrono::Utc::now() + chrono::Duration::seconds(round as i64);
                }
                let (t, p) = (std::time::Instant::now(), process_cpu());
                let body = client.get(format!("http://{addr}/info")).send().await.unwrap().bytes().await.unwrap();
                wall.push(t.elapsed());
                cpu.push(process_cpu() - p);
                assert!(body.len() > 1 << 20);
            }
            wall.sort();
            cpu.sort();
            let n = wall.len();
            eprintln!(
                "info over a socket (nodelay {nodelay}, frames {frame}): wall p50 {:?} p90 {:?} max {:?}; CPU p50 {:?} p90 {:?}",
                wall[n / 2],
                wall[n * 9 / 10],
                wall[n - 1],
                cpu[n / 2],
                cpu[n * 9 / 10]
            );
        });
    }
}
