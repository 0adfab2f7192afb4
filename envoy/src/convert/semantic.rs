//! Envoy's own checks beyond protoc-gen-validate, as data: a table of rules
//! (`semantic_rules::RULES`) keyed by message full name, evaluated on
//! every message of a converted resource (the payloads of `Any` fields
//! included), wherever the message occurs.
//!
//! A rule ([`super::rule::Rule`]) names fields by paths from the message it
//! is about (see [`super::rule`]). Every rule reproduces
//! a check Envoy 1.40 makes when it receives the resource, and quotes Envoy's
//! words, so that an operator recognises the NACK Bootes spared them. A rule
//! must never reject what Envoy accepts: the Envoy differential test
//! (tests/tests/envoy_differential.rs) checks that.

use std::collections::HashMap;
use std::fmt::Write;

use bootes_proto::ResourceType;
use prost_reflect::{DynamicMessage, Kind, ReflectMessage, Value};

use super::rule::{enum_name, first, is_set, map_key, values_ref, Check, Cond, Rule};
use super::semantic_rules::{RULES, WARNINGS};
use super::ConfigError;

/// The problems the rules find in `message`, a resource of type `ty` whose
/// path is `root`.
pub fn check(ty: ResourceType, message: &DynamicMessage, root: &str) -> Vec<ConfigError> {
    walk(RULES, ty, message, root)
}

/// What the warning rules (`semantic_rules::WARNINGS`) find: configs
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
    let mut by_message: HashMap<&'static str, Vec<&'static Rule>> = HashMap::new();
    for rule in rules {
        by_message.entry(rule.message).or_default().push(rule);
    }
    let mut walker = Walker {
        by_message,
        ty,
        path: root.to_string(),
        errors: Vec::new(),
    };
    walker.message(message, true, 0);
    walker.errors
}

/// Same depth limit as the protoc-gen-validate walk.
const MAX_DEPTH: usize = 200;

struct Walker {
    /// The rules by the message they are about: a resource of a thousand
    /// endpoints has thousands of messages, each looked up once.
    by_message: HashMap<&'static str, Vec<&'static Rule>>,
    ty: ResourceType,
    /// The path of the message being walked: one string, grown and cut
    /// back, rather than one made per message.
    path: String,
    errors: Vec<ConfigError>,
}

impl Walker {
    fn message(&mut self, message: &DynamicMessage, root: bool, depth: usize) {
        if depth > MAX_DEPTH {
            return;
        }
        let desc = message.descriptor();
        let name = desc.full_name();
        if name == "google.protobuf.Any" {
            if let Ok(payload) = crate::any::unpack(message) {
                self.message(&payload, false, depth + 1);
            }
            return;
        }
        for rule in self.by_message.get(name).into_iter().flatten() {
            if rule.when.iter().all(|c| self.holds(c, message, root)) {
                if let Some((at, problem)) = self.violation(rule, message, root) {
                    self.errors.push(ConfigError::new(
                        format!("{}{at}", self.path),
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
            let len = self.path.len();
            self.path.push('.');
            self.path.push_str(field.name());
            let field_len = self.path.len();
            let value = message.get_field(&field);
            match &*value {
                Value::Message(m) => self.message(m, false, depth + 1),
                Value::List(items) => {
                    for (i, item) in items.iter().enumerate() {
                        if let Value::Message(m) = item {
                            let _ = write!(self.path, "[{i}]");
                            self.message(m, false, depth + 1);
                            self.path.truncate(field_len);
                        }
                    }
                }
                Value::Map(entries) => {
                    let mut entries: Vec<_> = entries.iter().collect();
                    entries.sort_by(|a, b| a.0.cmp(b.0));
                    for (key, item) in entries {
                        if let Value::Message(m) = item {
                            let _ = write!(self.path, "[{}]", map_key(key));
                            self.message(m, false, depth + 1);
                            self.path.truncate(field_len);
                        }
                    }
                }
                _ => {}
            }
            self.path.truncate(len);
        }
    }

    fn holds(&self, cond: &Cond, message: &DynamicMessage, root: bool) -> bool {
        match cond {
            Cond::Set(path) => is_set(message, path),
            Cond::Unset(path) => !is_set(message, path),
            Cond::Enum(path, names) => {
                enum_name(message, path).is_some_and(|n| names.contains(&n.as_str()))
            }
            Cond::NoPrefix(path, prefix) => values_ref(message, path)
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
                let n = values_ref(message, path).len();
                (n < *min || n > *max).then(|| (format!(".{}", first(path)), problem()))
            }
            Check::Each(path, test) => values_ref(message, path).into_iter().find_map(|(at, v)| {
                test(&v).map(|detail| (at, format!("{}: {detail}", rule.problem)))
            }),
            Check::Message(test) => test(message),
        }
    }
}
