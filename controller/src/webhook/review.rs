//! One AdmissionReview in, its answer out: no I/O, so the tests and the
//! bench call it as the HTTPS handler does.

use std::borrow::Cow;
use std::sync::{mpsc, OnceLock};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, Operation};
use kube::core::{ApiResource, DynamicResourceScope, Resource, TypeMeta};
use serde::Deserialize;
use serde_json::value::RawValue;

use bootes_core::conditions::join_errors;
use bootes_core::index::Index;
use bootes_core::report::object_problem;
use bootes_core::validate::{review, Finding};
use bootes_proto::ResourceType;

use super::Views;
use crate::source::kube::{object_from_parts, RawSpec};

/// The group of every kind the webhook judges.
pub const GROUP: &str = "bootes.io";

/// What the webhook answered, for the log and the metric's `result` label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    /// Allowed, with warnings.
    Warned,
    Denied,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Allowed => "allowed",
            Verdict::Warned => "warned",
            Verdict::Denied => "denied",
        }
    }
}

/// The answer to one review.
#[derive(Debug)]
pub struct Answer {
    pub verdict: Verdict,
    /// `KIND NAMESPACE/NAME`, or what the request is about.
    pub object: String,
    pub response: AdmissionResponse,
}

impl Answer {
    /// The AdmissionReview the API server expects back.
    pub fn body(&self) -> Vec<u8> {
        serde_json::to_vec(&self.response.clone().into_review()).expect("a response serializes")
    }
}

/// An AdmissionReview, read without a tree of its objects: kube's
/// `AdmissionReview` flattens its `TypeMeta`, which makes serde buffer the
/// whole review (both 100 KB objects) before building it.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Review {
    #[serde(default)]
    api_version: String,
    #[serde(default)]
    kind: String,
    request: Option<AdmissionRequest<SentObject>>,
}

/// An object of a review: its metadata, and its `spec` as sent, parsed
/// only when judged (`oldObject` never is).
#[derive(Clone, Debug, Deserialize)]
pub struct SentObject {
    #[serde(default)]
    metadata: ObjectMeta,
    #[serde(default)]
    spec: Option<Box<RawValue>>,
}

/// As kube's `DynamicObject`: what it is comes with the request.
impl Resource for SentObject {
    type DynamicType = ApiResource;
    type Scope = DynamicResourceScope;

    fn group(dt: &ApiResource) -> Cow<'_, str> {
        dt.group.as_str().into()
    }

    fn version(dt: &ApiResource) -> Cow<'_, str> {
        dt.version.as_str().into()
    }

    fn kind(dt: &ApiResource) -> Cow<'_, str> {
        dt.kind.as_str().into()
    }

    fn api_version(dt: &ApiResource) -> Cow<'_, str> {
        dt.api_version.as_str().into()
    }

    fn plural(dt: &ApiResource) -> Cow<'_, str> {
        dt.plural.as_str().into()
    }

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

