//! A create request parsed once for placement. Expressions come from the container's `Env`
//! (`constraint:…`, `affinity:…`, `whitelist:…`, `reschedule:…`, removed from what the node
//! gets) and from the label arrays `com.docker.swarm.{constraints,affinities,whitelists}`. The
//! merged arrays are written back as labels, so the node keeps a record of the rules.
use super::expr::{Expr, ExprError};
use super::node::{ContainerView, PortBinding};
use crate::cluster::model::CreateConfig;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

pub const LABEL_CONSTRAINTS: &str = "com.docker.swarm.constraints";
pub const LABEL_AFFINITIES: &str = "com.docker.swarm.affinities";
pub const LABEL_WHITELISTS: &str = "com.docker.swarm.whitelists";
pub const LABEL_RESCHEDULE: &str = "com.docker.swarm.reschedule-policies";
pub const LABEL_SWARM_ID: &str = "com.docker.swarm.id";

#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error(transparent)]
    Expr(#[from] ExprError),
    #[error("invalid label {label}: {detail}")]
    Label { label: &'static str, detail: String },
    #[error("too many reschedule policies")]
    TooManyReschedulePolicies,
    #[error("invalid reschedule policy: {0}")]
    InvalidReschedulePolicy(String),
}

/// What happens to a container when its node fails (`reschedule:…`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Reschedule {
    #[default]
    Off,
    /// Re-created on a healthy node when its node turns Unhealthy or leaves discovery.
    OnNodeFailure,
}

impl Reschedule {
    /// Classic Swarm's rules: at most one policy, `off` or `on-node-failure`.
    fn parse(policies: &[String]) -> Result<Reschedule, RequestError> {
        match policies {
            [] => Ok(Reschedule::Off),
            [p] => match p.as_str() {
                "off" => Ok(Reschedule::Off),
                "on-node-failure" => Ok(Reschedule::OnNodeFailure),
                other => Err(RequestError::InvalidReschedulePolicy(other.to_string())),
            },
            _ => Err(RequestError::TooManyReschedulePolicies),
        }
    }
}

/// Everything the filters and strategies read.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub name: Option<String>,
    pub image: String,
    pub constraints: Vec<Expr>,
    pub affinities: Vec<Expr>,
    pub whitelists: Vec<Expr>,
    /// CPUs to reserve (Swarm's meaning of `CpuShares`).
    pub cpus: i64,
    pub memory: i64,
    pub port_bindings: Vec<PortBinding>,
    pub exposed_ports: Vec<String>,
    pub network_mode: String,
    /// Containers that must be on the same node: `--volumes-from` (`c[:ro]`), `--link`
    /// (`[/]c[:alias]`), as given (the container is the part before `:`), and `--net=container:`.
    pub volumes_from: Vec<String>,
    pub links: Vec<String>,
    pub net_container: Option<String>,
    pub reschedule: Reschedule,
}

/// Reads a label holding a JSON array of strings.
fn label_array(labels: &BTreeMap<String, String>, key: &'static str) -> Result<Vec<String>, RequestError> {
    match labels.get(key).map(String::as_str) {
        None | Some("") => Ok(vec![]),
        Some(s) => serde_json::from_str(s).map_err(|e| RequestError::Label { label: key, detail: e.to_string() }),
    }
}

impl Request {
    /// Parses a create body (`ContainerCreateBody` as JSON), removing the placement entries from
    /// `Env` and writing the merged expression arrays back into `Labels`.
    pub fn from_config(name: Option<&str>, cfg: &mut Value) -> Result<Request, RequestError> {
        if !cfg.is_object() {
            *cfg = json!({});
        }
        let read = CreateConfig::read(cfg);
        let mut constraints = vec![];
        let mut affinities = vec![];
        let mut whitelists = vec![];
        let mut reschedule = vec![];
        let mut kept = Vec::with_capacity(read.env.len());
        for e in read.env {
            if let Some(x) = e.strip_prefix("constraint:") {
                constraints.push(x.to_string());
            } else if let Some(x) = e.strip_prefix("affinity:") {
                affinities.push(x.to_string());
            } else if let Some(x) = e.strip_prefix("whitelist:") {
                whitelists.push(x.to_string());
            } else if let Some(x) = e.strip_prefix("reschedule:") {
                reschedule.push(x.to_string());
            } else {
                kept.push(e);
            }
        }
        let obj = cfg.as_object_mut().expect("made an object above");
        if obj.contains_key("Env") {
            obj.insert("Env".into(), json!(kept));
        }
        // The body is forwarded: labels of any type stay, a non-map `Labels` becomes a map.
        let labels = obj.entry("Labels").or_insert_with(|| json!({}));
        if !labels.is_object() {
            *labels = json!({});
        }
        let labels = labels.as_object_mut().expect("made an object above");
        let mut merge = |key: &'static str, extra: Vec<String>| -> Result<Vec<String>, RequestError> {
            let mut all = label_array(&read.labels, key)?;
            all.extend(extra);
            if !all.is_empty() {
                labels.insert(key.into(), Value::String(serde_json::to_string(&all).unwrap_or_default()));
            }
            Ok(all)
        };
        let constraints = merge(LABEL_CONSTRAINTS, constraints)?;
        let affinities = merge(LABEL_AFFINITIES, affinities)?;
        let whitelists = merge(LABEL_WHITELISTS, whitelists)?;
        let reschedule = Reschedule::parse(&merge(LABEL_RESCHEDULE, reschedule)?)?;

