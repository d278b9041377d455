//! `token://<token>` and `token://<host:port[/path]>/<token>`: the protocol of the former hosted
//! discovery service (discovery.hub.docker.com), served today by `swarm token-service`:
//! - `POST <base>/clusters` -> a new token (body);
//! - `POST <base>/clusters/<token>?ttl=<secs>`, body `ip:port` -> register;
//! - `GET <base>/clusters/<token>` -> JSON array of `"ip:port"`;
//! - `DELETE <base>/clusters/<token>` -> delete the cluster;
//! - `DELETE <base>/clusters/<token>/<ip:port>` -> deregister (our addition, used on clean
//!   shutdown; ignored when a server does not know it).
//!
//! `<base>` is `--discovery-url` (e.g. `https://10.0.0.1:8500/v1`) for `token://<token>`, or
//! `<scheme>://<host:port[/path]>` for the explicit form: https when `--discovery-cacert` is
//! given or `--discovery-url` is https (classic Swarm always used https), else http. With
//! `--discovery-cacert`, only certificates signed by that CA are trusted.
//!
//! Blocking watch (our addition, as Consul's blocking queries): `swarm token-service` answers a
//! list with the cluster's membership index in [`INDEX_HEADER`], and
//! `GET <base>/clusters/<token>?index=N&wait=30000ms` waits until the index moves past `N`. The
//! watch uses it, so a join shows at once; with a service that sends no index (the hosted
//! protocol), it polls every heartbeat as classic Swarm did.
use crate::{watch, Discovery, DiscoveryError, DiscoveryOpts, Entry, WatchEvent};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Time limit of one HTTP request to the token service (beyond a blocking list's wait).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest answer read from a token service (a list of 10,000 long hostnames fits).
pub const MAX_RESPONSE: usize = 8 << 20;
/// The response header with a cluster's membership index.
pub const INDEX_HEADER: &str = "x-flotilla-index";
/// How long one blocking list of the watch waits before the service answers unchanged.
pub const BLOCK_WAIT: Duration = Duration::from_secs(30);

#[derive(Clone)]
pub struct TokenDiscovery {
    inner: Arc<Inner>,
}

struct Inner {
    base: String,
    token: String,
    client: reqwest::Client,
    /// `<base>/clusters/<token prefix>…`: the cluster URL as errors show it.
    shown: String,
}

/// Normalizes a token service base URL: adds `http://` when no scheme is given, drops a
/// trailing `/`.
pub fn normalize_base(url: &str) -> Result<String, DiscoveryError> {
    let u = url.trim().trim_end_matches('/');
    let u = if u.contains("://") { u.to_string() } else { format!("http://{u}") };
    let parsed = reqwest::Url::parse(&u).map_err(|e| DiscoveryError::InvalidUrl { url: url.to_string(), reason: e.to_string() })?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none_or(str::is_empty) {
        return Err(DiscoveryError::InvalidUrl { url: url.to_string(), reason: "expected http://host:port[/path]".into() });
    }
    Ok(u)
}

/// An HTTP client for the token service (rustls with ring for https bases). With `ca`, only
/// certificates signed by the CA(s) in that PEM file are trusted; otherwise the system's roots.
pub fn http_client(ca: Option<&Path>) -> Result<reqwest::Client, DiscoveryError> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut b = reqwest::Client::builder().timeout(REQUEST_TIMEOUT).connect_timeout(Duration::from_secs(5));
    if let Some(ca) = ca {
        let bad = |reason: String| DiscoveryError::TokenCa { path: ca.display().to_string(), reason };
        let pem = std::fs::read(ca).map_err(|e| bad(e.to_string()))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| bad(e.to_string()))?;
        if certs.is_empty() {
            return Err(bad("no PEM certificate found".into()));
        }
        b = b.tls_certs_only(certs);
    }
    b.build().map_err(|e| DiscoveryError::Unreachable { url: String::new(), reason: e.to_string() })
}

