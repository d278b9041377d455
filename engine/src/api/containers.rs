//! Container routes: thin handlers over `ContainerService`.
use super::hijack;
use super::{ApiError, AppState, DockerJson, Params};
use crate::container::{CreateRequest, ListOptions, LogOptions};
use crate::runtime::AttachOpts;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use bollard_stubs::models::ContainerCreateBody;
use futures_util::StreamExt;
use serde_json::json;
use tokio::io::AsyncWriteExt;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/containers/json", get(list))
        .route("/containers/create", post(create))
        .route("/containers/{id}/json", get(inspect))
        .route("/containers/{id}/start", post(start))
        .route("/containers/{id}/stop", post(stop))
        .route("/containers/{id}/restart", post(restart))
        .route("/containers/{id}/kill", post(kill))
        .route("/containers/{id}/wait", post(wait))
        .route("/containers/{id}/attach", post(attach))
        .route("/containers/{id}/logs", get(logs))
        .route("/containers/{id}", delete(remove))
}

async fn list(State(st): State<AppState>, p: Params) -> Result<Json<Vec<serde_json::Value>>, ApiError> {
    let opts = ListOptions { all: p.flag("all"), limit: p.int("limit")?.filter(|l| *l > 0).map(|l| l as usize), filters: p.filters()? };
    Ok(Json(st.containers.list(&opts)?))
}

async fn create(
    State(st): State<AppState>,
    p: Params,
    DockerJson(raw): DockerJson<serde_json::Value>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let name = p.str("name").filter(|n| !n.is_empty()).map(String::from);
    // `MacAddress` of API < 1.44 is not part of the body type.
    let mac_address = raw.get("MacAddress").and_then(|m| m.as_str()).filter(|m| !m.is_empty()).map(String::from);
    crate::container::restart::check_policy_name(&raw)?;
    // API 1.41 fields the body type no longer has: refused rather than dropped.
    super::extract::refuse_kernel_memory(&raw["HostConfig"], "HostConfig.")?;
    let mut raw = raw;
    // The API's StrSlice: a string is a one-element list (not split), as dockerd reads it.
    for key in ["Entrypoint", "Cmd"] {
        if let Some(v) = raw.get_mut(key).filter(|v| v.is_string()) {
            *v = serde_json::Value::Array(vec![v.take()]);
        }
    }
    let body: ContainerCreateBody = serde_json::from_value(raw).map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))?;
    let (id, warnings) = st.containers.create(CreateRequest { name, body, mac_address }).await?;
    Ok((StatusCode::CREATED, Json(json!({ "Id": id, "Warnings": warnings }))))
}

async fn inspect(State(st): State<AppState>, Path(id): Path<String>) -> Result<Json<serde_json::Value>, ApiError> {
    Ok(Json(st.containers.inspect(&id)?))
}

