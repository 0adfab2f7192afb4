//! Envoy's API, taken from the `envoy-types` crate (never vendored here).
//!
//! * [`descriptor_pool`] — every Envoy message with its protoc-gen-validate
//!   options, for converting and validating JSON without per-type Rust code.
//! * [`discovery`] and friends — the generated xDS service types.

use std::sync::OnceLock;

use prost_reflect::DescriptorPool;

pub use envoy_types::pb::envoy::admin::v3 as admin;
pub use envoy_types::pb::envoy::config::core::v3 as core;
pub use envoy_types::pb::envoy::r#type::matcher::v3 as matcher;
pub use envoy_types::pb::envoy::service::cluster::v3 as cluster_service;
pub use envoy_types::pb::envoy::service::discovery::v3 as discovery;
pub use envoy_types::pb::envoy::service::status::v3 as status;
pub use envoy_types::pb::google::protobuf::Any;
pub use envoy_types::pb::google::rpc::Status as RpcStatus;

/// The compiled descriptor set of the whole Envoy API, as shipped by envoy-types.
static DESCRIPTORS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/envoy_descriptors.bin"));

/// The encoded descriptor set (for gRPC server reflection).
pub fn descriptor_set() -> &'static [u8] {
    DESCRIPTORS
}

/// The Envoy API descriptor pool, decoded once.
pub fn descriptor_pool() -> &'static DescriptorPool {
    static POOL: OnceLock<DescriptorPool> = OnceLock::new();
    POOL.get_or_init(|| {
        DescriptorPool::decode(DESCRIPTORS).expect("envoy-types ships a valid descriptor set")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_has_the_api_and_the_validate_rules() {
        let pool = descriptor_pool();
        assert!(pool.files().count() > 400, "whole Envoy API expected");
        assert!(pool.get_extension_by_name("validate.rules").is_some());
        assert!(pool
            .get_message_by_name(
                "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
            )
            .is_some());
    }
}
