//! One xDS stream from its first request to its end, as a pure state
//! machine: the same sequence for state of the world and delta, for ADS and
//! the per-type services.
//!
//! 1. [`Session::accept`] — a request within this server's bounds;
//! 2. [`Session::identify`] — the node ID, named by the first request;
//! 3. [`Session::authorize`] — may the stream's peer claim that node?
//! 4. [`Session::subscribe`] — the node's snapshot, once authorized;
//! 5. then requests ([`Session::on_request`]), snapshot changes
//!    ([`Session::on_change`]) and timers ([`Session::on_timer`]: the stream's
//!    maximum age, the drain) until the stream ends.
//!
//! Inputs are messages, [`Nodes`] (what the shell knows about nodes now) and
//! instants; outputs are [`Output`]s: responses, observations, and the end
//! of the stream if it must end. The shell (`bootes-xds-server`'s
//! `grpc/stream.rs`) moves them to and from the network, logs and counts.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bootes_proto::envoy::core::Node;
use bootes_proto::envoy::discovery::{DeltaDiscoveryRequest, DiscoveryRequest};
use bootes_proto::ResourceType;

use crate::delta::DeltaStream;
use crate::response::{Encoded, NameError, NameErrors, ResourceSet, ResponseCache};
use crate::snapshots::Snapshot;
use crate::sotw::SotwStream;
use crate::{Effects, Identity, TypeReport};

/// A protocol variant's state machine, as a session drives it.
pub trait Protocol: Default + Send + 'static {
    type Request: prost::Message + Default + Send + 'static;
    /// `sotw` or `delta` (a metric label).
    const VARIANT: &'static str;
    fn node(req: &Self::Request) -> Option<&Node>;
    fn type_url(req: &mut Self::Request) -> &mut String;
    /// The NACK's `error_detail.message`, if the request is a NACK.
    fn error_detail(req: &mut Self::Request) -> Option<&mut String>;
    /// How many resource names the request carries.
    fn name_count(req: &Self::Request) -> usize;
    /// The names the request subscribes to (state of the world: all of
    /// them; delta: those it adds).
    fn named(req: &Self::Request) -> &[String];
    /// A response carrying only errors for names of `ty`.
    fn errors(ty: ResourceType, errors: NameErrors, cache: &ResponseCache) -> Arc<Encoded>;
    fn on_request(&mut self, req: &Self::Request, cache: &ResponseCache) -> Effects;
    fn on_snapshot(&mut self, snapshot: Option<Arc<Snapshot>>, cache: &ResponseCache) -> Effects;
    fn report(&self) -> BTreeMap<ResourceType, TypeReport>;
}

impl Protocol for SotwStream {
    type Request = DiscoveryRequest;
    const VARIANT: &'static str = "sotw";
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
    fn named(req: &DiscoveryRequest) -> &[String] {
        &req.resource_names
    }
    fn errors(ty: ResourceType, errors: NameErrors, cache: &ResponseCache) -> Arc<Encoded> {
        cache.state_of_the_world(ty, ResourceSet::with_errors(Vec::new(), errors))
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

impl Protocol for DeltaStream {
    type Request = DeltaDiscoveryRequest;
    const VARIANT: &'static str = "delta";
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
    fn named(req: &DeltaDiscoveryRequest) -> &[String] {
        &req.resource_names_subscribe
    }
    fn errors(ty: ResourceType, errors: NameErrors, cache: &ResponseCache) -> Arc<Encoded> {
        cache.delta(ty, Vec::new(), Vec::new(), errors)
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

/// May a stream's peer claim a node ID, given the node's binding now?
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Access {
    Allow,
    /// Only a binding can tell (SPIFFE names, node not bound yet): the
    /// stream waits and receives nothing, as an unbound node does.
    Wait,
    Deny(String),
}

/// What the shell knows about nodes at the moment of an input.
pub trait Nodes {
    /// May this stream's peer claim `node`?
    fn authorize(&self, node: &str) -> Access;
    /// The node's snapshot, if it is bound to one.
    fn snapshot(&self, node: &str) -> Option<Arc<Snapshot>>;
}

/// The gRPC status class a refusal maps to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Code {
    InvalidArgument,
    PermissionDenied,
    ResourceExhausted,
    Unavailable,
}

/// Why a stream ends, or a request is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub code: Code,
    pub message: String,
    /// The `reason` label it is counted under in the refusals metric
    /// (`bootes_xds_denied_total`), if it is counted.
    pub counted: Option<&'static str>,
}

impl Refusal {
    fn new(code: Code, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            counted: None,
        }
    }

    fn counted(mut self, reason: &'static str) -> Self {
        self.counted = Some(reason);
        self
    }
}

/// Per-request bounds (docs/DESIGN.md §5): what one client may cost.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Resource names (subscribe + unsubscribe + initial versions) one
    /// request may carry.
    pub max_resource_names: usize,
    /// NACK details are cut to this many bytes on receipt.
    pub max_nack_detail: usize,
    pub max_node_id: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_resource_names: 10_000,
            max_nack_detail: bootes_proto::limits::DEFAULT_MAX_NACK_DETAIL,
            max_node_id: bootes_proto::limits::DEFAULT_MAX_NODE_ID,
        }
    }
}

