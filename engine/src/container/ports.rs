//! Published ports: `HostConfig.PortBindings`/`PublishAllPorts` into what the network service
//! publishes, and the two shapes Docker shows them in (inspect's `NetworkSettings.Ports`, the
//! `Ports` of `docker ps`).
use super::record::Record;
use super::ContainerError;
use crate::network::{PortMapping, PortSpec};
use bollard_stubs::models::HostConfig;
use serde_json::{json, Value};
use std::net::Ipv4Addr;

/// `80/tcp` (or `80`) -> (80, "tcp").
pub fn parse_key(key: &str) -> Result<(u16, String), ContainerError> {
    let (port, proto) = key.split_once('/').unwrap_or((key, "tcp"));
    let proto = if proto.is_empty() { "tcp" } else { proto }.to_ascii_lowercase();
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(ContainerError::InvalidParam(format!("invalid proto: {proto}")));
    }
    let port: u16 = port.parse().ok().filter(|p| *p > 0).ok_or_else(|| ContainerError::InvalidParam(format!("invalid port: {key}")))?;
    Ok((port, proto))
}

/// `""`/`"0"` -> any, `"8080"`, `"8000-8010"`.
fn parse_host_ports(s: &str) -> Result<(u16, u16), ContainerError> {
    let bad = || ContainerError::InvalidParam(format!("invalid hostPort: {s}"));
    let s = s.trim();
    if s.is_empty() {
        return Ok((0, 0));
    }
    match s.split_once('-') {
        Some((a, b)) => {
            let (a, b): (u16, u16) = (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
            if a == 0 || b < a {
                return Err(bad());
            }
            Ok((a, b))
        }
        None => {
            let p: u16 = s.parse().map_err(|_| bad())?;
            Ok((p, p))
        }
    }
}

fn parse_host_ip(s: &str) -> Result<Option<Ipv4Addr>, ContainerError> {
    match s.trim().trim_start_matches('[').trim_end_matches(']') {
        "" | "0.0.0.0" => Ok(None),
        "::" => Ok(None),
        ip => match ip.parse::<std::net::IpAddr>() {
            Ok(std::net::IpAddr::V4(v4)) => Ok(Some(v4)),
            Ok(_) => Err(ContainerError::InvalidParam(format!("publishing on IPv6 address {ip} is not supported by this engine"))),
            Err(_) => Err(ContainerError::InvalidParam(format!("invalid IP address: {ip}"))),
        },
    }
}

/// Everything to publish: explicit bindings, plus every other exposed port with `-P`.
/// Sorted and without duplicates.
pub fn specs(hc: &HostConfig, exposed: &[String]) -> Result<Vec<PortSpec>, ContainerError> {
    let mut out: Vec<PortSpec> = vec![];
    let mut bound = vec![];
    for (key, bindings) in hc.port_bindings.iter().flatten() {
        let (port, proto) = parse_key(key)?;
        bound.push((port, proto.clone()));
        let bindings = bindings.clone().unwrap_or_default();
        let bindings = if bindings.is_empty() { vec![Default::default()] } else { bindings };
        let before = out.len();
        for b in bindings {
            let b: bollard_stubs::models::PortBinding = b;
            let host_ip = parse_host_ip(b.host_ip.as_deref().unwrap_or(""))?;
            if b.host_ip.as_deref().is_some_and(|ip| ip.contains(':')) {
                continue; // the IPv6 twin of a binding
            }
            let host_ports = parse_host_ports(b.host_port.as_deref().unwrap_or(""))?;
            out.push(PortSpec { proto: proto.clone(), container_port: port, host_ip, host_ports });
        }
        // Only IPv6 twins: nothing of it would be published.
        if out.len() == before {
            return Err(ContainerError::InvalidParam(format!(
                "publishing {key} only on the IPv6 address :: is not supported by this engine (publish it on 0.0.0.0, or give no address)"
            )));
        }
    }
    if hc.publish_all_ports == Some(true) {
        for key in exposed {
            let (port, proto) = parse_key(key)?;
            if !bound.contains(&(port, proto.clone())) {
                out.push(PortSpec { proto, container_port: port, host_ip: None, host_ports: (0, 0) });
            }
        }
    }
    for s in &out {
        if s.proto == "sctp" {
            return Err(ContainerError::InvalidParam("publishing sctp ports is not supported by this engine".into()));
        }
    }
    out.sort_by(|a, b| (a.container_port, &a.proto, a.host_ip, a.host_ports).cmp(&(b.container_port, &b.proto, b.host_ip, b.host_ports)));
    out.dedup();
    Ok(out)
}

/// Exposed port keys of a container (config and bindings), as `(port, proto)`, sorted.
fn exposed(rec: &Record) -> Vec<(u16, String)> {
    let mut v: Vec<(u16, String)> = rec.config.exposed_ports.iter().flatten().filter_map(|k| parse_key(k).ok()).collect();
    for k in rec.host_config.port_bindings.iter().flat_map(|m| m.keys()) {
        if let Ok(p) = parse_key(k) {
            v.push(p);
        }
    }
    v.sort();
    v.dedup();
    v
}

fn mappings_of<'a>(rec: &'a Record, port: u16, proto: &'a str) -> impl Iterator<Item = &'a PortMapping> {
    rec.ports.iter().filter(move |m| m.container_port == port && m.proto == proto)
}

/// `NetworkSettings.Ports` of inspect: every exposed port, with its bindings when running.
pub fn settings(rec: &Record) -> Value {
    let mut out = serde_json::Map::new();
    if !rec.running() {
        return Value::Object(out);
    }
    for (port, proto) in exposed(rec) {
        let b: Vec<Value> =
            mappings_of(rec, port, &proto).map(|m| json!({"HostIp": m.host_ip.to_string(), "HostPort": m.host_port.to_string()})).collect();
        out.insert(format!("{port}/{proto}"), if b.is_empty() { Value::Null } else { Value::Array(b) });
    }
    Value::Object(out)
}

/// `Ports` of `GET /containers/json`.
pub fn summary(rec: &Record) -> Value {
    if !rec.running() {
        return json!([]);
    }
    let mut out = vec![];
    for (port, proto) in exposed(rec) {
        let mut any = false;
        for m in mappings_of(rec, port, &proto) {
            any = true;
            out.push(json!({"IP": m.host_ip.to_string(), "PrivatePort": port, "PublicPort": m.host_port, "Type": proto}));
        }
        if !any {
            out.push(json!({"PrivatePort": port, "Type": proto}));
        }
    }
    Value::Array(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard_stubs::models::PortBinding;

    fn hc(bindings: &[(&str, &str, &str)], all: bool) -> HostConfig {
        let mut m = std::collections::HashMap::new();
        for (k, ip, port) in bindings {
            m.entry(k.to_string())
                .or_insert_with(|| Some(vec![]))
                .as_mut()
                .unwrap()
                .push(PortBinding { host_ip: Some(ip.to_string()), host_port: Some(port.to_string()) });
        }
        HostConfig { port_bindings: Some(m), publish_all_ports: Some(all), ..Default::default() }
    }

    #[test]
    fn parses_bindings() {
        let s =
            specs(&hc(&[("80/tcp", "", "8080"), ("53/udp", "127.0.0.1", ""), ("81/tcp", "", "9000-9010"), ("82", "", "0")], false), &[])
                .unwrap();
        assert_eq!(s.len(), 4);
        assert_eq!(s[0], PortSpec { proto: "udp".into(), container_port: 53, host_ip: Some(Ipv4Addr::LOCALHOST), host_ports: (0, 0) });
        assert_eq!(s[1], PortSpec { proto: "tcp".into(), container_port: 80, host_ip: None, host_ports: (8080, 8080) });
        assert_eq!(s[2].host_ports, (9000, 9010));
        assert_eq!(s[3].host_ports, (0, 0));
        assert!(specs(&hc(&[("80/tcp", "", "99999")], false), &[]).is_err());
        assert!(specs(&hc(&[("x/tcp", "", "")], false), &[]).is_err());
        assert!(specs(&hc(&[("80/tcp", "nope", "")], false), &[]).is_err());
    }

    #[test]
    fn publish_all_adds_exposed_ports() {
        let s = specs(&hc(&[("80/tcp", "", "8080")], true), &["80/tcp".into(), "443/tcp".into()]).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[1], PortSpec { proto: "tcp".into(), container_port: 443, host_ip: None, host_ports: (0, 0) });
        // The IPv6 twin of a binding is skipped.
        let s = specs(&hc(&[("80/tcp", "::", "8080"), ("80/tcp", "0.0.0.0", "8080")], false), &[]).unwrap();
        assert_eq!(s.len(), 1);
    }
}
