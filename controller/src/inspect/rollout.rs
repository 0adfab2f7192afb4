//! `inspect rollout`: per object, how far its generation in etcd has
//! reached the nodes it targets, from etcd alone (snapshots, bindings and
//! the xds-servers' `status/` records), computed by the same
//! [`bootes_core::rollout`] as the `Programmed` condition. With `--wait`,
//! polls until the named objects are programmed (exit 0), one is rejected
//! (exit 1) or the time is up (exit 2).

use std::collections::BTreeMap;
use std::time::Duration;

use bootes_core::conditions;
use bootes_core::model::ObjectKey;
use bootes_core::rollout::{self, Nodes, Progress, Records, Rollout};
use bootes_proto::ResourceType;
use serde_json::{json, Value};

use super::Store;

/// Exit codes of `--wait`.
pub const EXIT_REJECTED: u8 = 1;
pub const EXIT_TIMEOUT: u8 = 2;

/// How often `--wait` reads etcd again.
pub const POLL: Duration = Duration::from_millis(500);

/// Parses `KIND/NAMESPACE/NAME` (kind case-insensitive: `cluster/demo/web`).
pub fn parse_object(s: &str) -> Result<ObjectKey, String> {
    let mut parts = s.splitn(3, '/');
    let (Some(kind), Some(namespace), Some(name)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(format!(
            "{s:?}: expected KIND/NAMESPACE/NAME, e.g. Cluster/demo/web"
        ));
    };
    let kind = ResourceType::ALL
        .into_iter()
        .find(|t| t.kind().eq_ignore_ascii_case(kind))
        .ok_or_else(|| {
            let kinds: Vec<&str> = ResourceType::ALL.iter().map(|t| t.kind()).collect();
            format!("{s:?}: unknown kind {kind:?} (one of {})", kinds.join(", "))
        })?;
    if namespace.is_empty() || name.is_empty() {
        return Err(format!(
            "{s:?}: expected KIND/NAMESPACE/NAME, e.g. Cluster/demo/web"
        ));
    }
    Ok(ObjectKey {
        kind,
        namespace: namespace.to_string(),
        name: name.to_string(),
    })
}

/// Every object's rollout in `store`, naming every node.
pub fn rollouts(store: &Store) -> BTreeMap<ObjectKey, Rollout> {
    let mut nodes: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (node, binding) in &store.nodes {
        nodes
            .entry(binding.snapshot.as_str())
            .or_default()
            .push(node.clone());
    }
    let records = Records::new(store.statuses.values().flat_map(|r| r.values().cloned()));
    let groups = store
        .snapshots
        .iter()
        .map(|(key, snapshot)| rollout::Group {
            snapshot,
            nodes: nodes.get(key.as_str()).map_or(&[], Vec::as_slice),
        });
    rollout::rollouts(groups, records, usize::MAX)
}

/// Where one named object stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Standing {
    /// No resource of it in etcd (yet), or an older generation than asked.
    Missing,
    Rollout(Rollout),
}

impl Standing {
    fn progress(&self) -> Option<Progress> {
        match self {
            Standing::Missing => None,
            Standing::Rollout(r) => Some(r.progress()),
        }
    }

    /// One progress line.
    pub fn line(&self, key: &ObjectKey, generation: Option<i64>) -> String {
        match self {
            Standing::Missing => match generation {
                Some(g) => format!("{key}: generation {g} not in etcd yet"),
                None => format!("{key}: not in etcd (yet)"),
            },
            Standing::Rollout(r) => {
                let said = conditions::rollout_said(r);
                format!(
                    "{key}: {}: {}",
                    said.reason,
                    conditions::rollout_counts(&brief(r))
                )
            }
        }
    }
}

/// The rollout with a few examples, for progress lines.
fn brief(r: &Rollout) -> Rollout {
    let cut = |n: &Nodes| Nodes {
        count: n.count,
        examples: n
            .examples
            .iter()
            .take(conditions::EXAMPLES)
            .cloned()
            .collect(),
    };
    Rollout {
        pending: cut(&r.pending),
        rejected: cut(&r.rejected),
        not_connected: cut(&r.not_connected),
        ..r.clone()
    }
}

/// The standing of each of `wanted` (every object in etcd when empty), at
/// `generation` or later when given.
pub fn standings(
    store: &Store,
    wanted: &[ObjectKey],
    generation: Option<i64>,
) -> BTreeMap<ObjectKey, Standing> {
    let mut all = rollouts(store);
    if wanted.is_empty() {
        return all
            .into_iter()
            .map(|(k, r)| (k, Standing::Rollout(r)))
            .collect();
    }
    wanted
        .iter()
        .map(|key| {
            let standing = match all.remove(key) {
                Some(r) if generation.is_none_or(|g| r.generation >= g) => Standing::Rollout(r),
                _ => Standing::Missing,
            };
            (key.clone(), standing)
        })
        .collect()
}

/// The exit code once every standing is final: `Some(0)` when all are
/// programmed, `Some(1)` when one is rejected, `None` while waiting.
pub fn verdict(standings: &BTreeMap<ObjectKey, Standing>) -> Option<u8> {
    let progress: Vec<Option<Progress>> = standings.values().map(Standing::progress).collect();
    if progress.contains(&Some(Progress::Rejected)) {
        Some(EXIT_REJECTED)
    } else if progress.iter().all(|p| *p == Some(Progress::Programmed)) {
        Some(0)
    } else {
        None
    }
}

