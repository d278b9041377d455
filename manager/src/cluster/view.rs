//! The manager's record of a node's containers, built from `docker inspect` output, and what
//! it turns into: the scheduler's [`ContainerView`] and `docker ps` rows (`/node/name`, node IP
//! in ports, status text computed at list time so it never goes stale). A record is packed:
//! typed fields for what `ps`, its filters and the scheduler read, repeated strings (image,
//! image ID, network mode, port types) shared, and the documents only passed on (networks,
//! mounts) held as compact JSON text (`packed.rs`).
use super::model::{ContainerState, Inspect};
use super::packed::{PsPort, RawJson};
use crate::scheduler::labels::intern;
use crate::scheduler::{ContainerView, Labels, PortBinding, Request};
use serde_json::{Map, Value};
use std::sync::Arc;

/// One container as the manager keeps it.
#[derive(Debug, Clone)]
pub struct Container {
    pub sched: Arc<ContainerView>,
    /// Name without the leading `/` (shared with the scheduler's view).
    pub name: Arc<str>,
    /// Shared with other records' equal commands (`packed::share`).
    pub command: Arc<str>,
    pub created: i64,
    pub state: ContainerState,
    pub exit_code: i64,
    pub started_at: Option<chrono::DateTime<chrono::Utc>>,
    pub finished_at: Option<chrono::DateTime<chrono::Utc>>,
    pub health: Option<Box<str>>,
    /// `docker ps` style `Ports` entries.
    pub ports: Box<[PsPort]>,
    /// `NetworkSettings.Networks`, as the node gave it.
    pub networks: RawJson,
    pub mounts: RawJson,
}

fn time(v: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(v).ok().map(|t| t.with_timezone(&chrono::Utc)).filter(|t| t.timestamp() > 0)
}

/// The command `ps` shows: the path and its arguments joined by spaces (empty ones left out),
/// shared with equal commands of other records.
fn command_of<'a>(words: impl Iterator<Item = &'a str>) -> Arc<str> {
    let mut s = String::new();
    for x in words.filter(|x| !x.is_empty()) {
        if !s.is_empty() {
            s.push(' ');
        }
        s.push_str(x);
    }
    super::packed::share(&s)
}

fn port_parts(key: &str) -> (i64, &str) {
    let (p, proto) = key.split_once('/').unwrap_or((key, "tcp"));
    (p.parse().unwrap_or(0), proto)
}

/// A `Ports` entry of `ps` for the port key `80/tcp`, published at `public` (host IP, port).
fn port_entry(key: &str, public: Option<(Arc<str>, i64)>) -> PsPort {
    let (private_port, proto) = port_parts(key);
    PsPort { public, private_port, typ: intern(proto) }
}

impl Container {
    /// Parses `GET /containers/{id}/json` already parsed (tests, creates). `ncpu` converts
    /// CpuShares back to CPUs.
    pub fn from_inspect(v: &Value, ncpu: i64) -> Container {
        Container::from_model(Inspect::read(v), ncpu)
    }

    /// Parses `GET /containers/{id}/json` from the answer's bytes (no tree of values); an
    /// error only for bytes that are not JSON (see [`Inspect::parse`]).
    pub fn from_inspect_bytes(body: &[u8], ncpu: i64) -> Result<Container, serde_json::Error> {
        Ok(Container::from_model(Inspect::parse(body)?, ncpu))
    }

