//! Typed models of what the manager reads from its nodes' answers and its clients' requests:
//! here a container's inspect, a `docker ps` row and an event; in `create` the create bodies
//! it schedules and the answers to them; in `resource` networks, volumes, images, pull
//! progress and error answers; in `system` a node's `/info` and `/version`. Fields the manager
//! only passes on (networks, mounts, whole documents) stay raw JSON; everything it decides on is
//! typed here, so a missing or odd field has one default in one place instead of a lookup at
//! every use. Reads are tolerant (a field of the wrong type reads as absent), since the
//! documents go on to the node or client unchanged.
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;

mod create;
mod resource;
mod system;

pub use create::{set_field, CreateConfig, CreateHostConfig, Created, NamedBody, NetworkMember, NetworkingConfig};
pub use resource::{EndpointSettings, ErrorBody, ImageRow, MountPoint, ProgressLine, Resource, VolumeList};
pub use system::{SystemInfo, SystemVersion};

/// A container's state, as Docker names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ContainerState {
    Created,
    Running,
    Paused,
    Restarting,
    Removing,
    Exited,
    Dead,
}

impl ContainerState {
    pub fn as_str(self) -> &'static str {
        match self {
            ContainerState::Created => "created",
            ContainerState::Running => "running",
            ContainerState::Paused => "paused",
            ContainerState::Restarting => "restarting",
            ContainerState::Removing => "removing",
            ContainerState::Exited => "exited",
            ContainerState::Dead => "dead",
        }
    }

    /// Docker's name for a state; `None` for a name it does not use.
    pub fn parse(s: &str) -> Option<ContainerState> {
        Some(match s {
            "created" => ContainerState::Created,
            "running" => ContainerState::Running,
            "paused" => ContainerState::Paused,
            "restarting" => ContainerState::Restarting,
            "removing" => ContainerState::Removing,
            "exited" => ContainerState::Exited,
            "dead" => ContainerState::Dead,
            _ => return None,
        })
    }

    /// Has a process (what `docker ps` without `-a` lists).
    pub fn is_up(self) -> bool {
        matches!(self, ContainerState::Running | ContainerState::Paused | ContainerState::Restarting)
    }
}

impl fmt::Display for ContainerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for ContainerState {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// `null` and absent alike become the default (Docker sends `null` for empty maps and lists).
fn nullable<'de, D: serde::Deserializer<'de>, T: Default + Deserialize<'de>>(d: D) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// A field of the wrong type reads as absent (the default), as a lookup on raw JSON did; the
/// document itself is passed on unchanged, so the node still sees (and judges) the odd value.
fn lenient<'de, D: serde::Deserializer<'de>, T: Default + DeserializeOwned>(d: D) -> Result<T, D::Error> {
    Ok(T::deserialize(Value::deserialize(d)?).unwrap_or_default())
}

/// `v` when it is a JSON object. serde's derive also reads a struct from an array (by
/// position), which a lookup by name never did: the `read` functions take objects only.
pub(crate) fn object(v: &Value) -> Option<&Value> {
    v.is_object().then_some(v)
}

/// Port bindings (`HostConfig.PortBindings`) read entry by entry: a binding that is not an
/// object reads as an empty one (any host port, as dockerd takes `[null]`), a port whose value is
/// not a list reads as no binding, and a non-map as none at all.
fn port_bindings<'de, D: serde::Deserializer<'de>>(d: D) -> Result<PortMap, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Object(m) => m
            .into_iter()
            .map(|(k, v)| {
                let list = match v {
                    Value::Array(a) => Some(a.into_iter().map(|b| HostBinding::deserialize(b).unwrap_or_default()).collect()),
                    _ => None,
                };
                (k, list)
            })
            .collect(),
        _ => PortMap::new(),
    })
}

/// A list of strings; anything else in it is skipped, and a non-list reads as empty.
fn strings<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Array(a) => a.into_iter().filter_map(|x| if let Value::String(s) = x { Some(s) } else { None }).collect(),
        _ => vec![],
    })
}

/// A map of strings (labels, attributes); entries of another type are skipped, and a non-map
/// reads as empty.
fn string_map<'de, D: serde::Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Object(m) => m.into_iter().filter_map(|(k, x)| if let Value::String(s) = x { Some((k, s)) } else { None }).collect(),
        _ => BTreeMap::new(),
    })
}

/// One host binding of a port (`HostConfig.PortBindings`, `NetworkSettings.Ports`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct HostBinding {
    #[serde(deserialize_with = "nullable")]
    pub host_ip: String,
    #[serde(deserialize_with = "nullable")]
    pub host_port: String,
}

/// A binding's host address as the node gave it (`None`: absent or not a string), for the
/// manager to fill in the node's address.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct BindingAddr {
    #[serde(rename = "HostIp", default, deserialize_with = "lenient")]
    pub host_ip: Option<String>,
}

