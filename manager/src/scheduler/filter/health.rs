//! `health`: only nodes that are Healthy and not failing calls.
use super::Filter;
use crate::scheduler::{NodeView, Request};

pub struct Health;

impl Filter for Health {
    fn name(&self) -> &'static str {
        "health"
    }
    fn accepts(&self, _: &Request, node: &NodeView, _: bool) -> bool {
        node.healthy && node.health > 0
    }
    fn explain(&self, _: &Request, node: &NodeView, _: bool) -> String {
        if node.healthy {
            "failing health checks".into()
        } else {
            "node is not healthy".into()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::testing::node;
    #[test]
    fn keeps_healthy_nodes() {
        let r = Request::default();
        assert!(Health.accepts(&r, &node("n1"), true));
        let mut n = node("n2");
        n.healthy = false;
        assert!(!Health.accepts(&r, &n, true));
        assert_eq!(Health.explain(&r, &n, true), "node is not healthy");
    }
}