    fn from_model(i: Inspect<'_>, ncpu: i64) -> Container {
        let hc = i.host_config;
        let cfg = i.config;
        let labels: Labels = cfg.labels.iter().map(|(k, x)| (k.as_str(), x.as_str())).collect();
        let port_bindings = PortBinding::all_of(&hc.port_bindings);
        let exposed_ports: Vec<String> = cfg.exposed_ports.iter().map(|k| k.as_str().to_owned()).collect();
        let name: Arc<str> = i.name.trim_start_matches('/').into();
        let cpus = if hc.cpu_shares > 0 && ncpu > 0 { hc.cpu_shares * ncpu / 1024 } else { 0 };
        let mut ports = vec![];
        if i.network_settings.ports.is_empty() {
            for k in &exposed_ports {
                ports.push(port_entry(k, None));
            }
        }
        for (key, list) in &i.network_settings.ports {
            match list {
                Some(bs) if !bs.is_empty() => {
                    for b in bs {
                        ports.push(port_entry(key, Some((intern(&b.host_ip), b.host_port.parse::<i64>().unwrap_or(0)))));
                    }
                }
                _ => ports.push(port_entry(key, None)),
            }
        }
        let command = command_of(std::iter::once(&*i.path).chain(i.args.iter().map(|a| a.as_str())));
        let created = chrono::DateTime::parse_from_rfc3339(&i.created).map(|t| t.timestamp()).unwrap_or(0);
        let sched = ContainerView {
            id: i.id.as_str().into(),
            names: Box::new([name.clone()]),
            image: intern(&cfg.image),
            image_id: intern(&i.image),
            labels,
            cpus,
            memory: hc.memory,
            port_bindings,
            exposed_ports,
            network_mode: intern(&hc.network_mode),
            pending: false,
        };
        Container {
            sched: Arc::new(sched),
            name,
            command,
            created,
            state: i.state.state(),
            exit_code: i.state.exit_code,
            started_at: time(&i.state.started_at),
            finished_at: time(&i.state.finished_at),
            health: i.state.health.map(|h| h.status).filter(|h| !h.is_empty()).map(|h| h.as_str().into()),
            ports: ports.into(),
            networks: RawJson::from_raw(i.network_settings.networks.as_deref()),
            mounts: RawJson::from_raw(i.mounts.as_deref()),
        }
    }

    /// The record of a container the manager just created: what an inspect of the fresh
    /// container would say, built from the request as parsed for placement and the body as sent
    /// (its labels and command), without reading the body again. `cpus` are the CPUs its
    /// `CpuShares` reserve on the node (0 for none).
    pub fn from_create(id: &str, req: &Request, body: &Value, cpus: i64) -> Container {
        let name: Arc<str> = req.name.as_deref().unwrap_or_default().trim_start_matches('/').into();
        // A label or command word that is null reads as empty; one of another type is left out.
        fn text(v: &Value) -> Option<&str> {
            match v {
                Value::String(s) => Some(s.as_str()),
                Value::Null => Some(""),
                _ => None,
            }
        }
        let labels: Labels = match body.get("Labels") {
            Some(Value::Object(m)) => m.iter().filter_map(|(k, v)| Some((k.as_str(), text(v)?))).collect(),
            _ => Labels::default(),
        };
        let command = match body.get("Cmd") {
            Some(Value::Array(cmd)) => command_of(cmd.iter().filter_map(text)),
            _ => command_of(std::iter::empty()),
        };
        let ports = req.exposed_ports.iter().map(|k| port_entry(k, None)).collect();
        let sched = ContainerView {
            id: id.into(),
            names: Box::new([name.clone()]),
            image: intern(&req.image),
            image_id: intern(""),
            labels,
            cpus,
            memory: req.memory,
            port_bindings: req.port_bindings.clone(),
            exposed_ports: req.exposed_ports.clone(),
            network_mode: intern(&req.network_mode),
            pending: false,
        };
        Container {
            sched: Arc::new(sched),
            name,
            command,
            created: chrono::Utc::now().timestamp(),
            state: ContainerState::Created,
            exit_code: 0,
            started_at: None,
            finished_at: None,
            health: None,
            ports,
            networks: RawJson::from_raw(None),
            mounts: RawJson::from_raw(None),
        }
    }

    pub fn id(&self) -> &str {
        &self.sched.id
    }

    /// Renames the record (`/name` or `name`), in the scheduler's view too.
    pub fn set_name(&mut self, name: &str) {
        self.name = name.trim_start_matches('/').into();
        let mut s = (*self.sched).clone();
        s.names = Box::new([self.name.clone()]);
        self.sched = Arc::new(s);
    }
    pub fn running(&self) -> bool {
        self.state.is_up()
    }
    pub fn swarm_id(&self) -> Option<&str> {
        self.sched.labels.get(crate::scheduler::request::LABEL_SWARM_ID)
    }

