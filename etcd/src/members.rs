//! The channel under every etcd client: one HTTP/2 connection per member,
//! every request sent to a member that answers.
//!
//! etcd-client's own balanced channel (tower's p2c over every endpoint) keeps
//! picking a member that refuses connections or hangs (etcd-client issue
//! #39), so Bootes gives it this channel instead ([`Client::from_channel`]):
//!
//! * requests go to one preferred member, the last that answered, so a
//!   process's watch, lease and writes meet on the same member;
//! * a member that refuses, drops the connection, answers `Unavailable` or
//!   misses a deadline is set aside at once, and a unary request is sent
//!   again to the next member (its body is kept for that). Bootes's writes
//!   are idempotent in effect (puts and deletes of whole values, fenced
//!   transactions, leases that expire), so resending one whose answer was
//!   lost is safe;
//! * streams (watch, lease keep-alive) cannot be resent: opening one checks
//!   the member first, and when one breaks its member is set aside so that
//!   the caller's next attempt goes elsewhere ([`crate::watch::Watch`],
//!   [`crate::lease::keep_alive`] resume at once);
//! * HTTP/2 keep-alive pings on every connection, answered by etcd's gRPC
//!   layer even while it is busy, notice a hung member (stopped process,
//!   TCP still open) in well under a second, and break its streams;
//! * a set-aside member is probed in the background (gRPC health checks)
//!   and takes requests again once it answers.
//!
//! When every member is set aside, requests still try them all, the
//! longest set aside first.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use etcd_client::Client;
use http_body::{Body as _, Frame};
use tokio::time::Instant;
use tonic::body::Body;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

use crate::connect::EtcdConfig;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type BoxFuture<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>;

/// Methods whose requests are streams: they cannot be kept and resent.
const STREAMING: &[&str] = &[
    "/etcdserverpb.Watch/Watch",
    "/etcdserverpb.Lease/LeaseKeepAlive",
];

/// The shortest wait between two probes of a set-aside member, doubling up
/// to [`PROBE_MAX_INTERVAL`] (a member that comes back is used again within
/// that long).
const PROBE_MIN_INTERVAL: Duration = Duration::from_millis(100);
const PROBE_MAX_INTERVAL: Duration = Duration::from_secs(1);

/// How one process reaches etcd's members.
#[derive(Clone)]
pub struct Members {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Members {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Members")
            .field("endpoints", &self.endpoints())
            .field("preferred", &self.inner.preferred.load(Ordering::Relaxed))
            .finish()
    }
}

struct Inner {
    members: Vec<Member>,
    /// The member requests try first: the last one that answered.
    preferred: AtomicUsize,
    timing: Timing,
}

/// The deadlines of the channel (see [`EtcdConfig`]).
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    /// Deadline of a whole unary request, all members tried (`None`: none).
    pub request: Option<Duration>,
    /// Deadline of one attempt on one member; doubled at each next attempt
    /// (a cluster that is slow, not broken, still answers).
    pub attempt: Duration,
    /// Deadline of a health probe, and of the check before a stream opens.
    pub probe: Duration,
}

struct Member {
    endpoint: String,
    channel: Channel,
    health: Mutex<Health>,
}

#[derive(Debug, Default)]
struct Health {
    /// Set aside since then (`None`: in use).
    aside_since: Option<Instant>,
    /// A background probe runs.
    probing: bool,
}

impl Members {
    /// One lazily connected channel per endpoint of `config`.
    pub fn new(config: &EtcdConfig) -> Result<Self, tonic::transport::Error> {
        let members = config
            .endpoints
            .iter()
            .map(|e| e.trim())
            .filter(|e| !e.is_empty())
            .map(|e| {
                Ok(Member {
                    endpoint: e.to_string(),
                    channel: endpoint(e, config)?.connect_lazy(),
                    health: Mutex::new(Health::default()),
                })
            })
            .collect::<Result<Vec<_>, tonic::transport::Error>>()?;
        Ok(Self {
            inner: Arc::new(Inner {
                // Spread processes over the members from the start.
                preferred: AtomicUsize::new(fastrand::usize(..members.len().max(1))),
                members,
                timing: Timing {
                    request: config.request_timeout,
                    attempt: config.attempt_timeout,
                    probe: config.probe_timeout,
                },
            }),
        })
    }

