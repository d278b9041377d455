//! The simulator's answers, shaped as Docker Engine 20.10 (API 1.41) shapes them, with every
//! field a classic Swarm manager or the docker CLI reads, in the JSON types Go decodes them
//! into (a number where Go has an int64, `null` where Docker sends `null`).
use super::{SimContainer, SimNode, SimState};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Map, Value};
use std::hash::{Hash, Hasher};

pub const SERVER_VERSION: &str = "20.10.24";
pub const KERNEL_VERSION: &str = "5.10.0-sim";
pub const IMAGE_ID: &str = "sha256:5b0b3d2b1c9cc3b0a9e0e7c0d9a8f2f4c1b7a6e5d4c3b2a1908f7e6d5c4b3a21";
const IMAGE_DIGEST: &str = "busybox@sha256:3fbc632167424a6d997e74f52b878d7cc478225cffac6bc977eedfe51c7f4e79";
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

fn hash64(parts: &[&str], salt: u64) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    salt.hash(&mut h);
    parts.hash(&mut h);
    h.finish()
}

/// 64 hex digits derived from `parts` (stable between runs).
fn hex_id(parts: &[&str]) -> String {
    (0..4).map(|s| format!("{:016x}", hash64(parts, s))).collect()
}

/// A daemon ID in Docker's form (`ABCD:EFGH:…`, 12 groups of 4 base-32 characters), stable
/// for a node name.
pub fn node_id(name: &str) -> String {
    const B32: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut bits: Vec<u8> = vec![];
    for s in 0..4 {
        let h = hash64(&[name], 100 + s);
        bits.extend((0..12).map(|i| B32[((h >> (i * 5)) & 31) as usize]));
    }
    bits.chunks(4).map(|c| String::from_utf8_lossy(c).into_owned()).collect::<Vec<_>>().join(":")
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Nanos, true)
}

/// Docker's `units.HumanDuration`.
fn human(d: chrono::Duration) -> String {
    let s = d.num_seconds();
    match s {
        s if s < 1 => "Less than a second".into(),
        1 => "1 second".into(),
        s if s < 60 => format!("{s} seconds"),
        s if s < 120 => "About a minute".into(),
        s if s < 3600 => format!("{} minutes", s / 60),
        s if s < 7200 => "About an hour".into(),
        s if s < 48 * 3600 => format!("{} hours", s / 3600),
        s => format!("{} days", s / 86400),
    }
}

pub fn version() -> Value {
    let details = json!({
        "ApiVersion": apiserve::API_VERSION, "Arch": "amd64", "BuildTime": "2023-04-04T10:06:41.000000000+00:00",
        "Experimental": "false", "GitCommit": "5d6db84", "GoVersion": "go1.19.7", "KernelVersion": KERNEL_VERSION,
        "MinAPIVersion": "1.12", "Os": "linux",
    });
    json!({
        "Platform": {"Name": "Flotilla node simulator"},
        "Components": [{"Name": "Engine", "Version": SERVER_VERSION, "Details": details}],
        "Version": SERVER_VERSION, "ApiVersion": apiserve::API_VERSION, "MinAPIVersion": "1.12", "GitCommit": "5d6db84",
        "GoVersion": "go1.19.7", "Os": "linux", "Arch": "amd64", "KernelVersion": KERNEL_VERSION,
        "BuildTime": "2023-04-04T10:06:41.000000000+00:00",
    })
}

