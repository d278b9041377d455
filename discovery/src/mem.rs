//! An in-memory backend with TTLs and a call log, for tests of agents and managers.
use crate::{watch, Discovery, DiscoveryError, Entry, WatchEvent};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

#[derive(Default)]
struct State {
    entries: BTreeMap<Entry, Instant>,
    calls: Vec<String>,
    fail_next: Option<DiscoveryError>,
}

#[derive(Clone, Default)]
pub struct MemDiscovery {
    state: Arc<Mutex<State>>,
}

impl MemDiscovery {
    pub fn new() -> Self {
        Self::default()
    }
    /// Every call so far: `register a:1 3s`, `deregister a:1`, `list`.
    pub fn calls(&self) -> Vec<String> {
        self.lock().calls.clone()
    }
    /// The next call fails with `e`.
    pub fn fail_next(&self, e: DiscoveryError) {
        self.lock().fail_next = Some(e);
    }
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
    fn record(&self, call: String) -> Result<(), DiscoveryError> {
        let mut s = self.lock();
        s.calls.push(call);
        s.fail_next.take().map_or(Ok(()), Err)
    }
    fn live(&self) -> Vec<Entry> {
        let now = Instant::now();
        self.lock().entries.iter().filter(|(_, exp)| **exp > now).map(|(e, _)| e.clone()).collect()
    }
}

impl Discovery for MemDiscovery {
    async fn list(&self) -> Result<Vec<Entry>, DiscoveryError> {
        self.record("list".into())?;
        Ok(self.live())
    }
    async fn register(&self, me: &Entry, ttl: Duration) -> Result<(), DiscoveryError> {
        self.record(format!("register {me} {}", crate::duration::format(ttl)))?;
        self.lock().entries.insert(me.clone(), Instant::now() + ttl);
        Ok(())
    }
    async fn deregister(&self, me: &Entry) -> Result<(), DiscoveryError> {
        self.record(format!("deregister {me}"))?;
        self.lock().entries.remove(me);
        Ok(())
    }
    fn watch(&self, heartbeat: Duration, stop: CancellationToken) -> mpsc::Receiver<WatchEvent> {
        let d = self.clone();
        watch::poll(heartbeat, stop, move || {
            let live = d.live();
            async move { Ok(live) }
        })
    }
}
