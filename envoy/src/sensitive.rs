//! Secret material: fields Envoy's API marks `(udpa.annotations.sensitive)`
//! (private keys, passwords, session ticket keys, generic secrets). Bootes
//! never echoes their values: not in logs, not in `validate` output, not in
//! Kubernetes status, not in `inspect` (unless asked).

use prost_reflect::{FieldDescriptor, Kind, MessageDescriptor};

use crate::error::ConfigError;

// One definition of what is sensitive, shared with the xds-server (CSDS).
pub use bootes_proto::redact::{annotation_known, is_sensitive, REDACTED};

/// One step of a reported path: `.field`, `[index]` or `["key"]`.
#[derive(Debug, PartialEq)]
enum Step {
    Field(String),
    Index(usize),
    Key(String),
}

fn steps(path: &str) -> Option<Vec<Step>> {
    let mut out = Vec::new();
    let mut rest = path;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            out.push(Step::Field(r[..end].to_string()));
            rest = &r[end..];
        } else if let Some(r) = rest.strip_prefix("[\"") {
            // A JSON-quoted map key.
            let mut end = None;
            let mut escaped = false;
            for (i, c) in r.char_indices() {
                match c {
                    '\\' if !escaped => escaped = true,
                    '"' if !escaped => {
                        end = Some(i);
                        break;
                    }
                    _ => escaped = false,
                }
            }
            let end = end?;
            let key: String = serde_json::from_str(&format!("\"{}\"", &r[..end])).ok()?;
            out.push(Step::Key(key));
            rest = r[end + 1..].strip_prefix(']')?;
        } else if let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']')?;
            out.push(Step::Index(r[..end].parse().ok()?));
            rest = &r[end + 1..];
        } else {
            return None;
        }
    }
    Some(out)
}

/// Whether `path` (relative to a `desc` message given as `json`, e.g.
/// `.tls_certificate.private_key.inline_string`) goes through a sensitive
/// field, following `@type` into `Any` payloads. A path that cannot be
/// followed in the descriptors (an unknown field, say) names no secret.
pub fn path_is_sensitive(desc: &MessageDescriptor, json: &serde_json::Value, path: &str) -> bool {
    let Some(steps) = steps(path) else {
        return false;
    };
    let mut desc = desc.clone();
    let mut json = json;
    // A repeated or map field waiting for its index or key.
    let mut container: Option<FieldDescriptor> = None;
    for step in steps {
        match (step, container.take()) {
            (Step::Field(name), None) => {
                if crate::any::is_any(&desc) {
                    let url = json.get("@type").and_then(|t| t.as_str()).unwrap_or("");
                    // A TypedStruct's payload is the message of its inner
                    // type URL, under "value" in the JSON; the paths of a
                    // converted message leave "value" out.
                    let typed_struct = json
                        .as_object()
                        .filter(|_| crate::any::is_typed_struct(url))
                        .map(crate::any::typed_struct_parts);
                    let url = match typed_struct {
                        Some((inner, _)) => inner.unwrap_or(""),
                        None => url,
                    };
                    let Some(payload) = crate::any::descriptor(url) else {
                        return false;
                    };
                    desc = payload;
                    if let Some((_, value)) = typed_struct {
                        json = value.unwrap_or(&serde_json::Value::Null);
                        if name == "value" {
                            continue;
                        }
                    }
                }
                let Some(field) = desc
                    .get_field_by_name(&name)
                    .or_else(|| desc.get_field_by_json_name(&name))
                else {
                    return false;
                };
                if is_sensitive(&field) {
                    return true;
                }
                json = json
                    .get(field.name())
                    .or_else(|| json.get(field.json_name()))
                    .unwrap_or(&serde_json::Value::Null);
                if field.is_list() || field.is_map() {
                    container = Some(field);
                } else if let Kind::Message(m) = field.kind() {
                    desc = m;
                } else {
                    return false;
                }
            }
            (Step::Index(i), Some(field)) if field.is_list() => {
                json = json.get(i).unwrap_or(&serde_json::Value::Null);
                let Kind::Message(m) = field.kind() else {
                    return false;
                };
                desc = m;
            }
            (Step::Key(key), Some(field)) if field.is_map() => {
                json = json.get(&key).unwrap_or(&serde_json::Value::Null);
                let Kind::Message(entry) = field.kind() else {
                    return false;
                };
                let Some(value) = entry.map_entry_value_field().kind().as_message().cloned() else {
                    return false;
                };
                desc = value;
            }
            _ => return false,
        }
    }
    false
}

/// The error with every quoted value in its message replaced when its path
/// (below `root`, the path of `json`) goes through a sensitive field: the
/// field and the rule stay readable, the value does not.
pub fn redact_error(
    desc: &MessageDescriptor,
    json: &serde_json::Value,
    root: &str,
    mut err: ConfigError,
) -> ConfigError {
    let below = err.path.strip_prefix(root).unwrap_or("");
    if path_is_sensitive(desc, json, below) {
        err.message = redact_quoted(&err.message);
    }
    err
}

