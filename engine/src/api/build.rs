//! `POST /commit`, `POST /build`, `POST /build/prune`: thin handlers over the container
//! service's commit and the build service.
use super::extract::pct_decode;
use super::{ApiError, AppState, DockerJson};
use crate::container::CommitOptions;
use crate::image::import::import_reference;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Map, Value};

pub fn routes() -> Router<AppState> {
    Router::new().route("/commit", post(commit))
}

/// Every value of `key` in a raw query (`changes=a&changes=b`), decoded.
pub fn all_values(query: &str, key: &str) -> Vec<String> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('=').or(Some((kv, ""))))
        .filter(|(k, _)| pct_decode(k) == key)
        .map(|(_, v)| pct_decode(v))
        .collect()
}

fn first(query: &str, key: &str) -> Option<String> {
    all_values(query, key).into_iter().next()
}

fn flag(v: &str) -> bool {
    matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes")
}

async fn commit(
    State(st): State<AppState>,
    RawQuery(q): RawQuery,
    DockerJson(body): DockerJson<Option<Map<String, Value>>>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let q = q.unwrap_or_default();
    let container = first(&q, "container").filter(|c| !c.is_empty()).ok_or_else(|| ApiError::bad_request("No container name or ID supplied"))?;
    let reference = import_reference(&first(&q, "repo").unwrap_or_default(), &first(&q, "tag").unwrap_or_default())?;
    // Every change is one instruction; a value may also hold several lines (docker-py joins them).
    let changes = all_values(&q, "changes").iter().flat_map(|c| c.lines().map(String::from).collect::<Vec<_>>()).collect();
    let opts = CommitOptions {
        reference,
        author: first(&q, "author").unwrap_or_default(),
        comment: first(&q, "comment").unwrap_or_default(),
        changes,
        pause: first(&q, "pause").is_none_or(|p| p.is_empty() || flag(&p)),
        config: body.filter(|m| !m.is_empty()),
    };
    let id = st.containers.commit(&container, opts).await?;
    Ok((StatusCode::CREATED, Json(json!({ "Id": id }))))
}
