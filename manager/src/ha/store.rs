//! Records of containers created with `reschedule:on-node-failure`: the create config, where
//! the container is, and a rescheduling in progress. With etcd discovery they live in etcd
//! under `<prefix>/flotilla/reschedule/<com.docker.swarm.id>`, so a new primary finishes what
//! the old one started; with other discovery backends, in this manager's memory.
use discovery::EtcdDiscovery;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Mutex;

/// The records' directory under the discovery prefix.
pub const RECORDS_PATH: &str = "flotilla/reschedule";

/// One reschedulable container.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// `com.docker.swarm.id`: the same on every copy.
    pub swarm_id: String,
    /// The container's name (without `/`).
    pub name: String,
    /// The create body as the scheduler saw it (placement rules in labels, swarm ID set).
    pub config: Value,
    /// The node (address) that holds the container.
    pub node: String,
    /// Its name (kept: a node gone from discovery has no name to ask for).
    #[serde(default)]
    pub node_name: String,
    /// The container's ID there.
    pub id: String,
    /// A rescheduling under way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub moving: Option<Move>,
}

/// A rescheduling that has started: written before the new copy is created.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Move {
    /// The failed node (address and name) and the container's ID there.
    pub from: String,
    #[serde(default)]
    pub from_name: String,
    pub old_id: String,
    /// Whether the new copy is started (the old one was running).
    pub start: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("reschedule records: {0}")]
    Etcd(#[from] discovery::DiscoveryError),
    #[error("reschedule record {key}: {error}")]
    Decode { key: String, error: serde_json::Error },
}

/// Where the records live.
pub enum Store {
    Memory(Mutex<BTreeMap<String, Record>>),
    Etcd { etcd: EtcdDiscovery, dir: String },
}

impl Store {
    pub fn memory() -> Store {
        Store::Memory(Mutex::new(BTreeMap::new()))
    }

    pub fn etcd(etcd: EtcdDiscovery) -> Store {
        let dir = etcd.under(RECORDS_PATH);
        Store::Etcd { etcd, dir }
    }

    fn mem(m: &Mutex<BTreeMap<String, Record>>) -> std::sync::MutexGuard<'_, BTreeMap<String, Record>> {
        m.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub async fn put(&self, r: &Record) -> Result<(), StoreError> {
        match self {
            Store::Memory(m) => {
                Self::mem(m).insert(r.swarm_id.clone(), r.clone());
                Ok(())
            }
            Store::Etcd { etcd, dir } => {
                let key = format!("{dir}/{}", r.swarm_id);
                let data = serde_json::to_vec(r).map_err(|error| StoreError::Decode { key: key.clone(), error })?;
                Ok(etcd.put_key(&key, data).await?)
            }
        }
    }

    pub async fn delete(&self, swarm_id: &str) -> Result<(), StoreError> {
        match self {
            Store::Memory(m) => {
                Self::mem(m).remove(swarm_id);
                Ok(())
            }
            Store::Etcd { etcd, dir } => Ok(etcd.delete_key(&format!("{dir}/{swarm_id}")).await?),
        }
    }

    /// Every record; undecodable ones are logged and skipped.
    pub async fn list(&self) -> Result<Vec<Record>, StoreError> {
        match self {
            Store::Memory(m) => Ok(Self::mem(m).values().cloned().collect()),
            Store::Etcd { etcd, dir } => {
                let mut out = vec![];
                for (key, value) in etcd.list_keys(dir).await? {
                    match serde_json::from_slice(&value) {
                        Ok(r) => out.push(r),
                        Err(error) => tracing::warn!(%key, "{}", StoreError::Decode { key: key.clone(), error }),
                    }
                }
                Ok(out)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[tokio::test]
    async fn memory_store_keeps_one_record_per_swarm_id() {
        let s = Store::memory();
        let mut r = Record {
            swarm_id: "s1".into(),
            name: "web".into(),
            config: serde_json::json!({"Image": "busybox"}),
            node: "a:1".into(),
            node_name: "n1".into(),
            id: "c1".into(),
            moving: None,
        };
        s.put(&r).await.unwrap();
        r.moving = Some(Move { from: "a:1".into(), from_name: "n1".into(), old_id: "c1".into(), start: true });
        s.put(&r).await.unwrap();
        assert_eq!(s.list().await.unwrap(), vec![r.clone()]);
        let text = serde_json::to_string(&r).unwrap();
        assert_eq!(serde_json::from_str::<Record>(&text).unwrap(), r);
        s.delete("s1").await.unwrap();
        assert!(s.list().await.unwrap().is_empty());
    }
}
