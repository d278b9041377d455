//! Images across nodes: the union for `docker images`, pulls and loads on every node with
//! per-node progress, tag/rmi wherever the image is, reads from the first node holding it.
use super::containers::parse_filters;
use super::proxy::{fan_out, forward, forward_headers};
use super::{ApiError, Ctx};
use crate::cluster::engine::Health;
use crate::cluster::model::{ImageRow, ProgressLine};
use crate::cluster::{Cluster, Engine, NodeError};
use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

/// `GET /images/json`: images grouped by ID with tags merged; `node` filter; newest first.
pub async fn list(cl: &Cluster, ctx: &Ctx) -> Result<Response, ApiError> {
    let mut f = parse_filters(ctx.query.get("filters"))?;
    let nodes = f.remove("node");
    let engines: Vec<Arc<Engine>> = cl
        .validated()
        .into_iter()
        .filter(|e| {
            let i = e.info();
            nodes.as_ref().is_none_or(|ns| ns.iter().any(|n| *n == i.name || *n == i.id))
        })
        .collect();
    // Other filters (reference, dangling, label…) are the nodes' business: ask them.
    let per_node: Vec<Arc<Vec<Value>>> = if f.is_empty() && !ctx.flag("all") {
        engines.iter().map(|e| e.images()).collect()
    } else {
        let mut q = ctx.query.clone();
        q.insert("filters".into(), serde_json::to_string(&f).unwrap_or_default());
        let path = ctx.node_path(&format!("/images/json?{}", super::encode_query(&q)), false);
        let calls = engines.iter().map(|e| {
            let path = path.clone();
            async move {
                let r = e.client.get_json(&path).await;
                e.note(cl, &r);
                Arc::new(r.ok().and_then(|v| v.as_array().cloned()).unwrap_or_default())
            }
        });
        futures_util::future::join_all(calls).await
    };
    // By ID: the first node's row, with every node's tags and digests.
    let mut by_id: BTreeMap<String, (ImageRow, Value)> = BTreeMap::new();
    for rows in per_node {
        for row in rows.iter() {
            let read = ImageRow::read(row);
            match by_id.get_mut(&read.id) {
                None => {
                    by_id.insert(read.id.clone(), (read, row.clone()));
                }
                Some((have, doc)) => {
                    for (set, more) in [(&mut have.repo_tags, read.repo_tags), (&mut have.repo_digests, read.repo_digests)] {
                        for t in more {
                            if !set.contains(&t) {
                                set.push(t);
                            }
                        }
                    }
                    if let Some(obj) = doc.as_object_mut() {
                        obj.insert("RepoTags".into(), json!(have.repo_tags));
                        obj.insert("RepoDigests".into(), json!(have.repo_digests));
                    }
                }
            }
        }
    }
    let mut out: Vec<(ImageRow, Value)> = by_id.into_values().collect();
    out.sort_by_key(|(row, _)| std::cmp::Reverse(row.created));
    let out: Vec<Value> = out.into_iter().map(|(_, doc)| doc).collect();
    Ok(Json(out).into_response())
}

fn line(v: Value) -> Bytes {
    let mut b = serde_json::to_vec(&v).unwrap_or_default();
    b.push(b'\n');
    Bytes::from(b)
}

/// A streamed JSON-lines answer fed by a channel.
fn stream_response(rx: tokio::sync::mpsc::Receiver<Bytes>) -> Response {
    let s = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|b| (Ok::<_, std::io::Error>(b), rx)) });
    let mut r = Response::new(Body::from_stream(s));
    r.headers_mut().insert("Content-Type", "application/json".parse().expect("static header"));
    r
}

