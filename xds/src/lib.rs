//! xDS protocol state machines. Pure: requests and snapshots in, responses
//! (already encoded, shared) and ACK/NACK observations out. The gRPC glue in
//! `bootes-xds-server` only moves messages between these and the network.
//!
//! * [`snapshots`] — etcd's key-values → the snapshot each node gets.
//! * [`sotw`], [`delta`] — one stream's state machine per protocol variant.
//! * [`response`] — responses encoded once and shared by every stream.
//! * [`session`] — one stream from its first request to its end, around
//!   either state machine.
//! * [`admission`] — new streams admitted at a bounded rate.
//! * [`spread`] — many streams' ends spread evenly over a period.
//! * `schedule` — the make-before-break order both state machines follow;
//!   `held` — what a delta client holds, as the cache shares it.
//!
//! No async runtime, no gRPC, no etcd (checked by `tests/tests/architecture.rs`).

pub mod admission;
pub mod delta;
mod held;
pub mod response;
mod schedule;
pub mod session;
pub mod snapshots;
pub mod sotw;
pub mod spread;
#[cfg(test)]
mod test_support;

use std::collections::BTreeMap;

use bootes_proto::envoy::core::Node;
use bootes_proto::ResourceType;

/// Make-before-break ordering: the types whose responses must be ACKed
/// before a response of `ty` may go out.
///
/// Listeners and routes wait for clusters and endpoints: Envoy ACKs a CDS
/// response only once the new clusters have warmed, so that ACK is the signal
/// that routing to them is safe. Endpoints, secrets and extension configs
/// wait for nothing: Envoy needs them to *finish* warming clusters and
/// listeners, so holding them back until the CDS or LDS ACK would stall the
/// update until Envoy's initial fetch timeout.
pub fn waits_for(ty: ResourceType) -> &'static [ResourceType] {
    use ResourceType::*;
    match ty {
        Runtime | Cluster | Endpoint | Secret | ExtensionConfig => &[],
        Listener | ScopedRoute | Route | VirtualHost => &[Cluster, Endpoint],
    }
}

/// A NACK observed on a stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Nack {
    pub ty: ResourceType,
    /// The version the client rejected.
    pub version: String,
    /// Envoy's `error_detail.message`.
    pub detail: String,
    /// Names of the resources in the rejected response.
    pub resources: Vec<String>,
    /// Their versions (which tell which object's generation was rejected).
    pub versions: Vec<String>,
}

/// What a stream should do after an input.
#[derive(Debug, Default)]
pub struct Effects {
    /// Responses to write, in this order.
    pub responses: Vec<std::sync::Arc<response::Encoded>>,
    /// (type, version) pairs the client ACKed.
    pub acks: Vec<(ResourceType, String)>,
    pub nacks: Vec<Nack>,
    /// Requests ignored, with why (unknown type URL, stale nonce).
    pub ignored: Vec<String>,
}

impl Effects {
    /// Appends `other`'s responses and observations after this one's.
    pub fn extend(&mut self, other: Effects) {
        self.responses.extend(other.responses);
        self.acks.extend(other.acks);
        self.nacks.extend(other.nacks);
        self.ignored.extend(other.ignored);
    }
}

/// What a client holds of one type, as far as its ACKs and NACKs tell.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TypeReport {
    /// Resources the client ACKed: name → version.
    pub acked: BTreeMap<String, String>,
    /// The version of `acked` as a set ([`bootes_proto::version::of_set`]);
    /// for state of the world, the version of the ACKed response, so it is
    /// not hashed again for every report.
    pub acked_version: String,
    /// Version of the response waiting for an ACK, if any.
    pub pending: Option<String>,
    /// The last NACK, until a later response is ACKed.
    pub nack: Option<Nack>,
}

/// The node ID of a stream: named by the first request, never changed after.
#[derive(Clone, Debug, Default)]
pub struct Identity(Option<String>);

impl Identity {
    pub fn get(&self) -> Option<&str> {
        self.0.as_deref()
    }

    /// Learns the node ID from a request. Returns true the first time.
    pub fn identify(&mut self, node: Option<&Node>) -> Result<bool, ProtocolError> {
        let id = node.map(|n| n.id.as_str()).unwrap_or("");
        match &self.0 {
            None if id.is_empty() => Err(ProtocolError::MissingNodeId),
            None => {
                self.0 = Some(id.to_string());
                Ok(true)
            }
            Some(known) if !id.is_empty() && id != known => {
                Err(ProtocolError::NodeIdChanged(known.clone(), id.to_string()))
            }
            Some(_) => Ok(false),
        }
    }
}

/// A request that ends the stream.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    #[error("the first request of a stream must carry node.id")]
    MissingNodeId,
    #[error("node.id changed on the stream from {0:?} to {1:?}")]
    NodeIdChanged(String, String),
}
