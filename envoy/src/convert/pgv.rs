//! protoc-gen-validate rules, evaluated generically from the descriptors.
//!
//! The `validate.rules` field options, the `validate.required` oneof option
//! and the `validate.disabled` / `validate.ignored` message options of every
//! message are read once (per message type, cached) into a `MessagePlan`;
//! [`validate`] then walks a [`DynamicMessage`] with those plans, recursing
//! into every set message field, list item, map value and `Any` payload.
//!
//! Semantics follow protoc-gen-validate's generated validators: rules on a
//! scalar apply to its value (the default when unset) unless the field has
//! presence (oneof members, proto3 `optional`) and is unset; message rules
//! (`required`, duration/timestamp/any `required`) apply to the field; scalar
//! rules on a wrapper type (`google.protobuf.UInt32Value`, …) apply to the
//! wrapped value when the wrapper is set. Unlike protoc-gen-validate (and like
//! Envoy, which validates a `typed_config` when it unpacks it), the contents of
//! `Any` fields are validated too.
//!
//! See docs/VALIDATION.md for the list of rules and the error format.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, OnceLock, RwLock};

use prost_reflect::{
    DescriptorPool, DynamicMessage, ExtensionDescriptor, FieldDescriptor, Kind, MapKey,
    MessageDescriptor, OneofDescriptor, ReflectMessage, Value,
};

use super::json::{map_key_text, quote, Problems, Walk};
use super::ConfigError;
use crate::any::AnyError;

/// Validates `message` (and everything below it). `root` is the path of the
/// message itself.
pub fn validate(message: &DynamicMessage, root: &str) -> Vec<ConfigError> {
    let mut checker = Checker {
        problems: Problems::new(root),
        depth: 0,
        now: None,
    };
    checker.message(message);
    checker.problems.into_errors(root)
}

/// Recursion guard for messages that did not come from the JSON parser
/// (which already limits nesting).
const MAX_DEPTH: usize = 200;

// ---------------------------------------------------------------------------
// Plans: the rules of one message type, compiled once.

struct MessagePlan {
    /// `validate.disabled` or `validate.ignored`: nothing of this message
    /// (nor below it) is checked.
    skip: bool,
    required_oneofs: Vec<OneofDescriptor>,
    fields: Vec<FieldPlan>,
}

struct FieldPlan {
    field: FieldDescriptor,
    rules: Option<FieldRules>,
}

#[derive(Default)]
struct FieldRules {
    /// `message.skip`: do not validate the message(s) in this field.
    skip: bool,
    /// `message.required` or `duration`/`timestamp`/`any` `required`.
    required: Option<&'static str>,
    ty: Option<TypeRules>,
}

enum TypeRules {
    Num(NumRules),
    Bool(Option<bool>),
    Str(Box<StrRules>),
    Bytes(Box<BytesRules>),
    Enum(EnumRules),
    Repeated(Box<RepeatedRules>),
    Map(Box<MapRules>),
    Any(AnyRules),
    Duration(Box<TimeRules>),
    Timestamp(Box<TimeRules>),
}

/// A number of any protobuf numeric kind.
#[derive(Clone, Copy, Debug)]
enum Num {
    I(i128),
    F(f64),
}

impl PartialEq for Num {
    fn eq(&self, other: &Self) -> bool {
        self.partial_cmp(other) == Some(Ordering::Equal)
    }
}

impl PartialOrd for Num {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        match (self, other) {
            (Num::I(a), Num::I(b)) => Some(a.cmp(b)),
            _ => self.as_f64().partial_cmp(&other.as_f64()),
        }
    }
}

impl Num {
    fn as_f64(self) -> f64 {
        match self {
            Num::I(i) => i as f64,
            Num::F(f) => f,
        }
    }

    fn of(value: &Value) -> Option<Num> {
        Some(match value {
            Value::I32(v) => Num::I(*v as i128),
            Value::I64(v) => Num::I(*v as i128),
            Value::U32(v) => Num::I(*v as i128),
            Value::U64(v) => Num::I(*v as i128),
            Value::EnumNumber(v) => Num::I(*v as i128),
            Value::F32(v) => Num::F(*v as f64),
            Value::F64(v) => Num::F(*v),
            _ => return None,
        })
    }

    fn is_zero(self) -> bool {
        match self {
            Num::I(i) => i == 0,
            Num::F(f) => f == 0.0,
        }
    }
}

impl std::fmt::Display for Num {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Num::I(i) => write!(f, "{i}"),
            Num::F(v) => write!(f, "{v}"),
        }
    }
}

/// Bounds shared by numbers, durations and timestamps.
struct Bounds<T> {
    constant: Option<T>,
    lt: Option<T>,
    lte: Option<T>,
    gt: Option<T>,
    gte: Option<T>,
    in_: Vec<T>,
    not_in: Vec<T>,
}

impl<T> Default for Bounds<T> {
    fn default() -> Self {
        Self {
            constant: None,
            lt: None,
            lte: None,
            gt: None,
            gte: None,
            in_: Vec::new(),
            not_in: Vec::new(),
        }
    }
}

struct NumRules {
    /// The rule kind as written in the options: `uint32`, `double`, …
    kind: String,
    bounds: Bounds<Num>,
    ignore_empty: bool,
}

