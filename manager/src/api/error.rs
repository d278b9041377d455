//! The manager's side of the wire error ([`apiserve::ApiError`], shared with the engine): the
//! status Docker would answer each cluster error with.
use crate::cluster::{ClusterError, NodeError};

pub use apiserve::ApiError;

/// The HTTP status Docker would answer a cluster error with.
fn cluster_status(e: &ClusterError) -> u16 {
    match e {
        ClusterError::NoSuchContainer(_) | ClusterError::NoSuchExec(_) | ClusterError::NoSuchImage(_) => 404,
        ClusterError::NameInUse { .. } => 409,
        ClusterError::Request(_) | ClusterError::InvalidParameter(_) => 400,
        ClusterError::Node(NodeError::Status { status, .. }) => *status,
        ClusterError::NotPrimary => 503,
        _ => 500,
    }
}

impl From<ClusterError> for ApiError {
    fn from(e: ClusterError) -> Self {
        ApiError::new(cluster_status(&e), e.to_string())
    }
}

impl From<NodeError> for ApiError {
    fn from(e: NodeError) -> Self {
        ApiError::new(e.status().unwrap_or(500), e.to_string())
    }
}
