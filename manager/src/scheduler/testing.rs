//! Fixture builders for scheduler tests.
use super::node::{ContainerView, ImageView, NodeView};
use super::request::Request;
use std::sync::Arc;

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
    ContainerView { id: id.into(), names: vec![name.into()], image: "busybox".into(), ..Default::default() }
}

/// A request from env entries such as `constraint:node==n1`.
pub fn req_with(env: &[&str]) -> Request {
    let mut cfg = serde_json::json!({"Image": "busybox", "Env": env});
    Request::from_config(None, &mut cfg).expect("valid test request")
}
