//! The cluster store of overlay networks in etcd (v3). Keys under `/<prefix>/networks/`:
//! - `net/<network id>`: a [`GlobalNetwork`] (JSON);
//! - `rev`: bumped by every network create/remove; creates compare its mod revision with the one
//!   they read (compare-and-put), so name, VNI and subnet checks hold cluster-wide;
//! - `ipam/<network id>/<ip>`: an address claim (container id), created only if absent, under
//!   the claiming engine's lease;
//! - `ep/<network id>/<container id>`: a [`RemoteEndpoint`], under the engine's lease.
use super::config::ClusterStore;
use crate::network::store::Network;
use etcd_client::{Client, Compare, CompareOp, ConnectOptions, GetOptions, PutOptions, Txn, TxnOp, WatchOptions, WatchStream};
use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;
use std::time::Duration;

/// Every call to etcd gives up after this long.
const OP_TIMEOUT: Duration = Duration::from_secs(5);
/// TTL of the engine's lease (claims and endpoints vanish this long after an engine dies).
pub const LEASE_TTL: i64 = 10;

#[derive(Debug, thiserror::Error)]
pub enum KvError {
    #[error("cluster store {endpoints}: {what}: {reason}")]
    Store { endpoints: String, what: String, reason: String },
    #[error("cluster store: bad record {key}: {reason}")]
    Record { key: String, reason: String },
}

/// An overlay network as every engine of the store sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GlobalNetwork {
    pub net: Network,
    pub vni: u32,
}

/// A container's endpoint on an overlay network, as published by its engine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteEndpoint {
    pub network_id: String,
    pub container_id: String,
    pub name: String,
    #[serde(default)]
    pub aliases: Vec<String>,
    pub ip: Ipv4Addr,
    pub mac: String,
    /// The advertise address of the engine that runs the container (its VXLAN endpoint).
    pub vtep: Ipv4Addr,
}

/// Everything under `networks/` at one revision.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub revision: i64,
    /// Mod revision of the `rev` key (0 when absent).
    pub rev_mod: i64,
    pub networks: Vec<GlobalNetwork>,
    pub endpoints: Vec<RemoteEndpoint>,
    /// (network id, address)
    pub claims: Vec<(String, Ipv4Addr)>,
}

#[derive(Clone)]
pub struct Kv {
    client: Client,
    base: String,
    endpoints: String,
}

