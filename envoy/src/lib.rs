//! The Envoy API as Bootes uses it: proto3 JSON into Envoy protobuf messages
//! through the descriptor pool (no per-type Rust code), protoc-gen-validate
//! rules, and which fields are secret.
//!
//! * [`convert`] — `spec.config` into an encoded, validated, versioned message.
//! * [`sensitive`] — fields Envoy marks `(udpa.annotations.sensitive)`, and
//!   the redaction of their values in reports.
//! * [`error`] — a problem with one place in `spec.config`.
//! * [`any`] — reading and replacing `google.protobuf.Any` payloads.
//!
//! Pure: no I/O, no async runtime (checked by `tests/tests/architecture.rs`).

pub mod any;
pub mod convert;
pub mod error;
pub mod sensitive;

pub use bootes_proto::envoy::descriptor_pool;
pub use convert::{convert, Converted};
pub use error::{ConfigError, CONFIG_PATH};