/// `POST /images/create`: pull (`fromImage`) or import (`fromSrc`) on every validated node.
pub async fn create(cl: &Cluster, ctx: &Ctx, req: Request) -> Result<Response, ApiError> {
    let headers = forward_headers(req.headers());
    let engines = cl.validated();
    if engines.is_empty() {
        return Err(ApiError::internal("No healthy node available in the cluster"));
    }
    // An import's archive streams to every node at once, as load's does.
    let mut bodies = if ctx.query.get("fromSrc").is_some_and(|s| s == "-") {
        fan_out(req.into_body(), engines.len())
    } else {
        engines.iter().map(|_| reqwest::Body::from("")).collect()
    };
    let image = match (ctx.query.get("fromImage"), ctx.query.get("tag")) {
        (Some(i), Some(t)) if !t.is_empty() => format!("{i}:{t}"),
        (Some(i), _) => i.clone(),
        (None, _) => ctx.query.get("repo").cloned().unwrap_or_default(),
    };
    let path = ctx.node_path("/images/create", true);
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(64);
    let cl = cl.clone();
    tokio::spawn(async move {
        let tasks = engines.into_iter().map(|e| {
            let body = bodies.pop().unwrap_or_else(|| reqwest::Body::from(""));
            let (tx, headers, path, image, cl) = (tx.clone(), headers.clone(), path.clone(), image.clone(), cl.clone());
            async move {
                let name = e.name();
                let r = e.client.send(Method::POST, &path, headers, body, None).await;
                e.note(&cl, &r);
                let resp = match r {
                    Ok(resp) => e.client.check(resp).await,
                    Err(err) => Err(err),
                };
                let mut failed: Option<String> = None;
                match resp {
                    Ok(resp) => {
                        let mut s = resp.bytes_stream();
                        let mut buf = vec![];
                        while let Some(Ok(chunk)) = s.next().await {
                            buf.extend_from_slice(&chunk);
                            while let Some(nl) = buf.iter().position(|b| *b == b'\n') {
                                let l: Vec<u8> = buf.drain(..=nl).collect();
                                let Ok(p) = serde_json::from_slice::<ProgressLine>(&l) else { continue };
                                if let Some(m) = p.error() {
                                    failed = Some(m.to_string());
                                    continue;
                                }
                                let status = p.status.as_deref().unwrap_or("");
                                let _ = tx.send(line(json!({"status": format!("Pulling {image}... : {status}"), "id": name}))).await;
                            }
                        }
                    }
                    Err(err) => failed = Some(err.to_string()),
                }
                match &failed {
                    None => {
                        let _ = e.refresh_images(&cl).await;
                        let _ = tx.send(line(json!({"status": format!("Pulling {image}... : downloaded"), "id": name}))).await;
                    }
                    Some(m) => {
                        let _ = tx.send(line(json!({"status": format!("Pulling {image}... : {m}"), "id": name}))).await;
                    }
                }
                failed.map(|m| format!("{name}: {m}"))
            }
        });
        let errors: Vec<String> = futures_util::future::join_all(tasks).await.into_iter().flatten().collect();
        if !errors.is_empty() {
            let msg = errors.join("; ");
            let _ = tx.send(line(json!({"error": msg, "errorDetail": {"message": msg}}))).await;
        }
    });
    Ok(stream_response(rx))
}

/// `POST /images/load`: the archive goes to every validated node.
pub async fn load(cl: &Cluster, ctx: &Ctx, req: Request) -> Result<Response, ApiError> {
    let headers = forward_headers(req.headers());
    let engines = cl.validated();
    let bodies = fan_out(req.into_body(), engines.len());
    let path = ctx.node_path("/images/load", true);
    let calls = engines.iter().zip(bodies).map(|(e, body)| {
        let (headers, path) = (headers.clone(), path.clone());
        async move {
            let r = e.client.send(Method::POST, &path, headers, body, None).await;
            e.note(cl, &r);
            let r = match r {
                Ok(resp) => e.client.check(resp).await,
                Err(err) => Err(err),
            };
            let out = match r {
                Ok(resp) => resp.bytes().await.map_err(|x| NodeError::Decode { addr: e.addr.clone(), detail: x.to_string() }),
                Err(err) => Err(err),
            };
            if out.is_ok() {
                let _ = e.refresh_images(cl).await;
            }
            (e.name(), out)
        }
    });
    let results = futures_util::future::join_all(calls).await;
    let mut errors = vec![];
    for (name, r) in results {
        match r {
            Ok(b) => return Ok((StatusCode::OK, [("Content-Type", "application/json")], b).into_response()),
            Err(e) => errors.push(format!("{name}: {e}")),
        }
    }
    Err(ApiError::internal(if errors.is_empty() { "No healthy node available in the cluster".to_string() } else { errors.join("; ") }))
}

fn holders(cl: &Cluster, name: &str) -> Vec<Arc<Engine>> {
    cl.validated().into_iter().filter(|e| e.has_image(name)).collect()
}

/// `POST /images/{name}/tag` on every node holding the image.
pub async fn tag(cl: &Cluster, ctx: &Ctx, name: &str) -> Result<Response, ApiError> {
    let nodes = holders(cl, name);
    if nodes.is_empty() {
        return Err(ApiError::not_found(format!("No such image: {name}")));
    }
    let path = ctx.node_path(&format!("/images/{name}/tag"), true);
    let mut errors = vec![];
    for e in nodes {
        let r =
            e.client.send(Method::POST, &path, HeaderMap::new(), reqwest::Body::from(""), Some(crate::cluster::client::CALL_TIMEOUT)).await;
        e.note(cl, &r);
        let r = match r {
            Ok(resp) => e.client.check(resp).await.map(|_| ()),
            Err(err) => Err(err),
        };
        match r {
            Ok(()) => {
                let _ = e.refresh_images(cl).await;
            }
            Err(err) => errors.push(format!("{}: {err}", e.name())),
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::internal(errors.join("; ")));
    }
    Ok(StatusCode::CREATED.into_response())
}

