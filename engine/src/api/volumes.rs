//! Volume routes: thin handlers over `VolumeService`.
use super::{ApiError, AppState, DockerJson, Params};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/volumes", get(list))
        .route("/volumes/create", post(create))
        .route("/volumes/prune", post(prune))
        .route("/volumes/{name}", get(inspect).delete(remove))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct CreateBody {
    #[serde(rename = "Name")]
    name: Option<String>,
    #[serde(rename = "Driver")]
    driver: Option<String>,
    #[serde(rename = "DriverOpts")]
    driver_opts: Option<BTreeMap<String, String>>,
    #[serde(rename = "Labels")]
    labels: Option<BTreeMap<String, String>>,
}

async fn list(State(st): State<AppState>, p: Params) -> Result<Json<Value>, ApiError> {
    let vols = st.volumes.list(&p.filters()?)?;
    let rows: Vec<Value> = vols.iter().map(|v| st.volumes.to_json(v)).collect();
    Ok(Json(json!({ "Volumes": rows, "Warnings": null })))
}

async fn create(State(st): State<AppState>, DockerJson(b): DockerJson<CreateBody>) -> Result<(StatusCode, Json<Value>), ApiError> {
    let v = st.volumes.create(b.name.as_deref(), b.driver.as_deref(), b.labels.unwrap_or_default(), b.driver_opts.unwrap_or_default())?;
    Ok((StatusCode::CREATED, Json(st.volumes.to_json(&v))))
}

async fn inspect(State(st): State<AppState>, Path(name): Path<String>) -> Result<Json<Value>, ApiError> {
    Ok(Json(st.volumes.to_json(&st.volumes.get(&name)?)))
}

async fn remove(State(st): State<AppState>, Path(name): Path<String>, p: Params) -> Result<StatusCode, ApiError> {
    st.volumes.remove(&name, p.flag("force"))?;
    Ok(StatusCode::NO_CONTENT)
}

async fn prune(State(st): State<AppState>, p: Params) -> Result<Json<Value>, ApiError> {
    let filters = p.filters()?;
    let svc = st.volumes.clone();
    let (deleted, reclaimed) = tokio::task::spawn_blocking(move || svc.prune(&filters))
        .await
        .map_err(|e| ApiError::internal(format!("volume prune failed: {e}")))??;
    let deleted = if deleted.is_empty() { Value::Null } else { json!(deleted) };
    Ok(Json(json!({ "VolumesDeleted": deleted, "SpaceReclaimed": reclaimed })))
}