async fn start(State(st): State<AppState>, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    st.containers.start(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn stop(State(st): State<AppState>, Path(id): Path<String>, p: Params) -> Result<StatusCode, ApiError> {
    st.containers.stop(&id, p.int("t")?).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn restart(State(st): State<AppState>, Path(id): Path<String>, p: Params) -> Result<StatusCode, ApiError> {
    st.containers.restart(&id, p.int("t")?).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn kill(State(st): State<AppState>, Path(id): Path<String>, p: Params) -> Result<StatusCode, ApiError> {
    st.containers.kill(&id, p.str("signal").unwrap_or("")).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn remove(State(st): State<AppState>, Path(id): Path<String>, p: Params) -> Result<StatusCode, ApiError> {
    if p.flag("link") {
        return Err(ApiError::bad_request("links are not supported by this engine"));
    }
    st.containers.remove_with(&id, p.flag("force"), p.flag("v")).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Headers go out at once; the body (`{"StatusCode":N,"Error":null}`) when the condition holds.
async fn wait(State(st): State<AppState>, Path(id): Path<String>, p: Params) -> Result<Response, ApiError> {
    let cond = p.str("condition").unwrap_or("").parse()?;
    let fut = st.containers.wait(&id, cond).await?;
    let stream = futures_util::stream::once(async move {
        let g = fut.await;
        let body = json!({ "StatusCode": g.exit_code, "Error": null });
        Ok::<_, std::io::Error>(bytes::Bytes::from(format!("{body}\n")))
    });
    Ok(([(header::CONTENT_TYPE, "application/json")], Body::from_stream(stream)).into_response())
}

async fn logs(State(st): State<AppState>, Path(id): Path<String>, p: Params) -> Result<Response, ApiError> {
    let rec = st.containers.record(&id)?;
    let tail = match p.str("tail") {
        None | Some("") | Some("all") => None,
        Some(t) => match t.parse::<i64>() {
            Ok(n) if n >= 0 => Some(n as usize),
            Ok(_) => None,
            Err(_) => return Err(ApiError::bad_request(format!("invalid value for tail: {t:?}"))),
        },
    };
    let opts = LogOptions {
        stdout: p.flag("stdout"),
        stderr: p.flag("stderr"),
        follow: p.flag("follow"),
        timestamps: p.flag("timestamps"),
        tail,
        since: crate::container::parse_log_ts(p.str("since").unwrap_or(""))?,
        until: crate::container::parse_log_ts(p.str("until").unwrap_or(""))?,
    };
    if !opts.stdout && !opts.stderr {
        return Err(ApiError::bad_request("Bad parameters: you must choose at least one stream"));
    }
    let rx = st.containers.logs(&id, opts)?;
    let stream = tokio_stream_from(rx).map(Ok::<_, std::io::Error>);
    let ctype = if rec.tty() { "application/vnd.docker.raw-stream" } else { "application/vnd.docker.multiplexed-stream" };
    Ok(([(header::CONTENT_TYPE, ctype)], Body::from_stream(stream)).into_response())
}

fn tokio_stream_from<T: Send + 'static>(mut rx: tokio::sync::mpsc::Receiver<T>) -> impl futures_util::Stream<Item = T> {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

async fn attach(State(st): State<AppState>, Path(id): Path<String>, p: Params, req: Request) -> Result<Response, ApiError> {
    if !hijack::wants_upgrade(&req) {
        return Err(ApiError::bad_request("attach needs a connection upgrade (Upgrade: tcp)"));
    }
    if !p.flag("stream") && !p.flag("logs") {
        return Err(ApiError::bad_request("Bad parameters: you must choose at least one stream"));
    }
    let opts = AttachOpts { stdin: p.flag("stdin"), stdout: p.flag("stdout"), stderr: p.flag("stderr") };
    let keys = super::exec::parse_detach_keys(p.str("detachKeys").unwrap_or(""))?;
    let rx = st.containers.attach(&id, opts).await?;
    Ok(hijack::upgrade(req, move |client| async move {
        let Ok(shim) = rx.await else {
            let mut client = client;
            let _ = client.shutdown().await;
            return;
        };
        pipe(client, shim, keys).await;
    }))
}

/// Copies container output to the client until it ends; client input (and its half-close) to
/// the container. The detach keys end the attach (the container keeps running).
async fn pipe(client: hijack::Upgraded, shim: crate::runtime::AttachStream, keys: Vec<u8>) {
    let (cr, mut cw) = tokio::io::split(client);
    let (mut sr, mut sw) = shim.into_split();
    // Owned by its hijacked stream: aborted below when the output ends.
    let mut input = tokio::spawn(async move {
        let end = super::exec::copy_input(cr, &mut sw, keys).await;
        if end == super::exec::InputEnd::Eof {
            let _ = sw.shutdown().await;
            // Keep the write half until output ends, so the shim sees only a half-close.
            std::future::pending::<()>().await;
        }
        (end, sw)
    });
    tokio::select! {
        _ = tokio::io::copy(&mut sr, &mut cw) => {}
        r = &mut input => {
            if let Ok((super::exec::InputEnd::Detached, sw)) = r {
                let _ = cw.shutdown().await;
                // Stay connected to the shim without a reader, as dockerd does: the
                // container's stdin stays open (also with StdinOnce) and its output is dropped.
                // The hijacked connection's task (see `hijack::upgrade`) does this until the
                // shim's stream ends.
                let _ = tokio::io::copy(&mut sr, &mut tokio::io::sink()).await;
                drop(sw);
                return;
            }
            let _ = tokio::io::copy(&mut sr, &mut cw).await;
        }
    }
    let _ = cw.flush().await;
    let _ = cw.shutdown().await;
    input.abort();
}
