//! One AdmissionReview in, its answer out: no I/O, so the tests and the
//! bench call it as the HTTPS handler does.

use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview, Operation};
use kube::core::DynamicObject;

use bootes_core::conditions::join_errors;
use bootes_core::report::object_problem;
use bootes_core::validate::{review, Finding};
use bootes_proto::ResourceType;

use super::Views;
use crate::source::kube::object_from_dynamic;

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

/// Judges the review in `body`. `Err` is a malformed review: the caller
/// answers 400 with it.
pub fn answer(views: &Views, body: &[u8]) -> Result<Answer, String> {
    let parsed: AdmissionReview<DynamicObject> = serde_json::from_slice(body)
        .map_err(|e| format!("the body is not an admission.k8s.io/v1 AdmissionReview: {e}"))?;
    if parsed.types.api_version != "admission.k8s.io/v1" || parsed.types.kind != "AdmissionReview" {
        return Err(format!(
            "expected apiVersion admission.k8s.io/v1, kind AdmissionReview; got apiVersion {:?}, kind {:?}",
            parsed.types.api_version, parsed.types.kind
        ));
    }
    let mut request: AdmissionRequest<DynamicObject> = parsed
        .try_into()
        .map_err(|_| "the AdmissionReview has no request".to_string())?;
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
    let object = match object_from_dynamic(kind, &object) {
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
    let (view, knows_others) = views.view(&key.namespace);
    let findings = review(view, object);
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

/// A denial as the API server relays it: 400 (it would raise anything lower
/// to that), `Invalid`, with `message` after "admission webhook ... denied
/// the request: ".
fn deny(request: &AdmissionRequest<DynamicObject>, message: String) -> AdmissionResponse {
    let mut response = AdmissionResponse::from(request).deny(message);
    response.result.code = 400;
    response.result.reason = "Invalid".into();
    response
}

#[cfg(test)]
mod tests;
