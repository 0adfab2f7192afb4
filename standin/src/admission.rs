//! ValidatingWebhookConfigurations, honoured as the API server honours them
//! (admissionregistration.k8s.io/v1): a CREATE or UPDATE that a webhook's
//! rules and `namespaceSelector` match is sent to it as an
//! `admission.k8s.io/v1` AdmissionReview, over TLS checked against the
//! webhook's `caBundle`, within its `timeoutSeconds` (default 10). A denial
//! becomes the request's error, a Status whose message reads
//! `admission webhook "NAME" denied the request: MESSAGE` (what kubectl
//! prints); warnings become `Warning` headers. A webhook that cannot be
//! called fails the request under `failurePolicy: Fail` (the default) with
//! `failed calling webhook "NAME": ...`, and is skipped under `Ignore`.
//!
//! Supported: `clientConfig.url` (a `service` reference cannot be reached
//! from the stand-in, so calling it fails), `rules` (groups, versions,
//! resources with `*` and `resource/subresource`, operations, scope),
//! `namespaceSelector` (`matchLabels`, `matchExpressions`), `failurePolicy`,
//! `timeoutSeconds`. Not supported: `objectSelector`, `matchConditions`,
//! `matchPolicy: Equivalent` (the rules are matched exactly), DELETE and
//! CONNECT operations, mutating webhooks.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::{json, Value};

/// The group and version of ValidatingWebhookConfigurations.
pub const GROUP: &str = "admissionregistration.k8s.io";
pub const VERSION: &str = "v1";
pub const PLURAL: &str = "validatingwebhookconfigurations";

