//! The scheduler's snapshots of every node, kept current incrementally: a node whose snapshot
//! changed marks itself dirty (under its own lock, [`Dirty::mark`]) and a placement re-reads
//! only the dirty nodes instead of visiting every node. The snapshots sit in the scheduler's
//! [`NodeIndex`], which a placement searches without visiting every node either.
use super::Cluster;
use crate::scheduler::{NodeIndex, NodeView};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};

/// Addresses of the nodes whose snapshot changed since the cache last looked, and of those
/// whose state changed since `docker info` last looked (`status.rs`).
#[derive(Default)]
pub struct Dirty {
    views: Mutex<HashSet<Arc<str>>>,
    statuses: Mutex<HashSet<Arc<str>>>,
}

fn insert(set: &Mutex<HashSet<Arc<str>>>, addr: &Arc<str>) {
    let mut d = set.lock().unwrap_or_else(|p| p.into_inner());
    if !d.contains(addr) {
        d.insert(addr.clone());
    }
}

fn take(set: &Mutex<HashSet<Arc<str>>>) -> HashSet<Arc<str>> {
    std::mem::take(&mut *set.lock().unwrap_or_else(|p| p.into_inner()))
}

impl Dirty {
    pub fn mark(&self, addr: &Arc<str>) {
        insert(&self.views, addr);
    }
    fn take(&self) -> HashSet<Arc<str>> {
        take(&self.views)
    }
    pub fn mark_status(&self, addr: &Arc<str>) {
        insert(&self.statuses, addr);
    }
    pub fn take_statuses(&self) -> HashSet<Arc<str>> {
        take(&self.statuses)
    }
}

impl Cluster {
    /// Runs `f` over the current snapshots of the validated nodes (the cache stays locked
    /// meanwhile: keep `f` short and free of awaits).
    pub fn with_views<R>(&self, f: impl FnOnce(&[Arc<NodeView>]) -> R) -> R {
        self.with_index(|idx| f(idx.nodes()))
    }

    /// Runs `f` over the index of the current snapshots (locked meanwhile, as above).
    pub fn with_index<R>(&self, f: impl FnOnce(&mut NodeIndex) -> R) -> R {
        let mut idx = self.view_cache.lock().unwrap_or_else(|p| p.into_inner());
        for addr in self.dirty.take() {
            let v = self.engine(&addr).and_then(|e| e.view(self));
            idx.apply(&addr, v, self.scheduler.strategy());
        }
        f(&mut idx)
    }

    /// Snapshots of the validated nodes for the scheduler.
    pub fn views(&self) -> Vec<Arc<NodeView>> {
        self.with_views(<[_]>::to_vec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    fn v(addr: &str) -> Option<Arc<NodeView>> {
        Some(Arc::new(NodeView { addr: addr.into(), ..Default::default() }))
    }
    #[test]
    fn keeps_address_order() {
        let mut c = NodeIndex::default();
        let s = crate::scheduler::strategy::by_name("spread").unwrap();
        for a in ["b:1", "a:1", "c:1", "a:1"] {
            c.apply(a, v(a), s.as_ref());
        }
        c.apply("b:1", None, s.as_ref());
        c.apply("zz:1", None, s.as_ref());
        let addrs: Vec<&str> = c.nodes().iter().map(|n| n.addr.as_str()).collect();
        assert_eq!(addrs, ["a:1", "c:1"]);
        let d = Dirty::default();
        let a: Arc<str> = "a:1".into();
        d.mark(&a);
        d.mark(&a);
        assert_eq!(d.take().len(), 1);
        assert!(d.take().is_empty());
    }
}
