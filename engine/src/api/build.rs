//! `POST /commit`, `POST /build`, `POST /build/prune`, `GET /distribution/{name}/json`: thin handlers over the container
//! service's commit and the build service.
use super::extract::{all_values, pct_decode};
use super::{ApiError, AppState, DockerJson};
use crate::build::output::Output;
use crate::build::{BuildError, BuildOptions, BuildService, RunOptions};
use crate::container::CommitOptions;
use crate::image::import::import_reference;
use axum::body::{Body, Bytes};
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use futures_util::StreamExt;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/commit", post(commit))
        .route("/build", post(build))
        .route("/build/prune", post(prune))
        .route("/distribution/{*rest}", axum::routing::get(distribution))
}

fn unsupported(what: &str) -> ApiError {
    ApiError::bad_request(format!("{what} is not supported by this engine's builder"))
}

fn int(q: &str, k: &str) -> Result<Option<i64>, ApiError> {
    match first(q, k).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => {
            v.parse::<i64>().map(|n| (n != 0).then_some(n)).map_err(|_| ApiError::bad_request(format!("invalid value for {k}: {v:?}")))
        }
    }
}

/// A JSON query value (`labels`, `buildargs`, `cachefrom`...); empty and `null` are `None`.
fn json_param<T: serde::de::DeserializeOwned>(q: &str, k: &str) -> Result<Option<T>, ApiError> {
    match first(q, k).filter(|v| !v.is_empty() && v != "null") {
        None => Ok(None),
        Some(v) => serde_json::from_str(&v).map(Some).map_err(|e| ApiError::bad_request(format!("invalid {k}: {e}"))),
    }
}

/// The query of `POST /build`: every option honoured, or refused by name.
pub fn build_options(q: &str) -> Result<BuildOptions, ApiError> {
    let on = |k: &str| first(q, k).is_some_and(|v| flag(&v));
    let set = |k: &str| first(q, k).filter(|v| !v.is_empty());
    if on("squash") {
        return Err(unsupported("squash"));
    }
    if set("remote").is_some() {
        return Err(unsupported("a remote build context (remote=)"));
    }
    if let Some(v) = set("version").filter(|v| v != "1") {
        return Err(ApiError::bad_request(format!(
            "builder version {v} (BuildKit) is not supported by this engine: use the classic builder (DOCKER_BUILDKIT=0)"
        )));
    }
    if let Some(p) = set("platform") {
        crate::build::steps::check_platform(&p)?;
    }
    for (k, what) in [("cgroupparent", "cgroupparent"), ("outputs", "outputs"), ("session", "session")] {
        if set(k).is_some() {
            return Err(unsupported(what));
        }
    }
    if let Some(i) = set("isolation").filter(|i| i != "default") {
        return Err(unsupported(&format!("isolation {i}")));
    }
    if !all_values(q, "securityopt").iter().all(|v| v.is_empty()) {
        return Err(unsupported("securityopt"));
    }
    for k in ["ulimits", "cachefrom"] {
        if json_param::<Vec<Value>>(q, k)?.is_some_and(|v| !v.is_empty()) {
            return Err(unsupported(k));
        }
    }
    let mut tags = vec![];
    for t in all_values(q, "t").into_iter().filter(|t| !t.is_empty()) {
        let r = import_reference(&t, "").map_err(|e| ApiError::bad_request(format!("invalid tag {t:?}: {e}")))?;
        tags.extend(r);
    }
    let mut extra_hosts = vec![];
    for h in all_values(q, "extrahosts") {
        extra_hosts.extend(h.split(',').map(str::trim).filter(|x| !x.is_empty()).map(String::from));
    }
    Ok(BuildOptions {
        dockerfile: first(q, "dockerfile").unwrap_or_default(),
        tags,
        target: first(q, "target").unwrap_or_default(),
        nocache: on("nocache"),
        pull: on("pull"),
        rm: first(q, "rm").is_none_or(|v| v.is_empty() || flag(&v)),
        forcerm: on("forcerm"),
        quiet: on("q"),
        labels: json_param::<BTreeMap<String, String>>(q, "labels")?.unwrap_or_default(),
        build_args: json_param::<BTreeMap<String, Option<String>>>(q, "buildargs")?.unwrap_or_default(),
        run: RunOptions {
            network_mode: first(q, "networkmode").unwrap_or_default(),
            extra_hosts,
            shm_size: int(q, "shmsize")?,
            memory: int(q, "memory")?,
            memory_swap: int(q, "memswap")?,
            cpu_shares: int(q, "cpushares")?,
            cpu_quota: int(q, "cpuquota")?,
            cpu_period: int(q, "cpuperiod")?,
            cpuset_cpus: set("cpusetcpus"),
            cpuset_mems: set("cpusetmems"),
        },
    })
}

async fn build(State(st): State<AppState>, RawQuery(q): RawQuery, body: Body) -> Result<Response, ApiError> {
    let opts = match build_options(&q.unwrap_or_default()) {
        Ok(o) => o,
        Err(e) => {
            // Read the context first: a client still sending it would see a broken pipe, not the error.
            let mut s = body.into_data_stream();
            while let Some(Ok(_)) = s.next().await {}
            return Err(e);
        }
    };
    let (tmp, _, _) = st.images.spool_stream(body.into_data_stream()).await?;
    let svc = Arc::new(BuildService::new(st.images.clone(), st.containers.clone(), &st.config.data_root));
    let (s2, o2) = (svc.clone(), opts.clone());
    let prepared = tokio::task::spawn_blocking(move || s2.prepare(&tmp, &o2)).await.map_err(|e| ApiError::internal(e.to_string()))??;
    let (out, mut rx) = Output::new(opts.quiet);
    // The image service owns builds (the client may go away): they end with the engine.
    st.images.tasks().spawn_until_shutdown(async move {
        if let Err(e) = svc.build(prepared, opts, &out).await {
            let code = match &e {
                BuildError::RunFailed { code, .. } => Some(*code),
                _ => None,
            };
            tracing::info!(error = %e, "build failed");
            out.error(&e.to_string(), code);
        }
    });
    let stream =
        futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)).map(|v| Ok::<_, std::io::Error>(Bytes::from(format!("{v}\r\n"))));
    let mut r = Body::from_stream(stream).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(r)
}

/// `GET /distribution/{name}/json` (names have slashes: one wildcard, the suffix checked here).
async fn distribution(
    State(st): State<AppState>,
    axum::extract::Path(rest): axum::extract::Path<String>,
    headers: axum::http::HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let name = rest
        .strip_suffix("/json")
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ApiError::not_found(format!("page not found: /distribution/{rest}")))?;
    let creds = headers.get("X-Registry-Auth").and_then(|v| v.to_str().ok()).and_then(crate::image::registry::Credentials::from_header);
    Ok(Json(st.images.distribution(&pct_decode(name), creds).await?))
}

async fn prune(State(st): State<AppState>) -> Result<Json<Value>, ApiError> {
    let svc = BuildService::new(st.images.clone(), st.containers.clone(), &st.config.data_root);
    let (deleted, reclaimed) = svc.prune().await?;
    Ok(Json(json!({ "CachesDeleted": deleted, "SpaceReclaimed": reclaimed })))
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
    let container =
        first(&q, "container").filter(|c| !c.is_empty()).ok_or_else(|| ApiError::bad_request("No container name or ID supplied"))?;
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