/// The output of `inspect rollout`.
pub fn value(standings: &BTreeMap<ObjectKey, Standing>, errors: Value) -> Value {
    let objects: Vec<Value> = standings
        .iter()
        .map(|(key, standing)| {
            let Standing::Rollout(r) = standing else {
                return json!({"object": key.to_string(), "inEtcd": false});
            };
            let said = conditions::rollout_said(r);
            json!({
                "object": key.to_string(),
                "generation": r.generation,
                "programmed": if said.ok { "True" } else { "False" },
                "reason": said.reason,
                "message": conditions::rollout_counts(&brief(r)),
                "targeted": r.connected() + r.not_connected.count,
                "running": r.running,
                "pending": node_names(&r.pending),
                "rejected": r.rejected.examples.iter()
                    .map(|e| json!({"node": e.node, "error": e.detail}))
                    .collect::<Vec<_>>(),
                "notConnected": node_names(&r.not_connected),
            })
        })
        .collect();
    json!({"objects": objects, "errors": errors})
}

fn node_names(n: &Nodes) -> Vec<&str> {
    n.examples.iter().map(|e| e.node.as_str()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bootes_proto::store;

    const CDS: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";

    fn store_with(records: Vec<store::NodeStatus>) -> Store {
        let resource = store::Resource {
            name: "web".into(),
            version: "v2".into(),
            source: Some(store::ObjectRef {
                kind: "Cluster".into(),
                namespace: "demo".into(),
                name: "web".into(),
                uid: "u".into(),
                generation: 2,
            }),
            ..Default::default()
        };
        let mut s = Store::default();
        s.snapshots.insert(
            "demo/g".into(),
            store::Snapshot {
                namespace: "demo".into(),
                group: "g".into(),
                types: vec![store::TypeResources {
                    type_url: CDS.into(),
                    resources: vec![resource],
                    ..Default::default()
                }],
                ..Default::default()
            },
        );
        for n in ["a.demo", "b.demo", "c.demo"] {
            s.nodes.insert(
                n.into(),
                store::NodeBinding {
                    snapshot: "demo/g".into(),
                    ..Default::default()
                },
            );
        }
        for r in records {
            s.statuses
                .entry(r.node_id.clone())
                .or_default()
                .insert(r.replica.clone(), r);
        }
        s
    }

    fn record(node: &str, acked: &[&str], nacked: &[&str]) -> store::NodeStatus {
        store::NodeStatus {
            node_id: node.into(),
            replica: "r1".into(),
            types: vec![store::TypeStatus {
                type_url: CDS.into(),
                acked_resource_versions: acked.iter().map(|s| s.to_string()).collect(),
                nacked_resource_versions: nacked.iter().map(|s| s.to_string()).collect(),
                nack_detail: if nacked.is_empty() {
                    ""
                } else {
                    "no such file"
                }
                .into(),
                ..Default::default()
            }],
        }
    }

    fn web() -> ObjectKey {
        parse_object("cluster/demo/web").unwrap()
    }

    #[test]
    fn lists_running_pending_rejected_and_not_connected_nodes_and_exits_accordingly() {
        let store = store_with(vec![
            record("a.demo", &["v2"], &[]),
            record("b.demo", &["v1"], &["v2"]),
        ]);
        let rejected = standings_of(&store, None);
        assert_eq!(verdict(&rejected), Some(EXIT_REJECTED));
        let v = value(&rejected, json!([]));
        let o = &v["objects"][0];
        assert_eq!(o["object"], "Cluster demo/web");
        assert_eq!(
            (o["generation"].as_i64(), o["running"].as_u64()),
            (Some(2), Some(1))
        );
        assert_eq!(o["targeted"], 3);
        assert_eq!(
            o["rejected"],
            json!([{"node": "b.demo", "error": "no such file"}])
        );
        assert_eq!(o["notConnected"], json!(["c.demo"]));
        assert_eq!(o["reason"], "Rejected");
        assert_eq!(
            rejected[&web()].line(&web(), None),
            "Cluster demo/web: Rejected: 1/2 nodes run generation 2; 0 pending; 1 rejected (b.demo: no such file); 1 not connected (c.demo)"
        );

        let store = store_with(vec![
            record("a.demo", &["v2"], &[]),
            record("b.demo", &[], &[]),
        ]);
        assert_eq!(verdict(&standings_of(&store, None)), None, "b is pending");

        let store = store_with(vec![
            record("a.demo", &["v2"], &[]),
            record("b.demo", &["v2"], &[]),
        ]);
        assert_eq!(verdict(&standings_of(&store, None)), Some(0));
        // Waiting for generation 3: generation 2 in etcd is not it.
        assert_eq!(verdict(&standings_of(&store, Some(3))), None);
        assert_eq!(standings_of(&store, Some(3))[&web()], Standing::Missing);
    }

    fn standings_of(store: &Store, generation: Option<i64>) -> BTreeMap<ObjectKey, Standing> {
        standings(store, &[web()], generation)
    }

    #[test]
    fn object_names_are_checked() {
        assert_eq!(web().kind, ResourceType::Cluster);
        assert!(parse_object("demo/web")
            .unwrap_err()
            .contains("KIND/NAMESPACE/NAME"));
        assert!(parse_object("Clusterz/demo/web")
            .unwrap_err()
            .contains("unknown kind"));
        assert!(parse_object("Cluster//web").is_err());
    }
}
