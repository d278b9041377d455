//! A node simulator: the part of the Docker Engine API a manager uses (`/info`, `/version`,
//! container create/inspect/list/start/remove, images, `/events`), with state in memory and no
//! processes. One process can serve thousands of simulated nodes, one loopback port each: for
//! the manager's benchmark and for tests that need no root.
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use bytes::Bytes;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

/// One simulated container (what its inspect needs).
struct SimContainer {
    name: String,
    config: Value,
    created: String,
    running: bool,
}

/// One simulated node.
pub struct SimNode {
    pub name: String,
    pub id: String,
    pub ncpu: i64,
    pub memory: i64,
    pub labels: Vec<String>,
    containers: Mutex<HashMap<String, SimContainer>>,
    events: broadcast::Sender<Bytes>,
    seq: AtomicU64,
    /// Answer `/events` with 404 (the manager then polls): one connection less per node.
    pub no_events: std::sync::atomic::AtomicBool,
}

impl SimNode {
    pub fn new(name: &str, ncpu: i64, memory: i64, labels: &[&str]) -> Arc<SimNode> {
        Arc::new(SimNode {
            name: name.to_string(),
            id: format!("SIM:{name}"),
            ncpu,
            memory,
            labels: labels.iter().map(|l| l.to_string()).collect(),
            containers: Mutex::new(HashMap::new()),
            events: broadcast::channel(256).0,
            seq: AtomicU64::new(0),
            no_events: Default::default(),
        })
    }

