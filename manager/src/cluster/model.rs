//! Typed models of what the manager reads from its nodes' answers and its clients' requests:
//! here a container's inspect, a `docker ps` row and an event; in `create` the create bodies
//! it schedules and the answers to them; in `resource` networks, volumes, images, pull
//! progress and error answers; in `system` a node's `/info` and `/version`. Fields the manager
//! only passes on (networks, mounts, whole documents) stay raw JSON; everything it decides on is
//! typed here, so a missing or odd field has one default in one place instead of a lookup at
//! every use. Reads are tolerant (a field of the wrong type reads as absent), since the
//! documents go on to the node or client unchanged.
use serde::de::{DeserializeOwned, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;
use std::borrow::Cow;
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

/// A string of a node's answer: borrowed from the answer's bytes when it holds no escapes,
/// `null` and absent read as empty. Another type fails the document, as a `String` field did.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Text<'a>(pub Cow<'a, str>);

impl Text<'_> {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl PartialEq<&str> for Text<'_> {
    fn eq(&self, other: &&str) -> bool {
        *self.0 == **other
    }
}

impl std::ops::Deref for Text<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or null")
            }
            fn visit_borrowed_str<E: serde::de::Error>(self, s: &'de str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Borrowed(s)))
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(s.to_owned())))
            }
            fn visit_string<E: serde::de::Error>(self, s: String) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(s)))
            }
            fn visit_none<E: serde::de::Error>(self) -> Result<Text<'de>, E> {
                Ok(Text::default())
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<Text<'de>, E> {
                Ok(Text::default())
            }
            fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Text<'de>, D::Error> {
                d.deserialize_str(V)
            }
        }
        d.deserialize_option(V)
    }
}

/// A map visitor for which `null` (or nothing) reads as an empty value.
struct NullAsEmpty<V>(V);

impl<'de, V: Visitor<'de>> Visitor<'de> for NullAsEmpty<V>
where
    V::Value: Default,
{
    type Value = V::Value;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        self.0.expecting(f)?;
        f.write_str(" or null")
    }
    fn visit_map<A: MapAccess<'de>>(self, m: A) -> Result<Self::Value, A::Error> {
        self.0.visit_map(m)
    }
    fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        Ok(V::Value::default())
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        Ok(V::Value::default())
    }
    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self.0)
    }
}

/// A map of strings read as its pairs in document order (a later key wins where they are
/// collected, as in a map); `null` reads as empty.
fn text_pairs<'de: 'a, 'a, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<(Text<'a>, Text<'a>)>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Vec<(Text<'de>, Text<'de>)>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a map of strings")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::with_capacity(m.size_hint().unwrap_or(0));
            while let Some(kv) = m.next_entry::<Text<'de>, Text<'de>>()? {
                out.push(kv);
            }
            Ok(out)
        }
    }
    d.deserialize_option(NullAsEmpty(V))
}

