//! Proto3 JSON → [`DynamicMessage`], driven by the descriptors.
//!
//! The walker implements the proto3 JSON mapping itself (instead of going
//! through a serde deserializer) so that every problem is reported with the
//! JSON path where it is, including inside `google.protobuf.Any` payloads, and
//! so that several problems of one object are reported together.
//!
//! Paths use the proto field names (snake_case) whichever spelling the input
//! used; list items are `[i]`, map entries `["key"]`, and the fields of an
//! `Any` payload follow the `Any` field directly (`typed_config.stat_prefix`),
//! except for well-known payload types whose JSON form is a `value` member.

use std::collections::HashMap;

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use prost::Message;
use prost_reflect::{
    DescriptorPool, DynamicMessage, EnumDescriptor, FieldDescriptor, Kind, MapKey,
    MessageDescriptor, Value,
};
use serde_json::Value as Json;

use super::ConfigError;

/// Deepest message nesting accepted (map entries and the levels of
/// `Struct`/`Value` count). Protobuf parsers, Envoy's included, refuse input
/// nested deeper than 100 messages; staying below that keeps every accepted
/// resource decodable.
pub const MAX_DEPTH: usize = 90;

/// At most this many problems are reported for one object; the last one says
/// how many more were found.
pub const MAX_ERRORS: usize = 100;

/// Seconds in 10,000 years: the range of `Duration` and of `Timestamp`.
pub(crate) const MAX_DURATION_SECONDS: i64 = 315_576_000_000;
/// 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z, in Unix seconds.
pub(crate) const MIN_TIMESTAMP: i64 = -62_135_596_800;
pub(crate) const MAX_TIMESTAMP: i64 = 253_402_300_799;

/// Parses `json` as a `desc` message. Returns what could be parsed and every
/// problem found; the message is only meaningful when there are no problems.
pub fn parse(
    desc: &MessageDescriptor,
    json: &Json,
    root: &str,
) -> (DynamicMessage, Vec<ConfigError>) {
    let mut parser = Parser {
        pool: desc.parent_pool().clone(),
        problems: Problems::new(root),
        depth: 0,
    };
    let message = parser.message(desc, json);
    (message, parser.problems.into_errors(root))
}

/// What a walk over a message (the JSON parser, the protoc-gen-validate
/// checker) found, each problem at the path being walked, cut at
/// [`MAX_ERRORS`].
pub(crate) struct Problems {
    path: String,
    errors: Vec<ConfigError>,
    dropped: usize,
}

impl Problems {
    pub(crate) fn new(root: &str) -> Self {
        Self {
            path: root.to_string(),
            errors: Vec::new(),
            dropped: 0,
        }
    }

    /// A problem at the current path.
    pub(crate) fn add(&mut self, message: impl Into<String>) {
        if self.errors.len() < MAX_ERRORS {
            self.errors
                .push(ConfigError::new(self.path.clone(), message));
        } else {
            self.dropped += 1;
        }
    }

    /// Every problem, and a last line counting those cut.
    pub(crate) fn into_errors(self, root: &str) -> Vec<ConfigError> {
        let mut errors = self.errors;
        if self.dropped > 0 {
            errors.push(more_not_shown(root, self.dropped));
        }
        errors
    }
}

/// A walker keeping [`Problems`]: steps run with their path segment appended.
pub(crate) trait Walk: Sized {
    fn problems(&mut self) -> &mut Problems;

    /// Runs `f` with `segment` appended to the path.
    fn at<R>(&mut self, segment: &str, f: impl FnOnce(&mut Self) -> R) -> R {
        let len = self.problems().path.len();
        self.problems().path.push_str(segment);
        let r = f(self);
        self.problems().path.truncate(len);
        r
    }

    /// Runs `f` with `.name` appended to the path.
    fn at_field<R>(&mut self, name: &str, f: impl FnOnce(&mut Self) -> R) -> R {
        let len = self.problems().path.len();
        self.problems().path.push('.');
        self.problems().path.push_str(name);
        let r = f(self);
        self.problems().path.truncate(len);
        r
    }
}

const MORE: &str = " more problems not shown";

/// The last line of a report cut at [`MAX_ERRORS`].
pub(crate) fn more_not_shown(root: &str, n: usize) -> ConfigError {
    ConfigError::new(root, format!("{n}{MORE}"))
}

