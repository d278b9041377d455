//! What `docker inspect` and `docker ps` see of a container.
use super::record::{NetMode, Record, Status, ZERO_TIME};
use super::{ContainerError, ContainerService};
use crate::runtime::Runtime;
use serde_json::{json, Value};
use std::collections::HashMap;

#[derive(Debug, Default)]
pub struct ListOptions {
    pub all: bool,
    pub limit: Option<usize>,
    pub filters: HashMap<String, Vec<String>>,
}

fn parse_time(s: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(s).ok().map(|t| t.with_timezone(&chrono::Utc))
}

/// Go's `units.HumanDuration`, as `docker ps` shows it.
pub fn human_duration(secs: i64) -> String {
    let s = secs.max(0);
    let m = s / 60;
    let h = m / 60;
    match () {
        _ if s < 1 => "Less than a second".into(),
        _ if s == 1 => "1 second".into(),
        _ if s < 60 => format!("{s} seconds"),
        _ if m == 1 => "About a minute".into(),
        _ if m < 60 => format!("{m} minutes"),
        _ if h == 1 => "About an hour".into(),
        _ if h < 48 => format!("{h} hours"),
        _ if h < 24 * 7 * 2 => format!("{} days", h / 24),
        _ if h < 24 * 30 * 2 => format!("{} weeks", h / 24 / 7),
        _ if h < 24 * 365 * 2 => format!("{} months", h / 24 / 30),
        _ => format!("{} years", h / 24 / 365),
    }
}

fn since(ts: &str) -> i64 {
    parse_time(ts).map(|t| (chrono::Utc::now() - t).num_seconds()).unwrap_or(0)
}

/// Docker's status word: the record's, or `paused`/`restarting`.
pub fn docker_status(rec: &Record) -> &'static str {
    match rec.state.status {
        Status::Running if rec.state.paused => "paused",
        Status::Exited if rec.state.restarting => "restarting",
        s => s.as_str(),
    }
}

/// The STATUS column of `docker ps`.
pub fn status_text(rec: &Record) -> String {
    match rec.state.status {
        Status::Running if rec.state.paused => format!("Up {} (Paused)", human_duration(since(&rec.state.started_at))),
        Status::Exited if rec.state.restarting => {
            format!("Restarting ({}) {} ago", rec.state.exit_code, human_duration(since(&rec.state.finished_at)))
        }
        Status::Running => format!("Up {}{}", human_duration(since(&rec.state.started_at)), super::health::status_suffix(rec)),
        Status::Created => "Created".into(),
        Status::Removing => "Removal In Progress".into(),
        Status::Dead => "Dead".into(),
        Status::Exited => {
            if rec.state.finished_at == ZERO_TIME {
                format!("Exited ({})", rec.state.exit_code)
            } else {
                format!("Exited ({}) {} ago", rec.state.exit_code, human_duration(since(&rec.state.finished_at)))
            }
        }
    }
}

fn command_text(rec: &Record) -> String {
    std::iter::once(rec.path.as_str()).chain(rec.args.iter().map(|s| s.as_str())).collect::<Vec<_>>().join(" ")
}

fn endpoint_json(ep: Option<&crate::network::Endpoint>, network_id: &str, aliases: Value) -> Value {
    json!({
        "IPAMConfig": null, "Links": null, "Aliases": aliases,
        "NetworkID": network_id,
        "EndpointID": ep.map(|e| e.endpoint_id.clone()).unwrap_or_default(),
        "Gateway": ep.map(|e| e.gateway.to_string()).unwrap_or_default(),
        "IPAddress": ep.map(|e| e.ip.to_string()).unwrap_or_default(),
        "IPPrefixLen": ep.map(|e| e.prefix_len).unwrap_or(0),
        "IPv6Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0,
        "MacAddress": ep.map(|e| e.mac.clone()).unwrap_or_default(),
        "DriverOpts": null,
    })
}

