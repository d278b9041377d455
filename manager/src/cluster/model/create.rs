//! What the manager reads of the create requests it schedules (`POST /containers/create`,
//! `POST /networks/{id}/connect`) and of the nodes' answers to them. The request bodies are
//! forwarded to the node as the client sent them, with the few fields the manager sets written
//! into the raw document ([`set_field`]); these structs are read views of them.
use super::{lenient, nullable, object, port_bindings, string_map, strings, HostBinding};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// `HostConfig` of a create body: what placement reads.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct CreateHostConfig {
    /// Port key (`80/tcp`) to its host bindings (`null`: none). Read entry by entry: an odd
    /// binding spoils only itself.
    #[serde(deserialize_with = "port_bindings")]
    pub port_bindings: BTreeMap<String, Option<Vec<HostBinding>>>,
    #[serde(deserialize_with = "lenient")]
    pub network_mode: String,
    /// `--link`: `[/]container[:alias]`.
    #[serde(deserialize_with = "strings")]
    pub links: Vec<String>,
    /// `--volumes-from`: `container[:ro|rw]`.
    #[serde(deserialize_with = "strings")]
    pub volumes_from: Vec<String>,
    /// Swarm's meaning: CPUs to reserve.
    #[serde(deserialize_with = "lenient")]
    pub cpu_shares: i64,
    #[serde(deserialize_with = "lenient")]
    pub memory: i64,
}

/// `NetworkingConfig` of a create body.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NetworkingConfig {
    /// Network name to its endpoint settings (forwarded as given).
    #[serde(deserialize_with = "lenient")]
    pub endpoints_config: BTreeMap<String, Value>,
}

/// A create body (`ContainerCreateBody`): what the scheduler and the create path read. A field
/// of the wrong type reads as absent; the node gets the body as sent and judges it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct CreateConfig {
    #[serde(deserialize_with = "lenient")]
    pub image: String,
    /// `KEY=value` entries, and Swarm's `constraint:`/`affinity:`/… expressions.
    #[serde(deserialize_with = "strings")]
    pub env: Vec<String>,
    #[serde(deserialize_with = "string_map")]
    pub labels: BTreeMap<String, String>,
    /// Port key (`80/tcp`) to `{}`.
    #[serde(deserialize_with = "lenient")]
    pub exposed_ports: BTreeMap<String, Value>,
    #[serde(deserialize_with = "lenient")]
    pub host_config: CreateHostConfig,
    #[serde(deserialize_with = "lenient")]
    pub networking_config: NetworkingConfig,
}

impl CreateConfig {
    /// Reads a create body; what it lacks or cannot read takes its default.
    pub fn read(v: &Value) -> CreateConfig {
        object(v).and_then(|v| CreateConfig::deserialize(v).ok()).unwrap_or_default()
    }
}

/// A node's answer to a create (`{"Id", "Warnings"}`; an exec create has only `Id`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Created {
    #[serde(default, deserialize_with = "nullable")]
    pub id: String,
    /// Passed on as the node gave it (`null` included); `[]` when absent.
    #[serde(default = "empty_list")]
    pub warnings: Value,
}

fn empty_list() -> Value {
    Value::Array(vec![])
}

impl Default for Created {
    fn default() -> Self {
        Created { id: String::new(), warnings: empty_list() }
    }
}

impl Created {
    pub fn read(v: &Value) -> Created {
        object(v).and_then(|v| Created::deserialize(v).ok()).unwrap_or_default()
    }
}

/// The body of `POST /networks/{id}/connect|disconnect`: the container is read (and replaced
/// by its full ID), the rest (`EndpointConfig`, `Force`) forwarded as given.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct NetworkMember {
    #[serde(rename = "Container", default, deserialize_with = "lenient")]
    pub container: String,
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

/// The body of `POST /networks/create` or `POST /volumes/create`: its name is read (a
/// `node/name` pins the create), the body forwarded.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct NamedBody {
    #[serde(rename = "Name", default, deserialize_with = "lenient")]
    pub name: String,
}