/// Cuts `errors` (which may hold "… more problems not shown" lines of their
/// own) to [`MAX_ERRORS`] problems and one such line.
pub(crate) fn cap(errors: &mut Vec<ConfigError>, root: &str) {
    let mut more = 0;
    errors.retain(|e| {
        let n = e
            .message
            .strip_suffix(MORE)
            .filter(|_| e.path == root)
            .and_then(|n| n.parse::<usize>().ok());
        more += n.unwrap_or(0);
        n.is_none()
    });
    if errors.len() > MAX_ERRORS {
        more += errors.len() - MAX_ERRORS;
        errors.truncate(MAX_ERRORS);
    }
    if more > 0 {
        errors.push(more_not_shown(root, more));
    }
}

/// Whether `full_name` is a type with a special JSON form.
pub fn is_well_known_type(full_name: &str) -> bool {
    matches!(
        full_name,
        "google.protobuf.Any"
            | "google.protobuf.Duration"
            | "google.protobuf.Timestamp"
            | "google.protobuf.FieldMask"
            | "google.protobuf.Struct"
            | "google.protobuf.Value"
            | "google.protobuf.ListValue"
            | "google.protobuf.Empty"
    ) || wrapper_kind(full_name)
}

fn wrapper_kind(full_name: &str) -> bool {
    matches!(
        full_name,
        "google.protobuf.DoubleValue"
            | "google.protobuf.FloatValue"
            | "google.protobuf.Int64Value"
            | "google.protobuf.UInt64Value"
            | "google.protobuf.Int32Value"
            | "google.protobuf.UInt32Value"
            | "google.protobuf.BoolValue"
            | "google.protobuf.StringValue"
            | "google.protobuf.BytesValue"
    )
}

/// How a JSON value is described in messages.
fn describe(json: &Json) -> String {
    match json {
        Json::Null => "null".into(),
        Json::Bool(b) => format!("the boolean {b}"),
        Json::Number(n) => format!("the number {n}"),
        Json::String(s) => format!("the string {}", quote(s)),
        Json::Array(_) => "a list".into(),
        Json::Object(_) => "an object".into(),
    }
}

/// A map key as text, as a JSON object spells it (problem paths show it so).
pub(crate) fn map_key_text(key: &MapKey) -> String {
    match key {
        MapKey::Bool(b) => b.to_string(),
        MapKey::I32(n) => n.to_string(),
        MapKey::I64(n) => n.to_string(),
        MapKey::U32(n) => n.to_string(),
        MapKey::U64(n) => n.to_string(),
        MapKey::String(s) => s.clone(),
    }
}

/// A string quoted for a message, shortened when long.
pub(crate) fn quote(s: &str) -> String {
    const MAX: usize = 64;
    if s.chars().count() > MAX {
        let short: String = s.chars().take(MAX).collect();
        format!("{}…", Json::from(short))
    } else {
        Json::from(s).to_string()
    }
}

struct Parser {
    pool: DescriptorPool,
    problems: Problems,
    depth: usize,
}

impl Walk for Parser {
    fn problems(&mut self) -> &mut Problems {
        &mut self.problems
    }
}

impl Parser {
    fn error(&mut self, message: impl Into<String>) {
        self.problems.add(message);
    }

    fn at_index<R>(&mut self, i: usize, f: impl FnOnce(&mut Self) -> R) -> R {
        self.at(&format!("[{i}]"), f)
    }

    fn at_key<R>(&mut self, key: &str, f: impl FnOnce(&mut Self) -> R) -> R {
        self.at(&format!("[{}]", Json::from(key)), f)
    }

    /// A message of any type, well-known types included.
    fn message(&mut self, desc: &MessageDescriptor, json: &Json) -> DynamicMessage {
        if self.depth >= MAX_DEPTH {
            self.error(format!("nested more than {MAX_DEPTH} messages deep"));
            return DynamicMessage::new(desc.clone());
        }
        self.depth += 1;
        let message = match desc.full_name() {
            "google.protobuf.Any" => self.any(desc, json),
            "google.protobuf.Duration" => self.duration(desc, json),
            "google.protobuf.Timestamp" => self.timestamp(desc, json),
            "google.protobuf.FieldMask" => self.field_mask(desc, json),
            "google.protobuf.Struct" => self.struct_(desc, json),
            "google.protobuf.Value" => self.value(desc, json),
            "google.protobuf.ListValue" => self.list_value(desc, json),
            name if wrapper_kind(name) => self.wrapper(desc, json),
            _ => match json {
                Json::Object(map) => self.fields(desc, map, &[]),
                other => {
                    self.error(format!(
                        "expected an object ({}), got {}",
                        desc.full_name(),
                        describe(other)
                    ));
                    DynamicMessage::new(desc.clone())
                }
            },
        };
        self.depth -= 1;
        message
    }

