//! Containers: scheduled create, `docker ps` from the manager's records, and every
//! per-container route sent to the container's node.
use super::proxy::{forward, forward_buffered, hijack, read_body, respond};
use super::route::{Mode, Owner};
use super::{ApiError, Ctx};
use crate::cluster::engine::Health;
use crate::cluster::model::{BindingAddr, ContainerState, Created, EndpointSettings, NetworkMember};
use crate::cluster::ps::PsRecord;
use crate::cluster::Cluster;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};

/// `POST /containers/create?name=`
pub async fn create(cl: &Cluster, ctx: &Ctx, req: Request) -> Result<Response, ApiError> {
    let auth = req.headers().get("X-Registry-Auth").cloned();
    let body = read_body(req.into_body(), 16 << 20).await?;
    let body: Value = if body.is_empty() {
        json!({})
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))?
    };
    let name = ctx.query.get("name").cloned().filter(|n| !n.is_empty());
    let mut body = body;
    place_with_network(cl, &mut body);
    let v = cl.create(name, body, auth).await?;
    Ok((StatusCode::CREATED, Json(json!({"Id": v.id, "Warnings": v.warnings}))).into_response())
}

/// Network modes that name no network object.
fn builtin_network_mode(m: &str) -> bool {
    matches!(m, "" | "default" | "bridge" | "host" | "none") || m.starts_with("container:")
}

/// A container on a local-scope (bridge) network can only be created where that network
/// lives: as classic Swarm does, the node holding it becomes a constraint
/// (`constraint:node==<node>`, kept in the container's constraints label). `node/net` in the
/// endpoint settings (the CLI's `--net node/net`) loses its node prefix like the network mode.
fn place_with_network(cl: &Cluster, body: &mut Value) {
    if !body.is_object() {
        return;
    }
    // Only the network mode and the endpoints' names are read here (as `CreateConfig` reads
    // them: a field of another type is absent), not the whole body.
    let mode = body.pointer("/HostConfig/NetworkMode").and_then(Value::as_str).unwrap_or_default().to_string();
    let endpoints: Vec<String> = match body.pointer("/NetworkingConfig/EndpointsConfig") {
        Some(Value::Object(m)) => m.keys().cloned().collect(),
        _ => vec![],
    };
    // The endpoints' networks, `node/net` keys renamed `net` (in the body too).
    let mut networks = BTreeSet::new();
    for k in endpoints {
        match k.split_once('/').filter(|(n, _)| cl.engine_named(n).is_some()) {
            Some((_, net)) => {
                rename_endpoint(body, &k, net);
                networks.insert(net.to_string());
            }
            None => {
                networks.insert(k);
            }
        }
    }
    let net = if builtin_network_mode(&mode) {
        match networks.into_iter().next() {
            Some(k) if !builtin_network_mode(&k) => k,
            _ => return,
        }
    } else {
        mode
    };
    if net.split_once('/').is_some_and(|(n, _)| cl.engine_named(n).is_some()) {
        return; // `node/net`: the scheduler pins it.
    }
    let nodes = super::resources::network_nodes(cl, &net);
    let expr = match nodes.as_slice() {
        [] => return,
        [one] => format!("constraint:node=={one}"),
        many => format!("constraint:node==/^({})$/", many.iter().map(|n| regex::escape(n)).collect::<Vec<_>>().join("|")),
    };
    tracing::debug!(network = %net, %expr, "placing with the network");
    let Some(obj) = body.as_object_mut() else { return };
    match obj.get_mut("Env").and_then(Value::as_array_mut) {
        Some(env) => env.push(json!(expr)),
        None => {
            obj.insert("Env".into(), json!([expr]));
        }
    }
}

/// Renames an endpoint of a forwarded create body (`NetworkingConfig.EndpointsConfig`).
fn rename_endpoint(body: &mut Value, from: &str, to: &str) {
    let eps = body.get_mut("NetworkingConfig").and_then(|n| n.get_mut("EndpointsConfig")).and_then(Value::as_object_mut);
    if let Some(eps) = eps {
        if let Some(v) = eps.remove(from) {
            eps.insert(to.to_string(), v);
        }
    }
}

/// Docker's `filters` parameter: `{"k":["v"]}` or `{"k":{"v":true}}`.
pub fn parse_filters(raw: Option<&String>) -> Result<BTreeMap<String, Vec<String>>, ApiError> {
    let Some(raw) = raw.filter(|r| !r.is_empty()) else { return Ok(BTreeMap::new()) };
    let v: Value = serde_json::from_str(raw).map_err(|e| ApiError::bad_request(format!("invalid filter: {e}")))?;
    let mut out = BTreeMap::new();
    for (k, vals) in v.as_object().into_iter().flatten() {
        let list: Vec<String> = match vals {
            Value::Array(a) => a.iter().filter_map(Value::as_str).map(String::from).collect(),
            Value::Object(m) => m.keys().cloned().collect(),
            Value::String(s) => vec![s.clone()],
            _ => vec![],
        };
        out.insert(k.clone(), list);
    }
    Ok(out)
}