/// The keys of a map (values skipped), sorted as a map's; `null` reads as none.
fn text_keys<'de: 'a, 'a, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<Text<'a>>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Vec<Text<'de>>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a map")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
            let mut out: Vec<Text<'de>> = Vec::with_capacity(m.size_hint().unwrap_or(0));
            while let Some((k, IgnoredAny)) = m.next_entry::<Text<'de>, IgnoredAny>()? {
                out.push(k);
            }
            out.sort();
            out.dedup();
            Ok(out)
        }
    }
    d.deserialize_option(NullAsEmpty(V))
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct InspectConfig<'a> {
    #[serde(borrow)]
    pub image: Text<'a>,
    #[serde(borrow, deserialize_with = "text_pairs")]
    pub labels: Vec<(Text<'a>, Text<'a>)>,
    /// The keys of `ExposedPorts`, sorted.
    #[serde(borrow, deserialize_with = "text_keys")]
    pub exposed_ports: Vec<Text<'a>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct InspectHostConfig<'a> {
    #[serde(deserialize_with = "nullable")]
    pub port_bindings: PortMap,
    #[serde(deserialize_with = "nullable")]
    pub cpu_shares: i64,
    #[serde(deserialize_with = "nullable")]
    pub memory: i64,
    #[serde(borrow)]
    pub network_mode: Text<'a>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Health<'a> {
    #[serde(borrow)]
    pub status: Text<'a>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct InspectState<'a> {
    #[serde(borrow)]
    pub status: Text<'a>,
    #[serde(deserialize_with = "nullable")]
    pub running: bool,
    #[serde(deserialize_with = "nullable")]
    pub exit_code: i64,
    #[serde(borrow)]
    pub started_at: Text<'a>,
    #[serde(borrow)]
    pub finished_at: Text<'a>,
    #[serde(borrow)]
    pub health: Option<Health<'a>>,
}

impl InspectState<'_> {
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
    /// Passed on as the node gave it (`None`: null or absent).
    pub networks: Option<Box<RawValue>>,
}

/// `GET /containers/{id}/json`: what the manager reads of it, straight from the answer's bytes
/// (no tree of values; strings borrowed from the answer where they have no escapes).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Inspect<'a> {
    #[serde(borrow)]
    pub id: Text<'a>,
    #[serde(borrow)]
    pub name: Text<'a>,
    #[serde(borrow)]
    pub created: Text<'a>,
    #[serde(borrow)]
    pub path: Text<'a>,
    #[serde(borrow, deserialize_with = "nullable")]
    pub args: Vec<Text<'a>>,
    /// The image's id.
    #[serde(borrow)]
    pub image: Text<'a>,
    #[serde(borrow, deserialize_with = "nullable")]
    pub config: InspectConfig<'a>,
    #[serde(borrow, deserialize_with = "nullable")]
    pub host_config: InspectHostConfig<'a>,
    #[serde(borrow, deserialize_with = "nullable")]
    pub state: InspectState<'a>,
    #[serde(deserialize_with = "nullable")]
    pub network_settings: InspectNetworkSettings,
    /// Passed on as the node gave it (`None`: null or absent).
    pub mounts: Option<Box<RawValue>>,
}

impl<'a> Inspect<'a> {
    /// Reads an inspect answer already parsed; fields it lacks or cannot read take their defaults.
    pub fn read(v: &'a Value) -> Inspect<'a> {
        if object(v).is_none() {
            return Inspect::default();
        }
        Inspect::deserialize(v).unwrap_or_else(|e| {
            tracing::debug!(error = %e, "unreadable container inspect");
            Inspect::default()
        })
    }

    /// Reads an inspect answer from its bytes. Valid JSON the manager cannot read (not an
    /// object, a field of another type) reads as [`Inspect::default`], as [`Inspect::read`];
    /// an error only for bytes that are not JSON.
    pub fn parse(body: &'a [u8]) -> Result<Inspect<'a>, serde_json::Error> {
        match serde_json::from_slice::<Inspect<'a>>(body) {
            Ok(i) if body.trim_ascii_start().first() == Some(&b'{') => Ok(i),
            Ok(_) => Ok(Inspect::default()),
            Err(e) => {
                serde_json::from_slice::<IgnoredAny>(body)?;
                tracing::debug!(error = %e, "unreadable container inspect");
                Ok(Inspect::default())
            }
        }
    }
}

/// A `GET /containers/json` row: what the refresh compares.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct PsRowIn<'a> {
    #[serde(borrow)]
    pub id: Text<'a>,
    #[serde(borrow)]
    pub state: Text<'a>,
}

impl<'a> PsRowIn<'a> {
    /// The row's state; `None` for a name Docker does not use (or none: old engines).
    pub fn container_state(&self) -> Option<ContainerState> {
        ContainerState::parse(&self.state)
    }

