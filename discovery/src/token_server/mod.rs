//! `swarm token-service`: the hosted discovery service's protocol (see [`crate::token`]) over
//! plain HTTP, both under `/v1` and at the root, with entries expiring after their TTL and
//! clusters kept in a file-backed [`TokenStore`].
pub mod store;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, post};
use axum::{Json, Router};
use std::sync::Arc;
use std::time::Duration;
pub use store::{StoreError, TokenStore};
use tokio_util::sync::CancellationToken;

/// TTL of a registration without `?ttl=` (classic Swarm's default `--ttl`).
pub const DEFAULT_TTL: Duration = Duration::from_secs(180);

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot listen on {addr}: {error}")]
    Listen { addr: String, error: std::io::Error },
    #[error("token service: {0}")]
    Serve(std::io::Error),
}

struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.0.is_server_error() {
            tracing::error!(status = %self.0, "{}", self.1);
        }
        (self.0, format!("{}\n", self.1)).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        let status = match e {
            StoreError::NotFound(_) => StatusCode::NOT_FOUND,
            StoreError::Io { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError(status, e.to_string())
    }
}

type St = State<Arc<TokenStore>>;

async fn create(State(s): St) -> Result<String, ApiError> {
    let token =
        tokio::task::spawn_blocking(move || s.create()).await.map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))??;
    tracing::info!(token = %token, "cluster created");
    Ok(token)
}

#[derive(serde::Deserialize)]
struct TtlQuery {
    ttl: Option<String>,
}

async fn register(State(s): St, Path(token): Path<String>, Query(q): Query<TtlQuery>, body: String) -> Result<&'static str, ApiError> {
    let entry = crate::Entry::parse(body.trim()).map_err(|e| ApiError(StatusCode::BAD_REQUEST, e.to_string()))?;
    let ttl = match q.ttl.as_deref() {
        None => DEFAULT_TTL,
        Some(t) => match t.parse::<u64>() {
            Ok(n) if n > 0 => Duration::from_secs(n),
            _ => return Err(ApiError(StatusCode::BAD_REQUEST, format!("invalid ttl {t:?}: expected a number of seconds above 0"))),
        },
    };
    s.register(&token, &entry.to_string(), ttl)?;
    tracing::debug!(token = %token, entry = %entry, ttl = ttl.as_secs(), "registered");
    Ok("OK")
}

/// Longest `?wait=` of a blocking list.
pub const MAX_WAIT: Duration = Duration::from_secs(600);
/// `?wait=` of a blocking list that gives none.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(60);

#[derive(serde::Deserialize)]
struct ListQuery {
    index: Option<u64>,
    wait: Option<String>,
}

/// `GET /clusters/<token>[?index=N[&wait=30s]]`: the live entries, with the cluster's
/// membership index in [`crate::token::INDEX_HEADER`]. With `index`, a blocking query (as
/// Consul's): the answer waits until the index differs from `N`, or `wait` passes.
async fn list(State(s): St, Path(token): Path<String>, Query(q): Query<ListQuery>) -> Result<Response, ApiError> {
    let wait = match q.wait.as_deref() {
        None => DEFAULT_WAIT,
        Some(w) => crate::duration::parse(w)
            .ok()
            .and_then(|d| d.non_negative())
            .ok_or_else(|| ApiError(StatusCode::BAD_REQUEST, format!("invalid wait {w:?}: expected a duration such as 30s")))?
            .min(MAX_WAIT),
    };
    let deadline = tokio::time::Instant::now() + wait;
    let mut changes = s.changes();
    loop {
        let (entries, index) = s.list_indexed(&token)?;
        let blocked = q.index == Some(index) && tokio::time::Instant::now() < deadline && !s.is_closing();
        if !blocked || tokio::time::timeout_at(deadline, changes.changed()).await.is_err() {
            let mut r = Json(entries).into_response();
            r.headers_mut().insert(crate::token::INDEX_HEADER, index.into());
            return Ok(r);
        }
    }
}

async fn delete_cluster(State(s): St, Path(token): Path<String>) -> Result<&'static str, ApiError> {
    tokio::task::spawn_blocking(move || s.delete(&token))
        .await
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))??;
    Ok("OK")
}

async fn deregister(State(s): St, Path((token, entry)): Path<(String, String)>) -> Result<&'static str, ApiError> {
    let entry = crate::Entry::parse(&entry).map_err(|e| ApiError(StatusCode::BAD_REQUEST, e.to_string()))?;
    s.deregister(&token, &entry.to_string())?;
    tracing::debug!(token = %token, entry = %entry, "deregistered");
    Ok("OK")
}

/// The routes, under `/v1` and at the root (so `token://host:port/<token>` and a base URL
/// ending in `/v1` both work).
pub fn router(store: Arc<TokenStore>) -> Router {
    let api = Router::new()
        .route("/clusters", post(create))
        .route("/clusters/{token}", post(register).get(list).delete(delete_cluster))
        .route("/clusters/{token}/{entry}", delete(deregister));
    Router::new().nest("/v1", api.clone()).merge(api).route("/_ping", axum::routing::get(|| async { "OK" })).with_state(store)
}

