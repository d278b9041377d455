//! `swarm token-service`: the hosted discovery service's protocol (see [`crate::token`]) over
//! HTTPS (or plain HTTP, see [`serve`]), both under `/v1` and at the root, with entries expiring
//! after their TTL and clusters kept in a file-backed [`TokenStore`].
//!
//! Limits, each refused with an error naming it: clusters and entries per cluster
//! ([`StoreLimits`]), the TTL, the request body ([`MAX_BODY`]) and cluster creates per client
//! per minute ([`RateLimiter`]). Tokens are credentials: logs show their first characters only.
pub mod ratelimit;
pub mod serve;
pub mod store;

use crate::token::redact;
use axum::extract::rejection::StringRejection;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, post};
use axum::{Json, Router};
pub use ratelimit::RateLimiter;
pub use serve::{run, serve, serve_with, RunOptions, ServeOptions};
use std::sync::Arc;
use std::time::Duration;
pub use store::{StoreError, StoreLimits, TokenStore};

/// TTL of a registration without `?ttl=` (classic Swarm's default `--ttl`).
pub const DEFAULT_TTL: Duration = Duration::from_secs(180);

/// Longest request body (a registration's `ip:port` or `hostname:port`).
pub const MAX_BODY: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("--tlscert/--tlskey: {0}")]
    Tls(#[from] apiserve::TlsError),
    #[error("cannot listen on {addr}: {error}")]
    Listen { addr: String, error: std::io::Error },
    #[error("token service: serving {addr}: {source}")]
    Serve { addr: String, source: std::io::Error },
    #[error("token service: the final flush of the registrations did not finish: {0}")]
    FlushTask(tokio::task::JoinError),
}

struct ApiError(StatusCode, String, Option<Duration>);

impl ApiError {
    fn new(status: StatusCode, msg: impl Into<String>) -> Self {
        ApiError(status, msg.into(), None)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.0.is_server_error() {
            tracing::error!(status = %self.0, "{}", self.1);
        } else {
            tracing::debug!(status = %self.0, "{}", self.1);
        }
        let mut r = (self.0, format!("{}\n", self.1)).into_response();
        if let Some(wait) = self.2 {
            r.headers_mut().insert(header::RETRY_AFTER, wait.as_secs().max(1).into());
        }
        r
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        let status = match e {
            StoreError::NotFound(_) => StatusCode::NOT_FOUND,
            StoreError::TooManyClusters { .. } | StoreError::TooManyEntries { .. } => StatusCode::FORBIDDEN,
            StoreError::TtlTooLong { .. } => StatusCode::BAD_REQUEST,
            StoreError::Io { .. } | StoreError::Encode { .. } | StoreError::Entropy(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, e.to_string())
    }
}

/// What the handlers share.
pub struct App {
    store: Arc<TokenStore>,
    creates: RateLimiter,
}

type St = State<Arc<App>>;
type Peer = ConnectInfo<std::net::SocketAddr>;

fn join_error(e: tokio::task::JoinError) -> ApiError {
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
}

async fn create(State(app): St, ConnectInfo(peer): Peer) -> Result<String, ApiError> {
    if let Err(wait) = app.creates.take(peer.ip()) {
        let msg = format!(
            "too many cluster creates from {}: the limit is {} per minute per client (swarm token-service --create-rate-limit); retry in {}s",
            peer.ip(),
            app.creates.per_minute(),
            wait.as_secs().max(1)
        );
        tracing::warn!(client = %peer.ip(), "create refused by the rate limit");
        return Err(ApiError(StatusCode::TOO_MANY_REQUESTS, msg, Some(wait)));
    }
    let s = app.store.clone();
    let token = tokio::task::spawn_blocking(move || s.create()).await.map_err(join_error)??;
    tracing::info!(token = %redact(&token), client = %peer.ip(), "cluster created");
    Ok(token)
}

/// The body as text, or an error naming [`MAX_BODY`].
fn body_text(body: Result<String, StringRejection>) -> Result<String, ApiError> {
    body.map_err(|r| match r.status() {
        StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, format!("request body above the token service's limit of {MAX_BODY} bytes"))
        }
        status => ApiError::new(status, r.body_text()),
    })
}