    /// Reads a list answer from its bytes: valid JSON that is not a list of rows reads as no
    /// rows (as a lookup on the parsed answer did); an error only for bytes that are not JSON.
    pub fn parse_all(body: &'a [u8]) -> Result<Vec<PsRowIn<'a>>, serde_json::Error> {
        match serde_json::from_slice::<Vec<PsRowIn<'a>>>(body) {
            Ok(rows) => Ok(rows),
            Err(e) => {
                serde_json::from_slice::<IgnoredAny>(body)?;
                tracing::debug!(error = %e, "unreadable container list");
                Ok(vec![])
            }
        }
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
        let v = json!({
            "Id": "abc", "Config": {"Labels": null, "ExposedPorts": null},
            "HostConfig": {"PortBindings": {"80/tcp": [{"HostIp": "", "HostPort": "8080"}], "81/tcp": null}},
            "State": {"Running": true}, "NetworkSettings": {"Ports": null}
        });
        let bytes = serde_json::to_vec(&v).unwrap();
        for i in [Inspect::read(&v), Inspect::parse(&bytes).unwrap()] {
            assert_eq!(i.id, "abc");
            assert!(i.config.labels.is_empty() && i.config.exposed_ports.is_empty());
            assert_eq!(i.host_config.port_bindings["80/tcp"].as_ref().unwrap()[0].host_port, "8080");
            assert!(i.host_config.port_bindings["81/tcp"].is_none());
            assert_eq!(i.state.state(), ContainerState::Running);
            assert!(i.state.health.is_none() && i.network_settings.networks.is_none() && i.mounts.is_none());
        }
        assert_eq!(Inspect::read(&json!("not an object")).id, "");
        // Valid JSON the manager cannot read takes the defaults; bytes that are not JSON fail.
        for odd in [&b"\"not an object\""[..], b"[\"abc\"]", br#"{"Id": 5}"#, br#"{"Id": "x", "State": 5}"#] {
            assert_eq!(Inspect::parse(odd).unwrap().id, "", "{}", String::from_utf8_lossy(odd));
        }
        assert!(Inspect::parse(b"{\"Id\": ").is_err());
        // A fresh create's record has no HostConfig yet.
        let v = json!({"Id": "x", "HostConfig": null, "State": {"Status": "created"}});
        let fresh = Inspect::read(&v);
        assert_eq!((fresh.id.as_str(), fresh.state.state()), ("x", ContainerState::Created));
    }

    #[test]
    fn answers_are_read_from_their_bytes() {
        // Strings without escapes are borrowed from the answer; the documents passed on are kept.
        let body = br#"{"Id":"c1","Name":"/we\"b","Args":["-c","x"],"Config":{"Labels":{"a":"1","b":"2","a":"3"},"ExposedPorts":{"80/tcp":{},"53/udp":{}}},
            "NetworkSettings":{"Networks":{"bridge":{"IPAddress":"10.0.0.2"}}},"Mounts":[]}"#;
        let i = Inspect::parse(body).unwrap();
        assert!(matches!(i.id.0, Cow::Borrowed("c1")));
        assert_eq!((i.name.as_str(), i.args.len()), ("/we\"b", 2));
        let labels: Vec<(&str, &str)> = i.config.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(labels, [("a", "1"), ("b", "2"), ("a", "3")]);
        let ports: Vec<&str> = i.config.exposed_ports.iter().map(|k| k.as_str()).collect();
        assert_eq!(ports, ["53/udp", "80/tcp"]);
        assert_eq!(i.network_settings.networks.unwrap().get(), r#"{"bridge":{"IPAddress":"10.0.0.2"}}"#);
        assert_eq!(i.mounts.unwrap().get(), "[]");
        let rows = PsRowIn::parse_all(br#"[{"Id":"a","State":"running","Names":["/x"]},{"Id":"b","State":null}]"#).unwrap();
        assert_eq!((rows[0].id.as_str(), rows[0].container_state(), rows[1].container_state()), ("a", Some(ContainerState::Running), None));
        assert!(PsRowIn::parse_all(br#"{"message":"odd"}"#).unwrap().is_empty());
        assert!(PsRowIn::parse_all(b"[{").is_err());
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
