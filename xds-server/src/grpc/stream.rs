//! One task per xDS stream: moves requests and snapshot changes into a
//! protocol state machine and its responses out.

use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};

use bootes_proto::envoy::core::Node;
use bootes_proto::envoy::discovery::{DeltaDiscoveryRequest, DiscoveryRequest};
use bootes_proto::ResourceType;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tonic::server::StreamingService;
use tonic::{Status, Streaming};
use tracing::Instrument;

use super::convergence::Convergence;
use super::policy::{denied, is_secret, SECRETS_REFUSED};
use super::{BoxFuture, Server};
use crate::authz::Decision;
use crate::clients::Reports;
use crate::listener::ConnInfo;
use crate::metrics::{ReasonLabel, TypeLabel, VariantLabel};
use bootes_xds::delta::DeltaStream;
use bootes_xds::response::{Encoded, ResponseCache};
use bootes_xds::snapshots::Snapshot;
use bootes_xds::sotw::SotwStream;
use bootes_xds::{Effects, Identity, TypeReport};

/// What the stream task needs from a protocol state machine.
pub trait Machine: Default + Send + 'static {
    type Request: prost::Message + Default + Send + 'static;
    const VARIANT: &'static str;
    fn node(req: &Self::Request) -> Option<&Node>;
    fn type_url(req: &mut Self::Request) -> &mut String;
    /// The NACK's `error_detail.message`, if the request is a NACK.
    fn error_detail(req: &mut Self::Request) -> Option<&mut String>;
    /// How many resource names the request carries.
    fn name_count(req: &Self::Request) -> usize;
    fn on_request(&mut self, req: &Self::Request, cache: &ResponseCache) -> Effects;
    fn on_snapshot(&mut self, snapshot: Option<Arc<Snapshot>>, cache: &ResponseCache) -> Effects;
    fn report(&self) -> BTreeMap<ResourceType, TypeReport>;
}

impl Machine for SotwStream {
    type Request = DiscoveryRequest;
    const VARIANT: &'static str = crate::metrics::SOTW;
    fn node(req: &DiscoveryRequest) -> Option<&Node> {
        req.node.as_ref()
    }
    fn type_url(req: &mut DiscoveryRequest) -> &mut String {
        &mut req.type_url
    }
    fn error_detail(req: &mut DiscoveryRequest) -> Option<&mut String> {
        req.error_detail.as_mut().map(|e| &mut e.message)
    }
    fn name_count(req: &DiscoveryRequest) -> usize {
        req.resource_names.len() + req.resource_locators.len()
    }
    fn on_request(&mut self, req: &DiscoveryRequest, cache: &ResponseCache) -> Effects {
        SotwStream::on_request(self, req, cache)
    }
    fn on_snapshot(&mut self, s: Option<Arc<Snapshot>>, cache: &ResponseCache) -> Effects {
        SotwStream::on_snapshot(self, s, cache)
    }
    fn report(&self) -> BTreeMap<ResourceType, TypeReport> {
        SotwStream::report(self)
    }
}

impl Machine for DeltaStream {
    type Request = DeltaDiscoveryRequest;
    const VARIANT: &'static str = crate::metrics::DELTA;
    fn node(req: &DeltaDiscoveryRequest) -> Option<&Node> {
        req.node.as_ref()
    }
    fn type_url(req: &mut DeltaDiscoveryRequest) -> &mut String {
        &mut req.type_url
    }
    fn error_detail(req: &mut DeltaDiscoveryRequest) -> Option<&mut String> {
        req.error_detail.as_mut().map(|e| &mut e.message)
    }
    fn name_count(req: &DeltaDiscoveryRequest) -> usize {
        req.resource_names_subscribe.len()
            + req.resource_names_unsubscribe.len()
            + req.initial_resource_versions.len()
            + req.resource_locators_subscribe.len()
            + req.resource_locators_unsubscribe.len()
    }
    fn on_request(&mut self, req: &DeltaDiscoveryRequest, cache: &ResponseCache) -> Effects {
        DeltaStream::on_request(self, req, cache)
    }
    fn on_snapshot(&mut self, s: Option<Arc<Snapshot>>, cache: &ResponseCache) -> Effects {
        DeltaStream::on_snapshot(self, s, cache)
    }
    fn report(&self) -> BTreeMap<ResourceType, TypeReport> {
        DeltaStream::report(self)
    }
}

