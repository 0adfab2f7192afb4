//! Just enough of the Kubernetes protobuf encoding to read the request bodies that
//! kubectl's typed clients send (`kubectl create namespace|configmap|secret|
//! serviceaccount`): the `k8s\0` envelope (`runtime.Unknown`), `ObjectMeta`, and the
//! few fields of those kinds. Responses are always JSON, which those clients accept.

use serde_json::{json, Map, Value};

const MAGIC: &[u8] = b"k8s\0";

/// A decoded protobuf field value.
enum Wire<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Fixed,
}

fn varint(buf: &mut &[u8]) -> Result<u64, String> {
    let mut out = 0u64;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = buf.split_first().ok_or("truncated varint")?;
        *buf = rest;
        out |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(out);
        }
    }
    Err("varint too long".into())
}

/// All fields of a message, in order.
fn fields(mut buf: &[u8]) -> Result<Vec<(u64, Wire<'_>)>, String> {
    let mut out = Vec::new();
    while !buf.is_empty() {
        let key = varint(&mut buf)?;
        let (field, wire) = (key >> 3, key & 7);
        let value = match wire {
            0 => Wire::Varint(varint(&mut buf)?),
            1 | 5 => {
                let n = if wire == 1 { 8 } else { 4 };
                if buf.len() < n {
                    return Err("truncated fixed-width field".into());
                }
                buf = &buf[n..];
                Wire::Fixed
            }
            2 => {
                let len = usize::try_from(varint(&mut buf)?).map_err(|_| "length overflow")?;
                if buf.len() < len {
                    return Err("truncated length-delimited field".into());
                }
                let (v, rest) = buf.split_at(len);
                buf = rest;
                Wire::Bytes(v)
            }
            other => return Err(format!("unsupported wire type {other}")),
        };
        out.push((field, value));
    }
    Ok(out)
}

fn string(b: &[u8]) -> Result<String, String> {
    String::from_utf8(b.to_vec()).map_err(|_| "invalid UTF-8 in a string field".to_string())
}

/// Standard base64 with padding (how JSON carries `bytes`).
fn base64(data: &[u8]) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A map<string, string|bytes> entry: (key, value bytes).
fn map_entry(b: &[u8]) -> Result<(String, &[u8]), String> {
    let (mut k, mut v) = (String::new(), &b[..0]);
    for (f, w) in fields(b)? {
        match (f, w) {
            (1, Wire::Bytes(x)) => k = string(x)?,
            (2, Wire::Bytes(x)) => v = x,
            _ => {}
        }
    }
    Ok((k, v))
}

fn object_meta(b: &[u8]) -> Result<Value, String> {
    let mut m = Map::new();
    let (mut labels, mut annotations, mut finalizers) = (Map::new(), Map::new(), Vec::new());
    for (f, w) in fields(b)? {
        match (f, w) {
            (1, Wire::Bytes(x)) => {
                m.insert("name".into(), json!(string(x)?));
            }
            (2, Wire::Bytes(x)) => {
                m.insert("generateName".into(), json!(string(x)?));
            }
            (3, Wire::Bytes(x)) => {
                m.insert("namespace".into(), json!(string(x)?));
            }
            (6, Wire::Bytes(x)) => {
                m.insert("resourceVersion".into(), json!(string(x)?));
            }
            (11, Wire::Bytes(x)) => {
                let (k, v) = map_entry(x)?;
                labels.insert(k, json!(string(v)?));
            }
            (12, Wire::Bytes(x)) => {
                let (k, v) = map_entry(x)?;
                annotations.insert(k, json!(string(v)?));
            }
            (14, Wire::Bytes(x)) => finalizers.push(json!(string(x)?)),
            _ => {}
        }
    }
    if !labels.is_empty() {
        m.insert("labels".into(), Value::Object(labels));
    }
    if !annotations.is_empty() {
        m.insert("annotations".into(), Value::Object(annotations));
    }
    if !finalizers.is_empty() {
        m.insert("finalizers".into(), Value::Array(finalizers));
    }
    Ok(Value::Object(m))
}

/// True when a body is in the Kubernetes protobuf envelope.
pub fn is_protobuf(body: &[u8]) -> bool {
    body.starts_with(MAGIC)
}

