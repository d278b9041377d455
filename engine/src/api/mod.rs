//! The Docker Engine API router: every route also under `/vX.Y/`, Docker's error bodies,
//! lenient query flags (`1`/`true`), JSON bodies with unknown fields ignored.
pub mod archive;
pub mod build;
pub mod containers;
pub mod control;
pub mod error;
pub mod events;
pub mod exec;
pub mod extract;
pub mod hijack;
pub mod images;
pub mod networks;
pub mod swarm_mode;
pub mod system;
pub mod system_df;
pub mod volumes;

use crate::container::ContainerService;
use crate::events::EventBus;
use crate::image::ImageService;
use crate::network::NetworkService;
use crate::EngineConfig;
use axum::extract::Request;
use axum::http::{HeaderValue, Uri};
use axum::Router;
use std::sync::Arc;

pub use error::ApiError;
pub use extract::{DockerJson, Params};

/// Shared state handed to every handler.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<EngineConfig>,
    pub images: Arc<ImageService>,
    pub containers: Arc<ContainerService>,
    pub network: Arc<NetworkService>,
    pub events: EventBus,
    pub volumes: Arc<crate::volume::VolumeService>,
}

/// Builds the full router (without the version-prefix rewrite; see [`strip_version`]).
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(system::routes())
        .merge(images::routes())
        .merge(containers::routes())
        .merge(archive::routes())
        .merge(events::routes())
        .merge(system_df::routes())
        .merge(volumes::routes())
        .merge(networks::routes())
        .merge(exec::routes())
        .merge(control::routes())
        .merge(build::routes())
        .merge(swarm_mode::routes())
        .fallback(not_found)
        .layer(axum::middleware::from_fn(catch_panic))
        .layer(axum::middleware::map_response_with_state(state.clone(), add_server_headers))
        .layer(axum::middleware::from_fn(trace))
        .with_state(state)
}

/// A handler that panics answers 500 with Docker's error body, and the panic is logged; the
/// connection and the engine carry on. (Locks a panic leaves poisoned are taken over by the
/// next user: every `lock()` goes through `PoisonError::into_inner`.)
async fn catch_panic(req: Request, next: axum::middleware::Next) -> axum::response::Response {
    use futures_util::FutureExt;
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    match std::panic::AssertUnwindSafe(next.run(req)).catch_unwind().await {
        Ok(resp) => resp,
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            tracing::error!(%method, %path, panic = %what, "request handler panicked");
            axum::response::IntoResponse::into_response(ApiError::internal(format!(
                "internal error in the engine ({method} {path}): {what}"
            )))
        }
    }
}

async fn trace(req: Request, next: axum::middleware::Next) -> axum::response::Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let started = std::time::Instant::now();
    let resp = next.run(req).await;
    tracing::debug!(%method, %path, status = resp.status().as_u16(), ms = started.elapsed().as_millis() as u64, "request");
    resp
}

async fn add_server_headers(
    axum::extract::State(st): axum::extract::State<AppState>,
    mut resp: axum::response::Response,
) -> axum::response::Response {
    let h = resp.headers_mut();
    h.insert("Api-Version", HeaderValue::from_static(crate::API_VERSION));
    h.insert("Docker-Experimental", HeaderValue::from_static(if st.config.experimental { "true" } else { "false" }));
    h.insert("Ostype", HeaderValue::from_static("linux"));
    if let Ok(v) = HeaderValue::from_str(&format!("Docker/{} (linux)", crate::ENGINE_VERSION)) {
        h.insert("Server", v);
    }
    resp
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::not_found(format!("page not found: {}", uri.path()))
}

/// What of a refused request's body the engine still reads, and for how long: the client then
/// reads the error instead of failing on a broken pipe (a body left unread makes the kernel
/// reset the connection; Go's server drains the same way).
const DRAIN_LIMIT: usize = 1 << 20;
const DRAIN_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Reads and drops what [`DRAIN_LIMIT`] and [`DRAIN_WAIT`] allow of a refused request's body;
/// past them the connection closes after the answer in any case.
async fn drain_body(body: axum::body::Body) {
    let _ = tokio::time::timeout(DRAIN_WAIT, axum::body::to_bytes(body, DRAIN_LIMIT)).await;
}

/// Removes a leading `/vX.Y` from the path, so every route answers under any version prefix.
/// Versions below the minimum get a clear error from the handler of `/_too_old`.
pub fn strip_version(mut req: Request) -> Request {
    let uri = req.uri();
    let path = uri.path();
    if let Some(rest) = path.strip_prefix("/v") {
        let (ver, tail) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let is_ver = !ver.is_empty()
            && ver.split('.').count() == 2
            && ver.split('.').all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
        if is_ver {
            let too_old = version_lt(ver, crate::MIN_API_VERSION);
            let new_path = if too_old { format!("/_too_old/{ver}") } else { tail.to_string() };
            let pq = match uri.query() {
                Some(q) => format!("{new_path}?{q}"),
                None => new_path,
            };
            let mut parts = uri.clone().into_parts();
            if let Ok(p) = pq.parse() {
                parts.path_and_query = Some(p);
                if let Ok(u) = Uri::from_parts(parts) {
                    *req.uri_mut() = u;
                }
            }
        }
    }
    req
}

pub use apiserve::version_lt;

#[cfg(test)]
mod tests {
    use super::*;
    use tower::ServiceExt;

    #[tokio::test]
    async fn a_panicking_handler_answers_500_and_later_requests_work() {
        let lock = Arc::new(std::sync::Mutex::new(0u32));
        let (l1, l2) = (lock.clone(), lock.clone());
        let app = Router::new()
            .route(
                "/boom",
                axum::routing::get(move || async move {
                    let _held = l1.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                    panic!("bad request data");
                    #[allow(unreachable_code)]
                    ""
                }),
            )
            .route(
                "/count",
                axum::routing::get(move || async move {
                    let mut n = l2.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                    *n += 1;
                    n.to_string()
                }),
            )
            .layer(axum::middleware::from_fn(catch_panic));
        let get = |p: &str| Request::builder().uri(p).body(axum::body::Body::empty()).unwrap();
        let resp = app.clone().oneshot(get("/boom")).await.unwrap();
        assert_eq!(resp.status(), axum::http::StatusCode::INTERNAL_SERVER_ERROR);
        let body = axum::body::to_bytes(resp.into_body(), 1 << 16).await.unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert!(v["message"].as_str().unwrap().contains("bad request data"), "{v}");
        assert!(lock.is_poisoned());
        // The lock the panic poisoned serves the next request.
        let resp = app.oneshot(get("/count")).await.unwrap();
        assert_eq!(resp.status(), axum::http::StatusCode::OK);
        assert_eq!(&axum::body::to_bytes(resp.into_body(), 64).await.unwrap()[..], b"1");
    }

    #[test]
    fn strips_versions() {
        let r = |p: &str| strip_version(Request::builder().uri(p).body(axum::body::Body::empty()).unwrap()).uri().to_string();
        assert_eq!(r("/v1.41/containers/json?all=1"), "/containers/json?all=1");
        assert_eq!(r("/v1.50/_ping"), "/_ping");
        assert_eq!(r("/_ping"), "/_ping");
        assert_eq!(r("/v1.12/info"), "/_too_old/1.12");
        assert_eq!(r("/volumes"), "/volumes");
        assert!(version_lt("1.9", "1.24"));
        assert!(!version_lt("1.41", "1.24"));
    }
}