/// What a write is, as the rules and the AdmissionReview name it.
#[derive(Clone, Debug)]
pub struct Attributes {
    pub group: String,
    pub version: String,
    /// The resource's kind (e.g. `Cluster`).
    pub kind: String,
    /// Plural (e.g. `clusters`).
    pub resource: String,
    pub sub_resource: Option<String>,
    pub namespace: Option<String>,
    pub name: String,
    pub operation: Operation,
    /// The request's HTTP verb, for the review's `options` kind.
    pub verb: Verb,
    pub dry_run: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    Create,
    Update,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Create => "CREATE",
            Operation::Update => "UPDATE",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verb {
    Post,
    Put,
    Patch,
}

/// One webhook of a configuration, as it applies.
#[derive(Clone, Debug)]
pub struct Webhook {
    pub name: String,
    spec: Value,
}

/// A request the webhooks refused: the Status and its HTTP code.
#[derive(Clone, Debug, PartialEq)]
pub struct Refusal {
    pub code: u16,
    pub status: Value,
}

/// The webhooks of `configurations` that apply to a write described by
/// `attrs`, in the namespace whose labels are `namespace_labels`.
pub fn matching(
    configurations: &[Value],
    attrs: &Attributes,
    namespace_labels: &Value,
) -> Vec<Webhook> {
    let mut out = Vec::new();
    for config in configurations {
        for hook in config["webhooks"].as_array().into_iter().flatten() {
            let rules = hook["rules"].as_array().map(Vec::as_slice).unwrap_or(&[]);
            if !rules.iter().any(|r| rule_matches(r, attrs)) {
                continue;
            }
            // Cluster-scoped objects are not subject to a namespaceSelector.
            if attrs.namespace.is_some()
                && !selector_matches(&hook["namespaceSelector"], namespace_labels)
            {
                continue;
            }
            out.push(Webhook {
                name: hook["name"].as_str().unwrap_or_default().to_string(),
                spec: hook.clone(),
            });
        }
    }
    out
}

fn listed(list: &Value, value: &str) -> bool {
    list.as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .any(|v| v == "*" || v == value)
}

fn rule_matches(rule: &Value, attrs: &Attributes) -> bool {
    let resource_matches = rule["resources"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .any(|r| {
            let (res, sub) = r.split_once('/').map_or((r, None), |(a, b)| (a, Some(b)));
            let res_ok = res == "*" || res == attrs.resource;
            let sub_ok = match (sub, attrs.sub_resource.as_deref()) {
                (None, None) => true,
                (Some(want), Some(got)) => want == "*" || want == got,
                _ => false,
            };
            res_ok && sub_ok
        });
    let scope_ok = match rule["scope"].as_str().unwrap_or("*") {
        "Namespaced" => attrs.namespace.is_some(),
        "Cluster" => attrs.namespace.is_none(),
        _ => true,
    };
    listed(&rule["apiGroups"], &attrs.group)
        && listed(&rule["apiVersions"], &attrs.version)
        && listed(&rule["operations"], attrs.operation.as_str())
        && resource_matches
        && scope_ok
}

/// A LabelSelector (`matchLabels`, `matchExpressions`) against labels; an
/// absent selector matches everything.
pub fn selector_matches(selector: &Value, labels: &Value) -> bool {
    let label = |k: &str| labels.get(k).and_then(Value::as_str);
    let by_labels = selector["matchLabels"]
        .as_object()
        .into_iter()
        .flatten()
        .all(|(k, v)| label(k) == v.as_str());
    let by_expressions = selector["matchExpressions"]
        .as_array()
        .into_iter()
        .flatten()
        .all(|e| {
            let key = e["key"].as_str().unwrap_or_default();
            let values: Vec<&str> = e["values"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            match e["operator"].as_str().unwrap_or_default() {
                "In" => label(key).is_some_and(|v| values.contains(&v)),
                "NotIn" => label(key).is_none_or(|v| !values.contains(&v)),
                "Exists" => label(key).is_some(),
                "DoesNotExist" => label(key).is_none(),
                _ => false,
            }
        });
    by_labels && by_expressions
}

/// The AdmissionReview the API server sends for a write: `object` is the
/// object as it would be stored, `old` the stored one (UPDATE).
pub fn review_request(uid: &str, attrs: &Attributes, object: &Value, old: Option<&Value>) -> Value {
    let kind = json!({"group": attrs.group, "version": attrs.version, "kind": attrs.kind});
    let resource =
        json!({"group": attrs.group, "version": attrs.version, "resource": attrs.resource});
    let options_kind = match attrs.verb {
        Verb::Post => "CreateOptions",
        Verb::Put => "UpdateOptions",
        Verb::Patch => "PatchOptions",
    };
    let mut request = json!({
        "uid": uid,
        "kind": kind,
        "resource": resource,
        "requestKind": kind,
        "requestResource": resource,
        "name": attrs.name,
        "operation": attrs.operation.as_str(),
        "userInfo": {
            "username": "kubernetes-admin",
            "groups": ["system:masters", "system:authenticated"],
        },
        "object": object,
        "oldObject": old.cloned().unwrap_or(Value::Null),
        "dryRun": attrs.dry_run,
        "options": {
            "apiVersion": "meta.k8s.io/v1",
            "kind": options_kind,
            "fieldManager": "kubectl-client-side-apply",
            "fieldValidation": "Strict",
        },
    });
    if let Some(ns) = &attrs.namespace {
        request["namespace"] = json!(ns);
    }
    if let Some(sub) = &attrs.sub_resource {
        request["subResource"] = json!(sub);
        request["requestSubResource"] = json!(sub);
    }
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": request,
    })
}

/// Calls every webhook in turn. `Ok` holds the warnings to return; `Err`
/// the refusal (a denial, or a failed call under `failurePolicy: Fail`).
pub async fn admit(
    hooks: &[Webhook],
    attrs: &Attributes,
    object: &Value,
    old: Option<&Value>,
) -> Result<Vec<String>, Refusal> {
    let mut warnings = Vec::new();
    for hook in hooks {
        let uid = format!(
            "{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}",
            fastrand::u32(..),
            fastrand::u16(..),
            fastrand::u16(..0x1000),
            fastrand::u16(..0x1000),
            fastrand::u64(..1 << 48)
        );
        let review = review_request(&uid, attrs, object, old);
        let timeout = Duration::from_secs(hook.spec["timeoutSeconds"].as_u64().unwrap_or(10));
        let answer = match tokio::time::timeout(timeout, call(&hook.spec, &review)).await {
            Ok(result) => result.and_then(|r| response_of(&r, &uid)),
            Err(_) => Err(format!(
                "context deadline exceeded (timeoutSeconds: {})",
                timeout.as_secs()
            )),
        };
        let response = match answer {
            Ok(response) => response,
            Err(why) => {
                if hook.spec["failurePolicy"].as_str() == Some("Ignore") {
                    tracing::warn!(
                        webhook = hook.name,
                        error = why,
                        "failed calling webhook; failurePolicy Ignore"
                    );
                    continue;
                }
                let message = format!(
                    "Internal error occurred: failed calling webhook {:?}: {why}",
                    hook.name
                );
                return Err(Refusal {
                    code: 500,
                    status: status(500, "InternalError", &message),
                });
            }
        };
        warnings.extend(
            response["warnings"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(str::to_string),
        );
        if response["allowed"].as_bool() != Some(true) {
            return Err(denial(&hook.name, &response["status"]));
        }
    }
    Ok(warnings)
}

/// The API server's words for a denial: the webhook's Status, its code
/// raised to at least 400, its message after who denied it.
fn denial(webhook: &str, result: &Value) -> Refusal {
    let denied_by = format!("admission webhook {webhook:?} denied the request");
    let code = result["code"]
        .as_u64()
        .and_then(|c| u16::try_from(c).ok())
        .filter(|c| *c >= 400)
        .unwrap_or(400);
    let message = result["message"].as_str().unwrap_or_default();
    let reason = result["reason"].as_str().unwrap_or_default();
    let message = match (message, reason) {
        ("", "") => format!("{denied_by} without explanation"),
        ("", reason) => format!("{denied_by}: {reason}"),
        (message, _) => format!("{denied_by}: {message}"),
    };
    Refusal {
        code,
        status: status(code, reason, &message),
    }
}

fn status(code: u16, reason: &str, message: &str) -> Value {
    let mut status = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "code": code,
    });
    if !reason.is_empty() {
        status["reason"] = json!(reason);
    }
    status
}