impl Kv {
    /// Connects (lazily: the channel reconnects by itself).
    pub async fn connect(cfg: &ClusterStore) -> Result<Kv, KvError> {
        let endpoints = cfg.endpoints.join(",");
        let err = |what: &str, reason: String| KvError::Store { endpoints: endpoints.clone(), what: what.into(), reason };
        let mut o = ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(3))
            .with_keep_alive(Duration::from_secs(5), Duration::from_secs(3));
        let mut eps = cfg.endpoints.clone();
        if let Some(t) = &cfg.tls {
            let read = |p: &std::path::Path| std::fs::read(p).map_err(|e| err("TLS files", format!("{}: {e}", p.display())));
            let (ca, cert, key) = (read(&t.ca)?, read(&t.cert)?, read(&t.key)?);
            o = o.with_tls(
                etcd_client::TlsOptions::new()
                    .ca_certificate(etcd_client::Certificate::from_pem(ca))
                    .identity(etcd_client::Identity::from_pem(cert, key)),
            );
            eps = eps.into_iter().map(|e| format!("https://{e}")).collect();
        }
        let client = match tokio::time::timeout(OP_TIMEOUT, Client::connect(eps, Some(o))).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => return Err(err("connect", e.to_string())),
            Err(_) => return Err(err("connect", format!("no answer within {OP_TIMEOUT:?}"))),
        };
        let base = if cfg.prefix.is_empty() { "/networks/".to_string() } else { format!("/{}/networks/", cfg.prefix) };
        Ok(Kv { client, base, endpoints })
    }

    async fn op<T>(&self, what: &str, f: impl std::future::Future<Output = Result<T, etcd_client::Error>>) -> Result<T, KvError> {
        let err = |reason: String| KvError::Store { endpoints: self.endpoints.clone(), what: what.into(), reason };
        match tokio::time::timeout(OP_TIMEOUT, f).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(err(e.to_string())),
            Err(_) => Err(err(format!("no answer within {OP_TIMEOUT:?} (is etcd running and reachable?)"))),
        }
    }

    fn net_key(&self, id: &str) -> String {
        format!("{}net/{id}", self.base)
    }
    fn rev_key(&self) -> String {
        format!("{}rev", self.base)
    }
    fn claim_key(&self, net: &str, ip: Ipv4Addr) -> String {
        format!("{}ipam/{net}/{ip}", self.base)
    }
    fn ep_key(&self, net: &str, cid: &str) -> String {
        format!("{}ep/{net}/{cid}", self.base)
    }

    /// Everything under `networks/`.
    pub async fn snapshot(&self) -> Result<Snapshot, KvError> {
        let mut c = self.client.clone();
        let resp = self.op("get", c.get(self.base.clone(), Some(GetOptions::new().with_prefix()))).await?;
        let mut s = Snapshot { revision: resp.header().map(|h| h.revision()).unwrap_or(0), ..Default::default() };
        for kv in resp.kvs() {
            let key = String::from_utf8_lossy(kv.key()).into_owned();
            let Some(rest) = key.strip_prefix(&self.base) else { continue };
            let bad = |reason: String| KvError::Record { key: key.clone(), reason };
            if rest == "rev" {
                s.rev_mod = kv.mod_revision();
            } else if rest.starts_with("net/") {
                s.networks.push(serde_json::from_slice(kv.value()).map_err(|e| bad(e.to_string()))?);
            } else if rest.starts_with("ep/") {
                s.endpoints.push(serde_json::from_slice(kv.value()).map_err(|e| bad(e.to_string()))?);
            } else if let Some(c) = rest.strip_prefix("ipam/") {
                if let Some((net, ip)) = c.split_once('/') {
                    s.claims.push((net.to_string(), ip.parse().map_err(|_| bad("not an address".into()))?));
                }
            }
        }
        Ok(s)
    }

    /// Writes `g` if nothing changed the set of networks since `snap` was read; `false` when
    /// something did (read again and retry).
    pub async fn create_network(&self, snap: &Snapshot, g: &GlobalNetwork) -> Result<bool, KvError> {
        let v = serde_json::to_vec(g).map_err(|e| KvError::Record { key: g.net.id.clone(), reason: e.to_string() })?;
        let txn = Txn::new()
            .when([Compare::mod_revision(self.rev_key(), CompareOp::Equal, snap.rev_mod)])
            .and_then([TxnOp::put(self.net_key(&g.net.id), v, None), TxnOp::put(self.rev_key(), "", None)]);
        let mut c = self.client.clone();
        Ok(self.op("create network", c.txn(txn)).await?.succeeded())
    }

    /// Deletes a network and its claims, if nothing changed since `snap` was read.
    pub async fn remove_network(&self, snap: &Snapshot, id: &str) -> Result<bool, KvError> {
        let txn = Txn::new().when([Compare::mod_revision(self.rev_key(), CompareOp::Equal, snap.rev_mod)]).and_then([
            TxnOp::delete(self.net_key(id), None),
            TxnOp::delete(format!("{}ipam/{id}/", self.base), Some(etcd_client::DeleteOptions::new().with_prefix())),
            TxnOp::put(self.rev_key(), "", None),
        ]);
        let mut c = self.client.clone();
        Ok(self.op("remove network", c.txn(txn)).await?.succeeded())
    }

    /// Claims `ip` on network `net` for container `cid` under `lease`: `Ok(false)` when it is
    /// taken (or the network is gone).
    pub async fn claim(&self, net: &str, ip: Ipv4Addr, cid: &str, lease: i64) -> Result<bool, KvError> {
        let key = self.claim_key(net, ip);
        let txn = Txn::new()
            .when([Compare::version(key.clone(), CompareOp::Equal, 0), Compare::version(self.net_key(net), CompareOp::Greater, 0)])
            .and_then([TxnOp::put(key, cid, Some(PutOptions::new().with_lease(lease)))]);
        let mut c = self.client.clone();
        Ok(self.op("claim address", c.txn(txn)).await?.succeeded())
    }

    /// Claims `ip` for `cid` again under `lease`: `Ok(false)` when another container holds it.
    pub async fn reclaim(&self, net: &str, ip: Ipv4Addr, cid: &str, lease: i64) -> Result<bool, KvError> {
        let key = self.claim_key(net, ip);
        let txn = Txn::new().when([Compare::value(key.clone(), CompareOp::Equal, cid)]).and_then([TxnOp::put(
            key,
            cid,
            Some(PutOptions::new().with_lease(lease)),
        )]);
        let mut c = self.client.clone();
        if self.op("claim address again", c.txn(txn)).await?.succeeded() {
            return Ok(true);
        }
        self.claim(net, ip, cid, lease).await
    }

    /// Gives back `ip` on `net` if `cid` holds it.
    pub async fn release(&self, net: &str, ip: Ipv4Addr, cid: &str) -> Result<(), KvError> {
        let key = self.claim_key(net, ip);
        let txn = Txn::new().when([Compare::value(key.clone(), CompareOp::Equal, cid)]).and_then([TxnOp::delete(key, None)]);
        let mut c = self.client.clone();
        self.op("release address", c.txn(txn)).await.map(|_| ())
    }

    pub async fn put_endpoint(&self, ep: &RemoteEndpoint, lease: i64) -> Result<(), KvError> {
        let v = serde_json::to_vec(ep).map_err(|e| KvError::Record { key: ep.container_id.clone(), reason: e.to_string() })?;
        let mut c = self.client.clone();
        self.op("put endpoint", c.put(self.ep_key(&ep.network_id, &ep.container_id), v, Some(PutOptions::new().with_lease(lease))))
            .await
            .map(|_| ())
    }

    pub async fn delete_endpoint(&self, net: &str, cid: &str) -> Result<(), KvError> {
        let mut c = self.client.clone();
        self.op("delete endpoint", c.delete(self.ep_key(net, cid), None)).await.map(|_| ())
    }

    pub async fn grant(&self) -> Result<i64, KvError> {
        let mut c = self.client.clone();
        Ok(self.op("lease grant", c.lease_grant(LEASE_TTL, None)).await?.id())
    }

    /// One keep-alive; the remaining TTL (0: the lease is gone).
    pub async fn keep_alive(&self, lease: i64) -> Result<i64, KvError> {
        let mut c = self.client.clone();
        self.op("lease keep-alive", async move {
            let (mut keeper, mut stream) = c.lease_keep_alive(lease).await?;
            keeper.keep_alive().await?;
            Ok(stream.message().await?.map(|r| r.ttl()).unwrap_or(0))
        })
        .await
    }

    pub async fn revoke(&self, lease: i64) -> Result<(), KvError> {
        let mut c = self.client.clone();
        self.op("lease revoke", c.lease_revoke(lease)).await.map(|_| ())
    }

    /// Watches everything under `networks/` from `revision + 1`.
    pub async fn watch(&self, revision: i64) -> Result<WatchStream, KvError> {
        let mut c = self.client.clone();
        self.op("watch", c.watch(self.base.clone(), Some(WatchOptions::new().with_prefix().with_start_revision(revision + 1)))).await
    }
}
