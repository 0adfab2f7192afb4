//! API errors and the `Status` objects the Kubernetes API returns for them.

use serde_json::{json, Value};

/// An error as the API server reports it: HTTP code, `reason`, message and details.
#[derive(Clone, Debug, PartialEq)]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    /// `details` of the Status (name, group, kind), when known.
    pub details: Option<Value>,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.code, self.reason, self.message)
    }
}

impl std::error::Error for ApiError {}

/// What an error is about: group, resource (plural) and name.
#[derive(Clone, Copy, Debug)]
pub struct Subject<'a> {
    pub group: &'a str,
    pub resource: &'a str,
    pub name: &'a str,
}

impl Subject<'_> {
    /// `clusters.bootes.io "x"` / `pods "x"`
    fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.resource.to_string()
        } else {
            format!("{}.{}", self.resource, self.group)
        }
    }

    fn details(&self) -> Value {
        json!({"name": self.name, "group": self.group, "kind": self.resource})
    }
}

impl ApiError {
    fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    pub fn not_found(s: Subject<'_>) -> Self {
        Self {
            details: Some(s.details()),
            ..Self::new(
                404,
                "NotFound",
                format!("{} {:?} not found", s.qualified(), s.name),
            )
        }
    }

    /// 404 for a path the server does not serve at all.
    pub fn no_route() -> Self {
        Self::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
    }

    pub fn already_exists(s: Subject<'_>) -> Self {
        Self {
            details: Some(s.details()),
            ..Self::new(
                409,
                "AlreadyExists",
                format!("{} {:?} already exists", s.qualified(), s.name),
            )
        }
    }

    pub fn conflict(s: Subject<'_>, why: &str) -> Self {
        Self {
            details: Some(s.details()),
            ..Self::new(
                409,
                "Conflict",
                format!(
                    "Operation cannot be fulfilled on {} {:?}: {why}",
                    s.qualified(),
                    s.name
                ),
            )
        }
    }

    pub fn stale(s: Subject<'_>) -> Self {
        Self::conflict(
            s,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    /// 422 Invalid. `causes` holds one `field: message` per line; they become the
    /// Status `details.causes` that kubectl prints.
    pub fn invalid(s: Subject<'_>, kind: &str, causes: &str) -> Self {
        let list: Vec<&str> = causes.lines().filter(|c| !c.trim().is_empty()).collect();
        let joined = match list.as_slice() {
            [one] => one.to_string(),
            many => format!("[{}]", many.join(", ")),
        };
        let message = if s.group.is_empty() {
            format!("{kind} {:?} is invalid: {joined}", s.name)
        } else {
            format!("{kind}.{} {:?} is invalid: {joined}", s.group, s.name)
        };
        let causes: Vec<Value> = list
            .iter()
            .map(|c| {
                let (field, msg) = c.split_once(": ").unwrap_or(("", c));
                let reason = if msg.starts_with("Required value") {
                    "FieldValueRequired"
                } else if msg.starts_with("Unsupported value") {
                    "FieldValueNotSupported"
                } else {
                    "FieldValueInvalid"
                };
                json!({"reason": reason, "message": msg, "field": field})
            })
            .collect();
        Self {
            details: Some(
                json!({"name": s.name, "group": s.group, "kind": kind, "causes": causes}),
            ),
            ..Self::new(422, "Invalid", message)
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        Self::new(405, "MethodNotAllowed", message)
    }

    pub fn not_acceptable(message: impl Into<String>) -> Self {
        Self::new(406, "NotAcceptable", message)
    }

    pub fn unsupported_media_type(message: impl Into<String>) -> Self {
        Self::new(415, "UnsupportedMediaType", message)
    }

    pub fn unprocessable(message: impl Into<String>) -> Self {
        Self::new(422, "UnprocessableEntity", message)
    }

    /// 410 Gone, reason Expired: the requested resourceVersion is older than the history.
    pub fn expired(requested: u64, oldest: u64) -> Self {
        Self::new(
            410,
            "Expired",
            format!("too old resource version: {requested} ({oldest})"),
        )
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "InternalError", message)
    }

    /// The `Status` object for this error.
    pub fn status(&self) -> Value {
        let mut s = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(d) = &self.details {
            s["details"] = d.clone();
        }
        s
    }
}

/// The `Status` returned when a delete removed the object at once.
pub fn success_status(s: Subject<'_>, uid: &Value) -> Value {
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": {"name": s.name, "group": s.group, "kind": s.resource, "uid": uid},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_objects_look_like_the_api_servers() {
        let s = Subject {
            group: "bootes.io",
            resource: "clusters",
            name: "x",
        };
        let st = ApiError::not_found(s).status();
        assert_eq!(st["kind"], "Status");
        assert_eq!(st["reason"], "NotFound");
        assert_eq!(st["code"], 404);
        assert_eq!(st["message"], "clusters.bootes.io \"x\" not found");
        assert_eq!(st["details"]["kind"], "clusters");
        let core = Subject {
            group: "",
            resource: "pods",
            name: "p",
        };
        assert_eq!(
            ApiError::already_exists(core).message,
            "pods \"p\" already exists"
        );
        assert_eq!(ApiError::expired(3, 9).status()["code"], 410);
        assert_eq!(
            ApiError::invalid(s, "Cluster", "metadata.name: Invalid value").message,
            "Cluster.bootes.io \"x\" is invalid: metadata.name: Invalid value"
        );
        assert_eq!(
            ApiError::invalid(core, "Pod", "x").message,
            "Pod \"p\" is invalid: x"
        );
        let e = ApiError::invalid(core, "Pod", "a: Required value\nb: Invalid value: 1");
        assert_eq!(
            e.message,
            "Pod \"p\" is invalid: [a: Required value, b: Invalid value: 1]"
        );
        let causes = e.status()["details"]["causes"].clone();
        assert_eq!(causes[0]["field"], "a");
        assert_eq!(causes[0]["reason"], "FieldValueRequired");
        assert_eq!(causes[1]["message"], "Invalid value: 1");
        assert_eq!(e.status()["details"]["kind"], "Pod");
    }
}
