//! What makes an etcd value valid for its key, and the one way to read one.
//! Every reader of `nodes/`, `snapshots/` and `status/` (the xds-server, the
//! controller's etcd writer and node-status watcher, `inspect`) decodes
//! through here, so all give the same verdict in the same words: an
//! xds-server refuses an invalid value (and keeps serving the previous one),
//! the controller overwrites it with the desired one, `inspect` shows why.

use std::fmt;

use prost::Message;

use crate::sealed::{self, SecretKeys};
use crate::store;
use crate::{is_snapshot_ref, Key, Keys};

/// Why a value under the prefix is not what its key says. Its text follows
/// the key: "`<key>` is empty".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValueError {
    /// No bytes at all (every valid value has some).
    Empty,
    /// The bytes are not the message the key calls for.
    Decode {
        message: &'static str,
        error: String,
    },
    /// A node binding whose snapshot is not `<namespace>/<group>`.
    NotASnapshotRef { snapshot: String },
    /// A snapshot whose namespace and group are not the ones its key names.
    WrongSnapshot { claimed: String },
    /// A snapshot without a version.
    NoVersion,
    /// A status record whose node or replica is not the one its key names.
    WrongStatus { node: String, replica: String },
    /// A sealed (encrypted) resource that does not open with the key file.
    Sealed { name: String, reason: String },
}

impl fmt::Display for ValueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ValueError::Empty => f.write_str("is empty"),
            ValueError::Decode { message, error } => write!(f, "is not a {message}: {error}"),
            ValueError::NotASnapshotRef { snapshot } => write!(
                f,
                "is a node binding to {snapshot:?}, which is not <namespace>/<group>"
            ),
            ValueError::WrongSnapshot { claimed } => {
                write!(f, "is the snapshot {claimed:?}, not the one its key names")
            }
            ValueError::NoVersion => f.write_str("is a snapshot without a version"),
            ValueError::WrongStatus { node, replica } => write!(
                f,
                "is the status of node {node:?}, replica {replica:?}, not the one its key names"
            ),
            ValueError::Sealed { name, reason } => {
                write!(
                    f,
                    "holds resource {name:?}, which cannot be decrypted: {reason}"
                )
            }
        }
    }
}

impl std::error::Error for ValueError {}

fn decode<M: Message + Default>(message: &'static str, value: &[u8]) -> Result<M, ValueError> {
    if value.is_empty() {
        return Err(ValueError::Empty);
    }
    M::decode(value).map_err(|e| ValueError::Decode {
        message,
        error: e.to_string(),
    })
}

/// Decodes the value of `nodes/<node-id>`.
pub fn binding(value: &[u8]) -> Result<store::NodeBinding, ValueError> {
    let binding: store::NodeBinding = decode("NodeBinding", value)?;
    if !is_snapshot_ref(&binding.snapshot) {
        return Err(ValueError::NotASnapshotRef {
            snapshot: binding.snapshot,
        });
    }
    Ok(binding)
}

/// Decodes the value of `snapshots/<snapshot_ref>` (`<namespace>/<group>`).
/// With `secrets`, its sealed resources are opened (one that does not open
/// refuses the whole snapshot: a node never gets half of one); without,
/// they stay sealed.
pub fn snapshot(
    snapshot_ref: &str,
    value: &[u8],
    secrets: Option<&SecretKeys>,
) -> Result<store::Snapshot, ValueError> {
    let mut snap: store::Snapshot = decode("Snapshot", value)?;
    let claimed = format!("{}/{}", snap.namespace, snap.group);
    if claimed != snapshot_ref {
        return Err(ValueError::WrongSnapshot { claimed });
    }
    if snap.version.is_empty() {
        return Err(ValueError::NoVersion);
    }
    if let Some(secrets) = secrets {
        sealed::open_snapshot(secrets, &mut snap).map_err(|(name, e)| ValueError::Sealed {
            name,
            reason: e.to_string(),
        })?;
    }
    Ok(snap)
}

