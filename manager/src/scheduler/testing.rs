//! Fixture builders for scheduler tests.
use super::node::{ContainerView, ImageView, NodeView};
use super::request::Request;
use super::strategy::Strategy;
use std::sync::Arc;

/// Places `count` containers of `req`'s size one after the other with `strategy`, recording
/// each on the chosen node as a create would; returns the chosen node names in order.
pub fn place(strategy: &dyn Strategy, nodes: &mut [NodeView], req: &Request, count: usize) -> Vec<String> {
    let mut placed = vec![];
    for i in 0..count {
        let pick = strategy.rank(req, nodes.iter().collect()).expect("a node fits")[0].name.clone();
        let n = nodes.iter_mut().find(|n| n.name == pick).expect("picked node");
        let mut c = container(&format!("c{i}"), &format!("x{i}"));
        c.memory = req.memory;
        n.containers.push(Arc::new(c));
        n.recount();
        placed.push(pick);
    }
    placed
}

/// A healthy node with 2 CPUs and 2 GiB, no containers.
pub fn node(name: &str) -> NodeView {
    sized(name, 2, 2 << 30)
}

pub fn sized(name: &str, cpus: i64, memory: i64) -> NodeView {
    NodeView {
        id: format!("id-{name}"),
        name: name.into(),
        addr: format!("{name}:2375"),
        ip: "127.0.0.1".into(),
        total_cpus: cpus,
        total_memory: memory,
        health: 100,
        healthy: true,
        ..Default::default()
    }
}

pub fn labelled(name: &str, labels: &[(&str, &str)]) -> NodeView {
    let mut n = node(name);
    n.labels = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    n
}

pub fn with_image(mut n: NodeView, id: &str, tags: &[&str]) -> NodeView {
    let mut imgs = (*n.images).clone();
    imgs.push(ImageView { id: id.into(), repo_tags: tags.iter().map(|t| t.to_string()).collect() });
    n.images = Arc::new(imgs);
    n
}

pub fn container(id: &str, name: &str) -> ContainerView {
    ContainerView { id: id.into(), names: Box::new([name.into()]), image: "busybox".into(), ..Default::default() }
}

/// A request from env entries such as `constraint:node==n1`.
pub fn req_with(env: &[&str]) -> Request {
    let mut cfg = serde_json::json!({"Image": "busybox", "Env": env});
    Request::from_config(None, &mut cfg).expect("valid test request")
}
