//! Group snapshots built once per change: [`Index::desired`](super::Index::desired)
//! runs after every event, but an edit of one object changes only the
//! groups it selects. A group's snapshot depends only on its selecting
//! objects' identities and the resources in force, so it is rebuilt only
//! when one of those changed (compared by pointer: a resource is a new `Arc`
//! exactly when it was converted again).

use std::collections::BTreeMap;
use std::sync::Arc;

use bootes_envoy::convert::Converted;
use bootes_proto::store;

use super::{fit_snapshot, Entry};
use crate::model::ObjectKey;

/// What a built snapshot depended on, per selecting object (in precedence
/// order): its key and uid, and the resource in force with its generation.
/// The `Arc`s are kept so that a pointer cannot be reused by another
/// resource while the memo holds it.
#[derive(Debug, PartialEq)]
struct Inputs(Vec<Input>);

/// One selecting object: key, uid, and the resource in force with its generation.
type Input = (ObjectKey, String, Option<(ArcEq, i64)>);

/// A group: its namespace and its selecting objects.
type GroupKey = (String, Vec<ObjectKey>);

#[derive(Debug)]
struct ArcEq(Arc<Converted>);

impl PartialEq for ArcEq {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Inputs {
    fn of(entries: &[&Entry]) -> Self {
        Inputs(
            entries
                .iter()
                .map(|e| {
                    (
                        e.object.key.clone(),
                        e.object.uid.clone(),
                        e.accepted
                            .as_ref()
                            .map(|a| (ArcEq(a.resource.clone()), a.generation)),
                    )
                })
                .collect(),
        )
    }
}

/// One group, built.
#[derive(Debug)]
pub(super) struct Built {
    inputs: Inputs,
    pub snapshot: Arc<store::Snapshot>,
    pub encoded: Arc<[u8]>,
    /// Indices (into the entries) of the objects whose resource made it in.
    pub winners: Vec<usize>,
    /// (loser, winner) index pairs of conflicts.
    pub losers: Vec<(usize, usize)>,
    /// Indices of the objects left out so that the snapshot fits in one
    /// etcd value, and its size with them.
    pub left_out: Vec<usize>,
    pub full_bytes: usize,
}

/// Built groups by (namespace, selecting objects).
#[derive(Debug, Default)]
pub(super) struct Memo(BTreeMap<GroupKey, Arc<Built>>);

pub(super) struct Round {
    previous: BTreeMap<GroupKey, Arc<Built>>,
    current: BTreeMap<GroupKey, Arc<Built>>,
}

impl Round {
    /// Starts a round: the groups of the previous one, to reuse.
    pub fn new(memo: Memo) -> Self {
        Round {
            previous: memo.0,
            current: BTreeMap::new(),
        }
    }

    /// The group of `entries` (in precedence order), built unless nothing
    /// it depends on changed since the previous round.
    pub fn get(&mut self, namespace: &str, entries: &[&Entry]) -> Arc<Built> {
        let key = (
            namespace.to_string(),
            entries.iter().map(|e| e.object.key.clone()).collect(),
        );
        let inputs = Inputs::of(entries);
        let built = match self.previous.remove(&key) {
            Some(built) if built.inputs == inputs => built,
            _ => Arc::new(build(namespace, entries, inputs)),
        };
        self.current.insert(key, built.clone());
        built
    }

    /// Ends the round: groups of `recomputed` namespaces that were not
    /// asked for are gone; other namespaces' groups are kept as they were.
    pub fn finish<'a>(mut self, recomputed: impl IntoIterator<Item = &'a str>) -> Memo {
        let recomputed: std::collections::BTreeSet<&str> = recomputed.into_iter().collect();
        self.previous
            .retain(|(namespace, _), _| !recomputed.contains(namespace.as_str()));
        self.current.append(&mut self.previous);
        Memo(self.current)
    }
}

fn build(namespace: &str, entries: &[&Entry], inputs: Inputs) -> Built {
    use prost::Message;
    let fitted = fit_snapshot(namespace, entries);
    let snapshot = fitted.snapshot;
    let index_of = |key: &ObjectKey| {
        entries
            .iter()
            .position(|e| &e.object.key == key)
            .expect("a winner or loser is one of the entries")
    };
    Built {
        inputs,
        encoded: snapshot.encode_to_vec().into(),
        snapshot: Arc::new(snapshot),
        winners: fitted.winners.into_iter().map(index_of).collect(),
        losers: fitted
            .losers
            .into_iter()
            .map(|(l, w)| (index_of(l), index_of(w)))
            .collect(),
        left_out: fitted.left_out.into_iter().map(index_of).collect(),
        full_bytes: fitted.full_bytes,
    }
}
