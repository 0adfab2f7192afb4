//! Seeded random mutations of a proto3 JSON config: pure, deterministic for a
//! seed, so a failing mutant can be reproduced from its number.

use serde_json::{json, Map, Value};

/// A small deterministic generator (SplitMix64): the test needs
/// reproducibility, not statistical quality.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// The mutation operators of issue 13.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Op {
    /// Remove a field of an object.
    Delete,
    /// A number, duration or bool set to its zero value.
    Zero,
    /// A number or duration made negative.
    Negative,
    /// A number, duration or string made very large.
    Huge,
    /// A string, object or list made empty.
    Empty,
    /// Any value replaced by a value of the wrong shape or content.
    Garbage,
    /// An object given a field its message does not have.
    UnknownField,
    /// A list emptied.
    EmptyList,
    // Semantic classes (issue 24): valid fields, a config Envoy's C++
    // checks may refuse.
    /// A filter list reversed (a terminal filter not last).
    SwapOrder,
    /// An item of a list repeated (filter chains, virtual hosts, domains,
    /// upgrade configs, HTTP filters).
    Duplicate,
    /// A regex RE2 refuses, or over its program size.
    BadRegex,
    /// A substitution format with a broken `%COMMAND%`.
    BadFormat,
    /// A pseudo-header or `host` as a header to add.
    PseudoHeader,
    /// A partial wildcard in `server_names`.
    PartialWildcard,
    // Cluster classes.
    /// The cluster's discovery type changed (ORIGINAL_DST with endpoints,
    /// STATIC with host names, LOGICAL_DNS with several endpoints, …).
    ClusterType,
    /// An upstream bind address, an IP or not.
    BindAddress,
    /// A health check: TCP payloads (hex or not), gRPC (HTTP/2 or not), an
    /// HTTP body with GET or POST.
    HealthCheck,
    /// Ring hash sizes the wrong way round, under RING_HASH or another policy.
    RingHash,
    // TLS classes.
    /// A cipher suite, curve or signature algorithm name, known or not.
    TlsNames,
    /// An inline PEM certificate or key broken (framing, base64, DER, or
    /// only its contents).
    BadPem,
    /// An inline session ticket key of another length.
    TicketKey,
    /// An OCSP staple policy.
    StaplePolicy,
    // Cross-resource classes: over what one node receives.
    /// A second listener, on the same address or a near one.
    SameAddress,
    /// An ADS config source replaced by an API config source naming a
    /// static cluster of the bootstrap, or one it does not have.
    ConfigSourceCluster,
}

pub const OPS: [Op; 8] = [
    Op::Delete,
    Op::Zero,
    Op::Negative,
    Op::Huge,
    Op::Empty,
    Op::Garbage,
    Op::UnknownField,
    Op::EmptyList,
];

/// The semantic mutation operators of issue 24.
pub const SEMANTIC_OPS: [Op; 16] = [
    Op::SwapOrder,
    Op::Duplicate,
    Op::BadRegex,
    Op::BadFormat,
    Op::PseudoHeader,
    Op::PartialWildcard,
    Op::ClusterType,
    Op::BindAddress,
    Op::HealthCheck,
    Op::RingHash,
    Op::TlsNames,
    Op::BadPem,
    Op::TicketKey,
    Op::StaplePolicy,
    Op::SameAddress,
    Op::ConfigSourceCluster,
];

impl Op {
    pub fn name(self) -> &'static str {
        match self {
            Op::Delete => "delete",
            Op::Zero => "zero",
            Op::Negative => "negative",
            Op::Huge => "huge",
            Op::Empty => "empty",
            Op::Garbage => "garbage",
            Op::UnknownField => "unknown-field",
            Op::EmptyList => "empty-list",
            Op::SwapOrder => "swap-order",
            Op::Duplicate => "duplicate",
            Op::BadRegex => "bad-regex",
            Op::BadFormat => "bad-format",
            Op::PseudoHeader => "pseudo-header",
            Op::PartialWildcard => "partial-wildcard",
            Op::ClusterType => "cluster-type",
            Op::BindAddress => "bind-address",
            Op::HealthCheck => "health-check",
            Op::RingHash => "ring-hash",
            Op::TlsNames => "tls-names",
            Op::BadPem => "bad-pem",
            Op::TicketKey => "ticket-key",
            Op::StaplePolicy => "staple-policy",
            Op::SameAddress => "same-address",
            Op::ConfigSourceCluster => "config-source-cluster",
        }
    }
}

