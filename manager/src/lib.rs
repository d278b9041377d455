//! The manager (`swarm manage`): one Docker API for a cluster of Docker engines.
//!
//! - `scheduler` pure placement: parsed requests, filters, strategies over node snapshots.
//! - `cluster`   the nodes: validation, event-driven state, health, lookup, scheduled creates.
//! - `api`       the Docker API front: local, proxied, hijacked and aggregated routes.
//! - `metrics`   Prometheus counters and histograms.
//! - `tls`       listener and node-client TLS.
pub mod cluster;
pub mod metrics;
pub mod scheduler;
pub mod tls;