    /// Docker's status text (`Up 5 minutes`, `Exited (0) 2 seconds ago`, …) at `now`.
    pub fn status_text(&self, now: chrono::DateTime<chrono::Utc>) -> String {
        let mut buf = Vec::with_capacity(32);
        self.write_status(&mut buf, now);
        String::from_utf8(buf).expect("status text is UTF-8")
    }

    /// Appends the status text (as it is: only the health can hold what JSON escapes, see
    /// [`Container::plain_status`]).
    pub fn write_status(&self, buf: &mut Vec<u8>, now: chrono::DateTime<chrono::Utc>) {
        let ago = |buf: &mut Vec<u8>, t: Option<chrono::DateTime<chrono::Utc>>| {
            write_human_duration(buf, t.map_or(0, |t| (now - t).num_seconds()))
        };
        let code = |buf: &mut Vec<u8>, word: &[u8]| {
            buf.extend_from_slice(word);
            buf.extend_from_slice(b" (");
            super::packed::int(buf, self.exit_code);
            buf.extend_from_slice(b") ");
            ago(buf, self.finished_at);
            buf.extend_from_slice(b" ago");
        };
        match self.state {
            ContainerState::Running | ContainerState::Paused => {
                buf.extend_from_slice(b"Up ");
                ago(buf, self.started_at);
                if self.state == ContainerState::Paused {
                    buf.extend_from_slice(b" (Paused)");
                } else if let Some(h) = &self.health {
                    buf.extend_from_slice(b" (");
                    buf.extend_from_slice(h.as_bytes());
                    buf.push(b')');
                }
            }
            ContainerState::Restarting => code(buf, b"Restarting"),
            ContainerState::Removing => buf.extend_from_slice(b"Removal In Progress"),
            ContainerState::Dead => buf.extend_from_slice(b"Dead"),
            ContainerState::Created => buf.extend_from_slice(b"Created"),
            _ if self.started_at.is_none() => buf.extend_from_slice(b"Created"),
            _ if self.finished_at.is_none() => {}
            _ => code(buf, b"Exited"),
        }
    }

    /// Whether the status text needs no escaping in a JSON string.
    pub fn plain_status(&self) -> bool {
        self.health.as_deref().is_none_or(super::packed::plain)
    }

    /// A `GET /containers/json` row, as seen through the manager (the reference for the
    /// writer in `ps.rs`).
    pub fn ps_row<'a>(&'a self, node_name: &str, node_ip: &str, now: chrono::DateTime<chrono::Utc>) -> PsRow<'a> {
        PsRow {
            id: &self.sched.id,
            names: [format!("/{node_name}/{}", self.name)],
            image: &self.sched.image,
            image_id: &self.sched.image_id,
            command: &self.command,
            created: self.created,
            ports: self.ports.iter().map(|p| p.to_value(node_ip)).collect(),
            labels: &self.sched.labels,
            state: self.state,
            status: self.status_text(now),
            host_config: PsHostConfig {
                network_mode: if self.sched.network_mode.is_empty() { "default" } else { &self.sched.network_mode },
            },
            network_settings: PsNetworks {
                networks: if self.networks.is_null() { Value::Object(Map::new()) } else { self.networks.value() },
            },
            mounts: if self.mounts.is_null() { Value::Array(vec![]) } else { self.mounts.value() },
        }
    }
}

/// One `docker ps` row, serialized from the manager's record (the reference for the streamed
/// writer in `ps.rs`).
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct PsRow<'a> {
    pub id: &'a str,
    pub names: [String; 1],
    pub image: &'a str,
    #[serde(rename = "ImageID")]
    pub image_id: &'a str,
    pub command: &'a str,
    pub created: i64,
    pub ports: Vec<Value>,
    pub labels: &'a Labels,
    pub state: ContainerState,
    pub status: String,
    pub host_config: PsHostConfig<'a>,
    pub network_settings: PsNetworks,
    pub mounts: Value,
}

#[derive(Debug, serde::Serialize)]
pub struct PsHostConfig<'a> {
    #[serde(rename = "NetworkMode")]
    pub network_mode: &'a str,
}

#[derive(Debug, serde::Serialize)]
pub struct PsNetworks {
    #[serde(rename = "Networks")]
    pub networks: Value,
}

