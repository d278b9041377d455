//! Discovery: how swarm managers find their nodes. This issue lands the entry model
//! (`ip:port` with classic Swarm's `[a:b]` ranges) and the static `nodes://` backend;
//! token, etcd and file backends come with the discovery issue.
pub mod entry;
pub mod nodes;

pub use entry::{expand_ranges, Entry};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DiscoveryError {
    #[error("invalid discovery entry {0:?}: expected host:port")]
    InvalidEntry(String),
    #[error("invalid port in {0:?}: must be 1-65535")]
    InvalidPort(String),
    #[error("invalid range in {0:?}: {1}")]
    InvalidRange(String, &'static str),
    #[error("unsupported discovery scheme {0:?}")]
    UnsupportedScheme(String),
    #[error("empty discovery URL")]
    Empty,
}