/// Container counts of a node: (all, running, stopped).
pub fn info(node: &SimNode, counts: (usize, usize, usize), listeners: usize) -> Value {
    let (all, running, stopped) = counts;
    json!({
        "ID": node.id, "Containers": all, "ContainersRunning": running, "ContainersPaused": 0, "ContainersStopped": stopped,
        "Images": 1, "Driver": "overlay2",
        "DriverStatus": [["Backing Filesystem", "extfs"], ["Supports d_type", "true"], ["Native Overlay Diff", "true"], ["userxattr", "false"]],
        "SystemStatus": null,
        "Plugins": {"Volume": ["local"], "Network": ["bridge", "host", "ipvlan", "macvlan", "null", "overlay"],
                    "Authorization": null, "Log": ["json-file", "local", "none"]},
        "MemoryLimit": true, "SwapLimit": true, "KernelMemory": true, "KernelMemoryTCP": true, "CpuCfsPeriod": true,
        "CpuCfsQuota": true, "CPUShares": true, "CPUSet": true, "PidsLimit": true, "IPv4Forwarding": true,
        "BridgeNfIptables": true, "BridgeNfIp6tables": true, "Debug": false, "NFd": 24 + listeners, "OomKillDisable": true,
        "NGoroutines": 34 + listeners, "SystemTime": rfc3339(Utc::now()), "LoggingDriver": "json-file",
        "CgroupDriver": "cgroupfs", "CgroupVersion": "1", "NEventsListener": listeners, "KernelVersion": KERNEL_VERSION,
        "OperatingSystem": "Debian GNU/Linux 12 (bookworm)", "OSVersion": "12", "OSType": "linux", "Architecture": "x86_64",
        "IndexServerAddress": "https://index.docker.io/v1/",
        "RegistryConfig": {"AllowNondistributableArtifactsCIDRs": [], "AllowNondistributableArtifactsHostnames": [],
                           "InsecureRegistryCIDRs": ["127.0.0.0/8"],
                           "IndexConfigs": {"docker.io": {"Name": "docker.io", "Mirrors": [], "Secure": true, "Official": true}},
                           "Mirrors": []},
        "NCPU": node.ncpu, "MemTotal": node.memory, "GenericResources": null, "DockerRootDir": "/var/lib/docker",
        "HttpProxy": "", "HttpsProxy": "", "NoProxy": "", "Name": node.name, "Labels": node.labels,
        "ExperimentalBuild": false, "ServerVersion": SERVER_VERSION, "ClusterStore": "", "ClusterAdvertise": "",
        "Runtimes": {"runc": {"path": "runc"}}, "DefaultRuntime": "runc",
        "Swarm": {"NodeID": "", "NodeAddr": "", "LocalNodeState": "inactive", "ControlAvailable": false, "Error": "",
                  "RemoteManagers": null},
        "LiveRestoreEnabled": false, "Isolation": "", "InitBinary": "docker-init",
        "ContainerdCommit": {"ID": "sim", "Expected": "sim"}, "RuncCommit": {"ID": "sim", "Expected": "sim"},
        "InitCommit": {"ID": "sim", "Expected": "sim"}, "SecurityOptions": ["name=seccomp,profile=default"],
        "Warnings": null,
    })
}

pub fn image_row() -> Value {
    json!({"Containers": -1, "Created": 1_700_000_000, "Id": IMAGE_ID, "Labels": null, "ParentId": "",
           "RepoDigests": [IMAGE_DIGEST], "RepoTags": ["busybox:latest"], "SharedSize": -1, "Size": 4_261_550,
           "VirtualSize": 4_261_550})
}

/// Whether `name` names the one image (`busybox`, `busybox:latest`, its ID or an ID prefix).
pub fn is_image(name: &str) -> bool {
    let bare = name.strip_prefix("docker.io/library/").or_else(|| name.strip_prefix("library/")).unwrap_or(name);
    matches!(bare, "busybox" | "busybox:latest")
        || name == IMAGE_DIGEST
        || (name.len() >= 4 && (IMAGE_ID.starts_with(name) || IMAGE_ID.trim_start_matches("sha256:").starts_with(name)))
}

pub fn image_inspect() -> Value {
    let config = json!({"Hostname": "", "Domainname": "", "User": "", "AttachStdin": false, "AttachStdout": false,
        "AttachStderr": false, "Tty": false, "OpenStdin": false, "StdinOnce": false,
        "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"], "Cmd": ["sh"], "Image": "",
        "Volumes": null, "WorkingDir": "", "Entrypoint": null, "OnBuild": null, "Labels": null});
    json!({"Id": IMAGE_ID, "RepoTags": ["busybox:latest"], "RepoDigests": [IMAGE_DIGEST], "Parent": "", "Comment": "",
           "Created": "2023-11-14T22:13:20Z", "Container": "", "ContainerConfig": config.clone(), "DockerVersion": "20.10.23",
           "Author": "", "Config": config, "Architecture": "amd64", "Os": "linux", "Size": 4_261_550, "VirtualSize": 4_261_550,
           "GraphDriver": {"Data": null, "Name": "overlay2"},
           "RootFS": {"Type": "layers", "Layers": ["sha256:3d24ee258efc3bfe4066a1a9fb83febf6dc0b1548dfe896161533668281c9f4f"]},
           "Metadata": {"LastTagTime": ZERO_TIME}})
}

/// The node's networks (bridge, host, none), as `GET /networks` lists them.
pub fn networks(node: &SimNode) -> Vec<Value> {
    ["bridge", "host", "none"].iter().map(|n| network(node, n).expect("a built-in network")).collect()
}