fn regex_or_substring(pat: &str, s: &str) -> bool {
    regex::Regex::new(pat).map(|re| re.is_match(s)).unwrap_or_else(|_| s.contains(pat))
}

/// `GET /containers/json`: every node's containers, newest first, named `/node/name`.
pub async fn list(cl: &Cluster, ctx: &Ctx) -> Result<Response, ApiError> {
    let f = parse_filters(ctx.query.get("filters"))?;
    // `ps -n N`/`-l` (limit) include stopped containers, as dockerd and classic Swarm do.
    let limit = ctx.query.get("limit").and_then(|l| l.parse::<i64>().ok()).filter(|n| *n > 0);
    let all =
        ctx.flag("all") || limit.is_some() || f.get("status").is_some_and(|s| s.iter().any(|x| x != "running")) || f.contains_key("exited");
    let now = chrono::Utc::now();
    let engines = cl.validated();
    let mut records = Vec::with_capacity(engines.iter().map(|e| e.container_count()).sum());
    for e in &engines {
        let info = std::sync::Arc::new(e.info());
        let healthy = e.health() == Health::Healthy;
        if let Some(nodes) = f.get("node") {
            if !nodes.iter().any(|n| n == &info.name || n == &info.id || regex_or_substring(&format!("^{n}$"), &info.name)) {
                continue;
            }
        }
        e.each_container(|c| {
            if all || (c.running() && healthy) {
                records.push(PsRecord::new(c.clone(), info.clone(), healthy));
            }
        });
    }
    records.retain(|PsRecord { c, node: info, .. }| {
        if f.is_empty() {
            return true;
        }
        let full = format!("/{}/{}", info.name, c.name);
        f.iter().all(|(k, vals)| match k.as_str() {
            "id" => vals.iter().any(|v| c.id().starts_with(v.as_str())),
            "name" => vals.iter().any(|v| regex_or_substring(v, &full)),
            "status" => vals.iter().any(|v| *v == c.state.as_str()),
            "label" => vals.iter().all(|v| match v.split_once('=') {
                Some((k, want)) => c.sched.labels.get(k).is_some_and(|x| x == want),
                None => c.sched.labels.contains_key(v),
            }),
            "exited" => c.state == ContainerState::Exited && vals.iter().any(|v| v.parse::<i64>().ok() == Some(c.exit_code)),
            "ancestor" => vals.iter().any(|v| {
                *c.sched.image == **v
                    || crate::scheduler::node::repo_of(&c.sched.image) == v
                    || (v.len() >= 12 && c.sched.image_id.trim_start_matches("sha256:").starts_with(v.trim_start_matches("sha256:")))
            }),
            "health" => vals.iter().any(|v| c.health.as_deref().unwrap_or("none") == v),
            // By network name (the node's local name) or ID prefix, as dockerd.
            "network" => vals.iter().any(|v| {
                let v = v.split_once('/').filter(|(n, _)| *n == info.name).map_or(v.as_str(), |(_, x)| x);
                EndpointSettings::read_all(&c.networks.value())
                    .iter()
                    .any(|(name, s)| name == v || (!v.is_empty() && s.network_id.starts_with(v)))
            }),
            _ => true,
        })
    });
    records.sort_by_key(|r| std::cmp::Reverse(r.created));
    if let Some(n) = limit {
        records.truncate(n as usize);
    }
    let body = axum::body::Body::from_stream(crate::cluster::ps::ps_stream(records, now));
    Ok(([(axum::http::header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// Routes sent to one node: the container's, the exec's, or the commit source's.
pub async fn proxied(cl: &Cluster, ctx: &Ctx, to: Owner, mode: Mode, req: Request) -> Result<Response, ApiError> {
    let (engine, id, path) = match &to {
        Owner::Container { id, rest } => {
            let (e, c) = cl.lookup(id)?;
            if rest == "/rename" {
                check_new_name(cl, ctx)?;
            }
            let path = format!("/containers/{}{rest}", c.id());
            (e, Some(c.id().to_string()), path)
        }
        Owner::Exec { id, rest } => (cl.exec_owner(id)?, None, format!("/exec/{id}{rest}")),
        Owner::CommitSource => {
            let cid = ctx.query.get("container").cloned().unwrap_or_default();
            let (e, c) = cl.lookup(&cid)?;
            let mut q = ctx.query.clone();
            q.insert("container".into(), c.id().to_string());
            (e, None, format!("/commit?{}", super::encode_query(&q)))
        }
        _ => return Err(ApiError::internal("not a container route")),
    };
    let pq = ctx.node_path(&path, !matches!(to, Owner::CommitSource));
    match mode {
        Mode::Hijack => hijack(cl, &engine, req, &pq).await,
        Mode::Plain => forward(cl, &engine, req, &pq).await,
        Mode::RefreshImages => {
            let (s, h, b) = forward_buffered(cl, &engine, req, &pq).await?;
            let _ = engine.refresh_images(cl).await;
            Ok(respond(s, &h, b))
        }
        Mode::Refresh if path.ends_with("/wait") => {
            // Clients need the headers at once (they start the container after); the record is
            // refreshed when the wait ends.
            let resp = forward(cl, &engine, req, &pq).await?;
            let (parts, body) = resp.into_parts();
            let (cl, id) = (cl.clone(), id.unwrap_or_default());
            let after = futures_util::stream::once(async move {
                let _ = engine.refresh_container(&cl, &id).await;
            })
            .filter_map(|_| async { None::<Result<bytes::Bytes, axum::Error>> });
            Ok(Response::from_parts(parts, axum::body::Body::from_stream(body.into_data_stream().chain(after))))
        }
        Mode::Refresh => {
            let (s, h, b) = forward_buffered(cl, &engine, req, &pq).await?;
            if let Some(id) = &id {
                let _ = engine.refresh_container(cl, id).await;
            }
            Ok(respond(s, &h, b))
        }
        Mode::Remove => {
            let (s, h, b) = forward_buffered(cl, &engine, req, &pq).await?;
            if s.is_success() {
                if let Some(id) = &id {
                    engine.remove(id);
                }
            }
            Ok(respond(s, &h, b))
        }
        Mode::ExecCreate => {
            let (s, h, b) = forward_buffered(cl, &engine, req, &pq).await?;
            if s.is_success() {
                if let Some(eid) = serde_json::from_slice::<Created>(&b).ok().map(|v| v.id).filter(|id| !id.is_empty()) {
                    cl.record_exec(&eid, &engine.addr);
                }
            }
            Ok(respond(s, &h, b))
        }
        Mode::Inspect => {
            if engine.health() != Health::Healthy {
                return Err(ApiError::internal(format!(
                    "Container {} is on node {}, which is unhealthy",
                    id.unwrap_or_default(),
                    engine.name()
                )));
            }
            let (s, h, b) = forward_buffered(cl, &engine, req, &pq).await?;
            if !s.is_success() {
                return Ok(respond(s, &h, b));
            }
            let mut v: Value = serde_json::from_slice(&b).map_err(|e| ApiError::internal(format!("node answer: {e}")))?;
            let info = engine.info();
            let sum = engine.summary(cl);
            let labels: serde_json::Map<String, Value> = info.labels.iter().map(|(k, x)| (k.clone(), json!(x))).collect();
            let node = json!({"ID": info.id, "IP": info.ip, "Addr": engine.addr, "Name": info.name,
                "Cpus": sum.total_cpus, "Memory": sum.total_memory, "Labels": labels});
            let Some(obj) = v.as_object_mut() else { return Ok(Json(v).into_response()) };
            obj.insert("Node".into(), node);
            // Bindings on every address are shown on the node's.
            let ports = obj.get_mut("NetworkSettings").and_then(|n| n.get_mut("Ports")).and_then(Value::as_object_mut);
            for b in ports.into_iter().flat_map(|p| p.values_mut()).filter_map(Value::as_array_mut).flatten() {
                let unbound = BindingAddr::deserialize(&*b).is_ok_and(|h| matches!(h.host_ip.as_deref(), Some("" | "0.0.0.0")));
                if let (true, Some(b)) = (unbound, b.as_object_mut()) {
                    b.insert("HostIp".into(), json!(info.ip));
                }
            }
            Ok(Json(v).into_response())
        }
    }
}

/// `POST /containers/{id}/rename?name=`: names are unique in the whole cluster, as a create's.
fn check_new_name(cl: &Cluster, ctx: &Ctx) -> Result<(), ApiError> {
    let name = ctx.query.get("name").map(|n| n.trim_start_matches('/')).unwrap_or("");
    match cl.name_owner(name) {
        Some(id) if !name.is_empty() => Err(crate::cluster::ClusterError::NameInUse { name: name.to_string(), id }.into()),
        _ => Ok(()),
    }
}

/// `POST /networks/{id}/connect|disconnect`: the node of the container named in the body.
pub async fn network_member(cl: &Cluster, ctx: &Ctx, id: &str, rest: &str, req: Request) -> Result<Response, ApiError> {
    let (parts, body) = req.into_parts();
    let body = read_body(body, 1 << 20).await?;
    let v: Value = serde_json::from_slice(&body).map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))?;
    let mut member = NetworkMember::deserialize(v).unwrap_or_default();
    let (engine, c) = cl.lookup(&member.container)?;
    member.container = c.id().to_string();
    let net = id.split_once('/').filter(|(n, _)| *n == engine.name()).map_or(id, |(_, x)| x);
    let pq = ctx.node_path(&format!("/networks/{net}{rest}"), true);
    let data = serde_json::to_vec(&member).unwrap_or_default();
    let mut req = Request::from_parts(parts, axum::body::Body::from(data.clone()));
    req.headers_mut().insert(axum::http::header::CONTENT_LENGTH, data.len().into());
    forward(cl, &engine, req, &pq).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_modes_naming_no_network() {
        for m in ["", "default", "bridge", "host", "none", "container:web"] {
            assert!(builtin_network_mode(m), "{m}");
        }
        for m in ["proj_default", "node-1/net", "0123456789ab"] {
            assert!(!builtin_network_mode(m), "{m}");
        }
    }
}
