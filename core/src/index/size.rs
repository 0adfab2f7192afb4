//! Objects too large for etcd on their own.
//!
//! A group's snapshot is one etcd value (`MAX_VALUE_BYTES`). An object
//! whose snapshot would exceed it even if it were the only object of its
//! group can reach no Envoy: it is rejected (reason `TooLarge`) and its
//! previous version stays in force, like an invalid one.

use std::sync::Arc;

use prost::Message;

use super::{build_snapshot, Accepted, Entry};
use crate::model::BootesObject;
use bootes_envoy::convert::{ConfigError, Converted, CONFIG_PATH};
use bootes_proto::limits::MAX_VALUE_BYTES;

/// The problem, when `resource` (converted from `object`) is too large alone.
pub fn too_large(object: &BootesObject, resource: &Arc<Converted>) -> Option<ConfigError> {
    // Cheap test first: most resources are far below the limit.
    if resource.value.len() < MAX_VALUE_BYTES / 2 {
        return None;
    }
    let entry = Entry {
        object: object.clone(),
        filled: None,
        converted: false,
        accepted: Some(Accepted {
            resource: Arc::clone(resource),
            generation: object.generation,
            service_endpoints: 0,
            references: Default::default(),
        }),
        errors: Vec::new(),
        too_large: false,
        slice_warnings: Vec::new(),
    };
    let (snapshot, _, _) = build_snapshot(&object.key.namespace, &[&entry], &Default::default());
    let bytes = snapshot.encoded_len();
    (bytes > MAX_VALUE_BYTES).then(|| {
        ConfigError::new(
            CONFIG_PATH,
            format!(
                "too large: the resource is {} bytes encoded, and a snapshot holding only it {bytes} bytes, more than one etcd value may hold ({MAX_VALUE_BYTES} bytes); it could reach no Envoy",
                resource.value.len()
            ),
        )
    })
}
