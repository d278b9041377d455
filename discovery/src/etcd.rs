//! `etcd://h1:port,h2:port/<prefix>`: etcd v3. An agent's entry is the key
//! `/<prefix>/<kv.path>/<ip:port>` (default kv.path `docker/swarm/nodes`, as classic Swarm),
//! value `ip:port`, attached to a lease of `--ttl` that each heartbeat keeps alive; a node that
//! stops heartbeating vanishes when its lease expires. Watching is driven by etcd's watch API
//! (get the set, then watch from the next revision); when the stream breaks (etcd restarted,
//! connection lost) it re-lists and re-watches with a backoff capped at the heartbeat.
use crate::{watch, Discovery, DiscoveryError, DiscoveryOpts, Entry, TlsFiles, WatchEvent};
use etcd_client::{Client, Compare, CompareOp, ConnectOptions, EventType, GetOptions, PutOptions, Txn, TxnOp, WatchOptions};
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, OnceCell};
use tokio_util::sync::CancellationToken;

/// Time limit of one etcd request (the client retries endpoints meanwhile).
pub const OP_TIMEOUT: Duration = Duration::from_secs(5);
/// First retry delay of a broken watch.
const RETRY_MIN: Duration = Duration::from_millis(100);

#[derive(Clone)]
pub struct EtcdDiscovery {
    inner: Arc<Inner>,
}

struct Inner {
    endpoints: Vec<String>,
    tls: Option<TlsFiles>,
    /// `/<prefix>/<kv.path>`, no trailing slash.
    dir: String,
    /// The URL's `<prefix>` (the leader key and the manager's records live under it too).
    prefix: String,
    client: OnceCell<Client>,
    /// The lease of each entry registered through this client.
    leases: Mutex<HashMap<Entry, i64>>,
}

/// Joins key parts with single slashes and a leading one: `("swarm", "docker/swarm/nodes")`
/// -> `/swarm/docker/swarm/nodes`.
pub fn key_dir(prefix: &str, kv_path: &str) -> String {
    let parts: Vec<&str> = prefix.split('/').chain(kv_path.split('/')).filter(|p| !p.is_empty()).collect();
    format!("/{}", parts.join("/"))
}

impl std::fmt::Debug for EtcdDiscovery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdDiscovery").field("endpoints", &self.inner.endpoints).field("dir", &self.inner.dir).finish()
    }
}