/// `NetworkSettings.Networks`: one entry per network, live data while running.
fn networks(rec: &Record) -> Value {
    let mut nets = serde_json::Map::new();
    match &rec.net_mode {
        NetMode::Bridge => {
            for n in &rec.networks {
                let ep = rec.endpoints.iter().find(|e| e.network_id == n.id);
                let mut v = endpoint_json(ep, &n.id, Value::Null);
                if n.name != crate::network::DEFAULT_NETWORK {
                    let mut aliases = n.attach.aliases.clone();
                    aliases.push(rec.id[..12].to_string());
                    v["Aliases"] = json!(aliases);
                }
                if let Some(ip) = n.attach.ipv4 {
                    v["IPAMConfig"] = json!({"IPv4Address": ip.to_string()});
                }
                if n.name == crate::network::DEFAULT_NETWORK {
                    let links = links_json(rec);
                    if !links.is_empty() {
                        v["Links"] = json!(links);
                    }
                }
                nets.insert(n.name.clone(), v);
            }
        }
        NetMode::Host | NetMode::None => {
            nets.insert(rec.net_mode.name().to_string(), endpoint_json(None, "", Value::Null));
        }
        NetMode::Container(_) => {}
    }
    Value::Object(nets)
}

/// One row of `GET /containers/json`.
pub fn summary(rec: &Record) -> Value {
    json!({
        "Id": rec.id,
        "Names": [format!("/{}", rec.name)],
        "Image": rec.image,
        "ImageID": rec.image_id,
        "Command": command_text(rec),
        "Created": parse_time(&rec.created).map(|t| t.timestamp()).unwrap_or(0),
        "Ports": super::ports::summary(rec),
        "Labels": rec.config.labels.clone().unwrap_or_default(),
        "State": docker_status(rec),
        "Status": status_text(rec),
        "HostConfig": {"NetworkMode": rec.host_config.network_mode.clone().unwrap_or_else(|| "default".into())},
        "NetworkSettings": {"Networks": networks(rec)},
        "Mounts": super::mounts::mounts_json(rec),
    })
}

/// `GET /containers/{id}/json`.
pub fn inspect(rec: &Record, data_root: &std::path::Path) -> Value {
    let dir = super::Record::dir(data_root, &rec.id);
    // The top-level address fields are the default bridge's, as in Docker.
    let ep = rec.endpoints.iter().find(|e| e.network_name == crate::network::DEFAULT_NETWORK);
    let sandbox = rec.endpoints.first().map(|e| e.netns.to_string_lossy().into_owned()).unwrap_or_default();
    let s = &rec.state;
    let mut config = serde_json::to_value(&rec.config).unwrap_or_else(|_| json!({}));
    if let Some(o) = config.as_object_mut() {
        o.entry("ExposedPorts").or_insert(Value::Null);
    }
    let mut v = json!({
        "Id": rec.id,
        "Created": rec.created,
        "Path": rec.path,
        "Args": rec.args,
        "State": {
            "Status": docker_status(rec),
            "Running": s.status == Status::Running || s.restarting,
            "Paused": s.paused,
            "Restarting": s.restarting,
            "OOMKilled": s.oom_killed,
            "Dead": s.status == Status::Dead,
            "Pid": s.pid,
            "ExitCode": s.exit_code,
            "Error": s.error,
            "StartedAt": s.started_at,
            "FinishedAt": s.finished_at,
        },
        "Image": rec.image_id,
        "ResolvConfPath": dir.join("resolv.conf"),
        "HostnamePath": dir.join("hostname"),
        "HostsPath": dir.join("hosts"),
        "LogPath": super::logopts::log_file(&dir, &rec.id, super::logopts::log_config(&rec.host_config).unwrap_or_default().driver),
        "Name": format!("/{}", rec.name),
        "RestartCount": rec.restart_count,
        "Driver": "overlay2",
        "Platform": "linux",
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": "",
        "ExecIDs": null,
        "HostConfig": host_config_json(rec),
        "GraphDriver": {
            "Name": "overlay2",
            "Data": {
                "LowerDir": rec.layer_dirs.iter().rev().map(|d| d.to_string_lossy().into_owned()).collect::<Vec<_>>().join(":"),
                "UpperDir": dir.join("upper"),
                "WorkDir": dir.join("work"),
                "MergedDir": dir.join("rootfs"),
            }
        },
        "Mounts": super::mounts::mounts_json(rec),
        "Config": config,
        "NetworkSettings": {
            "Bridge": "",
            "SandboxID": "",
            "HairpinMode": false,
            "LinkLocalIPv6Address": "",
            "LinkLocalIPv6PrefixLen": 0,
            "Ports": super::ports::settings(rec),
            "SandboxKey": sandbox,
            "SecondaryIPAddresses": null,
            "SecondaryIPv6Addresses": null,
            "EndpointID": ep.map(|e| e.endpoint_id.clone()).unwrap_or_default(),
            "Gateway": ep.map(|e| e.gateway.to_string()).unwrap_or_default(),
            "GlobalIPv6Address": "",
            "GlobalIPv6PrefixLen": 0,
            "IPAddress": ep.map(|e| e.ip.to_string()).unwrap_or_default(),
            "IPPrefixLen": ep.map(|e| e.prefix_len).unwrap_or(0),
            "IPv6Gateway": "",
            "MacAddress": ep.map(|e| e.mac.clone()).unwrap_or_default(),
            "Networks": networks(rec),
        }
    });
    if let Some(h) = &s.health {
        v["State"]["Health"] = json!(h);
    }
    // Containers created before the runtime was recorded ran with the same one.
    if v["HostConfig"]["Runtime"].is_null() {
        v["HostConfig"]["Runtime"] = json!("runc");
    }
    v
}