/// go-units' HumanDuration.
pub fn human_duration(secs: i64) -> String {
    let mut buf = vec![];
    write_human_duration(&mut buf, secs);
    String::from_utf8(buf).expect("durations are ASCII")
}

/// Appends go-units' HumanDuration of `secs`.
pub fn write_human_duration(buf: &mut Vec<u8>, secs: i64) {
    let secs = secs.max(0);
    let minutes = secs / 60;
    let hours = (secs as f64 / 3600.0 + 0.5) as i64;
    let (n, unit): (i64, &[u8]) = match () {
        _ if secs < 1 => return buf.extend_from_slice(b"Less than a second"),
        _ if secs == 1 => return buf.extend_from_slice(b"1 second"),
        _ if secs < 60 => (secs, b" seconds"),
        _ if minutes == 1 => return buf.extend_from_slice(b"About a minute"),
        _ if minutes < 60 => (minutes, b" minutes"),
        _ if hours == 1 => return buf.extend_from_slice(b"About an hour"),
        _ if hours < 48 => (hours, b" hours"),
        _ if hours < 24 * 7 * 2 => (hours / 24, b" days"),
        _ if hours < 24 * 30 * 2 => (hours / 24 / 7, b" weeks"),
        _ if hours < 24 * 365 * 2 => (hours / 24 / 30, b" months"),
        _ => (secs / 3600 / 24 / 365, b" years"),
    };
    super::packed::int(buf, n);
    buf.extend_from_slice(unit);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// What the record of a created container was before it was built straight: an inspect
    /// document made of the body as sent, read back.
    fn from_create_by_inspect(id: &str, name: &str, body: &Value, ncpu: i64) -> Container {
        let mut config = body.clone();
        let host_config = config.as_object_mut().and_then(|o| {
            o.remove("NetworkingConfig");
            o.remove("HostConfig")
        });
        let cmd: Vec<Value> = config["Cmd"].as_array().cloned().unwrap_or_default();
        let v = json!({
            "Id": id, "Name": format!("/{name}"), "Created": chrono::Utc::now().to_rfc3339(),
            "Path": cmd.first().cloned().unwrap_or(json!("")), "Args": cmd.get(1..).map(|a| a.to_vec()).unwrap_or_default(),
            "Image": "", "State": {"Status": "created"}, "Config": config, "HostConfig": host_config.unwrap_or(Value::Null),
        });
        Container::from_inspect(&v, ncpu)
    }

    #[test]
    fn a_created_record_is_what_an_inspect_of_the_body_gave() {
        let bodies = [
            json!({"Image": "busybox", "Cmd": ["true"], "HostConfig": {"Memory": 1048576}}),
            json!({"Image": "nginx:1", "Cmd": ["nginx", "", "-g", "daemon off;"], "Env": ["constraint:zone==eu", "A=1"],
                   "Labels": {"x": "y", "empty": null, "com.docker.swarm.id": "abc"}, "ExposedPorts": {"443/tcp": {}, "80/tcp": {}},
                   "HostConfig": {"Memory": 33554432, "CpuShares": 2, "NetworkMode": "front",
                                  "PortBindings": {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}], "53/udp": [{"HostPort": ""}]}},
                   "NetworkingConfig": {"EndpointsConfig": {"front": {}}}}),
            json!({"Image": "x", "Cmd": null, "HostConfig": null, "Labels": {}}),
            json!({}),
        ];
        for (ncpu, body) in [4, 3, 1, 8].into_iter().zip(bodies) {
            let mut sent = body.clone();
            let req = Request::from_config(Some("/web"), &mut sent).unwrap();
            // As the create path sends it: CPUs as real shares.
            let shares = if req.cpus > 0 { (req.cpus * 1024 + ncpu - 1) / ncpu } else { 0 };
            if shares > 0 {
                crate::cluster::model::set_field(&mut sent, "HostConfig", "CpuShares", json!(shares));
            }
            let mut built = Container::from_create("0123", &req, &sent, shares * ncpu / 1024);
            let mut read = from_create_by_inspect("0123", "web", &sent, ncpu);
            assert!((built.created - read.created).abs() <= 1);
            (built.created, read.created) = (0, 0);
            assert_eq!(format!("{built:?}"), format!("{read:?}"), "{body}");
        }
    }

    fn sample() -> Value {
        json!({
            "Id": "abc123", "Name": "/web", "Created": "2024-01-01T00:00:00Z", "Path": "httpd", "Args": ["-f"],
            "Image": "sha256:img",
            "State": {"Status": "running", "Running": true, "ExitCode": 0, "StartedAt": "2024-01-01T00:00:00Z", "FinishedAt": "0001-01-01T00:00:00Z"},
            "Config": {"Image": "busybox", "Labels": {"com.docker.swarm.id": "sw1"}, "ExposedPorts": {"80/tcp": {}}},
            "HostConfig": {"Memory": 1048576, "CpuShares": 512, "NetworkMode": "bridge",
                           "PortBindings": {"80/tcp": [{"HostIp": "", "HostPort": "8080"}]}},
            "NetworkSettings": {"Ports": {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}]}, "Networks": {"bridge": {}}}
        })
    }

    #[test]
    fn parses_inspect() {
        let c = Container::from_inspect(&sample(), 4);
        assert_eq!(c.sched.cpus, 2);
        assert_eq!(c.sched.memory, 1048576);
        assert_eq!(c.sched.port_bindings[0].host_port, "8080");
        assert_eq!(&*c.command, "httpd -f");
        assert_eq!(c.swarm_id(), Some("sw1"));
        assert!(c.finished_at.is_none());
    }

    #[test]
    fn ps_rows_carry_the_node() {
        let c = Container::from_inspect(&sample(), 4);
        let now = chrono::DateTime::parse_from_rfc3339("2024-01-01T00:05:00Z").unwrap().with_timezone(&chrono::Utc);
        let row = serde_json::to_value(c.ps_row("node-1", "10.0.0.5", now)).unwrap();
        assert_eq!(row["Names"], json!(["/node-1/web"]));
        assert_eq!(row["Status"], "Up 5 minutes");
        assert_eq!(row["Ports"][0]["IP"], "10.0.0.5");
        assert_eq!(row["Ports"][0]["PublicPort"], 8080);
    }

    /// An inspect as Docker 20.10 (and the simulator) sends it, with every field the record keeps.
    fn full(i: usize) -> Value {
        json!({
            "Id": format!("{i:064x}"), "Created": "2024-01-01T00:00:00.123456789Z", "Path": "sh", "Args": ["-c", "sleep \"1\""],
            "State": {"Status": "running", "Running": true, "Paused": false, "Pid": 10_000 + i, "ExitCode": 2, "Error": "",
                      "StartedAt": "2024-01-01T00:00:01Z", "FinishedAt": "2024-01-01T00:00:00.5Z", "Health": {"Status": "healthy"}},
            "Image": "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "Name": format!("/pre_{i}"),
            "RestartCount": 0, "Driver": "overlay2", "Mounts": [{"Type": "volume", "Name": "data", "Source": "/var/lib/docker/volumes/data/_data",
                      "Destination": "/data", "Driver": "local", "Mode": "z", "RW": true, "Propagation": ""}],
            "Config": {"Hostname": "0123456789ab", "Image": "busybox:latest", "Env": ["PATH=/bin"], "Cmd": ["sh"],
                       "Labels": {"com.docker.swarm.id": format!("{i:064x}"), "tier": "web"}, "ExposedPorts": {"80/tcp": {}, "53/udp": {}}},
            "HostConfig": {"CpuShares": 2048, "Memory": 1_048_576, "NetworkMode": "bridge",
                           "PortBindings": {"80/tcp": [{"HostIp": "", "HostPort": "8080"}, {"HostIp": "10.1.1.1", "HostPort": "8081"}]}},
            "NetworkSettings": {"Ports": {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}, {"HostIp": "10.1.1.1", "HostPort": "8081"}],
                                          "53/udp": null},
                "Networks": {"bridge": {"IPAMConfig": null, "Links": null, "Aliases": null, "NetworkID": "n".repeat(64),
                    "EndpointID": "e".repeat(64), "Gateway": "172.17.0.1", "IPAddress": "172.17.0.2", "IPPrefixLen": 16,
                    "IPv6Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0, "MacAddress": "02:42:ac:11:00:02", "DriverOpts": null}}}
        })
    }

    #[test]
    fn the_packed_record_keeps_what_the_node_sent() {
        let v = full(7);
        let c = Container::from_inspect(&v, 4);
        let s = &c.sched;
        assert_eq!((&*s.id, c.id(), &*c.name), (v["Id"].as_str().unwrap(), &*s.id, "pre_7"));
        assert!(s.names.len() == 1 && Arc::ptr_eq(&s.names[0], &c.name));
        assert_eq!((&*s.image, &*s.image_id), ("busybox:latest", v["Image"].as_str().unwrap()));
        assert_eq!(serde_json::to_value(&s.labels).unwrap(), v["Config"]["Labels"]);
        assert_eq!(c.swarm_id(), v["Id"].as_str());
        assert_eq!((s.cpus, s.memory, &*s.network_mode), (8, 1_048_576, "bridge"));
        let bindings: Vec<_> =
            s.port_bindings.iter().map(|b| (b.container_port.as_str(), b.host_ip.as_str(), b.host_port.as_str())).collect();
        assert_eq!(bindings, [("80/tcp", "", "8080"), ("80/tcp", "10.1.1.1", "8081")]);
        assert_eq!(s.exposed_ports, ["53/udp", "80/tcp"]);
        assert_eq!(&*c.command, "sh -c sleep \"1\"");
        assert_eq!(c.created, 1_704_067_200);
        assert_eq!((c.state, c.exit_code, c.health.as_deref()), (ContainerState::Running, 2, Some("healthy")));
        assert_eq!(c.started_at.unwrap().to_rfc3339(), "2024-01-01T00:00:01+00:00");
        assert_eq!(c.finished_at.unwrap().timestamp_millis(), 1_704_067_200_500);
        let ports: Vec<Value> = c.ports.iter().map(|p| p.to_value("192.168.0.9")).collect();
        assert_eq!(
            ports,
            [
                json!({"PrivatePort": 53, "Type": "udp"}),
                json!({"IP": "192.168.0.9", "PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"}),
                json!({"IP": "10.1.1.1", "PrivatePort": 80, "PublicPort": 8081, "Type": "tcp"}),
            ]
        );
        assert_eq!(c.networks.value(), v["NetworkSettings"]["Networks"]);
        assert_eq!(c.mounts.value(), v["Mounts"]);
        // What `ps` filters read of them.
        let eps = crate::cluster::model::EndpointSettings::read_all(&c.networks.value());
        assert_eq!(eps["bridge"].network_id, "n".repeat(64));
        let mounts = crate::cluster::model::MountPoint::read_all(&c.mounts.value());
        assert_eq!(mounts[0].name.as_deref(), Some("data"));
        // Repeated strings are shared between records.
        let d = Container::from_inspect(&full(8), 4);
        assert!(Arc::ptr_eq(&c.sched.image, &d.sched.image) && Arc::ptr_eq(&c.sched.image_id, &d.sched.image_id));
        // A record with nothing but an ID.
        let e = Container::from_inspect(&json!({"Id": "x"}), 1);
        assert!(e.networks.is_null() && e.mounts.is_null() && e.ports.is_empty() && e.health.is_none());
    }

    #[test]
    fn status_texts() {
        let mut v = sample();
        v["State"] = json!({"Status": "exited", "ExitCode": 3, "StartedAt": "2024-01-01T00:00:00Z", "FinishedAt": "2024-01-01T00:00:10Z"});
        let c = Container::from_inspect(&v, 1);
        let now = chrono::DateTime::parse_from_rfc3339("2024-01-01T00:00:12Z").unwrap().with_timezone(&chrono::Utc);
        assert_eq!(c.status_text(now), "Exited (3) 2 seconds ago");
        v["State"] = json!({"Status": "created"});
        assert_eq!(Container::from_inspect(&v, 1).status_text(now), "Created");
        assert_eq!(human_duration(3600 * 3), "3 hours");
        assert_eq!(human_duration(61), "About a minute");
        let all = [0, 1, 5, 59, 60, 119, 120, 3599, 3600, 5400, 7200, 86_400 * 3, 86_400 * 20, 86_400 * 100, 86_400 * 800];
        let got: Vec<String> = all.iter().map(|s| human_duration(*s)).collect();
        assert_eq!(
            got,
            [
                "Less than a second",
                "1 second",
                "5 seconds",
                "59 seconds",
                "About a minute",
                "About a minute",
                "2 minutes",
                "59 minutes",
                "About an hour",
                "2 hours",
                "2 hours",
                "3 days",
                "2 weeks",
                "3 months",
                "2 years"
            ]
        );
        v["State"] =
            json!({"Status": "restarting", "ExitCode": 1, "StartedAt": "2024-01-01T00:00:00Z", "FinishedAt": "2024-01-01T00:00:10Z"});
        assert_eq!(Container::from_inspect(&v, 1).status_text(now), "Restarting (1) 2 seconds ago");
        v["State"] = json!({"Status": "running", "StartedAt": "2024-01-01T00:00:00Z", "Health": {"Status": "un\"healthy"}});
        assert_eq!(Container::from_inspect(&v, 1).status_text(now), "Up 12 seconds (un\"healthy)");
    }
}

