//! The manager (`swarm manage`): one Docker API for a cluster of Docker engines.
//!
//! - `scheduler` pure placement: parsed requests, filters, strategies over node snapshots.
pub mod scheduler;