    pub fn container_count(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, SimContainer>> {
        self.containers.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn event(&self, action: &str, id: &str, name: &str) {
        let now = chrono::Utc::now();
        let ev = json!({"status": action, "id": id, "from": "busybox", "Type": "container", "Action": action,
            "Actor": {"ID": id, "Attributes": {"name": name, "image": "busybox"}}, "scope": "local",
            "time": now.timestamp(), "timeNano": now.timestamp_nanos_opt().unwrap_or_default()});
        let mut b = serde_json::to_vec(&ev).unwrap_or_default();
        b.push(b'\n');
        let _ = self.events.send(Bytes::from(b));
    }

    fn inspect(&self, id: &str, c: &SimContainer) -> Value {
        let hc = c.config.get("HostConfig").cloned().unwrap_or(json!({}));
        let mut cfg = c.config.clone();
        if let Some(o) = cfg.as_object_mut() {
            o.remove("HostConfig");
            o.remove("NetworkingConfig");
        }
        json!({
            "Id": id, "Name": format!("/{}", c.name), "Created": c.created, "Path": "true", "Args": [],
            "Image": "sha256:5100000000000000000000000000000000000000000000000000000000000000",
            "State": {"Status": if c.running { "running" } else { "created" }, "Running": c.running, "ExitCode": 0,
                      "StartedAt": if c.running { c.created.as_str() } else { "0001-01-01T00:00:00Z" }, "FinishedAt": "0001-01-01T00:00:00Z"},
            "Config": cfg, "HostConfig": hc,
            "NetworkSettings": {"Ports": {}, "Networks": {"bridge": {}}}, "Mounts": [],
        })
    }
}

fn err(status: StatusCode, message: String) -> Response {
    (status, Json(json!({"message": message}))).into_response()
}

async fn handle(State(node): State<Arc<SimNode>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let (_, path) = crate::api::route::split_version(parts.uri.path());
    let segs: Vec<String> = path.trim_matches('/').split('/').map(String::from).collect();
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    let query: HashMap<String, String> =
        parts.uri.query().map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect()).unwrap_or_default();
    match (parts.method.as_str(), segs.as_slice()) {
        ("GET" | "HEAD", ["_ping"]) => "OK".into_response(),
        ("GET", ["version"]) => {
            Json(json!({"Version": "sim-1.0", "ApiVersion": "1.41", "MinAPIVersion": "1.24", "Os": "linux", "Arch": "amd64"}))
                .into_response()
        }
        ("GET", ["info"]) => Json(json!({
            "ID": node.id, "Name": node.name, "NCPU": node.ncpu, "MemTotal": node.memory, "Labels": node.labels,
            "Driver": "sim", "KernelVersion": "6.0-sim", "OperatingSystem": "Simulated Linux", "OSType": "linux",
            "ServerVersion": "sim-1.0", "Containers": node.container_count(),
        }))
        .into_response(),
        ("GET", ["images", "json"]) => Json(json!([{"Id": "sha256:5100000000000000000000000000000000000000000000000000000000000000",
            "RepoTags": ["busybox:latest"], "RepoDigests": [], "Created": 1700000000, "Size": 1000000, "Labels": null, "Containers": -1}]))
        .into_response(),
        ("GET", ["containers", "json"]) => {
            let all = query.get("all").is_some_and(|v| v == "1" || v == "true");
            let rows: Vec<Value> = node
                .lock()
                .iter()
                .filter(|(_, c)| all || c.running)
                .map(|(id, c)| {
                    json!({"Id": id, "Names": [format!("/{}", c.name)], "Image": "busybox",
                    "State": if c.running { "running" } else { "created" }, "Status": "", "Created": 0})
                })
                .collect();
            Json(rows).into_response()
        }
        ("POST", ["containers", "create"]) => {
            let Ok(body) = axum::body::to_bytes(body, 16 << 20).await else { return err(StatusCode::BAD_REQUEST, "body".into()) };
            let config: Value = serde_json::from_slice(&body).unwrap_or(json!({}));
            let n = node.seq.fetch_add(1, Ordering::Relaxed);
            let id = format!("{:016x}{:048x}", rand::random::<u64>(), n);
            let name = query.get("name").cloned().unwrap_or_else(|| format!("sim_{}_{n}", node.name));
            let mut cs = node.lock();
            if let Some((other, _)) = cs.iter().find(|(_, c)| c.name == name) {
                return err(
                    StatusCode::CONFLICT,
                    format!("Conflict. The container name \"/{name}\" is already in use by container \"{other}\"."),
                );
            }
            let created = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
            cs.insert(id.clone(), SimContainer { name: name.clone(), config, created, running: false });
            drop(cs);
            node.event("create", &id, &name);
            (StatusCode::CREATED, Json(json!({"Id": id, "Warnings": []}))).into_response()
        }
        (m, ["containers", id, rest @ ..]) => {
            let mut cs = node.lock();
            let Some(c) = cs.get_mut(*id) else { return err(StatusCode::NOT_FOUND, format!("No such container: {id}")) };
            match (m, rest) {
                ("GET", ["json"]) => Json(node.inspect(id, c)).into_response(),
                ("POST", ["start"]) => {
                    c.running = true;
                    let name = c.name.clone();
                    drop(cs);
                    node.event("start", id, &name);
                    StatusCode::NO_CONTENT.into_response()
                }
                ("DELETE", []) => {
                    let c = cs.remove(*id);
                    drop(cs);
                    node.event("destroy", id, &c.map(|c| c.name).unwrap_or_default());
                    StatusCode::NO_CONTENT.into_response()
                }
                _ => err(StatusCode::NOT_FOUND, "page not found".into()),
            }
        }
        ("GET", ["events"]) if node.no_events.load(Ordering::Relaxed) => err(StatusCode::NOT_FOUND, "page not found".into()),
        ("GET", ["events"]) => {
            let rx = node.events.subscribe();
            let s = futures_util::stream::unfold(rx, |mut rx| async move {
                loop {
                    match rx.recv().await {
                        Ok(b) => return Some((Ok::<_, std::io::Error>(b), rx)),
                        Err(broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(broadcast::error::RecvError::Closed) => return None,
                    }
                }
            });
            Response::new(Body::from_stream(s))
        }
        _ => err(StatusCode::NOT_FOUND, "page not found".into()),
    }
}

/// Serves `nodes` on loopback ports until `shutdown`; returns their addresses.
pub async fn serve(nodes: Vec<Arc<SimNode>>, shutdown: CancellationToken) -> std::io::Result<Vec<String>> {
    let mut addrs = Vec::with_capacity(nodes.len());
    for node in nodes {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        addrs.push(l.local_addr()?.to_string());
        let app = Router::new().fallback(handle).with_state(node);
        let t = shutdown.clone();
        tokio::spawn(async move {
            let _ = axum::serve(l, app).with_graceful_shutdown(t.cancelled_owned()).await;
        });
    }
    Ok(addrs)
}

#[cfg(test)]
mod tests;
