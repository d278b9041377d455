//! Networks and volumes across nodes: listed and inspected from what the manager holds of each
//! node (`cluster/resources.rs`), created and removed on the nodes. Local-scope objects
//! are shown as `node/name`; `node/name` in a request pins it to that node.
use super::containers::parse_filters;
use super::proxy::read_body;
use super::{ApiError, Ctx};
use crate::cluster::engine::Health;
use crate::cluster::model::{Created, NamedBody, Resource};
use crate::cluster::{Cluster, Engine, NodeError};
use axum::extract::Request;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

#[derive(Debug, Clone, Copy)]
pub enum Kind {
    Network,
    Volume,
}

impl Kind {
    fn base(self) -> &'static str {
        match self {
            Kind::Network => "/networks",
            Kind::Volume => "/volumes",
        }
    }
    fn what(self) -> &'static str {
        match self {
            Kind::Network => "network",
            Kind::Volume => "volume",
        }
    }
}

fn healthy(cl: &Cluster) -> Vec<Arc<Engine>> {
    cl.validated().into_iter().filter(|e| e.health() == Health::Healthy).collect()
}

/// `node/name` → (that node, `name`) when the prefix names a node.
fn pinned(cl: &Cluster, id: &str) -> Option<(Arc<Engine>, String)> {
    let (node, name) = id.split_once('/')?;
    cl.engine_named(node).map(|e| (e, name.to_string()))
}

async fn call(cl: &Cluster, e: &Engine, method: Method, path: &str, body: Option<&Value>) -> Result<Value, NodeError> {
    let r = match (method, body) {
        (Method::POST, Some(b)) => e.client.post_json(path, b, HeaderMap::new()).await,
        (Method::GET, _) => e.client.get_json(path).await,
        (m, _) => {
            let r = e.client.send(m, path, HeaderMap::new(), reqwest::Body::from(""), Some(crate::cluster::client::CALL_TIMEOUT)).await;
            match r {
                Ok(resp) => e.client.check(resp).await.map(|_| Value::Null),
                Err(err) => Err(err),
            }
        }
    };
    e.note(cl, &r);
    r
}

/// Docker's `Args.Match`: the value itself, or a regular expression matching it.
fn matches_value(pat: &str, s: &str) -> bool {
    pat == s || regex::Regex::new(pat).map(|re| re.is_match(s)).unwrap_or_else(|_| s.contains(pat))
}