    /// The members of a JSON object as fields of `desc` (`skip` names keys
    /// handled by the caller, such as `@type`).
    fn fields(
        &mut self,
        desc: &MessageDescriptor,
        map: &serde_json::Map<String, Json>,
        skip: &[&str],
    ) -> DynamicMessage {
        let mut message = DynamicMessage::new(desc.clone());
        // field number → key that set it; oneof name → key of its member set.
        let mut seen: HashMap<u32, &str> = HashMap::new();
        let mut oneofs: HashMap<String, (&str, String)> = HashMap::new();
        for (key, json) in map {
            if skip.contains(&key.as_str()) {
                continue;
            }
            let field = desc
                .get_field_by_name(key)
                .or_else(|| desc.get_field_by_json_name(key));
            let Some(field) = field else {
                self.at_field(key, |p| {
                    let hint = suggestion(desc, key)
                        .map(|s| format!(" (did you mean {s:?}?)"))
                        .unwrap_or_default();
                    p.error(format!(
                        "unknown field {key:?} in {}{hint}",
                        desc.full_name()
                    ));
                });
                continue;
            };
            if let Some(first) = seen.insert(field.number(), key) {
                self.at_field(field.name(), |p| {
                    p.error(format!("field given twice, as {first:?} and as {key:?}"))
                });
                continue;
            }
            let is_null_value = matches!(field.kind(), Kind::Message(m) if m.full_name() == "google.protobuf.Value")
                || matches!(field.kind(), Kind::Enum(e) if e.full_name() == "google.protobuf.NullValue");
            if json.is_null() && !(is_null_value && !field.is_list() && !field.is_map()) {
                // null is the default value: the field stays unset.
                continue;
            }
            if let Some(oneof) = field.containing_oneof().filter(|o| !o.is_synthetic()) {
                if let Some((other, _)) = oneofs.get(oneof.name()) {
                    let other = other.to_string();
                    self.at_field(field.name(), |p| {
                        p.error(format!(
                            "{key:?} and {other:?} are both set, but only one of the oneof {:?} ({}) may be",
                            oneof.name(),
                            oneof.fields().map(|f| f.name().to_string()).collect::<Vec<_>>().join(", ")
                        ))
                    });
                    continue;
                }
                oneofs.insert(
                    oneof.name().to_string(),
                    (key.as_str(), field.name().to_string()),
                );
            }
            let value = self.at_field(field.name(), |p| p.field_value(&field, json));
            if let Some(value) = value {
                message.set_field(&field, value);
            }
        }
        message
    }