#[derive(Default)]
struct StrRules {
    constant: Option<String>,
    len: Option<u64>,
    min_len: Option<u64>,
    max_len: Option<u64>,
    len_bytes: Option<u64>,
    min_bytes: Option<u64>,
    max_bytes: Option<u64>,
    pattern: Option<(String, Option<regex::Regex>)>,
    prefix: Option<String>,
    suffix: Option<String>,
    contains: Option<String>,
    not_contains: Option<String>,
    in_: Vec<String>,
    not_in: Vec<String>,
    well_known: Option<WellKnown>,
    strict: bool,
    ignore_empty: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum WellKnown {
    Email,
    Hostname,
    Ip,
    Ipv4,
    Ipv6,
    Uri,
    UriRef,
    Address,
    Uuid,
    HeaderName,
    HeaderValue,
}

#[derive(Default)]
struct BytesRules {
    constant: Option<Vec<u8>>,
    len: Option<u64>,
    min_len: Option<u64>,
    max_len: Option<u64>,
    pattern: Option<(String, Option<regex::bytes::Regex>)>,
    prefix: Option<Vec<u8>>,
    suffix: Option<Vec<u8>>,
    contains: Option<Vec<u8>>,
    in_: Vec<Vec<u8>>,
    not_in: Vec<Vec<u8>>,
    well_known: Option<WellKnown>,
    ignore_empty: bool,
}

#[derive(Default)]
struct EnumRules {
    constant: Option<i32>,
    defined_only: bool,
    in_: Vec<i32>,
    not_in: Vec<i32>,
}

#[derive(Default)]
struct RepeatedRules {
    min_items: Option<u64>,
    max_items: Option<u64>,
    unique: bool,
    items: Option<FieldRules>,
    ignore_empty: bool,
}

#[derive(Default)]
struct MapRules {
    min_pairs: Option<u64>,
    max_pairs: Option<u64>,
    no_sparse: bool,
    keys: Option<FieldRules>,
    values: Option<FieldRules>,
    ignore_empty: bool,
}

#[derive(Default)]
struct AnyRules {
    in_: Vec<String>,
    not_in: Vec<String>,
}

/// Duration and timestamp rules, in nanoseconds.
#[derive(Default)]
struct TimeRules {
    bounds: Bounds<i128>,
    lt_now: bool,
    gt_now: bool,
    within: Option<i128>,
}

struct Extensions {
    rules: Option<ExtensionDescriptor>,
    oneof_required: Option<ExtensionDescriptor>,
    disabled: Option<ExtensionDescriptor>,
    ignored: Option<ExtensionDescriptor>,
}

impl Extensions {
    fn of(pool: &DescriptorPool) -> Self {
        Self {
            rules: pool.get_extension_by_name("validate.rules"),
            oneof_required: pool.get_extension_by_name("validate.required"),
            disabled: pool.get_extension_by_name("validate.disabled"),
            ignored: pool.get_extension_by_name("validate.ignored"),
        }
    }
}

fn ext_flag(options: &DynamicMessage, ext: &Option<ExtensionDescriptor>) -> bool {
    ext.as_ref().is_some_and(|e| {
        options.has_extension(e) && options.get_extension(e).as_bool() == Some(true)
    })
}

/// The plan of `desc`, compiled on first use.
fn plan(desc: &MessageDescriptor) -> Arc<MessagePlan> {
    type Cache = RwLock<HashMap<String, Arc<MessagePlan>>>;
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(p) = cache
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .get(desc.full_name())
    {
        return p.clone();
    }
    let compiled = Arc::new(compile_message(desc));
    cache
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .entry(desc.full_name().to_string())
        .or_insert(compiled)
        .clone()
}

fn compile_message(desc: &MessageDescriptor) -> MessagePlan {
    let ext = Extensions::of(desc.parent_pool());
    let options = desc.options();
    let skip = ext_flag(&options, &ext.disabled) || ext_flag(&options, &ext.ignored);
    let required_oneofs = desc
        .oneofs()
        .filter(|o| !o.is_synthetic() && ext_flag(&o.options(), &ext.oneof_required))
        .collect();
    let mut fields = Vec::new();
    for field in desc.fields() {
        let options = field.options();
        let rules = ext.rules.as_ref().and_then(|e| {
            if !options.has_extension(e) {
                return None;
            }
            options
                .get_extension(e)
                .as_message()
                .map(compile_field_rules)
        });
        if rules.is_some() || needs_recursion(&field) {
            fields.push(FieldPlan { field, rules });
        }
    }
    MessagePlan {
        skip,
        required_oneofs,
        fields,
    }
}

/// Whether the values of `field` are messages that may carry rules.
fn needs_recursion(field: &FieldDescriptor) -> bool {
    let kind = if field.is_map() {
        match field.kind() {
            Kind::Message(entry) => entry.map_entry_value_field().kind(),
            k => k,
        }
    } else {
        field.kind()
    };
    match kind {
        Kind::Message(m) => !is_plain_wkt(&m),
        _ => false,
    }
}

/// google.protobuf messages other than Any: they carry no rules inside.
fn is_plain_wkt(desc: &MessageDescriptor) -> bool {
    desc.package_name() == "google.protobuf" && desc.full_name() != "google.protobuf.Any"
}

// Reading the rule messages ------------------------------------------------

fn get<'a>(m: &'a DynamicMessage, name: &str) -> Option<Cow<'a, Value>> {
    if m.has_field_by_name(name) {
        m.get_field_by_name(name)
    } else {
        None
    }
}

fn get_u64(m: &DynamicMessage, name: &str) -> Option<u64> {
    get(m, name).and_then(|v| v.as_u64())
}

fn get_flag(m: &DynamicMessage, name: &str) -> bool {
    get(m, name).and_then(|v| v.as_bool()).unwrap_or(false)
}

fn get_str(m: &DynamicMessage, name: &str) -> Option<String> {
    get(m, name).and_then(|v| v.as_str().map(str::to_owned))
}

fn get_bytes(m: &DynamicMessage, name: &str) -> Option<Vec<u8>> {
    get(m, name).and_then(|v| v.as_bytes().map(|b| b.to_vec()))
}

fn get_list(m: &DynamicMessage, name: &str) -> Vec<Value> {
    get(m, name)
        .and_then(|v| v.as_list().map(<[Value]>::to_vec))
        .unwrap_or_default()
}

/// A Duration or Timestamp message as nanoseconds.
fn nanos_of(m: &DynamicMessage) -> i128 {
    let seconds = m
        .get_field_by_name("seconds")
        .and_then(|v| v.as_i64())
        .unwrap_or(0);
    let nanos = m
        .get_field_by_name("nanos")
        .and_then(|v| v.as_i32())
        .unwrap_or(0);
    seconds as i128 * 1_000_000_000 + nanos as i128
}

fn get_time(m: &DynamicMessage, name: &str) -> Option<i128> {
    get(m, name).and_then(|v| v.as_message().map(nanos_of))
}