/// The first characters of a token, for logs and errors: the token is the cluster's credential
/// and is never shown whole.
pub fn redact(token: &str) -> String {
    let prefix: String = token.chars().take(REDACTED_PREFIX).collect();
    if prefix.len() < token.len() {
        format!("{prefix}…")
    } else {
        prefix
    }
}

/// How many characters of a token [`redact`] keeps.
pub const REDACTED_PREFIX: usize = 6;

/// `token://…` with the token part redacted (see [`redact`]); other URLs as they are.
pub fn redact_url(url: &str) -> String {
    match url.strip_prefix("token://") {
        Some(rest) => match rest.trim_end_matches('/').rsplit_once('/') {
            Some((host, token)) => format!("token://{host}/{}", redact(token)),
            None => format!("token://{}", redact(rest)),
        },
        None => url.to_string(),
    }
}

/// A token service base for use with `ca`: a CA is only for https.
fn checked_base(url: &str, ca: Option<&Path>) -> Result<String, DiscoveryError> {
    let base = normalize_base(url)?;
    if ca.is_some() && base.starts_with("http://") {
        return Err(DiscoveryError::TokenCaNeedsHttps { url: base });
    }
    Ok(base)
}

fn valid_token(t: &str) -> bool {
    !t.is_empty() && t.len() <= 128 && t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn unreachable(url: &str, e: reqwest::Error) -> DiscoveryError {
    if e.is_timeout() {
        return DiscoveryError::Unreachable { url: url.to_string(), reason: format!("no answer within {REQUEST_TIMEOUT:?}") };
    }
    // The innermost cause says it best ("Connection refused (os error 111)").
    let e = e.without_url();
    let mut reason = e.to_string();
    let mut src = std::error::Error::source(&e);
    while let Some(s) = src {
        reason = s.to_string();
        src = s.source();
    }
    DiscoveryError::Unreachable { url: url.to_string(), reason }
}

async fn check(url: &str, mut resp: reqwest::Response) -> Result<String, DiscoveryError> {
    let status = resp.status();
    let mut buf = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| unreachable(url, e))? {
        if buf.len() + chunk.len() > MAX_RESPONSE {
            return Err(DiscoveryError::Http {
                url: url.to_string(),
                status: status.as_u16(),
                body: format!("answer longer than {MAX_RESPONSE} bytes, the client's limit"),
            });
        }
        buf.extend_from_slice(&chunk);
    }
    let body = String::from_utf8_lossy(&buf).into_owned();
    if !status.is_success() {
        return Err(DiscoveryError::Http { url: url.to_string(), status: status.as_u16(), body: body.trim().to_string() });
    }
    Ok(body)
}

/// `POST <base>/clusters`: creates a cluster and returns its token. `ca`: see [`http_client`].
pub async fn create_cluster(base: &str, ca: Option<&Path>) -> Result<String, DiscoveryError> {
    let base = checked_base(base, ca)?;
    let url = format!("{base}/clusters");
    let resp = http_client(ca)?.post(&url).send().await.map_err(|e| unreachable(&url, e))?;
    let token = check(&url, resp).await?.trim().to_string();
    if !valid_token(&token) {
        return Err(DiscoveryError::Http { url, status: 200, body: format!("not a token: {:?}", redact(&token)) });
    }
    Ok(token)
}

impl TokenDiscovery {
    /// Parses the part after `token://`.
    pub fn parse(rest: &str, opts: &DiscoveryOpts) -> Result<Self, DiscoveryError> {
        let invalid = |reason: &str| DiscoveryError::InvalidUrl { url: redact_url(&format!("token://{rest}")), reason: reason.into() };
        let rest = rest.trim().trim_end_matches('/');
        let ca = opts.token_ca.as_deref();
        let (base, token) = match rest.rsplit_once('/') {
            // The explicit host form: https when a CA for the service is given or the configured
            // service URL is https, else http.
            Some((host_path, token)) => {
                let https = ca.is_some() || opts.token_url.as_deref().is_some_and(|u| u.trim().starts_with("https://"));
                (format!("{}://{host_path}", if https { "https" } else { "http" }), token)
            }
            None => (opts.token_url.clone().ok_or(DiscoveryError::NoTokenService)?, rest),
        };
        if !valid_token(token) {
            return Err(invalid("the token must be letters, digits, '-' or '_' (as printed by `swarm create`)"));
        }
        Self::with_ca(&base, token, ca)
    }

