//! Image routes: pull/import (`/images/create`), load, save (`/images/get`), list, and the
//! per-image routes under `/images/{name}/...` (names contain slashes, so one wildcard route
//! dispatches on the suffix).
use super::extract::all_values;
use super::{ApiError, AppState, Params};
use crate::image::import::import_reference;
use crate::image::inspect::ListFilters;
use crate::image::progress::Progress;
use crate::image::reference::{valid_digest, valid_tag, Reference};
use crate::image::registry::Credentials;
use crate::image::{ImageError, ImageService};
use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use std::sync::Arc;
use tokio::sync::mpsc;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/images/json", get(list))
        .route("/images/create", post(create))
        .route("/images/load", post(load))
        .route("/images/get", get(save_many))
        .route("/images/prune", post(prune))
        .route("/images/{*rest}", axum::routing::any(per_image))
}

/// A body of newline-delimited JSON messages (dockerd ends each with `\r\n`).
fn json_stream(rx: mpsc::Receiver<Value>) -> Response {
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        let v = rx.recv().await?;
        Some((Ok::<_, std::io::Error>(Bytes::from(format!("{v}\r\n"))), rx))
    });
    let mut r = Body::from_stream(stream).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

fn json_lines(values: Vec<Value>) -> Response {
    let body: String = values.iter().map(|v| format!("{v}\r\n")).collect();
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

async fn list(State(st): State<AppState>, p: Params) -> Result<Json<Vec<Value>>, ApiError> {
    let mut filters = p.filters()?;
    // Old clients: `filter=busybox` is a reference filter.
    if let Some(f) = p.str("filter").filter(|f| !f.is_empty()) {
        filters.entry("reference".into()).or_default().push(f.to_string());
    }
    let mut f = ListFilters::from_map(&filters)?;
    f.all = p.flag("all");
    Ok(Json(st.images.list(&f)?))
}

async fn create(State(st): State<AppState>, headers: HeaderMap, RawQuery(q): RawQuery, body: Body) -> Result<Response, ApiError> {
    let q = q.unwrap_or_default();
    let p = Params::parse(&q);
    if let Some(from) = p.str("fromImage").filter(|s| !s.is_empty()) {
        let creds = headers.get("X-Registry-Auth").and_then(|v| v.to_str().ok()).and_then(Credentials::from_header);
        let r = pull_reference(from, p.str("tag").unwrap_or(""))?;
        let prepared = st.images.prepare_pull(r, creds).await?;
        let (tx, rx) = mpsc::channel(256);
        st.images.start_pull(prepared, Progress::new(tx));
        return Ok(json_stream(rx));
    }
    if let Some(src) = p.str("fromSrc").filter(|s| !s.is_empty()) {
        if src != "-" {
            return Err(ApiError::bad_request(format!("importing from a URL is not supported: {src}")));
        }
        let name = import_reference(p.str("repo").unwrap_or(""), p.str("tag").unwrap_or(""))?;
        let changes = all_values(&q, "changes");
        let message = p.str("message").unwrap_or("").to_string();
        let (tmp, digest, _) = st.images.spool_stream(body.into_data_stream()).await?;
        let svc = st.images.clone();
        let id = blocking(move || svc.import_published(&tmp, &digest, name.as_ref(), &changes, &message)).await?;
        return Ok(json_lines(vec![json!({ "status": id })]));
    }
    Err(ApiError::bad_request("fromImage or fromSrc is required"))
}

/// `fromImage=NAME[:TAG]` plus `tag=` (a tag or a digest).
fn pull_reference(from: &str, tag: &str) -> Result<Reference, ImageError> {
    let mut r = Reference::parse(from)?;
    if !tag.is_empty() {
        if valid_digest(tag) {
            r.tag = None;
            r.digest = Some(tag.to_string());
        } else if valid_tag(tag) {
            r.tag = Some(tag.to_string());
        } else {
            return Err(ImageError::Invalid(format!("invalid tag format: {tag}")));
        }
    }
    if r.tag.is_none() && r.digest.is_none() {
        r.tag = Some(crate::image::reference::DEFAULT_TAG.into());
    }
    Ok(r)
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T, ImageError> + Send + 'static) -> Result<T, ApiError> {
    // Owned by its request: awaited here.
    tokio::task::spawn_blocking(f).await.map_err(|e| ApiError::internal(format!("image task failed: {e}")))?.map_err(ApiError::from)
}

async fn load(State(st): State<AppState>, body: Body) -> Result<Response, ApiError> {
    let (tmp, _, _) = st.images.spool_stream(body.into_data_stream()).await?;
    let svc = st.images.clone();
    let res = blocking({
        let tmp = tmp.clone();
        move || svc.load_published(&tmp)
    })
    .await;
    let _ = tokio::fs::remove_file(&tmp).await;
    let lines = res?;
    Ok(json_lines(lines.into_iter().map(|l| json!({ "stream": l })).collect()))
}

async fn save_many(State(st): State<AppState>, RawQuery(q): RawQuery) -> Result<Response, ApiError> {
    let names = all_values(&q.unwrap_or_default(), "names");
    save(st.images, names).await
}

/// Streams a docker-archive of `names`.
async fn save(svc: Arc<ImageService>, names: Vec<String>) -> Result<Response, ApiError> {
    let plan = svc.save_published(&names)?;
    let (tx, rx) = mpsc::channel::<Bytes>(16);
    // Owned by its request: it writes the response body and ends when the client goes away.
    tokio::task::spawn_blocking(move || {
        let w = ChannelWriter { tx, buf: Vec::with_capacity(CHUNK) };
        if let Err(e) = svc.write_archive(&plan, w) {
            tracing::warn!(error = %e, "image save aborted");
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        let b = rx.recv().await?;
        Some((Ok::<_, std::io::Error>(b), rx))
    });
    let mut r = Body::from_stream(stream).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/x-tar"));
    Ok(r)
}

const CHUNK: usize = 64 * 1024;

/// A blocking writer feeding a response body.
struct ChannelWriter {
    tx: mpsc::Sender<Bytes>,
    buf: Vec<u8>,
}

impl ChannelWriter {
    fn push(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let b = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx.blocking_send(b).map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client went away"))
    }
}

impl std::io::Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.push()?;
        }
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.push()
    }
}