    /// The value of one field: a list, a map or a single value.
    fn field_value(&mut self, field: &FieldDescriptor, json: &Json) -> Option<Value> {
        if field.is_map() {
            let Json::Object(map) = json else {
                self.error(format!(
                    "expected an object (a map), got {}",
                    describe(json)
                ));
                return None;
            };
            let Kind::Message(entry) = field.kind() else {
                return None;
            };
            let key_kind = entry.map_entry_key_field().kind();
            let value_field = entry.map_entry_value_field();
            let value_kind = value_field.kind();
            let value_is_null_value =
                matches!(&value_kind, Kind::Message(m) if m.full_name() == "google.protobuf.Value");
            let mut out = HashMap::with_capacity(map.len());
            // The map entry is one message level of its own.
            if self.depth >= MAX_DEPTH {
                self.error(format!("nested more than {MAX_DEPTH} messages deep"));
                return None;
            }
            self.depth += 1;
            for (k, v) in map {
                self.at_key(k, |p| {
                    let key = p.map_key(&key_kind, k);
                    if v.is_null() && !value_is_null_value {
                        p.error("null is not allowed as a map value");
                        return;
                    }
                    let value = p.single(&value_kind, v);
                    if let (Some(key), Some(value)) = (key, value) {
                        out.insert(key, value);
                    }
                });
            }
            self.depth -= 1;
            Some(Value::Map(out))
        } else if field.is_list() {
            let Json::Array(items) = json else {
                self.error(format!("expected a list, got {}", describe(json)));
                return None;
            };
            let kind = field.kind();
            let is_value =
                matches!(&kind, Kind::Message(m) if m.full_name() == "google.protobuf.Value");
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                self.at_index(i, |p| {
                    if item.is_null() && !is_value {
                        p.error("null is not allowed as a list item");
                        return;
                    }
                    if let Some(v) = p.single(&kind, item) {
                        out.push(v);
                    }
                });
            }
            Some(Value::List(out))
        } else {
            self.single(&field.kind(), json)
        }
    }

    fn map_key(&mut self, kind: &Kind, key: &str) -> Option<MapKey> {
        let bad = |p: &mut Self, what: &str| {
            p.error(format!("map key {} is not {what}", quote(key)));
            None
        };
        match kind {
            Kind::String => Some(MapKey::String(key.to_string())),
            Kind::Bool => match key {
                "true" => Some(MapKey::Bool(true)),
                "false" => Some(MapKey::Bool(false)),
                _ => bad(self, "true or false"),
            },
            Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => match key.parse() {
                Ok(n) => Some(MapKey::I32(n)),
                Err(_) => bad(self, "a 32-bit integer"),
            },
            Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => match key.parse() {
                Ok(n) => Some(MapKey::I64(n)),
                Err(_) => bad(self, "a 64-bit integer"),
            },
            Kind::Uint32 | Kind::Fixed32 => match key.parse() {
                Ok(n) => Some(MapKey::U32(n)),
                Err(_) => bad(self, "an unsigned 32-bit integer"),
            },
            Kind::Uint64 | Kind::Fixed64 => match key.parse() {
                Ok(n) => Some(MapKey::U64(n)),
                Err(_) => bad(self, "an unsigned 64-bit integer"),
            },
            _ => bad(self, "of a valid map key type"),
        }
    }

    /// One value of `kind` (a list item, a map value or a singular field).
    fn single(&mut self, kind: &Kind, json: &Json) -> Option<Value> {
        match kind {
            Kind::Message(desc) => Some(Value::Message(self.message(desc, json))),
            Kind::Enum(desc) => self.enum_value(desc, json).map(Value::EnumNumber),
            Kind::Bool => match json {
                Json::Bool(b) => Some(Value::Bool(*b)),
                other => {
                    self.error(format!("expected true or false, got {}", describe(other)));
                    None
                }
            },
            Kind::String => match json {
                Json::String(s) => Some(Value::String(s.clone())),
                other => {
                    self.error(format!("expected a string, got {}", describe(other)));
                    None
                }
            },
            Kind::Bytes => match json {
                Json::String(s) => match decode_base64(s) {
                    Some(b) => Some(Value::Bytes(b.into())),
                    None => {
                        self.error(format!("{} is not valid base64", quote(s)));
                        None
                    }
                },
                other => {
                    self.error(format!("expected a base64 string, got {}", describe(other)));
                    None
                }
            },
            Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => self
                .integer(json, i32::MIN as i128, i32::MAX as i128, "a 32-bit integer")
                .map(|n| Value::I32(n as i32)),
            Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => self
                .integer(json, i64::MIN as i128, i64::MAX as i128, "a 64-bit integer")
                .map(|n| Value::I64(n as i64)),
            Kind::Uint32 | Kind::Fixed32 => self
                .integer(json, 0, u32::MAX as i128, "an unsigned 32-bit integer")
                .map(|n| Value::U32(n as u32)),
            Kind::Uint64 | Kind::Fixed64 => self
                .integer(json, 0, u64::MAX as i128, "an unsigned 64-bit integer")
                .map(|n| Value::U64(n as u64)),
            Kind::Double => self.float(json, false).map(Value::F64),
            Kind::Float => self.float(json, true).map(|f| Value::F32(f as f32)),
        }
    }

    fn enum_value(&mut self, desc: &EnumDescriptor, json: &Json) -> Option<i32> {
        match json {
            Json::Null if desc.full_name() == "google.protobuf.NullValue" => Some(0),
            Json::String(name) => match desc.get_value_by_name(name) {
                Some(v) => Some(v.number()),
                // A number in a string, as protobuf's own JSON parser (and so
                // Envoy's bootstrap loader) takes it.
                None if name.parse::<i32>().is_ok() => name.parse().ok(),
                None => {
                    let names: Vec<String> = desc.values().map(|v| v.name().to_string()).collect();
                    let shown = if names.len() <= 12 {
                        names.join(", ")
                    } else {
                        format!("{}, …", names[..12].join(", "))
                    };
                    self.error(format!(
                        "unknown value {} of enum {} (expected one of {shown})",
                        quote(name),
                        desc.full_name()
                    ));
                    None
                }
            },
            Json::Number(_) => self
                .integer(json, i32::MIN as i128, i32::MAX as i128, "an enum number")
                .map(|n| n as i32),
            other => {
                self.error(format!(
                    "expected a value name of enum {}, got {}",
                    desc.full_name(),
                    describe(other)
                ));
                None
            }
        }
    }

    /// An integer given as a JSON number or a string, within `[min, max]`.
    fn integer(&mut self, json: &Json, min: i128, max: i128, what: &str) -> Option<i128> {
        let parsed: Result<i128, String> = match json {
            Json::Number(n) => {
                if let Some(i) = n.as_i64() {
                    Ok(i as i128)
                } else if let Some(u) = n.as_u64() {
                    Ok(u as i128)
                } else {
                    integral(n.as_f64().unwrap_or(f64::NAN), &describe(json))
                }
            }
            Json::String(s) => {
                let t = s.as_str();
                if let Ok(i) = t.parse::<i128>() {
                    Ok(i)
                } else if is_decimal_number(t) {
                    integral(t.parse::<f64>().unwrap_or(f64::NAN), &describe(json))
                } else {
                    Err(format!("expected {what}, got {}", describe(json)))
                }
            }
            other => Err(format!("expected {what}, got {}", describe(other))),
        };
        match parsed {
            Ok(n) if (min..=max).contains(&n) => Some(n),
            Ok(n) => {
                self.error(format!("{n} is out of range for {what} ({min} to {max})"));
                None
            }
            Err(e) => {
                self.error(e);
                None
            }
        }
    }

    /// A float given as a JSON number, a numeric string, or one of the
    /// strings `NaN`, `Infinity` and `-Infinity`.
    fn float(&mut self, json: &Json, single: bool) -> Option<f64> {
        let f = match json {
            Json::Number(n) => n.as_f64(),
            Json::String(s) => match s.as_str() {
                "NaN" => Some(f64::NAN),
                "Infinity" => Some(f64::INFINITY),
                "-Infinity" => Some(f64::NEG_INFINITY),
                t if is_decimal_number(t) => t.parse().ok(),
                _ => None,
            },
            _ => None,
        };
        let Some(f) = f else {
            self.error(format!(
                "expected a number (or \"NaN\", \"Infinity\", \"-Infinity\"), got {}",
                describe(json)
            ));
            return None;
        };
        let special = matches!(json, Json::String(s) if matches!(s.as_str(), "NaN" | "Infinity" | "-Infinity"));
        if !special && (!f.is_finite() || (single && (f as f32).is_infinite())) {
            let what = if single {
                "a 32-bit float"
            } else {
                "a 64-bit float"
            };
            self.error(format!("{} is out of range for {what}", describe(json)));
            return None;
        }
        Some(f)
    }

    fn any(&mut self, desc: &MessageDescriptor, json: &Json) -> DynamicMessage {
        let mut any = DynamicMessage::new(desc.clone());
        let Json::Object(map) = json else {
            self.error(format!(
                "expected an object with \"@type\" (google.protobuf.Any), got {}",
                describe(json)
            ));
            return any;
        };
        let type_url = match map.get("@type") {
            None if map.is_empty() => return any,
            None => {
                self.error("\"@type\" is missing: an Any needs the type URL of its contents, e.g. \"type.googleapis.com/envoy.extensions.filters.http.router.v3.Router\"");
                return any;
            }
            Some(Json::String(url)) => url.clone(),
            Some(other) => {
                let message = format!("expected a type URL string, got {}", describe(other));
                self.at_field("@type", |p| p.error(message));
                return any;
            }
        };
        if crate::any::is_typed_struct(&type_url) {
            return self.typed_struct(desc, map);
        }
        let Some(payload_desc) = crate::any::message_name(&type_url)
            .and_then(|name| self.pool.get_message_by_name(name))
        else {
            self.at_field("@type", |p| {
                let message = match crate::any::message_name(&type_url) {
                    None => format!(
                        "{} is not a type URL (expected \"type.googleapis.com/<message name>\")",
                        quote(&type_url)
                    ),
                    Some(name) => format!(
                        "unknown type {}: Envoy's API has no message {name:?}",
                        quote(&type_url)
                    ),
                };
                p.error(message);
            });
            return any;
        };
        let payload = if is_well_known_type(payload_desc.full_name()) {
            for key in map.keys().filter(|k| *k != "@type" && *k != "value") {
                self.at_field(key, |p| {
                    p.error(format!(
                        "unknown field {key:?}: an Any holding {} has only \"@type\" and \"value\"",
                        payload_desc.full_name()
                    ))
                });
            }
            match map.get("value") {
                Some(v) => self.at_field("value", |p| p.message(&payload_desc, v)),
                None => DynamicMessage::new(payload_desc.clone()),
            }
        } else if self.depth >= MAX_DEPTH {
            self.error(format!("nested more than {MAX_DEPTH} messages deep"));
            DynamicMessage::new(payload_desc.clone())
        } else {
            // The payload's fields sit beside "@type".
            self.depth += 1;
            let m = self.fields(&payload_desc, map, &["@type"]);
            self.depth -= 1;
            m
        };
        any.set_field_by_name("type_url", Value::String(type_url));
        any.set_field_by_name("value", Value::Bytes(payload.encode_to_vec().into()));
        any
    }

    /// An `Any` holding a `TypedStruct` ([`crate::any::TYPED_STRUCTS`]):
    /// `value` is parsed and checked as the message `type_url` names, and
    /// the `Any` becomes that message, as Envoy itself converts it.
    fn typed_struct(
        &mut self,
        desc: &MessageDescriptor,
        map: &serde_json::Map<String, Json>,
    ) -> DynamicMessage {
        let mut any = DynamicMessage::new(desc.clone());
        for key in map.keys() {
            if !matches!(key.as_str(), "@type" | "type_url" | "typeUrl" | "value") {
                self.at_field(key, |p| {
                    p.error(format!(
                        "unknown field {key:?}: a TypedStruct has only \"type_url\" and \"value\""
                    ))
                });
            }
        }
        let (url, value) = crate::any::typed_struct_parts(map);
        let Some(url) = url.filter(|u| !u.is_empty()) else {
            self.at_field("type_url", |p| {
                p.error("a TypedStruct needs type_url: the type URL of the message its value holds")
            });
            return any;
        };
        let Some(inner) = crate::any::descriptor(url) else {
            let message = format!(
                "unknown type {}: Envoy's API has no such message",
                quote(url)
            );
            self.at_field("type_url", |p| p.error(message));
            return any;
        };
        let payload = match value {
            None => DynamicMessage::new(inner.clone()),
            Some(Json::Object(fields)) => self.at_field("value", |p| {
                if is_well_known_type(inner.full_name()) {
                    p.message(&inner, &Json::Object(fields.clone()))
                } else {
                    p.fields(&inner, fields, &[])
                }
            }),
            Some(other) => {
                let message = format!(
                    "expected an object (the fields of {}), got {}",
                    inner.full_name(),
                    describe(other)
                );
                self.at_field("value", |p| p.error(message));
                return any;
            }
        };
        any.set_field_by_name("type_url", Value::String(url.to_string()));
        any.set_field_by_name("value", Value::Bytes(payload.encode_to_vec().into()));
        any
    }

    fn duration(&mut self, desc: &MessageDescriptor, json: &Json) -> DynamicMessage {
        let mut m = DynamicMessage::new(desc.clone());
        let parsed = match json {
            Json::String(s) => {
                parse_duration(s).map_err(|e| format!("{} is not a duration: {e}", quote(s)))
            }
            other => Err(format!(
                "expected a duration string such as \"1s\" or \"0.250s\", got {}",
                describe(other)
            )),
        };
        match parsed {
            Ok((seconds, nanos)) => {
                m.set_field_by_name("seconds", Value::I64(seconds));
                m.set_field_by_name("nanos", Value::I32(nanos));
            }
            Err(e) => self.error(e),
        }
        m
    }

    fn timestamp(&mut self, desc: &MessageDescriptor, json: &Json) -> DynamicMessage {
        let mut m = DynamicMessage::new(desc.clone());
        let parsed = match json {
            Json::String(s) => parse_timestamp(s)
                .map_err(|e| format!("{} is not an RFC 3339 timestamp: {e}", quote(s))),
            other => Err(format!(
                "expected an RFC 3339 timestamp string such as \"2024-01-01T00:00:00Z\", got {}",
                describe(other)
            )),
        };
        match parsed {
            Ok((seconds, nanos)) => {
                m.set_field_by_name("seconds", Value::I64(seconds));
                m.set_field_by_name("nanos", Value::I32(nanos));
            }
            Err(e) => self.error(e),
        }
        m
    }

    fn field_mask(&mut self, desc: &MessageDescriptor, json: &Json) -> DynamicMessage {
        let mut m = DynamicMessage::new(desc.clone());
        let Json::String(s) = json else {
            self.error(format!(
                "expected a field mask string such as \"a.b,cD\", got {}",
                describe(json)
            ));
            return m;
        };
        let mut paths = Vec::new();
        for path in s.split(',').filter(|p| !p.is_empty()) {
            if path.contains('_') || !path.chars().all(|c| c.is_ascii_alphanumeric() || c == '.') {
                self.error(format!(
                    "field mask path {} is not lowerCamelCase field names joined by \".\"",
                    quote(path)
                ));
                continue;
            }
            paths.push(Value::String(camel_to_snake(path)));
        }
        m.set_field_by_name("paths", Value::List(paths));
        m
    }

    fn struct_(&mut self, desc: &MessageDescriptor, json: &Json) -> DynamicMessage {
        let mut m = DynamicMessage::new(desc.clone());
        let Json::Object(_) = json else {
            self.error(format!(
                "expected an object (google.protobuf.Struct), got {}",
                describe(json)
            ));
            return m;
        };
        if let Some(field) = desc.get_field_by_name("fields") {
            if let Some(v) = self.field_value(&field, json) {
                m.set_field(&field, v);
            }
        }
        m
    }

    fn list_value(&mut self, desc: &MessageDescriptor, json: &Json) -> DynamicMessage {
        let mut m = DynamicMessage::new(desc.clone());
        let Json::Array(_) = json else {
            self.error(format!(
                "expected a list (google.protobuf.ListValue), got {}",
                describe(json)
            ));
            return m;
        };
        if let Some(field) = desc.get_field_by_name("values") {
            if let Some(v) = self.field_value(&field, json) {
                m.set_field(&field, v);
            }
        }
        m
    }

    fn value(&mut self, desc: &MessageDescriptor, json: &Json) -> DynamicMessage {
        let mut m = DynamicMessage::new(desc.clone());
        let set = |m: &mut DynamicMessage, name: &str, v: Value| m.set_field_by_name(name, v);
        match json {
            Json::Null => set(&mut m, "null_value", Value::EnumNumber(0)),
            Json::Bool(b) => set(&mut m, "bool_value", Value::Bool(*b)),
            Json::Number(n) => match n.as_f64() {
                Some(f) => set(&mut m, "number_value", Value::F64(f)),
                None => self.error(format!("the number {n} is out of range")),
            },
            Json::String(s) => set(&mut m, "string_value", Value::String(s.clone())),
            Json::Object(_) => {
                if let Some(Kind::Message(sd)) =
                    desc.get_field_by_name("struct_value").map(|f| f.kind())
                {
                    let s = self.message(&sd, json);
                    set(&mut m, "struct_value", Value::Message(s));
                }
            }
            Json::Array(_) => {
                if let Some(Kind::Message(ld)) =
                    desc.get_field_by_name("list_value").map(|f| f.kind())
                {
                    let l = self.message(&ld, json);
                    set(&mut m, "list_value", Value::Message(l));
                }
            }
        }
        m
    }

    fn wrapper(&mut self, desc: &MessageDescriptor, json: &Json) -> DynamicMessage {
        let mut m = DynamicMessage::new(desc.clone());
        if let Some(field) = desc.get_field_by_name("value") {
            if let Some(v) = self.single(&field.kind(), json) {
                m.set_field(&field, v);
            }
        }
        m
    }
}

