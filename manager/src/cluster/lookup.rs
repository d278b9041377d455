//! Finding a container anywhere in the cluster, in classic Swarm's order: exact or 12-char ID;
//! exact or short swarm ID; name as `name`, `/name`, `<node>/name` (ambiguous: none); then a
//! unique ID prefix, then a unique swarm-ID prefix.
use super::{Cluster, ClusterError, Container, Engine};
use std::sync::Arc;

type Found = (Arc<Engine>, Arc<Container>);

fn unique(mut v: Vec<Found>) -> Option<Found> {
    if v.len() == 1 {
        v.pop()
    } else {
        None
    }
}

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
        let all: Vec<Found> = engines.iter().flat_map(|e| e.containers().into_iter().map(move |c| (e.clone(), c))).collect();
        let pick = |f: &dyn Fn(&Found) -> bool| unique(all.iter().filter(|x| f(x)).cloned().collect());
        let (node, name) = match q.split_once('/') {
            Some((n, rest)) => (Some(n), rest),
            None => (None, q),
        };
        let found = (q.len() == 12).then(|| pick(&|(_, c)| c.id().starts_with(q))).flatten()
            .or_else(|| pick(&|(_, c)| c.swarm_id() == Some(q) || (q.len() == 12 && c.swarm_id().is_some_and(|s| s.starts_with(q)))))
            .or_else(|| {
                pick(&|(e, c)| {
                    c.name == name
                        && node.is_none_or(|n| {
                            let i = e.info();
                            i.name == n || i.id == n
                        })
                })
            })
            .or_else(|| pick(&|(_, c)| c.id().starts_with(q)))
            .or_else(|| pick(&|(_, c)| c.swarm_id().is_some_and(|s| s.starts_with(q))));
        found.ok_or_else(|| ClusterError::NoSuchContainer(id_or_name.to_string()))
    }

    /// The container already using `name` anywhere (pending creates included).
    pub fn name_owner(&self, name: &str) -> Option<String> {
        let name = name.trim_start_matches('/');
        for e in self.validated() {
            if let Some(c) = e.containers().into_iter().find(|c| c.name == name) {
                return Some(c.id().to_string());
            }
            if e.pending_names().iter().any(|n| n == name) {
                return Some("(being created)".into());
            }
        }
        None
    }
}
