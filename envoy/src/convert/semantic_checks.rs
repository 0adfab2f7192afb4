//! Tests of values and messages for the rules of issue 24 (filter chains,
//! regexes, route configurations, formats, health checks, TLS), used by the
//! table in [`super::semantic_rules`].

use std::collections::{BTreeMap, BTreeSet};

use prost_reflect::{DynamicMessage, ReflectMessage, Value};

use super::json::quote;
use super::rule::{enum_name, is_set, values};

const HCM: &str =
    "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";

fn text(v: &Value) -> Option<&str> {
    v.as_str()
}

/// `*.example.com` is a wildcard; Envoy refuses any other `*`.
pub(crate) fn server_name(v: &Value) -> Option<String> {
    let name = text(v)?;
    (name.contains('*') && !name.starts_with("*.")).then(|| {
        format!(
            "{}: a wildcard is only a leading \"*.\" (\"*.example.com\")",
            quote(name)
        )
    })
}

/// The keys a `FilterChainMatch` puts its chain under, one set per
/// dimension Envoy matches on (an empty list is the wildcard, a key of its
/// own: a more specific chain beside it is no conflict).
fn match_keys(m: Option<&DynamicMessage>) -> Vec<BTreeSet<String>> {
    const DIMENSIONS: [&str; 10] = [
        "destination_port",
        "prefix_ranges",
        "address_suffix",
        "direct_source_prefix_ranges",
        "source_type",
        "source_prefix_ranges",
        "source_ports",
        "server_names",
        "transport_protocol",
        "application_protocols",
    ];
    DIMENSIONS
        .iter()
        .map(|field| {
            let mut keys = BTreeSet::new();
            if let Some(m) = m {
                for (_, v) in values(m, field) {
                    keys.insert(key_text(&v));
                }
                if *field == "source_type" {
                    keys = enum_name(m, field).into_iter().collect();
                }
            }
            keys.retain(|k| !k.is_empty());
            if keys.is_empty() {
                keys.insert("*".into());
            }
            keys
        })
        .collect()
}

fn key_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::U32(n) => n.to_string(),
        Value::Message(m) if m.descriptor().full_name() == "google.protobuf.UInt32Value" => m
            .get_field_by_name("value")
            .and_then(|v| v.as_u32())
            .unwrap_or(0)
            .to_string(),
        Value::Message(m) => {
            // A CidrRange.
            let a = m
                .get_field_by_name("address_prefix")
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            let len = values(m, "prefix_len")
                .first()
                .and_then(|(_, v)| v.as_message()?.get_field_by_name("value")?.as_u32())
                .map_or_else(String::new, |n| n.to_string());
            format!("{a}/{len}")
        }
        other => format!("{other:?}"),
    }
}

/// Two filter chains of a listener that match the same connections.
pub(crate) fn duplicate_chain_matches(listener: &DynamicMessage) -> Option<(String, String)> {
    let chains = values(listener, "filter_chains");
    let keys: Vec<(String, String, Vec<BTreeSet<String>>)> = chains
        .iter()
        .filter_map(|(at, v)| {
            let chain = v.as_message()?;
            let name = chain
                .get_field_by_name("name")
                .and_then(|n| n.as_str().map(str::to_owned))
                .unwrap_or_default();
            let m = values(chain, "filter_chain_match")
                .into_iter()
                .next()
                .and_then(|(_, v)| v.as_message().cloned());
            Some((at.clone(), name, match_keys(m.as_ref())))
        })
        .collect();
    for (i, (at, name, mine)) in keys.iter().enumerate() {
        for (other_at, other_name, theirs) in &keys[..i] {
            if mine.iter().zip(theirs).all(|(a, b)| !a.is_disjoint(b)) {
                let same = mine == theirs;
                let how = if same { "the same" } else { "overlapping" };
                return Some((
                    format!("{at}.filter_chain_match"),
                    format!(
                        "this filter chain ({}) has {how} filter_chain_match as {} ({}): Envoy could not tell them apart",
                        quote(name),
                        other_at.trim_start_matches('.'),
                        quote(other_name)
                    ),
                ));
            }
        }
    }
    None
}