/// The closest field name to a misspelt key, if one is close.
fn suggestion(desc: &MessageDescriptor, key: &str) -> Option<String> {
    let snake = camel_to_snake(key);
    desc.fields()
        .map(|f| (edit_distance(&snake, f.name()), f.name().to_string()))
        .filter(|(d, name)| *d <= 2.max(name.len() / 5) && *d < name.len())
        .min_by_key(|(d, _)| *d)
        .map(|(_, name)| name)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    if a.len().abs_diff(b.len()) > 3 {
        return usize::MAX;
    }
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

fn camel_to_snake(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 4);
    for c in s.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// A float with no fractional part, as an integer (`what` describes it in errors).
fn integral(f: f64, what: &str) -> Result<i128, String> {
    if !f.is_finite() || f.abs() >= 1e20 {
        Err(format!("{what} is out of range for an integer"))
    } else if f.fract() != 0.0 {
        Err(format!("{what} is not an integer"))
    } else {
        Ok(f as i128)
    }
}

/// `-?digits[.digits][e[+-]digits]`: the only number syntax accepted in strings
/// (Rust's parser would also take "inf" and "nan").
fn is_decimal_number(s: &str) -> bool {
    let s = s.strip_prefix('-').unwrap_or(s);
    let (mantissa, exponent) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let (int, frac) = match mantissa.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (mantissa, None),
    };
    let digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
    let int_ok = digits(int);
    let frac_ok = frac.is_none_or(digits);
    let has_digit = !int.is_empty() || frac.is_some_and(|f| !f.is_empty());
    let exp_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['+', '-']).unwrap_or(e);
        !e.is_empty() && digits(e)
    });
    int_ok && frac_ok && has_digit && exp_ok
}

