//! Envoy's own checks beyond protoc-gen-validate, as data: a table of rules
//! ([`super::semantic_rules::RULES`]) keyed by message full name, evaluated on
//! every message of a converted resource (the payloads of `Any` fields
//! included), wherever the message occurs.
//!
//! A rule names fields by *paths* of field names from the message it is
//! about (`load_assignment.endpoints.lb_endpoints`): a repeated field on the
//! way is taken item by item, a map field value by value, and the last name
//! may also be a oneof (set when one of its members is). Every rule reproduces
//! a check Envoy 1.40 makes when it receives the resource, and quotes Envoy's
//! words, so that an operator recognises the NACK Bootes spared them. A rule
//! must never reject what Envoy accepts: the Envoy differential test
//! (tests/tests/envoy_differential.rs) checks that.

use std::borrow::Cow;

use bootes_proto::ResourceType;
use prost_reflect::{DynamicMessage, Kind, MapKey, ReflectMessage, Value};

use super::json::{map_key_text, type_url_message_name};
use super::semantic_rules::{RULES, WARNINGS};
use super::ConfigError;

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

/// The problems the rules find in `message`, a resource of type `ty` whose
/// path is `root`.
pub fn check(ty: ResourceType, message: &DynamicMessage, root: &str) -> Vec<ConfigError> {
    walk(RULES, ty, message, root)
}

/// What the warning rules ([`super::semantic_rules::WARNINGS`]) find: configs
/// Envoy may accept, or rejects depending on what Bootes cannot see (its
/// bootstrap), reported without rejecting the object.
pub fn warnings(ty: ResourceType, message: &DynamicMessage, root: &str) -> Vec<ConfigError> {
    walk(WARNINGS, ty, message, root)
}

fn walk(
    rules: &'static [Rule],
    ty: ResourceType,
    message: &DynamicMessage,
    root: &str,
) -> Vec<ConfigError> {
    let mut walker = Walker {
        rules,
        ty,
        errors: Vec::new(),
    };
    walker.message(message, root, true, 0);
    walker.errors
}

/// Same depth limit as the protoc-gen-validate walk.
const MAX_DEPTH: usize = 200;

struct Walker {
    rules: &'static [Rule],
    ty: ResourceType,
    errors: Vec<ConfigError>,
}

impl Walker {
    fn message(&mut self, message: &DynamicMessage, path: &str, root: bool, depth: usize) {
        if depth > MAX_DEPTH {
            return;
        }
        let desc = message.descriptor();
        let name = desc.full_name();
        if name == "google.protobuf.Any" {
            if let Some(payload) = unpack(message) {
                self.message(&payload, path, false, depth + 1);
            }
            return;
        }
        for rule in self.rules.iter().filter(|r| r.message == name) {
            if rule.when.iter().all(|c| self.holds(c, message, root)) {
                if let Some((at, problem)) = self.violation(rule, message, root) {
                    self.errors.push(ConfigError::new(
                        format!("{path}{at}"),
                        format!("{problem} (Envoy: {})", rule.envoy),
                    ));
                }
            }
        }
        for field in desc.fields() {
            if !message.has_field(&field) {
                continue;
            }
            let Kind::Message(_) = field.kind() else {
                continue;
            };
            let field_path = format!("{path}.{}", field.name());
            let value = message.get_field(&field);
            match &*value {
                Value::Message(m) => self.message(m, &field_path, false, depth + 1),
                Value::List(items) => {
                    for (i, item) in items.iter().enumerate() {
                        if let Value::Message(m) = item {
                            self.message(m, &format!("{field_path}[{i}]"), false, depth + 1);
                        }
                    }
                }
                Value::Map(entries) => {
                    let mut entries: Vec<_> = entries.iter().collect();
                    entries.sort_by(|a, b| a.0.cmp(b.0));
                    for (key, item) in entries {
                        if let Value::Message(m) = item {
                            let at = format!("{field_path}[{}]", map_key(key));
                            self.message(m, &at, false, depth + 1);
                        }
                    }
                }
                _ => {}
            }
        }
    }

    fn holds(&self, cond: &Cond, message: &DynamicMessage, root: bool) -> bool {
        match cond {
            Cond::Set(path) => is_set(message, path),
            Cond::Unset(path) => !is_set(message, path),
            Cond::Enum(path, names) => {
                enum_name(message, path).is_some_and(|n| names.contains(&n.as_str()))
            }
            Cond::NoPrefix(path, prefix) => values(message, path)
                .iter()
                .all(|(_, v)| !v.as_str().is_some_and(|s| s.starts_with(prefix))),
            Cond::Resource(ty) => root && self.ty == *ty,
        }
    }

