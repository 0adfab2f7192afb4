//! The admin HTTP listener: `/livez` (200 while the process serves HTTP:
//! never depends on etcd or Kubernetes, which a restart would not fix),
//! `/readyz` and `/metrics` (OpenMetrics text), answered from a [`Probe`].

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::http::{header, StatusCode};
use axum::routing::get;
use axum::Router;
use prometheus_client::registry::Registry;

/// The `Content-Type` of `/metrics`.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// What a binary answers on its admin listener.
pub trait Probe: Send + Sync + 'static {
    /// `/readyz`: whether the process is ready, and the body that says why.
    fn readiness(&self) -> impl Future<Output = (bool, String)> + Send;
    /// `/metrics`: the metrics as OpenMetrics text ([`encode`]).
    fn metrics(&self) -> String;
}

/// A registry as OpenMetrics text.
pub fn encode(registry: &Registry) -> String {
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, registry)
        .expect("writing to a String cannot fail");
    out
}

/// `/livez`, `/readyz` and `/metrics` answered by `probe`.
pub fn router<P: Probe>(probe: Arc<P>) -> Router {
    let ready = probe.clone();
    Router::new()
        .route("/livez", get(|| async { "ok\n" }))
        .route(
            "/readyz",
            get(move || {
                let probe = ready.clone();
                async move {
                    match probe.readiness().await {
                        (true, body) => (StatusCode::OK, body),
                        (false, body) => (StatusCode::SERVICE_UNAVAILABLE, body),
                    }
                }
            }),
        )
        .route(
            "/metrics",
            get(move || {
                let text = probe.metrics();
                async move { ([(header::CONTENT_TYPE, OPENMETRICS)], text) }
            }),
        )
}

/// Binds `addr` and serves `router` on it in a task; returns the bound
/// address (port 0 picks a free one).
pub async fn serve(addr: SocketAddr, router: Router) -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding admin {addr}"))?;
    let bound = listener.local_addr().context("admin address")?;
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            tracing::error!(error = %e, "admin server failed");
        }
    });
    Ok(bound)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    struct Fixed(bool);

    impl Probe for Fixed {
        async fn readiness(&self) -> (bool, String) {
            (self.0, format!("ready: {}\n", self.0))
        }
        fn metrics(&self) -> String {
            "# EOF\n".into()
        }
    }

    async fn get(addr: SocketAddr, path: &str) -> String {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn livez_readyz_and_metrics_answer_from_the_probe() {
        let ready = serve(
            "127.0.0.1:0".parse().unwrap(),
            router(Arc::new(Fixed(true))),
        )
        .await
        .unwrap();
        let not_ready = serve(
            "127.0.0.1:0".parse().unwrap(),
            router(Arc::new(Fixed(false))),
        )
        .await
        .unwrap();
        assert!(get(ready, "/livez").await.starts_with("HTTP/1.1 200"));
        assert!(get(not_ready, "/livez").await.starts_with("HTTP/1.1 200"));
        let r = get(ready, "/readyz").await;
        assert!(
            r.starts_with("HTTP/1.1 200") && r.ends_with("ready: true\n"),
            "{r}"
        );
        let r = get(not_ready, "/readyz").await;
        assert!(
            r.starts_with("HTTP/1.1 503") && r.ends_with("ready: false\n"),
            "{r}"
        );
        let m = get(ready, "/metrics").await;
        assert!(m.contains(OPENMETRICS) && m.ends_with("# EOF\n"), "{m}");
    }
}