/// One step of a path into a JSON value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    Key(String),
    Index(usize),
}

/// A mutant: the mutated config and what was done, for reports.
#[derive(Clone, Debug)]
pub struct Mutant {
    pub config: Value,
    pub op: Op,
    /// `spec.config.a.b[0].c`
    pub path: String,
    /// The new value (`None` for a deletion).
    pub value: Option<Value>,
    /// A second resource of the same kind that the node receives with it
    /// ([`Op::SameAddress`]).
    pub twin: Option<Value>,
}

/// Fields never mutated: at the top level, the resource's own name (the xDS
/// identity: Bootes requires it by design, while a static Envoy bootstrap
/// invents names for unnamed listeners).
const KEEP_TOP_LEVEL: [&str; 2] = ["name", "cluster_name"];

/// Applies one operator, chosen by `rng`, at one place of `config` where it
/// applies. `None` when the config offers no place for the chosen operator.
pub fn mutate(original: &Value, rng: &mut Rng) -> Option<Mutant> {
    mutate_with(&OPS, original, rng)
}

/// [`mutate`] with one of the semantic operators ([`SEMANTIC_OPS`]).
pub fn mutate_semantic(original: &Value, rng: &mut Rng) -> Option<Mutant> {
    mutate_with(&SEMANTIC_OPS, original, rng)
}

fn mutate_with(ops: &[Op], original: &Value, rng: &mut Rng) -> Option<Mutant> {
    let config = original;
    let op = *rng.pick(ops);
    let mut places = Vec::new();
    if SEMANTIC_OPS.contains(&op) {
        // Semantic classes may change the resource as a whole.
        places.push((Vec::new(), config.clone()));
    }
    collect(config, &mut Vec::new(), &mut places);
    let candidates: Vec<&(Vec<Step>, Value)> = places
        .iter()
        .filter(|(path, value)| applies(op, path, value))
        .collect();
    if candidates.is_empty() {
        return None;
    }
    let (path, old) = rng.pick(&candidates);
    if op == Op::SameAddress {
        let twin = twin_listener(old, rng)?;
        return Some(Mutant {
            config: config.clone(),
            op,
            path: "spec.config.address".into(),
            value: twin.get("address").cloned(),
            twin: Some(twin),
        });
    }
    let new = replacement(op, old, rng);
    let mut config = config.clone();
    match (&new, op) {
        (_, Op::Delete) => {
            let (last, parent) = path.split_last().expect("not the root");
            let Step::Key(key) = last else {
                unreachable!("deletions are of object fields")
            };
            if let Some(Value::Object(m)) = get_mut(&mut config, parent) {
                m.remove(key);
            }
        }
        (Some(v), Op::UnknownField) => {
            if let Some(Value::Object(m)) = get_mut(&mut config, path) {
                m.insert("bootes_differential_unknown".into(), v.clone());
            }
        }
        (Some(v), _) => {
            if let Some(slot) = get_mut(&mut config, path) {
                *slot = v.clone();
            }
        }
        (None, _) => return None,
    }
    if config == *original {
        return None;
    }
    Some(Mutant {
        config,
        op,
        path: display(path),
        value: new,
        twin: None,
    })
}

/// Every place below the root, with its value.
fn collect(value: &Value, path: &mut Vec<Step>, out: &mut Vec<(Vec<Step>, Value)>) {
    if !path.is_empty() {
        out.push((path.clone(), value.clone()));
    }
    match value {
        Value::Object(m) => {
            for (k, v) in m {
                if path.is_empty() && KEEP_TOP_LEVEL.contains(&k.as_str()) {
                    continue;
                }
                path.push(Step::Key(k.clone()));
                collect(v, path, out);
                path.pop();
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                path.push(Step::Index(i));
                collect(v, path, out);
                path.pop();
            }
        }
        _ => {}
    }
}