/// The `response` of the webhook's AdmissionReview, checked as the API
/// server checks it.
fn response_of(body: &Value, uid: &str) -> Result<Value, String> {
    if body["apiVersion"] != "admission.k8s.io/v1" || body["kind"] != "AdmissionReview" {
        return Err(format!(
            "expected webhook response of admission.k8s.io/v1, Kind=AdmissionReview, got {}, Kind={}",
            body["apiVersion"], body["kind"]
        ));
    }
    let response = &body["response"];
    if response.is_null() {
        return Err("webhook response was absent".into());
    }
    if response["uid"].as_str() != Some(uid) {
        return Err(format!(
            "expected response.uid={uid:?}, got {}",
            response["uid"]
        ));
    }
    Ok(response.clone())
}

/// POSTs `review` to the webhook's `clientConfig.url` over TLS verified
/// against its `caBundle`; the decoded JSON answer.
async fn call(hook: &Value, review: &Value) -> Result<Value, String> {
    let client = &hook["clientConfig"];
    let Some(url) = client["url"].as_str() else {
        return Err(
            "kube-standin reaches webhooks by clientConfig.url only, not by service".into(),
        );
    };
    let uri: http::Uri = url.parse().map_err(|e| format!("url {url:?}: {e}"))?;
    if uri.scheme_str() != Some("https") {
        return Err(format!("url {url:?}: webhooks are called over https only"));
    }
    let host = uri.host().unwrap_or_default().trim_matches(['[', ']']);
    let port = uri.port_u16().unwrap_or(443);
    let tls = tls_config(client["caBundle"].as_str().unwrap_or_default())?;
    let name = ServerName::try_from(host.to_string()).map_err(|e| format!("{host:?}: {e}"))?;
    let post = |e: &dyn std::fmt::Display| format!("Post {url:?}: {e}");
    let tcp = tokio::net::TcpStream::connect((host, port))
        .await
        .map_err(|e| post(&format!("dial tcp {host}:{port}: {e}")))?;
    let stream = tokio_rustls::TlsConnector::from(tls)
        .connect(name, tcp)
        .await
        .map_err(|e| post(&format!("tls: {e}")))?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| post(&e))?;
    tokio::spawn(connection);
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let request = http::Request::post(path)
        .header(http::header::HOST, format!("{host}:{port}"))
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::ACCEPT, "application/json")
        .body(Full::new(Bytes::from(review.to_string())))
        .map_err(|e| post(&e))?;
    let response = sender.send_request(request).await.map_err(|e| post(&e))?;
    let code = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| post(&e))?
        .to_bytes();
    if !code.is_success() {
        return Err(format!(
            "received invalid webhook response: HTTP {code}: {}",
            String::from_utf8_lossy(&body).trim()
        ));
    }
    serde_json::from_slice(&body).map_err(|e| format!("received invalid webhook response: {e}"))
}

