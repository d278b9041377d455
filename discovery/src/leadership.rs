//! Leader election on etcd, as classic Swarm's `docker/leadership` (a libkv lock with a TTL):
//! the leader holds the key `<prefix>/docker/swarm/leader`, value = its advertised address,
//! attached to a lease of `--replication-ttl`; candidates that lose watch the key and campaign
//! again when it is deleted (the leader resigned, or its lease expired).
//!
//! What classic Swarm did not have: the leader knows how long its lease surely lives. Each
//! keep-alive is timed from the moment it was *sent* (etcd cannot have received it earlier), so
//! `Leader::Me { until }` ends before etcd can expire the lease and let another candidate in.
//! [`Leader::is_me`] reads the clock at each call: a leader cut off from etcd stops leading at
//! `until` even if its own task is late, so two leaders never overlap.
use crate::{DiscoveryError, EtcdDiscovery};
use etcd_client::{
    Client, Compare, CompareOp, EventType, LeaseKeepAliveStream, LeaseKeeper, PutOptions, Txn, TxnOp, TxnOpResponse, WatchOptions,
};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// The key under the discovery prefix, as classic Swarm.
pub const LEADER_PATH: &str = "docker/swarm/leader";

/// Who leads, as this candidate knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Leader {
    /// No leader known: an election is under way, or etcd cannot be reached.
    Unknown,
    /// This candidate, while its lease surely lives: until `until`.
    Me { until: Instant },
    /// Another candidate, by its advertised address.
    Other(String),
}

impl Leader {
    /// True while this candidate leads and its lease surely lives (reads the clock).
    pub fn is_me(&self) -> bool {
        matches!(self, Leader::Me { until } if Instant::now() < *until)
    }
}

/// What a candidate publishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub leader: Leader,
    /// How many times this candidate has been elected.
    pub elections: u64,
}

/// One candidate: campaigns, leads while its lease lives, follows otherwise.
pub struct Candidate {
    etcd: EtcdDiscovery,
    key: String,
    me: String,
    ttl: Duration,
    /// The lease that holds the key while leading (revoked on resignation).
    lease: Arc<Mutex<Option<i64>>>,
}

/// Why a term or a follow ended.
enum End {
    /// The key is free: campaign at once.
    Free,
}