fn is_duration(s: &str) -> bool {
    s.strip_suffix('s')
        .is_some_and(|n| !n.is_empty() && n.parse::<f64>().is_ok())
}

/// The key a value is under: its own, or its list's for a list item.
fn key_of(path: &[Step]) -> Option<&str> {
    path.iter().rev().find_map(|s| match s {
        Step::Key(k) => Some(k.as_str()),
        Step::Index(_) => None,
    })
}

fn under(path: &[Step], key: &str) -> bool {
    path.iter().any(|s| matches!(s, Step::Key(k) if k == key))
}

fn applies(op: Op, path: &[Step], value: &Value) -> bool {
    let duration = value.as_str().is_some_and(is_duration);
    let key = key_of(path).unwrap_or_default();
    let headers_to_add =
        under(path, "request_headers_to_add") || under(path, "response_headers_to_add");
    match op {
        Op::SwapOrder => {
            value.as_array().is_some_and(|a| a.len() >= 2)
                && matches!(path.last(), Some(Step::Key(k)) if k == "filters" || k == "http_filters")
        }
        Op::Duplicate => {
            value.as_array().is_some_and(|a| !a.is_empty())
                && matches!(path.last(), Some(Step::Key(k)) if ["filter_chains", "virtual_hosts", "domains", "upgrade_configs", "http_filters"].contains(&k.as_str()))
        }
        Op::BadRegex => value.is_string() && key == "regex",
        Op::BadFormat => {
            value.is_string()
                && ((headers_to_add && key == "value")
                    || key == "text_format"
                    || (key == "inline_string" && under(path, "log_format")))
        }
        Op::PseudoHeader => value.is_string() && headers_to_add && key == "key",
        Op::PartialWildcard => value.is_string() && key == "server_names",
        Op::ClusterType | Op::BindAddress | Op::HealthCheck | Op::RingHash => {
            path.is_empty() && is_cluster(value)
        }
        Op::TlsNames => {
            value.is_object()
                && matches!(path.last(), Some(Step::Key(k)) if k == "common_tls_context")
        }
        Op::BadPem => {
            value.as_str().is_some_and(|s| s.contains("-----BEGIN"))
                && key == "inline_string"
                && ["certificate_chain", "private_key", "trusted_ca"]
                    .iter()
                    .any(|k| under(path, k))
        }
        Op::TicketKey => {
            value.is_string() && key == "inline_bytes" && under(path, "session_ticket_keys")
        }
        Op::StaplePolicy => value
            .get("@type")
            .and_then(Value::as_str)
            .is_some_and(|t| t.ends_with(".DownstreamTlsContext")),
        Op::SameAddress => {
            path.is_empty()
                && value
                    .pointer("/address/socket_address/port_value")
                    .is_some()
                && (value.get("filter_chains").is_some()
                    || value.get("default_filter_chain").is_some())
        }
        Op::ConfigSourceCluster => value.get("ads").is_some(),
        Op::Delete => matches!(path.last(), Some(Step::Key(_))),
        Op::Zero => value.is_number() || value.is_boolean() || duration,
        Op::Negative => value.is_number() || duration,
        Op::Huge => value.is_number() || value.is_string(),
        Op::Empty => value.is_string() || value.is_object() || value.is_array(),
        Op::Garbage => true,
        Op::UnknownField => value.is_object(),
        Op::EmptyList => value.as_array().is_some_and(|a| !a.is_empty()),
    }
}

