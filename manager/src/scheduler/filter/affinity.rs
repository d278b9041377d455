//! `affinity`: `container==` (IDs and names on the node, pending creates included), `image==`
//! (image IDs, tags and repository names), any other key: that label on the node's containers.
use super::{active, Filter};
use crate::scheduler::expr::Expr;
use crate::scheduler::{NodeView, Request};

pub struct Affinity;

fn holds(e: &Expr, node: &NodeView) -> bool {
    if e.key_is("container") {
        e.matches(node.containers.iter().flat_map(|c| {
            let short = &c.id[..c.id.len().min(12)];
            [&*c.id, short].into_iter().chain(c.names.iter().map(|n| &**n))
        }))
    } else if e.key_is("image") {
        e.matches(node.images.iter().flat_map(|i| i.match_candidates()))
    } else {
        e.matches(node.containers.iter().map(|c| c.labels.get(&e.key).unwrap_or("")))
    }
}

impl Filter for Affinity {
    fn name(&self) -> &'static str {
        "affinity"
    }
    fn applies(&self, req: &Request, soft: bool) -> bool {
        req.affinities.iter().any(|e| active(e, soft))
    }
    fn accepts(&self, req: &Request, node: &NodeView, soft: bool) -> bool {
        req.affinities.iter().filter(|e| active(e, soft)).all(|e| holds(e, node))
    }
    fn explain(&self, req: &Request, node: &NodeView, soft: bool) -> String {
        let Some(e) = req.affinities.iter().filter(|e| active(e, soft)).find(|e| !holds(e, node)) else {
            return String::new();
        };
        let what = if e.key_is("container") {
            "container"
        } else if e.key_is("image") {
            "image"
        } else {
            "container label"
        };
        if e.negate {
            format!("affinity {e}: a matching {what} is on this node")
        } else {
            format!("affinity {e}: no matching {what} on this node")
        }
    }
    fn conditions(&self, req: &Request) -> Vec<String> {
        req.affinities.iter().map(|e| e.to_string()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::testing::{container, node, req_with, with_image};
    use std::sync::Arc;

    #[test]
    fn container_affinity_by_name_and_id() {
        let mut n1 = node("n1");
        n1.containers.push(Arc::new(container("0123456789abcdef", "web")));
        let n2 = node("n2");
        let r = req_with(&["affinity:container==web"]);
        assert!(Affinity.accepts(&r, &n1, true) && !Affinity.accepts(&r, &n2, true));
        assert_eq!(Affinity.explain(&r, &n2, true), "affinity container==web: no matching container on this node");
        assert!(Affinity.accepts(&req_with(&["affinity:container==0123456789ab"]), &n1, true));
        let r = req_with(&["affinity:container!=web"]);
        assert!(!Affinity.accepts(&r, &n1, true) && Affinity.accepts(&r, &n2, true));
    }

    #[test]
    fn image_affinity_by_repo_tag_and_id() {
        let n1 = with_image(node("n1"), "sha256:aaaabbbbccccdddd", &["localhost:5000/busybox:1"]);
        for e in ["affinity:image==localhost:5000/busybox", "affinity:image==localhost:5000/busybox:1", "affinity:image==aaaabbbbcccc"] {
            assert!(Affinity.accepts(&req_with(&[e]), &n1, true), "{e}");
        }
        assert!(!Affinity.accepts(&req_with(&["affinity:image==alpine"]), &n1, true));
    }

    #[test]
    fn label_affinity_and_soft() {
        let mut n1 = node("n1");
        let mut c = container("c1", "x");
        c.labels.insert("com.example.app".into(), "front".into());
        n1.containers.push(Arc::new(c));
        let r = req_with(&["affinity:com.example.app==front"]);
        assert!(Affinity.accepts(&r, &n1, true) && !Affinity.accepts(&r, &node("n2"), true));
        let r = req_with(&["affinity:com.example.app==~back"]);
        assert!(!Affinity.accepts(&r, &n1, true) && Affinity.accepts(&r, &n1, false));
    }
}
