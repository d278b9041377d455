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
pub mod ha;
pub mod metrics;
pub mod scheduler;
#[cfg(any(test, feature = "sim"))]
pub mod sim;
pub mod tls;

// The tests' allocator, to run the speed tests under the `swarm` binary's (src/bin/swarm/alloc.rs).
#[cfg(all(test, feature = "test-mimalloc"))]
#[global_allocator]
static TEST_ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;
#[cfg(all(test, feature = "test-jemalloc", not(feature = "test-mimalloc")))]
#[global_allocator]
static TEST_ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

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
    /// The etcd store of `etcd://` discovery: reschedule records live there (in memory
    /// without it).
    pub etcd: Option<discovery::EtcdDiscovery>,
    /// `--replication`: leader election in `etcd` (required with it).
    pub replication: Option<Replication>,
}

/// `--replication --advertise … --replication-ttl …`.
#[derive(Debug, Clone)]
pub struct Replication {
    pub advertise: String,
    pub ttl: std::time::Duration,
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
    #[error("Leader election is only supported with consul, etcd and zookeeper discovery.")]
    ReplicationNeedsKv,
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
    let records = cfg.etcd.clone().map_or_else(ha::store::Store::memory, ha::store::Store::etcd);
    let ha = match &cfg.replication {
        None => ha::Ha::standalone(),
        Some(r) => {
            let etcd = cfg.etcd.clone().ok_or(ManagerError::ReplicationNeedsKv)?;
            let candidate = discovery::leadership::Candidate::new(etcd, &r.advertise, r.ttl);
            tracing::info!(key = candidate.key(), advertise = %r.advertise, ttl = ?r.ttl, "replication: campaigning for primary");
            ha::Ha::replicated(candidate.run(shutdown.clone()), &r.advertise)
        }
    };
    let cluster = Cluster::with_ha(cfg.cluster.clone(), client_tls, shutdown.clone(), ha, records)?;
    cluster.watch(source);
    cluster.spawn_watchdog();
    tracing::info!(strategy = cluster.scheduler.strategy_name(), filters = ?cluster.scheduler.filter_names(), "manager ready");
    api::server::serve(api::router(cluster), &cfg.hosts, server_tls, shutdown).await?;
    tracing::info!("manager stopped");
    Ok(())
}