fn replacement(op: Op, old: &Value, rng: &mut Rng) -> Option<Value> {
    let duration = old.as_str().is_some_and(is_duration);
    Some(match op {
        Op::Delete => return None,
        Op::Zero if duration => json!("0s"),
        Op::Zero if old.is_boolean() => json!(false),
        Op::Zero => json!(0),
        Op::Negative if duration => json!(rng.pick(&["-1s", "-0.001s"])),
        Op::Negative => {
            let n = old.as_f64().unwrap_or(1.0).abs().max(1.0);
            json!(-n)
        }
        Op::Huge if duration => json!(rng.pick(&["315576000000s", "4294967296s"])),
        Op::Huge if old.is_string() => Value::String("x".repeat(*rng.pick(&[300, 4_096, 70_000]))),
        Op::Huge => json!(rng.pick(&[
            json!(4_294_967_296_u64),
            json!(2_147_483_648_u64),
            json!(u64::MAX),
            json!(1e300),
        ])),
        Op::Empty if old.is_string() => json!(""),
        Op::Empty if old.is_array() => json!([]),
        Op::Empty => json!({}),
        Op::Garbage => rng
            .pick(&[
                json!("garbage"),
                json!("%%not*a-valid value\u{7}"),
                json!("-"),
                json!("999999"),
                json!(true),
                json!(12345),
                json!(["garbage"]),
                json!({"garbage": 1}),
            ])
            .clone(),
        Op::UnknownField => json!("unknown"),
        Op::EmptyList => json!([]),
        Op::SwapOrder => {
            let mut items = old.as_array()?.clone();
            items.reverse();
            json!(items)
        }
        Op::Duplicate => {
            let mut items = old.as_array()?.clone();
            items.push(items[rng.below(items.len())].clone());
            json!(items)
        }
        Op::BadRegex => {
            json!(rng.pick(&["((", "x{2,1}", "(?<=a)b", "(a)\\1", "a{1001}", "[a-z]{200}"]))
        }
        Op::BadFormat => {
            let s = old.as_str()?;
            json!(rng.pick(&[
                format!("{s}%"),
                format!("%REQ({s}"),
                format!("{s} %START_TIME")
            ]))
        }
        Op::PseudoHeader => json!(rng.pick(&[":path", "host", ":method", ":authority"])),
        Op::PartialWildcard => json!(format!("*{}", old.as_str()?.trim_start_matches("*."))),
        Op::ClusterType => {
            let mut c = old.clone();
            let ty = *rng.pick(&["STATIC", "STRICT_DNS", "LOGICAL_DNS", "EDS", "ORIGINAL_DST"]);
            c["type"] = json!(ty);
            if ty == "ORIGINAL_DST" && rng.below(2) == 0 {
                c["lb_policy"] = json!("CLUSTER_PROVIDED");
            }
            c
        }
        Op::BindAddress => {
            let mut c = old.clone();
            let address = *rng.pick(&["localhost", "not-an-ip", "10.0.0.1", "::1", "0.0.0.0"]);
            c["upstream_bind_config"] =
                json!({"source_address": {"address": address, "port_value": 0}});
            c
        }
        Op::HealthCheck => {
            let mut c = old.clone();
            let kind = match rng.below(3) {
                0 => {
                    json!({"tcp_health_check": {"send": {"text": rng.pick(&["zz", "0A0B0C", "abc", "48454C4C4F", "0x12"])}}})
                }
                1 => json!({"grpc_health_check": {}}),
                _ => {
                    json!({"http_health_check": {"path": "/healthz", "method": rng.pick(&["GET", "POST", "PUT", "HEAD"]), "send": {"text": "0A"}}})
                }
            };
            let mut check = json!({"timeout": "1s", "interval": "5s", "unhealthy_threshold": 2, "healthy_threshold": 2});
            check.as_object_mut()?.extend(kind.as_object()?.clone());
            c["health_checks"] = json!([check]);
            c
        }
        Op::RingHash => {
            let mut c = old.clone();
            c["lb_policy"] = json!(rng.pick(&["RING_HASH", "ROUND_ROBIN", "MAGLEV"]));
            c["ring_hash_lb_config"] = json!({"minimum_ring_size": rng.pick(&[2048, 512, 1024]), "maximum_ring_size": 1024});
            c
        }
        Op::TlsNames => {
            let mut c = old.clone();
            let (field, names): (&str, &[&str]) = match rng.below(3) {
                0 => (
                    "cipher_suites",
                    &[
                        "ECDHE-RSA-AES128-GCM-SHA256",
                        "NOT-A-CIPHER",
                        "TLS_AES_128_GCM_SHA256",
                        "[ECDHE-ECDSA-AES128-GCM-SHA256|ECDHE-ECDSA-CHACHA20-POLY1305]",
                        "ECDHE-RSA-AES256-GCM-SHA384",
                        "AES128-SHA",
                        "RC4-MD5",
                    ],
                ),
                1 => (
                    "ecdh_curves",
                    &[
                        "X25519",
                        "P-256",
                        "P-384",
                        "P-999",
                        "X25519MLKEM768",
                        "secp256r1",
                        "brainpoolP256r1",
                    ],
                ),
                _ => (
                    "signature_algorithms",
                    &[
                        "rsa_pss_rsae_sha256",
                        "ecdsa_secp256r1_sha256",
                        "rsa_pkcs1_sha999",
                        "ed25519",
                        "rsa_pkcs1_md5_sha1",
                    ],
                ),
            };
            let params = c.as_object_mut()?.entry("tls_params").or_insert(json!({}));
            params[field] = json!([rng.pick(names)]);
            c
        }
        Op::BadPem => json!(broken_pem(old.as_str()?, rng)),
        Op::TicketKey => {
            // n bytes of 7, in base64: "BwcH" per 3 bytes.
            let n = *rng.pick(&[80usize, 79, 48, 96, 81]);
            let tail = ["", "Bw==", "Bwc="][n % 3];
            json!(format!("{}{tail}", "BwcH".repeat(n / 3)))
        }
        Op::StaplePolicy => {
            let mut c = old.clone();
            c["ocsp_staple_policy"] =
                json!(rng.pick(&["MUST_STAPLE", "STRICT_STAPLING", "LENIENT_STAPLING"]));
            c
        }
        Op::SameAddress => return None,
        Op::ConfigSourceCluster => {
            let cluster = *rng.pick(&[super::embed::XDS_CLUSTER, "bootes-differential-nowhere"]);
            let api = match rng.below(3) {
                0 => json!({"api_type": "GRPC", "transport_api_version": "V3",
                    "grpc_services": [{"envoy_grpc": {"cluster_name": cluster}}]}),
                1 => json!({"api_type": "REST", "transport_api_version": "V3",
                    "cluster_names": [cluster], "refresh_delay": "1s"}),
                _ => json!({"api_type": "DELTA_GRPC", "transport_api_version": "V3",
                    "grpc_services": [{"envoy_grpc": {"cluster_name": cluster}}]}),
            };
            json!({"api_config_source": api, "resource_api_version": "V3"})
        }
    })
}

