//! The admin HTTP listener: `/livez`, `/readyz`, `/metrics`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;

use crate::etcd_sync::Shared;
use crate::metrics::Metrics;

pub fn router(shared: Arc<Shared>, metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route("/livez", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(shared)
        .route(
            "/metrics",
            get(move || {
                let metrics = metrics.clone();
                async move {
                    (
                        [(
                            axum::http::header::CONTENT_TYPE,
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        )],
                        metrics.encode(),
                    )
                }
            }),
        )
}

/// Ready once the first etcd listing is loaded; it stays ready while etcd is
/// unreachable afterwards, because the last snapshots keep being served.
async fn readyz(State(shared): State<Arc<Shared>>) -> (StatusCode, String) {
    if shared.is_ready() {
        let (nodes, snapshots) = shared.counts();
        let revision = shared.revision();
        (
            StatusCode::OK,
            format!("ok: etcd revision {revision}, {nodes} nodes, {snapshots} snapshots\n"),
        )
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "etcd not loaded yet\n".into(),
        )
    }
}