#[cfg(test)]
mod speed {
    use super::*;
    use serde_json::json;

    fn rss() -> usize {
        let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
        statm.split_whitespace().nth(1).unwrap().parse::<usize>().unwrap() * 4096
    }

    /// An inspect shaped as the simulator's for its prefilled containers (busybox, `true`,
    /// every other one running, on the bridge network).
    fn sim_inspect(i: usize) -> Value {
        let up = i.is_multiple_of(2);
        let s = |v: String| if up { v } else { String::new() };
        json!({
            "Id": format!("{:064x}", i * 7919 + 1), "Created": "2026-12-04T10:00:00.123456789Z", "Path": "true", "Args": [],
            "State": {"Status": if up { "running" } else { "exited" }, "Running": up, "ExitCode": 0,
                      "StartedAt": "2026-12-04T10:00:00.123456789Z",
                      "FinishedAt": if up { "0001-01-01T00:00:00Z" } else { "2026-12-04T10:00:01.123456789Z" }},
            "Image": "sha256:3f57d9401f8d42f986df300f0c69192fc41da28ccc8d797829467780db3dd741", "Name": format!("/pre_sim-{}_{i}", i % 1000),
            "Mounts": [], "Config": {"Image": "busybox", "Cmd": ["true"], "Labels": {}},
            "HostConfig": {"Memory": 1_048_576, "NetworkMode": "default", "PortBindings": {}},
            "NetworkSettings": {"Ports": {}, "Networks": {"bridge": {"IPAMConfig": null, "Links": null, "Aliases": null,
                "NetworkID": format!("{:064x}", i % 1000), "EndpointID": s(format!("{:064x}", i * 31 + 7)), "Gateway": s("172.17.0.1".into()),
                "IPAddress": s(format!("172.17.{}.{}", (i / 250) % 250, i % 250 + 2)), "IPPrefixLen": if up { 16 } else { 0 },
                "IPv6Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0,
                "MacAddress": s(format!("02:42:ac:11:{:02x}:{:02x}", (i / 250) % 250, i % 250 + 2)), "DriverOpts": null}}}
        })
    }