#[derive(serde::Deserialize)]
struct TtlQuery {
    ttl: Option<String>,
}

async fn register(
    State(app): St,
    Path(token): Path<String>,
    Query(q): Query<TtlQuery>,
    body: Result<String, StringRejection>,
) -> Result<&'static str, ApiError> {
    let body = body_text(body)?;
    let entry = crate::Entry::parse(body.trim()).map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.to_string()))?;
    let ttl = match q.ttl.as_deref() {
        None => DEFAULT_TTL,
        Some(t) => match t.parse::<u64>() {
            Ok(n) if n > 0 => Duration::from_secs(n),
            _ => return Err(ApiError::new(StatusCode::BAD_REQUEST, format!("invalid ttl {t:?}: expected a number of seconds above 0"))),
        },
    };
    app.store.register(&token, &entry.to_string(), ttl)?;
    tracing::debug!(token = %redact(&token), entry = %entry, ttl = ttl.as_secs(), "registered");
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
async fn list(State(app): St, Path(token): Path<String>, Query(q): Query<ListQuery>) -> Result<Response, ApiError> {
    let wait = match q.wait.as_deref() {
        None => DEFAULT_WAIT,
        Some(w) => crate::duration::parse(w)
            .ok()
            .and_then(|d| d.non_negative())
            .ok_or_else(|| ApiError::new(StatusCode::BAD_REQUEST, format!("invalid wait {w:?}: expected a duration such as 30s")))?
            .min(MAX_WAIT),
    };
    let s = &app.store;
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

async fn delete_cluster(State(app): St, Path(token): Path<String>) -> Result<&'static str, ApiError> {
    let s = app.store.clone();
    let shown = redact(&token);
    tokio::task::spawn_blocking(move || s.delete(&token)).await.map_err(join_error)??;
    tracing::info!(token = %shown, "cluster deleted");
    Ok("OK")
}

async fn deregister(State(app): St, Path((token, entry)): Path<(String, String)>) -> Result<&'static str, ApiError> {
    let entry = crate::Entry::parse(&entry).map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.to_string()))?;
    app.store.deregister(&token, &entry.to_string())?;
    tracing::debug!(token = %redact(&token), entry = %entry, "deregistered");
    Ok("OK")
}

/// The routes, under `/v1` and at the root (so `token://host:port/<token>` and a base URL
/// ending in `/v1` both work). Requests need [`ConnectInfo`] (the client's address).
pub fn router(store: Arc<TokenStore>, creates_per_minute: u32) -> Router {
    let app = Arc::new(App { store, creates: RateLimiter::new(creates_per_minute) });
    let api = Router::new()
        .route("/clusters", post(create))
        .route("/clusters/{token}", post(register).get(list).delete(delete_cluster))
        .route("/clusters/{token}/{entry}", delete(deregister));
    Router::new()
        .nest("/v1", api.clone())
        .merge(api)
        .route("/_ping", axum::routing::get(|| async { "OK" }))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(app)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Discovery, Entry, TokenDiscovery};
    use tokio_util::sync::CancellationToken;

    #[tokio::test]
    async fn client_and_server_speak_the_protocol() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(TokenStore::open(dir.path()).unwrap());
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let stop = CancellationToken::new();
        let srv = tokio::spawn(serve(l, store, stop.clone()));
        let base = format!("http://{addr}/v1");
        let token = crate::token::create_cluster(&base, None).await.unwrap();
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
        let d = TokenDiscovery::new(&base, &crate::token::create_cluster(&base, None).await.unwrap()).unwrap();
        let (_, index) = d.list_indexed(None, Duration::ZERO).await.unwrap();
        let pending = tokio::spawn(async move { d.list_indexed(index, Duration::from_secs(30)).await });
        tokio::time::sleep(Duration::from_millis(100)).await;
        let t0 = std::time::Instant::now();
        stop.cancel();
        srv.await.unwrap().unwrap();
        assert!(t0.elapsed() < Duration::from_secs(5), "shutdown took {:?}", t0.elapsed());
        let _ = pending.await;
        let e = crate::token::create_cluster(&base, None).await.unwrap_err().to_string();
        assert!(e.contains("cannot reach the token service"), "{e}");
    }
}
