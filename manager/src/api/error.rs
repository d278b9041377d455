//! Errors as Docker clients read them: a status code and `{"message": …}`.
use crate::cluster::{ClusterError, NodeError};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: u16, message: impl Into<String>) -> Self {
        ApiError { status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), message: message.into() }
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(404, message)
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, message)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::warn!(status = %self.status, "{}", self.message);
        }
        (self.status, Json(serde_json::json!({ "message": self.message }))).into_response()
    }
}

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
