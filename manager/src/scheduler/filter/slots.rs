//! `containerslots`: a node labelled `containerslots=N` holds at most N containers (all states,
//! pending included). No label, or a label that is not a number, means no limit.
use super::Filter;
use crate::scheduler::{NodeView, Request};

pub struct Slots;

fn limit(node: &NodeView) -> Option<usize> {
    *node.slots.get_or_init(|| node.labels.get("containerslots").and_then(|v| v.parse().ok()))
}

impl Filter for Slots {
    fn name(&self) -> &'static str {
        "containerslots"
    }
    fn accepts(&self, _: &Request, node: &NodeView, _: bool) -> bool {
        limit(node).is_none_or(|n| node.containers.len() < n)
    }
    fn explain(&self, _: &Request, node: &NodeView, _: bool) -> String {
        format!("all {} container slots are used", limit(node).unwrap_or(0))
    }
    fn conditions(&self, _: &Request) -> Vec<String> {
        vec!["available container slots".into()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::testing::{container, labelled, node};
    use std::sync::Arc;
    #[test]
    fn slots() {
        let r = Request::default();
        let mut n = labelled("n1", &[("containerslots", "1")]);
        assert!(Slots.accepts(&r, &n, true));
        n.containers.push(Arc::new(container("c1", "a")));
        assert!(!Slots.accepts(&r, &n, true));
        assert_eq!(Slots.explain(&r, &n, true), "all 1 container slots are used");
        let mut bad = labelled("n2", &[("containerslots", "many")]);
        bad.containers.push(Arc::new(container("c1", "a")));
        assert!(Slots.accepts(&r, &bad, true));
        assert!(Slots.accepts(&r, &node("n3"), true));
    }
}