/// Decodes a protobuf request body into the JSON object it stands for.
pub fn decode(body: &[u8]) -> Result<Value, String> {
    let rest = body
        .strip_prefix(MAGIC)
        .ok_or("not a Kubernetes protobuf body")?;
    let (mut api_version, mut kind, mut raw) = (String::new(), String::new(), &rest[..0]);
    for (f, w) in fields(rest)? {
        match (f, w) {
            (1, Wire::Bytes(tm)) => {
                for (f, w) in fields(tm)? {
                    match (f, w) {
                        (1, Wire::Bytes(x)) => api_version = string(x)?,
                        (2, Wire::Bytes(x)) => kind = string(x)?,
                        _ => {}
                    }
                }
            }
            (2, Wire::Bytes(x)) => raw = x,
            _ => {}
        }
    }
    let mut obj = json!({"apiVersion": api_version, "kind": kind});
    let mut data = Map::new();
    let mut binary = Map::new();
    let mut string_data = Map::new();
    for (f, w) in fields(raw)? {
        match (kind.as_str(), f, w) {
            (_, 1, Wire::Bytes(x)) => obj["metadata"] = object_meta(x)?,
            ("Namespace", 2, Wire::Bytes(x)) => {
                let mut fin = Vec::new();
                for (f, w) in fields(x)? {
                    if let (1, Wire::Bytes(s)) = (f, w) {
                        fin.push(json!(string(s)?));
                    }
                }
                obj["spec"] = json!({"finalizers": fin});
            }
            ("Namespace", 3, _) => {}
            ("ConfigMap", 2, Wire::Bytes(x)) => {
                let (k, v) = map_entry(x)?;
                data.insert(k, json!(string(v)?));
            }
            ("ConfigMap", 3, Wire::Bytes(x)) => {
                let (k, v) = map_entry(x)?;
                binary.insert(k, json!(base64(v)));
            }
            ("ConfigMap", 4, Wire::Varint(v)) | ("Secret", 5, Wire::Varint(v)) => {
                obj["immutable"] = json!(v != 0)
            }
            ("Secret", 2, Wire::Bytes(x)) => {
                let (k, v) = map_entry(x)?;
                data.insert(k, json!(base64(v)));
            }
            ("Secret", 3, Wire::Bytes(x)) => obj["type"] = json!(string(x)?),
            ("Secret", 4, Wire::Bytes(x)) => {
                let (k, v) = map_entry(x)?;
                string_data.insert(k, json!(string(v)?));
            }
            // ServiceAccount: secrets, imagePullSecrets, automount flag.
            ("ServiceAccount", 2..=4, _) => {}
            (k, f, _) => {
                return Err(format!(
                    "protobuf field {f} of {k} is not understood by the stand-in; send JSON"
                ))
            }
        }
    }
    for (field, m) in [
        ("data", data),
        ("binaryData", binary),
        ("stringData", string_data),
    ] {
        if !m.is_empty() {
            obj[field] = Value::Object(m);
        }
    }
    Ok(obj)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(n: u64, bytes: &[u8]) -> Vec<u8> {
        let mut out = vec![(n << 3 | 2) as u8, bytes.len() as u8];
        out.extend_from_slice(bytes);
        out
    }

    fn entry(k: &str, v: &[u8]) -> Vec<u8> {
        [field(1, k.as_bytes()), field(2, v)].concat()
    }

    fn envelope(api_version: &str, kind: &str, raw: &[u8]) -> Vec<u8> {
        let tm = [field(1, api_version.as_bytes()), field(2, kind.as_bytes())].concat();
        [MAGIC.to_vec(), field(1, &tm), field(2, raw)].concat()
    }

    #[test]
    fn decodes_a_namespace() {
        let meta = [field(1, b"foo"), field(11, &entry("team", b"a"))].concat();
        let raw = [field(1, &meta), field(2, &[]), field(3, &[])].concat();
        let v = decode(&envelope("v1", "Namespace", &raw)).unwrap();
        assert_eq!(
            v,
            json!({"apiVersion": "v1", "kind": "Namespace",
                   "metadata": {"name": "foo", "labels": {"team": "a"}}, "spec": {"finalizers": []}})
        );
    }

    #[test]
    fn decodes_configmaps_and_secrets() {
        let meta = field(1, b"c");
        let raw = [
            field(1, &meta),
            field(2, &entry("k", b"v")),
            field(3, &entry("b", b"\x00\x01\x02\x03")),
        ]
        .concat();
        let v = decode(&envelope("v1", "ConfigMap", &raw)).unwrap();
        assert_eq!(v["data"], json!({"k": "v"}));
        assert_eq!(v["binaryData"], json!({"b": "AAECAw=="}));
        let raw = [
            field(1, &meta),
            field(2, &entry("p", b"hi")),
            field(3, b"Opaque"),
        ]
        .concat();
        let v = decode(&envelope("v1", "Secret", &raw)).unwrap();
        assert_eq!(v["data"], json!({"p": "aGk="}));
        assert_eq!(v["type"], "Opaque");
    }

    #[test]
    fn rejects_what_it_does_not_know() {
        let raw = [field(1, &field(1, b"p")), field(2, b"")].concat();
        assert!(decode(&envelope("v1", "Pod", &raw))
            .unwrap_err()
            .contains("send JSON"));
        assert!(decode(b"k8s\0\x0a\x05ab").is_err());
        assert!(decode(b"{}").is_err());
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
    }
}