        let hc = read.host_config;
        let port_bindings = PortBinding::all_of(&hc.port_bindings);
        let net_container = hc.network_mode.strip_prefix("container:").map(String::from);
        Ok(Request {
            name: name.filter(|n| !n.is_empty()).map(|n| n.trim_start_matches('/').to_string()),
            image: read.image,
            constraints: super::expr::parse_all(&constraints)?,
            affinities: super::expr::parse_all(&affinities)?,
            whitelists: super::expr::parse_all(&whitelists)?,
            cpus: hc.cpu_shares,
            memory: hc.memory,
            port_bindings,
            exposed_ports: read.exposed_ports.into_keys().collect(),
            network_mode: hc.network_mode,
            volumes_from: hc.volumes_from,
            links: hc.links,
            net_container,
            reschedule,
        })
    }

    /// The reservation a pending create holds on its node.
    pub fn pending_view(&self, id: String) -> ContainerView {
        ContainerView {
            id: id.into(),
            names: self.name.iter().map(|n| Arc::from(n.as_str())).collect(),
            image: self.image.as_str().into(),
            cpus: self.cpus,
            memory: self.memory,
            port_bindings: self.port_bindings.clone(),
            exposed_ports: self.exposed_ports.clone(),
            network_mode: self.network_mode.as_str().into(),
            pending: true,
            ..Default::default()
        }
    }

    /// True when a hard `node==` constraint pins the request.
    pub fn pinned_to_node(&self) -> bool {
        self.constraints.iter().any(|c| c.key_is("node") && !c.negate && !c.soft)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_expressions_move_to_labels() {
        let mut cfg = json!({
            "Image": "busybox",
            "Env": ["A=1", "constraint:node==n1", "affinity:container==~web", "whitelist:node==n1|n2"],
            "Labels": {"com.docker.swarm.constraints": "[\"zone==eu\"]", "x": "y"},
            "HostConfig": {"Memory": 1024, "CpuShares": 2, "PortBindings": {"80/tcp": [{"HostIp": "", "HostPort": "8080"}]},
                           "Links": ["/db:db"], "VolumesFrom": ["data:ro"], "NetworkMode": "container:other"},
            "ExposedPorts": {"80/tcp": {}}
        });
        let r = Request::from_config(Some("/web"), &mut cfg).unwrap();
        assert_eq!(cfg["Env"], json!(["A=1"]));
        assert_eq!(cfg["Labels"][LABEL_CONSTRAINTS], json!("[\"zone==eu\",\"node==n1\"]"));
        assert_eq!(cfg["Labels"][LABEL_AFFINITIES], json!("[\"container==~web\"]"));
        assert_eq!(cfg["Labels"]["x"], json!("y"));
        assert_eq!(r.constraints.len(), 2);
        assert!(r.affinities[0].soft);
        assert_eq!(r.name.as_deref(), Some("web"));
        assert_eq!((r.cpus, r.memory), (2, 1024));
        assert_eq!(r.port_bindings[0].host_port, "8080");
        assert_eq!(r.links, vec!["/db:db"]);
        assert_eq!(r.volumes_from, vec!["data:ro"]);
        assert_eq!(r.net_container.as_deref(), Some("other"));
        assert_eq!(r.exposed_ports, vec!["80/tcp"]);
        assert!(r.pinned_to_node());
    }

    #[test]
    fn bad_expressions_and_labels_are_errors() {
        let mut cfg = json!({"Image": "x", "Env": ["constraint:node=n1"]});
        assert_eq!(Request::from_config(None, &mut cfg).unwrap_err().to_string(), "One of operator ==, != is expected");
        let mut cfg = json!({"Image": "x", "Labels": {"com.docker.swarm.affinities": "nope"}});
        assert!(matches!(Request::from_config(None, &mut cfg), Err(RequestError::Label { .. })));
    }

    #[test]
    fn reschedule_policies() {
        let mut cfg = json!({"Image": "x", "Env": ["reschedule:on-node-failure"]});
        assert_eq!(Request::from_config(None, &mut cfg).unwrap().reschedule, Reschedule::OnNodeFailure);
        assert_eq!(cfg["Labels"][LABEL_RESCHEDULE], json!("[\"on-node-failure\"]"));
        let mut cfg = json!({"Image": "x", "Labels": {LABEL_RESCHEDULE: "[\"off\"]"}});
        assert_eq!(Request::from_config(None, &mut cfg).unwrap().reschedule, Reschedule::Off);
        let mut cfg = json!({"Image": "x", "Env": ["reschedule:on-node-failure"], "Labels": {LABEL_RESCHEDULE: "[\"off\"]"}});
        assert_eq!(Request::from_config(None, &mut cfg).unwrap_err().to_string(), "too many reschedule policies");
        let mut cfg = json!({"Image": "x", "Env": ["reschedule:always"]});
        assert_eq!(Request::from_config(None, &mut cfg).unwrap_err().to_string(), "invalid reschedule policy: always");
    }

    #[test]
    fn minimal_body() {
        let mut cfg = json!({"Image": "busybox"});
        let r = Request::from_config(None, &mut cfg).unwrap();
        assert!(r.constraints.is_empty() && r.name.is_none());
        assert!(cfg.get("Env").is_none());
    }
}
