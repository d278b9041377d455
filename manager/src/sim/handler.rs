//! The simulator's routes: one fallback handler that strips any `/vX.Y` prefix and matches
//! method and path segments.
use super::{err_body, wire, Group, SimContainer, SimNode, SimState};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::sync::broadcast;

#[derive(Clone)]
struct Served {
    node: Arc<SimNode>,
    group: Arc<Group>,
}

pub(super) fn router(node: Arc<SimNode>, group: Arc<Group>) -> Router {
    Router::new().fallback(handle).with_state(Served { node, group })
}

fn err(status: StatusCode, message: String) -> Response {
    (status, Json(err_body(message))).into_response()
}

fn not_found() -> Response {
    err(StatusCode::NOT_FOUND, "page not found".into())
}

fn no_such_container(id: &str) -> Response {
    err(StatusCode::NOT_FOUND, format!("No such container: {id}"))
}

/// Headers Docker sets on every answer (the CLI negotiates its version from `_ping`'s).
fn with_docker_headers(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert("Api-Version", HeaderValue::from_static(apiserve::API_VERSION));
    h.insert("Docker-Experimental", HeaderValue::from_static("false"));
    h.insert("Ostype", HeaderValue::from_static("linux"));
    h.insert("Server", HeaderValue::from_static("Docker/20.10.24 (linux)"));
    r
}

async fn handle(State(s): State<Served>, req: Request) -> Response {
    with_docker_headers(route(s, req).await)
}

async fn route(s: Served, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let (_, path) = crate::api::route::split_version(parts.uri.path());
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let query: HashMap<String, String> =
        parts.uri.query().map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect()).unwrap_or_default();
    let flag = |k: &str| query.get(k).is_some_and(|v| v == "1" || v.eq_ignore_ascii_case("true"));
    let node = &s.node;
    match (parts.method.as_str(), segs.as_slice()) {
        ("GET" | "HEAD", ["_ping"]) => "OK".into_response(),
        ("GET", ["version"]) => Json(wire::version()).into_response(),
        ("GET", ["info"]) => {
            let counts = {
                let st = node.lock();
                let running = st.containers.values().filter(|c| c.state == SimState::Running).count();
                (st.containers.len(), running, st.containers.len() - running)
            };
            Json(wire::info(node, counts, node.event_streams.load(Ordering::Relaxed))).into_response()
        }
        ("GET", ["images", "json"]) => Json(json!([wire::image_row()])).into_response(),
        ("GET", ["images", name @ .., "json"]) if wire::is_image(&name.join("/")) => Json(wire::image_inspect()).into_response(),
        ("GET", ["images", name @ .., "json"]) => err(StatusCode::NOT_FOUND, format!("No such image: {}", name.join("/"))),
        ("GET", ["networks"]) => Json(wire::networks(node)).into_response(),
        ("GET", ["networks", key]) => match wire::find_network(node, key) {
            Some(n) => Json(n).into_response(),
            None => err(StatusCode::NOT_FOUND, format!("network {key} not found")),
        },
        ("GET", ["volumes"]) => Json(json!({"Volumes": [], "Warnings": []})).into_response(),
        ("GET", ["volumes", name]) => err(StatusCode::NOT_FOUND, format!("get {name}: no such volume")),
        ("GET", ["containers", "json"]) => match Filters::parse(query.get("filters").map(String::as_str)) {
            Ok(f) => list(node, &f, flag("all"), flag("size"), query.get("limit").and_then(|l| l.parse().ok())),
            Err(e) => err(StatusCode::BAD_REQUEST, e.to_string()),
        },
        ("POST", ["containers", "create"]) => {
            let Ok(body) = axum::body::to_bytes(body, 16 << 20).await else {
                return err(StatusCode::BAD_REQUEST, "request body too large or unreadable".into());
            };
            let config: Value = match serde_json::from_slice(&body) {
                Ok(v @ Value::Object(_)) => v,
                Ok(_) | Err(_) => return err(StatusCode::BAD_REQUEST, "invalid JSON: the body is not a container config object".into()),
            };
            create(node, query.get("name").map(String::as_str), config)
        }
        ("GET", ["containers", key, "json"]) if node.inspect_gauge.get().is_some() => {
            let g = node.inspect_gauge.get().expect("checked just now").clone();
            g.around(|| container_op(node, "GET", key, &["json"], false)).await
        }
        (m, ["containers", key, rest @ ..]) => container_op(node, m, key, rest, flag("force")),
        ("GET", ["events"]) if node.no_events.load(Ordering::Relaxed) => not_found(),
        ("GET", ["events"]) => events(node.clone()),
        ("GET", ["_sim", "stats"]) => Json(s.group.stats()).into_response(),
        ("POST", ["_sim", "reset"]) => {
            for n in &s.group.nodes {
                n.reset();
            }
            StatusCode::NO_CONTENT.into_response()
        }
        _ => not_found(),
    }
}

