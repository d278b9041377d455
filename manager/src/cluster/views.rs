//! The scheduler's snapshots of every node, kept current incrementally: a node whose snapshot
//! changed marks itself dirty (under its own lock, [`Dirty::mark`]) and a placement re-reads
//! only the dirty nodes instead of visiting every node.
use super::Cluster;
use crate::scheduler::NodeView;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};

/// Addresses of the nodes whose snapshot changed since the cache last looked.
#[derive(Default)]
pub struct Dirty(Mutex<HashSet<Arc<str>>>);

impl Dirty {
    pub fn mark(&self, addr: &Arc<str>) {
        let mut d = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if !d.contains(addr) {
            d.insert(addr.clone());
        }
    }
    fn take(&self) -> HashSet<Arc<str>> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// Snapshots of the validated nodes, in address order (the order of the node map).
#[derive(Default)]
pub struct ViewCache(Vec<Arc<NodeView>>);

impl ViewCache {
    fn apply(&mut self, addr: &str, v: Option<Arc<NodeView>>) {
        match (self.0.binary_search_by(|x| x.addr.as_str().cmp(addr)), v) {
            (Ok(i), Some(v)) => self.0[i] = v,
            (Ok(i), None) => {
                self.0.remove(i);
            }
            (Err(i), Some(v)) => self.0.insert(i, v),
            (Err(_), None) => {}
        }
    }
}

impl Cluster {
    /// Runs `f` over the current snapshots of the validated nodes (the cache stays locked
    /// meanwhile: keep `f` short and free of awaits).
    pub fn with_views<R>(&self, f: impl FnOnce(&[Arc<NodeView>]) -> R) -> R {
        let mut cache = self.view_cache.lock().unwrap_or_else(|p| p.into_inner());
        for addr in self.dirty.take() {
            let v = self.engine(&addr).and_then(|e| e.view(self));
            cache.apply(&addr, v);
        }
        f(&cache.0)
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
        let mut c = ViewCache::default();
        for a in ["b:1", "a:1", "c:1", "a:1"] {
            c.apply(a, v(a));
        }
        c.apply("b:1", None);
        c.apply("zz:1", None);
        let addrs: Vec<&str> = c.0.iter().map(|n| n.addr.as_str()).collect();
        assert_eq!(addrs, ["a:1", "c:1"]);
        let d = Dirty::default();
        let a: Arc<str> = "a:1".into();
        d.mark(&a);
        d.mark(&a);
        assert_eq!(d.take().len(), 1);
        assert!(d.take().is_empty());
    }
}
