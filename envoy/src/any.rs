//! `google.protobuf.Any`: the one place that reads a type URL and decodes
//! or replaces a payload (conversion, validation, secret redaction,
//! cross-references and `inspect` all go through it).

use prost::Message;
use prost_reflect::{DynamicMessage, MessageDescriptor, ReflectMessage, Value};

use crate::descriptor_pool;

/// The full name of `Any`.
pub const ANY: &str = "google.protobuf.Any";

/// Whether `desc` is `Any`.
pub fn is_any(desc: &MessageDescriptor) -> bool {
    desc.full_name() == ANY
}

/// Why an `Any`'s payload cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum AnyError {
    #[error("unknown type {0:?}")]
    UnknownType(String),
    #[error("the payload of type {type_url:?} cannot be decoded: {source}")]
    Decode {
        type_url: String,
        #[source]
        source: prost::DecodeError,
    },
}

/// The message name in a type URL: what follows the last `/`.
pub fn message_name(type_url: &str) -> Option<&str> {
    let (_, name) = type_url.rsplit_once('/')?;
    (!name.is_empty()).then_some(name)
}

/// The Envoy API message a type URL names.
pub fn descriptor(type_url: &str) -> Option<MessageDescriptor> {
    descriptor_pool().get_message_by_name(message_name(type_url)?)
}

/// An `Any`'s `type_url` (empty when unset).
pub fn type_url(any: &DynamicMessage) -> String {
    any.get_field_by_name("type_url")
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// Decodes an `Any`'s payload with the message its type URL names (looked
/// up in the pool the `Any` itself comes from).
pub fn unpack(any: &DynamicMessage) -> Result<DynamicMessage, AnyError> {
    let url = type_url(any);
    let desc = message_name(&url)
        .and_then(|name| any.descriptor().parent_pool().get_message_by_name(name))
        .ok_or_else(|| AnyError::UnknownType(url.clone()))?;
    let bytes = any
        .get_field_by_name("value")
        .and_then(|v| v.as_bytes().cloned())
        .unwrap_or_default();
    DynamicMessage::decode(desc, bytes).map_err(|source| AnyError::Decode {
        type_url: url,
        source,
    })
}

/// The two `TypedStruct` messages (`xds.type.v3` and, for history,
/// `udpa.type.v1`): an `Any` holding one carries its real type URL in
/// `type_url` and the message as JSON in `value`. Envoy converts `value` to
/// the message `type_url` names and uses that; the Envoy API descriptors
/// Bootes has do not include them, so they are known by name here.
pub const TYPED_STRUCTS: [&str; 2] = ["xds.type.v3.TypedStruct", "udpa.type.v1.TypedStruct"];

/// Whether a type URL names a `TypedStruct`.
pub fn is_typed_struct(type_url: &str) -> bool {
    message_name(type_url).is_some_and(|name| TYPED_STRUCTS.contains(&name))
}

/// The JSON of a `TypedStruct` (`{"@type", "type_url", "value"}`): its inner
/// type URL (when given as a string) and its `value` (when given).
pub fn typed_struct_parts(
    json: &serde_json::Map<String, serde_json::Value>,
) -> (Option<&str>, Option<&serde_json::Value>) {
    let url = json
        .get("type_url")
        .or_else(|| json.get("typeUrl"))
        .and_then(|v| v.as_str());
    (url, json.get("value"))
}

/// Replaces an `Any`'s payload (its type URL stays).
pub fn repack(any: &mut DynamicMessage, payload: &DynamicMessage) {
    any.set_field_by_name("value", Value::Bytes(payload.encode_to_vec().into()));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn any_of(url: &str, value: Vec<u8>) -> DynamicMessage {
        let mut any = DynamicMessage::new(descriptor_pool().get_message_by_name(ANY).unwrap());
        any.set_field_by_name("type_url", Value::String(url.into()));
        any.set_field_by_name("value", Value::Bytes(value.into()));
        any
    }

    #[test]
    fn payloads_are_unpacked_and_repacked_by_type_url() {
        let router = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router";
        let desc = descriptor(router).unwrap();
        let mut payload = DynamicMessage::new(desc);
        payload.set_field_by_name("suppress_envoy_headers", Value::Bool(true));
        let mut any = any_of(router, Vec::new());
        assert!(is_any(&any.descriptor()));
        repack(&mut any, &payload);
        assert_eq!(unpack(&any).unwrap(), payload);

        assert!(matches!(
            unpack(&any_of("type.googleapis.com/no.Such", vec![])),
            Err(AnyError::UnknownType(u)) if u == "type.googleapis.com/no.Such"
        ));
        assert!(matches!(
            unpack(&any_of(router, vec![0xff])),
            Err(AnyError::Decode { .. })
        ));
        assert_eq!(message_name("type.googleapis.com/a.B"), Some("a.B"));
        assert_eq!(message_name("a.B"), None);
        assert_eq!(message_name("x/"), None);
    }

    #[test]
    fn typed_structs_of_both_packages_are_known_by_name() {
        assert!(is_typed_struct(
            "type.googleapis.com/xds.type.v3.TypedStruct"
        ));
        assert!(is_typed_struct(
            "type.googleapis.com/udpa.type.v1.TypedStruct"
        ));
        assert!(!is_typed_struct(
            "type.googleapis.com/xds.type.v3.CelExpression"
        ));
        let json = serde_json::json!({"@type": "x", "typeUrl": "type.googleapis.com/a.B", "value": {"c": 1}});
        let (url, value) = typed_struct_parts(json.as_object().unwrap());
        assert_eq!(url, Some("type.googleapis.com/a.B"));
        assert_eq!(value, Some(&serde_json::json!({"c": 1})));
    }
}