/// Whether a resource is a Cluster (by the fields only a cluster has).
fn is_cluster(value: &Value) -> bool {
    [
        "connect_timeout",
        "lb_policy",
        "load_assignment",
        "eds_cluster_config",
    ]
    .iter()
    .any(|k| value.get(k).is_some())
        && value.get("filter_chains").is_none()
}

/// A PEM text broken one way: its END line gone, its base64 cut short
/// (a DER length that runs past the end), a character base64 lacks, or two
/// base64 characters of the body swapped (only the contents change).
fn broken_pem(pem: &str, rng: &mut Rng) -> String {
    let lines: Vec<&str> = pem.lines().collect();
    let body: Vec<usize> = (0..lines.len())
        .filter(|i| !lines[*i].starts_with("-----") && !lines[*i].trim().is_empty())
        .collect();
    let mut out: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    match rng.below(4) {
        0 => out.retain(|l| !l.starts_with("-----END")),
        1 if body.len() > 2 => {
            let cut: Vec<usize> = body[body.len() / 2..body.len() - 1].to_vec();
            out = out
                .into_iter()
                .enumerate()
                .filter(|(i, _)| !cut.contains(i))
                .map(|(_, l)| l)
                .collect();
        }
        2 if !body.is_empty() => out[body[body.len() / 2]].insert_str(4, "!!"),
        _ if !body.is_empty() => {
            let line = &mut out[body[body.len() / 2]];
            let mut chars: Vec<char> = line.chars().collect();
            let at = chars.len() / 2;
            if at >= 1 {
                chars.swap(at - 1, at);
                if chars[at - 1] == chars[at] {
                    chars[at] = if chars[at] == 'A' { 'B' } else { 'A' };
                }
            }
            *line = chars.into_iter().collect();
        }
        _ => out.retain(|l| !l.starts_with("-----END")),
    }
    let mut text = out.join("\n");
    text.push('\n');
    text
}