/// Port key (`80/tcp`) to its host bindings.
pub type PortMap = BTreeMap<String, Option<Vec<HostBinding>>>;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct InspectConfig {
    #[serde(deserialize_with = "nullable")]
    pub image: String,
    #[serde(deserialize_with = "nullable")]
    pub labels: BTreeMap<String, String>,
    #[serde(deserialize_with = "nullable")]
    pub exposed_ports: BTreeMap<String, Value>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct InspectHostConfig {
    #[serde(deserialize_with = "nullable")]
    pub port_bindings: PortMap,
    #[serde(deserialize_with = "nullable")]
    pub cpu_shares: i64,
    #[serde(deserialize_with = "nullable")]
    pub memory: i64,
    #[serde(deserialize_with = "nullable")]
    pub network_mode: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Health {
    #[serde(deserialize_with = "nullable")]
    pub status: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct InspectState {
    #[serde(deserialize_with = "nullable")]
    pub status: String,
    #[serde(deserialize_with = "nullable")]
    pub running: bool,
    #[serde(deserialize_with = "nullable")]
    pub exit_code: i64,
    #[serde(deserialize_with = "nullable")]
    pub started_at: String,
    #[serde(deserialize_with = "nullable")]
    pub finished_at: String,
    pub health: Option<Health>,
}

impl InspectState {
    /// The state; engines older than API 1.21 only say `Running`.
    pub fn state(&self) -> ContainerState {
        match ContainerState::parse(&self.status) {
            Some(s) => s,
            None if self.running => ContainerState::Running,
            None => ContainerState::Exited,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct InspectNetworkSettings {
    #[serde(deserialize_with = "nullable")]
    pub ports: PortMap,
    /// Passed on as the node gave it.
    pub networks: Value,
}

/// `GET /containers/{id}/json`: what the manager reads of it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Inspect {
    #[serde(deserialize_with = "nullable")]
    pub id: String,
    #[serde(deserialize_with = "nullable")]
    pub name: String,
    #[serde(deserialize_with = "nullable")]
    pub created: String,
    #[serde(deserialize_with = "nullable")]
    pub path: String,
    #[serde(deserialize_with = "nullable")]
    pub args: Vec<String>,
    /// The image's id.
    #[serde(deserialize_with = "nullable")]
    pub image: String,
    #[serde(deserialize_with = "nullable")]
    pub config: InspectConfig,
    #[serde(deserialize_with = "nullable")]
    pub host_config: InspectHostConfig,
    #[serde(deserialize_with = "nullable")]
    pub state: InspectState,
    #[serde(deserialize_with = "nullable")]
    pub network_settings: InspectNetworkSettings,
    /// Passed on as the node gave it.
    pub mounts: Value,
}

impl Inspect {
    /// Reads an inspect answer; fields it lacks or cannot read take their defaults.
    pub fn read(v: &Value) -> Inspect {
        if object(v).is_none() {
            return Inspect::default();
        }
        Inspect::deserialize(v).unwrap_or_else(|e| {
            tracing::debug!(error = %e, "unreadable container inspect");
            Inspect::default()
        })
    }
}

/// A `GET /containers/json` row: what the refresh compares.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct PsRowIn {
    #[serde(deserialize_with = "nullable")]
    pub id: String,
    #[serde(deserialize_with = "nullable")]
    pub state: String,
}

impl PsRowIn {
    /// The row's state; `None` for a name Docker does not use (or none: old engines).
    pub fn container_state(&self) -> Option<ContainerState> {
        ContainerState::parse(&self.state)
    }
}

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
    fn nulls_and_absent_fields_take_defaults() {
        let i = Inspect::read(&json!({
            "Id": "abc", "Config": {"Labels": null, "ExposedPorts": null},
            "HostConfig": {"PortBindings": {"80/tcp": [{"HostIp": "", "HostPort": "8080"}], "81/tcp": null}},
            "State": {"Running": true}, "NetworkSettings": {"Ports": null}
        }));
        assert_eq!(i.id, "abc");
        assert!(i.config.labels.is_empty());
        assert_eq!(i.host_config.port_bindings["80/tcp"].as_ref().unwrap()[0].host_port, "8080");
        assert!(i.host_config.port_bindings["81/tcp"].is_none());
        assert_eq!(i.state.state(), ContainerState::Running);
        assert!(i.state.health.is_none());
        assert_eq!(Inspect::read(&json!("not an object")).id, "");
        // A fresh create's record has no HostConfig yet.
        let fresh = Inspect::read(&json!({"Id": "x", "HostConfig": null, "State": {"Status": "created"}}));
        assert_eq!((fresh.id.as_str(), fresh.state.state()), ("x", ContainerState::Created));
    }

    #[test]
    fn states_round_trip_and_old_events_read() {
        for s in ["created", "running", "paused", "restarting", "removing", "exited", "dead"] {
            assert_eq!(ContainerState::parse(s).unwrap().as_str(), s);
        }
        assert_eq!(ContainerState::parse("weird"), None);
        let row = PsRowIn::deserialize(json!({"Id": "c1", "Names": ["/web"], "State": "running", "Status": "Up 2 minutes"})).unwrap();
        assert_eq!(row.container_state(), Some(ContainerState::Running));
        assert_eq!(PsRowIn::deserialize(json!({"Id": "c1", "Status": "Up"})).unwrap().container_state(), None);
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