/// Why a `filters` query of `GET /containers/json` is refused (dockerd's words).
#[derive(Debug, thiserror::Error)]
enum FilterError {
    #[error("invalid filter: {0}")]
    Json(#[from] serde_json::Error),
    #[error("invalid filter: not an object")]
    NotAnObject,
    #[error("Invalid filter '{0}'")]
    Unknown(String),
    #[error("invalid filter: values of '{0}'")]
    Values(String),
}

/// `filters` of `GET /containers/json`: `id` (prefix), `name` (substring), `status`, `label`
/// (`key` or `key=value`); both `{"k":["v"]}` and the old `{"k":{"v":true}}`.
#[derive(Default)]
struct Filters(HashMap<String, Vec<String>>);

impl Filters {
    fn parse(raw: Option<&str>) -> Result<Filters, FilterError> {
        let Some(raw) = raw.filter(|r| !r.is_empty()) else { return Ok(Filters::default()) };
        let v: Value = serde_json::from_str(raw)?;
        let mut out = HashMap::new();
        for (k, vals) in v.as_object().ok_or(FilterError::NotAnObject)? {
            if !matches!(k.as_str(), "id" | "name" | "status" | "label") {
                return Err(FilterError::Unknown(k.clone()));
            }
            let vals: Vec<String> = match vals {
                Value::Array(a) => a.iter().filter_map(Value::as_str).map(String::from).collect(),
                Value::Object(o) => o.iter().filter(|(_, on)| on.as_bool() == Some(true)).map(|(k, _)| k.clone()).collect(),
                _ => return Err(FilterError::Values(k.clone())),
            };
            out.insert(k.clone(), vals);
        }
        Ok(Filters(out))
    }

    fn any(&self, key: &str, pred: impl Fn(&str) -> bool) -> bool {
        self.0.get(key).is_none_or(|vals| vals.is_empty() || vals.iter().any(|v| pred(v)))
    }

