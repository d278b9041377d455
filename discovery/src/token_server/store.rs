//! The token service's store: clusters in memory, one JSON file per cluster under
//! `<data>/clusters/<token>.json`, written atomically.
//!
//! Creating and deleting a cluster reach the disk before the reply. Registrations are
//! heartbeats, so they are flushed in the background (every [`FLUSH_EVERY`] and at shutdown): a
//! crash loses at most that much of TTL refresh, which the next heartbeat restores, and keeps the
//! service fast (an fsync per heartbeat would cap it at a few hundred registrations/s). Expiry
//! times are wall-clock, so entries keep their remaining TTL across a restart.
//!
//! Every cluster has an index that grows whenever its set of live entries changes (a new entry,
//! a removal, an expiry seen by [`TokenStore::flush`]), as Consul's `X-Consul-Index`; blocking
//! lists wait for it to move ([`TokenStore::changes`]). Indexes start at the opening time in
//! milliseconds, so they only grow across restarts of the service.
use crate::fsutil;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How often registrations are written to disk.
pub const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// What one store holds at most (`swarm token-service --max-clusters/--max-entries/--max-ttl`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreLimits {
    pub max_clusters: usize,
    /// Entries per cluster (live or not yet flushed as expired).
    pub max_entries: usize,
    /// Longest `?ttl=` of a registration.
    pub max_ttl: Duration,
}

