//! The manager's record of a node's containers, built from `docker inspect` output (or from the
//! create request the manager sent), and the scheduler's [`ContainerView`] it carries. What it
//! turns into for `docker ps` (`/node/name`, node IP in ports, status text computed at list time
//! so it never goes stale) is in `row`. A record is packed: typed fields for what `ps`, its
//! filters and the scheduler read, repeated strings (image, image ID, network mode, port types)
//! shared, and the documents only passed on (networks, mounts) held as compact JSON text
//! (`packed.rs`).
use super::model::{ContainerState, Inspect};
use super::packed::{PsPort, RawJson};
use crate::scheduler::labels::intern;
use crate::scheduler::{ContainerView, Labels, PortBinding, Request};
use serde_json::Value;
use std::sync::Arc;

mod row;
#[cfg(test)]
mod speed;

pub use row::{human_duration, write_human_duration, PsHostConfig, PsNetworks, PsRow};

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

    pub(super) fn sample() -> Value {
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
}
