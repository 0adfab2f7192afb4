//! xDS protocol state machines. Pure: requests and snapshots in, responses
//! (already encoded, shared) and ACK/NACK observations out. The gRPC glue in
//! `crate::ads` only moves messages between these and the network.

pub mod delta;
pub mod response;
pub mod sotw;

use bootes_proto::ResourceType;

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

/// A request that ends the stream.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    #[error("the first request of a stream must carry node.id")]
    MissingNodeId,
    #[error("node.id changed on the stream from {0:?} to {1:?}")]
    NodeIdChanged(String, String),
}
