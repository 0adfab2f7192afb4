//! Secret material: fields Envoy's API marks `(udpa.annotations.sensitive)`
//! (private keys, passwords, session ticket keys, generic secrets). One
//! redaction for every place that shows stored config to people: `inspect`
//! and CSDS answers.

use std::sync::OnceLock;

use prost::Message;
use prost_reflect::{
    DynamicMessage, ExtensionDescriptor, FieldDescriptor, MessageDescriptor, ReflectMessage,
};

use crate::envoy::descriptor_pool;
use crate::ResourceType;

/// What a sensitive value is replaced with.
pub const REDACTED: &str = "[redacted]";

fn extension() -> Option<&'static ExtensionDescriptor> {
    static EXT: OnceLock<Option<ExtensionDescriptor>> = OnceLock::new();
    EXT.get_or_init(|| descriptor_pool().get_extension_by_name("udpa.annotations.sensitive"))
        .as_ref()
}

/// Whether the descriptor pool has the annotation at all (without it no
/// field can be told sensitive, and callers must assume the worst).
pub fn annotation_known() -> bool {
    extension().is_some()
}

/// Whether Envoy's API marks `field` sensitive.
pub fn is_sensitive(field: &FieldDescriptor) -> bool {
    let Some(ext) = extension() else {
        return false;
    };
    let options = field.options();
    options.has_extension(ext) && options.get_extension(ext).as_bool() == Some(true)
}

/// Redacts every field marked `(udpa.annotations.sensitive)`, at any depth
/// and inside `Any` payloads. A Secret whose sensitivity cannot be told (no
/// annotation in the pool) is redacted whole.
pub fn redact(message: &mut DynamicMessage) -> Result<(), String> {
    if !annotation_known()
        && message.descriptor().full_name() == ResourceType::Secret.message_name()
    {
        let name = message.get_field_by_name("name").map(|v| v.into_owned());
        message.clear();
        if let Some(name) = name {
            message.set_field_by_name("name", name);
        }
        return Ok(());
    }
    redact_message(message, false)
}

/// [`redact`] on an encoded message of `type_url`, re-encoded.
pub fn redact_encoded(type_url: &str, value: &[u8]) -> Result<Vec<u8>, String> {
    let desc = message_descriptor(type_url)?;
    let mut message = DynamicMessage::decode(desc, value)
        .map_err(|e| format!("{type_url} does not decode: {e}"))?;
    redact(&mut message)?;
    Ok(message.encode_to_vec())
}

fn message_descriptor(type_url: &str) -> Result<MessageDescriptor, String> {
    let name = type_url.rsplit_once('/').map_or(type_url, |(_, n)| n);
    descriptor_pool()
        .get_message_by_name(name)
        .ok_or_else(|| format!("{type_url:?} is not in the Envoy API"))
}

fn redact_message(message: &mut DynamicMessage, all: bool) -> Result<(), String> {
    if message.descriptor().full_name() == "google.protobuf.Any" {
        return redact_any(message, all);
    }
    for (field, value) in message.fields_mut() {
        let all = all || is_sensitive(&field);
        redact_value(value, all)?;
    }
    Ok(())
}

fn redact_value(value: &mut prost_reflect::Value, all: bool) -> Result<(), String> {
    use prost_reflect::Value as V;
    match value {
        V::String(s) if all => *s = REDACTED.to_string(),
        V::Bytes(b) if all => *b = REDACTED.as_bytes().to_vec().into(),
        V::Message(m) => redact_message(m, all)?,
        V::List(items) => {
            for v in items {
                redact_value(v, all)?;
            }
        }
        V::Map(map) => {
            for v in map.values_mut() {
                redact_value(v, all)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// Decodes an `Any` payload, redacts it and packs it again.
fn redact_any(any: &mut DynamicMessage, all: bool) -> Result<(), String> {
    let type_url = any
        .get_field_by_name("type_url")
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    let bytes = any
        .get_field_by_name("value")
        .and_then(|v| v.as_bytes().cloned())
        .unwrap_or_default();
    let desc = message_descriptor(&type_url)
        .map_err(|e| format!("Any names {type_url:?}, which is not in the Envoy API ({e})"))?;
    let mut inner = DynamicMessage::decode(desc, bytes.as_ref())
        .map_err(|e| format!("Any of type {type_url:?} does not decode: {e}"))?;
    redact_message(&mut inner, all)?;
    any.set_field_by_name(
        "value",
        prost_reflect::Value::Bytes(inner.encode_to_vec().into()),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use envoy_types::pb::envoy::config::core::v3::{data_source::Specifier, DataSource};
    use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
        secret, GenericSecret, Secret, TlsCertificate,
    };

    use super::*;

    fn inline(s: &str) -> Option<DataSource> {
        Some(DataSource {
            specifier: Some(Specifier::InlineString(s.into())),
            ..Default::default()
        })
    }

    #[test]
    fn private_keys_are_redacted_and_certificates_kept() {
        let secret = Secret {
            name: "edge-cert".into(),
            r#type: Some(secret::Type::TlsCertificate(TlsCertificate {
                certificate_chain: inline("-----BEGIN CERTIFICATE-----"),
                private_key: inline("-----BEGIN PRIVATE KEY-----"),
                ..Default::default()
            })),
        };
        let out = redact_encoded(ResourceType::Secret.type_url(), &secret.encode_to_vec()).unwrap();
        let back = Secret::decode(out.as_slice()).unwrap();
        let Some(secret::Type::TlsCertificate(tls)) = back.r#type else {
            panic!("type kept")
        };
        assert_eq!(back.name, "edge-cert");
        assert_eq!(tls.certificate_chain, inline("-----BEGIN CERTIFICATE-----"));
        assert_eq!(tls.private_key, inline(REDACTED));
    }

    #[test]
    fn generic_secrets_are_redacted() {
        let secret = Secret {
            name: "token".into(),
            r#type: Some(secret::Type::GenericSecret(GenericSecret {
                secret: inline("hunter2"),
                ..Default::default()
            })),
        };
        let out = redact_encoded(ResourceType::Secret.type_url(), &secret.encode_to_vec()).unwrap();
        assert!(!out.windows(7).any(|w| w == b"hunter2"));
    }

    #[test]
    fn an_unknown_type_is_an_error_not_a_pass_through() {
        assert!(redact_encoded("type.googleapis.com/not.a.Type", b"\x0a\x01x").is_err());
    }
}