impl Limits {
    /// A node ID's length is bounded before it is used anywhere.
    pub fn check_node_id(&self, node: &str) -> Result<(), Refusal> {
        if node.len() > self.max_node_id {
            return Err(Refusal::new(
                Code::InvalidArgument,
                format!(
                    "node.id is {} bytes; at most {} are accepted",
                    node.len(),
                    self.max_node_id
                ),
            ));
        }
        Ok(())
    }

    pub fn check_names(&self, count: usize) -> Result<(), Refusal> {
        if count > self.max_resource_names {
            return Err(Refusal::new(
                Code::ResourceExhausted,
                format!(
                    "the request names {count} resources; at most {} are accepted per request",
                    self.max_resource_names
                ),
            )
            .counted("too_many_names"));
        }
        Ok(())
    }

    /// Cuts a NACK's detail on receipt, so logs, metrics, CSDS and etcd
    /// only ever see the bounded text.
    pub fn bound_detail(&self, detail: &mut String) {
        if detail.len() > self.max_nack_detail
            || detail
                .chars()
                .any(|c| c.is_control() && c != '\n' && c != '\t')
        {
            *detail = bootes_proto::limits::nack_detail(detail, self.max_nack_detail);
        }
    }
}

/// Why Secrets are refused to a peer that did not authenticate.
pub const SECRETS_REFUSED: &str = "Secrets are served only to clients that authenticated with a \
     certificate (start the xds-server with --tls-client-ca, or allow them explicitly with \
     --allow-unauthenticated-secrets)";

/// What a session is allowed and bound to.
#[derive(Clone, Debug, Default)]
pub struct Rules {
    /// A per-type service serves only this type.
    pub only: Option<ResourceType>,
    pub limits: Limits,
    /// Secrets may go to this stream's peer.
    pub secrets_allowed: bool,
}

/// When a stream ends by itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Deadline {
    /// The stream's maximum age: clients reconnect, and so rebalance
    /// across replicas.
    Age,
    /// The server drains: each stream ends at its own point of the drain
    /// period, so clients do not all reconnect at once.
    Drain,
}

/// Something the shell logs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Note {
    /// The first request named this node.
    Node(String),
    Opened,
    WaitingForAuthorization,
    WaitingForBinding,
    /// The first SDS request refused on a stream whose other types flow.
    SecretsRefused,
}

/// What the shell does after an input.
#[derive(Debug, Default)]
pub struct Output {
    /// Responses to send, in order, and ACK/NACK observations.
    pub effects: Effects,
    pub notes: Vec<Note>,
    /// The node was authorized for the first time: register the stream
    /// under it (CSDS, status records).
    pub identified: Option<String>,
    /// What the client holds or asks for may have changed: the node's
    /// report is stale.
    pub report_changed: bool,
    /// Requests refused without ending the stream, by counted reason.
    pub refused: Vec<&'static str>,
    /// The stream must end with this (after the responses above).
    pub end: Option<Refusal>,
}

impl Output {
    fn ending(refusal: Refusal) -> Self {
        Self {
            end: Some(refusal),
            ..Self::default()
        }
    }
}

