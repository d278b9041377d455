//! What the manager reads of a container: its state, its inspect (`GET /containers/{id}/json`)
//! and a `GET /containers/json` row, straight from the answer's bytes.
use super::text::{text_keys, text_pairs, Text};
use super::{nullable, object, PortMap};
use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;
use std::fmt;

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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::borrow::Cow;

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
    fn states_round_trip() {
        for s in ["created", "running", "paused", "restarting", "removing", "exited", "dead"] {
            assert_eq!(ContainerState::parse(s).unwrap().as_str(), s);
        }
        assert_eq!(ContainerState::parse("weird"), None);
        let row = PsRowIn::deserialize(json!({"Id": "c1", "Names": ["/web"], "State": "running", "Status": "Up 2 minutes"})).unwrap();
        assert_eq!(row.container_state(), Some(ContainerState::Running));
        assert_eq!(PsRowIn::deserialize(json!({"Id": "c1", "Status": "Up"})).unwrap().container_state(), None);
    }
}
