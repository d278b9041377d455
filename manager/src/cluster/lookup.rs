//! Finding a container anywhere in the cluster, in classic Swarm's order: exact or 12-char ID;
//! exact or short swarm ID; name as `name`, `/name`, `<node>/name` (ambiguous: none); then a
//! unique ID prefix, then a unique swarm-ID prefix.
use super::{Cluster, ClusterError, Container, Engine};
use std::sync::Arc;

type Found = (Arc<Engine>, Arc<Container>);
/// One lookup rule: does this container (on a node that matches the `<node>/` part) match?
type Rule<'a> = &'a dyn Fn(&Container, bool) -> bool;

impl Cluster {
    /// The node holding `id_or_name`, and the manager's record of the container.
    pub fn lookup(&self, id_or_name: &str) -> Result<Found, ClusterError> {
        let q = id_or_name.trim_start_matches('/');
        if q.is_empty() {
            return Err(ClusterError::NoSuchContainer(id_or_name.to_string()));
        }
        let engines = self.validated();
        for e in &engines {
            if let Some(c) = e.get(q) {
                return Ok((e.clone(), c));
            }
        }
        let (node, name) = match q.split_once('/') {
            Some((n, rest)) => (Some(n), rest),
            None => (None, q),
        };
        // Classic Swarm tries these in order and takes the first that matches exactly one
        // container: one pass records, per rule, the first match and whether there were more.
        let rules: [Rule; 5] = [
            &|c, _| q.len() == 12 && c.id().starts_with(q),
            &|c, _| c.swarm_id() == Some(q) || (q.len() == 12 && c.swarm_id().is_some_and(|s| s.starts_with(q))),
            &|c, node_ok| node_ok && &*c.name == name,
            &|c, _| c.id().starts_with(q),
            &|c, _| c.swarm_id().is_some_and(|s| s.starts_with(q)),
        ];
        let mut hits: [(usize, Option<Found>); 5] = Default::default();
        for e in &engines {
            let node_ok = node.is_none_or(|n| {
                let i = e.info();
                i.name == n || i.id == n
            });
            e.each_container(|c| {
                for (rule, hit) in rules.iter().zip(hits.iter_mut()) {
                    if rule(c, node_ok) {
                        hit.0 += 1;
                        if hit.1.is_none() {
                            hit.1 = Some((e.clone(), c.clone()));
                        }
                    }
                }
            });
        }
        let found = hits.into_iter().find(|(n, _)| *n == 1).and_then(|(_, f)| f);
        found.ok_or_else(|| ClusterError::NoSuchContainer(id_or_name.to_string()))
    }

    /// The container already using `name` anywhere (pending creates included).
    pub fn name_owner(&self, name: &str) -> Option<String> {
        let name = name.trim_start_matches('/');
        for e in self.validated() {
            if e.name_taken(name) {
                return Some(e.id_named(name).unwrap_or_else(|| "(being created)".into()));
            }
        }
        None
    }
}
