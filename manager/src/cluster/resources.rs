//! Each node's networks and volumes, held by the manager and kept current like its containers:
//! filled by the full refresh, then updated from the node's `network` and `volume` events (the
//! one object an event names is read again, or dropped when destroyed). `docker network ls`,
//! `volume ls`, the inspects and the scheduler's network lookup read only this.
use super::client::NodeError;
use super::engine::Engine;
use super::model::{MountPoint, Resource, VolumeList};
use super::Shared;
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// Network inspects in flight per node during a full refresh.
const INSPECT_CONCURRENCY: usize = 8;

struct Stamped {
    v: Arc<Resource>,
    /// When it was stored, so a full list never drops a newer record.
    seq: u64,
}

/// One node's networks (inspect documents, by ID) and volumes (by name).
#[derive(Default)]
pub struct Resources {
    networks: HashMap<String, Stamped>,
    volumes: HashMap<String, Stamped>,
    /// Objects dropped by events, with when: a full list taken before the drop must not bring
    /// them back.
    dropped: HashMap<String, u64>,
    seq: u64,
    /// Bumped whenever the event stream (re)connects: member lists may have missed events.
    stream_gen: u64,
    /// The `stream_gen` a full refresh last re-read every network for.
    synced_gen: Option<u64>,
}

/// What an event asks to read again from the node.
#[derive(Debug, PartialEq, Eq)]
pub enum Fetch {
    Network(String),
    Volume(String),
}

fn key(kind: &str, id: &str) -> String {
    format!("{kind}:{id}")
}

impl Resources {
    fn stamp(&mut self, v: Resource) -> Stamped {
        self.seq += 1;
        Stamped { v: Arc::new(v), seq: self.seq }
    }

    /// Stores a network's inspect (one without an ID is ignored).
    pub fn put_network(&mut self, v: Resource) {
        let Some(id) = v.id.clone() else { return };
        let s = self.stamp(v);
        self.dropped.remove(&key("n", &id));
        self.networks.insert(id, s);
    }
    /// Stores a volume (one without a name is ignored).
    pub fn put_volume(&mut self, v: Resource) {
        let Some(name) = v.name.clone() else { return };
        let s = self.stamp(v);
        self.dropped.remove(&key("v", &name));
        self.volumes.insert(name, s);
    }
    pub fn drop_network(&mut self, id: &str) {
        self.seq += 1;
        self.networks.remove(id);
        self.dropped.insert(key("n", id), self.seq);
    }
    pub fn drop_volume(&mut self, name: &str) {
        self.seq += 1;
        self.volumes.remove(name);
        self.dropped.insert(key("v", name), self.seq);
    }

    /// Docker's lookup: full ID, then name, then a unique ID prefix.
    pub fn find_network(&self, want: &str) -> Option<Arc<Resource>> {
        if want.is_empty() {
            return None;
        }
        if let Some(s) = self.networks.get(want) {
            return Some(s.v.clone());
        }
        if let Some(s) = self.networks.values().find(|s| s.v.name.as_deref() == Some(want)) {
            return Some(s.v.clone());
        }
        let mut by_prefix = self.networks.iter().filter(|(id, _)| id.starts_with(want));
        match (by_prefix.next(), by_prefix.next()) {
            (Some((_, s)), None) => Some(s.v.clone()),
            _ => None,
        }
    }
    pub fn find_volume(&self, name: &str) -> Option<Arc<Resource>> {
        self.volumes.get(name).map(|s| s.v.clone())
    }