async fn prune(State(st): State<AppState>, p: Params) -> Result<Json<Value>, ApiError> {
    let f = p.filters()?;
    let all = f.get("dangling").and_then(|v| v.first()).is_some_and(|v| v == "false" || v == "0");
    let svc = st.images.clone();
    let (deleted, reclaimed) = blocking(move || svc.prune_published(all)).await?;
    Ok(Json(json!({ "ImagesDeleted": if deleted.is_empty() { Value::Null } else { json!(deleted) }, "SpaceReclaimed": reclaimed })))
}

/// `/images/{name}/json|history|get|tag|push` and `DELETE /images/{name}`.
async fn per_image(
    State(st): State<AppState>,
    headers: HeaderMap,
    method: Method,
    Path(rest): Path<String>,
    p: Params,
) -> Result<Response, ApiError> {
    let split = |suffix: &str| rest.strip_suffix(suffix).filter(|n| !n.is_empty()).map(String::from);
    if method == Method::DELETE {
        let svc = st.images.clone();
        let (force, prune) = (p.flag("force"), !p.flag("noprune"));
        let records = blocking(move || svc.delete_published(&rest, force, prune)).await?;
        return Ok(Json(records).into_response());
    }
    if method == Method::GET {
        if let Some(name) = split("/json") {
            return Ok(Json(st.images.inspect(&name)?).into_response());
        }
        if let Some(name) = split("/history") {
            return Ok(Json(st.images.history(&name)?).into_response());
        }
        if let Some(name) = split("/get") {
            return save(st.images, vec![name]).await;
        }
    }
    if method == Method::POST {
        if let Some(name) = split("/tag") {
            let (repo, tag) = (p.str("repo").unwrap_or(""), p.str("tag").unwrap_or(""));
            st.images.tag_published(&name, repo, tag)?;
            return Ok(StatusCode::CREATED.into_response());
        }
        if let Some(name) = split("/push") {
            let creds = headers.get("X-Registry-Auth").and_then(|v| v.to_str().ok()).and_then(Credentials::from_header);
            let tag = p.str("tag").unwrap_or("").to_string();
            let full = if tag.is_empty() { name.clone() } else { format!("{name}:{tag}") };
            st.images.resolve_id(&full)?;
            let (tx, rx) = mpsc::channel(256);
            st.images.start_push(name, tag, creds, Progress::new(tx));
            return Ok(json_stream(rx));
        }
    }
    Err(ApiError::not_found(format!("page not found: /images/{rest}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_helpers() {
        assert_eq!(all_values("names=a%3A1&x=1&names=b", "names"), vec!["a:1", "b"]);
        assert_eq!(all_values("changes=CMD+%5B%22sh%22%5D", "changes"), vec!["CMD [\"sh\"]"]);
        let d = format!("sha256:{}", "0".repeat(64));
        assert_eq!(pull_reference("busybox", "").unwrap().familiar(), "busybox:latest");
        assert_eq!(pull_reference("127.0.0.1:5000/busybox", "v1").unwrap().familiar(), "127.0.0.1:5000/busybox:v1");
        assert_eq!(pull_reference("busybox", &d).unwrap().digest, Some(d));
        assert!(pull_reference("busybox", "bad tag").is_err());
        assert!(pull_reference("BAD", "").is_err());
    }
}
