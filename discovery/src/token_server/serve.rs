//! Serving the token service: HTTPS with a certificate, or plain HTTP; the store flushed in the
//! background and once more at the end.
use super::{router, store, ServerError, StoreLimits, TokenStore};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Cluster creates per minute per client address, by default.
pub const DEFAULT_CREATES_PER_MINUTE: u32 = 60;

/// How one listener is served.
#[derive(Clone)]
pub struct ServeOptions {
    /// HTTPS with this configuration; plain HTTP without.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Cluster creates per minute per client IP address (0: no limit).
    pub creates_per_minute: u32,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions { tls: None, creates_per_minute: DEFAULT_CREATES_PER_MINUTE }
    }
}

/// `swarm token-service`'s settings.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub listen: SocketAddr,
    pub data: PathBuf,
    pub limits: StoreLimits,
    pub creates_per_minute: u32,
    /// `--tlscert`/`--tlskey`: serve HTTPS.
    pub tls: Option<(PathBuf, PathBuf)>,
}

/// Serves plain HTTP on `listener` with the default limits until `stop`.
pub async fn serve(listener: tokio::net::TcpListener, store: Arc<TokenStore>, stop: CancellationToken) -> Result<(), ServerError> {
    serve_with(listener, store, ServeOptions::default(), stop).await
}

/// Serves on `listener` until `stop`, flushing registrations every [`store::FLUSH_EVERY`] and
/// once more at the end.
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    store: Arc<TokenStore>,
    opts: ServeOptions,
    stop: CancellationToken,
) -> Result<(), ServerError> {
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
    let app = router(store.clone(), opts.creates_per_minute);
    let addr = listener.local_addr().map_or_else(|_| "?".to_string(), |a| a.to_string());
    let res = match opts.tls {
        None => axum::serve(
            axum::serve::ListenerExt::tap_io(listener, apiserve::set_nodelay),
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(stop.clone().cancelled_owned())
        .await
        .map_err(|source| ServerError::Serve { addr, source }),
        Some(cfg) => {
            apiserve::serve_tls(listener, tokio_rustls::TlsAcceptor::from(cfg), app, stop.clone()).await;
            Ok(())
        }
    };
    closer.abort();
    stop.cancel();
    let _ = flusher.await;
    let flushed = tokio::task::spawn_blocking(move || store.flush()).await.map_err(ServerError::FlushTask)?;
    flushed?;
    res
}

/// Loads the certificate, opens the store, binds and serves until `stop`.
pub async fn run(o: RunOptions, stop: CancellationToken) -> Result<(), ServerError> {
    let tls = match &o.tls {
        Some((cert, key)) => {
            let t = apiserve::TlsOptions { verify: false, ca: None, cert: cert.clone(), key: key.clone() };
            Some(apiserve::server_config(&t)?)
        }
        None => None,
    };
    let store = Arc::new(TokenStore::open_with(&o.data, o.limits)?);
    let listener =
        tokio::net::TcpListener::bind(o.listen).await.map_err(|error| ServerError::Listen { addr: o.listen.to_string(), error })?;
    let local = listener.local_addr().unwrap_or(o.listen);
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(
        url = %format!("{scheme}://{local}/v1"),
        data = %o.data.display(),
        max_clusters = o.limits.max_clusters,
        max_entries = o.limits.max_entries,
        max_ttl_secs = o.limits.max_ttl.as_secs(),
        creates_per_minute = o.creates_per_minute,
        "token service listening"
    );
    serve_with(listener, store, ServeOptions { tls, creates_per_minute: o.creates_per_minute }, stop).await
}
