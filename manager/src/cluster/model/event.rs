//! What the manager reads of a node's event (`GET /events`), in the current form or the old one.
use super::{lenient, nullable, object};
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// The actor of an event.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Actor {
    #[serde(rename = "ID", deserialize_with = "nullable")]
    pub id: String,
    #[serde(rename = "Attributes", deserialize_with = "nullable")]
    pub attributes: BTreeMap<String, String>,
}

/// One line of a node's `GET /events`, in the current form (`Type`, `Action`, `Actor`) or the
/// old one (`status`, `id`, `from`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct NodeEvent {
    #[serde(rename = "Type", deserialize_with = "nullable")]
    pub typ: String,
    #[serde(rename = "Action", deserialize_with = "nullable")]
    pub action: String,
    #[serde(rename = "Actor", deserialize_with = "nullable")]
    pub actor: Actor,
    pub status: Option<String>,
    #[serde(deserialize_with = "nullable")]
    pub id: String,
    #[serde(deserialize_with = "nullable")]
    pub time: i64,
    #[serde(rename = "timeNano", deserialize_with = "nullable")]
    pub time_nano: i64,
    /// The node the manager attached to a merged event (absent on a node's own stream).
    #[serde(deserialize_with = "lenient")]
    pub node: EventNode,
}

/// The `node` object of a merged event.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct EventNode {
    #[serde(deserialize_with = "lenient")]
    pub name: String,
    #[serde(deserialize_with = "lenient")]
    pub id: String,
}

impl NodeEvent {
    pub fn read(v: &Value) -> NodeEvent {
        object(v).and_then(|v| NodeEvent::deserialize(v).ok()).unwrap_or_default()
    }

    /// The object type (old-style events are all about containers).
    pub fn typ(&self) -> &str {
        if self.typ.is_empty() && self.status.is_some() {
            "container"
        } else {
            &self.typ
        }
    }

    pub fn action(&self) -> &str {
        if self.action.is_empty() {
            self.status.as_deref().unwrap_or("")
        } else {
            &self.action
        }
    }

    pub fn actor_id(&self) -> &str {
        if self.actor.id.is_empty() {
            &self.id
        } else {
            &self.actor.id
        }
    }

    pub fn attr(&self, k: &str) -> Option<&str> {
        self.actor.attributes.get(k).map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn old_events_read() {
        let old = NodeEvent::read(&json!({"status": "die", "id": "c1", "from": "busybox", "time": 5}));
        assert_eq!((old.typ(), old.action(), old.actor_id()), ("container", "die", "c1"));
        let new =
            NodeEvent::read(&json!({"Type": "network", "Action": "connect", "Actor": {"ID": "n1", "Attributes": {"container": "c1"}}}));
        assert_eq!((new.typ(), new.action(), new.actor_id(), new.attr("container")), ("network", "connect", "n1", Some("c1")));
        // A merged event as classic Swarm (and this manager) sends it: the node attached.
        let merged = NodeEvent::read(&json!({
            "status": "start", "id": "c1", "from": "busybox node:node-1", "Type": "container", "Action": "start",
            "Actor": {"ID": "c1", "Attributes": {"image": "busybox", "name": "web", "node.name": "node-1"}},
            "scope": "local", "time": 1_700_000_000, "timeNano": 1_700_000_000_000_000_000_i64,
            "node": {"Name": "node-1", "Id": "ABCD:EFGH", "Addr": "10.0.0.1:2375", "Ip": "10.0.0.1"}
        }));
        assert_eq!((merged.node.name.as_str(), merged.node.id.as_str(), merged.time), ("node-1", "ABCD:EFGH", 1_700_000_000));
        assert_eq!(merged.attr("node.name"), Some("node-1"));
        assert_eq!(NodeEvent::read(&json!({"Type": "image", "node": "odd"})).typ, "image", "an odd node spoils nothing else");
    }
}
