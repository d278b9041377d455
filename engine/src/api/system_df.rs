//! `GET /system/df` and `POST /containers/prune`.
use super::{ApiError, AppState, Params};
use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use std::collections::HashMap;

pub fn routes() -> Router<AppState> {
    Router::new().route("/system/df", get(df)).route("/containers/prune", post(container_prune))
}

async fn container_prune(State(st): State<AppState>, p: Params) -> Result<Json<Value>, ApiError> {
    let (deleted, reclaimed) = st.containers.prune(&p.filters()?).await?;
    let deleted = if deleted.is_empty() { Value::Null } else { json!(deleted) };
    Ok(Json(json!({ "ContainersDeleted": deleted, "SpaceReclaimed": reclaimed })))
}

async fn df(State(st): State<AppState>) -> Result<Json<Value>, ApiError> {
    let images = st.images.list(&Default::default())?;
    let containers = st.containers.clone();
    let volumes = st.volumes.clone();
    let layers_dir = st.images.root().join("layers");
    let out = tokio::task::spawn_blocking(move || {
        let mut sizes: HashMap<String, u64> = HashMap::new();
        for i in &images {
            if let Some(id) = i["Id"].as_str() {
                sizes.insert(id.to_string(), i["Size"].as_u64().unwrap_or(0));
            }
        }
        let ctrs = containers.df_containers(|id| sizes.get(id).copied().unwrap_or(0));
        let mut users: HashMap<String, i64> = HashMap::new();
        for c in &ctrs {
            *users.entry(c["ImageID"].as_str().unwrap_or("").to_string()).or_default() += 1;
        }
        let images: Vec<Value> = images
            .into_iter()
            .map(|mut i| {
                let n = users.get(i["Id"].as_str().unwrap_or("")).copied().unwrap_or(0);
                i["Containers"] = n.into();
                i["SharedSize"] = 0.into();
                i
            })
            .collect();
        json!({
            "LayersSize": crate::image::unpack::du(&layers_dir),
            "Images": images,
            "Containers": ctrs,
            "Volumes": volumes.usage(),
            "BuildCache": [],
            "BuilderSize": 0,
        })
    })
    .await
    .map_err(|e| ApiError::internal(format!("system df failed: {e}")))?;
    Ok(Json(out))
}