fn compile_field_rules(m: &DynamicMessage) -> FieldRules {
    let mut rules = FieldRules::default();
    if let Some(msg) = get(m, "message") {
        if let Some(msg) = msg.as_message() {
            rules.skip = get_flag(msg, "skip");
            if get_flag(msg, "required") {
                rules.required = Some("message.required");
            }
        }
    }
    let Some(type_oneof) = m.descriptor().oneofs().find(|o| o.name() == "type") else {
        return rules;
    };
    for f in type_oneof.fields() {
        if !m.has_field(&f) {
            continue;
        }
        let value = m.get_field(&f);
        let Some(r) = value.as_message() else {
            continue;
        };
        rules.ty = Some(match f.name() {
            "bool" => TypeRules::Bool(get(r, "const").and_then(|v| v.as_bool())),
            "string" => TypeRules::Str(Box::new(compile_string(r))),
            "bytes" => TypeRules::Bytes(Box::new(compile_bytes(r))),
            "enum" => TypeRules::Enum(EnumRules {
                constant: get(r, "const").and_then(|v| v.as_i32()),
                defined_only: get_flag(r, "defined_only"),
                in_: get_list(r, "in").iter().filter_map(Value::as_i32).collect(),
                not_in: get_list(r, "not_in")
                    .iter()
                    .filter_map(Value::as_i32)
                    .collect(),
            }),
            "repeated" => TypeRules::Repeated(Box::new(RepeatedRules {
                min_items: get_u64(r, "min_items"),
                max_items: get_u64(r, "max_items"),
                unique: get_flag(r, "unique"),
                items: get(r, "items").and_then(|v| v.as_message().map(compile_field_rules)),
                ignore_empty: get_flag(r, "ignore_empty"),
            })),
            "map" => TypeRules::Map(Box::new(MapRules {
                min_pairs: get_u64(r, "min_pairs"),
                max_pairs: get_u64(r, "max_pairs"),
                no_sparse: get_flag(r, "no_sparse"),
                keys: get(r, "keys").and_then(|v| v.as_message().map(compile_field_rules)),
                values: get(r, "values").and_then(|v| v.as_message().map(compile_field_rules)),
                ignore_empty: get_flag(r, "ignore_empty"),
            })),
            "any" => {
                if get_flag(r, "required") {
                    rules.required = Some("any.required");
                }
                TypeRules::Any(AnyRules {
                    in_: get_list(r, "in")
                        .iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect(),
                    not_in: get_list(r, "not_in")
                        .iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect(),
                })
            }
            "duration" | "timestamp" => {
                let duration = f.name() == "duration";
                if get_flag(r, "required") {
                    rules.required = Some(if duration {
                        "duration.required"
                    } else {
                        "timestamp.required"
                    });
                }
                let times = |name: &str| -> Vec<i128> {
                    get_list(r, name)
                        .iter()
                        .filter_map(|v| v.as_message().map(nanos_of))
                        .collect()
                };
                let t = TimeRules {
                    bounds: Bounds {
                        constant: get_time(r, "const"),
                        lt: get_time(r, "lt"),
                        lte: get_time(r, "lte"),
                        gt: get_time(r, "gt"),
                        gte: get_time(r, "gte"),
                        in_: times("in"),
                        not_in: times("not_in"),
                    },
                    lt_now: get_flag(r, "lt_now"),
                    gt_now: get_flag(r, "gt_now"),
                    within: get_time(r, "within"),
                };
                if duration {
                    TypeRules::Duration(Box::new(t))
                } else {
                    TypeRules::Timestamp(Box::new(t))
                }
            }
            numeric => {
                let num = |name: &str| get(r, name).and_then(|v| Num::of(&v));
                let nums = |name: &str| get_list(r, name).iter().filter_map(Num::of).collect();
                TypeRules::Num(NumRules {
                    kind: numeric.to_string(),
                    bounds: Bounds {
                        constant: num("const"),
                        lt: num("lt"),
                        lte: num("lte"),
                        gt: num("gt"),
                        gte: num("gte"),
                        in_: nums("in"),
                        not_in: nums("not_in"),
                    },
                    ignore_empty: get_flag(r, "ignore_empty"),
                })
            }
        });
    }
    rules
}

fn compile_string(r: &DynamicMessage) -> StrRules {
    let strings = |name: &str| -> Vec<String> {
        get_list(r, name)
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect()
    };
    let well_known = [
        ("email", WellKnown::Email),
        ("hostname", WellKnown::Hostname),
        ("ip", WellKnown::Ip),
        ("ipv4", WellKnown::Ipv4),
        ("ipv6", WellKnown::Ipv6),
        ("uri", WellKnown::Uri),
        ("uri_ref", WellKnown::UriRef),
        ("address", WellKnown::Address),
        ("uuid", WellKnown::Uuid),
    ]
    .into_iter()
    .find(|(name, _)| get_flag(r, name))
    .map(|(_, w)| w)
    .or_else(
        || match get(r, "well_known_regex").and_then(|v| v.as_enum_number()) {
            Some(1) => Some(WellKnown::HeaderName),
            Some(2) => Some(WellKnown::HeaderValue),
            _ => None,
        },
    );
    StrRules {
        constant: get_str(r, "const"),
        len: get_u64(r, "len"),
        min_len: get_u64(r, "min_len"),
        max_len: get_u64(r, "max_len"),
        len_bytes: get_u64(r, "len_bytes"),
        min_bytes: get_u64(r, "min_bytes"),
        max_bytes: get_u64(r, "max_bytes"),
        pattern: get_str(r, "pattern").map(|p| {
            let re = regex::Regex::new(&p).ok();
            (p, re)
        }),
        prefix: get_str(r, "prefix"),
        suffix: get_str(r, "suffix"),
        contains: get_str(r, "contains"),
        not_contains: get_str(r, "not_contains"),
        in_: strings("in"),
        not_in: strings("not_in"),
        well_known,
        // `strict` defaults to true (proto2 default), which `get_field` gives.
        strict: r
            .get_field_by_name("strict")
            .and_then(|v| v.as_bool())
            .unwrap_or(true),
        ignore_empty: get_flag(r, "ignore_empty"),
    }
}

fn compile_bytes(r: &DynamicMessage) -> BytesRules {
    let list = |name: &str| -> Vec<Vec<u8>> {
        get_list(r, name)
            .iter()
            .filter_map(|v| v.as_bytes().map(|b| b.to_vec()))
            .collect()
    };
    let well_known = [
        ("ip", WellKnown::Ip),
        ("ipv4", WellKnown::Ipv4),
        ("ipv6", WellKnown::Ipv6),
    ]
    .into_iter()
    .find(|(name, _)| get_flag(r, name))
    .map(|(_, w)| w);
    BytesRules {
        constant: get_bytes(r, "const"),
        len: get_u64(r, "len"),
        min_len: get_u64(r, "min_len"),
        max_len: get_u64(r, "max_len"),
        pattern: get_str(r, "pattern").map(|p| {
            let re = regex::bytes::Regex::new(&p).ok();
            (p, re)
        }),
        prefix: get_bytes(r, "prefix"),
        suffix: get_bytes(r, "suffix"),
        contains: get_bytes(r, "contains"),
        in_: list("in"),
        not_in: list("not_in"),
        well_known,
        ignore_empty: get_flag(r, "ignore_empty"),
    }
}

// ---------------------------------------------------------------------------
// Checking.