fn decode_base64(s: &str) -> Option<Vec<u8>> {
    // Unused bits of the last character may be set, as protobuf's JSON
    // parser allows.
    let config = GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true);
    let standard = GeneralPurpose::new(&base64::alphabet::STANDARD, config);
    let url_safe = GeneralPurpose::new(&base64::alphabet::URL_SAFE, config);
    standard.decode(s).or_else(|_| url_safe.decode(s)).ok()
}

/// Parses a proto3 JSON duration: `-?seconds[.fraction]s`, up to 9 fraction digits.
pub fn parse_duration(s: &str) -> Result<(i64, i32), String> {
    let body = s.strip_suffix('s').ok_or_else(|| {
        "durations are seconds with an \"s\" suffix, e.g. \"1s\", \"0.250s\", \"-1.5s\"".to_string()
    })?;
    let (negative, body) = match body.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, body),
    };
    let (secs, frac) = match body.split_once('.') {
        Some((s, f)) => (s, f),
        None => (body, ""),
    };
    let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    if !digits(secs) || (body.contains('.') && !digits(frac)) {
        return Err(
            "durations are seconds with an \"s\" suffix, e.g. \"1s\", \"0.250s\", \"-1.5s\"".into(),
        );
    }
    if frac.len() > 9 {
        return Err("at most 9 fractional digits (nanoseconds)".into());
    }
    let seconds: i64 = secs
        .parse()
        .ok()
        .filter(|s| *s <= MAX_DURATION_SECONDS)
        .ok_or_else(|| format!("out of range (at most {MAX_DURATION_SECONDS}s)"))?;
    let nanos: i32 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<9}")
            .parse()
            .map_err(|_| "bad fraction".to_string())?
    };
    Ok(if negative {
        (-seconds, -nanos)
    } else {
        (seconds, nanos)
    })
}