    /// Networks by name.
    pub fn networks(&self) -> Vec<Arc<Resource>> {
        let mut v: Vec<_> = self.networks.values().map(|s| s.v.clone()).collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }
    /// Volumes by name.
    pub fn volumes(&self) -> Vec<Arc<Resource>> {
        let mut v: Vec<_> = self.volumes.values().map(|s| s.v.clone()).collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// The event stream (re)connected: events may have been missed.
    pub fn stream_connected(&mut self) {
        self.stream_gen += 1;
    }

    /// Applies what a `network`/`volume` event says without asking the node; returns what must
    /// be read again. A destroy drops the object; a volume (un)mount changes nothing a volume's
    /// inspect shows, so only an unknown volume is read.
    pub fn apply_event(&mut self, typ: &str, action: &str, id: &str) -> Option<Fetch> {
        if id.is_empty() {
            return None;
        }
        match (typ, action) {
            ("network", "destroy") => {
                self.drop_network(id);
                None
            }
            ("network", _) => Some(Fetch::Network(id.to_string())),
            ("volume", "destroy") => {
                self.drop_volume(id);
                None
            }
            ("volume", "mount" | "unmount") if self.volumes.contains_key(id) => None,
            ("volume", _) => Some(Fetch::Volume(id.to_string())),
            _ => None,
        }
    }

    /// A full network list taken when `seq` was `start`: keeps listed networks and those stored
    /// since, drops the rest. Returns the listed IDs to inspect (all of them when `all`, else
    /// those not known), skipping any dropped since `start`.
    fn merge_network_list(&mut self, start: u64, rows: &[Resource], all: bool) -> Vec<String> {
        let listed: HashSet<&str> = rows.iter().filter_map(|r| r.id.as_deref()).collect();
        self.networks.retain(|id, s| listed.contains(id.as_str()) || s.seq > start);
        let dropped = &self.dropped;
        listed
            .into_iter()
            .filter(|id| all || !self.networks.contains_key(*id))
            .filter(|id| dropped.get(&key("n", id)).is_none_or(|at| *at <= start))
            .map(String::from)
            .collect()
    }

    /// A full volume list taken when `seq` was `start`: stores the volumes not known (unless
    /// dropped since), drops those not listed and not stored since.
    fn merge_volume_list(&mut self, start: u64, rows: Vec<Resource>) {
        let listed: HashSet<String> = rows.iter().filter_map(|r| r.name.clone()).collect();
        self.volumes.retain(|n, s| listed.contains(n) || s.seq > start);
        for row in rows {
            let Some(name) = row.name.as_deref() else { continue };
            let gone = self.dropped.get(&key("v", name)).is_some_and(|at| *at > start);
            if !gone && !self.volumes.contains_key(name) {
                self.put_volume(row);
            }
        }
    }

    /// Forgets drops older than `start` (a list taken after them no longer needs them).
    fn forget_drops(&mut self, start: u64) {
        self.dropped.retain(|_, at| *at > start);
    }
}

/// A node without network or volume routes (the node simulator) has none.
fn missing_is_empty(r: Result<Value, NodeError>, empty: Value) -> Result<Value, NodeError> {
    match r {
        Err(NodeError::Status { status: 404, .. }) => Ok(empty),
        r => r,
    }
}

impl Engine {
    /// Reads one network again by ID (dropping it if the node no longer has it).
    pub async fn refresh_network(&self, sh: &Shared, id: &str) -> Result<(), NodeError> {
        let r = self.client.get_json(&format!("/networks/{id}")).await;
        self.note(sh, &r);
        match r {
            Ok(v) => {
                self.lock().res.put_network(Resource::read(v));
                Ok(())
            }
            Err(NodeError::Status { status: 404, .. }) => {
                self.lock().res.drop_network(id);
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Reads one volume again (dropping it if the node no longer has it).
    pub async fn refresh_volume(&self, sh: &Shared, name: &str) -> Result<(), NodeError> {
        let r = self.client.get_json(&format!("/volumes/{name}")).await;
        self.note(sh, &r);
        match r {
            Ok(v) => {
                self.lock().res.put_volume(Resource::read(v));
                Ok(())
            }
            Err(NodeError::Status { status: 404, .. }) => {
                self.lock().res.drop_volume(name);
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Lists networks and volumes; inspects the networks not known yet (every network after
    /// the event stream reconnected, since member lists may have missed events).
    pub async fn refresh_resources(&self, sh: &Shared) -> Result<(), NodeError> {
        let (start, gen, all) = {
            let st = self.lock();
            (st.res.seq, st.res.stream_gen, st.res.synced_gen != Some(st.res.stream_gen))
        };
        let nets = self.client.get_json("/networks").await;
        self.note(sh, &nets);
        let nets = missing_is_empty(nets, json!([]))?;
        let vols = self.client.get_json("/volumes").await;
        self.note(sh, &vols);
        let vols = missing_is_empty(vols, json!({"Volumes": []}))?;
        let rows: Vec<Resource> = match nets {
            Value::Array(rows) => rows.into_iter().map(Resource::read).collect(),
            _ => vec![],
        };
        let vols: Vec<Resource> = VolumeList::deserialize(&vols).unwrap_or_default().volumes.into_iter().map(Resource::read).collect();
        let to_inspect = {
            let mut st = self.lock();
            st.res.merge_volume_list(start, vols);
            st.res.merge_network_list(start, &rows, all)
        };
        let results: Vec<_> = futures_util::stream::iter(to_inspect)
            .map(|id| async move { self.refresh_network(sh, &id).await })
            .buffer_unordered(INSPECT_CONCURRENCY)
            .collect()
            .await;
        results.into_iter().collect::<Result<Vec<_>, _>>()?;
        let mut st = self.lock();
        st.res.forget_drops(start);
        if all {
            st.res.synced_gen = Some(gen);
        }
        Ok(())
    }

    /// Applies a `network`/`volume` event: at most one request to the node.
    pub async fn apply_resource_event(&self, sh: &Shared, typ: &str, action: &str, id: &str) {
        let fetch = self.lock().res.apply_event(typ, action, id);
        let r = match fetch {
            Some(Fetch::Network(id)) => self.refresh_network(sh, &id).await,
            Some(Fetch::Volume(name)) => self.refresh_volume(sh, &name).await,
            None => Ok(()),
        };
        if let Err(e) = r {
            tracing::debug!(addr = %self.addr, error = %e, "reading a network or volume after its event failed");
        }
    }

    /// Runs `f` over this node's networks and volumes, under the node's lock.
    pub fn with_resources<R>(&self, f: impl FnOnce(&Resources) -> R) -> R {
        f(&self.lock().res)
    }

    /// Runs `f` to change this node's networks and volumes (after a create or remove routed
    /// through the manager).
    pub fn update_resources<R>(&self, f: impl FnOnce(&mut Resources) -> R) -> R {
        f(&mut self.lock().res)
    }

    /// Names of the volumes some container on this node refers to.
    pub fn volumes_in_use(&self) -> HashSet<String> {
        let mut out = HashSet::new();
        self.each_container(|c| {
            for m in MountPoint::read_all(&c.mounts.value()) {
                if let Some(n) = m.name.filter(|n| !n.is_empty()) {
                    out.insert(n);
                }
            }
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(id: &str, name: &str) -> Resource {
        Resource::read(json!({"Id": id, "Name": name, "Scope": "local", "Driver": "bridge", "Containers": {}}))
    }
    fn vol(name: &str) -> Resource {
        Resource::read(json!({"Name": name, "Driver": "local", "Scope": "local"}))
    }
    fn names(v: Vec<Arc<Resource>>) -> Vec<String> {
        v.iter().map(|x| x.name.clone().unwrap()).collect()
    }

    #[test]
    fn network_events() {
        let mut r = Resources::default();
        assert_eq!(r.apply_event("network", "create", "abc"), Some(Fetch::Network("abc".into())));
        r.put_network(net("abc123", "front"));
        assert_eq!(r.apply_event("network", "connect", "abc123"), Some(Fetch::Network("abc123".into())));
        assert_eq!(r.apply_event("network", "disconnect", "abc123"), Some(Fetch::Network("abc123".into())));
        assert_eq!(r.find_network("front").unwrap().id.as_deref(), Some("abc123"));
        assert_eq!(r.find_network("abc").unwrap().name.as_deref(), Some("front"));
        assert_eq!(r.apply_event("network", "destroy", "abc123"), None);
        assert!(r.find_network("front").is_none());
        assert_eq!(r.apply_event("network", "create", ""), None);
        assert_eq!(r.apply_event("container", "start", "abc"), None);
    }

    #[test]
    fn volume_events() {
        let mut r = Resources::default();
        assert_eq!(r.apply_event("volume", "create", "data"), Some(Fetch::Volume("data".into())));
        // An unknown volume being mounted is read; a known one is not.
        assert_eq!(r.apply_event("volume", "mount", "data"), Some(Fetch::Volume("data".into())));
        r.put_volume(vol("data"));
        assert_eq!(r.apply_event("volume", "mount", "data"), None);
        assert_eq!(r.apply_event("volume", "unmount", "data"), None);
        assert_eq!(names(r.volumes()), ["data"]);
        assert_eq!(r.apply_event("volume", "destroy", "data"), None);
        assert!(r.find_volume("data").is_none());
    }

    #[test]
    fn id_prefix_must_be_unique() {
        let mut r = Resources::default();
        r.put_network(net("aa11", "one"));
        r.put_network(net("aa22", "two"));
        assert!(r.find_network("aa").is_none());
        assert_eq!(r.find_network("aa2").unwrap().name.as_deref(), Some("two"));
        // A name wins over an ID prefix.
        r.put_network(net("ff00", "aa"));
        assert_eq!(r.find_network("aa").unwrap().id.as_deref(), Some("ff00"));
        assert_eq!(names(r.networks()), ["aa", "one", "two"]);
    }

    #[test]
    fn full_lists_do_not_undo_newer_events() {
        let mut r = Resources::default();
        r.put_network(net("old", "old"));
        r.put_network(net("kept", "kept"));
        r.put_volume(vol("v-old"));
        let start = r.seq;
        // While the lists were on their way: a network created, one destroyed, a volume too.
        r.put_network(net("new", "new"));
        r.drop_network("kept");
        r.put_volume(vol("v-new"));
        r.drop_volume("v-gone");
        let rows = [net("kept", "kept"), net("listed", "listed")];
        let mut inspect = r.merge_network_list(start, &rows, false);
        inspect.sort();
        assert_eq!(inspect, ["listed"], "the dropped one is not read back, known ones are kept");
        assert_eq!(names(r.networks()), ["new"]);
        r.merge_volume_list(start, vec![vol("v-gone"), vol("v-listed")]);
        assert_eq!(names(r.volumes()), ["v-listed", "v-new"]);
        // Every listed network is read after a reconnect.
        let mut all = r.merge_network_list(r.seq, &[net("new", "new"), net("x", "x")], true);
        all.sort();
        assert_eq!(all, ["new", "x"]);
        r.forget_drops(r.seq);
        assert!(r.dropped.is_empty());
    }
}
