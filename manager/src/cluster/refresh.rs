//! Keeping one node current: validation (`/info`, `/version`), the node's `/events` stream
//! applied incrementally, and a jittered full refresh as a safety net (the only source of
//! updates when a node has no event stream).
use super::client::NodeError;
use super::engine::{Engine, Health};
use super::events::{enrich, swarm_event};
use super::model::{ContainerState, NodeEvent, PsRowIn, SystemInfo, SystemVersion};
use super::view::Container;
use super::Shared;
use futures_util::StreamExt;
use serde_json::Value;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::OwnedSemaphorePermit;

/// Re-read `/info` this often even when healthy.
const SPEC_REFRESH: Duration = Duration::from_secs(300);
/// The longest event line a node may send: a longer one breaks the stream (a node cannot make
/// the manager buffer without bound).
const MAX_EVENT_LINE: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
#[error("an event line longer than {0} bytes")]
struct LineTooLong(usize);

/// Splits a stream into newline-terminated lines, holding at most `MAX_EVENT_LINE` bytes of an
/// unfinished one.
#[derive(Default)]
struct LineBuf {
    buf: Vec<u8>,
}

impl LineBuf {
    fn push(&mut self, chunk: &[u8]) -> Result<Vec<Vec<u8>>, LineTooLong> {
        self.buf.extend_from_slice(chunk);
        let mut out = vec![];
        while let Some(nl) = self.buf.iter().position(|b| *b == b'\n') {
            out.push(self.buf.drain(..=nl).collect());
        }
        if self.buf.len() > MAX_EVENT_LINE {
            self.buf = vec![];
            return Err(LineTooLong(MAX_EVENT_LINE));
        }
        Ok(out)
    }
}
/// Inspects in flight per node during a full refresh.
pub const INSPECT_CONCURRENCY: usize = 8;

fn event_time(ev: &NodeEvent) -> Option<chrono::DateTime<chrono::Utc>> {
    let n = if ev.time_nano != 0 { ev.time_nano } else { ev.time.checked_mul(1_000_000_000).filter(|n| *n != 0)? };
    Some(chrono::DateTime::from_timestamp_nanos(n))
}

impl Engine {
    /// Reads `/info` and `/version` and records the node's identity, resources and labels.
    pub async fn validate(&self, sh: &Shared) -> Result<(), NodeError> {
        let info = self.client.get_json("/info").await;
        self.note(sh, &info);
        let version = self.client.get_json("/version").await;
        self.note(sh, &version);
        let (info, version) = (SystemInfo::read(&info?), SystemVersion::read(&version?));
        let (ncpu, memory) = (info.ncpu, info.mem_total);
        if ncpu <= 0 || memory <= 0 {
            return Err(NodeError::Decode {
                addr: self.addr.clone(),
                detail: format!("cannot get resources for this engine, make sure {} is a Docker Engine, not a Swarm manager", self.addr),
            });
        }
        let mut labels = std::collections::BTreeMap::new();
        for (k, v) in [
            ("storagedriver", &info.driver),
            ("kernelversion", &info.kernel_version),
            ("operatingsystem", &info.operating_system),
            ("ostype", info.os_type.as_ref().unwrap_or(&String::new())),
        ] {
            labels.insert(k.to_string(), v.clone());
        }
        for l in &info.labels {
            let Some((k, v)) = l.split_once('=') else {
                return Err(NodeError::Decode { addr: self.addr.clone(), detail: format!("invalid label {l:?} (expected key=value)") });
            };
            if k == "node" {
                tracing::warn!(addr = %self.addr, "ignoring the daemon label \"node\": node== always means the node's name or ID");
                continue;
            }
            labels.insert(k.to_string(), v.to_string());
        }
        let id = if info.id.is_empty() { self.addr.clone() } else { info.id.clone() };
        let old = self.lock_quiet().info.id.clone();
        if let Err(other) = sh.claim_id(&old, &id, &self.addr) {
            return Err(NodeError::Decode {
                addr: self.addr.clone(),
                detail: format!("ID duplicated. {id} shared by this node {} and another node {other}", self.addr),
            });
        }
        let ip = {
            let host = self.addr.rsplit_once(':').map_or(self.addr.as_str(), |(h, _)| h).trim_matches(['[', ']']);
            match host.parse::<std::net::IpAddr>() {
                Ok(ip) => ip.to_string(),
                Err(_) => tokio::net::lookup_host(&self.addr)
                    .await
                    .ok()
                    .and_then(|mut a| a.next())
                    .map_or(host.to_string(), |a| a.ip().to_string()),
            }
        };
        let mut st = self.lock();
        let changed = st.validated && st.info.id != id;
        st.info.id = id;
        st.info.name = info.name;
        st.info.ip = ip;
        st.info.labels = labels;
        st.info.ncpu = ncpu;
        st.info.memory = memory;
        st.info.server_version = info.server_version.unwrap_or(version.version);
        st.info.api_version = version.api_version;
        st.info.os_type = info.os_type.unwrap_or_else(|| "linux".into());
        st.spec_checked = Instant::now();
        st.updated_at = chrono::Utc::now();
        st.invalidate();
        if changed {
            tracing::warn!(addr = %self.addr, "node ID changed: its containers are listed again");
            st.clear_containers();
        }
        Ok(())
    }