pub fn network_id(node: &SimNode, name: &str) -> String {
    hex_id(&[&node.name, "network", name])
}

/// A built-in network by name or ID (or ID prefix).
pub fn find_network(node: &SimNode, key: &str) -> Option<Value> {
    ["bridge", "host", "none"]
        .iter()
        .find(|n| **n == key || (!key.is_empty() && network_id(node, n).starts_with(key)))
        .and_then(|n| network(node, n))
}

fn network(node: &SimNode, name: &str) -> Option<Value> {
    let (driver, config, options) = match name {
        "bridge" => (
            "bridge",
            json!([{"Subnet": "172.17.0.0/16", "Gateway": "172.17.0.1"}]),
            json!({"com.docker.network.bridge.default_bridge": "true", "com.docker.network.bridge.enable_icc": "true",
                   "com.docker.network.bridge.enable_ip_masquerade": "true",
                   "com.docker.network.bridge.host_binding_ipv4": "0.0.0.0", "com.docker.network.bridge.name": "docker0",
                   "com.docker.network.driver.mtu": "1500"}),
        ),
        "host" => ("host", json!([]), json!({})),
        "none" => ("null", json!([]), json!({})),
        _ => return None,
    };
    Some(json!({"Name": name, "Id": network_id(node, name), "Created": "2026-01-01T00:00:00.000000000Z", "Scope": "local",
                "Driver": driver, "EnableIPv6": false, "IPAM": {"Driver": "default", "Options": null, "Config": config},
                "Internal": false, "Attachable": false, "Ingress": false, "ConfigFrom": {"Network": ""},
                "ConfigOnly": false, "Containers": {}, "Options": options, "Labels": {}}))
}

/// A container's `Config` field of the create body (or `Default`).
fn field<'a>(c: &'a SimContainer, key: &str) -> Option<&'a Value> {
    c.config.get(key).filter(|v| !v.is_null())
}

fn host_field<'a>(c: &'a SimContainer, key: &str) -> Option<&'a Value> {
    c.config.get("HostConfig").and_then(|h| h.get(key)).filter(|v| !v.is_null())
}

fn network_mode(c: &SimContainer) -> String {
    host_field(c, "NetworkMode").and_then(Value::as_str).filter(|m| !m.is_empty()).unwrap_or("default").to_string()
}

/// The network the container is attached to (`default` is the bridge).
fn network_name(c: &SimContainer) -> String {
    match network_mode(c).as_str() {
        "default" => "bridge".into(),
        m => m.to_string(),
    }
}

fn strings(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).map(String::from).collect(),
        Some(Value::String(s)) => vec![s.clone()],
        _ => vec![],
    }
}

/// `Entrypoint` + `Cmd` (the image's `sh` when the create gave neither).
fn command(c: &SimContainer) -> Vec<String> {
    let mut v = strings(field(c, "Entrypoint"));
    let cmd = strings(field(c, "Cmd"));
    v.extend(if cmd.is_empty() && v.is_empty() { vec!["sh".to_string()] } else { cmd });
    v
}

fn ip(seq: u64) -> String {
    format!("172.17.{}.{}", (seq / 250) % 250, seq % 250 + 2)
}

fn mac(seq: u64) -> String {
    format!("02:42:ac:11:{:02x}:{:02x}", (seq / 250) % 250, seq % 250 + 2)
}

/// Published ports (`HostConfig.PortBindings`) as (private port, protocol, host IP, host port).
fn bindings(c: &SimContainer) -> Vec<(u16, String, String, u16)> {
    let mut out = vec![];
    let Some(Value::Object(pb)) = host_field(c, "PortBindings") else { return out };
    for (key, list) in pb {
        let (port, proto) = key.split_once('/').unwrap_or((key.as_str(), "tcp"));
        let Ok(port) = port.parse::<u16>() else { continue };
        for b in list.as_array().into_iter().flatten() {
            let host_ip = b.get("HostIp").and_then(Value::as_str).filter(|s| !s.is_empty()).unwrap_or("0.0.0.0");
            let host_port = b.get("HostPort").and_then(Value::as_str).and_then(|p| p.parse().ok()).unwrap_or(port);
            out.push((port, proto.to_string(), host_ip.to_string(), host_port));
        }
    }
    out
}

