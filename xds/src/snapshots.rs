//! The xds-server's in-memory view of etcd: node bindings and decoded
//! snapshots. Pure: fed with key/value events, queried by node ID.
//!
//! A batch of events (one etcd watch response, i.e. whole transactions) is
//! applied at once, so a stream never sees half a controller change.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use bootes_proto::sealed::SecretKeys;
use bootes_proto::{version, Key, Keys, ResourceType};
use bytes::Bytes;

/// One resource as served: its name, content-hash version and encoded body.
#[derive(Debug, PartialEq, Eq)]
pub struct Resource {
    pub name: String,
    pub version: String,
    pub value: Bytes,
    /// `Kind namespace/name` of the Bootes object it came from.
    pub source: String,
}

/// A decoded snapshot: per type, resources by name.
#[derive(Debug)]
pub struct Snapshot {
    /// Unique in this process: what per-snapshot work shared by streams
    /// (the delta streams' transitions) is keyed by.
    id: u64,
    pub key: String,
    pub version: String,
    pub types: BTreeMap<ResourceType, BTreeMap<String, Arc<Resource>>>,
    /// Per type, the version of all its resources as a set, computed on
    /// first use: every stream that subscribes to all of a type shares it
    /// instead of hashing the set itself.
    set_versions: OnceLock<BTreeMap<ResourceType, String>>,
}

/// Equal content; the versions derived from it are not compared.
impl PartialEq for Snapshot {
    fn eq(&self, other: &Self) -> bool {
        (&self.key, &self.version, &self.types) == (&other.key, &other.version, &other.types)
    }
}

impl Eq for Snapshot {}

impl Default for Snapshot {
    fn default() -> Self {
        Self::new(String::new(), String::new(), BTreeMap::new())
    }
}

impl Snapshot {
    pub fn new(
        key: String,
        version: String,
        types: BTreeMap<ResourceType, BTreeMap<String, Arc<Resource>>>,
    ) -> Self {
        static NEXT_ID: AtomicU64 = AtomicU64::new(0);
        Self {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            key,
            version,
            types,
            set_versions: OnceLock::new(),
        }
    }

    /// Unique among the snapshots of this process.
    pub fn id(&self) -> u64 {
        self.id
    }

    pub fn resources(&self, ty: ResourceType) -> Option<&BTreeMap<String, Arc<Resource>>> {
        self.types.get(&ty)
    }

    /// [`version::of_set`] of every resource of `ty` (of none if the
    /// snapshot has no such type), computed once per snapshot.
    pub fn set_version(&self, ty: ResourceType) -> &str {
        let versions = self.set_versions.get_or_init(|| {
            ResourceType::ALL
                .iter()
                .map(|&ty| {
                    let pairs = self
                        .resources(ty)
                        .into_iter()
                        .flat_map(|m| m.values())
                        .map(|r| (r.name.as_str(), r.version.as_str()));
                    (ty, version::of_set(pairs))
                })
                .collect()
        });
        &versions[&ty]
    }

    /// Decodes the etcd value of `snapshots/<key>` (`key` is
    /// `<namespace>/<group>`), opening sealed (encrypted) resources with
    /// `secrets`. A value that does not say it is that snapshot, or has no
    /// version, is refused: it is damaged or foreign, and serving it (an
    /// empty snapshot, say) would wipe its nodes' configuration. Resources
    /// of types this server does not know are skipped (a newer controller
    /// may write them); a sealed resource that does not open fails the whole
    /// snapshot, so a node never gets half of one.
    pub fn decode(
        key: &str,
        value: &[u8],
        secrets: Option<&SecretKeys>,
    ) -> Result<Self, SnapshotError> {
        let snap = bootes_proto::values::snapshot(key, value, secrets)?;
        let mut types = BTreeMap::new();
        for t in snap.types {
            let Some(ty) = ResourceType::from_type_url(&t.type_url) else {
                tracing::warn!(snapshot = key, type_url = %t.type_url, "skipping unknown resource type");
                continue;
            };
            let mut resources = BTreeMap::new();
            for r in t.resources {
                let source = r
                    .source
                    .map(|s| format!("{} {}/{}", s.kind, s.namespace, s.name))
                    .unwrap_or_default();
                // With a key file every sealed resource was opened above.
                if r.sealed.is_some() {
                    return Err(SnapshotError::NoKeyFile { name: r.name });
                }
                let value = r.value;
                let resource = Resource {
                    name: r.name,
                    version: r.version,
                    value: Bytes::from(value),
                    source,
                };
                resources.insert(resource.name.clone(), Arc::new(resource));
            }
            types.insert(ty, resources);
        }
        Ok(Self::new(key.to_string(), snap.version, types))
    }
}

