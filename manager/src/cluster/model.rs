//! Typed models of what the manager reads from its nodes' answers and its clients' requests:
//! in `container` a container's inspect, its state and a `docker ps` row; in `event` an event;
//! in `create` the create bodies it schedules and the answers to them; in `resource` networks,
//! volumes, images, pull progress and error answers; in `system` a node's `/info` and
//! `/version`; in `text` the strings read borrowed from an answer's bytes. Here: the field
//! readers they share and the port bindings. Fields the manager only passes on (networks,
//! mounts, whole documents) stay raw JSON; everything it decides on is typed, so a missing or
//! odd field has one default in one place instead of a lookup at every use. Reads are tolerant
//! (a field of the wrong type reads as absent), since the documents go on to the node or client
//! unchanged.
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;

mod container;
mod create;
mod event;
mod resource;
mod system;
mod text;

pub use container::{ContainerState, Health, Inspect, InspectConfig, InspectHostConfig, InspectNetworkSettings, InspectState, PsRowIn};
pub use create::{set_field, CreateConfig, CreateHostConfig, Created, NamedBody, NetworkMember, NetworkingConfig};
pub use event::{Actor, EventNode, NodeEvent};
pub use resource::{EndpointSettings, ErrorBody, ImageRow, MountPoint, ProgressLine, Resource, VolumeList};
pub use system::{SystemInfo, SystemVersion};
pub use text::Text;

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