impl<M: Machine> Reports for Mutex<M> {
    fn report(&self) -> BTreeMap<ResourceType, TypeReport> {
        self.lock().unwrap_or_else(PoisonError::into_inner).report()
    }
}

/// The streaming RPC handler for state machine `M`; `only` restricts a
/// per-type service to its type.
pub struct Streams<M> {
    server: Arc<Server>,
    only: Option<ResourceType>,
    _machine: PhantomData<fn() -> M>,
}

impl<M> Streams<M> {
    pub fn new(server: Arc<Server>, only: Option<ResourceType>) -> Self {
        Self {
            server,
            only,
            _machine: PhantomData,
        }
    }
}

type ResponseStream = ReceiverStream<Result<Arc<Encoded>, Status>>;

impl<M: Machine> StreamingService<M::Request> for Streams<M> {
    type Response = Arc<Encoded>;
    type ResponseStream = ResponseStream;
    type Future = BoxFuture<tonic::Response<ResponseStream>, Status>;

    fn call(&mut self, request: tonic::Request<Streaming<M::Request>>) -> Self::Future {
        let server = self.server.clone();
        let only = self.only;
        Box::pin(async move {
            let conn = request
                .extensions()
                .get::<ConnInfo>()
                .cloned()
                .unwrap_or_default();
            let (tx, rx) = mpsc::channel(16);
            let span = tracing::info_span!(
                "stream",
                variant = M::VARIANT,
                service = only.map(|t| t.short_name()).unwrap_or("ADS"),
                peer = ?conn.remote_addr,
                node = tracing::field::Empty,
            );
            tokio::spawn(serve::<M>(server, only, conn, request.into_inner(), tx).instrument(span));
            Ok(tonic::Response::new(ReceiverStream::new(rx)))
        })
    }
}

enum End {
    ClientClosed,
    Error(Status),
}

