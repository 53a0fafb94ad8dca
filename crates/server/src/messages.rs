//! Routes for `messages` (filled in by its issue).

use std::sync::Arc;

use axum::Router;

use crate::handlers::Shared;

pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
}
