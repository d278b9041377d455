//! `whitelist`: `whitelist:node==n1|n2` keeps only the named nodes (`!=` keeps the others).
use super::{active, Filter};
use crate::scheduler::expr::Expr;
use crate::scheduler::{NodeView, Request};

pub struct Whitelist;

fn holds(e: &Expr, node: &NodeView) -> bool {
    e.value.split('|').map(str::trim).any(|n| n == node.name || n == node.id) != e.negate
}

impl Filter for Whitelist {
    fn name(&self) -> &'static str {
        "whitelist"
    }
    fn applies(&self, req: &Request, soft: bool) -> bool {
        req.whitelists.iter().any(|e| active(e, soft))
    }
    fn accepts(&self, req: &Request, node: &NodeView, soft: bool) -> bool {
        req.whitelists.iter().filter(|e| active(e, soft)).all(|e| holds(e, node))
    }
    fn explain(&self, req: &Request, node: &NodeView, soft: bool) -> String {
        match req.whitelists.iter().filter(|e| active(e, soft)).find(|e| !holds(e, node)) {
            Some(e) => format!("whitelist {e}: node {} is not listed", node.name),
            None => String::new(),
        }
    }
    fn conditions(&self, req: &Request) -> Vec<String> {
        req.whitelists.iter().map(|e| e.to_string()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::testing::{node, req_with};
    #[test]
    fn lists() {
        let r = req_with(&["whitelist:node==n1|n3"]);
        assert!(Whitelist.accepts(&r, &node("n1"), true) && Whitelist.accepts(&r, &node("n3"), true));
        assert!(!Whitelist.accepts(&r, &node("n2"), true));
        assert_eq!(Whitelist.explain(&r, &node("n2"), true), "whitelist node==n1|n3: node n2 is not listed");
    }
}