/// One stream's session around its protocol state machine `P`.
#[derive(Debug)]
pub struct Session<P> {
    protocol: P,
    rules: Rules,
    identity: Identity,
    /// The node ID claimed is authorized now: until then the stream gets no
    /// snapshot and leaves no trace in CSDS or etcd.
    authorized: bool,
    /// Registered under its node (once authorized).
    identified: bool,
    secrets_refused_noted: bool,
    /// Secrets named and refused (PERMISSION_DENIED) on this stream.
    secrets_refused: BTreeSet<String>,
    deadline: Option<(Instant, Deadline)>,
    draining: bool,
}

impl<P: Protocol> Session<P> {
    /// A stream opened at `now`. With a maximum age, it ends in the fifth
    /// of the age after it, placed by `jitter` in [0, 1), so that streams
    /// opened together do not all end together; never before the age, when
    /// its connection gets a GOAWAY, so the client reconnects on a new
    /// connection, which may reach another replica.
    pub fn new(rules: Rules, now: Instant, max_age: Option<Duration>, jitter: f64) -> Self {
        let deadline = max_age.map(|age| {
            let spread = age / 5;
            (
                now + age + spread.mul_f64(jitter.clamp(0.0, 1.0)),
                Deadline::Age,
            )
        });
        Self {
            protocol: P::default(),
            rules,
            identity: Identity::default(),
            authorized: false,
            identified: false,
            secrets_refused_noted: false,
            secrets_refused: BTreeSet::new(),
            deadline,
            draining: false,
        }
    }

    /// The protocol state's report (CSDS, status records).
    pub fn report(&self) -> BTreeMap<ResourceType, TypeReport> {
        self.protocol.report()
    }

    /// The node named by the first request, if any yet.
    pub fn node(&self) -> Option<&str> {
        self.identity.get()
    }

