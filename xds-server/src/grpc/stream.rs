//! One task per xDS stream: the I/O shell around a
//! [`bootes_xds::session::Session`]. It moves requests, snapshot changes and
//! timers into the session and its responses out, and logs and counts what
//! the session observed.

use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex, PoisonError};

use bootes_proto::ResourceType;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tonic::server::StreamingService;
use tonic::{Status, Streaming};
use tracing::Instrument;

use super::convergence::Convergence;
use super::policy::status;
use super::{BoxFuture, Server};
use crate::authz::PeerIdentity;
use crate::clients::Reports;
use crate::listener::ConnInfo;
use crate::metrics::{ReasonLabel, TypeLabel, VariantLabel};
use bootes_xds::response::Encoded;
use bootes_xds::session::{Access, Nodes, Note, Output, Protocol, Rules, Session};
use bootes_xds::snapshots::Snapshot;
use bootes_xds::{Effects, TypeReport};

impl<M: Protocol> Reports for Mutex<Session<M>> {
    fn report(&self) -> BTreeMap<ResourceType, TypeReport> {
        self.lock().unwrap_or_else(PoisonError::into_inner).report()
    }
}

/// What the server knows about nodes, for one stream's peer.
struct Gate<'a> {
    server: &'a Server,
    peer: Option<&'a PeerIdentity>,
}

impl Nodes for Gate<'_> {
    fn authorize(&self, node: &str) -> Access {
        self.server
            .policy
            .authorize(self.peer, node, self.server.snapshots.as_ref())
    }

    fn snapshot(&self, node: &str) -> Option<Arc<Snapshot>> {
        self.server.snapshots.for_node(node)
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

impl<M: Protocol> StreamingService<M::Request> for Streams<M> {
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

type Sender = mpsc::Sender<Result<Arc<Encoded>, Status>>;

async fn serve<M: Protocol>(
    server: Arc<Server>,
    only: Option<ResourceType>,
    conn: ConnInfo,
    mut requests: Streaming<M::Request>,
    tx: Sender,
) {
    let policy = &server.policy;
    let peer = match policy.peer(&conn) {
        Ok(peer) => peer,
        Err(status) => {
            let _ = tx.send(Err(status)).await;
            return;
        }
    };
    let gate = Gate {
        server: &server,
        peer,
    };
    let rules = Rules {
        only,
        limits: policy.limits,
        secrets_allowed: policy.secrets_allowed(peer),
    };
    // Shared with the client index, which reads its report only when asked
    // (CSDS, the status writer); locked here only while handling an input.
    let session = Arc::new(Mutex::new(Session::<M>::new(
        rules,
        Instant::now().into_std(),
        server.max_connection_age,
        fastrand::f64(),
    )));
    let lock = || session.lock().unwrap_or_else(PoisonError::into_inner);
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
    // One timer for the stream's deadline, moved when the deadline moves.
    let timer = tokio::time::sleep(std::time::Duration::ZERO);
    tokio::pin!(timer);
    let mut timer_at = None;
    let mut convergence = Convergence::default();

    let end = loop {
        let (wants_changes, is_draining, deadline) = {
            let s = lock();
            (s.wants_changes(), s.draining(), s.deadline())
        };
        if deadline != timer_at {
            timer_at = deadline;
            if let Some(at) = deadline {
                timer.as_mut().reset(Instant::from_std(at));
            }
        }
        let mut applied_at = None;
        let output = tokio::select! {
            message = requests.message() => match message {
                Ok(Some(req)) => lock().on_request(req, &gate, &server.cache),
                Ok(None) => break None,
                Err(status) => break Some(status),
            },
            changed = changes.changed(), if wants_changes => {
                if changed.is_err() {
                    break Some(Status::unavailable("server stopping"));
                }
                applied_at = Some(changes.borrow_and_update().1);
                lock().on_change(&gate, &server.cache)
            }
            _ = draining.changed(), if !is_draining => {
                if *draining.borrow() {
                    let place = server.drain_spread.place(|| server.metrics.streams());
                    lock().on_drain(Instant::now().into_std(), server.drain_period, place);
                }
                continue;
            }
            () = &mut timer, if deadline.is_some() => {
                lock().on_timer(Instant::now().into_std())
            }
        };
        match act(
            &server,
            &session,
            &mut handle,
            &tx,
            output,
            applied_at,
            &mut convergence,
        )
        .await
        {
            Act::Continue => {}
            Act::ClientGone => break None,
            Act::End(status) => break Some(status),
        }
    };
    match end {
        None => tracing::info!("stream closed by the client"),
        Some(status) => {
            tracing::info!(code = ?status.code(), message = status.message(), "stream ended");
            let _ = tx.send(Err(status)).await;
        }
    }
}

enum Act {
    Continue,
    ClientGone,
    End(Status),
}

/// Carries out a session's output: notes logged, refusals counted, the
/// stream registered under its node, responses sent, then the end if any.
async fn act<M: Protocol>(
    server: &Server,
    session: &Arc<Mutex<Session<M>>>,
    handle: &mut crate::clients::StreamHandle,
    tx: &Sender,
    output: Output,
    applied_at: Option<Instant>,
    convergence: &mut Convergence,
) -> Act {
    for note in &output.notes {
        match note {
            Note::Node(node) => {
                tracing::Span::current().record("node", node.as_str());
            }
            Note::Opened => tracing::info!("stream opened"),
            Note::WaitingForAuthorization => {
                tracing::info!("stream opened; waiting for the node's binding to authorize it")
            }
            Note::WaitingForBinding => {
                tracing::info!("stream opened; node has no binding yet; waiting")
            }
            Note::SecretsRefused => tracing::warn!(
                "{}; this stream's SDS requests are not answered",
                bootes_xds::session::SECRETS_REFUSED
            ),
        }
    }
    for reason in &output.refused {
        server
            .metrics
            .denied
            .get_or_create(&ReasonLabel { reason })
            .inc();
    }
    if let Some(node) = &output.identified {
        handle.identify(node, session.clone());
    }
    if output.report_changed {
        handle.changed();
    }
    if !send(server, tx, output.effects, applied_at, convergence).await {
        return Act::ClientGone;
    }
    match output.end {
        Some(refusal) => Act::End(status(&server.metrics, refusal)),
        None => Act::Continue,
    }
}

/// Logs and counts what the state machine observed, and writes its
/// responses. False when the client is gone.
async fn send(
    server: &Server,
    tx: &Sender,
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