struct Checker {
    problems: Problems,
    depth: usize,
    /// "now" in Unix nanoseconds, taken once per validation when needed.
    now: Option<i128>,
}

impl Walk for Checker {
    fn problems(&mut self) -> &mut Problems {
        &mut self.problems
    }
}

impl Checker {
    fn fail(&mut self, detail: impl std::fmt::Display, rule: impl std::fmt::Display) {
        self.problems.add(format!("{detail} ({rule})"));
    }

    fn now(&mut self) -> i128 {
        *self.now.get_or_insert_with(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as i128)
                .unwrap_or(0)
        })
    }

    fn message(&mut self, message: &DynamicMessage) {
        let desc = message.descriptor();
        if desc.full_name() == "google.protobuf.Any" {
            self.any_payload(message);
            return;
        }
        if is_plain_wkt(&desc) || self.depth >= MAX_DEPTH {
            return;
        }
        let plan = plan(&desc);
        if plan.skip {
            return;
        }
        self.depth += 1;
        for oneof in &plan.required_oneofs {
            if !oneof.fields().any(|f| message.has_field(&f)) {
                let names: Vec<String> = oneof.fields().map(|f| f.name().to_string()).collect();
                self.fail(
                    format!("one of {} is required", names.join(", ")),
                    format_args!("oneof {} validate.required", oneof.name()),
                );
            }
        }
        for fp in &plan.fields {
            self.at_field(fp.field.name(), |c| c.field(message, fp));
        }
        self.depth -= 1;
    }

    fn any_payload(&mut self, any: &DynamicMessage) {
        let url = crate::any::type_url(any);
        if url.is_empty() {
            return;
        }
        match crate::any::unpack(any) {
            Ok(payload) => self.message(&payload),
            Err(AnyError::UnknownType(_)) => self.at(".@type", |c| {
                c.fail(format!("unknown type {}", quote(&url)), "Any.type_url")
            }),
            Err(AnyError::Decode { source, .. }) => self.fail(
                format!("the payload cannot be decoded: {source}"),
                "Any.value",
            ),
        }
    }

    fn field(&mut self, message: &DynamicMessage, fp: &FieldPlan) {
        let field = &fp.field;
        let rules = fp.rules.as_ref();
        let value = message.get_field(field);
        if field.is_map() {
            let Some(map) = value.as_map() else { return };
            let Kind::Message(entry) = field.kind() else {
                return;
            };
            let key_kind = entry.map_entry_key_field().kind();
            let value_kind = entry.map_entry_value_field().kind();
            let map_rules = match rules.and_then(|r| r.ty.as_ref()) {
                Some(TypeRules::Map(m)) => Some(&**m),
                _ => None,
            };
            if let Some(r) = map_rules {
                if !(r.ignore_empty && map.is_empty()) {
                    self.count(
                        "map.min_pairs",
                        "pair",
                        map.len(),
                        r.min_pairs,
                        r.max_pairs,
                        "map.max_pairs",
                    );
                }
                // `no_sparse` needs unset message values, which a parsed
                // map cannot have: every entry has a value.
                let _ = r.no_sparse;
            }
            // Sorted for a stable report.
            let mut entries: Vec<(&MapKey, &Value)> = map.iter().collect();
            entries.sort_by_cached_key(|e| map_key_text(e.0));
            for (k, v) in entries {
                let key = map_key_text(k);
                self.at(
                    &format!("[{}]", serde_json::Value::from(key.as_str())),
                    |c| {
                        if let Some(kr) = map_rules.and_then(|r| r.keys.as_ref()) {
                            let kv = Value::from(k.clone());
                            c.single(Some(kr), &key_kind, &kv, "map key ");
                        }
                        c.single(
                            map_rules.and_then(|r| r.values.as_ref()),
                            &value_kind,
                            v,
                            "",
                        );
                    },
                );
            }
        } else if field.is_list() {
            let Some(items) = value.as_list() else { return };
            let kind = field.kind();
            let rep = match rules.and_then(|r| r.ty.as_ref()) {
                Some(TypeRules::Repeated(r)) => Some(&**r),
                _ => None,
            };
            if let Some(r) = rep {
                if !(r.ignore_empty && items.is_empty()) {
                    self.count(
                        "repeated.min_items",
                        "item",
                        items.len(),
                        r.min_items,
                        r.max_items,
                        "repeated.max_items",
                    );
                    if r.unique {
                        self.unique(items);
                    }
                }
            }
            for (i, item) in items.iter().enumerate() {
                self.at(&format!("[{i}]"), |c| {
                    c.single(rep.and_then(|r| r.items.as_ref()), &kind, item, "")
                });
            }
        } else {
            let set = message.has_field(field);
            if field.supports_presence() && !set {
                if field.containing_oneof().is_none() {
                    if let Some(rule) = rules.and_then(|r| r.required) {
                        self.fail("is required", rule);
                    }
                }
                return;
            }
            self.single(rules, &field.kind(), &value, "");
        }
    }

    /// `min`/`max` counts of a list or map.
    fn count(
        &mut self,
        min_rule: &str,
        what: &str,
        n: usize,
        min: Option<u64>,
        max: Option<u64>,
        max_rule: &str,
    ) {
        if let Some(min) = min {
            if (n as u64) < min {
                self.fail(
                    format!("needs at least {}, has {n}", plural(min, what)),
                    format_args!("{min_rule} = {min}"),
                );
            }
        }
        if let Some(max) = max {
            if (n as u64) > max {
                self.fail(
                    format!("may have at most {}, has {n}", plural(max, what)),
                    format_args!("{max_rule} = {max}"),
                );
            }
        }
    }

    fn unique(&mut self, items: &[Value]) {
        let mut seen: HashSet<String> = HashSet::new();
        let mut seen_values: Vec<&Value> = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let duplicate = match unique_key(item) {
                Some(key) => !seen.insert(key),
                None => {
                    let dup = seen_values.contains(&item);
                    seen_values.push(item);
                    dup
                }
            };
            if duplicate {
                self.at(&format!("[{i}]"), |c| {
                    c.fail(
                        format!("{} is repeated", describe_value(item)),
                        "repeated.unique",
                    )
                });
            }
        }
    }

    /// One present value of `kind` with its rules (`what` prefixes the
    /// description, for map keys).
    fn single(&mut self, rules: Option<&FieldRules>, kind: &Kind, value: &Value, what: &str) {
        if let Some(ty) = rules.and_then(|r| r.ty.as_ref()) {
            self.type_rules(ty, kind, value, what);
        }
        if let Value::Message(m) = value {
            if !rules.is_some_and(|r| r.skip) {
                self.message(m);
            }
        }
    }

    fn type_rules(&mut self, ty: &TypeRules, kind: &Kind, value: &Value, what: &str) {
        // Scalar rules on a wrapper message apply to the wrapped value.
        let unwrapped;
        let value = match (value, ty) {
            (
                Value::Message(m),
                TypeRules::Num(_) | TypeRules::Bool(_) | TypeRules::Str(_) | TypeRules::Bytes(_),
            ) => match m.get_field_by_name("value") {
                Some(v) => {
                    unwrapped = v.into_owned();
                    &unwrapped
                }
                None => return,
            },
            _ => value,
        };
        match ty {
            TypeRules::Num(r) => {
                if let Some(n) = Num::of(value) {
                    if !(r.ignore_empty && n.is_zero()) {
                        self.bounds(&r.bounds, &n, &r.kind, what, |n| n.to_string());
                    }
                }
            }
            TypeRules::Bool(Some(c)) => {
                if let Some(b) = value.as_bool() {
                    if b != *c {
                        self.fail(
                            format!("{what}must be {c}"),
                            format_args!("bool.const = {c}"),
                        );
                    }
                }
            }
            TypeRules::Bool(None) => {}
            TypeRules::Str(r) => {
                if let Some(s) = value.as_str() {
                    self.string(r, s, what);
                }
            }
            TypeRules::Bytes(r) => {
                if let Some(b) = value.as_bytes() {
                    self.bytes(r, b, what);
                }
            }
            TypeRules::Enum(r) => {
                if let (Some(n), Kind::Enum(desc)) = (value.as_enum_number(), kind) {
                    let name = |n: i32| {
                        desc.get_value(n)
                            .map(|v| v.name().to_string())
                            .unwrap_or_else(|| n.to_string())
                    };
                    if let Some(c) = r.constant {
                        if n != c {
                            self.fail(
                                format!("{what}must be {}, is {}", name(c), name(n)),
                                format_args!("enum.const = {c}"),
                            );
                        }
                    }
                    if r.defined_only && desc.get_value(n).is_none() {
                        self.fail(
                            format!("{what}{n} is not a value of {}", desc.full_name()),
                            "enum.defined_only",
                        );
                    }
                    if !r.in_.is_empty() && !r.in_.contains(&n) {
                        let allowed: Vec<String> = r.in_.iter().map(|n| name(*n)).collect();
                        self.fail(
                            format!("{what}{} is not one of {}", name(n), allowed.join(", ")),
                            "enum.in",
                        );
                    }
                    if r.not_in.contains(&n) {
                        self.fail(
                            format!("{what}{} is not allowed here", name(n)),
                            "enum.not_in",
                        );
                    }
                }
            }
            TypeRules::Duration(r) => {
                if let Value::Message(m) = value {
                    let d = nanos_of(m);
                    self.bounds(&r.bounds, &d, "duration", what, |n| format_duration(*n));
                }
            }
            TypeRules::Timestamp(r) => {
                if let Value::Message(m) = value {
                    let t = nanos_of(m);
                    self.bounds(&r.bounds, &t, "timestamp", what, |n| format_timestamp(*n));
                    if r.lt_now || r.gt_now || r.within.is_some() {
                        let now = self.now();
                        if r.lt_now && t >= now {
                            self.fail(
                                format!("{what}must be in the past, is {}", format_timestamp(t)),
                                "timestamp.lt_now",
                            );
                        }
                        if r.gt_now && t <= now {
                            self.fail(
                                format!("{what}must be in the future, is {}", format_timestamp(t)),
                                "timestamp.gt_now",
                            );
                        }
                        if let Some(w) = r.within {
                            if (t - now).abs() > w {
                                self.fail(
                                    format!(
                                        "{what}must be within {} of now, is {}",
                                        format_duration(w),
                                        format_timestamp(t)
                                    ),
                                    format_args!("timestamp.within = {}", format_duration(w)),
                                );
                            }
                        }
                    }
                }
            }
            TypeRules::Any(r) => {
                if let Value::Message(m) = value {
                    let url = m
                        .get_field_by_name("type_url")
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_default();
                    if !r.in_.is_empty() && !r.in_.contains(&url) {
                        self.fail(
                            format!(
                                "{what}type {} is not one of {}",
                                quote(&url),
                                r.in_.join(", ")
                            ),
                            "any.in",
                        );
                    }
                    if r.not_in.contains(&url) {
                        self.fail(
                            format!("{what}type {} is not allowed here", quote(&url)),
                            "any.not_in",
                        );
                    }
                }
            }
            // Handled by `field`, which sees the whole list or map.
            TypeRules::Repeated(_) | TypeRules::Map(_) => {}
        }
    }

    /// const / gt / gte / lt / lte (with protoc-gen-validate's exclusive
    /// ranges when the lower bound is above the upper one) / in / not_in.
    fn bounds<T: PartialOrd + Copy>(
        &mut self,
        b: &Bounds<T>,
        v: &T,
        kind: &str,
        what: &str,
        show: impl Fn(&T) -> String,
    ) {
        if let Some(c) = &b.constant {
            if v != c {
                self.fail(
                    format!("{what}must be {}, is {}", show(c), show(v)),
                    format_args!("{kind}.const = {}", show(c)),
                );
            }
        }
        let lower = match (&b.gt, &b.gte) {
            (Some(x), _) => Some((x, false)),
            (None, Some(x)) => Some((x, true)),
            _ => None,
        };
        let upper = match (&b.lt, &b.lte) {
            (Some(x), _) => Some((x, false)),
            (None, Some(x)) => Some((x, true)),
            _ => None,
        };
        let above = |l: &T, inclusive: bool| if inclusive { v >= l } else { v > l };
        let below = |u: &T, inclusive: bool| if inclusive { v <= u } else { v < u };
        let lower_text =
            |l: &T, inclusive: bool| format!("{} {}", if inclusive { ">=" } else { ">" }, show(l));
        let upper_text =
            |u: &T, inclusive: bool| format!("{} {}", if inclusive { "<=" } else { "<" }, show(u));
        let rule = |op: &str, x: &T| format!("{kind}.{op} = {}", show(x));
        let lower_rule = |inclusive: bool, x: &T| rule(if inclusive { "gte" } else { "gt" }, x);
        let upper_rule = |inclusive: bool, x: &T| rule(if inclusive { "lte" } else { "lt" }, x);
        match (lower, upper) {
            (None, None) => {}
            (Some((l, li)), None) => {
                if !above(l, li) {
                    self.fail(
                        format!("{what}must be {}, is {}", lower_text(l, li), show(v)),
                        lower_rule(li, l),
                    );
                }
            }
            (None, Some((u, ui))) => {
                if !below(u, ui) {
                    self.fail(
                        format!("{what}must be {}, is {}", upper_text(u, ui), show(v)),
                        upper_rule(ui, u),
                    );
                }
            }
            (Some((l, li)), Some((u, ui))) => {
                let rules = format!("{}, {}", lower_rule(li, l), upper_rule(ui, u));
                if u > l {
                    if !(above(l, li) && below(u, ui)) {
                        self.fail(
                            format!(
                                "{what}must be {} and {}, is {}",
                                lower_text(l, li),
                                upper_text(u, ui),
                                show(v)
                            ),
                            rules,
                        );
                    }
                } else if !(above(l, li) || below(u, ui)) {
                    self.fail(
                        format!(
                            "{what}must be {} or {}, is {}",
                            upper_text(u, ui),
                            lower_text(l, li),
                            show(v)
                        ),
                        rules,
                    );
                }
            }
        }
        if !b.in_.is_empty() && !b.in_.iter().any(|x| x == v) {
            let allowed: Vec<String> = b.in_.iter().map(&show).collect();
            self.fail(
                format!("{what}{} is not one of {}", show(v), allowed.join(", ")),
                format_args!("{kind}.in"),
            );
        }
        if b.not_in.iter().any(|x| x == v) {
            self.fail(
                format!("{what}{} is not allowed here", show(v)),
                format_args!("{kind}.not_in"),
            );
        }
    }

    fn string(&mut self, r: &StrRules, s: &str, what: &str) {
        if r.ignore_empty && s.is_empty() {
            return;
        }
        let shown = quote(s);
        if let Some(c) = &r.constant {
            if s != c {
                self.fail(
                    format!("{what}must be {}, is {shown}", quote(c)),
                    format_args!("string.const = {}", quote(c)),
                );
            }
        }
        let chars = s.chars().count() as u64;
        let bytes = s.len() as u64;
        if let Some(n) = r.len {
            if chars != n {
                self.fail(
                    format!("{what}must be exactly {n} characters long, has {chars}"),
                    format_args!("string.len = {n}"),
                );
            }
        }
        if let Some(n) = r.min_len {
            if chars < n {
                let detail = if chars == 0 {
                    format!("{what}must not be empty")
                } else {
                    format!("{what}must be at least {n} characters long, has {chars}")
                };
                self.fail(detail, format_args!("string.min_len = {n}"));
            }
        }
        if let Some(n) = r.max_len {
            if chars > n {
                self.fail(
                    format!("{what}must be at most {n} characters long, has {chars}"),
                    format_args!("string.max_len = {n}"),
                );
            }
        }
        if let Some(n) = r.len_bytes {
            if bytes != n {
                self.fail(
                    format!("{what}must be exactly {n} bytes long, has {bytes}"),
                    format_args!("string.len_bytes = {n}"),
                );
            }
        }
        if let Some(n) = r.min_bytes {
            if bytes < n {
                self.fail(
                    format!("{what}must be at least {n} bytes long, has {bytes}"),
                    format_args!("string.min_bytes = {n}"),
                );
            }
        }
        if let Some(n) = r.max_bytes {
            if bytes > n {
                self.fail(
                    format!("{what}must be at most {n} bytes long, has {bytes}"),
                    format_args!("string.max_bytes = {n}"),
                );
            }
        }
        if let Some((pattern, Some(re))) = &r.pattern {
            if !re.is_match(s) {
                self.fail(
                    format!(
                        "{what}{shown} does not match the pattern {}",
                        quote(pattern)
                    ),
                    "string.pattern",
                );
            }
        }
        if let Some(p) = &r.prefix {
            if !s.starts_with(p.as_str()) {
                self.fail(
                    format!("{what}{shown} does not start with {}", quote(p)),
                    "string.prefix",
                );
            }
        }
        if let Some(p) = &r.suffix {
            if !s.ends_with(p.as_str()) {
                self.fail(
                    format!("{what}{shown} does not end with {}", quote(p)),
                    "string.suffix",
                );
            }
        }
        if let Some(p) = &r.contains {
            if !s.contains(p.as_str()) {
                self.fail(
                    format!("{what}{shown} does not contain {}", quote(p)),
                    "string.contains",
                );
            }
        }
        if let Some(p) = &r.not_contains {
            if s.contains(p.as_str()) {
                self.fail(
                    format!("{what}{shown} must not contain {}", quote(p)),
                    "string.not_contains",
                );
            }
        }
        if !r.in_.is_empty() && !r.in_.iter().any(|x| x == s) {
            let allowed: Vec<String> = r.in_.iter().map(|x| quote(x)).collect();
            self.fail(
                format!("{what}{shown} is not one of {}", allowed.join(", ")),
                "string.in",
            );
        }
        if r.not_in.iter().any(|x| x == s) {
            self.fail(
                format!("{what}{shown} is not allowed here"),
                "string.not_in",
            );
        }
        if let Some(w) = r.well_known {
            let (ok, rule, expected) = match w {
                WellKnown::Email => (is_email(s), "string.email", "an email address"),
                WellKnown::Hostname => (is_hostname(s), "string.hostname", "a hostname"),
                WellKnown::Ip => (s.parse::<IpAddr>().is_ok(), "string.ip", "an IP address"),
                WellKnown::Ipv4 => (
                    s.parse::<Ipv4Addr>().is_ok(),
                    "string.ipv4",
                    "an IPv4 address",
                ),
                WellKnown::Ipv6 => (
                    s.parse::<Ipv6Addr>().is_ok(),
                    "string.ipv6",
                    "an IPv6 address",
                ),
                WellKnown::Uri => (is_uri(s, true), "string.uri", "an absolute URI"),
                WellKnown::UriRef => (is_uri(s, false), "string.uri_ref", "a URI reference"),
                WellKnown::Address => (
                    s.parse::<IpAddr>().is_ok() || is_hostname(s),
                    "string.address",
                    "a hostname or an IP address",
                ),
                WellKnown::Uuid => (is_uuid(s), "string.uuid", "a UUID"),
                WellKnown::HeaderName => (
                    is_header_name(s, r.strict),
                    if r.strict {
                        "string.well_known_regex = HTTP_HEADER_NAME"
                    } else {
                        "string.well_known_regex = HTTP_HEADER_NAME, strict = false"
                    },
                    "a valid HTTP header name",
                ),
                WellKnown::HeaderValue => (
                    is_header_value(s, r.strict),
                    if r.strict {
                        "string.well_known_regex = HTTP_HEADER_VALUE"
                    } else {
                        "string.well_known_regex = HTTP_HEADER_VALUE, strict = false"
                    },
                    "a valid HTTP header value",
                ),
            };
            if !ok {
                self.fail(format!("{what}{shown} is not {expected}"), rule);
            }
        }
    }

    fn bytes(&mut self, r: &BytesRules, b: &[u8], what: &str) {
        if r.ignore_empty && b.is_empty() {
            return;
        }
        let n = b.len() as u64;
        if let Some(c) = &r.constant {
            if b != c.as_slice() {
                self.fail(format!("{what}must be {}", show_bytes(c)), "bytes.const");
            }
        }
        if let Some(l) = r.len {
            if n != l {
                self.fail(
                    format!("{what}must be exactly {l} bytes long, has {n}"),
                    format_args!("bytes.len = {l}"),
                );
            }
        }
        if let Some(l) = r.min_len {
            if n < l {
                self.fail(
                    format!("{what}must be at least {l} bytes long, has {n}"),
                    format_args!("bytes.min_len = {l}"),
                );
            }
        }
        if let Some(l) = r.max_len {
            if n > l {
                self.fail(
                    format!("{what}must be at most {l} bytes long, has {n}"),
                    format_args!("bytes.max_len = {l}"),
                );
            }
        }
        if let Some((pattern, Some(re))) = &r.pattern {
            if !re.is_match(b) {
                self.fail(
                    format!(
                        "{what}{} does not match the pattern {}",
                        show_bytes(b),
                        quote(pattern)
                    ),
                    "bytes.pattern",
                );
            }
        }
        if let Some(p) = &r.prefix {
            if !b.starts_with(p) {
                self.fail(
                    format!("{what}does not start with {}", show_bytes(p)),
                    "bytes.prefix",
                );
            }
        }
        if let Some(p) = &r.suffix {
            if !b.ends_with(p) {
                self.fail(
                    format!("{what}does not end with {}", show_bytes(p)),
                    "bytes.suffix",
                );
            }
        }
        if let Some(p) = &r.contains {
            if !p.is_empty() && !b.windows(p.len()).any(|w| w == p.as_slice()) {
                self.fail(
                    format!("{what}does not contain {}", show_bytes(p)),
                    "bytes.contains",
                );
            }
        }
        if !r.in_.is_empty() && !r.in_.iter().any(|x| x == b) {
            self.fail(
                format!("{what}{} is not one of the allowed values", show_bytes(b)),
                "bytes.in",
            );
        }
        if r.not_in.iter().any(|x| x == b) {
            self.fail(
                format!("{what}{} is not allowed here", show_bytes(b)),
                "bytes.not_in",
            );
        }
        match r.well_known {
            Some(WellKnown::Ip) if n != 4 && n != 16 => self.fail(
                format!("{what}must be an IP address (4 or 16 bytes), has {n} bytes"),
                "bytes.ip",
            ),
            Some(WellKnown::Ipv4) if n != 4 => self.fail(
                format!("{what}must be an IPv4 address (4 bytes), has {n} bytes"),
                "bytes.ipv4",
            ),
            Some(WellKnown::Ipv6) if n != 16 => self.fail(
                format!("{what}must be an IPv6 address (16 bytes), has {n} bytes"),
                "bytes.ipv6",
            ),
            _ => {}
        }
    }
}

