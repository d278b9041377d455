//! Container control on the runtime side: update, pause/unpause, rename, top, stats, resize.
use super::{ApiError, AppState, DockerJson, Params};
use crate::container::{StatsOptions, UpdateRequest};
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::StreamExt;
use serde_json::json;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/containers/{id}/update", post(update))
        .route("/containers/{id}/pause", post(pause))
        .route("/containers/{id}/unpause", post(unpause))
        .route("/containers/{id}/rename", post(rename))
        .route("/containers/{id}/top", get(top))
        .route("/containers/{id}/stats", get(stats))
        .route("/containers/{id}/resize", post(super::exec::resize_container))
}

async fn update(
    State(st): State<AppState>,
    Path(id): Path<String>,
    DockerJson(raw): DockerJson<serde_json::Value>,
) -> Result<Json<serde_json::Value>, ApiError> {
    // API 1.41 fields the body type no longer has: refused rather than dropped.
    super::extract::refuse_kernel_memory(&raw, "")?;
    let body: UpdateRequest = serde_json::from_value(raw).map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))?;
    let warnings = st.containers.update(&id, body).await?;
    Ok(Json(json!({ "Warnings": warnings })))
}

async fn pause(State(st): State<AppState>, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    st.containers.pause(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn unpause(State(st): State<AppState>, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    st.containers.unpause(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn rename(State(st): State<AppState>, Path(id): Path<String>, p: Params) -> Result<StatusCode, ApiError> {
    st.containers.rename(&id, p.str("name").unwrap_or("")).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn top(State(st): State<AppState>, Path(id): Path<String>, p: Params) -> Result<Json<serde_json::Value>, ApiError> {
    let (titles, procs) = st.containers.top(&id, p.str("ps_args").unwrap_or("")).await?;
    Ok(Json(json!({ "Titles": titles, "Processes": procs })))
}

/// One JSON document per line; with `stream=0` exactly one.
async fn stats(State(st): State<AppState>, Path(id): Path<String>, p: Params) -> Result<Response, ApiError> {
    let stream = p.str("stream").is_none_or(|_| p.flag("stream"));
    let opts = StatsOptions { stream, one_shot: p.flag("one-shot") };
    let mut rx = st.containers.stats(&id, opts)?;
    let body =
        futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)).map(|v| Ok::<_, std::io::Error>(bytes::Bytes::from(format!("{v}\n"))));
    Ok(([(header::CONTENT_TYPE, "application/json")], Body::from_stream(body)).into_response())
}