    /// Where below the message the rule is broken, and how (`None`: it holds).
    fn violation(
        &self,
        rule: &Rule,
        message: &DynamicMessage,
        root: bool,
    ) -> Option<(String, String)> {
        let problem = || rule.problem.to_string();
        match &rule.check {
            Check::Required(path) => {
                (!is_set(message, path)).then(|| (format!(".{}", first(path)), problem()))
            }
            Check::AnyOf(paths) => {
                (!paths.iter().any(|p| is_set(message, p))).then(|| (String::new(), problem()))
            }
            Check::ExactlyOne(paths) => {
                let set = paths.iter().filter(|p| is_set(message, p)).count();
                (set != 1).then(|| (String::new(), problem()))
            }
            Check::Holds(cond) => {
                (!self.holds(cond, message, root)).then(|| (String::new(), problem()))
            }
            Check::Count { path, min, max } => {
                let n = values(message, path).len();
                (n < *min || n > *max).then(|| (format!(".{}", first(path)), problem()))
            }
            Check::Each(path, test) => values(message, path).into_iter().find_map(|(at, v)| {
                test(&v).map(|detail| (at, format!("{}: {detail}", rule.problem)))
            }),
            Check::Message(test) => test(message),
        }
    }
}

fn first(path: &str) -> &str {
    path.split('.').next().unwrap_or(path)
}

fn map_key(key: &MapKey) -> String {
    serde_json::Value::from(map_key_text(key)).to_string()
}

/// The payload of an `Any` whose type the Envoy API has.
pub(crate) fn unpack(any: &DynamicMessage) -> Option<DynamicMessage> {
    let url = any.get_field_by_name("type_url")?;
    let name = type_url_message_name(url.as_str()?)?;
    let desc = any.descriptor().parent_pool().get_message_by_name(name)?;
    let bytes = any.get_field_by_name("value")?.as_bytes()?.clone();
    DynamicMessage::decode(desc, bytes).ok()
}

/// Every value at `path` below `message`, with its path (`.a[0].b`). Unset
/// fields yield nothing; lists and maps yield their items; a oneof name
/// yields its set member.
pub fn values(message: &DynamicMessage, path: &str) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    let names: Vec<&str> = path.split('.').collect();
    collect(message, &names, String::new(), &mut out);
    out
}

fn collect(message: &DynamicMessage, names: &[&str], at: String, out: &mut Vec<(String, Value)>) {
    let Some((name, rest)) = names.split_first() else {
        return;
    };
    let desc = message.descriptor();
    let (field, value): (_, Cow<'_, Value>) = match desc.get_field_by_name(name) {
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
            emit(v.into_owned(), rest, at, out);
            return;
        }
    };
    let at = format!("{at}.{}", field.name());
    match value.into_owned() {
        Value::List(items) => {
            for (i, item) in items.into_iter().enumerate() {
                emit(item, rest, format!("{at}[{i}]"), out);
            }
        }
        Value::Map(entries) => {
            let mut entries: Vec<_> = entries.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            for (key, item) in entries {
                emit(item, rest, format!("{at}[{}]", map_key(&key)), out);
            }
        }
        v => emit(v, rest, at, out),
    }
}

fn emit(value: Value, rest: &[&str], at: String, out: &mut Vec<(String, Value)>) {
    if rest.is_empty() {
        out.push((at, value));
    } else if let Value::Message(m) = value {
        collect(&m, rest, at, out);
    }
}

/// Whether anything is set at `path` (see [`Cond::Set`]).
pub fn is_set(message: &DynamicMessage, path: &str) -> bool {
    values(message, path).iter().any(|(_, v)| match v {
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
fn enum_name(message: &DynamicMessage, path: &str) -> Option<String> {
    let number = match values(message, path).first() {
        Some((_, v)) => v.as_enum_number()?,
        None => 0,
    };
    let (parent, last) = match path.rsplit_once('.') {
        Some((p, l)) => (Some(p), l),
        None => (None, path),
    };
    let owner = match parent {
        None => message.descriptor(),
        Some(p) => match values(message, p).first() {
            Some((_, Value::Message(m))) => m.descriptor(),
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
