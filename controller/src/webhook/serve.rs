//! The webhook's HTTPS listener: `POST /validate` (any path answers the
//! same), TLS from files reloaded when they change, bodies bounded.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use bootes_tls::ReloadingTls;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;

use super::review::{self, Verdict};
use super::Views;
use crate::metrics::Metrics;

/// The API server speaks HTTP/1.1 to webhooks unless told otherwise.
const ALPN: &[&[u8]] = &[b"http/1.1"];
/// A client that has not finished its handshake by then is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// What the webhook needs to answer.
#[derive(Clone)]
pub struct Webhook {
    pub views: Views,
    pub metrics: Arc<Metrics>,
}

/// Binds `addr` and serves the webhook there until the process ends;
/// returns the bound address. The certificate files are re-read every
/// `reload_every`.
pub async fn start(
    addr: SocketAddr,
    tls: bootes_tls::TlsFiles,
    reload_every: Duration,
    max_body: usize,
    webhook: Webhook,
) -> anyhow::Result<SocketAddr> {
    let tls = ReloadingTls::load(tls, ALPN).context("webhook TLS")?;
    tokio::spawn(tls.clone().watch(reload_every));
    let tcp = TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the webhook to {addr}"))?;
    let bound = tcp.local_addr()?;
    let app = axum::Router::new()
        .fallback(handle)
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(webhook);
    let listener = TlsListener::spawn(tcp, tls);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "webhook server failed");
        }
    });
    tracing::info!(addr = %bound, "serving the admission webhook");
    Ok(bound)
}

async fn handle(State(webhook): State<Webhook>, body: Bytes) -> Response {
    let Webhook { views, metrics } = webhook;
    // Converting a large object is CPU work: off the async workers.
    let judged = tokio::task::spawn_blocking(move || review::answer(&views, &body)).await;
    let answer = match judged {
        Ok(Ok(answer)) => answer,
        Ok(Err(message)) => {
            metrics.observe_review("error");
            tracing::warn!(error = %message, "malformed AdmissionReview refused");
            return (StatusCode::BAD_REQUEST, format!("{message}\n")).into_response();
        }
        Err(e) => {
            metrics.observe_review("error");
            tracing::error!(error = %e, "reviewing failed");
            return (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response();
        }
    };
    metrics.observe_review(answer.verdict.as_str());
    let uid = &answer.response.uid;
    match answer.verdict {
        Verdict::Allowed => {
            tracing::info!(
                uid,
                object = answer.object,
                result = "allowed",
                "admission review"
            )
        }
        Verdict::Warned => tracing::info!(
            uid,
            object = answer.object,
            result = "warned",
            warnings = ?answer.response.warnings,
            "admission review"
        ),
        Verdict::Denied => tracing::info!(
            uid,
            object = answer.object,
            result = "denied",
            message = answer.response.result.message,
            "admission review"
        ),
    }
    ([(header::CONTENT_TYPE, "application/json")], answer.body()).into_response()
}

/// Connections whose TLS handshake finished, for `axum::serve`: each
/// handshake runs in its own task, so a slow client holds up no other.
struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    fn spawn(tcp: TcpListener, tls: Arc<ReloadingTls>) -> Self {
        let local = tcp.local_addr().expect("a bound listener has an address");
        let (tx, ready) = mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                let (stream, peer) = match tcp.accept().await {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        tracing::warn!(error = %e, "webhook accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                // An answer leaves in more than one segment (TLS records,
                // headers then body): with Nagle's algorithm the last one
                // waits for the API server's delayed ACK, 40 ms on Linux.
                if let Err(e) = stream.set_nodelay(true) {
                    tracing::debug!(%peer, error = %e, "webhook: TCP_NODELAY not set");
                }
                let acceptor = tokio_rustls::TlsAcceptor::from(tls.config());
                let tx = tx.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(stream)) => {
                            let _ = tx.send((stream, peer)).await;
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "webhook TLS handshake failed")
                        }
                        Err(_) => tracing::debug!(%peer, "webhook TLS handshake timed out"),
                    }
                });
            }
        });
        Self { ready, local }
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(accepted) => accepted,
            // The accept task never ends while the listener lives.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}
