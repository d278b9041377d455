//! The manager's Docker API: one handler classifies each request with [`route::route`] and
//! hands it to the module that answers that kind of route.
pub mod containers;
pub mod error;
pub mod images;
pub mod proxy;
pub mod resources;
pub mod route;
pub mod server;
pub mod system;

pub use error::ApiError;

use crate::cluster::Cluster;
use crate::ha::Target;
use axum::extract::{Request, State};
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use axum::Router;
use route::{Aggregate, Fanout, Local, Owner, Route, Schedule};
use std::collections::BTreeMap;

/// The API versions the manager advertises and accepts, shared with the engine.
pub use apiserve::{API_VERSION, MIN_API_VERSION};
/// What `docker version` / `docker info` show as the server version.
pub const SWARM_VERSION: &str = concat!("swarm/", env!("CARGO_PKG_VERSION"));

/// What a handler needs from the request line.
#[derive(Debug, Clone, Default)]
pub struct Ctx {
    /// `X.Y` from a `/vX.Y` prefix.
    pub version: Option<String>,
    pub raw_query: Option<String>,
    /// Last value of each key.
    pub query: BTreeMap<String, String>,
    /// Every pair, in order (`names=a&names=b`).
    pub pairs: Vec<(String, String)>,
}

impl Ctx {
    fn from_uri(uri: &axum::http::Uri, version: Option<&str>) -> Ctx {
        let pairs: Vec<(String, String)> =
            uri.query().map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect()).unwrap_or_default();
        Ctx { version: version.map(String::from), raw_query: uri.query().map(String::from), query: pairs.iter().cloned().collect(), pairs }
    }

    /// `path` under the client's version prefix, with the client's query when `with_query`.
    pub fn node_path(&self, path: &str, with_query: bool) -> String {
        let mut s = match &self.version {
            Some(v) => format!("/v{v}{path}"),
            None => path.to_string(),
        };
        if with_query {
            if let Some(q) = self.raw_query.as_deref().filter(|q| !q.is_empty()) {
                s.push('?');
                s.push_str(q);
            }
        }
        s
    }

    /// Docker's lenient booleans.
    pub fn flag(&self, k: &str) -> bool {
        self.query.get(k).is_some_and(|v| matches!(v.as_str(), "1" | "true" | "True" | "TRUE"))
    }
}

/// `k=v&…` with form encoding.
pub fn encode_query(q: &BTreeMap<String, String>) -> String {
    crate::cluster::client::encode_query(q.iter().map(|(k, v)| (k.as_str(), v.as_str())))
}

/// The whole API as one router (every path, any `/vX.Y` prefix).
pub fn router(cluster: Cluster) -> Router {
    Router::new().fallback(dispatch).with_state(cluster)
}

async fn dispatch(State(cl): State<Cluster>, req: Request) -> Response {
    let started = std::time::Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let (version, bare) = route::split_version(&path);
    let ctx = Ctx::from_uri(req.uri(), version);
    let r = route::route(&method, bare);
    let too_old = version.is_some_and(|v| version_lt(v, MIN_API_VERSION));
    let resp = if too_old {
        Err(ApiError::bad_request(format!(
            "client version {} is too old. Minimum supported API version is {MIN_API_VERSION}, please upgrade your client to a newer version",
            version.unwrap_or_default()
        )))
    } else {
        serve_or_forward(&cl, &ctx, r, req).await
    };
    let mut resp = resp.unwrap_or_else(IntoResponse::into_response);
    let h = resp.headers_mut();
    h.insert("Api-Version", HeaderValue::from_static(API_VERSION));
    h.insert("Docker-Experimental", HeaderValue::from_static(if cl.opts.experimental { "true" } else { "false" }));
    h.insert("Ostype", HeaderValue::from_static("linux"));
    h.insert("Server", HeaderValue::from_static(SWARM_VERSION));
    tracing::debug!(%method, %path, status = resp.status().as_u16(), ms = started.elapsed().as_millis() as u64, "request");
    resp
}