async fn serve<M: Machine>(
    server: Arc<Server>,
    only: Option<ResourceType>,
    conn: ConnInfo,
    mut requests: Streaming<M::Request>,
    tx: mpsc::Sender<Result<Arc<Encoded>, Status>>,
) {
    let policy = &server.policy;
    let peer = match policy.peer(&conn) {
        Ok(peer) => peer,
        Err(status) => {
            let _ = tx.send(Err(status)).await;
            return;
        }
    };
    // Whether the node ID claimed is authorized now: until then the stream
    // gets no snapshot and leaves no trace in CSDS or etcd.
    let mut authorized = false;
    let mut secrets_refused_logged = false;
    // Registered with the client index only once authorized.
    let mut identified = false;
    // Shared with the client index, which reads its report only when asked
    // (CSDS, the status writer); locked here only while handling an event.
    let machine = Arc::new(Mutex::new(M::default()));
    let lock = || machine.lock().unwrap_or_else(PoisonError::into_inner);
    let mut identity = Identity::default();
    let mut handle = server.clients.register();
    let gauge = server
        .metrics
        .connected_streams
        .get_or_create(&VariantLabel {
            variant: M::VARIANT,
        })
        .clone();
    gauge.inc();
    let _gauge = scopeguard(move || {
        gauge.dec();
    });
    let mut changes = server.snapshots.subscribe();
    let mut draining = server.draining.clone();
    let mut drain_at: Option<Pin<Box<tokio::time::Sleep>>> = None;
    let max_age = server.max_connection_age.map(|age| {
        // ± 10% so streams opened together do not all end together.
        let spread = age / 5;
        Box::pin(tokio::time::sleep(
            age - age / 10 + spread.mul_f64(fastrand::f64()),
        ))
    });
    let mut max_age = max_age;

    let mut convergence = Convergence::default();
    let end = loop {
        tokio::select! {
            message = requests.message() => {
                let mut req = match message {
                    Ok(Some(req)) => req,
                    Ok(None) => break End::ClientClosed,
                    Err(status) => break End::Error(status),
                };
                if let Some(ty) = only {
                    let url = M::type_url(&mut req);
                    if url.is_empty() {
                        *url = ty.type_url().to_string();
                    } else if url != ty.type_url() {
                        break End::Error(Status::invalid_argument(format!(
                            "this service serves {} only, not {url}",
                            ty.type_url()
                        )));
                    }
                }
                if let Err(status) = policy.check_names(M::name_count(&req)) {
                    break End::Error(denied(&server.metrics, "too_many_names", status));
                }
                if let Some(detail) = M::error_detail(&mut req) {
                    policy.bound_detail(detail);
                }
                let first = match identity.identify(M::node(&req)) {
                    Ok(first) => first,
                    Err(e) => break End::Error(Status::invalid_argument(e.to_string())),
                };
                let node = identity.get().unwrap_or_default().to_string();
                if first {
                    if let Err(status) = policy.check_node_id(&node) {
                        break End::Error(status);
                    }
                    tracing::Span::current().record("node", node.as_str());
                    match policy.authorize(peer, &node, server.snapshots.as_ref()) {
                        Decision::Deny(why) => {
                            break End::Error(denied(&server.metrics, "node_not_authorized", Status::permission_denied(why)));
                        }
                        Decision::Wait => tracing::info!("stream opened; waiting for the node's binding to authorize it"),
                        Decision::Allow => {
                            authorized = true;
                            tracing::info!("stream opened");
                        }
                    }
                    if authorized {
                        handle.identify(&node, machine.clone());
                        identified = true;
                    }
                    let snapshot = authorized.then(|| server.snapshots.for_node(&node)).flatten();
                    if authorized && snapshot.is_none() {
                        tracing::info!("node has no binding yet; waiting");
                    }
                    let effects = lock().on_snapshot(snapshot, &server.cache);
                    if !send(&server, &tx, effects, None, &mut convergence).await {
                        break End::ClientClosed;
                    }
                }
                if is_secret(M::type_url(&mut req)) && !policy.secrets_allowed(peer) {
                    if only == Some(ResourceType::Secret) {
                        break End::Error(denied(&server.metrics, "unauthenticated_secrets", Status::permission_denied(SECRETS_REFUSED)));
                    }
                    // On ADS the other types keep flowing; the SDS
                    // subscription is not answered.
                    server.metrics.denied.get_or_create(&ReasonLabel { reason: "unauthenticated_secrets" }).inc();
                    if !std::mem::replace(&mut secrets_refused_logged, true) {
                        tracing::warn!("{SECRETS_REFUSED}; this stream's SDS requests are not answered");
                    }
                    continue;
                }
                let effects = lock().on_request(&req, &server.cache);
                // A request is what moves ACKs, NACKs and subscriptions.
                if identified {
                    handle.changed();
                }
                if !send(&server, &tx, effects, None, &mut convergence).await {
                    break End::ClientClosed;
                }
            }
            changed = changes.changed(), if identity.get().is_some() => {
                if changed.is_err() {
                    break End::Error(Status::unavailable("server stopping"));
                }
                let applied_at = changes.borrow_and_update().1;
                let node = identity.get().unwrap_or_default().to_string();
                // The binding may have changed (another service account, or
                // it appeared for a stream waiting on it).
                match policy.authorize(peer, &node, server.snapshots.as_ref()) {
                    Decision::Deny(why) => {
                        break End::Error(denied(&server.metrics, "node_not_authorized", Status::permission_denied(why)));
                    }
                    Decision::Wait => authorized = false,
                    Decision::Allow => authorized = true,
                }
                if authorized && !identified {
                    handle.identify(&node, machine.clone());
                    identified = true;
                }
                let snapshot = authorized.then(|| server.snapshots.for_node(&node)).flatten();
                let effects = lock().on_snapshot(snapshot, &server.cache);
                if !send(&server, &tx, effects, Some(applied_at), &mut convergence).await {
                    break End::ClientClosed;
                }
            }
            _ = draining.changed(), if drain_at.is_none() => {
                if *draining.borrow() {
                    let wait = server.drain_period.mul_f64(fastrand::f64());
                    drain_at = Some(Box::pin(tokio::time::sleep(wait)));
                }
            }
            () = async { drain_at.as_mut().expect("guarded").await }, if drain_at.is_some() => {
                break End::Error(Status::unavailable("xds-server is shutting down; reconnect to another replica"));
            }
            () = async { max_age.as_mut().expect("guarded").await }, if max_age.is_some() => {
                break End::Error(Status::unavailable("max connection age reached; reconnect"));
            }
        }
    };
    match end {
        End::ClientClosed => tracing::info!("stream closed by the client"),
        End::Error(status) => {
            tracing::info!(code = ?status.code(), message = status.message(), "stream ended");
            let _ = tx.send(Err(status)).await;
        }
    }
}

