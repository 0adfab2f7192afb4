//! The contract shared by `bootes-controller` and `bootes-xds-server`.
//!
//! * [`store`] — the protobuf messages stored in etcd (our own `.proto`).
//! * [`keys`] — the etcd key layout under a configurable prefix.
//! * [`types`] — the xDS resource types Bootes serves, their type URLs and
//!   make-before-break order.
//! * [`version`] — content-hash versions, identical on every replica.
//! * [`sealed`] — Secret resources encrypted at rest.
//! * [`redact`] — secret material hidden from people (inspect, CSDS).
//! * [`envoy`] — the Envoy API descriptor pool and the generated xDS types.
//! * [`limits`] — etcd's limits on transactions and values, and bounds on
//!   what clients can make us store (NACK details, status records).
//! * [`values`] — what makes a value valid for its key.
//! * [`fence`] — the proof of leadership every controller write carries.
//!
//! Nothing here does I/O.

pub mod envoy;
pub mod fence;
pub mod keys;
pub mod limits;
pub mod redact;
pub mod sealed;
pub mod types;
pub mod values;
pub mod version;

/// Messages stored as etcd values (`proto/bootes/v1/store.proto`).
#[allow(clippy::doc_lazy_continuation)]
pub mod store {
    include!(concat!(env!("OUT_DIR"), "/bootes.store.v1.rs"));
}

pub use fence::Fence;
pub use keys::{Key, Keys};
pub use types::ResourceType;