fn plural(n: u64, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

/// A hashable form of a scalar, for `repeated.unique`.
fn unique_key(v: &Value) -> Option<String> {
    Some(match v {
        Value::Bool(b) => format!("b{b}"),
        Value::I32(n) => format!("i{n}"),
        Value::I64(n) => format!("i{n}"),
        Value::U32(n) => format!("i{n}"),
        Value::U64(n) => format!("i{n}"),
        Value::F32(f) => format!("f{}", f.to_bits()),
        Value::F64(f) => format!("f{}", f.to_bits()),
        Value::EnumNumber(n) => format!("e{n}"),
        Value::String(s) => format!("s{s}"),
        Value::Bytes(b) => format!("y{b:?}"),
        _ => return None,
    })
}

fn describe_value(v: &Value) -> String {
    match v {
        Value::String(s) => quote(s),
        Value::Bytes(b) => show_bytes(b),
        Value::Message(_) | Value::List(_) | Value::Map(_) => "this item".to_string(),
        other => Num::of(other)
            .map(|n| n.to_string())
            .or_else(|| other.as_bool().map(|b| b.to_string()))
            .unwrap_or_default(),
    }
}

fn show_bytes(b: &[u8]) -> String {
    match std::str::from_utf8(b) {
        Ok(s) => format!("b{}", quote(s)),
        Err(_) => format!("{} bytes", b.len()),
    }
}

/// Nanoseconds as a proto3 JSON duration (`1.5s`).
fn format_duration(n: i128) -> String {
    let sign = if n < 0 { "-" } else { "" };
    let n = n.unsigned_abs();
    let (s, frac) = (n / 1_000_000_000, n % 1_000_000_000);
    if frac == 0 {
        format!("{sign}{s}s")
    } else {
        let f = format!("{frac:09}");
        format!("{sign}{s}.{}s", f.trim_end_matches('0'))
    }
}

/// Unix nanoseconds as RFC 3339.
pub(crate) fn format_timestamp(n: i128) -> String {
    let secs = n.div_euclid(1_000_000_000) as i64;
    let nanos = n.rem_euclid(1_000_000_000);
    let days = secs.div_euclid(86_400);
    let tod = secs.rem_euclid(86_400);
    // Inverse of days_from_civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let frac = if nanos == 0 {
        String::new()
    } else {
        format!(".{}", format!("{nanos:09}").trim_end_matches('0'))
    };
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}{frac}Z",
        tod / 3600,
        tod % 3600 / 60,
        tod % 60
    )
}

