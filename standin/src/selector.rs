//! Label and field selectors as the Kubernetes API accepts them in `labelSelector`
//! and `fieldSelector` query parameters.

use serde_json::{Map, Value};

/// One requirement of a label selector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Requirement {
    /// `key=value` or `key==value`
    Equals(String, String),
    /// `key!=value` (also true when the label is absent)
    NotEquals(String, String),
    /// `key in (a,b)`
    In(String, Vec<String>),
    /// `key notin (a,b)` (also true when the label is absent)
    NotIn(String, Vec<String>),
    /// `key`
    Exists(String),
    /// `!key`
    NotExists(String),
    /// `key>n` (integer comparison; the label must exist and parse)
    GreaterThan(String, i64),
    /// `key<n`
    LessThan(String, i64),
}

/// A parsed label selector: every requirement must hold. Empty matches everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LabelSelector {
    pub requirements: Vec<Requirement>,
}

fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 317
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
        && key
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
}

fn valid_value(value: &str) -> bool {
    value.len() <= 63
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Splits on commas that are not inside parentheses.
fn split_top_level(s: &str) -> Result<Vec<&str>, String> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0i32, 0usize);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth < 0 {
                    return Err(format!("unexpected ')' in selector {s:?}"));
                }
            }
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err(format!("unbalanced '(' in selector {s:?}"));
    }
    parts.push(&s[start..]);
    Ok(parts)
}

fn checked_key(key: &str, term: &str) -> Result<String, String> {
    let key = key.trim();
    if valid_key(key) {
        Ok(key.to_string())
    } else {
        Err(format!("invalid label key {key:?} in requirement {term:?}"))
    }
}

fn checked_value(value: &str, term: &str) -> Result<String, String> {
    let value = value.trim();
    if valid_value(value) {
        Ok(value.to_string())
    } else {
        Err(format!(
            "invalid label value {value:?} in requirement {term:?}"
        ))
    }
}

impl LabelSelector {
    /// Parses the string form (`app=foo,tier in (a,b),!legacy`).
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut requirements = Vec::new();
        if s.trim().is_empty() {
            return Ok(Self { requirements });
        }
        for term in split_top_level(s)? {
            let t = term.trim();
            if t.is_empty() {
                return Err(format!("empty requirement in selector {s:?}"));
            }
            requirements.push(Self::parse_term(t)?);
        }
        Ok(Self { requirements })
    }

    fn parse_term(t: &str) -> Result<Requirement, String> {
        if let Some(open) = t.find('(') {
            let head: Vec<&str> = t[..open].split_whitespace().collect();
            let Some(inner) = t[open + 1..].trim_end().strip_suffix(')') else {
                return Err(format!("missing ')' in requirement {t:?}"));
            };
            let [key, op] = head.as_slice() else {
                return Err(format!(
                    "expected `key in (…)` or `key notin (…)`, got {t:?}"
                ));
            };
            let key = checked_key(key, t)?;
            let values = inner
                .split(',')
                .map(|v| checked_value(v, t))
                .collect::<Result<Vec<_>, _>>()?;
            return match *op {
                "in" => Ok(Requirement::In(key, values)),
                "notin" => Ok(Requirement::NotIn(key, values)),
                other => Err(format!("unknown set operator {other:?} in {t:?}")),
            };
        }
        if let Some(key) = t.strip_prefix('!') {
            return Ok(Requirement::NotExists(checked_key(key, t)?));
        }
        if let Some((k, v)) = t.split_once("!=") {
            return Ok(Requirement::NotEquals(
                checked_key(k, t)?,
                checked_value(v, t)?,
            ));
        }
        if let Some((k, v)) = t.split_once("==") {
            return Ok(Requirement::Equals(
                checked_key(k, t)?,
                checked_value(v, t)?,
            ));
        }
        if let Some((k, v)) = t.split_once('=') {
            return Ok(Requirement::Equals(
                checked_key(k, t)?,
                checked_value(v, t)?,
            ));
        }
        for (sym, gt) in [('>', true), ('<', false)] {
            if let Some((k, v)) = t.split_once(sym) {
                let n: i64 = v
                    .trim()
                    .parse()
                    .map_err(|_| format!("{v:?} is not an integer in requirement {t:?}"))?;
                let key = checked_key(k, t)?;
                return Ok(if gt {
                    Requirement::GreaterThan(key, n)
                } else {
                    Requirement::LessThan(key, n)
                });
            }
        }
        Ok(Requirement::Exists(checked_key(t, t)?))
    }

    /// True when every requirement holds for these labels.
    pub fn matches(&self, labels: Option<&Map<String, Value>>) -> bool {
        let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        self.requirements.iter().all(|r| match r {
            Requirement::Equals(k, v) => get(k) == Some(v.as_str()),
            Requirement::NotEquals(k, v) => get(k) != Some(v.as_str()),
            Requirement::In(k, vs) => get(k).is_some_and(|l| vs.iter().any(|v| v == l)),
            Requirement::NotIn(k, vs) => !get(k).is_some_and(|l| vs.iter().any(|v| v == l)),
            Requirement::Exists(k) => get(k).is_some(),
            Requirement::NotExists(k) => get(k).is_none(),
            Requirement::GreaterThan(k, n) => get(k)
                .and_then(|l| l.parse::<i64>().ok())
                .is_some_and(|l| l > *n),
            Requirement::LessThan(k, n) => get(k)
                .and_then(|l| l.parse::<i64>().ok())
                .is_some_and(|l| l < *n),
        })
    }

    /// Matches an object's `metadata.labels`.
    pub fn matches_object(&self, obj: &Value) -> bool {
        self.matches(obj.pointer("/metadata/labels").and_then(Value::as_object))
    }
}

