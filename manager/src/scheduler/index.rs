//! An index over the node snapshots, so that a placement does not visit every node.
//!
//! ```text
//!  snapshots (address order) ──► labels: key -> value -> addresses   (node ID and name too)
//!                           └──► ranks: one per request shape (CPUs, memory) seen twice,
//!                                the nodes where it fits, ordered by the strategy's key
//! ```
//! A rank is kept current as snapshots change (a changed node is removed under its old key and
//! inserted under its new one), so the best node for a shape is the first one the filters
//! accept, in `O(log n)` when they accept most nodes. A hard `key==value` constraint narrows the
//! candidates to the nodes holding that label. What the index cannot answer (no rank yet,
//! every candidate rejected) is left to the full scan, which also words the errors:
//! [`super::Scheduler::pick_indexed`] returns exactly what [`super::Scheduler::pick`] returns.
use super::expr::{Expr, Pattern};
use super::strategy::{RankKey, Strategy};
use super::{NodeView, Request};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

/// How many request shapes keep a rank (the least recently used one is dropped).
const MAX_RANKS: usize = 8;
/// Shapes seen once are remembered up to this many, then forgotten.
const MAX_SEEN: usize = 4096;
/// The label key under which a node's ID and name are indexed (`node==` constraints); no
/// valid label key starts with a NUL.
const NODE_KEY: &str = "\0node";

/// What a request reserves: requests of the same shape rank the nodes alike.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Shape {
    cpus: i64,
    memory: i64,
}

impl Shape {
    pub fn of(req: &Request) -> Shape {
        Shape { cpus: req.cpus, memory: req.memory }
    }
    fn request(self) -> Request {
        Request { cpus: self.cpus, memory: self.memory, ..Default::default() }
    }
}

/// The nodes where one shape fits, best first.
struct Rank {
    shape: Shape,
    /// A request of this shape (what the strategy's key reads).
    req: Request,
    order: BTreeMap<(RankKey, String), Arc<NodeView>>,
    used: u64,
}

type LabelIndex = HashMap<String, HashMap<String, BTreeSet<String>>>;

/// The snapshots of the validated nodes in address order, with the indexes above.
#[derive(Default)]
pub struct NodeIndex {
    nodes: Vec<Arc<NodeView>>,
    labels: LabelIndex,
    ranks: Vec<Rank>,
    seen: HashMap<Shape, u32>,
    clock: u64,
}

fn label_entries(n: &NodeView) -> impl Iterator<Item = (&str, &str)> {
    let node = [(NODE_KEY, n.id.as_str()), (NODE_KEY, n.name.as_str())];
    n.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).chain(node)
}

fn same_labels(a: &NodeView, b: &NodeView) -> bool {
    a.id == b.id && a.name == b.name && a.labels == b.labels
}

impl NodeIndex {
    /// Every snapshot, in address order.
    pub fn nodes(&self) -> &[Arc<NodeView>] {
        &self.nodes
    }

    pub fn node(&self, addr: &str) -> Option<&Arc<NodeView>> {
        self.nodes.binary_search_by(|x| x.addr.as_str().cmp(addr)).ok().map(|i| &self.nodes[i])
    }