/// Replaces every double-quoted string (JSON-escaped, possibly shortened
/// with a trailing `…`) with `"[redacted]"`.
fn redact_quoted(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut chars = message.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '"' {
            out.push(c);
            continue;
        }
        // Skip to the closing quote, honouring backslash escapes.
        while let Some(c) = chars.next() {
            match c {
                '\\' => {
                    chars.next();
                }
                '"' => break,
                _ => {}
            }
        }
        if chars.peek() == Some(&'…') {
            chars.next();
        }
        out.push('"');
        out.push_str(REDACTED);
        out.push('"');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use bootes_proto::envoy::descriptor_pool;

    #[test]
    fn knows_envoys_sensitive_fields() {
        let secret = descriptor_pool()
            .get_message_by_name("envoy.extensions.transport_sockets.tls.v3.TlsCertificate")
            .unwrap();
        assert!(is_sensitive(
            &secret.get_field_by_name("private_key").unwrap()
        ));
        assert!(!is_sensitive(
            &secret.get_field_by_name("certificate_chain").unwrap()
        ));
    }

    fn secret() -> MessageDescriptor {
        descriptor_pool()
            .get_message_by_name("envoy.extensions.transport_sockets.tls.v3.Secret")
            .unwrap()
    }

    #[test]
    fn paths_through_sensitive_fields() {
        let json = serde_json::json!({"name": "s", "tls_certificate": {"private_key": {}}});
        let d = secret();
        assert!(path_is_sensitive(
            &d,
            &json,
            ".tls_certificate.private_key.inline_string"
        ));
        assert!(path_is_sensitive(&d, &json, ".tlsCertificate.privateKey"));
        assert!(path_is_sensitive(
            &d,
            &json,
            ".session_ticket_keys.keys[0].inline_bytes"
        ));
        assert!(path_is_sensitive(
            &d,
            &json,
            ".generic_secret.secrets[\"k\\\"q\"].inline_string"
        ));
        assert!(!path_is_sensitive(
            &d,
            &json,
            ".tls_certificate.certificate_chain.inline_string"
        ));
        assert!(!path_is_sensitive(&d, &json, ".name"));
        assert!(!path_is_sensitive(&d, &json, ".no_such_field.private_key"));
    }

    #[test]
    fn follows_typed_struct_payloads() {
        let cluster = descriptor_pool()
            .get_message_by_name("envoy.config.cluster.v3.Cluster")
            .unwrap();
        let json = serde_json::json!({"transport_socket": {"typed_config": {
            "@type": "type.googleapis.com/udpa.type.v1.TypedStruct",
            "type_url": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
            "value": {"common_tls_context": {"tls_certificates": [{"private_key": {"inline_string": "k"}}]}}}}});
        let key = ".common_tls_context.tls_certificates[0].private_key.inline_string";
        for path in [
            format!(".transport_socket.typed_config.value{key}"),
            format!(".transport_socket.typed_config{key}"),
        ] {
            assert!(path_is_sensitive(&cluster, &json, &path), "{path}");
        }
        let sni = ".transport_socket.typed_config.value.sni";
        assert!(!path_is_sensitive(&cluster, &json, sni));
    }

    #[test]
    fn follows_any_payloads_and_ignores_same_named_fields_elsewhere() {
        // `typed_config` is sensitive in some messages; not in a listener filter.
        let listener = descriptor_pool()
            .get_message_by_name("envoy.config.listener.v3.Listener")
            .unwrap();
        let json = serde_json::json!({"filter_chains": [{
            "filters": [{"typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"}}],
            "transport_socket": {"typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext"}}
        }]});
        assert!(!path_is_sensitive(
            &listener,
            &json,
            ".filter_chains[0].filters[0].typed_config.stat_prefx"
        ));
        assert!(path_is_sensitive(
            &listener,
            &json,
            ".filter_chains[0].transport_socket.typed_config.common_tls_context.tls_certificates[0].private_key"
        ));
    }

    #[test]
    fn quoted_values_are_replaced_and_the_rest_kept() {
        let json = serde_json::json!({});
        let err = ConfigError::new(
            "spec.config.tls_certificate.private_key",
            r#"expected an object (DataSource), got the string "-----BEGIN PRIVATE \"KEY\"-----…""#,
        );
        assert_eq!(
            redact_error(&secret(), &json, "spec.config", err).message,
            r#"expected an object (DataSource), got the string "[redacted]""#
        );
        let kept = ConfigError::new("spec.config.name", r#"must be "x""#);
        assert_eq!(
            redact_error(&secret(), &json, "spec.config", kept.clone()),
            kept
        );
    }
}