/// Serves on `listener` until `stop`, flushing registrations every [`store::FLUSH_EVERY`] and
/// once more at the end.
pub async fn serve(listener: tokio::net::TcpListener, store: Arc<TokenStore>, stop: CancellationToken) -> Result<(), ServerError> {
    let flusher = {
        let (store, stop) = (store.clone(), stop.clone());
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(store::FLUSH_EVERY) => {}
                }
                let s = store.clone();
                match tokio::task::spawn_blocking(move || s.flush()).await {
                    Ok(Err(e)) => tracing::error!(error = %e, "flushing registrations"),
                    Err(e) => tracing::error!(error = %e, "flush task"),
                    Ok(Ok(_)) => {}
                }
            }
        })
    };
    // Blocking lists must not hold the graceful shutdown back for their whole wait.
    let closer = {
        let (store, stop) = (store.clone(), stop.clone());
        tokio::spawn(async move {
            stop.cancelled().await;
            store.close();
        })
    };
    let res = axum::serve(listener, router(store.clone())).with_graceful_shutdown(stop.clone().cancelled_owned()).await;
    closer.abort();
    stop.cancel();
    let _ = flusher.await;
    let flushed = tokio::task::spawn_blocking(move || store.flush()).await.map_err(|e| ServerError::Serve(std::io::Error::other(e)))?;
    flushed?;
    res.map_err(ServerError::Serve)
}

/// Opens the store under `data`, binds `addr` and serves until `stop`.
pub async fn run(addr: &str, data: &std::path::Path, stop: CancellationToken) -> Result<(), ServerError> {
    let store = Arc::new(TokenStore::open(data)?);
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|error| ServerError::Listen { addr: addr.to_string(), error })?;
    let local = listener.local_addr().map(|a| a.to_string()).unwrap_or_else(|_| addr.to_string());
    tracing::info!(addr = %local, data = %data.display(), "token service listening");
    serve(listener, store, stop).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Discovery, Entry, TokenDiscovery};

    #[tokio::test]
    async fn client_and_server_speak_the_protocol() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(TokenStore::open(dir.path()).unwrap());
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let stop = CancellationToken::new();
        let srv = tokio::spawn(serve(l, store, stop.clone()));
        let base = format!("http://{addr}/v1");
        let token = crate::token::create_cluster(&base).await.unwrap();
        let d = TokenDiscovery::new(&base, &token).unwrap();
        let me = Entry::parse("10.1.0.2:2375").unwrap();
        d.register(&me, Duration::from_secs(30)).await.unwrap();
        d.register(&Entry::parse("10.1.0.3:2375").unwrap(), Duration::from_secs(1)).await.unwrap();
        assert_eq!(d.list().await.unwrap().len(), 2);
        // The explicit host form (no /v1) reaches the same cluster.
        let d2 = TokenDiscovery::parse(&format!("{addr}/{token}"), &Default::default()).unwrap();
        assert_eq!(d2.list().await.unwrap().len(), 2);
        // A blocking list at the current index waits for the next change.
        let (set, index) = d.list_indexed(None, Duration::ZERO).await.unwrap();
        let index = index.expect("our service sends its index");
        assert_eq!(set.len(), 2);
        let t0 = std::time::Instant::now();
        let (same, again) = d.list_indexed(Some(index), Duration::from_millis(300)).await.unwrap();
        assert!(t0.elapsed() >= Duration::from_millis(300) && same == set && again == Some(index));
        let waiter = tokio::spawn({
            let d = d.clone();
            async move { d.list_indexed(Some(index), Duration::from_secs(30)).await }
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        let t0 = std::time::Instant::now();
        d.register(&Entry::parse("10.1.0.4:2375").unwrap(), Duration::from_secs(30)).await.unwrap();
        let (grown, newer) = waiter.await.unwrap().unwrap();
        assert!(t0.elapsed() < Duration::from_secs(2) && grown.len() == 3 && newer > Some(index));
        d.deregister(&Entry::parse("10.1.0.4:2375").unwrap()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(1100)).await;
        assert_eq!(d.list().await.unwrap(), vec![me.clone()]);
        d.deregister(&me).await.unwrap();
        assert!(d.list().await.unwrap().is_empty());
        let bad = TokenDiscovery::new(&base, "0000").unwrap();
        let e = bad.list().await.unwrap_err().to_string();
        assert!(e.contains("404") && e.contains("no cluster"), "{e}");
        let resp = reqwest::Client::new().post(format!("{base}/clusters/{token}?ttl=x")).body("10.0.0.1:1").send().await.unwrap();
        assert_eq!(resp.status(), 400);
        let resp = reqwest::Client::new().post(format!("{base}/clusters/{token}?ttl=5")).body("junk").send().await.unwrap();
        assert_eq!(resp.status(), 400);
        d.delete_cluster().await.unwrap();
        assert!(d.list().await.is_err());
        // A blocking list does not hold a shutdown back.
        let d = TokenDiscovery::new(&base, &crate::token::create_cluster(&base).await.unwrap()).unwrap();
        let (_, index) = d.list_indexed(None, Duration::ZERO).await.unwrap();
        let pending = tokio::spawn(async move { d.list_indexed(index, Duration::from_secs(30)).await });
        tokio::time::sleep(Duration::from_millis(100)).await;
        let t0 = std::time::Instant::now();
        stop.cancel();
        srv.await.unwrap().unwrap();
        assert!(t0.elapsed() < Duration::from_secs(5), "shutdown took {:?}", t0.elapsed());
        let _ = pending.await;
        let e = crate::token::create_cluster(&base).await.unwrap_err().to_string();
        assert!(e.contains("cannot reach the token service"), "{e}");
    }
}