    use crate::cluster::status::speed::thread_cpu;

    /// Bytes per record held by nodes, learnt from inspects shaped as the simulator's
    /// (`PREFILL` containers: busybox, `true`, every other one running), or with `CREATED=1`
    /// made by creates through the manager (the create body and its swarm ID label):
    /// `ROWS=200000 cargo test --release -p manager --lib record_size -- --ignored --nocapture`
    #[tokio::test]
    #[ignore]
    async fn record_size() {
        let n: usize = std::env::var("ROWS").ok().and_then(|v| v.parse().ok()).unwrap_or(200_000);
        let c = super::super::Cluster::new(Default::default(), None, tokio_util::sync::CancellationToken::new()).unwrap();
        let engines: Vec<_> = (0..1000)
            .map(|i| {
                let addr = format!("10.0.{}.{}:2375", i / 250, i % 250);
                super::super::Engine::new(&addr, c.transport.client(&addr), c.dirty.clone())
            })
            .collect();
        let created = std::env::var("CREATED").is_ok_and(|v| v == "1");
        let before = rss();
        for i in 0..n {
            let c = if created {
                let mut body = json!({"Image":"busybox","Cmd":["true"],"HostConfig":{"Memory":1048576},
                    "Labels": {"com.docker.swarm.id": format!("{:064x}", i)}});
                let req = Request::from_config(Some(&format!("name_{i}")), &mut body).unwrap();
                Container::from_create(&format!("{:064x}", i * 7919 + 1), &req, &body, 0)
            } else {
                Container::from_inspect(&sim_inspect(i), 4)
            };
            engines[i % engines.len()].upsert(c);
        }
        let after = rss();
        eprintln!("{n} records: {} MiB, {} bytes each", (after - before) >> 20, (after - before) / n);
    }
    /// `docker ps` rows, wall and CPU time; `INSPECTED=1`: records learnt from inspects
    /// (networks held), else made by creates through the manager:
    /// `ROWS=1000000 cargo test --release -p manager --lib ps_speed -- --ignored --nocapture`
    #[tokio::test]
    #[ignore]
    async fn ps_speed() {
        use futures_util::StreamExt;
        let n: usize = std::env::var("ROWS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
        let infos: Vec<_> = (0..10_000)
            .map(|i| Arc::new(super::super::NodeInfo { name: format!("node-{i}"), ip: "127.0.0.1".into(), ..Default::default() }))
            .collect();
        let t = std::time::Instant::now();
        let inspected = std::env::var("INSPECTED").is_ok_and(|v| v == "1");
        let mut records: Vec<_> = (0..n)
            .map(|i| {
                let c = if inspected {
                    Container::from_inspect(&sim_inspect(i), 4)
                } else {
                    let mut body = json!({"Image":"busybox","Cmd":["true"],"HostConfig":{"Memory":1048576},
                        "Labels": {"com.docker.swarm.id": format!("{:064x}", i)}});
                    let req = Request::from_config(Some(&format!("name_{i}")), &mut body).unwrap();
                    Container::from_create(&format!("{:064x}", i * 7919), &req, &body, 0)
                };
                super::super::ps::PsRecord::new(Arc::new(c), infos[i % infos.len()].clone(), true)
            })
            .collect();
        eprintln!("build {:?}", t.elapsed());
        let (t, cpu) = (std::time::Instant::now(), thread_cpu());
        records.sort_by_key(|r| std::cmp::Reverse(r.created));
        eprintln!("sort {:?} wall, {:?} CPU", t.elapsed(), thread_cpu() - cpu);
        let (t, cpu) = (std::time::Instant::now(), thread_cpu());
        let now = chrono::Utc::now();
        let mut buf = Vec::with_capacity(1 << 20);
        let mut bytes = 0;
        for r in &records {
            serde_json::to_writer(&mut buf, &r.c.ps_row(&r.node.name, &r.node.ip, now)).unwrap();
            if buf.len() > 1 << 19 {
                bytes += buf.len();
                buf.clear();
            }
        }
        eprintln!("serde rows (the reference) {:?} wall, {:?} CPU, {} MiB", t.elapsed(), thread_cpu() - cpu, bytes >> 20);
        let loops: usize = std::env::var("LOOPS").ok().and_then(|v| v.parse().ok()).unwrap_or(1);
        let records = Arc::new(records);
        for _ in 0..loops {
            let (t, cpu) = (std::time::Instant::now(), thread_cpu());
            let records = Arc::try_unwrap(records.clone())
                .unwrap_or_else(|r| r.iter().map(|r| super::super::ps::PsRecord::new(r.c.clone(), r.node.clone(), r.healthy)).collect());
            let mut s = std::pin::pin!(super::super::ps::ps_stream(records, chrono::Utc::now()));
            let mut bytes = 0;
            while let Some(c) = s.next().await {
                bytes += c.unwrap().len();
            }
            eprintln!("stream {:?} wall, {:?} CPU, {} MiB", t.elapsed(), thread_cpu() - cpu, bytes >> 20);
        }
    }
}
