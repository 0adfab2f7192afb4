//! Encoded discovery responses, shared by every stream that sends the same one.
//!
//! A response is identified by its type and `version_info`, and the version
//! is a hash of exactly the (name, version) pairs it carries, so two streams
//! that need the same resources share one encoding: a push to 10,000 streams
//! of one group encodes once. The nonce is derived from the version as well,
//! which keeps the bytes identical for every stream.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use bootes_proto::envoy::discovery::{self, DeltaDiscoveryResponse, DiscoveryResponse};
use bootes_proto::envoy::Any;
use bootes_proto::{version, ResourceType};
use bytes::Bytes;
use prost::Message;

use crate::held::Held;
use crate::snapshots::{Resource, Snapshot};

/// Identifies this server in responses (`control_plane.identifier`).
pub const CONTROL_PLANE_ID: &str = "bootes";

/// One encoded `DiscoveryResponse` or `DeltaDiscoveryResponse`.
#[derive(Debug)]
pub struct Encoded {
    pub ty: ResourceType,
    /// `version_info` (state of the world) or `system_version_info` (delta).
    pub version_info: String,
    pub nonce: String,
    /// The resources it carries, sorted by name.
    pub resources: Vec<Arc<Resource>>,
    /// Delta only: names removed.
    pub removed: Vec<String>,
    /// Names the client subscribed to that it cannot have, and why
    /// (xRFC TP3 `resource_errors`).
    pub errors: NameErrors,
    /// The protobuf encoding of the whole response message (a view into
    /// [`Self::framed`]).
    pub bytes: Bytes,
    /// The same message framed for gRPC (uncompressed flag, 4-byte
    /// big-endian length, message): what every stream sends, as is.
    pub framed: Bytes,
}

impl Encoded {
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.resources.iter().map(|r| r.name.as_str())
    }

    pub fn versions(&self) -> impl Iterator<Item = &str> {
        self.resources.iter().map(|r| r.version.as_str())
    }

    fn with_message_view(mut self) -> Self {
        self.bytes = self.framed.slice(GRPC_FRAME_HEADER..);
        self
    }
}

/// Why a client cannot have a resource it named (xRFC TP3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NameError {
    /// Nothing of that name exists in the node's configuration.
    NotFound,
    /// The stream's identity may not have it (Secrets to a client that did
    /// not authenticate).
    PermissionDenied,
}

impl NameError {
    /// The `google.rpc.Code`.
    fn code(self) -> i32 {
        match self {
            NameError::NotFound => 5,
            NameError::PermissionDenied => 7,
        }
    }

    fn message(self, ty: ResourceType) -> String {
        match self {
            NameError::NotFound => format!(
                "no {} resource of this name is in the node's configuration",
                ty.short_name()
            ),
            NameError::PermissionDenied => crate::session::SECRETS_REFUSED.to_string(),
        }
    }

    /// How it enters a response's version: a pseudo-version no content
    /// hash can equal.
    fn version_tag(self) -> &'static str {
        match self {
            NameError::NotFound => "!not-found",
            NameError::PermissionDenied => "!permission-denied",
        }
    }
}

/// Named resources a response reports as unavailable, sorted by name.
pub type NameErrors = Vec<(String, NameError)>;

fn resource_errors(ty: ResourceType, errors: &NameErrors) -> Vec<discovery::ResourceError> {
    errors
        .iter()
        .map(|(name, e)| discovery::ResourceError {
            resource_name: Some(discovery::ResourceName {
                name: name.clone(),
                ..Default::default()
            }),
            error_detail: Some(bootes_proto::envoy::RpcStatus {
                code: e.code(),
                message: e.message(ty),
                details: Vec::new(),
            }),
        })
        .collect()
}

/// gRPC's message header: a compression flag and a 4-byte length.
const GRPC_FRAME_HEADER: usize = 5;

/// `message` in gRPC's length-prefixed framing, uncompressed.
fn framed(message: &impl Message) -> Bytes {
    let len = message.encoded_len();
    let mut buf = Vec::with_capacity(GRPC_FRAME_HEADER + len);
    buf.push(0);
    // Responses are bounded far below 4 GiB (etcd's value limit).
    buf.extend_from_slice(
        &u32::try_from(len)
            .expect("response under 4 GiB")
            .to_be_bytes(),
    );
    message.encode(&mut buf).expect("a Vec grows as needed");
    Bytes::from(buf)
}

/// The resources of a state-of-the-world response (sorted by name) with its
/// version, a hash of exactly their (name, version) pairs (and of the names
/// it reports errors for), computed once.
#[derive(Debug)]
pub struct ResourceSet {
    pub version: String,
    pub resources: Vec<Arc<Resource>>,
    pub errors: NameErrors,
}

impl ResourceSet {
    pub fn new(resources: Vec<Arc<Resource>>) -> Self {
        Self::with_errors(resources, Vec::new())
    }

    /// A set that also reports `errors` (none of them names a resource of
    /// the set).
    pub fn with_errors(resources: Vec<Arc<Resource>>, errors: NameErrors) -> Self {
        let version = content_id(&resources, &[], &errors);
        Self {
            version,
            resources,
            errors,
        }
    }
}

