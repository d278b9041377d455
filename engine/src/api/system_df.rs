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
    // Layers (diff ids) of every image, for shared sizes.
    let mut layers_of: HashMap<String, Vec<String>> = HashMap::new();
    for i in &images {
        let id = i["Id"].as_str().unwrap_or("").to_string();
        let ins = st.images.inspect(&id)?;
        let diff_ids =
            ins["RootFS"]["Layers"].as_array().map(|a| a.iter().filter_map(|d| d.as_str().map(String::from)).collect()).unwrap_or_default();
        layers_of.insert(id, diff_ids);
    }
    let layer_dirs: HashMap<String, std::path::PathBuf> =
        layers_of.values().flatten().map(|d| (d.clone(), st.images.layer_dir(d))).collect();
    let containers = st.containers.clone();
    let volumes = st.volumes.clone();
    let build_cache = crate::build::cache::Cache::new(st.config.data_root.join("build/cache")).records(&st.images);
    let builder_size: u64 = build_cache.iter().filter_map(|r| r["Size"].as_u64()).sum();
    let out = tokio::task::spawn_blocking(move || {
        let layer_size: HashMap<&String, u64> = layer_dirs.iter().map(|(d, p)| (d, crate::image::unpack::du(p))).collect();
        let mut layer_users: HashMap<&String, usize> = HashMap::new();
        for d in layers_of.values().flatten() {
            *layer_users.entry(d).or_default() += 1;
        }
        let sizes: HashMap<String, u64> =
            images.iter().map(|i| (i["Id"].as_str().unwrap_or("").to_string(), i["Size"].as_u64().unwrap_or(0))).collect();
        let ctrs = containers.df_containers(|id| sizes.get(id).copied().unwrap_or(0));
        let mut users: HashMap<String, i64> = HashMap::new();
        for c in &ctrs {
            *users.entry(c["ImageID"].as_str().unwrap_or("").to_string()).or_default() += 1;
        }
        let images: Vec<Value> = images
            .into_iter()
            .map(|mut i| {
                let id = i["Id"].as_str().unwrap_or("").to_string();
                let shared: u64 = layers_of
                    .get(&id)
                    .into_iter()
                    .flatten()
                    .filter(|d| layer_users.get(d).copied().unwrap_or(0) > 1)
                    .map(|d| layer_size.get(d).copied().unwrap_or(0))
                    .sum();
                i["Containers"] = users.get(&id).copied().unwrap_or(0).into();
                i["SharedSize"] = shared.into();
                i
            })
            .collect();
        json!({
            "LayersSize": layer_size.values().sum::<u64>(),
            "Images": images,
            "Containers": ctrs,
            "Volumes": volumes.usage(),
            "BuildCache": build_cache,
            "BuilderSize": builder_size,
        })
    })
    .await
    .map_err(|e| ApiError::internal(format!("system df failed: {e}")))?;
    Ok(Json(out))
}
