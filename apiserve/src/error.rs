//! Errors as Docker clients read them: a status code and `{"message": "..."}` (no body for 304).
//! The engine and the manager share this; each maps its own errors to a status (the engine from
//! `Classify`, the manager from `ClusterError`).
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    /// An error with HTTP status `status` (a code that is no status answers 500).
    pub fn new(status: u16, message: impl Into<String>) -> Self {
        Self::with_status(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), message)
    }
    pub fn with_status(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError { status, message: message.into() }
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::with_status(StatusCode::BAD_REQUEST, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::with_status(StatusCode::NOT_FOUND, message)
    }
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::with_status(StatusCode::CONFLICT, message)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::with_status(StatusCode::INTERNAL_SERVER_ERROR, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(status = %self.status, "{}", self.message);
        } else {
            tracing::debug!(status = %self.status, "{}", self.message);
        }
        if self.status == StatusCode::NOT_MODIFIED {
            return self.status.into_response();
        }
        (self.status, Json(serde_json::json!({ "message": self.message }))).into_response()
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ApiError {}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body_of(e: ApiError) -> (StatusCode, String) {
        let resp = e.into_response();
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap();
        (status, String::from_utf8(bytes.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn docker_body_and_status() {
        assert_eq!(
            body_of(ApiError::not_found("No such container: x")).await,
            (StatusCode::NOT_FOUND, r#"{"message":"No such container: x"}"#.into())
        );
        assert_eq!(body_of(ApiError::new(409, "in use")).await, (StatusCode::CONFLICT, r#"{"message":"in use"}"#.into()));
        assert_eq!(body_of(ApiError::new(1000, "odd")).await.0, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            body_of(ApiError::with_status(StatusCode::NOT_MODIFIED, "already started")).await,
            (StatusCode::NOT_MODIFIED, String::new())
        );
    }
}
