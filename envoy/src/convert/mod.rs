//! Conversion of `spec.config` (proto3 JSON) into the Envoy protobuf message
//! its kind names, using the Envoy descriptor pool: no per-type Rust code.
//!
//! * [`json`] — the proto3 JSON walker: every problem with its JSON path.
//! * [`pgv`] — protoc-gen-validate rules, read from the descriptors.
//! * [`semantic`] — Envoy's checks beyond those, as a table of rules.
//!
//! docs/VALIDATION.md describes what is checked and how problems read.

pub mod filter_order;
pub mod formatter;
pub mod json;
pub mod pgv;
pub mod re2;
pub mod rule;
pub mod semantic;
mod semantic_checks;
mod semantic_rules;
#[cfg(test)]
mod semantic_tests;
pub mod slots;
#[cfg(test)]
mod tests;
pub mod tls_names;
pub mod uri_template;

use bootes_proto::envoy::descriptor_pool;
use bootes_proto::{version, ResourceType};
use prost::Message;
use prost_reflect::{DynamicMessage, ReflectMessage, SerializeOptions};

pub use crate::error::{ConfigError, CONFIG_PATH};

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
    /// What the warning rules found ([`semantic::warnings`]): reported, not
    /// a reason to reject.
    pub warnings: Vec<ConfigError>,
}

impl Converted {
    /// The resource as a message again (for reading references out of it).
    pub fn message(&self) -> DynamicMessage {
        let desc = descriptor_pool()
            .get_message_by_name(self.ty.message_name())
            .expect("every ResourceType names a message of the Envoy API");
        DynamicMessage::decode(desc, self.value.as_slice())
            .expect("a converted resource decodes with the descriptor it was made with")
    }
}

/// Converts and validates one `spec.config`.
pub fn convert(
    ty: ResourceType,
    config: &serde_json::Value,
) -> Result<Converted, Vec<ConfigError>> {
    let (message, errors) = convert_message(ty, config);
    if !errors.is_empty() {
        return Err(errors);
    }
    let name = message
        .get_field_by_name(ty.name_field())
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    let version = canonical_version(&message);
    let desc = message.descriptor();
    let warnings = semantic::warnings(ty, &message, CONFIG_PATH)
        .into_iter()
        .map(|e| crate::sensitive::redact_error(&desc, config, CONFIG_PATH, e))
        .collect();
    Ok(Converted {
        warnings,
        ty,
        name,
        value: message.encode_to_vec(),
        version,
    })
}

/// Parses and validates `config` as the message of `ty`. Returns the message
/// and every problem found (parse errors, rule violations, a missing name);
/// the message is only fit for use when there are none.
pub fn convert_message(
    ty: ResourceType,
    config: &serde_json::Value,
) -> (DynamicMessage, Vec<ConfigError>) {
    let desc = descriptor_pool()
        .get_message_by_name(ty.message_name())
        .expect("every ResourceType names a message of the Envoy API");
    let (message, mut errors) = parse_and_validate(&desc, config, CONFIG_PATH);
    if errors.is_empty() {
        errors = semantic::check(ty, &message, CONFIG_PATH);
    }
    let name_path = format!("{CONFIG_PATH}.{}", ty.name_field());
    let named = message
        .get_field_by_name(ty.name_field())
        .is_some_and(|v| v.as_str().is_some_and(|s| !s.is_empty()));
    if !named && config.is_object() {
        // Say it plainly, instead of the name field's own rule (if any).
        errors.retain(|e| !(e.path == name_path && e.message.starts_with("must not be empty")));
        if !errors.iter().any(|e| e.path == name_path) {
            errors.push(ConfigError::new(
                name_path,
                format!("the resource has no name: {} is required", ty.name_field()),
            ));
        }
    }
    json::cap(&mut errors, CONFIG_PATH);
    // Never echo secret material in a report.
    let errors = errors
        .into_iter()
        .map(|e| crate::sensitive::redact_error(&desc, config, CONFIG_PATH, e))
        .collect();
    (message, errors)
}

/// Parses `json` as a `desc` message and checks its protoc-gen-validate rules.
/// `root` is the path of `json` in reports.
pub fn parse_and_validate(
    desc: &prost_reflect::MessageDescriptor,
    json: &serde_json::Value,
    root: &str,
) -> (DynamicMessage, Vec<ConfigError>) {
    let (message, mut errors) = json::parse(desc, json, root);
    // Rule violations where a value could not be parsed (or around it) are
    // consequences of the parse error, not news: leave them out.
    let parse_errors = errors.len();
    for violation in pgv::validate(&message, root) {
        let related = errors[..parse_errors].iter().any(|e| {
            path_contains(&violation.path, &e.path) || path_contains(&e.path, &violation.path)
        });
        if !related {
            errors.push(violation);
        }
    }
    json::cap(&mut errors, root);
    (message, errors)
}

/// Whether `inner` is `outer` or a path below it.
fn path_contains(outer: &str, inner: &str) -> bool {
    inner
        .strip_prefix(outer)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
}

/// Content hash of a message, stable across processes.
///
/// The protobuf encoding is not canonical (map fields come out in hash-map
/// order, also inside `Any` payloads), so the hash is taken over the proto3
/// JSON form with object keys sorted at every depth.
pub fn canonical_version(message: &DynamicMessage) -> String {
    let json = match message.serialize_with_options(
        serde_json::value::Serializer,
        &SerializeOptions::new().use_proto_field_name(true),
    ) {
        Ok(json) => json,
        // Only a message whose Any payloads cannot be decoded gets here (never
        // one that `convert` accepted): hash its bytes instead of failing.
        Err(_) => return version::of_bytes(&message.encode_to_vec()),
    };
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
                serde_json::to_writer(&mut *out, k).expect("a string serializes");
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
        // Written in place: no string made per key or scalar.
        scalar => serde_json::to_writer(out, scalar).expect("a scalar serializes"),
    }
}