// Well-known string formats -------------------------------------------------

/// RFC 1034 host names: dot-separated labels of letters, digits and hyphens,
/// 1 to 63 characters, not starting or ending with a hyphen; at most 253
/// characters; one trailing dot allowed.
pub(crate) fn is_hostname(s: &str) -> bool {
    let s = s.strip_suffix('.').unwrap_or(s);
    if s.is_empty() || s.len() > 253 {
        return false;
    }
    s.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    })
}

fn is_email(s: &str) -> bool {
    // "Name <local@domain>" is accepted as protoc-gen-validate does.
    let addr = match (s.find('<'), s.strip_suffix('>')) {
        (Some(i), Some(inner)) => &inner[i + 1..],
        _ => s,
    };
    if addr.len() > 254 {
        return false;
    }
    let Some((local, domain)) = addr.rsplit_once('@') else {
        return false;
    };
    !local.is_empty()
        && local.len() <= 64
        && !local
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '@')
        && is_hostname(domain)
}

fn is_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// RFC 3986 URIs (`absolute`) and URI references: a valid scheme where one is
/// required, only characters URIs may contain, well-formed `%XX` escapes.
fn is_uri(s: &str, absolute: bool) -> bool {
    let scheme_end = s.find(':').filter(|&i| {
        let scheme = &s[..i];
        !scheme.is_empty()
            && scheme.as_bytes()[0].is_ascii_alphabetic()
            && scheme
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
            // A ':' after a '/', '?' or '#' is not a scheme delimiter.
            && !scheme.contains(['/', '?', '#'])
    });
    if absolute && scheme_end.is_none() {
        return false;
    }
    if s.matches('#').count() > 1 {
        return false;
    }
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'%' {
            if i + 2 >= b.len() {
                return false;
            }
            if !(b[i + 1].is_ascii_hexdigit() && b[i + 2].is_ascii_hexdigit()) {
                return false;
            }
            i += 3;
            continue;
        }
        let allowed = c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b':'
                    | b'/'
                    | b'?'
                    | b'#'
                    | b'['
                    | b']'
                    | b'@'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
            );
        if !allowed {
            return false;
        }
        i += 1;
    }
    true
}