/// Whether a cached network or volume passes the `filters` (the `node` filter aside): values
/// of one key are alternatives, keys all apply, labels all apply. `in_use`: the node's volumes
/// some container refers to.
fn passes(kind: Kind, row: &Resource, f: &BTreeMap<String, Vec<String>>, in_use: &HashSet<String>) -> Result<bool, ApiError> {
    let name = row.name.as_deref().unwrap_or("");
    for (k, vals) in f.iter().filter(|(_, v)| !v.is_empty()) {
        let any = |p: &dyn Fn(&str) -> bool| vals.iter().any(|v| p(v));
        let ok = match (kind, k.as_str()) {
            (_, "name") => any(&|v| matches_value(v, name)),
            (_, "driver") => any(&|v| row.driver.as_deref() == Some(v)),
            (_, "label") => vals.iter().all(|v| row.has_label(v)),
            (Kind::Network, "id") => any(&|v| row.id.as_deref().is_some_and(|id| id.starts_with(v) || matches_value(v, id))),
            (Kind::Network, "scope") => any(&|v| row.scope.as_deref() == Some(v)),
            (Kind::Network, "type") => any(&|v| match v {
                "custom" => !row.is_builtin_network(),
                _ => row.is_builtin_network(),
            }),
            (Kind::Network, "dangling") => any(&|v| matches!(v, "true" | "1") == row.is_dangling_network()),
            (Kind::Volume, "dangling") => any(&|v| matches!(v, "true" | "1") != in_use.contains(name)),
            (_, other) => return Err(ApiError::bad_request(format!("Invalid filter '{other}'"))),
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

/// `GET /networks`, `GET /volumes`: from what the manager holds of every healthy node.
pub async fn list(cl: &Cluster, ctx: &Ctx, kind: Kind) -> Result<Response, ApiError> {
    let mut f = parse_filters(ctx.query.get("filters"))?;
    let nodes = f.remove("node");
    if let Some(bad) = f.get("type").into_iter().flatten().find(|v| *v != "custom" && *v != "builtin") {
        return Err(ApiError::bad_request(format!("invalid filter: 'type'='{bad}'")));
    }
    let mut out: Vec<Value> = vec![];
    // (ID, name) of each row, as shown: a global object held by several nodes is listed once.
    let mut shown: Vec<(Option<String>, Option<String>)> = vec![];
    for e in healthy(cl) {
        let node = e.info();
        if !nodes.as_ref().is_none_or(|ns| ns.iter().any(|n| *n == node.name || *n == node.id)) {
            continue;
        }
        let in_use = match kind {
            Kind::Volume if f.contains_key("dangling") => e.volumes_in_use(),
            _ => HashSet::new(),
        };
        let records = e.with_resources(|r| match kind {
            Kind::Network => r.networks(),
            Kind::Volume => r.volumes(),
        });
        for v in records {
            if !passes(kind, &v, &f, &in_use)? {
                continue;
            }
            if !v.is_local() && shown.iter().any(|(id, name)| *id == v.id && *name == v.name) {
                continue;
            }
            shown.push((v.id.clone(), v.shown_name(&node.name)));
            out.push(v.shown(&node.name, matches!(kind, Kind::Network)));
        }
    }
    Ok(match kind {
        Kind::Network => Json(json!(out)).into_response(),
        Kind::Volume => Json(json!({"Volumes": out, "Warnings": []})).into_response(),
    })
}

fn find(e: &Engine, kind: Kind, id: &str) -> Option<Arc<Resource>> {
    e.with_resources(|r| match kind {
        Kind::Network => r.find_network(id),
        Kind::Volume => r.find_volume(id),
    })
}

/// `GET /networks/{id}`: from what the manager holds; a name (or ID prefix) that several nodes
/// hold as different networks (every node's `bridge`) is ambiguous: `node/name` picks one.
/// `GET /volumes/{name}`: the answer of the node holding it (`node/name`: that node).
pub async fn inspect(cl: &Cluster, _ctx: &Ctx, kind: Kind, id: &str) -> Result<Response, ApiError> {
    let targets: Vec<(Arc<Engine>, String)> = match pinned(cl, id) {
        Some(p) => vec![p],
        None => healthy(cl).into_iter().map(|e| (e, id.to_string())).collect(),
    };
    let mut found: Vec<(Arc<Engine>, String, Arc<Resource>)> = vec![];
    for (e, name) in targets {
        if let Some(v) = find(&e, kind, &name) {
            found.push((e, name, v));
        }
    }
    let Some((e, name, v)) = found.first().cloned() else {
        return Err(ApiError::not_found(format!("No such {}: {id}", kind.what())));
    };
    match kind {
        Kind::Network => {
            let mut ids: Vec<&str> = found.iter().filter_map(|(_, _, v)| v.id.as_deref()).collect();
            ids.sort_unstable();
            ids.dedup();
            if ids.len() > 1 {
                let nodes: Vec<String> = found.iter().map(|(e, _, _)| format!("{}/{id}", e.name())).collect();
                return Err(ApiError::bad_request(format!(
                    "network {id} is ambiguous ({} matches found based on name): name one of {}",
                    ids.len(),
                    nodes.join(", ")
                )));
            }
            Ok(Json(v.shown(&e.name(), false)).into_response())
        }
        Kind::Volume => {
            let v = call(cl, &e, Method::GET, &format!("/volumes/{name}"), None).await?;
            Ok(Json(v).into_response())
        }
    }
}

/// Names of the healthy nodes holding a local-scope network named (or with the ID) `name`;
/// empty when no node has it or it is a global (multi-host) network.
pub fn network_nodes(cl: &Cluster, name: &str) -> Vec<String> {
    let mut out = vec![];
    for e in healthy(cl) {
        let Some(v) = find(&e, Kind::Network, name) else { continue };
        if !v.is_local() {
            return vec![];
        }
        out.push(e.name());
    }
    out
}

/// `POST /networks/create`, `POST /volumes/create`.
pub async fn create(cl: &Cluster, ctx: &Ctx, kind: Kind, req: Request) -> Result<Response, ApiError> {
    let body = read_body(req.into_body(), 1 << 20).await?;
    let mut v: Value = if body.is_empty() {
        json!({})
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))?
    };
    let name = crate::cluster::model::object(&v).and_then(|v| NamedBody::deserialize(v).ok()).unwrap_or_default().name;
    let targets: Vec<Arc<Engine>> = match pinned(cl, &name) {
        Some((e, n)) => {
            if let Some(obj) = v.as_object_mut() {
                obj.insert("Name".into(), json!(n));
            }
            vec![e]
        }
        None => match kind {
            Kind::Network => vec![cl.any_engine()?],
            Kind::Volume => cl.validated(),
        },
    };
    if targets.is_empty() {
        return Err(ApiError::internal("No healthy node available in the cluster"));
    }
    let path = ctx.node_path(&format!("{}/create", kind.base()), true);
    let mut first: Option<Value> = None;
    let mut last_err: Option<NodeError> = None;
    for e in targets {
        match call(cl, &e, Method::POST, &path, Some(&v)).await {
            Ok(r) => {
                // Listed right away, without waiting for the node's event.
                match kind {
                    Kind::Network => {
                        let id = Created::read(&r).id;
                        if !id.is_empty() {
                            let _ = e.refresh_network(cl, &id).await;
                        }
                    }
                    Kind::Volume => e.update_resources(|res| res.put_volume(Resource::read(r.clone()))),
                }
                first.get_or_insert(r);
            }
            Err(err) => last_err = Some(err),
        }
    }
    match (first, last_err) {
        (Some(r), _) => Ok((StatusCode::CREATED, Json(r)).into_response()),
        (None, Some(e)) => Err(e.into()),
        (None, None) => Err(ApiError::internal("No healthy node available in the cluster")),
    }
}

/// Drops a removed network or volume from what the manager holds of `e`.
fn forget(e: &Engine, kind: Kind, name: &str) {
    e.update_resources(|r| match kind {
        Kind::Network => {
            if let Some(id) = r.find_network(name).and_then(|v| v.id.clone()) {
                r.drop_network(&id);
            }
        }
        Kind::Volume => r.drop_volume(name),
    });
}

/// `DELETE /networks/{id}`, `DELETE /volumes/{name}`: on the pinned node, else on every node
/// holding it.
pub async fn remove(cl: &Cluster, ctx: &Ctx, kind: Kind, id: &str) -> Result<Response, ApiError> {
    let targets: Vec<(Arc<Engine>, String)> = match pinned(cl, id) {
        Some(p) => vec![p],
        None => healthy(cl).into_iter().map(|e| (e, id.to_string())).collect(),
    };
    let mut removed = 0;
    let mut err: Option<NodeError> = None;
    for (e, name) in targets {
        match call(cl, &e, Method::DELETE, &ctx.node_path(&format!("{}/{name}", kind.base()), true), None).await {
            Ok(_) => {
                removed += 1;
                forget(&e, kind, &name);
            }
            Err(NodeError::Status { status: 404, .. }) => forget(&e, kind, &name),
            Err(x) => err = Some(x),
        }
    }
    match (removed, err) {
        (0, Some(e)) => Err(e.into()),
        (0, None) => Err(ApiError::not_found(format!("No such {}: {id}", kind.what()))),
        _ => Ok(StatusCode::NO_CONTENT.into_response()),
    }
}