/// A second listener (named `<name>-twin`) on the address of `listener`,
/// or a near one: the same address, its port + 1, another IP, the same
/// address as an additional address, the same address without binding.
fn twin_listener(listener: &Value, rng: &mut Rng) -> Option<Value> {
    let mut twin = listener.clone();
    twin["name"] = json!(format!("{}-twin", listener.get("name")?.as_str()?));
    let port = listener
        .pointer("/address/socket_address/port_value")?
        .as_u64()?;
    let address = &mut twin["address"]["socket_address"];
    match rng.below(5) {
        0 => {}
        1 => address["port_value"] = json!(port + 1),
        2 => address["address"] = json!(rng.pick(&["127.0.0.3", "0.0.0.0", "::"])),
        3 => {
            let same = twin["address"].clone();
            twin["address"]["socket_address"]["port_value"] = json!(port + 1);
            twin["additional_addresses"] = json!([{"address": same}]);
        }
        _ => twin["bind_to_port"] = json!(false),
    }
    Some(twin)
}

fn get_mut<'a>(value: &'a mut Value, path: &[Step]) -> Option<&'a mut Value> {
    let mut v = value;
    for step in path {
        v = match (step, v) {
            (Step::Key(k), Value::Object(m)) => m.get_mut(k)?,
            (Step::Index(i), Value::Array(a)) => a.get_mut(*i)?,
            _ => return None,
        };
    }
    Some(v)
}

/// `spec.config.a.b[0]`
pub fn display(path: &[Step]) -> String {
    let mut s = String::from("spec.config");
    for step in path {
        match step {
            Step::Key(k) => {
                s.push('.');
                s.push_str(k);
            }
            Step::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

/// Every string value under a key named `key`, at any depth (used to find the
/// cluster names a corpus config refers to).
pub fn strings_under(value: &Value, key: &str, out: &mut Vec<String>) {
    match value {
        Value::Object(m) => {
            for (k, v) in m {
                if k == key {
                    if let Some(s) = v.as_str() {
                        out.push(s.to_string());
                    }
                }
                strings_under(v, key, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| strings_under(v, key, out)),
        _ => {}
    }
}

/// An object with these entries (for building bootstraps).
pub fn object(entries: impl IntoIterator<Item = (&'static str, Value)>) -> Value {
    Value::Object(
        entries
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect::<Map<_, _>>(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_gives_the_same_mutant_and_every_operator_applies_somewhere() {
        let config = json!({
            "name": "c",
            "connect_timeout": "1s",
            "per_connection_buffer_limit_bytes": 10,
            "type": "STATIC",
            "respect_dns_ttl": true,
            "load_assignment": {"cluster_name": "c", "endpoints": [{"lb_endpoints": []}]}
        });
        let mut seen = std::collections::BTreeSet::new();
        for seed in 0..200 {
            let a = mutate(&config, &mut Rng::new(seed));
            let b = mutate(&config, &mut Rng::new(seed));
            assert_eq!(a.as_ref().map(|m| &m.config), b.as_ref().map(|m| &m.config));
            if let Some(m) = a {
                assert_ne!(m.config, config, "{m:?} changes the config");
                assert_eq!(m.config["name"], "c", "the name is kept");
                seen.insert(m.op);
            }
        }
        assert_eq!(seen.len(), OPS.len(), "{seen:?}");
    }
}
