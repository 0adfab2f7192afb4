//! Conversion of `spec.config` (proto3 JSON) into the Envoy protobuf message
//! its kind names, using the Envoy descriptor pool: no per-type Rust code.

use bootes_proto::envoy::descriptor_pool;
use bootes_proto::{version, ResourceType};
use prost::Message;
use prost_reflect::{DeserializeOptions, DynamicMessage, SerializeOptions};

/// One Envoy resource, converted, validated and encoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Converted {
    pub ty: ResourceType,
    /// The xDS resource name.
    pub name: String,
    /// The encoded Envoy message.
    pub value: Vec<u8>,
    /// Content hash of the canonical form (see [`canonical_version`]).
    pub version: String,
}

/// A problem with one place in `spec.config`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ConfigError {
    /// Where, as a path from `spec.config` (e.g. `spec.config.load_assignment.endpoints[0]`).
    pub path: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// Root of every path reported for `spec.config`.
pub const CONFIG_PATH: &str = "spec.config";

/// Converts and validates one `spec.config`.
pub fn convert(ty: ResourceType, config: &serde_json::Value) -> Result<Converted, Vec<ConfigError>> {
    let pool = descriptor_pool();
    let desc = pool
        .get_message_by_name(ty.message_name())
        .expect("every ResourceType names a message of the Envoy API");
    let options = DeserializeOptions::new().deny_unknown_fields(true);
    let message = DynamicMessage::deserialize_with_options(desc, config, &options)
        .map_err(|e| vec![ConfigError::new(CONFIG_PATH, e.to_string())])?;

    let name = message
        .get_field_by_name(ty.name_field())
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    if name.is_empty() {
        return Err(vec![ConfigError::new(
            format!("{CONFIG_PATH}.{}", ty.name_field()),
            "the resource has no name",
        )]);
    }
    let version = canonical_version(&message);
    Ok(Converted {
        ty,
        name,
        value: message.encode_to_vec(),
        version,
    })
}

/// Content hash of a message, stable across processes.
///
/// The protobuf encoding is not canonical (map fields come out in hash-map
/// order, also inside `Any` payloads), so the hash is taken over the proto3
/// JSON form with object keys sorted at every depth.
pub fn canonical_version(message: &DynamicMessage) -> String {
    let json = message
        .serialize_with_options(
            serde_json::value::Serializer,
            &SerializeOptions::new().use_proto_field_name(true),
        )
        .expect("a valid message serializes to JSON");
    let mut out = Vec::new();
    write_sorted(&json, &mut out);
    version::of_bytes(&out)
}

fn write_sorted(value: &serde_json::Value, out: &mut Vec<u8>) {
    match value {
        serde_json::Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
            out.push(b'{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(serde_json::Value::from(k.as_str()).to_string().as_bytes());
                out.push(b':');
                write_sorted(v, out);
            }
            out.push(b'}');
        }
        serde_json::Value::Array(items) => {
            out.push(b'[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_sorted(v, out);
            }
            out.push(b']');
        }
        scalar => out.extend_from_slice(scalar.to_string().as_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn converts_a_cluster_and_names_it() {
        let c = convert(
            ResourceType::Cluster,
            &json!({"name": "c1", "connect_timeout": "1s", "type": "EDS",
                    "eds_cluster_config": {"eds_config": {"ads": {}}}}),
        )
        .unwrap();
        assert_eq!(c.name, "c1");
        assert!(!c.value.is_empty());
    }

    #[test]
    fn endpoint_is_named_by_cluster_name() {
        let c = convert(ResourceType::Endpoint, &json!({"cluster_name": "c1"})).unwrap();
        assert_eq!(c.name, "c1");
    }

    #[test]
    fn camel_and_snake_case_give_the_same_version() {
        let a = convert(ResourceType::Cluster, &json!({"name": "c", "connect_timeout": "1s"}));
        let b = convert(ResourceType::Cluster, &json!({"name": "c", "connectTimeout": "1s"}));
        assert_eq!(a.unwrap().version, b.unwrap().version);
    }

    #[test]
    fn version_is_independent_of_map_order() {
        // `typed_per_filter_config` is a map field: its encoding order is not
        // stable, the version must be.
        let vh = |a: &str, b: &str| {
            json!({"name": "r", "virtual_hosts": [{"name": "v", "domains": ["*"],
                "typed_per_filter_config": {
                    a: {"@type": "type.googleapis.com/google.protobuf.Struct", "value": {"k": a}},
                    b: {"@type": "type.googleapis.com/google.protobuf.Struct", "value": {"k": b}}
                }}]})
        };
        let v1 = convert(ResourceType::Route, &vh("x", "y")).unwrap().version;
        let v2 = convert(ResourceType::Route, &vh("y", "x")).unwrap().version;
        assert_eq!(v1, v2);
    }

    #[test]
    fn rejects_unknown_fields_and_missing_names() {
        let e = convert(ResourceType::Cluster, &json!({"name": "c", "conect_timeout": "1s"}))
            .unwrap_err();
        assert!(e[0].message.contains("conect_timeout"), "{e:?}");
        let e = convert(ResourceType::Cluster, &json!({"connect_timeout": "1s"})).unwrap_err();
        assert_eq!(e[0].path, "spec.config.name");
    }
}
