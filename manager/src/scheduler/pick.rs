//! Placement through the [`NodeIndex`]: the same answer as [`Scheduler::pick`] over every
//! snapshot, found without visiting every node when the request allows it.
//!
//! - A hard or soft `key==value` constraint (`node==name` too) that only few nodes hold: only
//!   those are filtered and weighed.
//! - Otherwise, a request shape seen before has a rank: the first node in it that every filter
//!   accepts is the best (the rank orders by the strategy's key, then by address, as `pick`).
//! - `random`: a uniform draw among the nodes, kept if the filters accept it (a uniform draw
//!   among the accepted nodes).
//!
//! Whatever the index leaves undecided goes to the full scan, with its soft fallback and its
//! errors.
use super::index::{NodeIndex, Shape};
use super::{Filter, NodeView, Request, SchedError, Scheduler};
use rand::RngExt;

/// Candidates from a constraint are weighed directly when there are at most this many, or
/// when their count squared is at most the number of nodes (a rank walk would then expect to
/// visit more nodes than that before meeting one of them).
const DIRECT: usize = 64;
/// Draws a `random` placement makes before it falls back to the scan.
const DRAWS: usize = 32;

impl Scheduler {
    /// The node [`Scheduler::pick`] would choose among `idx`'s snapshots.
    pub fn pick_indexed<'n>(&self, req: &Request, idx: &'n mut NodeIndex) -> Result<&'n NodeView, SchedError> {
        if !self.strategy.uniform() {
            idx.prepare(req, self.strategy.as_ref());
        }
        let idx = &*idx;
        match self.indexed(req, idx) {
            Some(n) => Ok(n),
            None => self.pick(req, idx.nodes()),
        }
    }

    pub(super) fn indexed<'n>(&self, req: &Request, idx: &'n NodeIndex) -> Option<&'n NodeView> {
        let active: Vec<&dyn Filter> = self.filters.iter().filter(|f| f.applies(req, true)).map(|f| f.as_ref()).collect();
        let ok = |n: &NodeView| active.iter().all(|f| f.accepts(req, n, true));
        let nodes = idx.nodes().len();
        let narrow = idx.candidate_count(req).filter(|c| *c <= DIRECT || c.saturating_mul(*c) <= nodes);
        if self.strategy.uniform() {
            return self.draw(idx, narrow.is_some().then(|| idx.candidates(req)).flatten(), ok);
        }
        if narrow.is_some() {
            // Address order, so `min_by_key` keeps the first of equal keys as `pick` does.
            return idx
                .candidates(req)?
                .filter(|n| ok(n))
                .filter_map(|n| self.strategy.key(req, n).map(|k| (k, n)))
                .min_by_key(|(k, _)| *k)
                .map(|(_, n)| n);
        }
        idx.ranked(Shape::of(req))?.find(|n| ok(n))
    }

    /// `random`: one accepted node, uniformly.
    fn draw<'n>(
        &self,
        idx: &'n NodeIndex,
        candidates: Option<impl Iterator<Item = &'n NodeView>>,
        ok: impl Fn(&NodeView) -> bool,
    ) -> Option<&'n NodeView> {
        let mut rng = rand::rng();
        if let Some(c) = candidates {
            let left: Vec<&NodeView> = c.filter(|n| ok(n)).collect();
            return (!left.is_empty()).then(|| left[rng.random_range(0..left.len())]);
        }
        let nodes = idx.nodes();
        if nodes.is_empty() {
            return None;
        }
        (0..DRAWS).map(|_| nodes[rng.random_range(0..nodes.len())].as_ref()).find(|n| ok(n))
    }
}
