//! `port`: a published host port may be used once per node. Bridge mode: a node is out when a
//! container there (any state, pending included) binds the same host port on the same address,
//! or either side binds every address. Host networking: out when a host-network container
//! there exposes the same port.
use super::Filter;
use crate::scheduler::node::{ContainerView, PortBinding};
use crate::scheduler::{NodeView, Request};

pub struct Port;

fn clash(a: &PortBinding, b: &PortBinding) -> bool {
    !a.host_port.is_empty() && a.host_port == b.host_port && (a.any_ip() || b.any_ip() || a.host_ip == b.host_ip)
}

fn conflict<'n>(req: &Request, node: &'n NodeView) -> Option<(&'n ContainerView, String)> {
    if req.network_mode == "host" {
        for p in &req.exposed_ports {
            if let Some(c) = node.containers.iter().find(|c| c.host_network() && c.exposed_ports.contains(p)) {
                return Some((c, p.clone()));
            }
        }
        return None;
    }
    for want in &req.port_bindings {
        for c in &node.containers {
            if let Some(b) = c.port_bindings.iter().find(|b| clash(want, b)) {
                return Some((c, b.host_port.clone()));
            }
        }
    }
    None
}

impl Filter for Port {
    fn name(&self) -> &'static str {
        "port"
    }
    fn applies(&self, req: &Request, _: bool) -> bool {
        !req.port_bindings.is_empty() || req.network_mode == "host"
    }
    fn accepts(&self, req: &Request, node: &NodeView, _: bool) -> bool {
        (req.port_bindings.is_empty() && req.network_mode != "host") || conflict(req, node).is_none()
    }
    fn explain(&self, req: &Request, node: &NodeView, _: bool) -> String {
        match conflict(req, node) {
            Some((c, p)) => {
                let who = c.names.first().map(|n| n.to_string()).unwrap_or_else(|| c.id[..c.id.len().min(12)].to_string());
                format!("port {p} is already used by container {who}")
            }
            None => String::new(),
        }
    }
    fn conditions(&self, req: &Request) -> Vec<String> {
        if req.network_mode == "host" {
            req.exposed_ports.iter().map(|p| format!("port {p} (Host mode)")).collect()
        } else {
            req.port_bindings.iter().filter(|b| !b.host_port.is_empty()).map(|b| format!("port {} (Bridge mode)", b.host_port)).collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::testing::{container, node};
    use std::sync::Arc;

    fn pb(ip: &str, port: &str) -> PortBinding {
        PortBinding { host_ip: ip.into(), host_port: port.into(), container_port: "80/tcp".into() }
    }
    fn req(bindings: Vec<PortBinding>) -> Request {
        Request { port_bindings: bindings, ..Default::default() }
    }
    fn node_binding(b: PortBinding) -> NodeView {
        let mut n = node("n1");
        let mut c = container("c1", "web");
        c.port_bindings.push(b);
        n.containers.push(Arc::new(c));
        n
    }

    #[test]
    fn same_port_conflicts_on_any_address() {
        let n = node_binding(pb("", "8080"));
        assert!(!Port.accepts(&req(vec![pb("", "8080")]), &n, true));
        assert!(!Port.accepts(&req(vec![pb("127.0.0.1", "8080")]), &n, true));
        assert!(Port.accepts(&req(vec![pb("", "8081")]), &n, true));
        assert!(Port.accepts(&req(vec![pb("", "")]), &n, true), "an empty host port is ignored");
        assert_eq!(Port.explain(&req(vec![pb("", "8080")]), &n, true), "port 8080 is already used by container web");
        assert_eq!(Port.conditions(&req(vec![pb("", "8080")])), vec!["port 8080 (Bridge mode)"]);
    }

    #[test]
    fn distinct_addresses_do_not_conflict() {
        let n = node_binding(pb("10.0.0.1", "80"));
        assert!(Port.accepts(&req(vec![pb("10.0.0.2", "80")]), &n, true));
        assert!(!Port.accepts(&req(vec![pb("10.0.0.1", "80")]), &n, true));
    }

    #[test]
    fn host_mode_uses_exposed_ports() {
        let mut n = node("n1");
        let mut c = container("c1", "h");
        c.network_mode = "host".into();
        c.exposed_ports = vec!["80/tcp".into()];
        n.containers.push(Arc::new(c));
        let r = Request { network_mode: "host".into(), exposed_ports: vec!["80/tcp".into()], ..Default::default() };
        assert!(!Port.accepts(&r, &n, true));
        assert_eq!(Port.conditions(&r), vec!["port 80/tcp (Host mode)"]);
        let r = Request { network_mode: "host".into(), exposed_ports: vec!["81/tcp".into()], ..Default::default() };
        assert!(Port.accepts(&r, &n, true));
    }
}