    /// A client for cluster `token` at `base` (see [`normalize_base`]).
    pub fn new(base: &str, token: &str) -> Result<Self, DiscoveryError> {
        Self::with_ca(base, token, None)
    }

    /// As [`TokenDiscovery::new`], trusting only the CA(s) in `ca` for an https `base`.
    pub fn with_ca(base: &str, token: &str, ca: Option<&Path>) -> Result<Self, DiscoveryError> {
        let base = checked_base(base, ca)?;
        let shown = format!("{base}/clusters/{}", redact(token));
        Ok(TokenDiscovery { inner: Arc::new(Inner { base, token: token.to_string(), client: http_client(ca)?, shown }) })
    }

    pub fn base(&self) -> &str {
        &self.inner.base
    }
    pub fn token(&self) -> &str {
        &self.inner.token
    }
    fn cluster_url(&self) -> String {
        format!("{}/clusters/{}", self.inner.base, self.inner.token)
    }

    /// `GET <base>/clusters/<token>`: the entries and the membership index (`None` from a
    /// service that sends none). With `index`, a blocking query: the service answers when the
    /// index moves past it, or after `wait`.
    pub async fn list_indexed(&self, index: Option<u64>, wait: Duration) -> Result<(Vec<Entry>, Option<u64>), DiscoveryError> {
        let url = self.cluster_url();
        let req = match index {
            None => self.inner.client.get(&url),
            Some(i) => self.inner.client.get(format!("{url}?index={i}&wait={}ms", wait.as_millis())).timeout(wait + REQUEST_TIMEOUT),
        };
        let resp = req.send().await.map_err(|e| unreachable(&self.inner.shown, e))?;
        let status = resp.status().as_u16();
        let got = resp.headers().get(INDEX_HEADER).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
        let body = check(&self.inner.shown, resp).await?;
        let addrs: Vec<String> = serde_json::from_str(&body).map_err(|e| DiscoveryError::Http {
            url: self.inner.shown.clone(),
            status,
            body: format!("expected a JSON array of \"ip:port\": {e}"),
        })?;
        let mut out = vec![];
        for a in addrs {
            match Entry::parse(&a) {
                Ok(e) => out.push(e),
                Err(e) => tracing::warn!(error = %e, "token service listed an invalid entry"),
            }
        }
        Ok((watch::canonical(out), got))
    }

    /// `DELETE <base>/clusters/<token>`.
    pub async fn delete_cluster(&self) -> Result<(), DiscoveryError> {
        let url = self.cluster_url();
        let resp = self.inner.client.delete(&url).send().await.map_err(|e| unreachable(&self.inner.shown, e))?;
        check(&self.inner.shown, resp).await.map(drop)
    }
}

impl Discovery for TokenDiscovery {
    async fn list(&self) -> Result<Vec<Entry>, DiscoveryError> {
        self.list_indexed(None, Duration::ZERO).await.map(|(v, _)| v)
    }

    async fn register(&self, me: &Entry, ttl: Duration) -> Result<(), DiscoveryError> {
        let url = format!("{}?ttl={}", self.cluster_url(), ttl.as_secs().max(1));
        // The hosted service's client sent this content type with a plain-text body.
        let resp = self
            .inner
            .client
            .post(&url)
            .header("Content-Type", "application/json")
            .body(me.to_string())
            .send()
            .await
            .map_err(|e| unreachable(&self.inner.shown, e))?;
        check(&self.inner.shown, resp).await.map(drop)
    }