/// The hash of what a response carries: resources by (name, version),
/// removed names, names with errors.
fn content_id(resources: &[Arc<Resource>], removed: &[String], errors: &NameErrors) -> String {
    version::of_set(
        resources
            .iter()
            .map(|r| (r.name.as_str(), r.version.as_str()))
            .chain(removed.iter().map(|n| (n.as_str(), "-")))
            .chain(errors.iter().map(|(n, e)| (n.as_str(), e.version_tag()))),
    )
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Variant {
    Sotw,
    Delta,
}

/// A step of the delta scheduler whose result is shared ([`ResponseCache::delta_transition`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Step {
    Make,
    TakeApart,
}

/// A transition's key: type, step, what the client holds (by id), the
/// target snapshot (by id).
type TransitionKey = (ResourceType, Step, u64, u64);

/// A transition's result, kept while some stream may still ask for it:
/// while anyone holds its starting point and its target snapshot.
#[derive(Debug)]
struct Transition {
    from: Weak<Held>,
    target: Weak<Snapshot>,
    response: Option<Arc<Encoded>>,
    to: Arc<Held>,
}

/// Encodings in use, by (type, variant, version). Entries live as long as
/// some stream holds the response.
#[derive(Debug, Default)]
pub struct ResponseCache {
    entries: Mutex<HashMap<(ResourceType, Variant, String), Weak<Encoded>>>,
    sweep_at: AtomicU64,
    encodes: AtomicU64,
    transitions: Mutex<HashMap<TransitionKey, Transition>>,
    transitions_sweep_at: AtomicU64,
}

impl ResponseCache {
    pub fn new() -> Self {
        Self::default()
    }

    /// How many responses were encoded so far (for tests and metrics).
    pub fn encodes(&self) -> u64 {
        self.encodes.load(Ordering::Relaxed)
    }

    /// The response carrying `set`, encoded at most once while any stream
    /// holds it.
    pub fn state_of_the_world(&self, ty: ResourceType, set: ResourceSet) -> Arc<Encoded> {
        let ResourceSet {
            version,
            resources,
            errors,
        } = set;
        self.state_of_the_world_with(ty, version, || (resources, errors))
    }

    /// [`Self::state_of_the_world`] for a set known by its version, built
    /// (resources and errors) only if it has to be encoded.
    pub fn state_of_the_world_with(
        &self,
        ty: ResourceType,
        version: String,
        set: impl FnOnce() -> (Vec<Arc<Resource>>, NameErrors),
    ) -> Arc<Encoded> {
        self.get_or_encode((ty, Variant::Sotw, version), |version_info| {
            let (resources, errors) = set();
            encode_sotw(ty, version_info, resources, errors)
        })
    }

    /// A delta response carrying `updates` (sorted by name), `removed` and
    /// `errors`. Its nonce is a hash of exactly that content, so streams that
    /// need the same delta share it.
    pub fn delta(
        &self,
        ty: ResourceType,
        updates: Vec<Arc<Resource>>,
        removed: Vec<String>,
        errors: NameErrors,
    ) -> Arc<Encoded> {
        let id = content_id(&updates, &removed, &errors);
        self.get_or_encode((ty, Variant::Delta, id), |id| {
            encode_delta(ty, id, updates, removed, errors)
        })
    }

    /// The delta response (if any) a step sends a client holding `from`
    /// towards `target`, and what it holds after: `compute`d once for every
    /// stream in the same position (10,000 streams of one group, say), not
    /// once per stream. `compute` must depend only on the key (type, step,
    /// `from`, `target`).
    pub(crate) fn delta_transition(
        &self,
        ty: ResourceType,
        step: Step,
        from: &Arc<Held>,
        target: &Arc<Snapshot>,
        compute: impl FnOnce() -> (Option<Arc<Encoded>>, Arc<Held>),
    ) -> (Option<Arc<Encoded>>, Arc<Held>) {
        let key = (ty, step, from.id(), target.id());
        let mut transitions = self.transitions.lock().expect("transitions lock");
        if let Some(t) = transitions.get(&key) {
            return (t.response.clone(), t.to.clone());
        }
        // Computed under the lock: the streams waiting for it want the same.
        let (response, to) = compute();
        transitions.insert(
            key,
            Transition {
                from: Arc::downgrade(from),
                target: Arc::downgrade(target),
                response: response.clone(),
                to: to.clone(),
            },
        );
        let len = transitions.len() as u64;
        if len >= self.transitions_sweep_at.load(Ordering::Relaxed) {
            transitions.retain(|_, t| t.from.strong_count() > 0 && t.target.strong_count() > 0);
            self.transitions_sweep_at
                .store((transitions.len() as u64 * 2).max(64), Ordering::Relaxed);
        }
        (response, to)
    }

    /// Transitions remembered now.
    #[cfg(test)]
    pub(crate) fn transition_count(&self) -> usize {
        self.transitions.lock().expect("transitions lock").len()
    }

