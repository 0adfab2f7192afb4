//! Kubernetes mode: object statuses written through the status subresource.
//!
//! [`KubeStatus`] is the reconciler's [`StatusSink`]. `report` only hands the
//! latest statuses to a background task (it never blocks the reconcile loop);
//! the task compares each object's computed status with the status the object
//! has (as the watchers last saw it, [`ObservedStatuses`]) and patches only
//! the objects whose status differs. Only the leader writes.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use tokio::sync::{watch, Notify};
use tokio::time::Instant;

use bootes_core::status::StatusSink;
use bootes_etcd::backoff::Backoff;

use crate::crd::{self, BootesStatus, Condition};
use crate::leader::Leadership;
use bootes_core::conditions::{self, Said, ACCEPTED, PROGRAMMED, RESOLVED_REFS};
use bootes_core::model::ObjectKey;
use bootes_core::verdict::ObjectStatus;

/// Field manager of every status write.
pub const FIELD_MANAGER: &str = "bootes-controller";
/// `meta/v1 Condition` caps messages at this many bytes.
const MAX_MESSAGE: usize = 32 * 1024;
/// Status patches in flight at once.
const CONCURRENCY: usize = 8;
/// At most one status write per object per this long: a rollout to 10,000
/// nodes changes the counts with every ACK; the changes in between are
/// coalesced into the next write.
const MIN_WRITE_INTERVAL: Duration = Duration::from_secs(1);

/// What the watchers last saw of an object's status.
#[derive(Clone, Debug, PartialEq)]
pub struct Observed {
    pub uid: String,
    /// `status` as the object has it; `None` when absent or unreadable (then
    /// it is rewritten).
    pub status: Option<BootesStatus>,
}

/// The statuses objects have, shared by the watchers (which record them) and
/// the status writer (which compares against them). Recording a status that
/// differs from the previous one wakes the writer, so a status changed by
/// someone else is put back.
#[derive(Clone, Debug, Default)]
pub struct ObservedStatuses {
    inner: Arc<Mutex<BTreeMap<ObjectKey, Observed>>>,
    changed: Arc<Notify>,
}

impl ObservedStatuses {
    pub fn record(&self, key: ObjectKey, observed: Observed) {
        let mut map = self.inner.lock().expect("observed statuses lock");
        let previous = map.insert(key, observed.clone());
        if previous.is_none_or(|p| p.status != observed.status) {
            self.changed.notify_one();
        }
    }

    pub fn forget(&self, key: &ObjectKey) {
        self.inner
            .lock()
            .expect("observed statuses lock")
            .remove(key);
    }

    pub fn get(&self, key: &ObjectKey) -> Option<Observed> {
        self.inner
            .lock()
            .expect("observed statuses lock")
            .get(key)
            .cloned()
    }
}

/// Reads the `status` of an object leniently: anything that is not a
/// well-formed Bootes status counts as absent.
pub fn parse_status(value: Option<&serde_json::Value>) -> Option<BootesStatus> {
    value
        .filter(|v| !v.is_null())
        .and_then(|v| serde_json::from_value(v.clone()).ok())
}

/// The status `object` should have: our conditions (`Accepted`,
/// `ResolvedRefs` and `Programmed`, worded by [`conditions`]; each
/// `lastTransitionTime` kept from `current` unless True/False flips, else
/// `now`; `ResolvedRefs` and `Programmed` absent while no resource is in
/// force), the other conditions of `current` untouched, `observedGeneration`,
/// `nodes` and the `programmed` column.
pub fn target_status(
    desired: &ObjectStatus,
    current: Option<&BootesStatus>,
    now: &str,
) -> BootesStatus {
    let condition = |said: Said| {
        let status = if said.ok { "True" } else { "False" };
        let previous = current.and_then(|c| c.conditions.iter().find(|c| c.type_ == said.type_));
        let last_transition_time = match previous {
            Some(p) if p.status == status && !p.last_transition_time.is_empty() => {
                p.last_transition_time.clone()
            }
            _ => now.to_string(),
        };
        Condition {
            type_: said.type_.to_string(),
            status: status.to_string(),
            reason: said.reason.to_string(),
            message: truncate(&said.message, MAX_MESSAGE),
            last_transition_time,
            observed_generation: Some(desired.observed_generation),
        }
    };
    let ours: Vec<Condition> = conditions::conditions(desired)
        .into_iter()
        .map(condition)
        .collect();
    let others = current.into_iter().flat_map(|c| {
        c.conditions
            .iter()
            .filter(|c| ![ACCEPTED, RESOLVED_REFS, PROGRAMMED].contains(&c.type_.as_str()))
            .cloned()
    });
    BootesStatus {
        conditions: ours.into_iter().chain(others).collect(),
        observed_generation: Some(desired.observed_generation),
        nodes: Some(i64::try_from(desired.nodes).unwrap_or(i64::MAX)),
        programmed: desired.rollout.as_ref().map(conditions::rollout_column),
    }
}

