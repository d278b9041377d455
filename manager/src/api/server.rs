//! Listeners: unix sockets and TCP (optionally TLS), each serving the router with upgrades
//! (attach/exec hijacks), until shutdown.
use axum::serve::ListenerExt;
use axum::Router;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

pub use apiserve::Listen;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: String, source: std::io::Error },
}

/// Binds every listener, then serves until `shutdown`.
pub async fn serve(
    app: Router,
    hosts: &[Listen],
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: CancellationToken,
) -> Result<(), ServeError> {
    let mut tasks = tokio::task::JoinSet::new();
    for h in hosts {
        let app = app.clone();
        let token = shutdown.clone();
        let err = |source| ServeError::Listen { addr: h.to_string(), source };
        match h {
            Listen::Unix(path) => {
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir).map_err(err)?;
                }
                let _ = std::fs::remove_file(path);
                let l = tokio::net::UnixListener::bind(path).map_err(err)?;
                use std::os::unix::fs::PermissionsExt;
                let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660));
                tracing::info!(addr = %h, "manager API listening");
                tasks.spawn(async move {
                    let _ = axum::serve(l, app).with_graceful_shutdown(token.cancelled_owned()).await;
                });
            }
            Listen::Tcp(addr) => {
                let l = tokio::net::TcpListener::bind(addr).await.map_err(err)?;
                match tls.clone() {
                    Some(tls) => {
                        tracing::info!(addr = %h, "manager API listening (TLS)");
                        tasks.spawn(apiserve::serve_tls(l, tokio_rustls::TlsAcceptor::from(tls), app, token));
                    }
                    None => {
                        tracing::info!(addr = %h, "manager API listening");
                        let l = l.tap_io(apiserve::set_nodelay);
                        tasks.spawn(async move {
                            let _ = axum::serve(l, app).with_graceful_shutdown(token.cancelled_owned()).await;
                        });
                    }
                }
            }
        }
    }
    shutdown.cancelled().await;
    // Hijacked streams may hold connections open; do not wait for them forever.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), async { while tasks.join_next().await.is_some() {} }).await;
    for h in hosts {
        if let Listen::Unix(p) = h {
            let _ = std::fs::remove_file(p);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn parses_hosts() {
        assert_eq!(Listen::parse("tcp://127.0.0.1:2375").unwrap(), Listen::Tcp("127.0.0.1:2375".parse().unwrap()));
        assert_eq!(Listen::parse(":2375").unwrap(), Listen::Tcp("0.0.0.0:2375".parse().unwrap()));
        assert_eq!(Listen::parse("127.0.0.1:1").unwrap(), Listen::Tcp("127.0.0.1:1".parse().unwrap()));
        assert_eq!(Listen::parse("unix:///run/x.sock").unwrap(), Listen::Unix("/run/x.sock".into()));
        assert!(Listen::parse("fd://").is_err());
        assert!(Listen::parse("tcp://nope").is_err());
        assert!(Listen::parse("tcp://127.0.0.1:2375").unwrap().is_loopback());
        assert!(!Listen::parse(":2375").unwrap().is_loopback());
    }
}
