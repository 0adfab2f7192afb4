//! The contract shared by `bootes-controller` and `bootes-xds-server`.
//!
//! * [`store`] — the protobuf messages stored in etcd (our own `.proto`).
//! * [`Keys`] — the etcd key layout under a configurable prefix.
//! * [`ResourceType`] — the xDS resource types Bootes serves, their type URLs
//!   and make-before-break order.
//! * [`version`] — content-hash versions, identical on every replica.
//! * [`sealed`] — Secret resources encrypted at rest.
//! * [`redact`] — secret material hidden from people (inspect, CSDS).
//! * [`envoy`] — the Envoy API descriptor pool and the generated xDS types.
//! * [`limits`] — etcd's limits on transactions and values, and bounds on
//!   what clients can make us store (NACK details, status records).
//! * [`values`] — what makes a value valid for its key.
//! * [`Fence`] — the proof of leadership every controller write carries.
//!
//! Each item has one path: the modules of `Keys`, `ResourceType` and `Fence`
//! are private, and those items are named from the crate root.
//!
//! Nothing here does I/O.

pub mod envoy;
mod fence;
mod keys;
pub mod limits;
pub mod redact;
pub mod sealed;
mod types;
pub mod values;
pub mod version;

/// Messages stored as etcd values (`proto/bootes/v1/store.proto`).
// Generated from the .proto comments, which write keys as `<prefix>nodes/…`.
#[allow(clippy::doc_lazy_continuation, rustdoc::invalid_html_tags)]
pub mod store {
    include!(concat!(env!("OUT_DIR"), "/bootes.store.v1.rs"));
}

pub use fence::Fence;
pub use keys::{is_snapshot_ref, Key, Keys, DEFAULT_PREFIX};
pub use types::{ResourceType, TYPE_URL_PREFIX};