impl Default for StoreLimits {
    /// 100,000 clusters of up to 10,000 entries (a 10,000-node cluster fits), TTLs up to a day.
    fn default() -> Self {
        StoreLimits { max_clusters: 100_000, max_entries: 10_000, max_ttl: Duration::from_secs(24 * 3600) }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("no cluster with token {:?} (create one with `swarm create`)", crate::token::redact(.0))]
    NotFound(String),
    #[error("token service store {path}: {error}")]
    Io { path: PathBuf, error: std::io::Error },
    #[error("token service store {path}: {source}")]
    Encode { path: PathBuf, source: serde_json::Error },
    #[error("the token service holds its maximum of {max} clusters (swarm token-service --max-clusters): delete unused clusters or raise the limit")]
    TooManyClusters { max: usize },
    #[error("cluster {} has its maximum of {max} entries (swarm token-service --max-entries): entry {entry} refused", crate::token::redact(.token))]
    TooManyEntries { token: String, entry: String, max: usize },
    #[error("ttl {ttl}s is above the token service's limit of {max}s (swarm token-service --max-ttl)")]
    TtlTooLong { ttl: u64, max: u64 },
    #[error("cannot read the operating system's random generator: {0}")]
    Entropy(String),
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
struct Cluster {
    /// Creation time, unix seconds.
    created: u64,
    /// `ip:port` -> expiry, unix milliseconds.
    nodes: BTreeMap<String, u64>,
}

#[derive(Default)]
struct State {
    clusters: HashMap<String, Cluster>,
    dirty: HashSet<String>,
    /// Membership index per cluster (absent: `base`).
    index: HashMap<String, u64>,
    /// The index every cluster starts at (the store's opening time, ms).
    base: u64,
}

impl State {
    fn index(&self, token: &str) -> u64 {
        self.index.get(token).copied().unwrap_or(self.base)
    }
    /// Moves `token`'s index past every index handed out so far.
    fn bump(&mut self, token: &str) {
        let next = self.index(token).max(now_ms()) + 1;
        self.index.insert(token.to_string(), next);
    }
}

pub struct TokenStore {
    dir: PathBuf,
    limits: StoreLimits,
    state: Mutex<State>,
    /// Serializes file writes and removals so a flush never resurrects a deleted cluster.
    io: Mutex<()>,
    /// Counts membership changes of any cluster: what blocking lists wait on.
    changes: tokio::sync::watch::Sender<u64>,
    /// Set when the service shuts down: blocking lists answer at once.
    closing: std::sync::atomic::AtomicBool,
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

fn valid_token(t: &str) -> bool {
    !t.is_empty() && t.len() <= 128 && t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl TokenStore {
    /// Opens (creating) the store under `data` with the default [`StoreLimits`].
    pub fn open(data: &Path) -> Result<TokenStore, StoreError> {
        Self::open_with(data, StoreLimits::default())
    }

    /// Opens (creating) the store under `data`, loading every cluster file. `data` and its
    /// `clusters/` are made 0700 and the cluster files 0600 (file names are the tokens).
    pub fn open_with(data: &Path, limits: StoreLimits) -> Result<TokenStore, StoreError> {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        let dir = data.join("clusters");
        let io = |error| StoreError::Io { path: dir.clone(), error };
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&dir).map_err(io)?;
        for d in [data, dir.as_path()] {
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o700))
                .map_err(|error| StoreError::Io { path: d.to_path_buf(), error })?;
        }
        fsutil::remove_stale_tmp(&dir);
        let mut state = State { base: now_ms(), ..State::default() };
        for e in std::fs::read_dir(&dir).map_err(io)?.flatten() {
            let p = e.path();
            let Some(token) = p.file_stem().and_then(|s| s.to_str()).filter(|_| p.extension().is_some_and(|x| x == "json")) else {
                continue;
            };
            if !valid_token(token) {
                continue;
            }
            if let Err(e) = std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)) {
                tracing::warn!(token = %crate::token::redact(token), error = %e, "cannot make a cluster file 0600");
            }
            match std::fs::read(&p)
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice::<Cluster>(&b).map_err(|e| e.to_string()))
            {
                Ok(c) => {
                    state.clusters.insert(token.to_string(), c);
                }
                Err(e) => tracing::warn!(token = %crate::token::redact(token), error = %e, "skipping an unreadable cluster file"),
            }
        }
        tracing::info!(clusters = state.clusters.len(), dir = %dir.display(), "token store opened");
        Ok(TokenStore {
            dir,
            limits,
            state: Mutex::new(state),
            io: Mutex::new(()),
            changes: tokio::sync::watch::channel(0).0,
            closing: Default::default(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
    fn lock_io(&self) -> std::sync::MutexGuard<'_, ()> {
        self.io.lock().unwrap_or_else(|p| p.into_inner())
    }
    fn path(&self, token: &str) -> PathBuf {
        self.dir.join(format!("{token}.json"))
    }
    /// The path of `token`'s file as errors show it (the token redacted).
    fn shown_path(&self, token: &str) -> PathBuf {
        self.dir.join(format!("{}.json", crate::token::redact(token)))
    }
    fn write(&self, token: &str, c: &Cluster) -> Result<(), StoreError> {
        let p = self.path(token);
        let data = serde_json::to_vec(c).map_err(|source| StoreError::Encode { path: self.shown_path(token), source })?;
        fsutil::write_atomic_mode(&p, &data, 0o600).map_err(|error| StoreError::Io { path: self.shown_path(token), error })
    }

    pub fn limits(&self) -> StoreLimits {
        self.limits
    }

    /// Creates a cluster (durably) and returns its token: 32 lowercase hex digits, 128 bits
    /// read from the operating system's CSPRNG (getrandom(2)).
    pub fn create(&self) -> Result<String, StoreError> {
        use rand::TryRng;
        let mut bytes = [0u8; 16];
        rand::rngs::SysRng.try_fill_bytes(&mut bytes).map_err(|e| StoreError::Entropy(e.to_string()))?;
        let token = hex::encode(bytes);
        let c = Cluster { created: now_ms() / 1000, nodes: BTreeMap::new() };
        // Clusters are only added under the io lock: the count cannot move under us.
        let _io = self.lock_io();
        if self.lock().clusters.len() >= self.limits.max_clusters {
            return Err(StoreError::TooManyClusters { max: self.limits.max_clusters });
        }
        self.write(&token, &c)?;
        self.lock().clusters.insert(token.clone(), c);
        Ok(token)
    }

    /// Wakes the blocking lists.
    fn changed(&self) {
        self.changes.send_modify(|n| *n += 1);
    }

    /// Ends every blocking list (the service is shutting down).
    pub fn close(&self) {
        self.closing.store(true, std::sync::atomic::Ordering::SeqCst);
        self.changed();
    }

    pub fn is_closing(&self) -> bool {
        self.closing.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// A receiver that sees every membership change after this call.
    pub fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Registers `entry` in `token` for `ttl`. A TTL above the limit, and a new entry in a
    /// cluster at its limit of entries, are refused.
    pub fn register(&self, token: &str, entry: &str, ttl: Duration) -> Result<(), StoreError> {
        let max = self.limits;
        if ttl > max.max_ttl {
            return Err(StoreError::TtlTooLong { ttl: ttl.as_secs(), max: max.max_ttl.as_secs() });
        }
        let now = now_ms();
        let mut s = self.lock();
        let c = s.clusters.get_mut(token).ok_or_else(|| StoreError::NotFound(token.to_string()))?;
        if !c.nodes.contains_key(entry) && c.nodes.len() >= max.max_entries {
            // Expired entries not flushed yet make room first.
            let before = c.nodes.len();
            c.nodes.retain(|_, exp| *exp > now);
            let full = c.nodes.len() >= max.max_entries;
            if c.nodes.len() != before {
                s.dirty.insert(token.to_string());
                s.bump(token);
                self.changed();
            }
            if full {
                return Err(StoreError::TooManyEntries { token: token.to_string(), entry: entry.to_string(), max: max.max_entries });
            }
        }
        let c = s.clusters.get_mut(token).ok_or_else(|| StoreError::NotFound(token.to_string()))?;
        let new = c.nodes.insert(entry.to_string(), now + ttl.as_millis() as u64).is_none_or(|exp| exp <= now);
        s.dirty.insert(token.to_string());
        if new {
            s.bump(token);
            drop(s);
            self.changed();
        }
        Ok(())
    }

    /// Removes `entry` from `token` now.
    pub fn deregister(&self, token: &str, entry: &str) -> Result<(), StoreError> {
        let mut s = self.lock();
        let c = s.clusters.get_mut(token).ok_or_else(|| StoreError::NotFound(token.to_string()))?;
        if c.nodes.remove(entry).is_some() {
            s.dirty.insert(token.to_string());
            s.bump(token);
            drop(s);
            self.changed();
        }
        Ok(())
    }

    /// The live entries of `token`, sorted.
    pub fn list(&self, token: &str) -> Result<Vec<String>, StoreError> {
        self.list_indexed(token).map(|(v, _)| v)
    }

    /// The live entries of `token`, sorted, and the cluster's membership index.
    pub fn list_indexed(&self, token: &str) -> Result<(Vec<String>, u64), StoreError> {
        let now = now_ms();
        let s = self.lock();
        let c = s.clusters.get(token).ok_or_else(|| StoreError::NotFound(token.to_string()))?;
        Ok((c.nodes.iter().filter(|(_, exp)| **exp > now).map(|(e, _)| e.clone()).collect(), s.index(token)))
    }

    /// Deletes the cluster (durably).
    pub fn delete(&self, token: &str) -> Result<(), StoreError> {
        let _io = self.lock_io();
        {
            let mut s = self.lock();
            s.clusters.remove(token).ok_or_else(|| StoreError::NotFound(token.to_string()))?;
            s.dirty.remove(token);
            s.index.remove(token);
        }
        self.changed();
        let p = self.path(token);
        fsutil::remove_durable(&p).map_err(|error| StoreError::Io { path: self.shown_path(token), error })
    }

    /// Drops expired entries and writes every changed cluster. Returns how many were written.
    pub fn flush(&self) -> Result<usize, StoreError> {
        let _io = self.lock_io();
        let now = now_ms();
        let snapshot: Vec<(String, Cluster)> = {
            let mut s = self.lock();
            let mut expired = vec![];
            for (t, c) in s.clusters.iter_mut() {
                let before = c.nodes.len();
                c.nodes.retain(|_, exp| *exp > now);
                if c.nodes.len() != before {
                    expired.push(t.clone());
                }
            }
            for t in &expired {
                s.bump(t);
            }
            if !expired.is_empty() {
                self.changed();
            }
            s.dirty.extend(expired);
            let dirty: Vec<String> = s.dirty.drain().collect();
            dirty.into_iter().filter_map(|t| s.clusters.get(&t).map(|c| (t, c.clone()))).collect()
        };
        let mut failed = None;
        for (t, c) in &snapshot {
            if let Err(e) = self.write(t, c) {
                self.lock().dirty.insert(t.clone());
                failed = Some(e);
            }
        }
        failed.map_or(Ok(snapshot.len()), Err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn create_register_expire_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let s = TokenStore::open(dir.path()).unwrap();
        let t = s.create().unwrap();
        assert!(t.len() == 32 && t.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        let (_, i0) = s.list_indexed(&t).unwrap();
        s.register(&t, "10.0.0.1:2375", Duration::from_secs(60)).unwrap();
        let (_, i1) = s.list_indexed(&t).unwrap();
        assert!(i1 > i0);
        // A heartbeat of a live entry is no change.
        s.register(&t, "10.0.0.1:2375", Duration::from_secs(60)).unwrap();
        assert_eq!(s.list_indexed(&t).unwrap().1, i1);
        s.register(&t, "10.0.0.2:2375", Duration::from_millis(1)).unwrap();
        let i2 = s.list_indexed(&t).unwrap().1;
        assert!(i2 > i1);
        assert!(matches!(s.register("nope", "a:1", Duration::from_secs(1)), Err(StoreError::NotFound(_))));
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(s.list(&t).unwrap(), vec!["10.0.0.1:2375"]);
        let rx = s.changes();
        assert_eq!(s.flush().unwrap(), 1);
        // The expiry moved the index and woke the waiters.
        assert!(s.list_indexed(&t).unwrap().1 > i2);
        assert!(rx.has_changed().unwrap());
        assert_eq!(s.flush().unwrap(), 0);
        let t2 = s.create().unwrap();
        // Reopen: what was flushed survives; unflushed registrations do not.
        s.register(&t2, "10.0.0.3:2375", Duration::from_secs(60)).unwrap();
        drop(s);
        let s = TokenStore::open(dir.path()).unwrap();
        assert_eq!(s.list(&t).unwrap(), vec!["10.0.0.1:2375"]);
        assert!(s.list(&t2).unwrap().is_empty());
        s.deregister(&t, "10.0.0.1:2375").unwrap();
        assert!(s.list(&t).unwrap().is_empty());
        s.delete(&t).unwrap();
        assert!(matches!(s.list(&t), Err(StoreError::NotFound(_))));
        assert!(!dir.path().join(format!("clusters/{t}.json")).exists());
        std::fs::write(dir.path().join("clusters/bad.json"), b"{").unwrap();
        let s = TokenStore::open(dir.path()).unwrap();
        assert!(s.list("bad").is_err());
        assert!(s.list(&t2).is_ok());
    }

    #[test]
    fn limits_and_private_files() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let limits = StoreLimits { max_clusters: 2, max_entries: 2, max_ttl: Duration::from_secs(60) };
        let s = TokenStore::open_with(dir.path(), limits).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!((mode(dir.path()), mode(&dir.path().join("clusters"))), (0o700, 0o700));
        let t = s.create().unwrap();
        assert_eq!(mode(&dir.path().join(format!("clusters/{t}.json"))), 0o600);
        assert_ne!(s.create().unwrap(), t);
        let e = s.create().unwrap_err();
        assert!(matches!(e, StoreError::TooManyClusters { max: 2 }) && e.to_string().contains("--max-clusters"), "{e}");
        let e = s.register(&t, "10.0.0.1:1", Duration::from_secs(61)).unwrap_err();
        assert!(e.to_string().contains("limit of 60s"), "{e}");
        s.register(&t, "10.0.0.1:1", Duration::from_secs(60)).unwrap();
        s.register(&t, "10.0.0.2:1", Duration::from_millis(1)).unwrap();
        std::thread::sleep(Duration::from_millis(5));
        // The expired entry makes room; then the cluster is full, but heartbeats still pass.
        s.register(&t, "10.0.0.3:1", Duration::from_secs(60)).unwrap();
        let e = s.register(&t, "10.0.0.4:1", Duration::from_secs(60)).unwrap_err();
        assert!(matches!(e, StoreError::TooManyEntries { max: 2, .. }), "{e}");
        assert!(e.to_string().contains("--max-entries") && !e.to_string().contains(&t), "{e}");
        s.register(&t, "10.0.0.1:1", Duration::from_secs(60)).unwrap();
        assert_eq!(s.list(&t).unwrap().len(), 2);
        assert!(!StoreError::NotFound(t.clone()).to_string().contains(&t));
    }
}