fn endpoint(node: &SimNode, id: &str, c: &SimContainer) -> Value {
    let net = network_name(c);
    let up = c.state == SimState::Running && net != "none";
    let s = |v: String| if up { v } else { String::new() };
    json!({"IPAMConfig": null, "Links": null, "Aliases": null, "NetworkID": network_id(node, &net),
           "EndpointID": s(hex_id(&[id, "endpoint"])), "Gateway": s("172.17.0.1".into()), "IPAddress": s(ip(c.seq)),
           "IPPrefixLen": if up { 16 } else { 0 }, "IPv6Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0,
           "MacAddress": s(mac(c.seq)), "DriverOpts": null})
}

fn status_text(c: &SimContainer, now: DateTime<Utc>) -> String {
    match c.state {
        SimState::Created => "Created".into(),
        SimState::Running => format!("Up {}", human(now - c.started.unwrap_or(c.created))),
        SimState::Exited => format!("Exited (0) {} ago", human(now - c.finished.unwrap_or(c.created))),
    }
}

/// One `GET /containers/json` row; `size` adds `SizeRw`/`SizeRootFs` (`?size=1`).
pub fn ps_row(node: &SimNode, id: &str, c: &SimContainer, size: bool, now: DateTime<Utc>) -> Value {
    let ports: Vec<Value> = if c.state == SimState::Running {
        bindings(c).into_iter().map(|(p, proto, hip, hp)| json!({"IP": hip, "PrivatePort": p, "PublicPort": hp, "Type": proto})).collect()
    } else {
        vec![]
    };
    let mut row = json!({
        "Id": id, "Names": [format!("/{}", c.name)],
        "Image": field(c, "Image").and_then(Value::as_str).unwrap_or("busybox"), "ImageID": IMAGE_ID,
        "Command": command(c).join(" "), "Created": c.created.timestamp(), "Ports": ports,
        "Labels": field(c, "Labels").cloned().unwrap_or(json!({})), "State": c.state.as_str(), "Status": status_text(c, now),
        "HostConfig": {"NetworkMode": network_mode(c)},
        "NetworkSettings": {"Networks": {network_name(c): endpoint(node, id, c)}}, "Mounts": [],
    });
    if size {
        row["SizeRw"] = json!(0);
        row["SizeRootFs"] = json!(4_261_550);
    }
    row
}

/// Copies `over`'s keys onto `base` (an object).
fn merge(mut base: Value, over: Option<&Value>, skip: &[&str]) -> Value {
    if let (Some(b), Some(Value::Object(o))) = (base.as_object_mut(), over) {
        for (k, v) in o {
            if !skip.contains(&k.as_str()) {
                b.insert(k.clone(), v.clone());
            }
        }
    }
    base
}

fn host_config_defaults() -> Value {
    json!({
        "Binds": null, "ContainerIDFile": "", "LogConfig": {"Type": "json-file", "Config": {}}, "NetworkMode": "default",
        "PortBindings": {}, "RestartPolicy": {"Name": "no", "MaximumRetryCount": 0}, "AutoRemove": false, "VolumeDriver": "",
        "VolumesFrom": null, "CapAdd": null, "CapDrop": null, "CgroupnsMode": "host", "Dns": [], "DnsOptions": [],
        "DnsSearch": [], "ExtraHosts": null, "GroupAdd": null, "IpcMode": "private", "Cgroup": "", "Links": null,
        "OomScoreAdj": 0, "PidMode": "", "Privileged": false, "PublishAllPorts": false, "ReadonlyRootfs": false,
        "SecurityOpt": null, "UTSMode": "", "UsernsMode": "", "ShmSize": 67_108_864, "Runtime": "runc", "ConsoleSize": [0, 0],
        "Isolation": "", "CpuShares": 0, "Memory": 0, "NanoCpus": 0, "CgroupParent": "", "BlkioWeight": 0,
        "BlkioWeightDevice": [], "BlkioDeviceReadBps": null, "BlkioDeviceWriteBps": null, "BlkioDeviceReadIOps": null,
        "BlkioDeviceWriteIOps": null, "CpuPeriod": 0, "CpuQuota": 0, "CpuRealtimePeriod": 0, "CpuRealtimeRuntime": 0,
        "CpusetCpus": "", "CpusetMems": "", "Devices": [], "DeviceCgroupRules": null, "DeviceRequests": null,
        "KernelMemory": 0, "KernelMemoryTCP": 0, "MemoryReservation": 0, "MemorySwap": 0, "MemorySwappiness": null,
        "OomKillDisable": false, "PidsLimit": null, "Ulimits": null, "CpuCount": 0, "CpuPercent": 0, "IOMaximumIOps": 0,
        "IOMaximumBandwidth": 0, "MaskedPaths": ["/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys"],
        "ReadonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
    })
}