/// The status to write to an object, or `None` when it already has it.
pub fn plan_patch(desired: &ObjectStatus, observed: &Observed, now: &str) -> Option<BootesStatus> {
    let target = target_status(desired, observed.status.as_ref(), now);
    (observed.status.as_ref() != Some(&target)).then_some(target)
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max - '…'.len_utf8();
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// Now, in the second-precision RFC 3339 form Kubernetes uses.
pub fn now_rfc3339() -> String {
    rfc3339(k8s_openapi::jiff::Timestamp::now())
}

pub fn rfc3339(t: k8s_openapi::jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

pub type Statuses = Arc<BTreeMap<ObjectKey, ObjectStatus>>;

/// The reconciler's status sink in Kubernetes mode.
pub struct KubeStatus {
    latest: watch::Sender<Statuses>,
}

impl KubeStatus {
    /// Starts the background writer. It writes only while this replica leads.
    pub fn spawn(client: kube::Client, observed: ObservedStatuses, leadership: Leadership) -> Self {
        let (latest, rx) = watch::channel(Statuses::default());
        let writer = Writer {
            client,
            observed,
            leadership,
            min_interval: MIN_WRITE_INTERVAL,
            written_at: Default::default(),
        };
        tokio::spawn(crate::events_kube::run(
            writer.client.clone(),
            writer.observed.clone(),
            writer.leadership.clone(),
            rx.clone(),
        ));
        tokio::spawn(write_loop(writer, rx));
        Self { latest }
    }
}

impl StatusSink for KubeStatus {
    fn report(&mut self, statuses: &BTreeMap<ObjectKey, ObjectStatus>) {
        // Always wake the writer, even when nothing changed: leadership may
        // have, and a new leader must check every object.
        self.latest.send_replace(Arc::new(statuses.clone()));
    }
}

async fn write_loop(writer: Writer, mut latest: watch::Receiver<Statuses>) {
    let mut retry_at: Option<Instant> = None;
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
    loop {
        let retry = async {
            match retry_at {
                Some(t) => tokio::time::sleep_until(t).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            changed = latest.changed() => if changed.is_err() { return },
            () = writer.observed.changed.notified() => {},
            () = retry => {},
        }
        retry_at = None;
        let statuses = latest.borrow_and_update().clone();
        let round = writer.round(&statuses).await;
        if round.failed > 0 {
            retry_at = Some(Instant::now() + backoff.next_delay());
        } else {
            backoff.reset();
        }
        // Objects written too recently are written when their interval ends.
        retry_at = match (retry_at, round.deferred_until) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
}

/// Writes statuses that differ from what the objects have.
struct Writer {
    client: kube::Client,
    observed: ObservedStatuses,
    leadership: Leadership,
    min_interval: Duration,
    /// When each object's status was last written.
    written_at: Mutex<BTreeMap<ObjectKey, Instant>>,
}

/// What one round of [`Writer::round`] did.
#[derive(Debug, Default, PartialEq, Eq)]
struct Round {
    written: usize,
    failed: usize,
    /// Objects left for later (written less than `min_interval` ago): the
    /// earliest time one may be written.
    deferred_until: Option<Instant>,
}

impl Writer {
    /// Patches every object whose status differs from `statuses`; nothing
    /// unless this replica leads.
    async fn round(&self, statuses: &BTreeMap<ObjectKey, ObjectStatus>) -> Round {
        let mut round = Round::default();
        if self.leadership.borrow().is_none() {
            return round;
        }
        let now = now_rfc3339();
        let instant = Instant::now();
        let mut patches: Vec<(ObjectKey, BootesStatus)> = Vec::new();
        {
            let mut written_at = self.written_at.lock().expect("written_at lock");
            written_at.retain(|k, _| statuses.contains_key(k));
            for (key, desired) in statuses {
                let Some(current) = self.observed.get(key) else {
                    continue;
                };
                let Some(target) = plan_patch(desired, &current, &now) else {
                    continue;
                };
                let due = written_at.get(key).map(|t| *t + self.min_interval);
                match due {
                    Some(due) if due > instant => {
                        round.deferred_until =
                            Some(round.deferred_until.map_or(due, |d| d.min(due)));
                    }
                    _ => {
                        written_at.insert(key.clone(), instant);
                        patches.push((key.clone(), target));
                    }
                }
            }
        }
        if patches.is_empty() {
            return round;
        }
        let results: Vec<(ObjectKey, Result<DynamicObject, kube::Error>)> =
            futures::stream::iter(patches)
                .map(|(key, target)| {
                    let client = self.client.clone();
                    async move {
                        let result = patch_status(client, &key, &target).await;
                        (key, result)
                    }
                })
                .buffer_unordered(CONCURRENCY)
                .collect()
                .await;
        for (key, result) in results {
            match result {
                Ok(object) => {
                    round.written += 1;
                    tracing::debug!(object = %key, "status written");
                    // Compare the next round against what the write produced,
                    // not the (older) watch event.
                    self.observed.record(
                        key,
                        Observed {
                            uid: object.metadata.uid.unwrap_or_default(),
                            status: parse_status(object.data.get("status")),
                        },
                    );
                }
                Err(kube::Error::Api(e)) if e.code == 404 => {
                    // Deleted meanwhile; the watcher removes it from the index.
                    tracing::debug!(object = %key, "object gone before its status was written");
                }
                Err(e) => {
                    round.failed += 1;
                    tracing::warn!(object = %key, error = %e, "writing status failed; will retry");
                }
            }
        }
        round
    }
}

async fn patch_status(
    client: kube::Client,
    key: &ObjectKey,
    status: &BootesStatus,
) -> Result<DynamicObject, kube::Error> {
    let api: Api<DynamicObject> =
        Api::namespaced_with(client, &key.namespace, &crd::api_resource(key.kind));
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.to_string()),
        ..PatchParams::default()
    };
    let body = serde_json::json!({ "status": status });
    api.patch_status(&key.name, &params, &Patch::Merge(&body))
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use bootes_core::verdict::{Reason, Verdict};
    use bootes_envoy::convert::ConfigError;
    use bootes_proto::ResourceType;
    use serde_json::json;

    const T0: &str = "2024-01-01T00:00:00Z";
    const T1: &str = "2024-01-01T00:05:00Z";

    /// A status with `reason`; `message` is `path: problem` for an
    /// invalid one.
    fn desired(reason: Reason, message: &str, generation: i64, nodes: usize) -> ObjectStatus {
        let verdict = match reason {
            Reason::Valid => Verdict::Valid {
                warnings: Vec::new(),
            },
            Reason::InvalidConfig | Reason::TooLarge => {
                let (path, problem) = message.split_once(": ").unwrap_or(("spec", message));
                Verdict::Invalid {
                    errors: vec![ConfigError::new(path, problem)],
                    too_large: reason == Reason::TooLarge,
                    in_force: None,
                }
            }
            Reason::EnvoyRejected | Reason::EnvoyUnavailable => Verdict::EnvoyRejected {
                reason: message.into(),
                judged: reason == Reason::EnvoyRejected,
                group: "ns/g".into(),
                together: false,
                nodes,
            },
            Reason::Conflict => Verdict::Conflict {
                resource: "c".into(),
                winner: ObjectKey {
                    kind: ResourceType::Cluster,
                    namespace: "ns".into(),
                    name: "older".into(),
                },
            },
        };
        ObjectStatus {
            verdict,
            observed_generation: generation,
            nodes,
            refs: None,
            rollout: None,
        }
    }

    fn observed(status: Option<BootesStatus>) -> Observed {
        Observed {
            uid: "u".into(),
            status,
        }
    }

    #[test]
    fn first_status_is_written_with_every_field() {
        let target = plan_patch(&desired(Reason::Valid, "", 3, 2), &observed(None), T0).unwrap();
        let json = serde_json::to_value(&target).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "conditions": [{
                    "type": "Accepted", "status": "True", "reason": "Valid", "message": "",
                    "lastTransitionTime": T0, "observedGeneration": 3
                }],
                "observedGeneration": 3,
                "nodes": 2
            })
        );
    }

    #[test]
    fn unchanged_status_is_not_written_again() {
        let d = desired(
            Reason::InvalidConfig,
            "spec.config.conect_timeout: unknown field",
            2,
            0,
        );
        let written = plan_patch(&d, &observed(None), T0).unwrap();
        // Later, the object has what was written: nothing to do, even though
        // the clock moved on.
        assert_eq!(plan_patch(&d, &observed(Some(written)), T1), None);
    }

    #[test]
    fn transition_time_changes_only_when_accepted_flips() {
        let valid = desired(Reason::Valid, "", 1, 1);
        let s0 = plan_patch(&valid, &observed(None), T0).unwrap();

        // More nodes, still accepted: written, transition time kept.
        let s1 = plan_patch(
            &desired(Reason::Valid, "", 1, 5),
            &observed(Some(s0.clone())),
            T1,
        )
        .unwrap();
        assert_eq!(s1.nodes, Some(5));
        assert_eq!(s1.conditions[0].last_transition_time, T0);

        // Rejected: flips, new transition time, reason and message.
        let bad = desired(Reason::InvalidConfig, "spec.config.x: unknown field", 2, 5);
        let s2 = plan_patch(&bad, &observed(Some(s1.clone())), T1).unwrap();
        let c = &s2.conditions[0];
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("False", "InvalidConfig")
        );
        assert_eq!(c.message, "spec.config.x: unknown field");
        assert_eq!(c.last_transition_time, T1);
        assert_eq!(c.observed_generation, Some(2));
        assert_eq!(s2.observed_generation, Some(2));

        // A conflict is also False: no flip from InvalidConfig.
        let conflict = desired(Reason::Conflict, "CDS \"c\" is already provided by …", 3, 0);
        let s3 = plan_patch(&conflict, &observed(Some(s2)), "2024-01-02T00:00:00Z").unwrap();
        assert_eq!(s3.conditions[0].reason, "Conflict");
        assert_eq!(s3.conditions[0].last_transition_time, T1);
    }

    #[test]
    fn other_conditions_are_kept_and_garbage_is_replaced() {
        let mut current =
            plan_patch(&desired(Reason::Valid, "", 1, 1), &observed(None), T0).unwrap();
        current.conditions.push(Condition {
            type_: "Reviewed".into(),
            status: "True".into(),
            reason: "ByHand".into(),
            message: String::new(),
            last_transition_time: T0.into(),
            observed_generation: None,
        });
        let target = plan_patch(
            &desired(Reason::Valid, "", 2, 1),
            &observed(Some(current)),
            T1,
        )
        .unwrap();
        let types: Vec<&str> = target.conditions.iter().map(|c| c.type_.as_str()).collect();
        assert_eq!(types, ["Accepted", "Reviewed"]);

        // A status that is not ours to read counts as absent and is rewritten.
        let garbage = serde_json::json!({"conditions": "yes", "nodes": "many"});
        assert_eq!(parse_status(Some(&garbage)), None);
        assert_eq!(parse_status(Some(&serde_json::Value::Null)), None);
        assert!(plan_patch(&desired(Reason::Valid, "", 1, 1), &observed(None), T0).is_some());
    }

    #[test]
    fn resolved_refs_is_a_condition_of_its_own_with_its_own_transitions() {
        use bootes_core::xref::Unresolved;
        use bootes_envoy::convert::ConfigError;
        let mut d = desired(Reason::Valid, "", 1, 2);
        d.refs = Some(Vec::new());
        let s0 = plan_patch(&d, &observed(None), T0).unwrap();
        let refs = &s0.conditions[1];
        assert_eq!(
            (
                refs.type_.as_str(),
                refs.status.as_str(),
                refs.reason.as_str()
            ),
            ("ResolvedRefs", "True", "ResolvedRefs")
        );
        d.refs = Some(vec![Unresolved {
            problem: ConfigError::new("spec.config.x", "route to cluster \"c\": no Cluster object provides it to 1 of the 2 nodes this object reaches: p1.a"),
            envoy_rejects: false,
            reason: "UnresolvedReferences",
        }]);
        let s1 = plan_patch(&d, &observed(Some(s0)), T1).unwrap();
        let (accepted, refs) = (&s1.conditions[0], &s1.conditions[1]);
        assert_eq!(
            (
                accepted.status.as_str(),
                accepted.last_transition_time.as_str()
            ),
            ("True", T0)
        );
        assert_eq!(
            (
                refs.status.as_str(),
                refs.reason.as_str(),
                refs.last_transition_time.as_str()
            ),
            ("False", "UnresolvedReferences", T1)
        );
        assert!(
            refs.message
                .starts_with("spec.config.x: route to cluster \"c\""),
            "{}",
            refs.message
        );
        // Nothing in force any more: the condition goes.
        d.refs = None;
        let s2 = plan_patch(&d, &observed(Some(s1)), T1).unwrap();
        assert_eq!(s2.conditions.len(), 1);
    }

    #[test]
    fn long_messages_are_cut_at_a_character_boundary() {
        let long = "é".repeat(MAX_MESSAGE);
        let target = target_status(&desired(Reason::InvalidConfig, &long, 1, 0), None, T0);
        let message = &target.conditions[0].message;
        assert!(message.len() <= MAX_MESSAGE);
        assert!(message.ends_with('…'));
    }

    #[test]
    fn observed_statuses_wake_the_writer_only_when_the_status_changes() {
        let store = ObservedStatuses::default();
        let key = ObjectKey {
            kind: ResourceType::Cluster,
            namespace: "ns".into(),
            name: "c".into(),
        };
        let waiter = store.changed.clone();
        store.record(key.clone(), observed(None));
        // The permit of the first record is consumed here...
        futures::executor::block_on(waiter.notified());
        // ...and recording the same status again stores no new one.
        store.record(key.clone(), observed(None));
        let pending = waiter.notified();
        futures::pin_mut!(pending);
        assert!(futures::FutureExt::now_or_never(pending.as_mut()).is_none());
        store.forget(&key);
        assert_eq!(store.get(&key), None);
    }

    #[test]
    fn timestamps_are_utc_seconds() {
        let t: k8s_openapi::jiff::Timestamp = "2024-03-04T05:06:07.89+02:00".parse().unwrap();
        assert_eq!(rfc3339(t), "2024-03-04T03:06:07Z");
    }

    /// The writer against the Kubernetes API stand-in (in process): writes
    /// only as leader, only what differs, and puts back a status changed by
    /// someone else.
    #[tokio::test]
    async fn writer_patches_the_status_subresource_only_when_needed() {
        use kube::api::PostParams;

        let client = crd::standin_client(ResourceType::Cluster, "ns").await;
        let pp = PostParams::default();
        let clusters: Api<crd::Cluster> = Api::namespaced(client.clone(), "ns");
        let object: crd::Cluster = serde_json::from_value(json!({
            "apiVersion": "bootes.io/v1", "kind": "Cluster",
            "metadata": {"name": "c", "namespace": "ns"},
            "spec": {"config": {"name": "c"}},
        }))
        .unwrap();
        let created = clusters.create(&pp, &object).await.unwrap();

        let key = ObjectKey {
            kind: ResourceType::Cluster,
            namespace: "ns".into(),
            name: "c".into(),
        };
        let observed = ObservedStatuses::default();
        observed.record(
            key.clone(),
            Observed {
                uid: created.metadata.uid.clone().unwrap(),
                status: None,
            },
        );
        let (leader, leadership) = tokio::sync::watch::channel(None);
        let writer = Writer {
            client,
            observed: observed.clone(),
            leadership,
            min_interval: Duration::ZERO,
            written_at: Default::default(),
        };
        let statuses = BTreeMap::from([(key.clone(), desired(Reason::Valid, "", 1, 3))]);

        // A follower writes nothing.
        assert_eq!(writer.round(&statuses).await, Round::default());
        assert_eq!(clusters.get_status("c").await.unwrap().status, None);

        // The leader writes it once.
        leader.send_replace(Some(bootes_proto::Fence {
            key: "leader".into(),
            create_revision: 1,
        }));
        let once = Round {
            written: 1,
            ..Round::default()
        };
        assert_eq!(writer.round(&statuses).await, once);
        let status = clusters.get_status("c").await.unwrap().status.unwrap();
        assert_eq!(status.nodes, Some(3));
        assert_eq!(status.conditions[0].reason, "Valid");
        assert_eq!(writer.round(&statuses).await, Round::default());

        // A change is written; the same change again is not.
        let rejected = BTreeMap::from([(
            key.clone(),
            desired(Reason::InvalidConfig, "spec.config.x: unknown field", 1, 0),
        )]);
        assert_eq!(writer.round(&rejected).await, once);
        assert_eq!(writer.round(&rejected).await, Round::default());
        let status = clusters.get_status("c").await.unwrap().status.unwrap();
        let condition = &status.conditions[0];
        assert_eq!(
            (condition.status.as_str(), condition.reason.as_str()),
            ("False", "InvalidConfig")
        );
        assert_eq!(condition.message, "spec.config.x: unknown field");

        // Someone else overwrote it (as the watcher would report): put back.
        let mut foreign = status.clone();
        foreign.nodes = Some(42);
        observed.record(
            key.clone(),
            Observed {
                uid: String::new(),
                status: Some(foreign),
            },
        );
        assert_eq!(writer.round(&rejected).await, once);
        assert_eq!(
            clusters
                .get_status("c")
                .await
                .unwrap()
                .status
                .unwrap()
                .nodes,
            Some(0)
        );

        // An object deleted meanwhile is not an error.
        clusters.delete("c", &Default::default()).await.unwrap();
        observed.record(
            key.clone(),
            Observed {
                uid: String::new(),
                status: None,
            },
        );
        assert_eq!(writer.round(&statuses).await, Round::default());
    }

    #[test]
    fn programmed_is_a_condition_and_a_column_with_its_own_transitions() {
        use bootes_core::rollout::{Example, Nodes, Rollout};
        let mut d = desired(Reason::Valid, "", 7, 3);
        d.rollout = Some(Rollout {
            generation: 7,
            running: 1,
            pending: Nodes {
                count: 1,
                examples: vec![Example {
                    node: "p2.ns".into(),
                    detail: String::new(),
                }],
            },
            rejected: Nodes::default(),
            not_connected: Nodes {
                count: 1,
                examples: vec![Example {
                    node: "p3.ns".into(),
                    detail: String::new(),
                }],
            },
        });
        let s0 = target_status(&d, None, T0);
        assert_eq!(s0.programmed.as_deref(), Some("1/2"));
        let p = s0
            .conditions
            .iter()
            .find(|c| c.type_ == PROGRAMMED)
            .unwrap();
        assert_eq!((p.status.as_str(), p.reason.as_str()), ("False", "Pending"));
        assert_eq!(
            p.message,
            "1/2 nodes run generation 7; 1 pending (p2.ns); 0 rejected; 1 not connected (p3.ns)"
        );
        let r = d.rollout.as_mut().unwrap();
        r.running = 2;
        r.pending = Nodes::default();
        let s1 = target_status(&d, Some(&s0), T1);
        let p = s1
            .conditions
            .iter()
            .find(|c| c.type_ == PROGRAMMED)
            .unwrap();
        assert_eq!(
            (
                p.status.as_str(),
                p.reason.as_str(),
                p.last_transition_time.as_str()
            ),
            ("True", "Programmed", T1)
        );
        assert_eq!(s1.programmed.as_deref(), Some("2/2"));
    }

    /// At most one write per object per interval: the changes in between
    /// are written together when it ends.
    #[tokio::test]
    async fn status_writes_are_coalesced_per_object() {
        use kube::api::PostParams;
        let client = crd::standin_client(ResourceType::Cluster, "ns").await;
        let clusters: Api<crd::Cluster> = Api::namespaced(client.clone(), "ns");
        let object: crd::Cluster = serde_json::from_value(json!({
            "apiVersion": "bootes.io/v1", "kind": "Cluster",
            "metadata": {"name": "c", "namespace": "ns"},
            "spec": {"config": {"name": "c"}},
        }))
        .unwrap();
        clusters
            .create(&PostParams::default(), &object)
            .await
            .unwrap();
        let key = ObjectKey {
            kind: ResourceType::Cluster,
            namespace: "ns".into(),
            name: "c".into(),
        };
        let observed = ObservedStatuses::default();
        observed.record(
            key.clone(),
            Observed {
                uid: String::new(),
                status: None,
            },
        );
        let (_leader, leadership) = tokio::sync::watch::channel(Some(bootes_proto::Fence {
            key: "leader".into(),
            create_revision: 1,
        }));
        let writer = Writer {
            client,
            observed,
            leadership,
            min_interval: Duration::from_secs(3600),
            written_at: Default::default(),
        };
        let at = |nodes| BTreeMap::from([(key.clone(), desired(Reason::Valid, "", 1, nodes))]);
        assert_eq!(writer.round(&at(1)).await.written, 1);
        let round = writer.round(&at(2)).await;
        assert_eq!(round.written, 0);
        assert!(round.deferred_until.is_some_and(|t| t > Instant::now()));
        let status = clusters.get_status("c").await.unwrap().status.unwrap();
        assert_eq!(
            status.nodes,
            Some(1),
            "not written before the interval ends"
        );
    }
}