/// Decodes the value of `status/<node>/<replica>`.
pub fn status(node: &str, replica: &str, value: &[u8]) -> Result<store::NodeStatus, ValueError> {
    let status: store::NodeStatus = decode("NodeStatus", value)?;
    if status.node_id != node || status.replica != replica {
        return Err(ValueError::WrongStatus {
            node: status.node_id,
            replica: status.replica,
        });
    }
    Ok(status)
}

/// Checks the value of any key under `nodes/`, `snapshots/` or `status/`;
/// other keys are not checked.
pub fn check(
    keys: &Keys,
    key: &str,
    value: &[u8],
    secrets: Option<&SecretKeys>,
) -> Result<(), ValueError> {
    match keys.parse(key) {
        Some(Key::Node(_)) => binding(value).map(drop),
        Some(Key::Snapshot(s)) => snapshot(s, value, secrets).map(drop),
        Some(Key::Status { node, replica }) => status(node, replica, value).map(drop),
        Some(Key::Leader) | None => Ok(()),
    }
}

/// The damaged values every reader is tested against, each with the verdict
/// all readers must give (the table of issue 19).
#[cfg(any(test, feature = "fixtures"))]
pub mod damaged {
    use super::*;

    /// One damaged value.
    #[derive(Debug)]
    pub struct Damaged {
        pub what: &'static str,
        pub key: String,
        pub value: Vec<u8>,
        pub verdict: ValueError,
    }

    /// The key file readers are given (the sealed case is sealed under
    /// another key).
    pub fn secret_keys() -> SecretKeys {
        SecretKeys::parse("k1 0101010101010101010101010101010101010101010101010101010101010101")
            .expect("a valid key file")
    }

    fn snapshot(namespace: &str, group: &str) -> store::Snapshot {
        store::Snapshot {
            namespace: namespace.into(),
            group: group.into(),
            version: "v1".into(),
            ..Default::default()
        }
    }