    /// When [`Self::on_timer`] must run next.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline.map(|(at, _)| at)
    }

    pub fn draining(&self) -> bool {
        self.draining
    }

    /// Step 1: the request is within bounds and for this service; NACK
    /// details are cut to size.
    pub fn accept(&self, req: &mut P::Request) -> Result<(), Refusal> {
        if let Some(ty) = self.rules.only {
            let url = P::type_url(req);
            if url.is_empty() {
                *url = ty.type_url().to_string();
            } else if url != ty.type_url() {
                return Err(Refusal::new(
                    Code::InvalidArgument,
                    format!("this service serves {} only, not {url}", ty.type_url()),
                ));
            }
        }
        self.rules.limits.check_names(P::name_count(req))?;
        if let Some(detail) = P::error_detail(req) {
            self.rules.limits.bound_detail(detail);
        }
        Ok(())
    }

    /// Step 2: learns the node ID. True on the first request.
    pub fn identify(&mut self, req: &P::Request) -> Result<bool, Refusal> {
        let first = self
            .identity
            .identify(P::node(req))
            .map_err(|e| Refusal::new(Code::InvalidArgument, e.to_string()))?;
        if first {
            let node = self.identity.get().unwrap_or_default();
            self.rules.limits.check_node_id(node)?;
        }
        Ok(first)
    }

    /// Step 3: whether the peer may claim the node now. A stream waiting
    /// for its binding becomes identified once allowed.
    pub fn authorize(&mut self, nodes: &dyn Nodes, out: &mut Output) -> Result<(), Refusal> {
        let node = self.identity.get().unwrap_or_default();
        self.authorized = match nodes.authorize(node) {
            Access::Deny(why) => {
                return Err(Refusal::new(Code::PermissionDenied, why).counted("node_not_authorized"))
            }
            Access::Wait => false,
            Access::Allow => true,
        };
        if self.authorized && !self.identified {
            self.identified = true;
            out.identified = Some(node.to_string());
        }
        Ok(())
    }

    /// Step 4: brings the protocol state to the node's snapshot (none
    /// while it is not authorized or bound).
    pub fn subscribe(&mut self, nodes: &dyn Nodes, cache: &ResponseCache, out: &mut Output) {
        let node = self.identity.get().unwrap_or_default();
        let snapshot = self.authorized.then(|| nodes.snapshot(node)).flatten();
        out.effects
            .extend(self.protocol.on_snapshot(snapshot, cache));
    }

    /// A request from the client.
    pub fn on_request(
        &mut self,
        mut req: P::Request,
        nodes: &dyn Nodes,
        cache: &ResponseCache,
    ) -> Output {
        if let Err(refusal) = self.accept(&mut req) {
            return Output::ending(refusal);
        }
        let first = match self.identify(&req) {
            Ok(first) => first,
            Err(refusal) => return Output::ending(refusal),
        };
        let mut out = Output::default();
        if first {
            out.notes
                .push(Note::Node(self.identity.get().unwrap_or_default().into()));
            if let Err(refusal) = self.authorize(nodes, &mut out) {
                return Output::ending(refusal);
            }
            let node = self.identity.get().unwrap_or_default();
            out.notes.push(match self.authorized {
                false => Note::WaitingForAuthorization,
                true if nodes.snapshot(node).is_none() => Note::WaitingForBinding,
                true => Note::Opened,
            });
            self.subscribe(nodes, cache, &mut out);
        }
        if P::type_url(&mut req) == ResourceType::Secret.type_url() && !self.rules.secrets_allowed {
            let refusal = Refusal::new(Code::PermissionDenied, SECRETS_REFUSED)
                .counted("unauthenticated_secrets");
            if self.rules.only == Some(ResourceType::Secret) {
                out.end = Some(refusal);
                return out;
            }
            // On ADS the other types keep flowing. Each Secret named is
            // refused once, by name (xRFC TP3 PERMISSION_DENIED), so the
            // client fails fast; a wildcard SDS request named nothing and
            // is not answered.
            out.refused.extend(refusal.counted);
            if !std::mem::replace(&mut self.secrets_refused_noted, true) {
                out.notes.push(Note::SecretsRefused);
            }
            let fresh: NameErrors = P::named(&req)
                .iter()
                .filter(|n| n.as_str() != "*" && self.secrets_refused.insert(n.to_string()))
                .map(|n| (n.clone(), NameError::PermissionDenied))
                .collect();
            if !fresh.is_empty() {
                out.effects
                    .responses
                    .push(P::errors(ResourceType::Secret, fresh, cache));
            }
            return out;
        }
        out.effects.extend(self.protocol.on_request(&req, cache));
        // A request is what moves ACKs, NACKs and subscriptions.
        out.report_changed = self.identified;
        out
    }

    /// Whether snapshot changes concern this stream yet (it has named its
    /// node).
    pub fn wants_changes(&self) -> bool {
        self.identity.get().is_some()
    }

    /// Snapshots or bindings changed: the node's binding may have changed
    /// (another service account, or it appeared for a stream waiting on
    /// it), and so may its snapshot.
    pub fn on_change(&mut self, nodes: &dyn Nodes, cache: &ResponseCache) -> Output {
        let mut out = Output::default();
        if !self.wants_changes() {
            return out;
        }
        if let Err(refusal) = self.authorize(nodes, &mut out) {
            return Output::ending(refusal);
        }
        self.subscribe(nodes, cache, &mut out);
        out
    }

    /// The server started draining at `now`: the stream ends at a point of
    /// `period` placed by `jitter` in [0, 1) (unless its age ends it
    /// first).
    pub fn on_drain(&mut self, now: Instant, period: Duration, jitter: f64) {
        if std::mem::replace(&mut self.draining, true) {
            return;
        }
        let at = now + period.mul_f64(jitter.clamp(0.0, 1.0));
        if self.deadline.is_none_or(|(age, _)| at < age) {
            self.deadline = Some((at, Deadline::Drain));
        }
    }

    /// Time passed: the stream ends if its deadline is reached.
    pub fn on_timer(&mut self, now: Instant) -> Output {
        match self.deadline {
            Some((at, why)) if now >= at => Output::ending(Refusal::new(
                Code::Unavailable,
                match why {
                    Deadline::Drain => "xds-server is shutting down; reconnect to another replica",
                    Deadline::Age => "max connection age reached; reconnect",
                },
            )),
            _ => Output::default(),
        }
    }
}

#[cfg(test)]
mod tests;
