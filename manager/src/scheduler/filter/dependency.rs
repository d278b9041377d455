//! `dependency`: `--volumes-from`, `--link` and `--net=container:` need their containers on
//! the same node. The conditions are classic Swarm's: the flags as given
//! (`--volumes-from=data:ro`, `--link=/b1:foo`, `--net=container:x`).
use super::Filter;
use crate::scheduler::{NodeView, Request};

pub struct Dependency;

/// The container a `--volumes-from` or `--link` value names: the part before `:`.
fn container_of(s: &str) -> &str {
    s.split(':').next().unwrap_or("")
}

/// The containers named by the request.
fn deps(req: &Request) -> impl Iterator<Item = &str> {
    let named = req.volumes_from.iter().chain(&req.links).map(|s| container_of(s));
    named.chain(req.net_container.iter().map(String::as_str))
}

impl Filter for Dependency {
    fn name(&self) -> &'static str {
        "dependency"
    }
    fn applies(&self, req: &Request, _: bool) -> bool {
        deps(req).next().is_some()
    }
    fn accepts(&self, req: &Request, node: &NodeView, _: bool) -> bool {
        deps(req).all(|d| node.container(d).is_some())
    }
    fn explain(&self, req: &Request, node: &NodeView, _: bool) -> String {
        let missing: Vec<&str> = deps(req).filter(|d| node.container(d).is_none()).map(|d| d.trim_start_matches('/')).collect();
        format!("does not hold container {}", missing.join(", "))
    }
    fn conditions(&self, req: &Request) -> Vec<String> {
        let mut v: Vec<String> = req.volumes_from.iter().map(|x| format!("--volumes-from={x}")).collect();
        v.extend(req.links.iter().map(|x| format!("--link={x}")));
        v.extend(req.net_container.iter().map(|x| format!("--net=container:{x}")));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::testing::{container, node};
    use std::sync::Arc;
    #[test]
    fn needs_every_dependency() {
        let mut n1 = node("n1");
        n1.containers.push(Arc::new(container("c1", "db")));
        n1.containers.push(Arc::new(container("c2", "data")));
        let r = Request { links: vec!["/db:foo".into()], volumes_from: vec!["data:ro".into()], ..Default::default() };
        assert!(Dependency.accepts(&r, &n1, true));
        assert!(!Dependency.accepts(&r, &node("n2"), true));
        assert_eq!(Dependency.explain(&r, &node("n2"), true), "does not hold container data, db");
        assert_eq!(Dependency.conditions(&r), vec!["--volumes-from=data:ro", "--link=/db:foo"]);
        let r = Request { net_container: Some("other".into()), ..Default::default() };
        assert!(!Dependency.accepts(&r, &n1, true));
        assert_eq!(Dependency.conditions(&r), vec!["--net=container:other"]);
    }
}
