//! A cluster that survives loss.
//!
//! - Which manager is primary: with `--replication`, a leader election in etcd
//!   ([`discovery::leadership`]); without it, this manager always is. Replicas keep their own
//!   cluster view (as classic Swarm's did) and forward what they do not serve themselves to the
//!   primary (`api::replica`).
//! - [`store`]: the records of containers with `reschedule:on-node-failure`, kept in etcd with
//!   etcd discovery (in memory otherwise), written before a create is acknowledged.
//! - [`reschedule`]: the primary's watchdog that re-creates those containers when their node
//!   fails, resumes after a failover, and removes stale copies when a node comes back.
pub mod reschedule;
pub mod store;

use discovery::leadership::{Leader, Status};
use std::time::Duration;
use tokio::sync::watch;

/// Where a request is served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Here: this manager is primary.
    Local,
    /// The primary at this address.
    Primary(String),
}

/// This manager's role, as leader election (or its absence) decides it.
#[derive(Clone)]
pub struct Ha {
    /// `None`: no replication, always primary.
    status: Option<watch::Receiver<Status>>,
    /// `--advertise`.
    advertise: Option<String>,
}

impl Ha {
    /// No replication: this manager is always primary.
    pub fn standalone() -> Ha {
        Ha { status: None, advertise: None }
    }

    /// Replicated: `status` comes from this manager's election candidate.
    pub fn replicated(status: watch::Receiver<Status>, advertise: &str) -> Ha {
        Ha { status: Some(status), advertise: Some(advertise.to_string()) }
    }

    pub fn advertise(&self) -> Option<&str> {
        self.advertise.as_deref()
    }

    pub fn is_replicated(&self) -> bool {
        self.status.is_some()
    }

    /// True while this manager may act as primary (reads the lease deadline each time).
    pub fn is_primary(&self) -> bool {
        match &self.status {
            None => true,
            Some(rx) => rx.borrow().leader.is_me(),
        }
    }

    /// `primary` or `replica`, as `docker info` shows it.
    pub fn role(&self) -> &'static str {
        if self.is_primary() {
            "primary"
        } else {
            "replica"
        }
    }

    /// The primary's address, when known (this manager's own when it is primary).
    pub fn primary(&self) -> Option<String> {
        let rx = self.status.as_ref()?;
        let leader = rx.borrow().leader.clone();
        match leader {
            l if l.is_me() => self.advertise.clone(),
            Leader::Other(a) => Some(a),
            _ => None,
        }
    }

    /// Times this manager was elected.
    pub fn elections(&self) -> u64 {
        self.status.as_ref().map_or(0, |rx| rx.borrow().elections)
    }

    /// Where to serve a request: waits up to `patience` while no primary is known.
    pub async fn target(&self, patience: Duration) -> Option<Target> {
        let Some(rx) = &self.status else { return Some(Target::Local) };
        let mut rx = rx.clone();
        let wait = async {
            loop {
                let leader = rx.borrow_and_update().leader.clone();
                match leader {
                    l if l.is_me() => return Some(Target::Local),
                    Leader::Other(a) => return Some(Target::Primary(a)),
                    _ => {}
                }
                if rx.changed().await.is_err() {
                    return None;
                }
            }
        };
        tokio::time::timeout(patience, wait).await.ok().flatten()
    }

    /// Resolves when the role or the primary may have changed.
    pub async fn changed(&self) {
        match &self.status {
            Some(rx) => {
                let mut rx = rx.clone();
                if rx.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
            None => std::future::pending().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[tokio::test]
    async fn roles_follow_the_election() {
        assert!(Ha::standalone().is_primary());
        assert_eq!(Ha::standalone().target(Duration::ZERO).await, Some(Target::Local));
        let (tx, rx) = watch::channel(Status { leader: Leader::Unknown, elections: 0 });
        let ha = Ha::replicated(rx, "10.0.0.1:3376");
        assert_eq!(ha.role(), "replica");
        assert_eq!(ha.primary(), None);
        assert_eq!(ha.target(Duration::from_millis(20)).await, None, "no primary known: waits, then gives up");
        let waiting = tokio::spawn({
            let ha = ha.clone();
            async move { ha.target(Duration::from_secs(5)).await }
        });
        tx.send_modify(|s| s.leader = Leader::Other("10.0.0.2:3376".into()));
        assert_eq!(waiting.await.unwrap(), Some(Target::Primary("10.0.0.2:3376".into())));
        tx.send_modify(|s| {
            s.leader = Leader::Me { until: Instant::now() + Duration::from_secs(10) };
            s.elections = 1;
        });
        assert!(ha.is_primary());
        assert_eq!(ha.primary().as_deref(), Some("10.0.0.1:3376"));
        assert_eq!(ha.elections(), 1);
        // A lease past its deadline makes a replica at once, before the election task notices.
        tx.send_modify(|s| s.leader = Leader::Me { until: Instant::now() });
        assert!(!ha.is_primary());
        assert_eq!(ha.role(), "replica");
    }
}
