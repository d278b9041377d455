//! Rescheduling on node failure (classic Swarm's watchdog, made durable).
//!
//! The primary keeps one [`Record`] per container created with `reschedule:on-node-failure`.
//! Its watchdog wakes on every node event of the manager (`engine_disconnect`, `engine_connect`,
//! …), on a change of role, and every heartbeat, and compares the records with the nodes:
//! - the record's node failed (Unhealthy, or gone from discovery): the move is written to the
//!   record first, then the container is re-created through the scheduler with the same config,
//!   name and `com.docker.swarm.id`, started if the old one ran, and the record points at it;
//! - a move is in the record (a primary died during it): it is finished, adopting a copy that
//!   already exists;
//! - the record's node is healthy and holds the container: any other copy with the same swarm
//!   ID (a failed node that came back) is force-removed, so a container never runs twice;
//! - the record's node is healthy but the container is gone: the user removed it, the record
//!   goes too.
use super::store::{Move, Record};
use crate::cluster::create::Created;
use crate::cluster::model::{ContainerState, CreateConfig, Inspect, NodeEvent};
use crate::cluster::{Cluster, ClusterError, Container, Engine, Health};
use hyper::header::HeaderMap;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

/// What the watchdog knows of a record's node.
enum NodeState {
    Up(Arc<Engine>),
    /// Unhealthy, disconnected, or no longer in discovery.
    Down,
    /// Not validated yet (or discovery not read yet): wait.
    Unknown,
}

/// A copy of a reschedulable container on a healthy node.
struct Copy {
    engine: Arc<Engine>,
    c: Arc<Container>,
}

impl Cluster {
    /// Records a container just created with `reschedule:on-node-failure`. If the record cannot
    /// be written the container is removed again and the create fails: an acknowledged create
    /// is always recorded.
    pub(crate) async fn record_created(&self, c: &Created) -> Result<(), ClusterError> {
        let id = c.id().to_string();
        let name = match &c.req.name {
            Some(n) => n.clone(),
            None => c
                .engine
                .client
                .get_bytes(&format!("/containers/{id}/json"))
                .await
                .ok()
                .and_then(|b| Inspect::parse(&b).ok().map(|i| i.name.trim_start_matches('/').to_string()))
                .unwrap_or_default(),
        };
        let swarm_id = CreateConfig::read(&c.body).labels.remove(crate::scheduler::request::LABEL_SWARM_ID).unwrap_or_default();
        let rec = Record {
            swarm_id,
            name,
            config: c.body.clone(),
            node: c.engine.addr.clone(),
            node_name: c.engine.name(),
            id: id.clone(),
            moving: None,
        };
        if let Err(e) = self.records.put(&rec).await {
            tracing::warn!(container = %id, error = %e, "cannot record the reschedule policy; removing the container");
            let _ = c
                .engine
                .client
                .send(hyper::Method::DELETE, &format!("/containers/{id}?force=1&v=1"), HeaderMap::new(), reqwest::Body::from(""), None)
                .await;
            c.engine.remove(&id);
            return Err(e.into());
        }
        Ok(())
    }

    fn node_state(&self, addr: &str) -> NodeState {
        match self.engine(addr) {
            None if self.discovered() => NodeState::Down,
            None => NodeState::Unknown,
            Some(e) => match e.health() {
                Health::Healthy if e.is_validated() => NodeState::Up(e),
                Health::Unhealthy | Health::Disconnected => NodeState::Down,
                _ => NodeState::Unknown,
            },
        }
    }

    /// Copies of each wanted swarm ID on healthy nodes.
    fn copies(&self, wanted: &HashSet<&str>) -> HashMap<String, Vec<Copy>> {
        let mut out: HashMap<String, Vec<Copy>> = HashMap::new();
        for e in self.validated().into_iter().filter(|e| e.health() == Health::Healthy) {
            e.each_container(|c| {
                if let Some(s) = c.swarm_id().filter(|s| wanted.contains(s)) {
                    out.entry(s.to_string()).or_default().push(Copy { engine: e.clone(), c: c.clone() });
                }
            });
        }
        out
    }

    /// One pass of the watchdog over every record (primary only).
    pub async fn reconcile_reschedules(&self) -> Result<(), ClusterError> {
        let records = self.records.list().await?;
        if records.is_empty() {
            return Ok(());
        }
        let wanted: HashSet<&str> = records.iter().map(|r| r.swarm_id.as_str()).collect();
        let copies = self.copies(&wanted);
        for rec in records {
            if !self.ha.is_primary() {
                return Ok(());
            }
            let here = copies.get(&rec.swarm_id).map(Vec::as_slice).unwrap_or_default();
            if let Err(e) = self.reconcile_one(rec, here).await {
                tracing::warn!(error = %e, "rescheduling: will retry");
            }
        }
        Ok(())
    }

    async fn reconcile_one(&self, mut rec: Record, copies: &[Copy]) -> Result<(), ClusterError> {
        if rec.moving.is_some() {
            return self.finish_move(rec, copies).await;
        }
        match self.node_state(&rec.node) {
            NodeState::Unknown => Ok(()),
            NodeState::Up(e) if e.get(&rec.id).is_some() => {
                for stale in copies.iter().filter(|c| c.c.id() != rec.id) {
                    self.remove_stale(&rec, stale).await;
                }
                Ok(())
            }
            NodeState::Up(_) => match copies.first() {
                // Already moved (by an earlier primary, or by hand): follow it.
                Some(c) => {
                    rec.node = c.engine.addr.clone();
                    rec.node_name = c.engine.name();
                    rec.id = c.c.id().to_string();
                    Ok(self.records.put(&rec).await?)
                }
                None => {
                    tracing::info!(container = %rec.id, name = %rec.name, "container removed; dropping its reschedule record");
                    Ok(self.records.delete(&rec.swarm_id).await?)
                }
            },
            NodeState::Down => {
                // The last state this manager saw decides whether the new copy starts.
                let start = self.engine(&rec.node).and_then(|e| e.get(&rec.id)).is_none_or(|c| c.running());
                rec.moving = Some(Move { from: rec.node.clone(), from_name: rec.node_name.clone(), old_id: rec.id.clone(), start });
                self.records.put(&rec).await?;
                self.finish_move(rec, copies).await
            }
        }
    }