/// How long a replica holds a request while no primary is known (an election under way).
const PRIMARY_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// The primary serves everything; a replica serves `/_ping`, `/info` and `/metrics` itself and
/// forwards the rest to the primary (classic Swarm's replica handler).
async fn serve_or_forward(cl: &Cluster, ctx: &Ctx, r: Route, req: Request) -> Result<Response, ApiError> {
    if cl.ha.is_replicated() && !matches!(r, Route::Local(Local::Ping | Local::Info | Local::Metrics)) {
        let forwarded = req.headers().contains_key(proxy::FORWARDED_BY);
        let patience = if forwarded { std::time::Duration::ZERO } else { PRIMARY_WAIT };
        match cl.ha.target(patience).await {
            Some(Target::Local) => {}
            Some(Target::Primary(_)) if forwarded => {
                return Err(ApiError::new(503, "this manager is not the primary either (the managers disagree during an election); retry"))
            }
            Some(Target::Primary(addr)) => return proxy::to_primary(cl, &addr, req, cl.ha.advertise().unwrap_or("")).await,
            None => return Err(ApiError::new(503, "no primary manager is elected at the moment; retry later")),
        }
    }
    let replicated = cl.ha.is_replicated();
    let mut resp = handle(cl, ctx, r, req).await.unwrap_or_else(IntoResponse::into_response);
    // Which primary served it: a replica's forward passes this header back to the client.
    if let Some(v) = cl.ha.advertise().filter(|_| replicated).and_then(|a| HeaderValue::from_str(a).ok()) {
        resp.headers_mut().insert(SERVED_BY, v);
    }
    Ok(resp)
}

/// Response header naming the primary (its `--advertise`) that served a request.
pub const SERVED_BY: &str = "x-swarm-primary";

async fn handle(cl: &Cluster, ctx: &Ctx, r: Route, req: Request) -> Result<Response, ApiError> {
    match r {
        Route::Local(Local::Ping) => Ok(system::ping()),
        Route::Local(Local::Version) => Ok(system::version(cl)),
        Route::Local(Local::Info) => Ok(system::info(cl)),
        Route::Local(Local::Events) => system::events(cl, ctx),
        Route::Local(Local::Metrics) => Ok(system::metrics(cl)),
        Route::Schedule(Schedule::Create) => containers::create(cl, ctx, req).await,
        Route::Schedule(Schedule::Build) => images::build(cl, ctx, req).await,
        Route::Aggregate(Aggregate::Containers) => containers::list(cl, ctx).await,
        Route::Aggregate(Aggregate::Images) => images::list(cl, ctx).await,
        Route::Aggregate(Aggregate::Networks) => resources::list(cl, ctx, resources::Kind::Network).await,
        Route::Aggregate(Aggregate::Volumes) => resources::list(cl, ctx, resources::Kind::Volume).await,
        Route::Aggregate(Aggregate::Network(id)) => resources::inspect(cl, ctx, resources::Kind::Network, &id).await,
        Route::Aggregate(Aggregate::Volume(id)) => resources::inspect(cl, ctx, resources::Kind::Volume, &id).await,
        Route::Fanout(Fanout::ImageCreate) => images::create(cl, ctx, req).await,
        Route::Fanout(Fanout::ImageLoad) => images::load(cl, ctx, req).await,
        Route::Fanout(Fanout::ImageTag(name)) => images::tag(cl, ctx, &name).await,
        Route::Fanout(Fanout::ImageRemove(name)) => images::remove(cl, ctx, &name).await,
        Route::Fanout(Fanout::NetworkCreate) => resources::create(cl, ctx, resources::Kind::Network, req).await,
        Route::Fanout(Fanout::VolumeCreate) => resources::create(cl, ctx, resources::Kind::Volume, req).await,
        Route::Fanout(Fanout::NetworkRemove(id)) => resources::remove(cl, ctx, resources::Kind::Network, &id).await,
        Route::Fanout(Fanout::VolumeRemove(id)) => resources::remove(cl, ctx, resources::Kind::Volume, &id).await,
        Route::Proxy { to: Owner::Image { name, rest }, .. } => images::on_holder(cl, ctx, &name, &rest, req).await,
        Route::Proxy { to: Owner::ImagesGet, .. } => images::save_many(cl, ctx, req).await,
        Route::Proxy { to: Owner::AnyNode, .. } => {
            let e = cl.any_engine()?;
            let bare = route::split_version(req.uri().path()).1.to_string();
            let pq = ctx.node_path(&bare, true);
            proxy::forward(cl, &e, req, &pq).await
        }
        Route::Proxy { to: Owner::NetworkMember { id, rest }, .. } => containers::network_member(cl, ctx, &id, &rest, req).await,
        Route::Proxy { to, mode } => containers::proxied(cl, ctx, to, mode, req).await,
        Route::Unsupported => Err(ApiError::not_found("page not found")),
    }
}

pub use apiserve::version_lt;