    /// Every case, under `keys`.
    pub fn cases(keys: &Keys) -> Vec<Damaged> {
        let random = vec![0xff, 0x13, 0x37, 0x00, 0xfe, 0x81];
        let decode = |message: &'static str, value: &[u8]| ValueError::Decode {
            message,
            error: <store::Snapshot as Message>::decode(value)
                .map(drop)
                .expect_err("random bytes do not decode")
                .to_string(),
        };
        let mut sealed = snapshot("ns", "g");
        sealed.types.push(store::TypeResources {
            type_url: crate::ResourceType::Secret.type_url().into(),
            version: "v1".into(),
            resources: vec![store::Resource {
                name: "cert".into(),
                version: "v1".into(),
                sealed: Some(store::Sealed {
                    key_id: "k0".into(),
                    nonce: vec![0; 12],
                    ciphertext: vec![1, 2, 3],
                }),
                ..Default::default()
            }],
        });
        let binding_to = |snapshot: &str| store::NodeBinding {
            snapshot: snapshot.into(),
            namespace: "ns".into(),
            ..Default::default()
        };
        vec![
            Damaged {
                what: "random bytes under nodes/",
                key: keys.node("n1.ns"),
                value: random.clone(),
                verdict: decode("NodeBinding", &random),
            },
            Damaged {
                what: "random bytes under snapshots/",
                key: keys.snapshot("ns/g"),
                value: random.clone(),
                verdict: decode("Snapshot", &random),
            },
            Damaged {
                what: "random bytes under status/",
                key: keys.status("n1.ns", "r1"),
                value: random.clone(),
                verdict: decode("NodeStatus", &random),
            },
            Damaged {
                what: "empty under nodes/",
                key: keys.node("n1.ns"),
                value: Vec::new(),
                verdict: ValueError::Empty,
            },
            Damaged {
                what: "empty under snapshots/",
                key: keys.snapshot("ns/g"),
                value: Vec::new(),
                verdict: ValueError::Empty,
            },
            Damaged {
                what: "empty under status/",
                key: keys.status("n1.ns", "r1"),
                value: Vec::new(),
                verdict: ValueError::Empty,
            },
            Damaged {
                what: "a status record (the wrong message) under nodes/",
                key: keys.node("n1.ns"),
                value: store::NodeStatus {
                    node_id: "n1.ns".into(),
                    replica: "r1".into(),
                    types: Vec::new(),
                }
                .encode_to_vec(),
                // Field 1 of NodeStatus reads as NodeBinding's snapshot.
                verdict: ValueError::NotASnapshotRef {
                    snapshot: "n1.ns".into(),
                },
            },
            Damaged {
                what: "a binding (the wrong message) under snapshots/",
                key: keys.snapshot("ns/g"),
                value: binding_to("ns/g").encode_to_vec(),
                // Fields 1 and 2 of NodeBinding read as namespace and group.
                verdict: ValueError::WrongSnapshot {
                    claimed: "ns/g/ns".into(),
                },
            },
            Damaged {
                what: "a binding naming no valid snapshot key",
                key: keys.node("n1.ns"),
                value: binding_to("nosla").encode_to_vec(),
                verdict: ValueError::NotASnapshotRef {
                    snapshot: "nosla".into(),
                },
            },
            Damaged {
                what: "a binding naming no snapshot at all",
                key: keys.node("n1.ns"),
                value: binding_to("").encode_to_vec(),
                verdict: ValueError::NotASnapshotRef {
                    snapshot: String::new(),
                },
            },
            Damaged {
                what: "a snapshot naming another key",
                key: keys.snapshot("ns/g"),
                value: snapshot("ns", "other").encode_to_vec(),
                verdict: ValueError::WrongSnapshot {
                    claimed: "ns/other".into(),
                },
            },
            Damaged {
                what: "a snapshot without a version",
                key: keys.snapshot("ns/g"),
                value: store::Snapshot {
                    version: String::new(),
                    ..snapshot("ns", "g")
                }
                .encode_to_vec(),
                verdict: ValueError::NoVersion,
            },
            Damaged {
                what: "a status record naming another node",
                key: keys.status("n1.ns", "r1"),
                value: store::NodeStatus {
                    node_id: "n2.ns".into(),
                    replica: "r1".into(),
                    types: Vec::new(),
                }
                .encode_to_vec(),
                verdict: ValueError::WrongStatus {
                    node: "n2.ns".into(),
                    replica: "r1".into(),
                },
            },
            Damaged {
                what: "a sealed value under an unknown key",
                key: keys.snapshot("ns/g"),
                value: sealed.encode_to_vec(),
                verdict: ValueError::Sealed {
                    name: "cert".into(),
                    reason: sealed::OpenError::UnknownKey("k0".into()).to_string(),
                },
            },
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_damaged_value_gets_its_verdict() {
        let keys = Keys::default();
        let secrets = damaged::secret_keys();
        for case in damaged::cases(&keys) {
            assert_eq!(
                check(&keys, &case.key, &case.value, Some(&secrets)),
                Err(case.verdict),
                "{}",
                case.what
            );
        }
    }

    #[test]
    fn valid_values_pass() {
        let keys = Keys::default();
        let good = store::Snapshot {
            namespace: "ns".into(),
            group: "g".into(),
            version: "v".into(),
            ..Default::default()
        };
        assert!(snapshot("ns/g", &good.encode_to_vec(), None).is_ok());
        let b = store::NodeBinding {
            snapshot: "ns/g".into(),
            ..Default::default()
        };
        assert!(check(&keys, &keys.node("n"), &b.encode_to_vec(), None).is_ok());
        let s = store::NodeStatus {
            node_id: "n".into(),
            replica: "r".into(),
            types: Vec::new(),
        };
        assert!(check(&keys, &keys.status("n", "r"), &s.encode_to_vec(), None).is_ok());
        assert!(check(&keys, &keys.leader(), b"anything", None).is_ok());
    }
}