    pub fn endpoints(&self) -> Vec<&str> {
        self.inner
            .members
            .iter()
            .map(|m| m.endpoint.as_str())
            .collect()
    }

    /// The member requests try first now.
    pub fn preferred(&self) -> &str {
        let i = self.inner.preferred.load(Ordering::Relaxed);
        &self.inner.members[i].endpoint
    }

    /// The endpoints set aside now.
    pub fn set_aside(&self) -> Vec<&str> {
        self.inner
            .members
            .iter()
            .filter(|m| m.health().aside_since.is_some())
            .map(|m| m.endpoint.as_str())
            .collect()
    }

    /// Health-checks every member at once and returns when the first answers
    /// (it becomes the preferred member), or after `timeout` when none does.
    /// Members that fail are set aside; those that have not answered yet go
    /// on being checked in the background. So a first request never waits
    /// on a member that is down, or hung, at start.
    pub async fn probe_all(&self, timeout: Duration) -> bool {
        let (tx, mut rx) = tokio::sync::mpsc::channel(self.inner.members.len().max(1));
        for i in 0..self.inner.members.len() {
            let (inner, tx) = (self.inner.clone(), tx.clone());
            tokio::spawn(async move {
                let ok = inner.check(i, timeout).await.is_ok();
                if ok {
                    inner.restore(i);
                } else {
                    inner.set_aside(i, "no answer to the first health check");
                }
                let _ = tx.send((i, ok)).await;
            });
        }
        drop(tx);
        let deadline = Instant::now() + timeout;
        while let Ok(Some((i, ok))) = tokio::time::timeout_at(deadline, rx.recv()).await {
            if ok {
                self.inner.preferred.store(i, Ordering::Relaxed);
                return true;
            }
        }
        false
    }

    /// An etcd client over this channel.
    pub async fn client(
        &self,
        options: etcd_client::ConnectOptions,
    ) -> Result<Client, etcd_client::Error> {
        let service = tower::util::BoxCloneSyncService::new(self.clone());
        Client::from_channel(etcd_client::Channel::Custom(service), Some(options)).await
    }
}

/// The tonic endpoint of one member: connect deadline, keep-alive pings,
/// TLS. An endpoint without a scheme gets `https://` with TLS configured,
/// `http://` otherwise (as etcd-client did).
fn endpoint(url: &str, config: &EtcdConfig) -> Result<Endpoint, tonic::transport::Error> {
    let url = if url.contains("://") {
        url.to_string()
    } else if config.tls.is_some() {
        format!("https://{url}")
    } else {
        format!("http://{url}")
    };
    let (interval, timeout) = config.keep_alive;
    let mut endpoint = Endpoint::from_shared(url)?
        .connect_timeout(config.connect_timeout)
        .http2_keep_alive_interval(interval)
        .keep_alive_timeout(timeout)
        .keep_alive_while_idle(true)
        .tcp_nodelay(true);
    if endpoint.uri().scheme_str() == Some("https") {
        let mut tls = ClientTlsConfig::new();
        if let Some(t) = &config.tls {
            if let Some(ca) = &t.ca_pem {
                tls = tls.ca_certificate(tonic::transport::Certificate::from_pem(ca));
            }
            if let Some((cert, key)) = &t.identity {
                tls = tls.identity(tonic::transport::Identity::from_pem(cert, key));
            }
        }
        endpoint = endpoint.tls_config(tls)?;
    }
    Ok(endpoint)
}

impl Member {
    fn health(&self) -> std::sync::MutexGuard<'_, Health> {
        self.health.lock().expect("member health lock")
    }
}

impl Inner {
    /// Members in the order a request tries them: those in use from the
    /// preferred one on, then those set aside, the longest set aside first.
    fn order(&self) -> Vec<usize> {
        let n = self.members.len();
        let start = self.preferred.load(Ordering::Relaxed);
        let mut in_use = Vec::with_capacity(n);
        let mut aside = Vec::new();
        for i in (0..n).map(|k| (start + k) % n) {
            match self.members[i].health().aside_since {
                None => in_use.push(i),
                Some(since) => aside.push((since, i)),
            }
        }
        aside.sort();
        in_use.extend(aside.into_iter().map(|(_, i)| i));
        in_use
    }