/// `GET /containers/{id}/json`.
pub fn inspect(node: &SimNode, id: &str, c: &SimContainer) -> Value {
    let cmd = command(c);
    let mut env = strings(field(c, "Env"));
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.push("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
    }
    let config_defaults = json!({
        "Hostname": &id[..12.min(id.len())], "Domainname": "", "User": "", "AttachStdin": false, "AttachStdout": true,
        "AttachStderr": true, "Tty": false, "OpenStdin": false, "StdinOnce": false, "Cmd": ["sh"], "Image": "busybox",
        "Volumes": null, "WorkingDir": "", "Entrypoint": null, "OnBuild": null, "Labels": {},
    });
    let mut config = merge(config_defaults, Some(&c.config), &["HostConfig", "NetworkingConfig"]);
    config["Env"] = json!(env);
    if config["Labels"].is_null() {
        config["Labels"] = json!({});
    }
    let running = c.state == SimState::Running;
    let mut ports = Map::new();
    for (p, proto, hip, hp) in bindings(c) {
        let key = format!("{p}/{proto}");
        let entry = ports.entry(key).or_insert_with(|| if running { json!([]) } else { Value::Null });
        if let Some(a) = entry.as_array_mut() {
            a.push(json!({"HostIp": hip, "HostPort": hp.to_string()}));
        }
    }
    let dir = format!("/var/lib/docker/containers/{id}");
    let net = network_name(c);
    json!({
        "Id": id, "Created": rfc3339(c.created), "Path": cmd.first().cloned().unwrap_or_default(),
        "Args": cmd.iter().skip(1).collect::<Vec<_>>(),
        "State": {"Status": c.state.as_str(), "Running": running, "Paused": false, "Restarting": false, "OOMKilled": false,
                  "Dead": false, "Pid": if running { 10_000 + c.seq } else { 0 }, "ExitCode": 0, "Error": "",
                  "StartedAt": c.started.map_or(ZERO_TIME.to_string(), rfc3339),
                  "FinishedAt": c.finished.map_or(ZERO_TIME.to_string(), rfc3339)},
        "Image": IMAGE_ID, "ResolvConfPath": format!("{dir}/resolv.conf"), "HostnamePath": format!("{dir}/hostname"),
        "HostsPath": format!("{dir}/hosts"), "LogPath": format!("{dir}/{id}-json.log"), "Name": format!("/{}", c.name),
        "RestartCount": 0, "Driver": "overlay2", "Platform": "linux", "MountLabel": "", "ProcessLabel": "",
        "AppArmorProfile": "", "ExecIDs": null,
        "HostConfig": merge(host_config_defaults(), c.config.get("HostConfig"), &[]),
        "GraphDriver": {"Data": null, "Name": "overlay2"}, "Mounts": [], "Config": config,
        "NetworkSettings": {
            "Bridge": "", "SandboxID": if running { hex_id(&[id, "sandbox"]) } else { String::new() }, "HairpinMode": false,
            "LinkLocalIPv6Address": "", "LinkLocalIPv6PrefixLen": 0, "Ports": ports,
            "SandboxKey": if running { format!("/var/run/docker/netns/{}", &id[..12.min(id.len())]) } else { String::new() },
            "SecondaryIPAddresses": null, "SecondaryIPv6Addresses": null,
            "EndpointID": if running && net == "bridge" { hex_id(&[id, "endpoint"]) } else { String::new() },
            "Gateway": if running && net == "bridge" { "172.17.0.1" } else { "" }, "GlobalIPv6Address": "",
            "GlobalIPv6PrefixLen": 0, "IPAddress": if running && net == "bridge" { ip(c.seq) } else { String::new() },
            "IPPrefixLen": if running && net == "bridge" { 16 } else { 0 }, "IPv6Gateway": "",
            "MacAddress": if running && net == "bridge" { mac(c.seq) } else { String::new() },
            "Networks": {net.clone(): endpoint(node, id, c)},
        },
    })
}

/// A container event (`extra`: more actor attributes, such as `exitCode`).
pub fn container_event(action: &str, id: &str, name: &str, extra: &[(&str, String)]) -> Value {
    let now = Utc::now();
    let mut attrs = json!({"name": name, "image": "busybox"});
    for (k, v) in extra {
        attrs[*k] = json!(v);
    }
    json!({"status": action, "id": id, "from": "busybox", "Type": "container", "Action": action,
           "Actor": {"ID": id, "Attributes": attrs}, "scope": "local",
           "time": now.timestamp(), "timeNano": now.timestamp_nanos_opt().unwrap_or_default()})
}