    fn accepts(&self, id: &str, c: &SimContainer) -> bool {
        let labels = c.config.get("Labels");
        self.any("id", |v| id.starts_with(v))
            && self.any("name", |v| c.name.contains(v.trim_start_matches('/')))
            && self.any("status", |v| v == c.state.as_str())
            && self.any("label", |v| {
                let (k, want) = v.split_once('=').map_or((v, None), |(k, w)| (k, Some(w)));
                match labels.and_then(|l| l.get(k)).and_then(Value::as_str) {
                    Some(have) => want.is_none_or(|w| w == have),
                    None => false,
                }
            })
    }
}

fn list(node: &SimNode, f: &Filters, all: bool, size: bool, limit: Option<usize>) -> Response {
    let now = chrono::Utc::now();
    let st = node.lock();
    let explicit_status = f.0.contains_key("status");
    let mut rows: Vec<(&String, &SimContainer)> = st
        .containers
        .iter()
        .filter(|(_, c)| all || explicit_status || c.state == SimState::Running)
        .filter(|(id, c)| f.accepts(id, c))
        .collect();
    // Newest first, as Docker lists them.
    rows.sort_by_key(|r| std::cmp::Reverse(r.1.seq));
    if let Some(n) = limit.filter(|n| *n > 0) {
        rows.truncate(n);
    }
    let out: Vec<Value> = rows.into_iter().map(|(id, c)| wire::ps_row(node, id, c, size, now)).collect();
    drop(st);
    Json(out).into_response()
}

fn create(node: &SimNode, name: Option<&str>, config: Value) -> Response {
    let seq = node.seq.fetch_add(1, Ordering::Relaxed);
    let id = node.new_id(seq);
    let name = match name.map(|n| n.trim_start_matches('/')).filter(|n| !n.is_empty()) {
        Some(n) => n.to_string(),
        None => format!("sim_{}_{seq}", node.name),
    };
    let mut st = node.lock();
    if let Some(other) = st.names.get(&name) {
        return err(StatusCode::CONFLICT, format!("Conflict. The container name \"/{name}\" is already in use by container \"{other}\". You have to remove (or rename) that container to be able to reuse that name."));
    }
    let c = SimContainer {
        name: name.clone(),
        config: Arc::new(config),
        created: chrono::Utc::now(),
        started: None,
        finished: None,
        state: SimState::Created,
        prefilled: None,
        seq,
    };
    st.insert(id.clone(), c);
    drop(st);
    node.event("create", &id, &name, &[]);
    if node.create_without_id.load(Ordering::Relaxed) {
        return (StatusCode::CREATED, Json(json!({"Warnings": []}))).into_response();
    }
    (StatusCode::CREATED, Json(json!({"Id": id, "Warnings": []}))).into_response()
}

fn container_op(node: &SimNode, method: &str, key: &str, rest: &[&str], force: bool) -> Response {
    let mut st = node.lock();
    let Some(id) = st.resolve(key) else { return no_such_container(key) };
    let c = st.containers.get_mut(&id).expect("resolved just now");
    let name = c.name.clone();
    let now = chrono::Utc::now();
    let mut events: Vec<(&str, Vec<(&str, String)>)> = vec![];
    let resp = match (method, rest) {
        ("GET", ["json"]) => Json(wire::inspect(node, &id, c)).into_response(),
        ("POST", ["start"]) if c.state == SimState::Running => StatusCode::NOT_MODIFIED.into_response(),
        ("POST", ["start"]) => {
            (c.state, c.started) = (SimState::Running, Some(now));
            events.push(("start", vec![]));
            StatusCode::NO_CONTENT.into_response()
        }
        ("POST", ["stop" | "kill"]) if c.state != SimState::Running => match rest {
            ["stop"] => StatusCode::NOT_MODIFIED.into_response(),
            _ => err(StatusCode::CONFLICT, format!("Cannot kill container: {key}: Container {id} is not running")),
        },
        ("POST", [op @ ("stop" | "kill")]) => {
            (c.state, c.finished) = (SimState::Exited, Some(now));
            events.push((if *op == "stop" { "stop" } else { "kill" }, vec![]));
            events.push(("die", vec![("exitCode", "0".into())]));
            StatusCode::NO_CONTENT.into_response()
        }
        ("POST", ["restart"]) => {
            if c.state == SimState::Running {
                events.push(("die", vec![("exitCode", "0".into())]));
            }
            (c.state, c.started) = (SimState::Running, Some(now));
            events.push(("start", vec![]));
            events.push(("restart", vec![]));
            StatusCode::NO_CONTENT.into_response()
        }
        ("DELETE", []) if c.state == SimState::Running && !force => err(
            StatusCode::CONFLICT,
            format!("You cannot remove a running container {id}. Stop the container before attempting removal or force remove"),
        ),
        ("DELETE", []) => {
            if c.state == SimState::Running {
                events.push(("kill", vec![]));
                events.push(("die", vec![("exitCode", "137".into())]));
            }
            st.remove(&id);
            events.push(("destroy", vec![]));
            StatusCode::NO_CONTENT.into_response()
        }
        _ => not_found(),
    };
    drop(st);
    for (action, extra) in events {
        node.event(action, &id, &name, &extra);
    }
    resp
}

/// Counts an open `/events` stream while it lives.
struct StreamGuard(Arc<SimNode>);

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0.event_streams.fetch_sub(1, Ordering::Relaxed);
    }
}

fn events(node: Arc<SimNode>) -> Response {
    let rx = node.sender().subscribe();
    node.event_streams.fetch_add(1, Ordering::Relaxed);
    let guard = StreamGuard(node);
    let s = futures_util::stream::unfold((rx, guard), |(mut rx, guard)| async move {
        loop {
            match rx.recv().await {
                Ok(b) => return Some((Ok::<_, std::io::Error>(b), (rx, guard))),
                // A slow reader misses events, as with Docker; the manager's refresh catches up.
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    let mut r = Response::new(Body::from_stream(s));
    r.headers_mut().insert("Content-Type", HeaderValue::from_static("application/json"));
    r
}