/// Sets `section.key` (`HostConfig.NetworkMode`, `Labels.com.docker.swarm.id`) in a
/// forwarded document, making `section` an object when it is missing or not one. A document
/// that is not an object is left alone.
pub fn set_field(doc: &mut Value, section: &str, key: &str, v: Value) {
    let Some(obj) = doc.as_object_mut() else { return };
    let sec = obj.entry(section).or_insert_with(|| Value::Object(Map::new()));
    if !sec.is_object() {
        *sec = Value::Object(Map::new());
    }
    if let Some(m) = sec.as_object_mut() {
        m.insert(key.to_string(), v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A body as `docker create` (CLI 28) sends it, abridged.
    fn cli_body() -> Value {
        json!({
            "Hostname": "", "Domainname": "", "User": "", "AttachStdin": false, "Tty": false,
            "Env": ["A=1", "constraint:node==n1"], "Cmd": ["sleep", "60"], "Image": "busybox",
            "Volumes": {}, "WorkingDir": "", "Entrypoint": null, "OnBuild": null,
            "Labels": {"com.docker.swarm.affinities": "[\"container==web\"]", "x": "y"},
            "ExposedPorts": {"80/tcp": {}},
            "HostConfig": {"Binds": null, "ContainerIDFile": "", "LogConfig": {"Type": "", "Config": {}},
                "NetworkMode": "front", "PortBindings": {"80/tcp": [{"HostIp": "", "HostPort": "8080"}]},
                "RestartPolicy": {"Name": "no", "MaximumRetryCount": 0}, "VolumesFrom": ["data:ro"],
                "Links": ["/db:db"], "CpuShares": 2, "Memory": 33554432, "NanoCpus": 0},
            "NetworkingConfig": {"EndpointsConfig": {"front": {"IPAMConfig": null, "Links": null, "Aliases": null}}}
        })
    }

    #[test]
    fn reads_a_cli_body() {
        let c = CreateConfig::read(&cli_body());
        assert_eq!(c.image, "busybox");
        assert_eq!(c.env, ["A=1", "constraint:node==n1"]);
        assert_eq!(c.labels["x"], "y");
        assert_eq!(c.exposed_ports.keys().collect::<Vec<_>>(), ["80/tcp"]);
        let hc = &c.host_config;
        assert_eq!((hc.network_mode.as_str(), hc.cpu_shares, hc.memory), ("front", 2, 33554432));
        assert_eq!(hc.port_bindings["80/tcp"].as_ref().unwrap()[0].host_port, "8080");
        assert_eq!((hc.links.as_slice(), hc.volumes_from.as_slice()), (&["/db:db".to_string()][..], &["data:ro".to_string()][..]));
        assert!(c.networking_config.endpoints_config.contains_key("front"));
    }

    #[test]
    fn odd_fields_read_as_absent_one_by_one() {
        let c = CreateConfig::read(&json!({
            "Image": 5, "Env": ["A=1", 7, null], "Labels": {"a": "b", "n": 1},
            "HostConfig": {"Memory": "1g", "CpuShares": 1.5, "NetworkMode": "host", "Links": "db", "PortBindings": null},
            "Unknown": {"x": 1}
        }));
        assert_eq!(c.image, "");
        assert_eq!(c.env, ["A=1"]);
        assert_eq!(c.labels.len(), 1);
        assert_eq!((c.host_config.memory, c.host_config.cpu_shares), (0, 0));
        assert_eq!(c.host_config.network_mode, "host", "one odd field spoils no other");
        assert!(c.host_config.links.is_empty() && c.host_config.port_bindings.is_empty());
        assert_eq!(CreateConfig::read(&json!([1, 2])).image, "");
        assert_eq!(CreateConfig::read(&json!({"HostConfig": null})).host_config.memory, 0);
    }

    #[test]
    fn an_odd_port_binding_spoils_only_itself() {
        let c = CreateConfig::read(&json!({"HostConfig": {"PortBindings": {
            "80/tcp": [{"HostPort": "8080"}],
            "443/tcp": [null],
            "53/udp": [{"HostPort": 53}],
            "22/tcp": "nope",
        }}}));
        let pb = &c.host_config.port_bindings;
        assert_eq!(pb["80/tcp"].as_ref().unwrap()[0].host_port, "8080", "{pb:?}");
        assert_eq!(pb["443/tcp"].as_ref().unwrap()[0].host_port, "", "[null] is any host port");
        assert_eq!(pb["53/udp"].as_ref().unwrap()[0].host_port, "", "{pb:?}");
        assert!(pb["22/tcp"].is_none(), "{pb:?}");
        assert_eq!(Created::read(&json!(["abc", []])).id, "", "an array is not an answer");
    }

    #[test]
    fn answers_and_member_bodies() {
        let a = Created::read(&json!({"Id": "abc", "Warnings": null}));
        assert_eq!((a.id.as_str(), &a.warnings), ("abc", &Value::Null), "null is passed on");
        assert_eq!(Created::read(&json!({"Id": "e1"})).warnings, json!([]));
        let m = NetworkMember::deserialize(json!({"Container": "web", "EndpointConfig": {"Aliases": ["a"]}, "Force": true})).unwrap();
        assert_eq!(m.container, "web");
        let out = serde_json::to_string(&NetworkMember { container: "0123".into(), ..m }).unwrap();
        assert_eq!(out, r#"{"Container":"0123","EndpointConfig":{"Aliases":["a"]},"Force":true}"#);
        assert_eq!(NamedBody::deserialize(json!({"Name": "node-1/front", "Driver": "bridge"})).unwrap().name, "node-1/front");
        assert_eq!(NamedBody::deserialize(json!({"Name": null})).unwrap().name, "");
    }

    #[test]
    fn set_field_makes_the_section() {
        let mut b = json!({"Image": "x", "HostConfig": "odd"});
        set_field(&mut b, "HostConfig", "NetworkMode", json!("n"));
        set_field(&mut b, "Labels", "k", json!("v"));
        assert_eq!(b, json!({"Image": "x", "HostConfig": {"NetworkMode": "n"}, "Labels": {"k": "v"}}));
        let mut not_obj = json!([]);
        set_field(&mut not_obj, "Labels", "k", json!("v"));
        assert_eq!(not_obj, json!([]));
    }
}
