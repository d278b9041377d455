//! Networks and volumes across nodes, asked from the nodes when needed. Local-scope objects
//! are shown as `node/name`; `node/name` in a request pins it to that node.
use super::containers::parse_filters;
use super::proxy::read_body;
use super::{ApiError, Ctx};
use crate::cluster::engine::Health;
use crate::cluster::{Cluster, Engine, NodeError};
use axum::extract::Request;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
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
    fn rows(self, v: Value) -> Vec<Value> {
        match self {
            Kind::Network => v.as_array().cloned().unwrap_or_default(),
            Kind::Volume => v["Volumes"].as_array().cloned().unwrap_or_default(),
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

fn local_name(row: &mut Value, node: &str) {
    let local = row["Scope"].as_str().is_none_or(|s| s == "local");
    if local {
        if let Some(n) = row["Name"].as_str() {
            row["Name"] = json!(format!("{node}/{n}"));
        }
    }
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

/// `GET /networks`, `GET /volumes`.
pub async fn list(cl: &Cluster, ctx: &Ctx, kind: Kind) -> Result<Response, ApiError> {
    let mut f = parse_filters(ctx.query.get("filters"))?;
    let nodes = f.remove("node");
    let mut q = ctx.query.clone();
    if f.is_empty() {
        q.remove("filters");
    } else {
        q.insert("filters".into(), serde_json::to_string(&f).unwrap_or_default());
    }
    let path = ctx.node_path(&format!("{}?{}", kind.base(), super::encode_query(&q)), false);
    let engines: Vec<_> = healthy(cl)
        .into_iter()
        .filter(|e| {
            let i = e.info();
            nodes.as_ref().is_none_or(|ns| ns.iter().any(|n| *n == i.name || *n == i.id))
        })
        .collect();
    let calls = engines.iter().map(|e| {
        let path = path.clone();
        async move { (e.name(), call(cl, e, Method::GET, &path, None).await) }
    });
    let mut out: Vec<Value> = vec![];
    for (node, r) in futures_util::future::join_all(calls).await {
        let Ok(v) = r else { continue };
        for mut row in kind.rows(v) {
            let global = row["Scope"].as_str().is_some_and(|s| s != "local");
            if global && out.iter().any(|o| o["Id"] == row["Id"] && o["Name"] == row["Name"]) {
                continue;
            }
            local_name(&mut row, &node);
            out.push(row);
        }
    }
    Ok(match kind {
        Kind::Network => Json(json!(out)).into_response(),
        Kind::Volume => Json(json!({"Volumes": out, "Warnings": []})).into_response(),
    })
}

/// `GET /networks/{id}`, `GET /volumes/{name}`.
pub async fn inspect(cl: &Cluster, ctx: &Ctx, kind: Kind, id: &str) -> Result<Response, ApiError> {
    let targets: Vec<(Arc<Engine>, String)> = match pinned(cl, id) {
        Some(p) => vec![p],
        None => healthy(cl).into_iter().map(|e| (e, id.to_string())).collect(),
    };
    for (e, name) in targets {
        if let Ok(mut v) = call(cl, &e, Method::GET, &ctx.node_path(&format!("{}/{name}", kind.base()), true), None).await {
            local_name(&mut v, &e.name());
            return Ok(Json(v).into_response());
        }
    }
    Err(ApiError::not_found(format!("No such {}: {id}", kind.what())))
}

/// Names of the healthy nodes holding a local-scope network named (or with the ID) `name`;
/// empty when no node has it or it is a global (multi-host) network.
pub async fn network_nodes(cl: &Cluster, ctx: &Ctx, name: &str) -> Vec<String> {
    let path = ctx.node_path(&format!("/networks/{name}"), false);
    let engines = healthy(cl);
    let calls = engines.iter().map(|e| {
        let path = path.clone();
        async move { (e.name(), call(cl, e, Method::GET, &path, None).await) }
    });
    let mut out = vec![];
    for (node, r) in futures_util::future::join_all(calls).await {
        let Ok(v) = r else { continue };
        if v["Scope"].as_str().is_some_and(|s| s != "local") {
            return vec![];
        }
        out.push(node);
    }
    out
}

/// `POST /networks/create`, `POST /volumes/create`.
pub async fn create(cl: &Cluster, ctx: &Ctx, kind: Kind, req: Request) -> Result<Response, ApiError> {
    let body = read_body(req.into_body(), 1 << 20).await?;
    let mut v: Value = if body.is_empty() { json!({}) } else { serde_json::from_slice(&body).map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))? };
    let name = v["Name"].as_str().unwrap_or("").to_string();
    let targets: Vec<Arc<Engine>> = match pinned(cl, &name) {
        Some((e, n)) => {
            v["Name"] = json!(n);
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
            Ok(_) => removed += 1,
            Err(NodeError::Status { status: 404, .. }) => {}
            Err(x) => err = Some(x),
        }
    }
    match (removed, err) {
        (0, Some(e)) => Err(e.into()),
        (0, None) => Err(ApiError::not_found(format!("No such {}: {id}", kind.what()))),
        _ => Ok(StatusCode::NO_CONTENT.into_response()),
    }
}
