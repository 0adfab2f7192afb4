//! Builders shared by the protocol state machine tests.

use std::collections::BTreeMap;
use std::sync::Arc;

use bootes_proto::ResourceType;
use bytes::Bytes;

use crate::snapshots::{Resource, Snapshot};

/// A snapshot from (type, name, version) triples; each body names its
/// resource and version.
pub fn snap(items: &[(ResourceType, &str, &str)]) -> Arc<Snapshot> {
    let mut types: BTreeMap<ResourceType, BTreeMap<String, Arc<Resource>>> = BTreeMap::new();
    for (ty, name, version) in items {
        types.entry(*ty).or_default().insert(
            name.to_string(),
            Arc::new(Resource {
                name: name.to_string(),
                version: version.to_string(),
                value: Bytes::from(format!("{name}@{version}")),
                source: String::new(),
            }),
        );
    }
    Arc::new(Snapshot::new("ns/g".into(), String::new(), types))
}