/// Parses an RFC 3339 timestamp (`YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`)
/// into Unix seconds and nanoseconds.
pub fn parse_timestamp(s: &str) -> Result<(i64, i32), String> {
    let b = s.as_bytes();
    let num = |range: std::ops::Range<usize>| -> Result<i64, String> {
        let part = s.get(range).ok_or("too short")?;
        if part.bytes().all(|c| c.is_ascii_digit()) && !part.is_empty() {
            part.parse().map_err(|_| "not a number".to_string())
        } else {
            Err(format!("{part:?} is not a number"))
        }
    };
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't')
        || b[13] != b':'
        || b[16] != b':'
    {
        return Err("expected YYYY-MM-DDTHH:MM:SSZ".into());
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if year < 1 || !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return Err("no such date".into());
    }
    if hour > 23 || minute > 59 || second > 59 {
        return Err("no such time of day".into());
    }
    let mut rest = &s[19..];
    let mut nanos = 0i32;
    if let Some(r) = rest.strip_prefix('.') {
        let end = r.find(|c: char| !c.is_ascii_digit()).unwrap_or(r.len());
        let frac = &r[..end];
        if frac.is_empty() || frac.len() > 9 {
            return Err("the fraction of a second needs 1 to 9 digits".into());
        }
        nanos = format!("{frac:0<9}")
            .parse()
            .map_err(|_| "bad fraction".to_string())?;
        rest = &r[end..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ => {
            let ob = rest.as_bytes();
            if !rest.is_ascii() || ob.len() != 6 || !matches!(ob[0], b'+' | b'-') || ob[3] != b':' {
                return Err("expected a time zone: \"Z\" or ±HH:MM".into());
            }
            let two = |r: std::ops::Range<usize>| -> Result<i64, String> {
                let t = &rest[r];
                if t.bytes().all(|b| b.is_ascii_digit()) {
                    t.parse().map_err(|_| "bad time zone".to_string())
                } else {
                    Err("bad time zone".to_string())
                }
            };
            let (oh, om) = (two(1..3)?, two(4..6)?);
            if oh > 23 || om > 59 {
                return Err("bad time zone".into());
            }
            let o = oh * 3600 + om * 60;
            if ob[0] == b'-' {
                -o
            } else {
                o
            }
        }
    };
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset;
    if !(MIN_TIMESTAMP..=MAX_TIMESTAMP).contains(&seconds) {
        return Err("out of range (0001-01-01 to 9999-12-31)".into());
    }
    Ok((seconds, nanos))
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}