    fn get_or_encode(
        &self,
        key: (ResourceType, Variant, String),
        make: impl FnOnce(String) -> Encoded,
    ) -> Arc<Encoded> {
        let mut entries = self.entries.lock().expect("response cache lock");
        if let Some(hit) = entries.get(&key).and_then(Weak::upgrade) {
            return hit;
        }
        let encoded = Arc::new(make(key.2.clone()));
        self.encodes.fetch_add(1, Ordering::Relaxed);
        entries.insert(key, Arc::downgrade(&encoded));
        // Drop dead entries now and then, amortised over insertions.
        let len = entries.len() as u64;
        if len >= self.sweep_at.load(Ordering::Relaxed) {
            entries.retain(|_, w| w.strong_count() > 0);
            self.sweep_at
                .store((entries.len() as u64 * 2).max(64), Ordering::Relaxed);
        }
        encoded
    }
}

fn encode_sotw(
    ty: ResourceType,
    version_info: String,
    resources: Vec<Arc<Resource>>,
    errors: NameErrors,
) -> Encoded {
    let nonce = version_info.clone();
    let response = DiscoveryResponse {
        version_info: version_info.clone(),
        resources: resources
            .iter()
            .map(|r| Any {
                type_url: ty.type_url().to_string(),
                value: r.value.to_vec(),
            })
            .collect(),
        type_url: ty.type_url().to_string(),
        nonce: nonce.clone(),
        control_plane: Some(bootes_proto::envoy::core::ControlPlane {
            identifier: CONTROL_PLANE_ID.to_string(),
        }),
        resource_errors: resource_errors(ty, &errors),
        ..Default::default()
    };
    Encoded {
        ty,
        version_info,
        nonce,
        resources,
        removed: Vec::new(),
        errors,
        framed: framed(&response),
        bytes: Bytes::new(),
    }
    .with_message_view()
}

fn encode_delta(
    ty: ResourceType,
    id: String,
    updates: Vec<Arc<Resource>>,
    removed: Vec<String>,
    errors: NameErrors,
) -> Encoded {
    let response = DeltaDiscoveryResponse {
        system_version_info: id.clone(),
        resources: updates
            .iter()
            .map(|r| discovery::Resource {
                name: r.name.clone(),
                version: r.version.clone(),
                resource: Some(Any {
                    type_url: ty.type_url().to_string(),
                    value: r.value.to_vec(),
                }),
                ..Default::default()
            })
            .collect(),
        type_url: ty.type_url().to_string(),
        removed_resources: removed.clone(),
        nonce: id.clone(),
        control_plane: Some(bootes_proto::envoy::core::ControlPlane {
            identifier: CONTROL_PLANE_ID.to_string(),
        }),
        resource_errors: resource_errors(ty, &errors),
        ..Default::default()
    };
    Encoded {
        ty,
        version_info: id.clone(),
        nonce: id,
        resources: updates,
        removed,
        errors,
        framed: framed(&response),
        bytes: Bytes::new(),
    }
    .with_message_view()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(name: &str, version: &str) -> Arc<Resource> {
        Arc::new(Resource {
            name: name.into(),
            version: version.into(),
            value: Bytes::from_static(b"\x0a\x01x"),
            source: String::new(),
        })
    }

    #[test]
    fn equal_responses_are_encoded_once_while_in_use() {
        let cache = ResponseCache::new();
        let a =
            cache.state_of_the_world(ResourceType::Cluster, ResourceSet::new(vec![res("a", "1")]));
        let b =
            cache.state_of_the_world(ResourceType::Cluster, ResourceSet::new(vec![res("a", "1")]));
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(cache.encodes(), 1);
        let c =
            cache.state_of_the_world(ResourceType::Cluster, ResourceSet::new(vec![res("a", "2")]));
        assert_ne!(a.version_info, c.version_info);
        assert_eq!(cache.encodes(), 2);
        drop((a, b));
        let _again =
            cache.state_of_the_world(ResourceType::Cluster, ResourceSet::new(vec![res("a", "1")]));
        assert_eq!(cache.encodes(), 3, "released encodings are not kept");
    }

    #[test]
    fn encoding_is_a_valid_discovery_response() {
        let cache = ResponseCache::new();
        let e = cache.state_of_the_world(
            ResourceType::Endpoint,
            ResourceSet::new(vec![res("a", "1"), res("b", "1")]),
        );
        let decoded = DiscoveryResponse::decode(e.bytes.clone()).unwrap();
        assert_eq!(e.framed[0], 0, "uncompressed");
        assert_eq!(
            u32::from_be_bytes(e.framed[1..5].try_into().unwrap()) as usize,
            e.bytes.len()
        );
        assert_eq!(e.framed[5..], e.bytes[..]);
        assert_eq!(decoded.type_url, ResourceType::Endpoint.type_url());
        assert_eq!(decoded.version_info, e.version_info);
        assert_eq!(decoded.nonce, e.nonce);
        assert_eq!(decoded.resources.len(), 2);
        assert_eq!(
            decoded.resources[0].type_url,
            ResourceType::Endpoint.type_url()
        );
    }
}