/// Judges the review in `body`. `Err` is a malformed review: the caller
/// answers 400 with it.
pub fn answer(views: &Views, body: &[u8]) -> Result<Answer, String> {
    let parsed: Review = serde_json::from_slice(body)
        .map_err(|e| format!("the body is not an admission.k8s.io/v1 AdmissionReview: {e}"))?;
    if parsed.api_version != "admission.k8s.io/v1" || parsed.kind != "AdmissionReview" {
        return Err(format!(
            "expected apiVersion admission.k8s.io/v1, kind AdmissionReview; got apiVersion {:?}, kind {:?}",
            parsed.api_version, parsed.kind
        ));
    }
    let mut request = parsed
        .request
        .ok_or_else(|| "the AdmissionReview has no request".to_string())?;
    // What the answer's AdmissionReview is (kube's `try_into` does the same).
    request.types = TypeMeta {
        api_version: parsed.api_version,
        kind: parsed.kind,
    };
    // Moved out, not cloned: it is the bulk of the review (issue 18's 100 KB).
    let candidate = request.object.take();
    // Never read: dropped now rather than kept for the whole review.
    request.old_object = None;
    let subject = format!(
        "{} {}/{}",
        request.kind.kind,
        request.namespace.as_deref().unwrap_or_default(),
        request.name
    );
    let allow = |object: String| Answer {
        verdict: Verdict::Allowed,
        object,
        response: AdmissionResponse::from(&request),
    };
    // Deleting is always allowed, and so is writing a status: the
    // controller writes statuses of objects it has already judged.
    if matches!(request.operation, Operation::Delete | Operation::Connect)
        || request.sub_resource.is_some()
    {
        return Ok(allow(subject));
    }
    let kind = match ResourceType::from_kind(&request.kind.kind) {
        Some(kind) if request.kind.group == GROUP => kind,
        // Not ours: only a misconfigured webhook sends it; it is not ours to refuse.
        _ => return Ok(allow(subject)),
    };
    let Some(mut object) = candidate else {
        return Err(format!(
            "request.object is missing for a {:?} of {subject}",
            request.operation
        ));
    };
    // The API server fills these in before admission; a raw review may not.
    if object.metadata.namespace.is_none() {
        object.metadata.namespace = request.namespace.clone();
    }
    if object.metadata.name.is_none() && !request.name.is_empty() {
        object.metadata.name = Some(request.name.clone());
    }
    // The spec's JSON parsed once, straight into what is judged.
    let spec = object
        .spec
        .as_deref()
        .map(|raw| serde_json::from_str::<RawSpec>(raw.get()).map_err(without_position));
    let object = match object_from_parts(kind, &object.metadata, spec) {
        Ok(object) => object,
        Err(message) => {
            return Ok(Answer {
                verdict: Verdict::Denied,
                object: subject,
                response: deny(&request, message),
            })
        }
    };
    let key = object.key.clone();
    let (mut view, knows_others) = views.view(&key.namespace);
    let findings = review(&mut view, object);
    free_later(view);
    let invalid: Vec<_> = findings
        .iter()
        .filter_map(|f| match f {
            Finding::Invalid(e) => Some(e.clone()),
            _ => None,
        })
        .collect();
    if !invalid.is_empty() {
        // The words of the status condition, after the object's name.
        let message = format!("{key}: {}", join_errors(&invalid));
        return Ok(Answer {
            verdict: Verdict::Denied,
            object: key.to_string(),
            response: deny(&request, message),
        });
    }
    let warnings: Vec<String> = findings
        .iter()
        .filter_map(|f| match f {
            Finding::Invalid(_) => None,
            Finding::Warning(e) => Some(e),
            // Until this replica has seen the other objects, every
            // reference would look dangling.
            Finding::Conflict(e) | Finding::Unresolved(e, _) => knows_others.then_some(e),
        })
        .map(|e| object_problem(&key, e))
        .collect();
    let mut answer = allow(key.to_string());
    if !warnings.is_empty() {
        answer.verdict = Verdict::Warned;
        answer.response.warnings = Some(warnings);
    }
    Ok(answer)
}

/// Frees a review's view on a thread of its own: the reviewed spec in it is
/// a tree of thousands of allocations (issue 18's 100 KB object), and the
/// API server need not wait for them to be freed. Inline if that thread
/// cannot be started.
fn free_later(view: Index) {
    static FREER: OnceLock<Option<mpsc::Sender<Index>>> = OnceLock::new();
    let freer = FREER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Index>();
        std::thread::Builder::new()
            .name("webhook-free".into())
            .spawn(move || rx.into_iter().for_each(drop))
            .ok()
            .map(|_| tx)
    });
    if let Some(tx) = freer {
        // Should the thread be gone, the view comes back in the error and
        // is freed here.
        let _ = tx.send(view);
    }
}

/// A denial as the API server relays it: 400 (it would raise anything lower
/// to that), `Invalid`, with `message` after "admission webhook ... denied
/// the request: ".
fn deny(request: &AdmissionRequest<SentObject>, message: String) -> AdmissionResponse {
    let mut response = AdmissionResponse::from(request).deny(message);
    response.result.code = 400;
    response.result.reason = "Invalid".into();
    response
}

/// A spec's parse error in the words a spec read from the API gets (where
/// in the text it was is not in them).
fn without_position(e: serde_json::Error) -> String {
    let text = e.to_string();
    let at = format!(" at line {} column {}", e.line(), e.column());
    text.strip_suffix(&at).unwrap_or(&text).to_string()
}

#[cfg(test)]
mod tests;
