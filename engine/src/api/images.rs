//! Image routes. OWNER: image helper.
use super::AppState;
use axum::Router;

pub fn routes() -> Router<AppState> {
    Router::new()
}
