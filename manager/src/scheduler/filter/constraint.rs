//! `constraint`: `node==` matches the daemon ID or name; any other key matches the node's
//! label of that name (a missing label is the empty string, as in classic Swarm).
use super::{active, Filter};
use crate::scheduler::expr::Expr;
use crate::scheduler::{NodeView, Request};

pub struct Constraint;

fn holds(e: &Expr, node: &NodeView) -> bool {
    if e.key_is("node") {
        e.matches([node.id.as_str(), node.name.as_str()])
    } else {
        e.matches([node.labels.get(&e.key).map_or("", String::as_str)])
    }
}

impl Filter for Constraint {
    fn name(&self) -> &'static str {
        "constraint"
    }
    fn applies(&self, req: &Request, soft: bool) -> bool {
        req.constraints.iter().any(|e| active(e, soft))
    }
    fn accepts(&self, req: &Request, node: &NodeView, soft: bool) -> bool {
        req.constraints.iter().filter(|e| active(e, soft)).all(|e| holds(e, node))
    }
    fn explain(&self, req: &Request, node: &NodeView, soft: bool) -> String {
        let Some(e) = req.constraints.iter().filter(|e| active(e, soft)).find(|e| !holds(e, node)) else {
            return String::new();
        };
        if e.key_is("node") {
            format!("constraint {e}: node is {}", node.name)
        } else {
            match node.labels.get(&e.key) {
                Some(v) => format!("constraint {e}: label {}={v}", e.key),
                None => format!("constraint {e}: no label {}", e.key),
            }
        }
    }
    fn conditions(&self, req: &Request) -> Vec<String> {
        req.constraints.iter().map(|e| e.to_string()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::testing::{labelled, node, req_with};

    #[test]
    fn node_name_and_id() {
        let r = req_with(&["constraint:node==n1"]);
        assert!(Constraint.accepts(&r, &node("n1"), true));
        assert!(!Constraint.accepts(&r, &node("n2"), true));
        assert_eq!(Constraint.explain(&r, &node("n2"), true), "constraint node==n1: node is n2");
        let r = req_with(&["constraint:node==id-n2"]);
        assert!(Constraint.accepts(&r, &node("n2"), true));
    }

    #[test]
    fn labels_globs_regex_and_negation() {
        let eu = labelled("n1", &[("zone", "eu-west"), ("storage", "ssd")]);
        let us = labelled("n2", &[("zone", "us-east")]);
        let r = req_with(&["constraint:zone==eu-*"]);
        assert!(Constraint.accepts(&r, &eu, true) && !Constraint.accepts(&r, &us, true));
        assert_eq!(Constraint.explain(&r, &us, true), "constraint zone==eu-*: label zone=us-east");
        let r = req_with(&["constraint:storage!=ssd"]);
        assert!(!Constraint.accepts(&r, &eu, true) && Constraint.accepts(&r, &us, true));
        let r = req_with(&["constraint:zone==/east$/", "constraint:storage==ssd"]);
        assert!(!Constraint.accepts(&r, &us, true));
        assert_eq!(Constraint.explain(&r, &us, true), "constraint storage==ssd: no label storage");
    }

    #[test]
    fn soft_constraints_only_on_the_soft_pass() {
        let r = req_with(&["constraint:zone==~eu"]);
        let us = labelled("n2", &[("zone", "us")]);
        assert!(!Constraint.accepts(&r, &us, true));
        assert!(Constraint.accepts(&r, &us, false));
    }
}
