#![recursion_limit = "256"]
//! The manager (`swarm manage`): one Docker API for a cluster of Docker engines.
//!
//! - `scheduler` pure placement: parsed requests, filters, strategies over node snapshots.
//! - `cluster`   the nodes: validation, event-driven state, health, lookup, scheduled creates.
//! - `api`       the Docker API front: local, proxied, hijacked and aggregated routes.
//! - `metrics`   Prometheus counters and histograms.
//! - `tls`       listener and node-client TLS.
pub mod api;
pub mod cluster;
pub mod metrics;
pub mod scheduler;
#[cfg(any(test, feature = "sim"))]
pub mod sim;
pub mod tls;

pub use api::server::Listen;
pub use cluster::{Cluster, ClusterOpts, NodeSource, StaticNodes};
pub use tokio_util::sync::CancellationToken;

/// Everything `swarm manage` configures.
#[derive(Debug, Clone)]
pub struct ManagerConfig {
    pub hosts: Vec<Listen>,
    /// Allow plain TCP listeners on non-loopback addresses.
    pub insecure_tcp: bool,
    pub tls: Option<tls::TlsOptions>,
    pub cluster: ClusterOpts,
}

#[derive(Debug, thiserror::Error)]
pub enum ManagerError {
    #[error("refusing to listen on {0} without TLS; pass --tlsverify (or --insecure-tcp to allow it)")]
    InsecureTcp(String),
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error(transparent)]
    Cluster(#[from] cluster::ClusterError),
    #[error(transparent)]
    Serve(#[from] api::server::ServeError),
}

/// Runs the manager until `shutdown`: nodes come from `source`, the API is served on every host.
pub async fn run<S: NodeSource>(cfg: ManagerConfig, source: S, shutdown: CancellationToken) -> Result<(), ManagerError> {
    let server_tls = cfg.tls.as_ref().map(tls::server_config).transpose()?;
    let client_tls = cfg.tls.as_ref().map(tls::client_config).transpose()?;
    for h in &cfg.hosts {
        if let Listen::Tcp(a) = h {
            match &cfg.tls {
                Some(o) if !o.verify => tracing::warn!(addr = %a, "TLS without --tlsverify: clients are not authenticated"),
                Some(_) => {}
                None if h.is_loopback() => {}
                None if cfg.insecure_tcp => {
                    tracing::warn!(addr = %a, "listening on TCP without TLS: anyone who can reach this address controls the cluster")
                }
                None => return Err(ManagerError::InsecureTcp(h.to_string())),
            }
        }
    }
    let cluster = Cluster::new(cfg.cluster.clone(), client_tls, shutdown.clone())?;
    cluster.watch(source);
    tracing::info!(strategy = cluster.scheduler.strategy_name(), filters = ?cluster.scheduler.filter_names(), "manager ready");
    api::server::serve(api::router(cluster), &cfg.hosts, server_tls, shutdown).await?;
    tracing::info!("manager stopped");
    Ok(())
}