/// protoc-gen-validate's HTTP_HEADER_NAME: strict `^:?[0-9a-zA-Z!#$%&'*+-.^_|~\x60]+$`,
/// loose: no NUL, CR or LF.
fn is_header_name(s: &str, strict: bool) -> bool {
    if !strict {
        return !s.contains(['\0', '\r', '\n']);
    }
    let body = s.strip_prefix(':').unwrap_or(s);
    !body.is_empty()
        && body.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'!' | b'#'
                        | b'$'
                        | b'%'
                        | b'&'
                        | b'\''
                        | b'*'
                        | b'+'
                        | b'-'
                        | b'.'
                        | b'^'
                        | b'_'
                        | b'|'
                        | b'~'
                        | b'`'
                )
        })
}

/// protoc-gen-validate's HTTP_HEADER_VALUE: strict `^[^\u0000-\u0008\u000A-\u001F\u007F]*$`,
/// loose: no NUL, CR or LF.
fn is_header_value(s: &str, strict: bool) -> bool {
    if !strict {
        return !s.contains(['\0', '\r', '\n']);
    }
    !s.chars()
        .any(|c| matches!(c, '\u{0}'..='\u{8}' | '\u{A}'..='\u{1F}' | '\u{7F}'))
}

#[cfg(test)]
mod format_tests {
    use super::*;

