//! The manager's record of a node's containers, built from `docker inspect` output, and what
//! it turns into: the scheduler's [`ContainerView`] and `docker ps` rows (`/node/name`, node IP
//! in ports, status text computed at list time so it never goes stale).
use super::model::{ContainerState, Inspect};
use crate::scheduler::{ContainerView, Labels, PortBinding};
use serde_json::{json, Map, Value};
use std::sync::Arc;

/// One container as the manager keeps it.
#[derive(Debug, Clone)]
pub struct Container {
    pub sched: Arc<ContainerView>,
    /// Name without the leading `/`.
    pub name: String,
    pub command: String,
    pub created: i64,
    pub state: ContainerState,
    pub exit_code: i64,
    pub started_at: Option<chrono::DateTime<chrono::Utc>>,
    pub finished_at: Option<chrono::DateTime<chrono::Utc>>,
    pub health: Option<String>,
    /// `docker ps` style `Ports` entries.
    pub ports: Vec<Value>,
    pub networks: Value,
    pub mounts: Value,
}

fn time(v: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(v).ok().map(|t| t.with_timezone(&chrono::Utc)).filter(|t| t.timestamp() > 0)
}

fn port_parts(key: &str) -> (i64, &str) {
    let (p, proto) = key.split_once('/').unwrap_or((key, "tcp"));
    (p.parse().unwrap_or(0), proto)
}

impl Container {
    /// Parses `GET /containers/{id}/json`. `ncpu` converts CpuShares back to CPUs.
    pub fn from_inspect(v: &Value, ncpu: i64) -> Container {
        Container::from_model(Inspect::read(v), ncpu)
    }

    fn from_model(i: Inspect, ncpu: i64) -> Container {
        let hc = i.host_config;
        let cfg = i.config;
        let labels: Labels = cfg.labels.iter().map(|(k, x)| (k.as_str(), x.as_str())).collect();
        let mut port_bindings = vec![];
        for (cport, list) in &hc.port_bindings {
            for b in list.iter().flatten() {
                port_bindings.push(PortBinding {
                    host_ip: b.host_ip.clone(),
                    host_port: b.host_port.clone(),
                    container_port: cport.clone(),
                });
            }
        }
        let exposed_ports: Vec<String> = cfg.exposed_ports.keys().cloned().collect();
        let name = i.name.trim_start_matches('/').to_string();
        let cpus = if hc.cpu_shares > 0 && ncpu > 0 { hc.cpu_shares * ncpu / 1024 } else { 0 };
        let mut ports = vec![];
        if i.network_settings.ports.is_empty() {
            for k in &exposed_ports {
                let (priv_port, proto) = port_parts(k);
                ports.push(json!({"PrivatePort": priv_port, "Type": proto}));
            }
        }
        for (key, list) in &i.network_settings.ports {
            let (priv_port, proto) = port_parts(key);
            match list {
                Some(bs) if !bs.is_empty() => {
                    for b in bs {
                        ports.push(json!({"IP": b.host_ip, "PrivatePort": priv_port,
                            "PublicPort": b.host_port.parse::<i64>().unwrap_or(0), "Type": proto}));
                    }
                }
                _ => ports.push(json!({"PrivatePort": priv_port, "Type": proto})),
            }
        }
        let command = std::iter::once(i.path.as_str())
            .chain(i.args.iter().map(String::as_str))
            .filter(|x| !x.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        let created = chrono::DateTime::parse_from_rfc3339(&i.created).map(|t| t.timestamp()).unwrap_or(0);
        let sched = ContainerView {
            id: i.id,
            names: vec![name.clone()],
            image: cfg.image,
            image_id: i.image,
            labels,
            cpus,
            memory: hc.memory,
            port_bindings,
            exposed_ports,
            network_mode: hc.network_mode,
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
            health: i.state.health.map(|h| h.status).filter(|h| !h.is_empty()),
            ports,
            networks: i.network_settings.networks,
            mounts: i.mounts,
        }
    }

    /// The record of a container the manager just created, from the create body (what an
    /// inspect would say of a fresh container). `name` may be empty until the node's create
    /// event names it.
    pub fn from_create(id: &str, name: &str, body: &Value, ncpu: i64) -> Container {
        let mut config = body.clone();
        let host_config = config.as_object_mut().and_then(|o| {
            o.remove("NetworkingConfig");
            o.remove("HostConfig")
        });
        let cmd: Vec<Value> = config["Cmd"].as_array().cloned().unwrap_or_default();
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
        let v = json!({
            "Id": id, "Name": format!("/{name}"), "Created": now,
            "Path": cmd.first().cloned().unwrap_or(json!("")), "Args": cmd.get(1..).map(|a| a.to_vec()).unwrap_or_default(),
            "Image": "", "State": {"Status": "created"}, "Config": config, "HostConfig": host_config.unwrap_or(Value::Null),
        });
        Container::from_inspect(&v, ncpu)
    }

    pub fn id(&self) -> &str {
        &self.sched.id
    }
    pub fn running(&self) -> bool {
        self.state.is_up()
    }
    pub fn swarm_id(&self) -> Option<&str> {
        self.sched.labels.get(crate::scheduler::request::LABEL_SWARM_ID)
    }

    /// Docker's status text (`Up 5 minutes`, `Exited (0) 2 seconds ago`, …) at `now`.
    pub fn status_text(&self, now: chrono::DateTime<chrono::Utc>) -> String {
        let ago = |t: Option<chrono::DateTime<chrono::Utc>>| human_duration(t.map_or(0, |t| (now - t).num_seconds()));
        match self.state {
            ContainerState::Running | ContainerState::Paused => {
                let mut s = format!("Up {}", ago(self.started_at));
                if self.state == ContainerState::Paused {
                    s.push_str(" (Paused)");
                } else if let Some(h) = &self.health {
                    s.push_str(&format!(" ({h})"));
                }
                s
            }
            ContainerState::Restarting => format!("Restarting ({}) {} ago", self.exit_code, ago(self.finished_at)),
            ContainerState::Removing => "Removal In Progress".into(),
            ContainerState::Dead => "Dead".into(),
            ContainerState::Created => "Created".into(),
            _ if self.started_at.is_none() => "Created".into(),
            _ if self.finished_at.is_none() => String::new(),
            _ => format!("Exited ({}) {} ago", self.exit_code, ago(self.finished_at)),
        }
    }

    /// A `GET /containers/json` row, as seen through the manager.
    pub fn ps_row<'a>(&'a self, node_name: &str, node_ip: &str, now: chrono::DateTime<chrono::Utc>) -> PsRow<'a> {
        let ports = self
            .ports
            .iter()
            .map(|p| {
                if matches!(p["IP"].as_str(), Some("0.0.0.0") | Some("::")) {
                    let mut p = p.clone();
                    p["IP"] = json!(node_ip);
                    std::borrow::Cow::Owned(p)
                } else {
                    std::borrow::Cow::Borrowed(p)
                }
            })
            .collect();
        PsRow {
            id: &self.sched.id,
            names: [format!("/{node_name}/{}", self.name)],
            image: &self.sched.image,
            image_id: &self.sched.image_id,
            command: &self.command,
            created: self.created,
            ports,
            labels: &self.sched.labels,
            state: self.state,
            status: self.status_text(now),
            host_config: PsHostConfig {
                network_mode: if self.sched.network_mode.is_empty() { "default" } else { &self.sched.network_mode },
            },
            network_settings: PsNetworks { networks: if self.networks.is_null() { &EMPTY_OBJECT } else { &self.networks } },
            mounts: if self.mounts.is_null() { &EMPTY_ARRAY } else { &self.mounts },
        }
    }
}