/// Logs and counts what the state machine observed, and writes its
/// responses. False when the client is gone.
async fn send(
    server: &Server,
    tx: &mpsc::Sender<Result<Arc<Encoded>, Status>>,
    effects: Effects,
    change_applied_at: Option<Instant>,
    convergence: &mut Convergence,
) -> bool {
    let metrics = &server.metrics;
    for (ty, version) in &effects.acks {
        let label = TypeLabel {
            r#type: ty.short_name(),
        };
        metrics.acks.get_or_create(&label).inc();
        if let Some(took) = convergence.acked(*ty, version, std::time::Instant::now()) {
            metrics
                .ack_convergence
                .get_or_create(&label)
                .observe(took.as_secs_f64());
        }
        tracing::debug!(r#type = %ty, version, "ACK");
    }
    for nack in &effects.nacks {
        convergence.nacked(nack.ty, &nack.version);
        metrics
            .nacks
            .get_or_create(&TypeLabel {
                r#type: nack.ty.short_name(),
            })
            .inc();
        tracing::warn!(
            r#type = %nack.ty,
            version = nack.version,
            resources = ?nack.resources,
            detail = nack.detail,
            "NACK"
        );
    }
    for reason in &effects.ignored {
        tracing::debug!(reason, "request ignored");
    }
    for response in effects.responses {
        // Debug: at info, one line per stream per push floods the log of a
        // replica serving thousands of Envoys (pushes are counted in metrics).
        tracing::debug!(
            r#type = %response.ty,
            version = response.version_info,
            resources = response.resources.len(),
            removed = response.removed.len(),
            "sending"
        );
        metrics
            .pushes
            .get_or_create(&TypeLabel {
                r#type: response.ty.short_name(),
            })
            .inc();
        convergence.sent(
            response.ty,
            &response.version_info,
            change_applied_at.map(Instant::into_std),
        );
        if tx.send(Ok(response)).await.is_err() {
            return false;
        }
        if let Some(at) = change_applied_at {
            metrics.push_latency.observe(at.elapsed().as_secs_f64());
        }
    }
    metrics
        .encodes
        .inner()
        .store(server.cache.encodes(), std::sync::atomic::Ordering::Relaxed);
    true
}

/// Runs `f` when dropped.
fn scopeguard(f: impl FnOnce()) -> impl Drop {
    struct Guard<F: FnOnce()>(Option<F>);
    impl<F: FnOnce()> Drop for Guard<F> {
        fn drop(&mut self) {
            if let Some(f) = self.0.take() {
                f();
            }
        }
    }
    Guard(Some(f))
}