/// Why a snapshot value cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error(transparent)]
    Value(#[from] bootes_proto::values::ValueError),
    #[error(
        "holds resource {name:?}, which is encrypted, and this server has no --secret-key-file"
    )]
    NoKeyFile { name: String },
}

/// What a node's binding says about who may claim it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Binding {
    /// Snapshot ref (`<namespace>/<group>`).
    pub snapshot: String,
    pub namespace: String,
    pub service_account: String,
}

/// A change read from etcd.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    Put { key: String, value: Vec<u8> },
    Delete { key: String },
}

/// Bindings and snapshots, as of one etcd revision.
#[derive(Debug, Default)]
pub struct Snapshots {
    keys: Keys,
    /// Opens sealed resources.
    secrets: Option<Arc<SecretKeys>>,
    bindings: HashMap<String, Binding>,
    /// Snapshot ref → snapshot.
    snapshots: HashMap<String, Arc<Snapshot>>,
    revision: i64,
}

/// What a batch of events did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Applied {
    pub changed: usize,
    /// Keys whose values could not be decoded (the previous value is kept).
    pub rejected: Vec<String>,
}

impl Snapshots {
    pub fn new(keys: Keys, secrets: Option<Arc<SecretKeys>>) -> Self {
        Self {
            keys,
            secrets,
            ..Default::default()
        }
    }

    /// The etcd revision these contents reflect.
    pub fn revision(&self) -> i64 {
        self.revision
    }

    /// The snapshot a node receives, if it has a binding whose snapshot exists.
    pub fn for_node(&self, node_id: &str) -> Option<Arc<Snapshot>> {
        let binding = self.bindings.get(node_id)?;
        self.snapshots.get(&binding.snapshot).cloned()
    }

    /// The node's binding, if it has one.
    pub fn binding(&self, node_id: &str) -> Option<&Binding> {
        self.bindings.get(node_id)
    }

    pub fn node_count(&self) -> usize {
        self.bindings.len()
    }

    pub fn snapshot_count(&self) -> usize {
        self.snapshots.len()
    }

    /// Replaces everything with a full listing at `revision`.
    pub fn reset(&mut self, kvs: Vec<(String, Vec<u8>)>, revision: i64) -> Applied {
        let old_bindings = std::mem::take(&mut self.bindings);
        let old_snapshots = std::mem::take(&mut self.snapshots);
        // Decoding failures during a relist keep the value we had, if any.
        let mut applied = Applied::default();
        for (key, value) in kvs {
            if !self.put(&key, &value) {
                applied.rejected.push(key.clone());
                self.restore(&key, &old_bindings, &old_snapshots);
            }
        }
        applied.changed = self.bindings.len() + self.snapshots.len();
        self.revision = revision;
        applied
    }

    /// Applies one batch of watch events (whole transactions) at `revision`.
    pub fn apply(&mut self, events: Vec<Event>, revision: i64) -> Applied {
        let mut applied = Applied::default();
        for event in events {
            match event {
                Event::Put { key, value } => {
                    if self.put(&key, &value) {
                        applied.changed += 1;
                    } else {
                        applied.rejected.push(key);
                    }
                }
                Event::Delete { key } => {
                    match self.keys.parse(&key) {
                        Some(Key::Node(node)) => {
                            self.bindings.remove(node);
                        }
                        Some(Key::Snapshot(s)) => {
                            self.snapshots.remove(s);
                        }
                        _ => continue,
                    }
                    applied.changed += 1;
                }
            }
        }
        self.revision = self.revision.max(revision);
        applied
    }