    /// Inspects one container and stores (or drops) it.
    pub async fn refresh_container(&self, sh: &Shared, id: &str) -> Result<(), NodeError> {
        let r = self.client.get_bytes(&format!("/containers/{id}/json")).await;
        self.note(sh, &r);
        match r {
            Ok(body) => {
                let ncpu = self.lock().info.ncpu;
                let c = Container::from_inspect_bytes(&body, ncpu).map_err(|e| self.client.decode_err(e))?;
                self.upsert(c);
                Ok(())
            }
            Err(NodeError::Status { status: 404, .. }) => {
                self.remove(id);
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    pub async fn refresh_images(&self, sh: &Shared) -> Result<(), NodeError> {
        let r = self.client.get_json("/images/json").await;
        self.note(sh, &r);
        let rows = match r? {
            Value::Array(rows) => rows,
            _ => vec![],
        };
        self.set_images(rows);
        Ok(())
    }

    /// One of the cluster's learning slots ([`super::ClusterOpts::max_learning`]), waited for
    /// in turn; `None` once the node is cancelled.
    async fn learning_slot(&self, sh: &Shared) -> Option<OwnedSemaphorePermit> {
        tokio::select! {
            p = sh.learning.clone().acquire_owned() => p.ok(),
            _ = self.cancel.cancelled() => None,
        }
    }

    /// Lists every container; inspects only the new ones and those whose state changed. With
    /// containers to inspect, a learning slot is taken first unless the caller holds one
    /// (`slot_held`): however many nodes refresh at once, the inspects in flight stay bounded.
    pub async fn refresh_all(&self, sh: &Shared, slot_held: bool) -> Result<(), NodeError> {
        let start_seq = self.lock().seq;
        let r = self.client.get_bytes("/containers/json?all=1").await;
        self.note(sh, &r);
        let body = r?;
        let rows = PsRowIn::parse_all(&body).map_err(|e| self.client.decode_err(e))?;
        let mut seen: HashSet<&str> = HashSet::with_capacity(rows.len());
        let mut stale = vec![];
        {
            let st = self.lock();
            for row in &rows {
                let id = row.id.as_str();
                if id.is_empty() {
                    continue;
                }
                seen.insert(id);
                match st.containers.get(id) {
                    Some(e) if row.container_state() == Some(e.c.state) => {}
                    _ => stale.push(id.to_string()),
                }
            }
        }
        {
            let mut st = self.lock();
            // Read first: a write through the guard marks the node changed for `docker info`.
            if st.containers.keys().any(|id| !seen.contains(&**id)) {
                st.retain(|id, e| seen.contains(id) || e.seq > start_seq);
            }
        }
        drop(seen);
        drop(rows);
        drop(body);
        let _slot = if slot_held || stale.is_empty() {
            None
        } else {
            match self.learning_slot(sh).await {
                Some(p) => Some(p),
                // The node left the cluster: nothing more to learn of it.
                None => return Ok(()),
            }
        };
        let results: Vec<_> = futures_util::stream::iter(stale)
            .map(|id| async move { self.refresh_container(sh, &id).await })
            .buffer_unordered(INSPECT_CONCURRENCY)
            .collect()
            .await;
        results.into_iter().collect::<Result<Vec<_>, _>>()?;
        self.refresh_images(sh).await?;
        if let Err(e) = self.refresh_resources(sh).await {
            tracing::debug!(addr = %self.addr, error = %e, "listing networks and volumes failed");
        }
        self.lock().updated_at = chrono::Utc::now();
        Ok(())
    }

    /// Applies one event from the node; returns whether it changed images.
    async fn apply_event(&self, sh: &Shared, ev: &Value) {
        let ev = NodeEvent::read(ev);
        let (typ, action) = (ev.typ(), ev.action());
        let id = ev.actor_id().to_string();
        match typ {
            "container" => {
                let at = event_time(&ev);
                let known = match action {
                    "destroy" => {
                        self.remove(&id);
                        true
                    }
                    "start" => self.update(&id, |c| {
                        c.state = ContainerState::Running;
                        c.started_at = at;
                    }),
                    "die" => self.update(&id, |c| {
                        c.state = ContainerState::Exited;
                        c.finished_at = at;
                        c.exit_code = ev.attr("exitCode").and_then(|x| x.parse().ok()).unwrap_or(c.exit_code);
                    }),
                    "pause" => self.update(&id, |c| c.state = ContainerState::Paused),
                    "unpause" => self.update(&id, |c| c.state = ContainerState::Running),
                    "rename" => self.update(&id, |c| {
                        if let Some(n) = ev.attr("name") {
                            c.set_name(n);
                        }
                    }),
                    a if a.starts_with("health_status") => self.update(&id, |c| {
                        c.health = a.split_once(": ").map(|(_, h)| h.into());
                    }),
                    "create" if self.get(&id).is_some_and(|c| !c.name.is_empty()) => true,
                    "create" => {
                        self.update(&id, |c| {
                            if c.name.is_empty() {
                                if let Some(n) = ev.attr("name") {
                                    c.set_name(n);
                                }
                            }
                        }) || self.hold_create_event(&id, ev.attr("name"))
                    }
                    a if a.starts_with("exec_") => true,
                    "attach" | "detach" | "resize" | "top" | "archive-path" | "extract-to-dir" | "export" | "copy" | "commit" | "kill"
                    | "stop" | "oom" => true,
                    _ => false,
                };
                if !known && !id.is_empty() {
                    let _ = self.refresh_container(sh, &id).await;
                }
            }
            "image" => {
                let _ = self.refresh_images(sh).await;
            }
            "network" | "volume" => {
                self.apply_resource_event(sh, typ, action, &id).await;
                // A connect/disconnect changes the container's networks too (`ps` shows them).
                if typ == "network" && matches!(action, "connect" | "disconnect") {
                    if let Some(c) = ev.attr("container").filter(|c| !c.is_empty()) {
                        let _ = self.refresh_container(sh, c).await;
                    }
                }
            }
            _ => {}
        }
    }

    /// Follows the node's `/events` until cancelled; restarts it after errors. A stream that
    /// breaks and each reconnection that fails count against the node's health (classic
    /// Swarm's connection errors), retried at the heartbeat's pace: a dead node turns Unhealthy
    /// after `--engine-failure-retry` of them, within seconds with `--heartbeat 1s`.
    async fn follow_events(self: Arc<Self>, sh: Arc<Shared>) {
        let retry = (sh.opts.heartbeat / 2).clamp(Duration::from_millis(250), Duration::from_secs(2));
        let mut failures: u32 = 0;
        loop {
            if self.cancel.is_cancelled() {
                return;
            }
            let r = self.client.stream("/events").await;
            self.note(&sh, &r);
            let wait = match r {
                Ok(mut body) => {
                    {
                        let mut st = self.lock();
                        st.events_live = true;
                        st.res.stream_connected();
                    }
                    failures = 0;
                    // Events may have been missed while the stream was down.
                    self.wake.notify_one();
                    let mut lines = LineBuf::default();
                    let broke = loop {
                        let chunk = tokio::select! {
                            c = body.next() => c,
                            _ = self.cancel.cancelled() => return,
                        };
                        let chunk = match chunk {
                            Some(Ok(c)) => c,
                            Some(Err(e)) => break e.to_string(),
                            None => break "the node closed its event stream".to_string(),
                        };
                        let got = match lines.push(&chunk) {
                            Ok(l) => l,
                            Err(e) => break e.to_string(),
                        };
                        for line in got {
                            let Ok(ev) = serde_json::from_slice::<Value>(&line) else { continue };
                            self.apply_event(&sh, &ev).await;
                            if sh.hub.listeners() > 0 {
                                let info = self.info();
                                sh.hub.publish(enrich(ev, &self.addr, &info));
                            }
                        }
                    };
                    self.lock().events_live = false;
                    tracing::debug!(addr = %self.addr, reason = %broke, "event stream broken");
                    let e: Result<(), NodeError> =
                        Err(NodeError::Connect { addr: format!("tcp://{}", self.addr), detail: format!("event stream broken: {broke}") });
                    self.note(&sh, &e);
                    Duration::ZERO
                }
                Err(NodeError::Status { status, .. }) if status == 404 || status == 501 => {
                    tracing::info!(addr = %self.addr, "node has no event stream; relying on periodic refresh");
                    Duration::from_secs(60)
                }
                Err(e) => {
                    failures += 1;
                    tracing::debug!(addr = %self.addr, error = %e, "event stream failed");
                    // Quick retries until the node is declared Unhealthy, then slower ones.
                    if failures <= sh.opts.failure_retry {
                        retry
                    } else {
                        Duration::from_secs(u64::from(failures - sh.opts.failure_retry).min(10)).max(retry)
                    }
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.cancel.cancelled() => return,
            }
        }
    }

    /// The node's life: validate (retrying with backoff while Pending), follow events, refresh.
    pub async fn run(self: Arc<Self>, sh: Arc<Shared>) {
        let mut attempt = 0u32;
        loop {
            // Validation and the first refresh (every container inspected) hold a learning slot.
            let Some(slot) = self.learning_slot(&sh).await else { return };
            let r = match self.validate(&sh).await {
                Ok(()) => self.refresh_all(&sh, true).await,
                Err(e) => Err(e),
            };
            drop(slot);
            match r {
                Ok(()) => break,
                Err(e) => {
                    tracing::debug!(addr = %self.addr, error = %e, "node validation failed");
                    {
                        let mut st = self.lock();
                        st.error = Some(e.to_string());
                        st.updated_at = chrono::Utc::now();
                    }
                    attempt += 1;
                    let wait = Duration::from_secs(1u64 << attempt.min(6)).min(sh.opts.refresh_max);
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = self.cancel.cancelled() => return,
                    }
                }
            }
        }
        let ev = {
            let mut st = self.lock();
            st.validated = true;
            st.health = Health::Healthy;
            st.failures = 0;
            st.error = None;
            st.invalidate();
            tracing::info!(addr = %self.addr, node = %st.info.name, "node joined the cluster");
            swarm_event("engine_connect", &self.addr, &st.info)
        };
        sh.hub.publish(ev);
        tokio::spawn(self.clone().follow_events(sh.clone()));
        loop {
            let (failures, spec_old, healthy) = {
                let st = self.lock();
                (st.failures, st.spec_checked.elapsed() > SPEC_REFRESH, st.health == Health::Healthy)
            };
            let backoff = failures.saturating_sub(sh.opts.failure_retry).min(1000);
            let (min, max) = (sh.opts.refresh_min, sh.opts.refresh_max);
            let jitter = if max > min { rand::random_range(0..(max - min).as_millis() as u64) } else { 0 };
            let wait = min * (1 + backoff) + Duration::from_millis(jitter);
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.wake.notified() => {}
                _ = self.cancel.cancelled() => return,
            }
            if !healthy || spec_old {
                if let Err(e) = self.validate(&sh).await {
                    tracing::debug!(addr = %self.addr, error = %e, "node check failed");
                    continue;
                }
            }
            if let Err(e) = self.refresh_all(&sh, false).await {
                tracing::debug!(addr = %self.addr, error = %e, "node refresh failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn event_lines_are_split_and_bounded() {
        let mut l = LineBuf::default();
        assert_eq!(l.push(b"{\"a\":1}\n{\"b\"").unwrap(), vec![b"{\"a\":1}\n".to_vec()]);
        assert_eq!(l.push(b":2}\n").unwrap(), vec![b"{\"b\":2}\n".to_vec()]);
        let big = vec![b'x'; MAX_EVENT_LINE];
        assert!(l.push(&big).unwrap().is_empty(), "a line of exactly the limit is still held");
        assert!(l.push(b"y").is_err(), "one byte more without a newline breaks the stream");
        assert!(l.buf.is_empty(), "and frees what was held");
    }
}

#[cfg(test)]
mod task_size {
    use super::*;

    /// Each node holds its `run` and `follow_events` tasks for as long as it is known, and a
    /// task's memory is its future's largest state, rare branches included: at 10,000 nodes
    /// every KiB here is 10 MiB.
    #[tokio::test]
    async fn a_nodes_tasks_stay_small() {
        let c = super::super::Cluster::new(Default::default(), None, tokio_util::sync::CancellationToken::new()).unwrap();
        let addr = "10.0.0.1:2375";
        let e = Arc::new(Engine::new(addr, c.transport.client(addr), c.dirty.clone()));
        let run = std::mem::size_of_val(&e.clone().run(c.0.clone()));
        let events = std::mem::size_of_val(&e.clone().follow_events(c.0.clone()));
        eprintln!("run {run} B, follow_events {events} B");
        e.cancel.cancel();
    }
}