    async fn deregister(&self, me: &Entry) -> Result<(), DiscoveryError> {
        let url = format!("{}/{me}", self.cluster_url());
        let resp = self.inner.client.delete(&url).send().await.map_err(|e| unreachable(&self.inner.shown, e))?;
        match check(&self.inner.shown, resp).await {
            Ok(_) => Ok(()),
            // A server without the deregister route: the entry expires after its TTL.
            Err(DiscoveryError::Http { status: 404 | 405, .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Blocking lists while the service sends an index, else a poll every `heartbeat` (also
    /// after an error). Sends the full set when it changed, and every error.
    fn watch(&self, heartbeat: Duration, stop: CancellationToken) -> mpsc::Receiver<WatchEvent> {
        let d = self.clone();
        let (tx, rx) = mpsc::channel(watch::CHANNEL);
        tokio::spawn(async move {
            let mut last: Option<Vec<Entry>> = None;
            let mut index: Option<u64> = None;
            loop {
                let started = std::time::Instant::now();
                let res = tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tx.closed() => return,
                    r = d.list_indexed(index, BLOCK_WAIT) => r,
                };
                let (send, pause) = match res {
                    Ok((set, got)) => {
                        // Ask again at once after a change or a full wait; a service answering
                        // an unchanged index at once is not spun on.
                        let blocking = got.is_some() && (got != index || started.elapsed() >= Duration::from_secs(1));
                        index = got;
                        let pause = if blocking { Duration::ZERO } else { heartbeat };
                        if last.as_ref() == Some(&set) {
                            (None, pause)
                        } else {
                            last = Some(set.clone());
                            (Some(Ok(set)), pause)
                        }
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "token discovery watch error");
                        index = None;
                        (Some(Err(e)), heartbeat)
                    }
                };
                if let Some(ev) = send {
                    if tx.send(ev).await.is_err() {
                        return;
                    }
                }
                if !pause.is_zero() {
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tx.closed() => return,
                        _ = tokio::time::sleep(pause) => {}
                    }
                }
            }
        });
        rx
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    fn opts(url: Option<&str>) -> DiscoveryOpts {
        DiscoveryOpts { token_url: url.map(String::from), ..Default::default() }
    }
    #[test]
    fn parses_urls() {
        let d = TokenDiscovery::parse("abc123", &opts(Some("http://10.0.0.1:8500/v1/"))).unwrap();
        assert_eq!((d.base(), d.token()), ("http://10.0.0.1:8500/v1", "abc123"));
        let d = TokenDiscovery::parse("127.0.0.1:8500/abc", &opts(None)).unwrap();
        assert_eq!((d.base(), d.token()), ("http://127.0.0.1:8500", "abc"));
        let d = TokenDiscovery::parse("h:1/v1/abc", &opts(Some("http://other"))).unwrap();
        assert_eq!(d.base(), "http://h:1/v1");
        let d = TokenDiscovery::parse("h:2/abc", &opts(Some("https://other"))).unwrap();
        assert_eq!(d.base(), "https://h:2");
        let d = TokenDiscovery::parse("abc", &opts(Some("127.0.0.1:8500"))).unwrap();
        assert_eq!(d.base(), "http://127.0.0.1:8500");
        assert!(matches!(TokenDiscovery::parse("abc", &opts(None)), Err(DiscoveryError::NoTokenService)));
        assert!(TokenDiscovery::parse("", &opts(Some("http://x"))).is_err());
        assert!(TokenDiscovery::parse("h:1/a b", &opts(None)).is_err());
        assert!(TokenDiscovery::parse("h:99999/abc", &opts(None)).is_err());
        assert!(normalize_base("ftp://x").is_err());
    }

    #[test]
    fn redacts_tokens_and_checks_the_ca() {
        assert_eq!(redact("0123456789abcdef"), "012345…");
        assert_eq!(redact("abc"), "abc");
        assert_eq!(redact_url("token://h:1/v1/0123456789"), "token://h:1/v1/012345…");
        assert_eq!(redact_url("token://0123456789"), "token://012345…");
        assert_eq!(redact_url("etcd://h:1/p"), "etcd://h:1/p");
        let with_ca = |url: &str| DiscoveryOpts { token_ca: Some("/nonexistent/ca.pem".into()), ..opts(Some(url)) };
        let e = TokenDiscovery::parse("abc", &with_ca("http://h:1/v1")).err().unwrap();
        assert!(matches!(e, DiscoveryError::TokenCaNeedsHttps { .. }), "{e}");
        let e = TokenDiscovery::parse("abc", &with_ca("https://h:1/v1")).err().unwrap();
        assert!(matches!(e, DiscoveryError::TokenCa { .. }) && e.to_string().contains("/nonexistent/ca.pem"), "{e}");
        let e = crate::Backend::from_url("etcd://h:1/p", &with_ca("https://h:1")).err().unwrap();
        assert!(matches!(e, DiscoveryError::TokenCaNotToken { .. }), "{e}");
        let d = TokenDiscovery::new("http://h:1/v1", "0123456789abcdef").unwrap();
        assert!(!d.inner.shown.contains("0123456789abcdef") && d.inner.shown.ends_with("/clusters/012345…"));
    }

    /// A service of the hosted protocol: lists without an index, ignores `?index=`.
    async fn old_service(set: Arc<std::sync::Mutex<Vec<String>>>) -> String {
        let app = axum::Router::new().route(
            "/v1/clusters/{token}",
            axum::routing::get(move || {
                let set = set.clone();
                async move { axum::Json(set.lock().unwrap().clone()) }
            }),
        );
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(l, app).await });
        format!("http://{addr}/v1")
    }

    #[tokio::test]
    async fn watch_blocks_with_our_service_and_polls_an_old_one() {
        let e = |s: &str| Entry::parse(s).unwrap();
        // Ours: a registration shows at once, with a heartbeat of a minute.
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(crate::token_server::TokenStore::open(dir.path()).unwrap());
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}/v1", l.local_addr().unwrap());
        let stop = CancellationToken::new();
        tokio::spawn(crate::token_server::serve(l, store, stop.clone()));
        let d = TokenDiscovery::new(&base, &create_cluster(&base, None).await.unwrap()).unwrap();
        let mut rx = d.watch(Duration::from_secs(60), stop.clone());
        assert!(rx.recv().await.unwrap().unwrap().is_empty());
        tokio::time::sleep(Duration::from_millis(200)).await;
        let t0 = std::time::Instant::now();
        d.register(&e("10.2.0.1:2375"), Duration::from_secs(30)).await.unwrap();
        assert_eq!(rx.recv().await.unwrap().unwrap(), vec![e("10.2.0.1:2375")]);
        assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
        d.deregister(&e("10.2.0.1:2375")).await.unwrap();
        assert!(rx.recv().await.unwrap().unwrap().is_empty());
        assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());

        // The hosted protocol: polled every heartbeat.
        let set = Arc::new(std::sync::Mutex::new(vec!["10.3.0.1:2375".to_string()]));
        let old = TokenDiscovery::new(&old_service(set.clone()).await, "abc").unwrap();
        let mut rx = old.watch(Duration::from_millis(700), stop.clone());
        assert_eq!(rx.recv().await.unwrap().unwrap(), vec![e("10.3.0.1:2375")]);
        let t0 = std::time::Instant::now();
        set.lock().unwrap().push("10.3.0.2:2375".into());
        assert_eq!(rx.recv().await.unwrap().unwrap().len(), 2);
        let took = t0.elapsed();
        assert!(took > Duration::from_millis(300) && took < Duration::from_secs(2), "{took:?}");
        stop.cancel();
    }
}
