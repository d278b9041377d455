//! What `docker info` prints about each node, kept per node: the counts come from counters the
//! node's record keeps as containers come and go (no scan of its containers), and the node's
//! lines are rendered once and rendered again only when something they show changed.
use super::engine::{Engine, Health, NodeInfo, State};
use super::Shared;
use crate::scheduler::NodeView;
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
    /// What the renderer made of `summary` (JSON rows for `docker info`).
    pub lines: Box<str>,
}

/// Renders a node's lines (the API decides how they read).
pub type Render = fn(&Summary) -> Box<str>;

/// The order `docker info` lists the nodes in, kept until a node's address or name changes.
#[derive(Default)]
pub struct StatusOrder {
    /// (address, name) of each node, in the order of the node map.
    keys: Vec<(String, String)>,
    /// Positions in that order, sorted.
    order: Vec<usize>,
}

impl super::Cluster {
    /// Every node's status, sorted by `cmp` (sorted again only when the nodes or their names
    /// changed).
    pub fn node_statuses(&self, render: Render, cmp: fn(&Summary, &Summary) -> std::cmp::Ordering) -> Vec<Arc<NodeStatus>> {
        let all: Vec<Arc<NodeStatus>> = self.engines().iter().map(|e| e.status(self, render)).collect();
        let mut o = self.status_order.lock().unwrap_or_else(|p| p.into_inner());
        let same =
            o.keys.len() == all.len() && o.keys.iter().zip(&all).all(|((a, n), s)| *a == s.summary.addr && *n == s.summary.info.name);
        if !same {
            let mut order: Vec<usize> = (0..all.len()).collect();
            order.sort_by(|a, b| cmp(&all[*a].summary, &all[*b].summary));
            o.order = order;
            o.keys = all.iter().map(|s| (s.summary.addr.clone(), s.summary.info.name.clone())).collect();
        }
        o.order.iter().map(|i| all[*i].clone()).collect()
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
    pub fn status(&self, sh: &Shared, render: Render) -> Arc<NodeStatus> {
        let view = self.view(sh);
        let mut st = self.lock();
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
        let s = Arc::new(NodeStatus { lines: render(&summary), summary });
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
        assert_eq!(&*first.lines, "3/1/1");
        assert!(Arc::ptr_eq(&first, &e.status(&c, render)), "nothing changed: the same rows");
        e.upsert(container("a", "exited"));
        assert_eq!(&*e.status(&c, render).lines, "3/0/1");
        e.lock().take("b");
        assert_eq!(&*e.status(&c, render).lines, "2/0/0");
        e.upsert(container("b", "running"));
        let s = e.summary(&c);
        assert_eq!((s.containers, s.running, s.paused), (3, 1, 0));
        e.lock().clear_containers();
        assert_eq!(&*e.status(&c, render).lines, "0/0/0");
    }
}

#[cfg(test)]
mod speed {
    use super::*;
    use crate::cluster::view::Container;
    use crate::cluster::{Cluster, ClusterOpts};
    use tokio_util::sync::CancellationToken;

    fn thread_cpu() -> std::time::Duration {
        let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: `ts` is a valid timespec for the call to fill.
        unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
        std::time::Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
    }

    /// `docker info` over 10,000 nodes of 10 containers, wall and CPU time:
    /// `cargo test --release -p manager --lib info_speed -- --ignored --nocapture`
    #[tokio::test]
    #[ignore]
    async fn info_speed() {
        let c = Cluster::new(ClusterOpts::default(), None, CancellationToken::new()).unwrap();
        for i in 0..10_000 {
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
        for round in 0..5 {
            let (t, cpu) = (std::time::Instant::now(), thread_cpu());
            let r = crate::api::system::info(&c);
            let body = axum::body::to_bytes(r.into_body(), usize::MAX).await.unwrap();
            eprintln!("info {round}: {:?} wall, {:?} CPU, {} KiB", t.elapsed(), thread_cpu() - cpu, body.len() >> 10);
        }
    }
}