    /// Sets (or with `None` removes) the snapshot of the node at `addr`.
    pub fn apply(&mut self, addr: &str, v: Option<Arc<NodeView>>, strategy: &dyn Strategy) {
        let old = match (self.nodes.binary_search_by(|x| x.addr.as_str().cmp(addr)), &v) {
            (Ok(i), Some(v)) => Some(std::mem::replace(&mut self.nodes[i], v.clone())),
            (Ok(i), None) => Some(self.nodes.remove(i)),
            (Err(i), Some(v)) => {
                self.nodes.insert(i, v.clone());
                None
            }
            (Err(_), None) => None,
        };
        if old.is_none() && v.is_none() {
            return;
        }
        if !matches!((&old, &v), (Some(o), Some(n)) if same_labels(o, n)) {
            if let Some(o) = &old {
                for (k, x) in label_entries(o) {
                    let values = self.labels.get_mut(k).expect("indexed with the node");
                    let addrs = values.get_mut(x).expect("indexed with the node");
                    addrs.remove(addr);
                    if addrs.is_empty() {
                        values.remove(x);
                        if values.is_empty() {
                            self.labels.remove(k);
                        }
                    }
                }
            }
            if let Some(n) = &v {
                for (k, x) in label_entries(n) {
                    self.labels.entry(k.to_string()).or_default().entry(x.to_string()).or_default().insert(addr.to_string());
                }
            }
        }
        for r in &mut self.ranks {
            if let Some(k) = old.as_ref().and_then(|o| strategy.key(&r.req, o)) {
                r.order.remove(&(k, addr.to_string()));
            }
            if let Some((k, n)) = v.as_ref().and_then(|n| strategy.key(&r.req, n).map(|k| (k, n))) {
                r.order.insert((k, addr.to_string()), n.clone());
            }
        }
    }

    /// Notes a request of `req`'s shape; its rank is built the second time the shape is seen.
    pub fn prepare(&mut self, req: &Request, strategy: &dyn Strategy) {
        self.clock += 1;
        let shape = Shape::of(req);
        if let Some(r) = self.ranks.iter_mut().find(|r| r.shape == shape) {
            r.used = self.clock;
            return;
        }
        if self.seen.len() >= MAX_SEEN {
            self.seen.clear();
        }
        let seen = self.seen.entry(shape).or_default();
        *seen += 1;
        if *seen < 2 {
            return;
        }
        self.seen.remove(&shape);
        let req = shape.request();
        let order = self.nodes.iter().filter_map(|n| strategy.key(&req, n).map(|k| ((k, n.addr.clone()), n.clone()))).collect();
        if self.ranks.len() >= MAX_RANKS {
            let lru = self.ranks.iter().enumerate().min_by_key(|(_, r)| r.used).map(|(i, _)| i).expect("ranks are full");
            self.ranks.swap_remove(lru);
        }
        tracing::debug!(cpus = shape.cpus, memory = shape.memory, "ranking the nodes for a request shape");
        self.ranks.push(Rank { shape, req, order, used: self.clock });
    }

    /// The nodes in rank order for `shape`, if it has a rank.
    pub fn ranked(&self, shape: Shape) -> Option<impl Iterator<Item = &NodeView>> {
        self.ranks.iter().find(|r| r.shape == shape).map(|r| r.order.values().map(|n| n.as_ref()))
    }

    /// The addresses of the nodes where `e` (an exact, non-negated expression) can hold.
    fn holders(&self, e: &Expr) -> Option<&BTreeSet<String>> {
        static NONE: BTreeSet<String> = BTreeSet::new();
        let Pattern::Exact(value) = &e.pattern else { return None };
        if e.negate {
            return None;
        }
        let key = if e.key_is("node") { NODE_KEY } else { e.key.as_str() };
        Some(self.labels.get(key).and_then(|m| m.get(value)).unwrap_or(&NONE))
    }

    /// The smallest set of candidates a hard-enough constraint of `req` allows (every
    /// constraint is enforced on the first pass, soft ones included), if any narrows them.
    pub fn candidates(&self, req: &Request) -> Option<impl Iterator<Item = &NodeView>> {
        let set = req.constraints.iter().filter_map(|e| self.holders(e)).min_by_key(|s| s.len())?;
        Some(set.iter().filter_map(|a| self.node(a)).map(|n| n.as_ref()))
    }

    /// How many nodes `req`'s narrowest constraint allows (`None`: no constraint narrows).
    pub fn candidate_count(&self, req: &Request) -> Option<usize> {
        req.constraints.iter().filter_map(|e| self.holders(e)).map(BTreeSet::len).min()
    }
}

#[cfg(test)]
#[path = "index_tests.rs"]
mod tests;