    /// Finishes a move recorded in `rec`: adopts an existing copy, or creates one.
    async fn finish_move(&self, mut rec: Record, copies: &[Copy]) -> Result<(), ClusterError> {
        let mv = rec.moving.clone().expect("called for a move");
        let from_name = Some(mv.from_name.clone()).filter(|n| !n.is_empty()).unwrap_or_else(|| mv.from.clone());
        let (engine, id) = match copies.first() {
            Some(c) => (c.engine.clone(), c.c.id().to_string()),
            None => {
                // The old copy's name must not block the new one.
                if let Some(old) = self.engine(&mv.from) {
                    old.remove(&mv.old_id);
                }
                let created = self.create_scheduled(Some(rec.name.clone()).filter(|n| !n.is_empty()), rec.config.clone(), None).await?;
                let id = created.id().to_string();
                (created.engine, id)
            }
        };
        if mv.start && engine.get(&id).is_none_or(|c| !c.running()) {
            let r = engine.client.post_json(&format!("/containers/{id}/start"), &Value::Null, HeaderMap::new()).await;
            engine.note(self, &r);
            match r {
                Ok(_) => {
                    engine.update(&id, |c| c.state = ContainerState::Running);
                }
                Err(e) if e.status() == Some(304) => {}
                Err(e) => tracing::warn!(container = %id, error = %e, "rescheduled, but the container did not start"),
            }
        }
        rec.node = engine.addr.clone();
        rec.node_name = engine.name();
        rec.id = id.clone();
        rec.moving = None;
        self.records.put(&rec).await?;
        let to_name = engine.name();
        tracing::info!("Rescheduled container {} from {} to {} as {}", mv.old_id, from_name, to_name, id);
        self.hub.publish(reschedule_event(&rec, &mv, &from_name, &engine));
        Ok(())
    }

    /// Force-removes a copy left on a node that came back after its container was moved.
    async fn remove_stale(&self, rec: &Record, stale: &Copy) {
        let id = stale.c.id();
        let r = stale
            .engine
            .client
            .send(hyper::Method::DELETE, &format!("/containers/{id}?force=1&v=1"), HeaderMap::new(), reqwest::Body::from(""), None)
            .await;
        stale.engine.note(self, &r);
        match r {
            Ok(resp) if resp.status().is_success() || resp.status().as_u16() == 404 => {
                stale.engine.remove(id);
                tracing::info!(node = %stale.engine.name(), container = %id, name = %rec.name, "removed a stale copy of a rescheduled container");
            }
            Ok(resp) => {
                tracing::warn!(node = %stale.engine.name(), container = %id, status = resp.status().as_u16(), "cannot remove a stale copy")
            }
            Err(e) => tracing::warn!(node = %stale.engine.name(), container = %id, error = %e, "cannot remove a stale copy"),
        }
    }

    /// The primary's watchdog, until shutdown.
    pub fn spawn_watchdog(&self) {
        let cl = self.clone();
        let stop = self.shutdown_token();
        let tick = cl.opts.heartbeat.clamp(Duration::from_millis(500), Duration::from_secs(5));
        tokio::spawn(async move {
            let mut events = cl.hub.subscribe();
            loop {
                if cl.ha.is_primary() {
                    if let Err(e) = cl.reconcile_reschedules().await {
                        tracing::warn!(error = %e, "rescheduling watchdog");
                    }
                }
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(tick) => {}
                    _ = cl.ha.changed() => {}
                    ev = events.recv() => {
                        let node_event = match ev {
                            Ok(ev) => NodeEvent::read(&ev).typ == "swarm",
                            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => true,
                            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                        };
                        if !node_event {
                            continue;
                        }
                    }
                }
            }
        });
    }
}

/// `docker events` through the manager: `container reschedule <new id> (…)`, with both IDs and
/// both nodes.
fn reschedule_event(rec: &Record, mv: &Move, from_name: &str, to: &Engine) -> Value {
    let now = chrono::Utc::now();
    let nanos = now.timestamp_nanos_opt().unwrap_or_default();
    let info = to.info();
    let image = CreateConfig::read(&rec.config).image;
    json!({
        "status": "reschedule", "id": rec.id, "from": image,
        "Type": "container", "Action": "reschedule",
        "Actor": {"ID": rec.id, "Attributes": {
            "name": rec.name, "image": image,
            "oldID": mv.old_id, "newID": rec.id,
            "fromNode": from_name, "fromAddr": mv.from,
            "toNode": info.name, "toAddr": to.addr,
            "node.name": info.name, "node.id": info.id, "node.addr": to.addr, "node.ip": info.ip,
        }},
        "scope": "local",
        "time": nanos / 1_000_000_000, "timeNano": nanos,
        "node": {"Name": info.name, "Id": info.id, "Addr": to.addr, "Ip": info.ip},
    })
}
