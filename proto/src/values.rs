//! What makes an etcd value valid for its key. Both sides apply the same
//! rule: an xds-server refuses an invalid value (and keeps serving the
//! previous one), the controller overwrites it with the desired one.

use std::fmt;

use prost::Message;

use crate::store;

/// Why a value under the prefix is not what its key says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValueError {
    /// The bytes are not the message the key calls for.
    Decode(String),
    /// A snapshot whose namespace and group are not the ones its key names.
    WrongSnapshot { claimed: String },
    /// A snapshot without a version (an empty value decodes as one).
    NoVersion,
    /// A node binding naming no snapshot.
    EmptyBinding,
}

impl fmt::Display for ValueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ValueError::Decode(e) => write!(f, "does not decode: {e}"),
            ValueError::WrongSnapshot { claimed } => {
                write!(f, "is the snapshot {claimed:?}, not the one its key names")
            }
            ValueError::NoVersion => f.write_str("is a snapshot without a version"),
            ValueError::EmptyBinding => f.write_str("is a node binding naming no snapshot"),
        }
    }
}

impl std::error::Error for ValueError {}

/// Decodes the value of `snapshots/<snapshot_ref>` (`<namespace>/<group>`).
pub fn snapshot(snapshot_ref: &str, value: &[u8]) -> Result<store::Snapshot, ValueError> {
    let snap = store::Snapshot::decode(value).map_err(|e| ValueError::Decode(e.to_string()))?;
    let claimed = format!("{}/{}", snap.namespace, snap.group);
    if claimed != snapshot_ref {
        return Err(ValueError::WrongSnapshot { claimed });
    }
    if snap.version.is_empty() {
        return Err(ValueError::NoVersion);
    }
    Ok(snap)
}

/// Decodes the value of `nodes/<node-id>`.
pub fn binding(value: &[u8]) -> Result<store::NodeBinding, ValueError> {
    let binding =
        store::NodeBinding::decode(value).map_err(|e| ValueError::Decode(e.to_string()))?;
    if binding.snapshot.is_empty() {
        return Err(ValueError::EmptyBinding);
    }
    Ok(binding)
}

/// Checks the value of any key the controller writes (`nodes/`,
/// `snapshots/`); other keys are not checked.
pub fn check(keys: &crate::Keys, key: &str, value: &[u8]) -> Result<(), ValueError> {
    match keys.parse(key) {
        Some(crate::Key::Node(_)) => binding(value).map(drop),
        Some(crate::Key::Snapshot(s)) => snapshot(s, value).map(drop),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_must_be_the_one_its_key_names_and_have_a_version() {
        let good = store::Snapshot {
            namespace: "ns".into(),
            group: "g".into(),
            version: "v".into(),
            ..Default::default()
        };
        assert!(snapshot("ns/g", &good.encode_to_vec()).is_ok());
        assert_eq!(
            snapshot("ns/h", &good.encode_to_vec()).unwrap_err(),
            ValueError::WrongSnapshot {
                claimed: "ns/g".into()
            }
        );
        assert!(matches!(
            snapshot("/", &[]).unwrap_err(),
            ValueError::NoVersion
        ));
        assert!(matches!(
            snapshot("ns/g", &[0xff]).unwrap_err(),
            ValueError::Decode(_)
        ));
        assert_eq!(binding(&[]).unwrap_err(), ValueError::EmptyBinding);
    }
}
