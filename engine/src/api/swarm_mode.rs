//! Swarm-mode routes (`/swarm`, `/nodes`, `/services`, `/tasks`, `/secrets`, `/configs`): this
//! engine is never a swarm-mode node, so they answer as a dockerd outside swarm mode does
//! (503, "This node is not a swarm manager…"); clients' cleanup code relies on that, not on a
//! 404. `swarm init`/`join` are refused as not available here (Flotilla is classic Swarm).
use super::{ApiError, AppState};
use axum::body::Body;
use axum::http::StatusCode;
use axum::routing::{any, post};
use axum::Router;

/// dockerd's words (`errNoManager`).
pub const NOT_A_MANAGER: &str =
    "This node is not a swarm manager. Use \"docker swarm init\" or \"docker swarm join\" to connect this node to swarm and try again.";

pub fn routes() -> Router<AppState> {
    let mut r = Router::new()
        .route("/swarm/init", post(not_available))
        .route("/swarm/join", post(not_available))
        .route("/swarm/leave", post(not_part));
    for base in ["/swarm", "/nodes", "/services", "/tasks", "/secrets", "/configs"] {
        r = r.route(base, any(not_manager)).route(&format!("{base}/{{*rest}}"), any(not_manager));
    }
    r
}

async fn not_manager(body: Body) -> ApiError {
    super::drain_body(body).await;
    ApiError::with_status(StatusCode::SERVICE_UNAVAILABLE, NOT_A_MANAGER)
}

async fn not_part(body: Body) -> ApiError {
    super::drain_body(body).await;
    ApiError::with_status(StatusCode::SERVICE_UNAVAILABLE, "This node is not part of a swarm")
}

async fn not_available(body: Body) -> ApiError {
    super::drain_body(body).await;
    ApiError::with_status(
        StatusCode::NOT_IMPLEMENTED,
        "swarm mode is not available on this engine: Flotilla is classic Swarm (run `swarm manage` and `swarm join`)",
    )
}
