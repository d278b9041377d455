//! Placement: filters, then a strategy, over plain node snapshots.
//!
//! ```text
//!  create body ──► Request (env/labels parsed once, expressions compiled)
//!                     │
//!   nodes ──► health ─► port ─► containerslots ─► dependency ─► affinity ─► constraint ─► whitelist
//!   (snapshots)   each filter drops nodes; every drop is recorded (node, filter)
//!                     │ none left? ──► error: the conditions so far + why each node was dropped
//!                     ▼
//!              strategy (spread | binpack | random) ranks what is left ──► nodes[0]
//! ```
//! The whole chain runs first with soft (`~`) expressions enforced, then, if that finds
//! nothing, again without them. The caller holds the cluster's placement lock while it selects
//! and records a pending reservation, so concurrent creates see each other.
pub mod expr;
pub mod filter;
pub mod index;
pub mod labels;
pub mod node;
mod pick;
pub mod request;
pub mod strategy;
#[cfg(test)]
pub(crate) mod testing;

pub use filter::{Filter, DEFAULT_FILTERS};
pub use index::NodeIndex;
pub use labels::Labels;
pub use node::{ContainerView, ImageView, NodeView, PortBinding};
pub use request::{Request, RequestError};
pub use strategy::Strategy;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

/// How many per-node reasons an error lists before summarising.
const MAX_REASONS: usize = 20;

/// Why one node was turned down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeReason {
    pub node: String,
    pub filter: &'static str,
    pub why: String,
}

#[derive(Debug, thiserror::Error)]
pub enum SchedError {
    #[error("No healthy node available in the cluster")]
    NoHealthyNode,
    #[error("Unable to find a node that satisfies the following conditions {conditions}{}", Reasons(.reasons))]
    Unsatisfied { conditions: String, reasons: Vec<NodeReason> },
    #[error("no resources available to schedule container{}", Reasons(.reasons))]
    NoResources { reasons: Vec<NodeReason> },
    #[error("filter {0:?} not supported")]
    UnknownFilter(String),
    #[error("strategy {0:?} not supported")]
    UnknownStrategy(String),
}

struct Reasons<'a>(&'a [NodeReason]);

impl fmt::Display for Reasons<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return Ok(());
        }
        write!(f, "\nwhy each node was rejected:")?;
        for r in self.0.iter().take(MAX_REASONS) {
            write!(f, "\n  {}: {}: {}", r.node, r.filter, r.why)?;
        }
        if self.0.len() > MAX_REASONS {
            write!(f, "\n  … and {} more nodes", self.0.len() - MAX_REASONS)?;
        }
        Ok(())
    }
}

/// Counts from one pass (for logs and metrics).
#[derive(Default, Debug)]
pub struct Metrics {
    pub evaluated: usize,
    pub rejected_by: BTreeMap<&'static str, usize>,
}

pub struct Scheduler {
    filters: Vec<Box<dyn Filter>>,
    strategy: Box<dyn Strategy>,
}

impl Scheduler {
    /// Filters by name, in the order given (empty = [`DEFAULT_FILTERS`]), and a strategy by name.
    pub fn new(filters: &[String], strategy: &str) -> Result<Self, SchedError> {
        let filters = if filters.is_empty() {
            DEFAULT_FILTERS.iter().map(|f| filter::by_name(f)).collect::<Result<_, _>>()?
        } else {
            filters.iter().map(|f| filter::by_name(f)).collect::<Result<_, _>>()?
        };
        Ok(Scheduler { filters, strategy: strategy::by_name(strategy)? })
    }