impl Candidate {
    /// `me` is the advertised `host:port`; `ttl` is rounded up to whole seconds (etcd's unit).
    pub fn new(etcd: EtcdDiscovery, me: &str, ttl: Duration) -> Candidate {
        let key = etcd.under(LEADER_PATH);
        let ttl = Duration::from_secs(ttl.as_secs_f64().ceil().max(1.0) as u64);
        Candidate { etcd, key, me: me.to_string(), ttl, lease: Default::default() }
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    /// Campaigns until `stop`, then resigns (the lease is revoked, so a replica takes over at
    /// once). The receiver sees every change of leader.
    pub fn run(self, stop: CancellationToken) -> watch::Receiver<Status> {
        let (tx, rx) = watch::channel(Status { leader: Leader::Unknown, elections: 0 });
        tokio::spawn(async move {
            let retry = (self.ttl / 3).clamp(Duration::from_millis(200), Duration::from_secs(1));
            loop {
                let r = tokio::select! {
                    r = self.round(&tx) => r,
                    _ = stop.cancelled() => break,
                };
                match r {
                    Ok(End::Free) => continue,
                    Err(e) => {
                        tracing::warn!(error = %e, "leader election: etcd error; campaigning again");
                        tx.send_modify(|s| {
                            if matches!(s.leader, Leader::Me { .. }) {
                                s.leader = Leader::Unknown;
                            }
                        });
                        self.revoke().await;
                        tokio::select! {
                            _ = tokio::time::sleep(retry) => {}
                            _ = stop.cancelled() => break,
                        }
                    }
                }
            }
            tx.send_modify(|s| s.leader = Leader::Unknown);
            self.revoke().await;
        });
        rx
    }

    /// Drops the lease held as leader, if any (best effort: etcd expires it anyway).
    async fn revoke(&self) {
        let lease = self.lease.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(lease) = lease {
            if let Ok(mut c) = self.etcd.client().await {
                let _ = self.etcd.op("lease revoke", c.lease_revoke(lease)).await;
            }
        }
    }

    /// One campaign: take the key if it is free and lead, or follow its holder.
    async fn round(&self, tx: &watch::Sender<Status>) -> Result<End, DiscoveryError> {
        let mut c = self.etcd.client().await?;
        let sent = Instant::now();
        let grant = self.etcd.op("lease grant", c.lease_grant(self.ttl.as_secs() as i64, None)).await?;
        let lease = grant.id();
        *self.lease.lock().unwrap_or_else(|p| p.into_inner()) = Some(lease);
        let txn = Txn::new()
            .when([Compare::create_revision(self.key.clone(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(self.key.clone(), self.me.clone(), Some(PutOptions::new().with_lease(lease)))])
            .or_else([TxnOp::get(self.key.clone(), None)]);
        let resp = self.etcd.op("txn", c.txn(txn)).await?;
        let rev = resp.header().map(|h| h.revision()).unwrap_or(0);
        if resp.succeeded() {
            let ttl = Duration::from_secs(grant.ttl().max(1) as u64);
            return self.lead(&mut c, lease, sent + ttl, rev, tx).await;
        }
        self.revoke().await;
        let holder = resp.op_responses().into_iter().find_map(|r| match r {
            TxnOpResponse::Get(g) => g.kvs().first().map(|kv| String::from_utf8_lossy(kv.value()).to_string()),
            _ => None,
        });
        match holder {
            // Deleted between the compare and the get: campaign again.
            None => Ok(End::Free),
            Some(h) => {
                self.publish_other(tx, &h);
                self.follow(&mut c, rev, tx).await
            }
        }
    }

    fn publish_other(&self, tx: &watch::Sender<Status>, holder: &str) {
        // Our own address under a lease we do not hold: an earlier run of this manager that
        // died. Nobody serves as leader until that lease expires.
        let leader = if holder == self.me { Leader::Unknown } else { Leader::Other(holder.to_string()) };
        tx.send_if_modified(|s| {
            let changed = s.leader != leader;
            s.leader = leader;
            changed
        });
    }

    /// The margin kept between our own deadline and etcd's (clock rates, scheduling).
    fn margin(&self) -> Duration {
        (self.ttl / 10).max(Duration::from_millis(200))
    }

    /// Leads while the lease lives; returns when it is lost or the key is taken away.
    async fn lead(
        &self,
        c: &mut Client,
        lease: i64,
        expires: Instant,
        rev: i64,
        tx: &watch::Sender<Status>,
    ) -> Result<End, DiscoveryError> {
        let mut until = expires - self.margin();
        tx.send_modify(|s| {
            s.leader = Leader::Me { until };
            s.elections += 1;
        });
        tracing::info!(key = %self.key, leader = %self.me, "elected primary");
        let mut keep: Option<(LeaseKeeper, LeaseKeepAliveStream)> = None;
        let opts = WatchOptions::new().with_start_revision(rev + 1);
        let mut watch = self.etcd.op("watch", c.watch(self.key.clone(), Some(opts))).await.ok();
        let period = self.ttl / 3;
        let mut next = Instant::now() + period;
        let step_down = |why: &str| {
            tx.send_modify(|s| s.leader = Leader::Unknown);
            tracing::warn!(reason = why, "stepping down as primary");
        };
        loop {
            let now = Instant::now();
            if now >= until {
                step_down("the lease could not be renewed in time");
                return Err(self.etcd.err("leader lease not renewed in time"));
            }
            // Wake for the next keep-alive, or at the deadline, or when the key changes.
            let wake = next.min(until);
            let changed = async {
                match watch.as_mut() {
                    Some(w) => w.message().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = tokio::time::sleep_until(wake.into()) => {}
                m = changed => {
                    match m {
                        Ok(Some(resp)) => {
                            let lost = resp.events().iter().any(|ev| match ev.event_type() {
                                EventType::Delete => true,
                                EventType::Put => ev.kv().is_some_and(|kv| kv.value() != self.me.as_bytes()),
                            });
                            if lost {
                                step_down("the leader key was removed or taken");
                                return Ok(End::Free);
                            }
                        }
                        // A broken watch: the keep-alives alone decide.
                        _ => watch = None,
                    }
                    continue;
                }
            }
            if Instant::now() < next {
                continue;
            }
            let sent = Instant::now();
            let left = until.saturating_duration_since(sent);
            let r = tokio::time::timeout(left, async {
                if keep.is_none() {
                    keep = Some(c.lease_keep_alive(lease).await?);
                }
                let (k, s) = keep.as_mut().expect("set above");
                k.keep_alive().await?;
                s.message().await
            })
            .await;
            match r {
                Ok(Ok(Some(resp))) if resp.ttl() > 0 => {
                    until = sent + Duration::from_secs(resp.ttl() as u64) - self.margin();
                    tx.send_modify(|s| s.leader = Leader::Me { until });
                    next = sent + period;
                }
                Ok(Ok(Some(_))) => {
                    step_down("the lease expired");
                    return Ok(End::Free);
                }
                other => {
                    if let Ok(Err(e)) = &other {
                        tracing::debug!(error = %e, "leader keep-alive failed");
                    }
                    // Open a new keep-alive stream and try again soon.
                    keep = None;
                    next = Instant::now() + Duration::from_millis(200).min(period);
                }
            }
        }
    }

    /// Follows the key's holder until the key is deleted.
    async fn follow(&self, c: &mut Client, rev: i64, tx: &watch::Sender<Status>) -> Result<End, DiscoveryError> {
        let opts = WatchOptions::new().with_start_revision(rev + 1);
        let mut stream = self.etcd.op("watch", c.watch(self.key.clone(), Some(opts))).await?;
        loop {
            let msg = stream.message().await.map_err(|e| self.etcd.err(format!("watch: {e}")))?;
            let Some(resp) = msg else { return Err(self.etcd.err("watch stream closed")) };
            if resp.canceled() {
                return Err(self.etcd.err(format!("watch cancelled: {}", resp.cancel_reason())));
            }
            for ev in resp.events() {
                match ev.event_type() {
                    EventType::Delete => {
                        tx.send_modify(|s| s.leader = Leader::Unknown);
                        return Ok(End::Free);
                    }
                    EventType::Put => {
                        if let Some(kv) = ev.kv() {
                            self.publish_other(tx, &String::from_utf8_lossy(kv.value()));
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn leadership_ends_at_its_deadline() {
        assert!(Leader::Me { until: Instant::now() + Duration::from_secs(5) }.is_me());
        assert!(!Leader::Me { until: Instant::now() - Duration::from_millis(1) }.is_me());
        assert!(!Leader::Other("a:1".into()).is_me());
        assert!(!Leader::Unknown.is_me());
    }

    #[test]
    fn key_and_ttl() {
        let d = EtcdDiscovery::parse("127.0.0.1:2379/swarm", &Default::default()).unwrap();
        let c = Candidate::new(d, "10.0.0.1:3376", Duration::from_millis(2500));
        assert_eq!(c.key(), "/swarm/docker/swarm/leader");
        assert_eq!(c.ttl, Duration::from_secs(3));
        assert_eq!(c.margin(), Duration::from_millis(300));
    }
}