/// `DELETE /images/{name}` on every node holding it; the answers are concatenated.
pub async fn remove(cl: &Cluster, ctx: &Ctx, name: &str) -> Result<Response, ApiError> {
    let nodes = holders(cl, name);
    if nodes.is_empty() {
        return Err(ApiError::not_found(format!("No such image: {name}")));
    }
    let path = ctx.node_path(&format!("/images/{name}"), true);
    let mut out: Vec<Value> = vec![];
    let mut errors = vec![];
    let mut status = 500;
    for e in nodes {
        let r = e
            .client
            .send(Method::DELETE, &path, HeaderMap::new(), reqwest::Body::from(""), Some(crate::cluster::client::CALL_TIMEOUT))
            .await;
        e.note(cl, &r);
        let r = match r {
            Ok(resp) => e.client.check(resp).await,
            Err(err) => Err(err),
        };
        match r {
            Ok(resp) => {
                let v: Value = resp.json().await.unwrap_or(json!([]));
                for item in v.as_array().into_iter().flatten() {
                    if !out.contains(item) {
                        out.push(item.clone());
                    }
                }
                let _ = e.refresh_images(cl).await;
            }
            Err(err) => {
                status = err.status().unwrap_or(500);
                errors.push(format!("{}: {err}", e.name()));
            }
        }
    }
    if !errors.is_empty() && out.is_empty() {
        return Err(ApiError::new(status, errors.join("; ")));
    }
    Ok(Json(out).into_response())
}

/// Reads of one image (`json`, `history`, `get`, `push`): the first node holding it.
pub async fn on_holder(cl: &Cluster, ctx: &Ctx, name: &str, rest: &str, req: Request) -> Result<Response, ApiError> {
    let mut nodes = holders(cl, name);
    nodes.sort_by_key(|e| e.health() != Health::Healthy);
    let e = nodes.into_iter().next().ok_or_else(|| ApiError::not_found(format!("No such image: {name}")))?;
    forward(cl, &e, req, &ctx.node_path(&format!("/images/{name}{rest}"), true)).await
}

/// `GET /images/get?names=…`: a healthy node holding every named image.
pub async fn save_many(cl: &Cluster, ctx: &Ctx, req: Request) -> Result<Response, ApiError> {
    let names: Vec<&String> = ctx.pairs.iter().filter(|(k, _)| k == "names").map(|(_, v)| v).collect();
    let e =
        cl.validated().into_iter().find(|e| e.health() == Health::Healthy && names.iter().all(|n| e.has_image(n))).ok_or_else(|| {
            let names: Vec<&str> = names.iter().map(|s| s.as_str()).collect();
            ApiError::not_found(format!("Unable to find a healthy engine containing all images: {}", names.join(", ")))
        })?;
    forward(cl, &e, req, &ctx.node_path("/images/get", true)).await
}

/// `POST /build`: on one node chosen by the scheduler (build-arg constraints, cpu/memory). The
/// node's image list is read again before the answer ends, so the built image is known (for
/// `image inspect`, and for creates that follow it to that node) once the client sees the end.
pub async fn build(cl: &Cluster, ctx: &Ctx, req: Request) -> Result<Response, ApiError> {
    let args: BTreeMap<String, String> = match ctx.query.get("buildargs").filter(|a| !a.is_empty()) {
        Some(a) => serde_json::from_str::<BTreeMap<String, Option<String>>>(a)
            .map_err(|e| ApiError::bad_request(format!("invalid buildargs {a:?}: {e}")))?
            .into_iter()
            .map(|(k, v)| (k, v.unwrap_or_default()))
            .collect(),
        None => BTreeMap::new(),
    };
    let num = |k: &str| ctx.query.get(k).and_then(|v| v.parse::<i64>().ok()).unwrap_or(0);
    let e = cl.engine_for_build(&args, num("cpushares"), num("memory"))?;
    tracing::info!(node = %e.name(), "build scheduled");
    let (parts, body) = forward(cl, &e, req, &ctx.node_path("/build", true)).await?.into_parts();
    let cl = cl.clone();
    let refresh = futures_util::stream::once(async move {
        if let Err(err) = e.refresh_images(&cl).await {
            tracing::warn!(node = %e.name(), error = %err, "cannot list images after a build");
        }
    })
    .filter_map(|()| async { None::<Result<Bytes, axum::Error>> });
    Ok(Response::from_parts(parts, Body::from_stream(body.into_data_stream().chain(refresh))))
}
