//! The controller's core: Bootes objects and pods in, the desired etcd
//! contents and each object's status out.
//!
//! * [`model`] — objects, pods and their keys; [`manifest`] — YAML documents
//!   into objects and pods.
//! * [`source`] — the events every source feeds the index.
//! * [`index`] — objects + pods → groups → snapshots, bindings, statuses.
//! * [`verdict`] — each object's status as data; [`rollout`] — how far each
//!   object has reached the nodes (from etcd alone); [`conditions`] — the
//!   words of every condition, in one place.
//! * [`plan`] — the desired state against etcd's contents → ordered
//!   transactions.
//! * [`status`] — where statuses go; [`store`] — where snapshots go.
//! * [`xref`] — cross-references nothing provides (warnings).
//! * [`service_endpoints`] — an Endpoint naming a Service: its
//!   EndpointSlices → the ClusterLoadAssignment; [`service_ref`] — how it
//!   names the Service (`spec.service`).
//! * [`validate`] — the offline checks of `bootes-controller validate`.
//! * [`envoy_judge`] — a real Envoy as the judge of group snapshots;
//!   [`envoy_gate`] — `run --envoy-validate`: what it holds back.
//! * [`report`] — one line per problem.
//!
//! No async runtime, no Kubernetes, no etcd (checked by
//! `tests/tests/architecture.rs`): the shells in `controller/` do the I/O.

pub mod conditions;
pub mod envoy_gate;
pub mod envoy_judge;
pub mod index;
pub mod manifest;
pub mod model;
pub mod notices;
pub mod plan;
pub mod report;
pub mod rollout;
pub mod service_endpoints;
pub mod service_ref;
pub mod source;
pub mod status;
pub mod store;
pub mod validate;
pub mod verdict;
pub mod xref;

#[cfg(test)]
mod convert_proptests;