/// The certificates of a `caBundle` (base64 of PEM) as the only roots.
fn tls_config(ca_bundle: &str) -> Result<Arc<rustls::ClientConfig>, String> {
    let pem = base64::engine::general_purpose::STANDARD
        .decode(ca_bundle.trim())
        .map_err(|e| format!("caBundle: not base64: {e}"))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| format!("caBundle: {e}"))?;
        roots.add(cert).map_err(|e| format!("caBundle: {e}"))?;
    }
    if roots.is_empty() {
        // The API server would fall back to the system roots; the
        // stand-in trusts nothing it was not given.
        return Err("caBundle: no certificate (kube-standin has no system roots)".into());
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(rustls::DEFAULT_VERSIONS)
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(op: Operation, sub: Option<&str>, ns: Option<&str>) -> Attributes {
        Attributes {
            group: "bootes.io".into(),
            version: "v1".into(),
            kind: "Cluster".into(),
            resource: "clusters".into(),
            sub_resource: sub.map(str::to_string),
            namespace: ns.map(str::to_string),
            name: "db".into(),
            operation: op,
            verb: Verb::Post,
            dry_run: false,
        }
    }

    fn config(rules: Value, selector: Value) -> Value {
        json!({"webhooks": [{"name": "v.bootes.io", "rules": rules, "namespaceSelector": selector}]})
    }

    #[test]
    fn rules_match_group_version_operation_resource_and_scope() {
        let rules = json!([{"apiGroups": ["bootes.io"], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"], "resources": ["*"], "scope": "Namespaced"}]);
        let c = [config(rules, json!({}))];
        let hit = |a: &Attributes| !matching(&c, a, &json!({})).is_empty();
        assert!(hit(&attrs(Operation::Create, None, Some("shop"))));
        assert!(hit(&attrs(Operation::Update, None, Some("shop"))));
        // `*` is every resource, not their subresources: status writes pass.
        assert!(!hit(&attrs(
            Operation::Update,
            Some("status"),
            Some("shop")
        )));
        assert!(!hit(&Attributes {
            group: "apps".into(),
            ..attrs(Operation::Create, None, Some("shop"))
        }));
        assert!(!hit(&attrs(Operation::Create, None, None)));
        let all = [config(
            json!([{"apiGroups": ["*"], "apiVersions": ["*"], "operations": ["*"], "resources": ["*/*"]}]),
            json!({}),
        )];
        assert!(!matching(
            &all,
            &attrs(Operation::Update, Some("status"), Some("x")),
            &json!({})
        )
        .is_empty());
    }

    #[test]
    fn namespace_selectors_exclude_namespaces() {
        let rules = json!([{"apiGroups": ["*"], "apiVersions": ["*"], "operations": ["*"], "resources": ["*"]}]);
        let c = [config(
            rules,
            json!({"matchExpressions": [{"key": "bootes.io/webhook", "operator": "NotIn", "values": ["disabled"]}]}),
        )];
        let a = attrs(Operation::Create, None, Some("shop"));
        assert_eq!(matching(&c, &a, &json!({})).len(), 1);
        assert_eq!(
            matching(&c, &a, &json!({"bootes.io/webhook": "enabled"})).len(),
            1
        );
        assert!(matching(&c, &a, &json!({"bootes.io/webhook": "disabled"})).is_empty());
        for (selector, labels, expected) in [
            (json!({"matchLabels": {"a": "1"}}), json!({"a": "1"}), true),
            (json!({"matchLabels": {"a": "1"}}), json!({"a": "2"}), false),
            (
                json!({"matchExpressions": [{"key": "a", "operator": "In", "values": ["1"]}]}),
                json!({}),
                false,
            ),
            (
                json!({"matchExpressions": [{"key": "a", "operator": "Exists"}]}),
                json!({"a": ""}),
                true,
            ),
            (
                json!({"matchExpressions": [{"key": "a", "operator": "DoesNotExist"}]}),
                json!({"a": ""}),
                false,
            ),
        ] {
            assert_eq!(
                selector_matches(&selector, &labels),
                expected,
                "{selector} {labels}"
            );
        }
    }

    #[test]
    fn denials_read_as_the_api_server_words_them() {
        let r = denial(
            "v.bootes.io",
            &json!({"message": "Cluster shop/db: spec.config.x: bad", "code": 0}),
        );
        assert_eq!(r.code, 400);
        assert_eq!(
            r.status["message"],
            "admission webhook \"v.bootes.io\" denied the request: Cluster shop/db: spec.config.x: bad"
        );
        assert_eq!(r.status["status"], "Failure");
        let r = denial("v", &json!({"code": 403}));
        assert_eq!(r.code, 403);
        assert_eq!(
            r.status["message"],
            "admission webhook \"v\" denied the request without explanation"
        );
    }

    #[test]
    fn responses_must_answer_the_request() {
        let ok = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": {"uid": "u", "allowed": true}});
        assert!(response_of(&ok, "u").is_ok());
        assert!(response_of(&ok, "other")
            .unwrap_err()
            .contains("response.uid"));
        let wrong = json!({"apiVersion": "v1", "kind": "Status"});
        assert!(response_of(&wrong, "u").is_err());
    }
}