/// A `RegexMatcher`: RE2 must compile its regex within the program size.
pub(crate) fn regex(m: &DynamicMessage) -> Option<(String, String)> {
    let pattern = m.get_field_by_name("regex")?;
    let pattern = pattern.as_str()?;
    let limit = values(m, "google_re2.max_program_size")
        .first()
        .and_then(|(_, v)| v.as_message()?.get_field_by_name("value")?.as_u32())
        .map_or(super::re2::MAX_PROGRAM_SIZE, u64::from);
    super::re2::problem(pattern, limit)
        .map(|p| (".regex".into(), format!("{}: {p}", quote(pattern))))
}

/// The domains of a route configuration's virtual hosts: unique (ignoring
/// case), and at most one `*`.
pub(crate) fn unique_domains(rc: &DynamicMessage) -> Option<(String, String)> {
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    for (at, v) in values(rc, "virtual_hosts.domains") {
        let domain = text(&v)?.to_ascii_lowercase();
        if let Some(first) = seen.get(&domain) {
            let first = first.trim_start_matches('.');
            let problem = if domain == "*" {
                format!(
                    "a second wildcard domain \"*\" (the first is at {first}): only one is allowed"
                )
            } else {
                format!("domain {} is already at {first}: domains are unique across virtual hosts, ignoring case", quote(&domain))
            };
            return Some((at, problem));
        }
        seen.insert(domain, at);
    }
    None
}

/// A route rewrites its path one way at most.
pub(crate) fn one_path_rewrite(action: &DynamicMessage) -> Option<(String, String)> {
    let set: Vec<&str> = ["prefix_rewrite", "regex_rewrite", "path_rewrite_policy"]
        .into_iter()
        .filter(|f| is_set(action, f))
        .collect();
    (set.len() > 1).then(|| {
        (
            format!(".{}", set[1]),
            format!(
                "{} and {} are both set: a route rewrites its path one way",
                set[0], set[1]
            ),
        )
    })
}

/// Weighted clusters whose weights add up to 0.
pub(crate) fn weights_sum(wc: &DynamicMessage) -> Option<(String, String)> {
    let weights = values(wc, "clusters.weight");
    if weights.is_empty() {
        return None;
    }
    let sum: u64 = weights
        .iter()
        .filter_map(|(_, v)| v.as_message()?.get_field_by_name("value")?.as_u32())
        .map(u64::from)
        .sum();
    (sum == 0).then(|| {
        (
            ".clusters".into(),
            "the weights add up to 0: at least one must be more than 0".into(),
        )
    })
}

fn pseudo_or_host(name: &str) -> bool {
    name.starts_with(':') || name.eq_ignore_ascii_case("host")
}

/// Header mutations of a route configuration, virtual host, route or
/// weighted cluster: no `:`-prefixed header, no `host`.
pub(crate) fn header_mutations(m: &DynamicMessage) -> Option<(String, String)> {
    let added = ["request_headers_to_add", "response_headers_to_add"]
        .into_iter()
        .flat_map(|f| values(m, &format!("{f}.header.key")));
    let removed = ["request_headers_to_remove", "response_headers_to_remove"]
        .into_iter()
        .flat_map(|f| values(m, f));
    added
        .map(|x| (x, "added or changed"))
        .chain(removed.map(|x| (x, "removed")))
        .find_map(|((at, v), what)| {
            let name = text(&v)?;
            pseudo_or_host(name).then(|| {
                (
                    at,
                    format!(
                        "{}: :-prefixed headers and host may not be {what} here",
                        quote(name)
                    ),
                )
            })
        })
}

