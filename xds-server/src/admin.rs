//! The admin HTTP listener: `/livez`, `/readyz`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;

use crate::etcd_sync::Shared;

pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/livez", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(shared)
}

/// Ready once the first etcd listing is loaded; it stays ready while etcd is
/// unreachable afterwards, because the last snapshots keep being served.
async fn readyz(State(shared): State<Arc<Shared>>) -> (StatusCode, String) {
    if shared.is_ready() {
        let (nodes, snapshots) = shared.counts();
        (
            StatusCode::OK,
            format!("ok: {nodes} nodes, {snapshots} snapshots\n"),
        )
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "etcd not loaded yet\n".into(),
        )
    }
}
