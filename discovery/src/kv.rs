//! Plain keys in the etcd store of an `etcd://` discovery URL, for what the manager must keep
//! beyond its own life (rescheduling records). Keys are absolute (see [`EtcdDiscovery::under`]).
use crate::{DiscoveryError, EtcdDiscovery};
use etcd_client::GetOptions;

impl EtcdDiscovery {
    /// Writes `key` (no lease: it stays until deleted).
    pub async fn put_key(&self, key: &str, value: Vec<u8>) -> Result<(), DiscoveryError> {
        let mut c = self.client().await?;
        self.op("put", c.put(key, value, None)).await?;
        Ok(())
    }

    pub async fn delete_key(&self, key: &str) -> Result<(), DiscoveryError> {
        let mut c = self.client().await?;
        self.op("delete", c.delete(key, None)).await?;
        Ok(())
    }

    /// Every key under `dir` (a `/` is appended), with its value.
    pub async fn list_keys(&self, dir: &str) -> Result<Vec<(String, Vec<u8>)>, DiscoveryError> {
        let mut c = self.client().await?;
        let resp = self.op("get", c.get(format!("{}/", dir.trim_end_matches('/')), Some(GetOptions::new().with_prefix()))).await?;
        Ok(resp.kvs().iter().map(|kv| (String::from_utf8_lossy(kv.key()).to_string(), kv.value().to_vec())).collect())
    }
}