    fn uncompiled(rules: &FieldRules, out: &mut Vec<String>) {
        match &rules.ty {
            Some(TypeRules::Str(r)) => {
                if let Some((p, None)) = &r.pattern {
                    out.push(p.clone());
                }
            }
            Some(TypeRules::Bytes(r)) => {
                if let Some((p, None)) = &r.pattern {
                    out.push(p.clone());
                }
            }
            Some(TypeRules::Repeated(r)) => {
                if let Some(items) = &r.items {
                    uncompiled(items, out);
                }
            }
            Some(TypeRules::Map(r)) => {
                for sub in [&r.keys, &r.values].into_iter().flatten() {
                    uncompiled(sub, out);
                }
            }
            _ => {}
        }
    }

    /// Every message of the Envoy API gets a plan, and every `pattern` in
    /// it compiles with the `regex` crate (so none is silently skipped).
    #[test]
    fn every_envoy_rule_compiles() {
        let pool = bootes_proto::envoy::descriptor_pool();
        let mut bad = Vec::new();
        let mut patterns = 0;
        for m in pool.all_messages() {
            for f in &plan(&m).fields {
                if let Some(r) = &f.rules {
                    let mut b = Vec::new();
                    uncompiled(r, &mut b);
                    bad.extend(
                        b.into_iter()
                            .map(|p| format!("{}: {p}", f.field.full_name())),
                    );
                    if matches!(&r.ty, Some(TypeRules::Str(s)) if s.pattern.is_some()) {
                        patterns += 1;
                    }
                }
            }
        }
        assert!(
            patterns > 10,
            "the Envoy API has string patterns, found {patterns}"
        );
        assert!(bad.is_empty(), "patterns the regex crate rejects: {bad:#?}");
    }

    #[test]
    fn well_known_formats() {
        assert!(is_hostname("example.com"));
        assert!(is_hostname("a-b.example.com."));
        assert!(!is_hostname("-a.example.com"));
        assert!(!is_hostname("a..b"));
        assert!(!is_hostname("under_score.com"));
        assert!(!is_hostname(&"a".repeat(64)));
        assert!(is_email("a@example.com"));
        assert!(is_email("A <a@example.com>"));
        assert!(!is_email("example.com"));
        assert!(is_uuid("123e4567-e89b-12d3-a456-426614174000"));
        assert!(!is_uuid("123e4567e89b12d3a456426614174000"));
        assert!(is_uri("https://example.com/a?b=c#d", true));
        assert!(!is_uri("/relative/path", true));
        assert!(is_uri("/relative/path", false));
        assert!(!is_uri("http://bad host", true));
        assert!(!is_uri("http://x/%zz", true));
        assert!(!is_uri("http://x/%4", true));
        assert!(is_header_name(":authority", true));
        assert!(is_header_name("x-foo", true));
        assert!(!is_header_name("x foo", true));
        assert!(!is_header_name("", true));
        assert!(is_header_name("x foo", false));
        assert!(!is_header_name("x\nfoo", false));
        assert!(is_header_value("a b\tc", true));
        assert!(!is_header_value("a\u{1}b", true));
        assert!(is_header_value("a\u{1}b", false));
    }

    #[test]
    fn times_format_like_proto3_json() {
        assert_eq!(format_duration(1_500_000_000), "1.5s");
        assert_eq!(format_duration(-250_000_000), "-0.25s");
        assert_eq!(format_duration(3_000_000_000), "3s");
        assert_eq!(format_timestamp(0), "1970-01-01T00:00:00Z");
        assert_eq!(
            format_timestamp(951_782_400_500_000_000),
            "2000-02-29T00:00:00.5Z"
        );
        assert_eq!(format_timestamp(-1_000_000_000), "1969-12-31T23:59:59Z");
    }
}