/// Header values are substitution formats.
pub(crate) fn header_value_formats(m: &DynamicMessage) -> Option<(String, String)> {
    ["request_headers_to_add", "response_headers_to_add"]
        .into_iter()
        .flat_map(|f| values(m, &format!("{f}.header.value")))
        .find_map(|(at, v)| {
            let value = text(&v)?;
            super::formatter::problem(value).map(|p| (at, format!("{}: {p}", quote(value))))
        })
}

/// Every string of a JSON format (a `Struct`), with its path.
fn struct_strings(v: &Value, at: String, out: &mut Vec<(String, String)>) {
    let Some(m) = v.as_message() else { return };
    match m.descriptor().full_name() {
        "google.protobuf.Struct" => {
            for (p, field) in values(m, "fields") {
                struct_strings(&field, format!("{at}{p}"), out);
            }
        }
        "google.protobuf.ListValue" => {
            for (p, item) in values(m, "values") {
                struct_strings(&item, format!("{at}{p}"), out);
            }
        }
        "google.protobuf.Value" => {
            if let Some((p, inner)) = values(m, "kind").into_iter().next() {
                match &inner {
                    Value::String(s) => out.push((at, s.clone())),
                    _ => struct_strings(&inner, format!("{at}{p}"), out),
                }
            }
        }
        _ => {}
    }
}

/// A `SubstitutionFormatString` (access-log formats, local replies).
pub(crate) fn substitution_format(m: &DynamicMessage) -> Option<(String, String)> {
    let mut formats: Vec<(String, String)> = ["text_format", "text_format_source.inline_string"]
        .into_iter()
        .flat_map(|f| values(m, f))
        .filter_map(|(at, v)| Some((at, text(&v)?.to_owned())))
        .collect();
    for (at, v) in values(m, "json_format") {
        struct_strings(&v, at, &mut formats);
    }
    formats.into_iter().find_map(|(at, f)| {
        super::formatter::problem(&f).map(|p| (at, format!("{}: {p}", quote(&f))))
    })
}

pub(crate) fn uri_template(v: &Value) -> Option<String> {
    let t = text(v)?;
    super::uri_template::problem(t).map(|p| format!("{}: {p}", quote(t)))
}

/// Upgrade types are unique, ignoring case.
pub(crate) fn unique_upgrades(hcm: &DynamicMessage) -> Option<(String, String)> {
    let mut seen = BTreeSet::new();
    values(hcm, "upgrade_configs.upgrade_type")
        .into_iter()
        .find_map(|(at, v)| {
            let t = text(&v)?;
            (!seen.insert(t.to_ascii_lowercase())).then(|| {
                (
                    at,
                    format!(
                        "{} is configured twice (upgrade types are compared ignoring case)",
                        quote(t)
                    ),
                )
            })
        })
}

/// An HTTP/3 connection manager needs a QUIC listener.
pub(crate) fn http3_needs_quic(listener: &DynamicMessage) -> Option<(String, String)> {
    if is_set(listener, "udp_listener_config.quic_options") {
        return None;
    }
    ["filter_chains.filters.typed_config", "default_filter_chain.filters.typed_config"]
        .into_iter()
        .flat_map(|p| values(listener, p))
        .find_map(|(at, any)| {
            let payload = crate::any::unpack(any.as_message()?).ok()?;
            (payload.descriptor().full_name() == HCM
                && enum_name(&payload, "codec_type").as_deref() == Some("HTTP3"))
            .then(|| {
                (
                    format!("{at}.codec_type"),
                    "codec_type HTTP3 needs a QUIC listener (UDP with udp_listener_config.quic_options)".into(),
                )
            })
        })
}

/// A health check payload's `text` is hex.
pub(crate) fn hex_payload(v: &Value) -> Option<String> {
    let t = text(v)?;
    let hex = t.len() % 2 == 0 && t.chars().all(|c| c.is_ascii_hexdigit());
    (!hex).then(|| format!("{} is not a hex string (two hex digits a byte)", quote(t)))
}

