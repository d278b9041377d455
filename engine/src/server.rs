//! Engine startup: preflight, services, listeners, graceful shutdown.
use crate::api::{self, AppState};
use crate::config::Listen;
use crate::container::ContainerService;
use crate::events::EventBus;
use crate::image::ImageService;
use crate::network::NetworkService;
use crate::EngineConfig;
use axum::ServiceExt;
use std::path::PathBuf;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("{0}")]
    Preflight(#[from] crate::sysinfo::PreflightError),
    #[error("refusing to listen on {0} without TLS; pass --insecure-tcp to allow it")]
    InsecureTcp(String),
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: String, source: std::io::Error },
    #[error("{0}")]
    Image(#[from] crate::image::ImageError),
    #[error("{0}")]
    Network(#[from] crate::network::NetworkError),
    #[error("{0}")]
    Container(#[from] crate::container::ContainerError),
    #[error("{0}")]
    Tls(#[from] crate::tls::TlsError),
    /// Creating or securing the data root or the exec root (`dataroot::secure`).
    #[error("preparing {} and {}: {source}", data_root.display(), exec_root.display())]
    DataRoot { data_root: PathBuf, exec_root: PathBuf, source: std::io::Error },
    #[error("{op} {}: {source}", path.display())]
    Io { op: &'static str, path: PathBuf, source: std::io::Error },
}

/// Runs the engine until `shutdown` is cancelled. Containers keep running afterwards.
pub async fn run(cfg: EngineConfig, shutdown: CancellationToken) -> Result<(), EngineError> {
    crate::sysinfo::preflight()?;
    let tls = cfg.tls.as_ref().map(crate::tls::server_config).transpose()?;
    for h in &cfg.hosts {
        if let Listen::Tcp(a) = h {
            if let Some(o) = &cfg.tls {
                if !o.verify {
                    tracing::warn!(addr = %a, "TLS without --tlsverify: clients are not authenticated");
                }
                continue;
            }
            if !cfg.insecure_tcp {
                return Err(EngineError::InsecureTcp(format!("tcp://{a}")));
            }
            tracing::warn!(addr = %a, "listening on TCP without TLS: anyone who can reach this address controls the engine");
        }
    }
    crate::dataroot::secure(&cfg.data_root, &cfg.exec_root).map_err(|source| EngineError::DataRoot {
        data_root: cfg.data_root.clone(),
        exec_root: cfg.exec_root.clone(),
        source,
    })?;
    let cfg = Arc::new(cfg);
    let events = EventBus::default();
    let mut images = ImageService::open(&cfg.data_root, &cfg.insecure_registries, events.clone())?;
    images.set_pull_options(cfg.pull.clone());
    let images = Arc::new(images);
    let network = Arc::new(NetworkService::start(&cfg, events.clone()).await?);
    let containers = ContainerService::open(cfg.clone(), images.clone(), network.clone(), events.clone()).await?;
    {
        let c = containers.clone();
        images.set_in_use(Arc::new(move |id: &str| c.image_users(id)));
    }
    let volumes = containers.volumes();
    let state_containers = containers.clone();
    let state_images = images.clone();
    let state = AppState { config: cfg.clone(), images, containers, network: network.clone(), events, volumes };
    let app = api::router(state);
    let app = tower::Layer::layer(&tower::util::MapRequestLayer::new(api::strip_version as fn(_) -> _), app);

    let mut tasks = tokio::task::JoinSet::new();
    for h in &cfg.hosts {
        let app = app.clone();
        let token = shutdown.clone();
        match h {
            Listen::Unix(path) => {
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir).map_err(|source| EngineError::Io {
                        op: "creating the socket directory",
                        path: dir.to_path_buf(),
                        source,
                    })?;
                }
                let _ = std::fs::remove_file(path);
                let l = tokio::net::UnixListener::bind(path).map_err(|source| EngineError::Listen { addr: h.to_string(), source })?;
                use std::os::unix::fs::PermissionsExt;
                let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660));
                tracing::info!(addr = %h, "API listening");
                let svc = app.into_make_service_with_connect_info::<crate::api::hijack::UnixConn>();
                tasks.spawn(async move { axum::serve(l, svc).with_graceful_shutdown(token.cancelled_owned()).await });
            }
            Listen::Tcp(addr) => {
                let l = tokio::net::TcpListener::bind(addr).await.map_err(|source| EngineError::Listen { addr: h.to_string(), source })?;
                if let Some(tls) = tls.clone() {
                    tracing::info!(addr = %h, "API listening (TLS)");
                    tasks.spawn(async move {
                        apiserve::serve_tls(l, tokio_rustls::TlsAcceptor::from(tls), app, token).await;
                        Ok(())
                    });
                    continue;
                }
                tracing::info!(addr = %h, "API listening");
                let l = axum::serve::ListenerExt::tap_io(l, apiserve::set_nodelay);
                tasks.spawn(async move { axum::serve(l, app.into_make_service()).with_graceful_shutdown(token.cancelled_owned()).await });
            }
        }
    }
    tracing::info!(version = crate::ENGINE_VERSION, data_root = %cfg.data_root.display(), "engine ready");
    shutdown.cancelled().await;
    // Hijacked streams may hold connections open; do not wait for them forever.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), async { while tasks.join_next().await.is_some() {} }).await;
    state_containers.shutdown().await;
    state_images.shutdown().await;
    network.shutdown().await;
    for h in &cfg.hosts {
        if let Listen::Unix(p) = h {
            let _ = std::fs::remove_file(p);
        }
    }
    tracing::info!("engine stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_name_their_paths() {
        let e = EngineError::Io {
            op: "creating the socket directory",
            path: "/run/x".into(),
            source: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
        };
        assert_eq!(e.to_string(), "creating the socket directory /run/x: permission denied");
        let e = EngineError::DataRoot {
            data_root: "/var/lib/f".into(),
            exec_root: "/run/f".into(),
            source: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
        };
        assert_eq!(e.to_string(), "preparing /var/lib/f and /run/f: permission denied");
    }
}