    fn set_aside(self: &Arc<Self>, i: usize, why: &str) {
        let member = &self.members[i];
        let start_probe = {
            let mut h = member.health();
            if h.aside_since.is_none() {
                h.aside_since = Some(Instant::now());
                tracing::warn!(
                    endpoint = member.endpoint,
                    reason = why,
                    "etcd member set aside"
                );
            }
            !std::mem::replace(&mut h.probing, true)
        };
        if self.preferred.load(Ordering::Relaxed) == i {
            self.preferred
                .store((i + 1) % self.members.len(), Ordering::Relaxed);
        }
        if start_probe {
            tokio::spawn(self.clone().probe(i));
        }
    }

    fn restore(&self, i: usize) {
        let member = &self.members[i];
        let mut h = member.health();
        if h.aside_since.take().is_some() {
            tracing::info!(endpoint = member.endpoint, "etcd member answers again");
        }
    }

    /// Probes member `i` until it answers, then puts it back in use.
    async fn probe(self: Arc<Self>, i: usize) {
        let mut delay = Duration::ZERO;
        loop {
            tokio::time::sleep(delay).await;
            if self.check(i, self.timing.probe).await.is_ok() {
                break;
            }
            delay = (delay * 2).clamp(PROBE_MIN_INTERVAL, PROBE_MAX_INTERVAL);
        }
        self.restore(i);
        self.members[i].health().probing = false;
    }

    /// A gRPC health check of member `i` (etcd serves `grpc.health.v1`).
    async fn check(&self, i: usize, timeout: Duration) -> Result<(), BoxError> {
        let mut health = HealthClient::new(self.members[i].channel.clone());
        let answer = tokio::time::timeout(
            timeout,
            health.check(HealthCheckRequest {
                service: String::new(),
            }),
        )
        .await
        .map_err(|_| format!("no health answer within {timeout:?}"))??;
        match answer.into_inner().status() {
            ServingStatus::Serving => Ok(()),
            other => Err(format!("health {}", other.as_str_name()).into()),
        }
    }

    /// Sends a unary request to one member after another until one answers.
    async fn unary(
        self: Arc<Self>,
        parts: http::request::Parts,
        body: Body,
    ) -> Result<http::Response<Body>, BoxError> {
        let body = collect(body).await?;
        let deadline = self.timing.request.map(|d| Instant::now() + d);
        let mut attempt = self.timing.attempt;
        let mut last: Option<BoxError> = None;
        loop {
            for i in self.order() {
                let mut timeout = attempt;
                if let Some(deadline) = deadline {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(last.unwrap_or_else(|| "etcd request deadline".into()));
                    }
                    timeout = timeout.min(left);
                }
                let request = rebuild(&parts, body.clone());
                let sent = self.members[i].channel.clone();
                let outcome =
                    tokio::time::timeout(timeout, tower::ServiceExt::oneshot(sent, request)).await;
                let error: BoxError = match outcome {
                    Ok(Ok(response)) if !unavailable(&response) => {
                        self.preferred.store(i, Ordering::Relaxed);
                        return Ok(self.watched(i, response));
                    }
                    Ok(Ok(_)) => "etcd member answered Unavailable".into(),
                    Ok(Err(e)) => e.into(),
                    Err(_) => format!("no answer within {timeout:?}").into(),
                };
                self.set_aside(i, &error.to_string());
                last = Some(error);
            }
            // Every member failed once: go round again with longer attempts
            // (a cluster electing a leader answers soon), until the deadline.
            attempt *= 2;
            if deadline.is_none() && attempt > self.timing.attempt * 8 {
                return Err(last.unwrap_or_else(|| "no etcd member".into()));
            }
        }
    }

    /// Opens a stream on the first member in use that passes a health check.
    /// A failure once the request is sent is returned (its body is gone);
    /// the caller opens the stream again, on another member then.
    async fn stream(
        self: Arc<Self>,
        request: http::Request<Body>,
    ) -> Result<http::Response<Body>, BoxError> {
        let order = self.order();
        let mut chosen = order[0];
        for &i in &order {
            match self.check(i, self.timing.probe).await {
                Ok(()) => {
                    chosen = i;
                    break;
                }
                Err(e) => self.set_aside(i, &e.to_string()),
            }
        }
        let sent = self.members[chosen].channel.clone();
        match tokio::time::timeout(
            self.timing.attempt,
            tower::ServiceExt::oneshot(sent, request),
        )
        .await
        {
            Ok(Ok(response)) if !unavailable(&response) => {
                self.preferred.store(chosen, Ordering::Relaxed);
                Ok(self.watched(chosen, response))
            }
            Ok(Ok(response)) => {
                self.set_aside(chosen, "etcd member answered Unavailable");
                Ok(response)
            }
            Ok(Err(e)) => {
                self.set_aside(chosen, &e.to_string());
                Err(e.into())
            }
            Err(_) => {
                let e = format!("stream not opened within {:?}", self.timing.attempt);
                self.set_aside(chosen, &e);
                Err(e.into())
            }
        }
    }

    /// The response, its body watched: an error reading it (the connection
    /// broke, a keep-alive ping went unanswered) sets the member aside.
    fn watched(self: &Arc<Self>, i: usize, response: http::Response<Body>) -> http::Response<Body> {
        let inner = self.clone();
        response.map(|body| {
            Body::new(Watched {
                body,
                on_error: Some(Box::new(move |e: &str| inner.set_aside(i, e))),
            })
        })
    }
}

