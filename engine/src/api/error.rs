//! The engine's side of the wire error ([`apiserve::ApiError`], shared with the manager): the
//! only place that maps the engine's [`ErrorKind`]s to Docker's status codes.
use crate::{Classify, ErrorKind};
use axum::http::StatusCode;

pub use apiserve::ApiError;

pub fn status_of(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::Conflict => StatusCode::CONFLICT,
        ErrorKind::InvalidParameter => StatusCode::BAD_REQUEST,
        ErrorKind::NotModified => StatusCode::NOT_MODIFIED,
        ErrorKind::Forbidden => StatusCode::FORBIDDEN,
        ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::NotImplemented => StatusCode::NOT_IMPLEMENTED,
        ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The wire error of any classified engine error: its kind's status and its text.
pub fn classified<E: Classify + std::fmt::Display>(e: E) -> ApiError {
    ApiError::with_status(status_of(e.kind()), e.to_string())
}

/// `?` in handlers: `ApiError` is apiserve's, so the orphan rule wants one `From` per engine
/// error type (a blanket `impl<E: Classify>` is not allowed on a foreign type). An error type
/// that implements `Classify` and reaches a handler is listed here.
macro_rules! from_classified {
    ($($t:ty),* $(,)?) => {
        $(impl From<$t> for ApiError {
            fn from(e: $t) -> Self {
                classified(e)
            }
        })*
    };
}

from_classified!(
    crate::container::ContainerError,
    crate::image::ImageError,
    crate::network::NetworkError,
    crate::volume::VolumeError,
    crate::build::BuildError,
    crate::runtime::RuntimeError,
    crate::cgroups::CgroupError,
    crate::events::FilterError,
);