/// A parsed field selector: `path=value`, `path==value`, `path!=value`, comma separated.
/// Any dotted path into the object is accepted (`metadata.name`, `status.phase`, …);
/// a missing field compares as the empty string.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSelector {
    /// (path, negated, value)
    pub terms: Vec<(String, bool, String)>,
}

impl FieldSelector {
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut terms = Vec::new();
        for t in s.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let (path, neg, value) = if let Some((p, v)) = t.split_once("!=") {
                (p, true, v)
            } else if let Some((p, v)) = t.split_once("==") {
                (p, false, v)
            } else if let Some((p, v)) = t.split_once('=') {
                (p, false, v)
            } else {
                return Err(format!("invalid field selector requirement {t:?}"));
            };
            let path = path.trim();
            if path.is_empty()
                || !path
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
            {
                return Err(format!("invalid field path {path:?} in field selector"));
            }
            terms.push((path.to_string(), neg, value.trim().to_string()));
        }
        Ok(Self { terms })
    }

    /// The value a field selector compares for this path.
    fn field<'a>(obj: &'a Value, path: &str) -> String {
        let mut cur: &'a Value = obj;
        for part in path.split('.') {
            match cur.get(part) {
                Some(v) => cur = v,
                None => return String::new(),
            }
        }
        match cur {
            Value::String(s) => s.clone(),
            Value::Null => String::new(),
            other => other.to_string(),
        }
    }

    pub fn matches(&self, obj: &Value) -> bool {
        self.terms
            .iter()
            .all(|(path, neg, value)| (Self::field(obj, path) == *value) != *neg)
    }

    /// The single `metadata.name=` value, if the selector pins one.
    pub fn pinned_name(&self) -> Option<&str> {
        self.terms
            .iter()
            .find(|(p, neg, _)| p == "metadata.name" && !neg)
            .map(|(_, _, v)| v.as_str())
    }
}

/// Both selectors of a list or watch request.
#[derive(Clone, Debug, Default)]
pub struct Selectors {
    pub labels: LabelSelector,
    pub fields: FieldSelector,
}

impl Selectors {
    pub fn parse(labels: Option<&str>, fields: Option<&str>) -> Result<Self, String> {
        Ok(Self {
            labels: LabelSelector::parse(labels.unwrap_or(""))?,
            fields: FieldSelector::parse(fields.unwrap_or(""))?,
        })
    }

    pub fn matches(&self, obj: &Value) -> bool {
        self.labels.matches_object(obj) && self.fields.matches(obj)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn parses_every_operator() {
        let s = LabelSelector::parse(
            "a=1, b==2,c!=3,d in (x, y),e notin(z),f,!g,h>5,i<7,example.com/j=",
        )
        .unwrap();
        use Requirement::*;
        assert_eq!(
            s.requirements,
            vec![
                Equals("a".into(), "1".into()),
                Equals("b".into(), "2".into()),
                NotEquals("c".into(), "3".into()),
                In("d".into(), vec!["x".into(), "y".into()]),
                NotIn("e".into(), vec!["z".into()]),
                Exists("f".into()),
                NotExists("g".into()),
                GreaterThan("h".into(), 5),
                LessThan("i".into(), 7),
                Equals("example.com/j".into(), "".into()),
            ]
        );
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "a in (x",
            "a)",
            "a=b c",
            "=x",
            "a,,b",
            "a foo (x)",
            "a>x",
            "a=@",
        ] {
            assert!(LabelSelector::parse(bad).is_err(), "{bad:?} should fail");
        }
        assert!(LabelSelector::parse("").unwrap().requirements.is_empty());
    }

    #[test]
    fn matches_like_the_api_server() {
        let l = labels(json!({"app": "foo", "tier": "web", "n": "10"}));
        let m = |s: &str| LabelSelector::parse(s).unwrap().matches(Some(&l));
        assert!(m("app=foo"));
        assert!(m("app==foo,tier=web"));
        assert!(!m("app=bar"));
        assert!(m("app!=bar"));
        assert!(m("missing!=x"));
        assert!(m("tier in (web,db)"));
        assert!(!m("tier notin (web)"));
        assert!(m("missing notin (web)"));
        assert!(!m("missing in (web)"));
        assert!(m("app"));
        assert!(!m("!app"));
        assert!(m("!missing"));
        assert!(m("n>9") && !m("n>10") && m("n<11"));
        assert!(m(""));
        assert!(!LabelSelector::parse("app").unwrap().matches(None));
        assert!(LabelSelector::parse("!app").unwrap().matches(None));
    }

    #[test]
    fn field_selectors() {
        let obj =
            json!({"metadata": {"name": "a", "namespace": "foo"}, "status": {"phase": "Running"}});
        let m = |s: &str| FieldSelector::parse(s).unwrap().matches(&obj);
        assert!(m("metadata.name=a"));
        assert!(m("metadata.name==a,metadata.namespace=foo"));
        assert!(!m("metadata.namespace!=foo"));
        assert!(m("status.phase=Running"));
        assert!(m("spec.nodeName="));
        assert!(FieldSelector::parse("metadata.name").is_err());
        assert_eq!(
            FieldSelector::parse("metadata.name=x")
                .unwrap()
                .pinned_name(),
            Some("x")
        );
    }
}