impl tower::Service<http::Request<Body>> for Members {
    type Response = http::Response<Body>;
    type Error = BoxError;
    type Future = BoxFuture<Result<Self::Response, BoxError>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        // Each call waits for its own member's channel.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let inner = self.inner.clone();
        if inner.members.is_empty() {
            return Box::pin(async { Err("no etcd endpoint".into()) });
        }
        if STREAMING.contains(&request.uri().path()) {
            Box::pin(inner.stream(request))
        } else {
            let (parts, body) = request.into_parts();
            Box::pin(inner.unary(parts, body))
        }
    }
}

/// Whether etcd refused the call as unavailable in the response headers
/// (a trailers-only gRPC answer: the member is stopping or cut off).
fn unavailable(response: &http::Response<Body>) -> bool {
    response
        .headers()
        .get("grpc-status")
        .is_some_and(|s| s.as_bytes() == b"14")
}

/// A request body read whole, so that it can be sent again.
async fn collect(mut body: Body) -> Result<Bytes, BoxError> {
    let mut bytes = BytesMut::new();
    while let Some(frame) =
        std::future::poll_fn(|cx| std::pin::Pin::new(&mut body).poll_frame(cx)).await
    {
        if let Ok(data) = frame?.into_data() {
            bytes.extend_from_slice(&data);
        }
    }
    Ok(bytes.freeze())
}

fn rebuild(parts: &http::request::Parts, body: Bytes) -> http::Request<Body> {
    let mut request = http::Request::new(Body::new(Once(Some(body))));
    *request.method_mut() = parts.method.clone();
    *request.uri_mut() = parts.uri.clone();
    *request.version_mut() = parts.version;
    *request.headers_mut() = parts.headers.clone();
    request
}

/// One chunk of bytes as a body.
struct Once(Option<Bytes>);

impl http_body::Body for Once {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Poll::Ready(self.0.take().map(|b| Ok(Frame::data(b))))
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_none()
    }
}

type OnError = Box<dyn FnOnce(&str) + Send>;

/// A response body that reports its first error.
struct Watched {
    body: Body,
    on_error: Option<OnError>,
}

impl http_body::Body for Watched {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let frame = std::pin::Pin::new(&mut self.body).poll_frame(cx);
        if let Poll::Ready(Some(Err(e))) = &frame {
            if let Some(report) = self.on_error.take() {
                report(&e.to_string());
            }
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}
