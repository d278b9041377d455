//! What `docker info` prints about each node, kept per node: the counts come from counters the
//! node's record keeps as containers come and go (no scan of its containers), and the node's
//! lines are rendered once and rendered again only when something they show changed.
use super::engine::{Engine, Health, NodeInfo};
use super::Shared;
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

impl Engine {
    /// What `docker info` shows of this node now.
    pub fn summary(&self, sh: &Shared) -> Summary {
        let view = self.view(sh);
        let st = self.lock();
        Summary {
            addr: self.addr.clone(),
            health: st.health,
            info: st.info.clone(),
            validated: st.validated,
            error: st.error.clone(),
            updated_at: st.updated_at,
            containers: st.containers.len(),
            running: st.running,
            paused: st.paused,
            images: st.images.len(),
            used_cpus: view.as_ref().map_or(0, |v| v.used_cpus),
            used_memory: view.as_ref().map_or(0, |v| v.used_memory),
            total_cpus: view.as_ref().map_or(st.info.ncpu, |v| v.total_cpus),
            total_memory: view.as_ref().map_or(st.info.memory, |v| v.total_memory),
        }
    }

    /// The summary and its rendered lines, rendered again only when what they show changed
    /// (`UpdatedAt` is shown to the second). `render` must be the same function on every call.
    pub fn status(&self, sh: &Shared, render: Render) -> Arc<NodeStatus> {
        let view = self.view(sh);
        let mut st = self.lock();
        let (used_cpus, used_memory) = view.as_ref().map_or((0, 0), |v| (v.used_cpus, v.used_memory));
        let (total_cpus, total_memory) = view.as_ref().map_or((st.info.ncpu, st.info.memory), |v| (v.total_cpus, v.total_memory));
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
        let summary = Summary {
            addr: self.addr.clone(),
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
        };
        let s = Arc::new(NodeStatus { lines: render(&summary), summary });
        st.status = Some(s.clone());
        s
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