    pub fn strategy_name(&self) -> &'static str {
        self.strategy.name()
    }

    pub fn strategy(&self) -> &dyn Strategy {
        self.strategy.as_ref()
    }

    pub fn filter_names(&self) -> Vec<&'static str> {
        self.filters.iter().map(|f| f.name()).collect()
    }

    /// Ranked candidates, best first; soft expressions are dropped if they leave no node.
    pub fn select<'n>(&self, req: &Request, nodes: &'n [Arc<NodeView>]) -> Result<Vec<&'n NodeView>, SchedError> {
        let has_soft = req.constraints.iter().chain(&req.affinities).chain(&req.whitelists).any(|e| e.soft);
        match self.pass(req, nodes, true) {
            Err(_) if has_soft => self.pass(req, nodes, false),
            r => r,
        }
    }

    /// The best candidate only (what [`Scheduler::select`] would rank first), without ordering
    /// the others: what a create needs.
    pub fn pick<'n>(&self, req: &Request, nodes: &'n [Arc<NodeView>]) -> Result<&'n NodeView, SchedError> {
        let has_soft = req.constraints.iter().chain(&req.affinities).chain(&req.whitelists).any(|e| e.soft);
        let best = |soft| self.filter(req, nodes, soft).and_then(|left| self.strategy.best(req, left));
        match best(true) {
            Err(_) if has_soft => best(false),
            r => r,
        }
    }

    fn pass<'n>(&self, req: &Request, nodes: &'n [Arc<NodeView>], soft: bool) -> Result<Vec<&'n NodeView>, SchedError> {
        let left = self.filter(req, nodes, soft)?;
        self.strategy.rank(req, left)
    }

    /// The nodes every filter accepts (an error naming the conditions when none is left).
    fn filter<'n>(&self, req: &Request, nodes: &'n [Arc<NodeView>], soft: bool) -> Result<Vec<&'n NodeView>, SchedError> {
        let mut m = Metrics { evaluated: nodes.len(), ..Default::default() };
        let mut left: Vec<&NodeView> = nodes.iter().map(|n| n.as_ref()).collect();
        let mut dropped: Vec<(&NodeView, usize)> = vec![];
        for (i, f) in self.filters.iter().enumerate() {
            let before = left.len();
            if f.applies(req, soft) {
                left.retain(|n| {
                    let ok = f.accepts(req, n, soft);
                    if !ok {
                        dropped.push((n, i));
                    }
                    ok
                });
            }
            if before != left.len() {
                m.rejected_by.insert(f.name(), before - left.len());
            }
            if left.is_empty() {
                tracing::debug!(?m, soft, filter = f.name(), "no node left");
                if f.name() == "health" {
                    return Err(SchedError::NoHealthyNode);
                }
                return Err(self.unsatisfied(i, req, &dropped, soft));
            }
        }
        Ok(left)
    }

    fn unsatisfied(&self, last: usize, req: &Request, dropped: &[(&NodeView, usize)], soft: bool) -> SchedError {
        let mut conditions = String::new();
        for f in &self.filters[..=last] {
            let list = f.conditions(req);
            if !list.is_empty() {
                conditions.push_str(&format!("\n[{}]", list.join(" ")));
            }
        }
        let reasons = dropped
            .iter()
            .take(MAX_REASONS + 1)
            .map(|(n, i)| {
                let f = &self.filters[*i];
                NodeReason { node: n.name.clone(), filter: f.name(), why: f.explain(req, n, soft) }
            })
            .chain(dropped.iter().skip(MAX_REASONS + 1).map(|(n, i)| NodeReason {
                node: n.name.clone(),
                filter: self.filters[*i].name(),
                why: String::new(),
            }))
            .collect();
        SchedError::Unsatisfied { conditions, reasons }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::testing::{labelled, node, req_with};

    fn sched(filters: &[&str], strategy: &str) -> Scheduler {
        Scheduler::new(&filters.iter().map(|s| s.to_string()).collect::<Vec<_>>(), strategy).unwrap()
    }

    #[test]
    fn defaults_and_unknown_names() {
        let s = Scheduler::new(&[], "binpacking").unwrap();
        assert_eq!(s.filter_names(), DEFAULT_FILTERS.to_vec());
        assert_eq!(s.strategy_name(), "binpack");
        assert!(matches!(Scheduler::new(&["nope".into()], "spread"), Err(SchedError::UnknownFilter(_))));
        assert!(matches!(Scheduler::new(&[], "fifo"), Err(SchedError::UnknownStrategy(_))));
    }

    #[test]
    fn no_nodes_means_no_healthy_node() {
        let s = sched(&[], "spread");
        let e = s.select(&Request::default(), &[]).unwrap_err();
        assert_eq!(e.to_string(), "No healthy node available in the cluster");
    }

    #[test]
    fn impossible_constraint_lists_conditions_and_reasons() {
        let nodes: Vec<_> = vec![Arc::new(labelled("node-1", &[("zone", "eu")])), Arc::new(labelled("node-2", &[("zone", "us")]))];
        let s = Scheduler::new(&[], "spread").unwrap();
        let e = s.select(&req_with(&["constraint:zone==asia"]), &nodes).unwrap_err().to_string();
        assert_eq!(
            e,
            "Unable to find a node that satisfies the following conditions \n[available container slots]\n[zone==asia]\n\
             why each node was rejected:\n  node-1: constraint: constraint zone==asia: label zone=eu\n  \
             node-2: constraint: constraint zone==asia: label zone=us"
        );
    }

    #[test]
    fn reasons_name_the_filter_that_dropped_each_node() {
        let mut sick = node("node-1");
        sick.healthy = false;
        let nodes = vec![Arc::new(sick), Arc::new(node("node-2"))];
        let s = Scheduler::new(&[], "spread").unwrap();
        let e = s.select(&req_with(&["constraint:node==node-3"]), &nodes).unwrap_err().to_string();
        assert!(e.contains("node-1: health: node is not healthy"), "{e}");
        assert!(e.contains("node-2: constraint: constraint node==node-3: node is node-2"), "{e}");
    }

    #[test]
    fn soft_expressions_fall_back() {
        let nodes = vec![Arc::new(node("n1")), Arc::new(node("n2"))];
        let s = sched(&["constraint"], "spread");
        let r = s.select(&req_with(&["constraint:node==~n3"]), &nodes).unwrap();
        assert_eq!(r.len(), 2);
        let r = s.select(&req_with(&["constraint:node==~n2"]), &nodes).unwrap();
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].name, "n2");
        assert_eq!(s.pick(&req_with(&["constraint:node==~n2"]), &nodes).unwrap().name, "n2");
        assert!(s.pick(&req_with(&["constraint:node==~n3"]), &nodes).is_ok());
        assert!(s.pick(&req_with(&["constraint:node==n3"]), &nodes).is_err());
    }

    #[test]
    fn many_reasons_are_summarised() {
        let nodes: Vec<_> = (0..30).map(|i| Arc::new(node(&format!("n{i}")))).collect();
        let s = sched(&["constraint"], "spread");
        let e = s.select(&req_with(&["constraint:node==x"]), &nodes).unwrap_err().to_string();
        assert!(e.ends_with("… and 10 more nodes"), "{e}");
    }
}