    /// Stores one value; false when it is refused (nothing changes).
    fn put(&mut self, key: &str, value: &[u8]) -> bool {
        match self.store(key, value) {
            Ok(()) => true,
            Err(e) => {
                tracing::error!(key, error = %e, "value in etcd refused; keeping the previous one");
                false
            }
        }
    }

    /// Stores one value, or says why it is refused.
    fn store(&mut self, key: &str, value: &[u8]) -> Result<(), SnapshotError> {
        match self.keys.parse(key) {
            Some(Key::Node(node)) => {
                let b = bootes_proto::values::binding(value)?;
                let binding = Binding {
                    snapshot: b.snapshot,
                    namespace: b.namespace,
                    service_account: b.service_account,
                };
                self.bindings.insert(node.to_string(), binding);
            }
            Some(Key::Snapshot(s)) => {
                let snap = Snapshot::decode(s, value, self.secrets.as_deref())?;
                self.snapshots.insert(s.to_string(), Arc::new(snap));
            }
            // status/, leader and foreign keys are not ours to serve.
            _ => {}
        }
        Ok(())
    }

    fn restore(
        &mut self,
        key: &str,
        old_bindings: &HashMap<String, Binding>,
        old_snapshots: &HashMap<String, Arc<Snapshot>>,
    ) {
        match self.keys.parse(key) {
            Some(Key::Node(node)) => {
                if let Some(b) = old_bindings.get(node) {
                    self.bindings.insert(node.to_string(), b.clone());
                }
            }
            Some(Key::Snapshot(s)) => {
                if let Some(snap) = old_snapshots.get(s) {
                    self.snapshots.insert(s.to_string(), snap.clone());
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bootes_proto::{sealed, store};
    use prost::Message;

    fn binding(snapshot: &str) -> Vec<u8> {
        store::NodeBinding {
            snapshot: snapshot.into(),
            ..Default::default()
        }
        .encode_to_vec()
    }

    /// The snapshot `ns/<group>` at `version`.
    fn snapshot_of(group: &str, version: &str, clusters: &[&str]) -> Vec<u8> {
        store::Snapshot {
            namespace: "ns".into(),
            group: group.into(),
            version: version.into(),
            types: vec![store::TypeResources {
                type_url: ResourceType::Cluster.type_url().into(),
                version: version.into(),
                resources: clusters
                    .iter()
                    .map(|c| store::Resource {
                        name: c.to_string(),
                        version: format!("{c}-v"),
                        value: vec![1, 2, 3],
                        source: None,
                        sealed: None,
                    })
                    .collect(),
            }],
            ..Default::default()
        }
        .encode_to_vec()
    }

    fn put(key: &str, value: Vec<u8>) -> Event {
        Event::Put {
            key: key.into(),
            value,
        }
    }

    #[test]
    fn a_node_is_served_once_binding_and_snapshot_exist() {
        let mut s = Snapshots::new(Keys::default(), None);
        assert!(s.for_node("n.ns").is_none());
        s.apply(vec![put("/bootes/v1/nodes/n.ns", binding("ns/g1"))], 2);
        assert!(s.for_node("n.ns").is_none(), "binding without snapshot");
        s.apply(
            vec![put(
                "/bootes/v1/snapshots/ns/g1",
                snapshot_of("g1", "v1", &["a"]),
            )],
            3,
        );
        let snap = s.for_node("n.ns").unwrap();
        assert_eq!(snap.version, "v1");
        assert_eq!(
            snap.resources(ResourceType::Cluster).unwrap()["a"].version,
            "a-v"
        );
        assert_eq!(s.revision(), 3);
    }

    #[test]
    fn a_batch_moves_bindings_and_deletes_snapshots_together() {
        let mut s = Snapshots::new(Keys::default(), None);
        s.reset(
            vec![
                ("/bootes/v1/nodes/n.ns".into(), binding("ns/g1")),
                (
                    "/bootes/v1/snapshots/ns/g1".into(),
                    snapshot_of("g1", "v1", &["a"]),
                ),
            ],
            5,
        );
        s.apply(
            vec![
                put(
                    "/bootes/v1/snapshots/ns/g2",
                    snapshot_of("g2", "v2", &["b"]),
                ),
                put("/bootes/v1/nodes/n.ns", binding("ns/g2")),
                Event::Delete {
                    key: "/bootes/v1/snapshots/ns/g1".into(),
                },
            ],
            6,
        );
        assert_eq!(s.for_node("n.ns").unwrap().version, "v2");
        assert_eq!(s.snapshot_count(), 1);
        s.apply(
            vec![Event::Delete {
                key: "/bootes/v1/nodes/n.ns".into(),
            }],
            7,
        );
        assert!(s.for_node("n.ns").is_none());
    }

    #[test]
    fn garbage_values_are_rejected_and_keep_what_was_valid() {
        let mut s = Snapshots::new(Keys::default(), None);
        s.apply(
            vec![
                put("/bootes/v1/nodes/n.ns", binding("ns/g1")),
                put(
                    "/bootes/v1/snapshots/ns/g1",
                    snapshot_of("g1", "v1", &["a"]),
                ),
            ],
            2,
        );
        let applied = s.apply(
            vec![put("/bootes/v1/snapshots/ns/g1", vec![0xff, 0xff, 0xff])],
            3,
        );
        assert_eq!(applied.rejected, ["/bootes/v1/snapshots/ns/g1"]);
        assert_eq!(s.for_node("n.ns").unwrap().version, "v1");

        let applied = s.reset(
            vec![
                ("/bootes/v1/nodes/n.ns".into(), binding("ns/g1")),
                ("/bootes/v1/snapshots/ns/g1".into(), vec![0xff]),
            ],
            9,
        );
        assert_eq!(applied.rejected.len(), 1);
        assert_eq!(
            s.for_node("n.ns").unwrap().version,
            "v1",
            "kept across a relist"
        );
    }

    #[test]
    fn values_that_disagree_with_their_key_are_rejected_and_keep_what_was_valid() {
        let mut s = Snapshots::new(Keys::default(), None);
        s.apply(
            vec![
                put("/bootes/v1/nodes/n.ns", binding("ns/g1")),
                put(
                    "/bootes/v1/snapshots/ns/g1",
                    snapshot_of("g1", "v1", &["a"]),
                ),
            ],
            2,
        );
        let other_namespace = store::Snapshot {
            namespace: "other".into(),
            group: "g1".into(),
            version: "v9".into(),
            ..Default::default()
        };
        let other_group = store::Snapshot {
            namespace: "ns".into(),
            group: "g2".into(),
            version: "v9".into(),
            ..Default::default()
        };
        let no_version = store::Snapshot {
            namespace: "ns".into(),
            group: "g1".into(),
            ..Default::default()
        };
        for (value, why) in [
            (other_namespace.encode_to_vec(), "wrong namespace"),
            (other_group.encode_to_vec(), "wrong group"),
            (no_version.encode_to_vec(), "no version"),
            // An empty value decodes as an empty snapshot: the worst case,
            // it would wipe the node's configuration.
            (Vec::new(), "empty value"),
        ] {
            let applied = s.apply(vec![put("/bootes/v1/snapshots/ns/g1", value)], 3);
            assert_eq!(applied.rejected, ["/bootes/v1/snapshots/ns/g1"], "{why}");
            let snap = s.for_node("n.ns").unwrap();
            assert_eq!(snap.version, "v1", "{why}: the previous snapshot stays");
            assert!(snap.resources(ResourceType::Cluster).is_some(), "{why}");
        }
        // A binding that names no snapshot is refused too.
        let applied = s.apply(vec![put("/bootes/v1/nodes/n.ns", Vec::new())], 4);
        assert_eq!(applied.rejected, ["/bootes/v1/nodes/n.ns"]);
        assert_eq!(s.for_node("n.ns").unwrap().version, "v1");
    }

    #[test]
    fn foreign_and_status_keys_are_ignored() {
        let mut s = Snapshots::new(Keys::default(), None);
        let applied = s.apply(
            vec![
                put("/bootes/v1/status/n.ns/r1", vec![0xff]),
                put("/bootes/v1/leader", vec![]),
                put("/elsewhere", vec![0xff]),
            ],
            2,
        );
        assert!(applied.rejected.is_empty());
        assert_eq!(s.node_count(), 0);
    }

    fn sealed_snapshot(keys: &SecretKeys) -> Vec<u8> {
        let ty = ResourceType::Secret.type_url();
        let sealed = keys.seal(
            sealed::Binding {
                namespace: "ns",
                type_url: ty,
                name: "cert",
            },
            b"private",
        );
        store::Snapshot {
            namespace: "ns".into(),
            group: "g1".into(),
            version: "v1".into(),
            types: vec![store::TypeResources {
                type_url: ty.into(),
                version: "v1".into(),
                resources: vec![store::Resource {
                    name: "cert".into(),
                    version: "c1".into(),
                    sealed: Some(sealed),
                    ..Default::default()
                }],
            }],
            ..Default::default()
        }
        .encode_to_vec()
    }

    const KEY: &str = "k1 0101010101010101010101010101010101010101010101010101010101010101";

    #[test]
    fn sealed_resources_are_served_decrypted_and_never_without_the_key() {
        let keys = Arc::new(SecretKeys::parse(KEY).unwrap());
        let value = sealed_snapshot(&keys);
        let mut s = Snapshots::new(Keys::default(), Some(keys));
        s.apply(
            vec![
                put("/bootes/v1/nodes/n.ns", binding("ns/g1")),
                put("/bootes/v1/snapshots/ns/g1", value.clone()),
            ],
            2,
        );
        let snap = s.for_node("n.ns").unwrap();
        let cert = &snap.resources(ResourceType::Secret).unwrap()["cert"];
        assert_eq!(cert.value.as_ref(), b"private");

        let mut keyless = Snapshots::new(Keys::default(), None);
        let applied = keyless.apply(
            vec![
                put("/bootes/v1/nodes/n.ns", binding("ns/g1")),
                put("/bootes/v1/snapshots/ns/g1", value.clone()),
            ],
            2,
        );
        assert_eq!(applied.rejected, ["/bootes/v1/snapshots/ns/g1"]);
        assert!(keyless.for_node("n.ns").is_none());
        let err = Snapshot::decode("ns/g1", &value, None).unwrap_err();
        assert!(err.to_string().contains("\"cert\""), "{err}");

        let other = SecretKeys::parse(
            "k2 0202020202020202020202020202020202020202020202020202020202020202",
        )
        .unwrap();
        let err = Snapshot::decode("ns/g1", &value, Some(&other)).unwrap_err();
        assert!(err.to_string().contains("k1"), "{err}");
    }

    /// The table every reader of the prefix is tested against
    /// (`bootes_proto::values::damaged`): the same verdict, the same words.
    #[test]
    fn damaged_values_are_refused_with_the_shared_verdict() {
        let keys = Keys::default();
        let secrets = Arc::new(bootes_proto::values::damaged::secret_keys());
        let mut read = 0;
        for case in bootes_proto::values::damaged::cases(&keys) {
            if !matches!(keys.parse(&case.key), Some(Key::Node(_) | Key::Snapshot(_))) {
                continue; // status/ is not read by the xds-server
            }
            read += 1;
            let mut s = Snapshots::new(keys.clone(), Some(secrets.clone()));
            let err = s.store(&case.key, &case.value).unwrap_err();
            assert_eq!(err.to_string(), case.verdict.to_string(), "{}", case.what);
            let applied = s.apply(vec![put(&case.key, case.value)], 2);
            assert_eq!(
                applied.rejected,
                std::slice::from_ref(&case.key),
                "{}",
                case.what
            );
        }
        assert!(read >= 10, "the table covers nodes/ and snapshots/");
    }

    #[test]
    fn bindings_carry_namespace_and_service_account() {
        let mut s = Snapshots::new(Keys::default(), None);
        let value = store::NodeBinding {
            snapshot: "shop/g1".into(),
            namespace: "shop".into(),
            service_account: "edge".into(),
            ..Default::default()
        }
        .encode_to_vec();
        s.apply(vec![put("/bootes/v1/nodes/e.shop", value)], 2);
        let b = s.binding("e.shop").unwrap();
        assert_eq!(
            (b.namespace.as_str(), b.service_account.as_str()),
            ("shop", "edge")
        );
        assert!(s.binding("other.shop").is_none());
    }
}
