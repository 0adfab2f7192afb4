//! The Envoy API as Bootes uses it: proto3 JSON into Envoy protobuf messages
//! through the descriptor pool (no per-type Rust code), protoc-gen-validate
//! rules, and which fields are secret.
//!
//! * [`convert`] — `spec.config` into an encoded, validated, versioned message.
//! * [`sensitive`] — fields Envoy marks `(udpa.annotations.sensitive)`, and
//!   the redaction of their values in reports.
//! * [`convert::ConfigError`] — a problem with one place in `spec.config`
//!   (its own module, `error`, which both `convert` and `sensitive` use).
//! * [`any`] — reading and replacing `google.protobuf.Any` payloads.
//!
//! Pure: no I/O, no async runtime (checked by `tests/tests/architecture.rs`).

pub mod any;
pub mod convert;
mod error;
pub mod oracle;
pub mod sensitive;