impl EtcdDiscovery {
    /// Parses the part after `etcd://`: `h1:port[,h2:port...][/prefix]`.
    pub fn parse(rest: &str, opts: &DiscoveryOpts) -> Result<Self, DiscoveryError> {
        let url = format!("etcd://{rest}");
        let (hosts, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let mut endpoints = vec![];
        for h in hosts.split(',').map(str::trim).filter(|h| !h.is_empty()) {
            let e = Entry::parse(h).map_err(|e| DiscoveryError::InvalidUrl { url: url.clone(), reason: e.to_string() })?;
            endpoints.push(e.to_string());
        }
        if endpoints.is_empty() {
            return Err(DiscoveryError::InvalidUrl { url, reason: "expected etcd://host:port[,host:port...]/<prefix>".into() });
        }
        Ok(Self::new(endpoints, prefix, opts))
    }

    pub fn new(endpoints: Vec<String>, prefix: &str, opts: &DiscoveryOpts) -> Self {
        EtcdDiscovery {
            inner: Arc::new(Inner {
                endpoints,
                tls: opts.tls.clone(),
                dir: key_dir(prefix, &opts.kv_path),
                prefix: prefix.to_string(),
                client: OnceCell::new(),
                leases: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// `/<prefix>/<kv.path>`: the "directory" under which entries are keys.
    pub fn dir(&self) -> &str {
        &self.inner.dir
    }
    /// A key under the URL's prefix: `under("docker/swarm/leader")` -> `/<prefix>/docker/swarm/leader`.
    pub fn under(&self, path: &str) -> String {
        key_dir(&self.inner.prefix, path)
    }
    /// The key of `e`.
    pub fn key(&self, e: &Entry) -> String {
        format!("{}/{e}", self.inner.dir)
    }
    pub fn endpoints(&self) -> &[String] {
        &self.inner.endpoints
    }

    pub(crate) fn err(&self, reason: impl std::fmt::Display) -> DiscoveryError {
        DiscoveryError::Etcd { endpoints: self.inner.endpoints.join(","), reason: reason.to_string() }
    }

    pub(crate) async fn op<T, F: Future<Output = Result<T, etcd_client::Error>>>(&self, what: &str, f: F) -> Result<T, DiscoveryError> {
        match tokio::time::timeout(OP_TIMEOUT, f).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(self.err(format!("{what}: {}", describe(&e)))),
            Err(_) => Err(self.err(format!("{what}: no answer within {OP_TIMEOUT:?} (is etcd running and reachable?)"))),
        }
    }

    /// The client; connects lazily (the channel reconnects by itself after etcd restarts).
    pub async fn client(&self) -> Result<Client, DiscoveryError> {
        let c = self
            .inner
            .client
            .get_or_try_init(|| async {
                let mut o = ConnectOptions::new()
                    .with_connect_timeout(Duration::from_secs(3))
                    .with_keep_alive(Duration::from_secs(5), Duration::from_secs(3))
                    .with_keep_alive_while_idle(true);
                let mut eps = self.inner.endpoints.clone();
                if let Some(t) = &self.inner.tls {
                    o = o.with_tls(self.tls_options(t)?);
                    eps = eps.into_iter().map(|e| format!("https://{e}")).collect();
                }
                self.op("connect", Client::connect(eps, Some(o))).await
            })
            .await?;
        Ok(c.clone())
    }

    fn tls_options(&self, t: &TlsFiles) -> Result<etcd_client::TlsOptions, DiscoveryError> {
        let read = |p: &std::path::Path| std::fs::read(p).map_err(|e| DiscoveryError::io(p, e));
        let (ca, cert, key) = (read(&t.ca)?, read(&t.cert)?, read(&t.key)?);
        Ok(etcd_client::TlsOptions::new()
            .ca_certificate(etcd_client::Certificate::from_pem(ca))
            .identity(etcd_client::Identity::from_pem(cert, key)))
    }

    fn entries_of(&self, kvs: &[etcd_client::KeyValue]) -> BTreeMap<Vec<u8>, Entry> {
        kvs.iter().filter_map(|kv| Some((kv.key().to_vec(), self.entry_of(kv)?))).collect()
    }

    fn entry_of(&self, kv: &etcd_client::KeyValue) -> Option<Entry> {
        let v = String::from_utf8_lossy(kv.value());
        Entry::parse(&v)
            .map_err(|e| tracing::warn!(key = %String::from_utf8_lossy(kv.key()), error = %e, "ignoring an invalid entry in etcd"))
            .ok()
    }

    /// Keeps `lease` alive once; returns its remaining TTL (0 or less: expired).
    async fn keep_alive(&self, c: &mut Client, lease: i64) -> Result<i64, DiscoveryError> {
        self.op("lease keep-alive", async {
            let (mut keeper, mut stream) = c.lease_keep_alive(lease).await?;
            keeper.keep_alive().await?;
            Ok(stream.message().await?.map(|r| r.ttl()).unwrap_or(0))
        })
        .await
    }

    /// One watch session: list, send, watch until the stream breaks or `stop`.
    async fn watch_session(
        &self,
        tx: &mpsc::Sender<WatchEvent>,
        last: &mut Option<Vec<Entry>>,
        stop: &CancellationToken,
        connected: &mut bool,
    ) -> Result<(), DiscoveryError> {
        let mut c = self.client().await?;
        let prefix = format!("{}/", self.inner.dir);
        let resp = self.op("get", c.get(prefix.clone(), Some(GetOptions::new().with_prefix()))).await?;
        let rev = resp.header().map(|h| h.revision()).unwrap_or(0);
        let mut set = self.entries_of(resp.kvs());
        emit(tx, last, &set).await;
        let opts = WatchOptions::new().with_prefix().with_start_revision(rev + 1);
        let mut stream = self.op("watch", c.watch(prefix, Some(opts))).await?;
        *connected = true;
        loop {
            let msg = tokio::select! {
                _ = stop.cancelled() => return Ok(()),
                _ = tx.closed() => return Ok(()),
                m = stream.message() => m.map_err(|e| self.err(format!("watch: {e}")))?,
            };
            let Some(resp) = msg else { return Err(self.err("watch stream closed")) };
            if resp.canceled() {
                return Err(self.err(format!("watch cancelled: {}", resp.cancel_reason())));
            }
            for ev in resp.events() {
                let Some(kv) = ev.kv() else { continue };
                match ev.event_type() {
                    EventType::Put => match self.entry_of(kv) {
                        Some(e) => set.insert(kv.key().to_vec(), e),
                        None => set.remove(kv.key()),
                    },
                    EventType::Delete => set.remove(kv.key()),
                };
            }
            emit(tx, last, &set).await;
        }
    }
}

/// A short description of a client error: the gRPC status message and meaning rather than the
/// whole debug chain, with a hint when etcd is unreachable.
fn describe(e: &etcd_client::Error) -> String {
    match e {
        etcd_client::Error::GRpcStatus(s) => {
            // gRPC code 14: UNAVAILABLE.
            let unavailable = i32::from(s.code()) == 14;
            let mut msg = format!("{} ({})", s.message(), s.code().description());
            if unavailable {
                msg.push_str(": is etcd running and reachable?");
            }
            msg
        }
        e => e.to_string(),
    }
}

async fn emit(tx: &mpsc::Sender<WatchEvent>, last: &mut Option<Vec<Entry>>, set: &BTreeMap<Vec<u8>, Entry>) {
    let v = watch::canonical(set.values().cloned().collect());
    if last.as_ref() != Some(&v) {
        *last = Some(v.clone());
        let _ = tx.send(Ok(v)).await;
    }
}

impl Discovery for EtcdDiscovery {
    async fn list(&self) -> Result<Vec<Entry>, DiscoveryError> {
        let mut c = self.client().await?;
        let resp = self.op("get", c.get(format!("{}/", self.inner.dir), Some(GetOptions::new().with_prefix()))).await?;
        Ok(watch::canonical(self.entries_of(resp.kvs()).into_values().collect()))
    }

    async fn register(&self, me: &Entry, ttl: Duration) -> Result<(), DiscoveryError> {
        let mut c = self.client().await?;
        let (key, value) = (self.key(me), me.to_string());
        let known = self.inner.leases.lock().unwrap_or_else(|p| p.into_inner()).get(me).copied();
        if let Some(lease) = known {
            if self.keep_alive(&mut c, lease).await? > 0 {
                // The lease lives: put the key back only if someone removed or changed it.
                let txn = Txn::new()
                    .when([
                        Compare::value(key.clone(), CompareOp::Equal, value.clone()),
                        Compare::lease(key.clone(), CompareOp::Equal, lease),
                    ])
                    .or_else([TxnOp::put(key, value, Some(PutOptions::new().with_lease(lease)))]);
                self.op("txn", c.txn(txn)).await?;
                return Ok(());
            }
            tracing::info!(entry = %me, "etcd lease expired; registering again");
        }
        let secs = ttl.as_secs().max(1) as i64;
        let lease = self.op("lease grant", c.lease_grant(secs, None)).await?.id();
        self.op("put", c.put(key, value, Some(PutOptions::new().with_lease(lease)))).await?;
        self.inner.leases.lock().unwrap_or_else(|p| p.into_inner()).insert(me.clone(), lease);
        Ok(())
    }

    async fn deregister(&self, me: &Entry) -> Result<(), DiscoveryError> {
        let mut c = self.client().await?;
        self.op("delete", c.delete(self.key(me), None)).await?;
        let lease = self.inner.leases.lock().unwrap_or_else(|p| p.into_inner()).remove(me);
        if let Some(lease) = lease {
            let _ = self.op("lease revoke", c.lease_revoke(lease)).await;
        }
        Ok(())
    }

    fn watch(&self, heartbeat: Duration, stop: CancellationToken) -> mpsc::Receiver<WatchEvent> {
        let (tx, rx) = mpsc::channel(watch::CHANNEL);
        let d = self.clone();
        tokio::spawn(async move {
            let mut last = None;
            let mut backoff = RETRY_MIN;
            loop {
                let mut connected = false;
                let res = d.watch_session(&tx, &mut last, &stop, &mut connected).await;
                if stop.is_cancelled() || tx.is_closed() {
                    return;
                }
                if connected {
                    backoff = RETRY_MIN;
                }
                if let Err(e) = res {
                    tracing::warn!(error = %e, "etcd watch broken; watching again");
                    if tx.send(Err(e)).await.is_err() {
                        return;
                    }
                }
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tx.closed() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(heartbeat.max(RETRY_MIN));
            }
        });
        rx
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn parses_urls_and_keys() {
        let d = EtcdDiscovery::parse("10.0.0.1:2379,10.0.0.2:2379/swarm", &DiscoveryOpts::default()).unwrap();
        assert_eq!(d.endpoints(), ["10.0.0.1:2379", "10.0.0.2:2379"]);
        assert_eq!(d.dir(), "/swarm/docker/swarm/nodes");
        assert_eq!(d.key(&Entry::parse("10.0.0.5:2375").unwrap()), "/swarm/docker/swarm/nodes/10.0.0.5:2375");
        let o = DiscoveryOpts { kv_path: "docker/nodes".into(), ..Default::default() };
        assert_eq!(EtcdDiscovery::parse("h:1", &o).unwrap().dir(), "/docker/nodes");
        assert_eq!(key_dir("/a/b/", "c"), "/a/b/c");
        assert!(EtcdDiscovery::parse("/swarm", &o).is_err());
        assert!(EtcdDiscovery::parse("h:0/swarm", &o).is_err());
        assert!(EtcdDiscovery::parse("h/swarm", &o).is_err());
        assert!(EtcdDiscovery::parse("h:65536/swarm", &o).is_err());
    }
}
