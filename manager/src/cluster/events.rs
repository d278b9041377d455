//! The merged event stream: every node's events (with the node attached, as classic Swarm
//! does) plus the manager's own `engine_connect`/`engine_disconnect`/`engine_reconnect`.
use super::engine::NodeInfo;
use serde_json::{json, Value};
use std::sync::Arc;
use tokio::sync::broadcast;

#[derive(Clone)]
pub struct EventHub {
    tx: broadcast::Sender<Arc<Value>>,
}

impl Default for EventHub {
    fn default() -> Self {
        EventHub { tx: broadcast::channel(4096).0 }
    }
}

impl EventHub {
    pub fn publish(&self, ev: Value) {
        let _ = self.tx.send(Arc::new(ev));
    }
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Value>> {
        self.tx.subscribe()
    }
    pub fn listeners(&self) -> usize {
        self.tx.receiver_count()
    }
}

fn node_json(addr: &str, info: &NodeInfo) -> Value {
    json!({"Name": info.name, "Id": info.id, "Addr": addr, "Ip": info.ip})
}

/// Adds the node to a node's event: `from` gets ` node:<name>`, the actor gets `node.*`
/// attributes and the event a top-level `node` object.
pub fn enrich(mut ev: Value, addr: &str, info: &NodeInfo) -> Value {
    if let Some(from) = ev.get("from").and_then(Value::as_str) {
        ev["from"] = json!(format!("{from} node:{}", info.name));
    }
    if let Some(attrs) = ev.get_mut("Actor").and_then(|a| a.get_mut("Attributes")).and_then(Value::as_object_mut) {
        attrs.insert("node.name".into(), json!(info.name));
        attrs.insert("node.id".into(), json!(info.id));
        attrs.insert("node.addr".into(), json!(addr));
        attrs.insert("node.ip".into(), json!(info.ip));
    }
    if ev.is_object() {
        ev["node"] = node_json(addr, info);
    }
    ev
}

/// One of the manager's own events about a node.
pub fn swarm_event(action: &str, addr: &str, info: &NodeInfo) -> Value {
    let now = chrono::Utc::now();
    let nanos = now.timestamp_nanos_opt().unwrap_or_default();
    json!({
        "status": action, "id": "", "from": "swarm",
        "Type": "swarm", "Action": action,
        "Actor": {"ID": info.id, "Attributes": {"node.name": info.name, "node.id": info.id, "node.addr": addr, "node.ip": info.ip}},
        "scope": "local",
        "time": nanos / 1_000_000_000, "timeNano": nanos,
        "node": node_json(addr, info),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn enriches() {
        let info = NodeInfo { id: "ID1".into(), name: "node-1".into(), ip: "10.0.0.1".into(), ..Default::default() };
        let ev = json!({"status": "start", "from": "busybox", "Type": "container", "Actor": {"ID": "c", "Attributes": {"name": "web"}}});
        let ev = enrich(ev, "10.0.0.1:2375", &info);
        assert_eq!(ev["from"], "busybox node:node-1");
        assert_eq!(ev["Actor"]["Attributes"]["node.name"], "node-1");
        assert_eq!(ev["node"]["Addr"], "10.0.0.1:2375");
        let s = swarm_event("engine_connect", "10.0.0.1:2375", &info);
        assert_eq!(s["Type"], "swarm");
        assert_eq!(s["node"]["Name"], "node-1");
    }
}
