//! `docker cp` (`HEAD|GET|PUT /containers/{id}/archive`), `docker export`, `docker diff`.
use super::{ApiError, AppState, Params};
use crate::container::PathStat;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio::sync::mpsc;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/containers/{id}/archive", get(get_archive).head(head_archive).put(put_archive))
        .route("/containers/{id}/export", get(export))
        .route("/containers/{id}/changes", get(changes))
}

const STAT_HEADER: &str = "X-Docker-Container-Path-Stat";

fn path_param(p: &Params) -> Result<String, ApiError> {
    p.str("path").filter(|s| !s.is_empty()).map(String::from).ok_or_else(|| ApiError::bad_request("path is required"))
}

fn with_stat(mut r: Response, stat: &PathStat) -> Response {
    if let Ok(v) = HeaderValue::from_str(&stat.header_value()) {
        r.headers_mut().insert(STAT_HEADER, v);
    }
    r
}

fn body_of(mut rx: mpsc::Receiver<Bytes>) -> Body {
    Body::from_stream(futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)).map(Ok::<_, std::io::Error>))
}

async fn head_archive(State(st): State<AppState>, Path(id): Path<String>, p: Params) -> Result<Response, ApiError> {
    let stat = st.containers.archive_stat(&id, &path_param(&p)?).await?;
    Ok(with_stat(StatusCode::OK.into_response(), &stat))
}

async fn get_archive(State(st): State<AppState>, Path(id): Path<String>, p: Params) -> Result<Response, ApiError> {
    let (stat, rx) = st.containers.archive_get(&id, &path_param(&p)?).await?;
    let r = ([(header::CONTENT_TYPE, "application/x-tar")], body_of(rx)).into_response();
    Ok(with_stat(r, &stat))
}

async fn put_archive(State(st): State<AppState>, Path(id): Path<String>, p: Params, body: Body) -> Result<StatusCode, ApiError> {
    let path = path_param(&p)?;
    let (tx, rx) = mpsc::channel::<Bytes>(8);
    // Owned by its request: it feeds the request's body to the extraction and ends with it.
    let mut pump = tokio::spawn(async move {
        let mut s = body.into_data_stream();
        let mut tx = Some(tx);
        let mut drained = 0usize;
        while let Some(chunk) = s.next().await {
            let b = match chunk {
                Ok(b) => b,
                Err(e) => {
                    tracing::info!(error = %e, "archive upload aborted");
                    return;
                }
            };
            match &tx {
                Some(t) => {
                    if t.send(b).await.is_err() {
                        tx = None;
                    }
                }
                None => {
                    drained += b.len();
                    if drained > super::DRAIN_LIMIT {
                        return;
                    }
                }
            }
        }
    });
    let res = st.containers.archive_put(&id, &path, p.flag("noOverwriteDirNonDir"), p.flag("copyUIDGID"), rx).await;
    // The rest of the body is read before the answer, on success too: the extraction ends at
    // the archive's end marker, and the client may still be sending what follows it (padding,
    // the chunked body's end). A body left unread closes the connection under the client's
    // write, and `docker cp` then fails with "broken pipe" although the copy was made.
    let _ = tokio::time::timeout(super::DRAIN_WAIT, &mut pump).await;
    pump.abort();
    res?;
    Ok(StatusCode::OK)
}

async fn export(State(st): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let rx = st.containers.export(&id).await?;
    Ok(([(header::CONTENT_TYPE, "application/x-tar")], body_of(rx)).into_response())
}

async fn changes(State(st): State<AppState>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let c = st.containers.changes(&id).await?;
    if c.is_empty() {
        return Ok(Json(Value::Null));
    }
    Ok(Json(json!(c.into_iter().map(|(p, k)| json!({ "Path": p, "Kind": k })).collect::<Vec<_>>())))
}
