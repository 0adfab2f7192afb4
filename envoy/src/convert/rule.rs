//! What a semantic rule is ([`Rule`]: a message, conditions, a check) and
//! how rules name fields: paths of field names from the message a rule is
//! about. [`super::semantic`] walks resources and applies the rules of
//! `semantic_rules`; both use this module, which uses neither.
//!
//! A path (`load_assignment.endpoints.lb_endpoints`) takes a repeated field
//! on the way item by item, a map field value by value, and its last name
//! may also be a oneof (set when one of its members is).

use std::borrow::Cow;

use bootes_proto::ResourceType;
use prost_reflect::{DynamicMessage, Kind, MapKey, ReflectMessage, Value};

use super::json::map_key_text;

/// One rule: on every `message`, when all of `when` hold, `check` must hold.
pub struct Rule {
    /// Full name of the message the rule is about.
    pub message: &'static str,
    pub when: &'static [Cond],
    pub check: Check,
    /// The problem, as reported (for [`Check::Each`], followed by the
    /// test's detail).
    pub problem: &'static str,
    /// What Envoy says (or does) when the check fails.
    pub envoy: &'static str,
}

/// A condition on the message a rule is about.
pub enum Cond {
    /// The field at the path is set: a message present, a list or map not
    /// empty, a scalar not its default, a oneof with a member set.
    Set(&'static str),
    Unset(&'static str),
    /// The enum at the path (its default when unset) is one of these values.
    Enum(&'static str, &'static [&'static str]),
    /// No string at the path starts with the prefix.
    NoPrefix(&'static str, &'static str),
    /// The message is the resource itself, of this type (not a part of
    /// another resource).
    Resource(ResourceType),
}

pub enum Check {
    /// The path must be set.
    Required(&'static str),
    /// At least one of the paths must be set.
    AnyOf(&'static [&'static str]),
    /// Exactly one of the paths must be set.
    ExactlyOne(&'static [&'static str]),
    /// The condition must hold.
    Holds(Cond),
    /// The number of values at the path (lists taken item by item) is in
    /// `min..=max`.
    Count {
        path: &'static str,
        min: usize,
        max: usize,
    },
    /// Every value at the path passes the test, which returns the problem.
    Each(&'static str, fn(&Value) -> Option<String>),
    /// A test of the whole message; returns (path below it, problem).
    Message(fn(&DynamicMessage) -> Option<(String, String)>),
}

pub(crate) fn first(path: &str) -> &str {
    path.split('.').next().unwrap_or(path)
}

pub(crate) fn map_key(key: &MapKey) -> String {
    serde_json::Value::from(map_key_text(key)).to_string()
}

/// Every value at `path` below `message`, with its path (`.a[0].b`). Unset
/// fields yield nothing; lists and maps yield their items; a oneof name
/// yields its set member. Copies: see [`values_ref`].
pub fn values(message: &DynamicMessage, path: &str) -> Vec<(String, Value)> {
    values_ref(message, path)
        .into_iter()
        .map(|(at, v)| (at, v.into_owned()))
        .collect()
}

/// [`values`], borrowed from `message`: a rule about a Cluster must not copy
/// its thousand endpoints to look at one field (issue 18's webhook p99).
pub fn values_ref<'a>(message: &'a DynamicMessage, path: &str) -> Vec<(String, Cow<'a, Value>)> {
    let mut out = Vec::new();
    let names: Vec<&str> = path.split('.').collect();
    collect(message, &names, String::new(), &mut out);
    out
}

fn collect<'a>(
    message: &'a DynamicMessage,
    names: &[&str],
    at: String,
    out: &mut Vec<(String, Cow<'a, Value>)>,
) {
    let Some((name, rest)) = names.split_first() else {
        return;
    };
    let desc = message.descriptor();
    let (field, value): (_, Cow<'a, Value>) = match desc.get_field_by_name(name) {
        Some(f) if message.has_field(&f) => {
            let v = message.get_field(&f);
            (f, v)
        }
        Some(_) => return,
        None => {
            let Some(oneof) = desc.oneofs().find(|o| o.name() == *name) else {
                panic!(
                    "semantic rule path: {} has no field or oneof {name}",
                    desc.full_name()
                );
            };
            let Some(member) = oneof.fields().find(|f| message.has_field(f)) else {
                return;
            };
            let v = message.get_field(&member);
            let at = format!("{at}.{}", member.name());
            emit(v, rest, at, out);
            return;
        }
    };
    let at = format!("{at}.{}", field.name());
    match value {
        Cow::Borrowed(Value::List(items)) => {
            for (i, item) in items.iter().enumerate() {
                emit(Cow::Borrowed(item), rest, format!("{at}[{i}]"), out);
            }
        }
        Cow::Borrowed(Value::Map(entries)) => {
            let mut entries: Vec<_> = entries.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            for (key, item) in entries {
                emit(
                    Cow::Borrowed(item),
                    rest,
                    format!("{at}[{}]", map_key(key)),
                    out,
                );
            }
        }
        Cow::Owned(Value::List(items)) => {
            for (i, item) in items.into_iter().enumerate() {
                emit(Cow::Owned(item), rest, format!("{at}[{i}]"), out);
            }
        }
        Cow::Owned(Value::Map(entries)) => {
            let mut entries: Vec<_> = entries.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            for (key, item) in entries {
                emit(
                    Cow::Owned(item),
                    rest,
                    format!("{at}[{}]", map_key(&key)),
                    out,
                );
            }
        }
        v => emit(v, rest, at, out),
    }
}

fn emit<'a>(
    value: Cow<'a, Value>,
    rest: &[&str],
    at: String,
    out: &mut Vec<(String, Cow<'a, Value>)>,
) {
    if rest.is_empty() {
        out.push((at, value));
        return;
    }
    match value {
        Cow::Borrowed(Value::Message(m)) => collect(m, rest, at, out),
        // A default (unset) message: what is below it cannot be borrowed.
        Cow::Owned(Value::Message(m)) => {
            let mut inner = Vec::new();
            collect(&m, rest, at, &mut inner);
            out.extend(
                inner
                    .into_iter()
                    .map(|(at, v)| (at, Cow::Owned(v.into_owned()))),
            );
        }
        _ => {}
    }
}

/// Whether anything is set at `path` (see [`Cond::Set`]).
pub fn is_set(message: &DynamicMessage, path: &str) -> bool {
    values_ref(message, path).iter().any(|(_, v)| match &**v {
        Value::String(s) => !s.is_empty(),
        Value::Bytes(b) => !b.is_empty(),
        Value::Bool(b) => *b,
        Value::List(l) => !l.is_empty(),
        Value::Map(m) => !m.is_empty(),
        // Scalars of fields with presence and messages are set when present.
        _ => true,
    })
}

/// The name of the enum value at `path` (the default when unset).
pub(crate) fn enum_name(message: &DynamicMessage, path: &str) -> Option<String> {
    let number = match values_ref(message, path).first() {
        Some((_, v)) => v.as_enum_number()?,
        None => 0,
    };
    let (parent, last) = match path.rsplit_once('.') {
        Some((p, l)) => (Some(p), l),
        None => (None, path),
    };
    let owner = match parent {
        None => message.descriptor(),
        Some(p) => match values_ref(message, p).first().map(|(_, v)| &**v) {
            Some(Value::Message(m)) => m.descriptor(),
            _ => message_type_at(&message.descriptor(), p)?,
        },
    };
    let Kind::Enum(e) = owner.get_field_by_name(last)?.kind() else {
        return None;
    };
    Some(
        e.get_value(number)
            .map_or_else(|| number.to_string(), |v| v.name().to_string()),
    )
}

fn message_type_at(
    desc: &prost_reflect::MessageDescriptor,
    path: &str,
) -> Option<prost_reflect::MessageDescriptor> {
    let mut d = desc.clone();
    for name in path.split('.') {
        let Kind::Message(m) = d.get_field_by_name(name)?.kind() else {
            return None;
        };
        d = m;
    }
    Some(d)
}