/// A gRPC health check needs a cluster that speaks HTTP/2.
pub(crate) fn grpc_health_check_needs_http2(cluster: &DynamicMessage) -> Option<(String, String)> {
    let (at, _) = values(cluster, "health_checks")
        .into_iter()
        .find(|(_, hc)| {
            hc.as_message()
                .is_some_and(|m| is_set(m, "grpc_health_check"))
        })?;
    // HTTP/2 (or a choice Bootes leaves to Envoy) is configured: the
    // deprecated field, the upstream HTTP options, or the downstream's
    // protocol.
    let http_options = values(cluster, "typed_extension_protocol_options")
        .into_iter()
        .any(|(key, _)| key.contains("envoy.extensions.upstreams.http.v3.HttpProtocolOptions"));
    let downstream =
        enum_name(cluster, "protocol_selection").as_deref() == Some("USE_DOWNSTREAM_PROTOCOL");
    if is_set(cluster, "http2_protocol_options") || http_options || downstream {
        return None;
    }
    Some((
        format!("{at}.grpc_health_check"),
        "a gRPC health check needs a cluster that speaks HTTP/2 (typed_extension_protocol_options envoy.extensions.upstreams.http.v3.HttpProtocolOptions with explicit_http_config.http2_protocol_options)".into(),
    ))
}

pub(crate) fn cipher_suites(ctx: &DynamicMessage) -> Option<(String, String)> {
    let suites = values(ctx, "tls_params.cipher_suites");
    let names: Vec<&str> = suites.iter().filter_map(|(_, v)| v.as_str()).collect();
    let (i, problem) = super::tls_names::cipher_list_problem(&names)?;
    Some((suites.get(i)?.0.clone(), problem))
}

pub(crate) fn ecdh_curve(v: &Value) -> Option<String> {
    super::tls_names::curve_problem(text(v)?)
}

pub(crate) fn signature_algorithm(v: &Value) -> Option<String> {
    super::tls_names::signature_algorithm_problem(text(v)?)
}

/// A session ticket key given in place is 80 bytes.
pub(crate) fn ticket_key_length(v: &Value) -> Option<String> {
    let ds = v.as_message()?;
    let len = if ds.has_field_by_name("inline_bytes") {
        ds.get_field_by_name("inline_bytes")?.as_bytes()?.len()
    } else if ds.has_field_by_name("inline_string") {
        ds.get_field_by_name("inline_string")?.as_str()?.len()
    } else {
        return None;
    };
    (len != 80).then(|| format!("the key is {len} bytes, not 80"))
}

/// A certificate without an OCSP staple, under a MUST_STAPLE policy.
pub(crate) fn has_ocsp_staple(v: &Value) -> Option<String> {
    let cert = v.as_message()?;
    (!is_set(cert, "ocsp_staple")).then(|| "this certificate has no ocsp_staple".to_string())
}

/// Whether `der` is one well-formed DER element (tag, length, contents),
/// its constructed contents made of well-formed elements too.
pub(crate) fn well_formed_der(der: &[u8]) -> bool {
    fn element(bytes: &[u8], depth: usize) -> Option<usize> {
        if depth > 64 {
            return None;
        }
        let tag = *bytes.first()?;
        let mut i = 1;
        if tag & 0x1f == 0x1f {
            while bytes.get(i)? & 0x80 != 0 {
                i += 1;
            }
            i += 1;
        }
        let first = *bytes.get(i)?;
        i += 1;
        let len = if first & 0x80 == 0 {
            usize::from(first)
        } else {
            let n = usize::from(first & 0x7f);
            if n == 0 || n > 4 {
                return None;
            }
            let mut len = 0usize;
            for _ in 0..n {
                len = (len << 8) | usize::from(*bytes.get(i)?);
                i += 1;
            }
            len
        };
        let end = i.checked_add(len)?;
        let contents = bytes.get(i..end)?;
        if tag & 0x20 != 0 {
            let mut at = 0;
            while at < contents.len() {
                at += element(&contents[at..], depth + 1)?;
            }
        }
        Some(end)
    }
    element(der, 0) == Some(der.len())
}