static EMPTY_OBJECT: std::sync::LazyLock<Value> = std::sync::LazyLock::new(|| Value::Object(Map::new()));
static EMPTY_ARRAY: Value = Value::Array(Vec::new());

/// One `docker ps` row, serialized straight from the manager's record (the reference for the
/// streamed writer in `ps.rs`).
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
    pub ports: Vec<std::borrow::Cow<'a, Value>>,
    pub labels: &'a Labels,
    pub state: ContainerState,
    pub status: String,
    pub host_config: PsHostConfig<'a>,
    pub network_settings: PsNetworks<'a>,
    pub mounts: &'a Value,
}

#[derive(Debug, serde::Serialize)]
pub struct PsHostConfig<'a> {
    #[serde(rename = "NetworkMode")]
    pub network_mode: &'a str,
}

#[derive(Debug, serde::Serialize)]
pub struct PsNetworks<'a> {
    #[serde(rename = "Networks")]
    pub networks: &'a Value,
}

/// go-units' HumanDuration.
pub fn human_duration(secs: i64) -> String {
    let secs = secs.max(0);
    let minutes = secs / 60;
    let hours = (secs as f64 / 3600.0 + 0.5) as i64;
    match () {
        _ if secs < 1 => "Less than a second".into(),
        _ if secs == 1 => "1 second".into(),
        _ if secs < 60 => format!("{secs} seconds"),
        _ if minutes == 1 => "About a minute".into(),
        _ if minutes < 60 => format!("{minutes} minutes"),
        _ if hours == 1 => "About an hour".into(),
        _ if hours < 48 => format!("{hours} hours"),
        _ if hours < 24 * 7 * 2 => format!("{} days", hours / 24),
        _ if hours < 24 * 30 * 2 => format!("{} weeks", hours / 24 / 7),
        _ if hours < 24 * 365 * 2 => format!("{} months", hours / 24 / 30),
        _ => format!("{} years", secs / 3600 / 24 / 365),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(c.command, "httpd -f");
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
    }
}

#[cfg(test)]
mod speed {
    use super::*;
    /// `cargo test --release -p manager --lib ps_speed -- --ignored --nocapture`
    #[tokio::test]
    #[ignore]
    async fn ps_speed() {
        use futures_util::StreamExt;
        let n: usize = std::env::var("ROWS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
        let infos: Vec<_> = (0..10_000)
            .map(|i| Arc::new(super::super::NodeInfo { name: format!("node-{i}"), ip: "127.0.0.1".into(), ..Default::default() }))
            .collect();
        let t = std::time::Instant::now();
        let mut records: Vec<_> = (0..n)
            .map(|i| {
                let body = json!({"Image":"busybox","Cmd":["true"],"HostConfig":{"Memory":1048576},
                    "Labels": {"com.docker.swarm.id": format!("{:064x}", i)}});
                let c = Container::from_create(&format!("{:064x}", i * 7919), &format!("name_{i}"), &body, 1);
                super::super::ps::PsRecord::new(Arc::new(c), infos[i % infos.len()].clone(), true)
            })
            .collect();
        eprintln!("build {:?}", t.elapsed());
        let t = std::time::Instant::now();
        records.sort_by_key(|r| std::cmp::Reverse(r.created));
        eprintln!("sort {:?}", t.elapsed());
        let t = std::time::Instant::now();
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
        eprintln!("serde rows {:?} {} MiB", t.elapsed(), bytes >> 20);
        let t = std::time::Instant::now();
        let mut s = std::pin::pin!(super::super::ps::ps_stream(records, chrono::Utc::now()));
        let mut bytes = 0;
        while let Some(c) = s.next().await {
            bytes += c.unwrap().len();
        }
        eprintln!("stream {:?} {} MiB", t.elapsed(), bytes >> 20);
    }
}