/// Rejects unknown filter keys and values before any container is looked at.
fn validate_filters(f: &HashMap<String, Vec<String>>) -> Result<(), ContainerError> {
    for (key, vals) in f {
        match key.as_str() {
            "status" => {
                for v in vals {
                    if !["created", "restarting", "running", "removing", "paused", "exited", "dead"].contains(&v.as_str()) {
                        return Err(ContainerError::InvalidParam(format!("Invalid filter 'status={v}'")));
                    }
                }
            }
            "exited" => {
                for v in vals {
                    v.parse::<i32>().map_err(|_| ContainerError::InvalidParam(format!("invalid filter 'exited={v}'")))?;
                }
            }
            "id" | "name" | "label" | "ancestor" | "network" | "before" | "since" | "volume" | "health" | "publish" | "expose"
            | "isolation" | "is-task" => {}
            other => return Err(ContainerError::InvalidParam(format!("Invalid filter '{other}'"))),
        }
    }
    Ok(())
}

fn matches_filters(rec: &Record, f: &HashMap<String, Vec<String>>) -> Result<bool, ContainerError> {
    for (key, vals) in f {
        if vals.is_empty() {
            continue;
        }
        let ok = match key.as_str() {
            "id" => vals.iter().any(|v| rec.id.starts_with(v.as_str())),
            "name" => vals.iter().any(|v| {
                let v = v.trim_start_matches('/');
                rec.name.contains(v)
            }),
            "label" => vals.iter().all(|v| {
                let labels = rec.config.labels.clone().unwrap_or_default();
                match v.split_once('=') {
                    Some((k, val)) => labels.get(k).is_some_and(|x| x == val),
                    None => labels.contains_key(v.as_str()),
                }
            }),
            "status" => vals.iter().any(|v| v == docker_status(rec)),
            "ancestor" => vals.iter().any(|v| {
                let v = v.as_str();
                rec.image == v
                    || rec.image_id == v
                    || rec.image_id.trim_start_matches("sha256:").starts_with(v.trim_start_matches("sha256:"))
                    || (!v.contains(':') && rec.image == format!("{v}:latest"))
                    || (!rec.image.contains(':') && format!("{}:latest", rec.image) == v)
            }),
            "exited" => {
                let mut any = false;
                for v in vals {
                    let code: i32 = v.parse().map_err(|_| ContainerError::InvalidParam(format!("invalid filter 'exited={v}'")))?;
                    any |= rec.state.status == Status::Exited && rec.state.exit_code == code;
                }
                any
            }
            "network" => {
                vals.iter().any(|v| v == rec.net_mode.name() || rec.networks.iter().any(|n| &n.name == v || n.id.starts_with(v.as_str())))
            }
            "volume" => {
                vals.iter().any(|v| rec.mounts.iter().any(|m| m.name == *v || m.destination == *v || m.source == std::path::Path::new(v)))
            }
            "publish" | "expose" => vals.iter().any(|v| port_filter(rec, key == "publish", v)),
            "health" => vals.iter().any(|v| v == super::health::filter_value(rec)),
            "before" | "since" | "isolation" | "is-task" => true,
            other => return Err(ContainerError::InvalidParam(format!("Invalid filter '{other}'"))),
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

/// `publish=8080[/tcp]` (a host port) or `expose=80[/tcp]` (a container port); ranges `a-b`.
fn port_filter(rec: &Record, publish: bool, v: &str) -> bool {
    let (ports, proto) = v.split_once('/').unwrap_or((v, ""));
    let (lo, hi) = match ports.split_once('-') {
        Some((a, b)) => (a.parse().unwrap_or(0), b.parse().unwrap_or(0)),
        None => (ports.parse().unwrap_or(0), ports.parse().unwrap_or(0)),
    };
    let hit = |p: u16, pr: &str| (lo..=hi).contains(&p) && (proto.is_empty() || proto == pr);
    if publish {
        rec.ports.iter().any(|m| hit(m.host_port, &m.proto))
    } else {
        rec.config.exposed_ports.iter().flatten().filter_map(|k| super::ports::parse_key(k).ok()).any(|(p, pr)| hit(p, &pr))
    }
}

impl<R: Runtime> ContainerService<R> {
    pub fn list(&self, opts: &ListOptions) -> Result<Vec<Value>, ContainerError> {
        validate_filters(&opts.filters)?;
        let mut recs: Vec<Record> = self.all().iter().map(|c| c.record()).collect();
        recs.sort_by(|a, b| b.created.cmp(&a.created));
        let status_filter = opts.filters.contains_key("status") || opts.filters.contains_key("exited");
        let show_all = opts.all || opts.limit.is_some_and(|l| l > 0) || status_filter;
        let mut out = vec![];
        for r in recs {
            if !(show_all || r.running() || r.state.restarting) {
                continue;
            }
            if !matches_filters(&r, &opts.filters)? {
                continue;
            }
            out.push(summary(&r));
            if opts.limit.is_some_and(|l| l > 0 && out.len() >= l) {
                break;
            }
        }
        Ok(out)
    }

    pub fn inspect(&self, key: &str) -> Result<Value, ContainerError> {
        let rec = self.get(key)?.record();
        let mut v = inspect(&rec, &self.cfg.data_root);
        let execs = self.execs.of_container(&rec.id);
        if !execs.is_empty() {
            v["ExecIDs"] = json!(execs);
        }
        Ok(v)
    }

    /// The record (for handlers that need Tty etc.).
    pub fn record(&self, key: &str) -> Result<Record, ContainerError> {
        Ok(self.get(key)?.record())
    }
}

/// Links as dockerd shows them: `/<target>:/<this container>/<alias>`.
fn links_json(rec: &Record) -> Vec<String> {
    rec.host_config
        .links
        .iter()
        .flatten()
        .filter_map(|l| super::netconf::parse_link(l).ok())
        .map(|(t, a)| format!("/{t}:/{}/{a}", rec.name))
        .collect()
}

/// The stored host config, with links in dockerd's form (what `{{.HostConfig.Links}}` shows).
fn host_config_json(rec: &Record) -> Value {
    let mut v = serde_json::to_value(&rec.host_config).unwrap_or(Value::Null);
    let links = links_json(rec);
    if !links.is_empty() {
        v["Links"] = json!(links);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn durations() {
        assert_eq!(human_duration(0), "Less than a second");
        assert_eq!(human_duration(5), "5 seconds");
        assert_eq!(human_duration(61), "About a minute");
        assert_eq!(human_duration(600), "10 minutes");
        assert_eq!(human_duration(3600), "About an hour");
        assert_eq!(human_duration(5 * 3600), "5 hours");
        assert_eq!(human_duration(3 * 86400), "3 days");
    }
}
