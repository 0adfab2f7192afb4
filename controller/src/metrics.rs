//! Prometheus metrics of the controller (`/metrics` on `--metrics-addr`),
//! every series prefixed `bootes_controller_`, and what `/readyz` answers
//! ([`readiness`]).
//!
//! The reconciler records into [`Metrics`] after each sync
//! ([`Metrics::observe_objects`], [`Metrics::observe_write`], …); leadership
//! is read from the election's [`Leadership`] when scraped.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use bootes_proto::ResourceType;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::leader::Leadership;
use bootes_core::model::ObjectKey;
use bootes_core::rollout::Progress;
use bootes_core::store::WriteStats;
use bootes_core::verdict::{ObjectStatus, Reason};

/// The `reason` label of `objects`: `Accepted`'s reasons, and `Rejected`
/// for a valid object an Envoy NACKed (condition `Programmed`).
const REASONS: [&str; 7] = [
    Reason::Valid.as_str(),
    Reason::InvalidConfig.as_str(),
    Reason::TooLarge.as_str(),
    Reason::Conflict.as_str(),
    Reason::EnvoyRejected.as_str(),
    Reason::EnvoyUnavailable.as_str(),
    Progress::Rejected.as_str(),
];

/// The `result` label of `envoy_validate_runs_total`: Envoy's answer on one
/// bootstrap, or `failed` (not run, killed after the timeout).
pub const ENVOY_RESULTS: [&str; 3] = ["accepted", "rejected", "failed"];

/// The (status, reason) pairs of `programmed_objects`.
const PROGRAMMED: [(&str, &str); 4] = [
    ("True", "Programmed"),
    ("False", "Pending"),
    ("False", "Rejected"),
    ("False", "NotAccepted"),
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProgrammedLabels {
    pub kind: &'static str,
    pub status: &'static str,
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ObjectLabels {
    pub kind: &'static str,
    pub reason: &'static str,
}

/// The `op` label of `bootes_controller_etcd_errors_total`.
pub const ETCD_OPS: [&str; 4] = ["connect", "read", "write", "watch"];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OpLabel {
    pub op: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    pub result: &'static str,
}

/// What `/readyz` reports.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Health {
    /// The error of the last write to etcd, while it is failing.
    pub write_error: Option<String>,
    pub objects: usize,
    pub nodes: usize,
    pub groups: usize,
}

#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    objects: Family<ObjectLabels, Gauge>,
    programmed: Family<ProgrammedLabels, Gauge>,
    convergence: Family<KindLabel, Histogram>,
    /// Per object: the generation last seen, when it was first seen, and
    /// whether its convergence was recorded.
    rollouts: Mutex<BTreeMap<ObjectKey, (i64, std::time::Instant, bool)>>,
    rejected_objects: Gauge,
    unresolved_objects: Gauge,
    nodes: Gauge,
    groups: Gauge,
    oversized_snapshots: Gauge,
    endpoint_slices: Gauge,
    service_endpoints: Gauge,
    sync_duration: Histogram,
    etcd_write_duration: Histogram,
    syncs: Family<ResultLabel, Counter>,
    etcd_txns: Counter,
    etcd_ops: Family<OpLabel, Counter>,
    etcd_bytes: Counter,
    last_write: Gauge,
    leader: Gauge,
    leader_changes: Counter,
    /// Whether this replica led at the last [`Metrics::observe_leadership`].
    leading: AtomicBool,
    etcd_errors: Family<OpLabel, Counter>,
    webhook_reviews: Family<ResultLabel, Counter>,
    envoy_runs: Family<ResultLabel, Counter>,
    envoy_duration: Histogram,
    envoy_withheld: Gauge,
    /// Set by the election; read when scraped.
    leadership: Mutex<Option<Leadership>>,
    health: Mutex<Health>,
}

impl Metrics {
    pub fn new() -> Self {
        let mut r = Registry::with_prefix("bootes_controller");
        let objects = Family::<ObjectLabels, Gauge>::default();
        r.register(
            "objects",
            "Bootes objects by kind and status reason (Valid, InvalidConfig, TooLarge, Conflict, EnvoyRejected, EnvoyUnavailable, Rejected)",
            objects.clone(),
        );
        let programmed = Family::<ProgrammedLabels, Gauge>::default();
        r.register(
            "programmed_objects",
            "Bootes objects by kind and condition Programmed (status True/False, reason Programmed, Pending, Rejected, NotAccepted)",
            programmed.clone(),
        );
        let convergence = Family::<KindLabel, Histogram>::new_with_constructor(|| {
            Histogram::new([
                0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
            ])
        });
        r.register(
            "rollout_convergence_seconds",
            "From the controller seeing an object's new generation to its Programmed=True",
            convergence.clone(),
        );
        let rejected_objects = Gauge::default();
        r.register(
            "rejected_objects",
            "Objects not accepted (any reason but Valid)",
            rejected_objects.clone(),
        );
        let unresolved_objects = Gauge::default();
        r.register(
            "unresolved_objects",
            "Objects whose ResolvedRefs condition is False: a name they refer to does not reach some of their nodes",
            unresolved_objects.clone(),
        );
        let nodes = Gauge::default();
        r.register("nodes", "Nodes (Envoys) bound to a snapshot", nodes.clone());
        let groups = Gauge::default();
        r.register("groups", "Groups, i.e. snapshots in etcd", groups.clone());
        let oversized_snapshots = Gauge::default();
        r.register(
            "oversized_snapshots",
            "Snapshots not written because they exceed etcd's request size limit",
            oversized_snapshots.clone(),
        );
        let endpoint_slices = Gauge::default();
        r.register(
            "endpoint_slices",
            "EndpointSlices of Services watched (or read from the manifest directory)",
            endpoint_slices.clone(),
        );
        let service_endpoints = Gauge::default();
        r.register(
            "service_endpoints",
            "Endpoints (lb_endpoints) produced from EndpointSlices for the Endpoints naming a Service",
            service_endpoints.clone(),
        );
        let sync_duration = Histogram::new([
            0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
        ]);
        r.register(
            "reconcile_duration_seconds",
            "Time to compute the desired state and write what changed to etcd (leader)",
            sync_duration.clone(),
        );
        let etcd_write_duration = Histogram::new([
            0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
        ]);
        r.register(
            "etcd_write_duration_seconds",
            "Time to write a plan to etcd (its fenced transactions), for reconciles that wrote something or failed to",
            etcd_write_duration.clone(),
        );
        let syncs = Family::<ResultLabel, Counter>::default();
        r.register(
            "reconciles",
            "Reconciles by result: written, unchanged, error, follower (not the leader: nothing written)",
            syncs.clone(),
        );
        let etcd_txns = Counter::default();
        r.register(
            "etcd_write_txns",
            "etcd transactions committed",
            etcd_txns.clone(),
        );
        let etcd_ops = Family::<OpLabel, Counter>::default();
        r.register(
            "etcd_write_ops",
            "Keys written (op=put) and deleted (op=delete) in etcd",
            etcd_ops.clone(),
        );
        let etcd_bytes = Counter::default();
        r.register(
            "etcd_write_bytes",
            "Bytes of values written to etcd",
            etcd_bytes.clone(),
        );
        let last_write = Gauge::default();
        r.register(
            "last_successful_reconcile_timestamp_seconds",
            "Unix time of the last reconcile that succeeded",
            last_write.clone(),
        );
        let leader = Gauge::default();
        r.register(
            "leader",
            "1 while this replica is the leader (the one that writes to etcd)",
            leader.clone(),
        );
        let leader_changes = Counter::default();
        r.register(
            "leader_changes",
            "Times this replica gained or lost leadership",
            leader_changes.clone(),
        );
        let etcd_errors = Family::<OpLabel, Counter>::default();
        r.register(
            "etcd_errors",
            "Failed etcd requests by operation: connect, read (the prefix), write (fenced transactions), watch (node status, foreign changes)",
            etcd_errors.clone(),
        );
        let webhook_reviews = Family::<ResultLabel, Counter>::default();
        r.register(
            "webhook_reviews",
            "AdmissionReviews answered by the validating webhook: allowed, warned (allowed with warnings), denied, error (malformed, answered 400)",
            webhook_reviews.clone(),
        );
        let envoy_runs = Family::<ResultLabel, Counter>::default();
        r.register(
            "envoy_validate_runs",
            "`envoy --mode validate` runs of --envoy-validate by result: accepted, rejected, failed (could not run, or killed after --envoy-validate-timeout)",
            envoy_runs.clone(),
        );
        let envoy_duration =
            Histogram::new([0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0]);
        r.register(
            "envoy_validate_duration_seconds",
            "Duration of one `envoy --mode validate` run of --envoy-validate",
            envoy_duration.clone(),
        );
        let envoy_withheld = Gauge::default();
        r.register(
            "envoy_withheld_groups",
            "Groups whose new snapshot --envoy-validate keeps out of etcd (Envoy rejects it, or gave no verdict): their nodes keep the previous one",
            envoy_withheld.clone(),
        );
        let m = Self {
            registry: r,
            objects,
            programmed,
            convergence,
            rollouts: Mutex::new(BTreeMap::new()),
            rejected_objects,
            unresolved_objects,
            nodes,
            groups,
            oversized_snapshots,
            endpoint_slices,
            service_endpoints,
            sync_duration,
            etcd_write_duration,
            syncs,
            etcd_txns,
            etcd_ops,
            etcd_bytes,
            last_write,
            leader,
            leader_changes,
            leading: AtomicBool::new(false),
            etcd_errors,
            webhook_reviews,
            envoy_runs,
            envoy_duration,
            envoy_withheld,
            leadership: Mutex::new(None),
            health: Mutex::new(Health::default()),
        };
        // Every series exists from the start, at zero.
        m.observe_objects(&BTreeMap::new());
        for op in ["put", "delete"] {
            let _ = m.etcd_ops.get_or_create(&OpLabel { op });
        }
        for result in ["written", "unchanged", "error", "follower"] {
            let _ = m.syncs.get_or_create(&ResultLabel { result });
        }
        for op in ETCD_OPS {
            let _ = m.etcd_errors.get_or_create(&OpLabel { op });
        }
        for result in ENVOY_RESULTS {
            let _ = m.envoy_runs.get_or_create(&ResultLabel { result });
        }
        for result in ["allowed", "warned", "denied", "error"] {
            let _ = m.webhook_reviews.get_or_create(&ResultLabel { result });
        }
        m
    }

    /// Whether this replica leads now; a change from the last call counts
    /// as a leadership change.
    pub fn observe_leadership(&self, leading: bool) {
        if self.leading.swap(leading, Ordering::Relaxed) != leading {
            self.leader_changes.inc();
        }
    }

    /// How long writing a non-empty plan to etcd took (whether it succeeded).
    pub fn observe_etcd_write(&self, elapsed: Duration) {
        self.etcd_write_duration.observe(elapsed.as_secs_f64());
    }

    /// One `envoy --mode validate` run (`result`: one of [`ENVOY_RESULTS`]).
    pub fn observe_envoy_run(&self, result: &'static str, elapsed: Duration) {
        debug_assert!(ENVOY_RESULTS.contains(&result), "unknown result {result}");
        self.envoy_runs.get_or_create(&ResultLabel { result }).inc();
        self.envoy_duration.observe(elapsed.as_secs_f64());
    }

    /// Groups `--envoy-validate` withholds now.
    pub fn observe_envoy_withheld(&self, groups: usize) {
        self.envoy_withheld.set(groups as i64);
    }

    /// An etcd request that failed (`op`: one of [`ETCD_OPS`]).
    pub fn observe_etcd_error(&self, op: &'static str) {
        debug_assert!(ETCD_OPS.contains(&op), "unknown etcd op {op}");
        self.etcd_errors.get_or_create(&OpLabel { op }).inc();
    }

    /// Leadership to report (`bootes_controller_leader`).
    pub fn set_leadership(&self, leadership: Leadership) {
        *self.leadership.lock().expect("metrics lock") = Some(leadership);
    }

    /// The statuses the index computed: objects by kind and reason, by
    /// condition Programmed, and the time each generation took to be
    /// Programmed.
    pub fn observe_objects(&self, statuses: &BTreeMap<ObjectKey, ObjectStatus>) {
        let mut counts: BTreeMap<(ResourceType, &'static str), i64> = BTreeMap::new();
        let mut programmed: BTreeMap<(ResourceType, &'static str, &'static str), i64> =
            BTreeMap::new();
        for t in ResourceType::ALL {
            for r in REASONS {
                counts.insert((t, r), 0);
            }
            for (status, reason) in PROGRAMMED {
                programmed.insert((t, status, reason), 0);
            }
        }
        let mut rejected = 0;
        let mut unresolved = 0;
        let mut rollouts = self.rollouts.lock().expect("metrics lock");
        rollouts.retain(|k, _| statuses.contains_key(k));
        let now = std::time::Instant::now();
        for (key, status) in statuses {
            if status.refs.as_ref().is_some_and(|r| !r.is_empty()) {
                unresolved += 1;
            }
            let nacked = status
                .rollout
                .as_ref()
                .is_some_and(|r| r.progress() == Progress::Rejected);
            let reason = if status.accepted() && nacked {
                Progress::Rejected.as_str()
            } else {
                status.verdict.reason().as_str()
            };
            *counts.entry((key.kind, reason)).or_default() += 1;
            if !status.accepted() || nacked {
                rejected += 1;
            }
            if let Some(said) = bootes_core::conditions::programmed(status) {
                let ok = if said.ok { "True" } else { "False" };
                *programmed.entry((key.kind, ok, said.reason)).or_default() += 1;
                let seen =
                    rollouts
                        .entry(key.clone())
                        .or_insert((status.observed_generation, now, false));
                if seen.0 != status.observed_generation {
                    *seen = (status.observed_generation, now, false);
                }
                if said.ok && !seen.2 {
                    seen.2 = true;
                    self.convergence
                        .get_or_create(&KindLabel {
                            kind: key.kind.kind(),
                        })
                        .observe(now.duration_since(seen.1).as_secs_f64());
                }
            }
        }
        for ((kind, status, reason), n) in programmed {
            self.programmed
                .get_or_create(&ProgrammedLabels {
                    kind: kind.kind(),
                    status,
                    reason,
                })
                .set(n);
        }
        for ((kind, reason), n) in counts {
            self.objects
                .get_or_create(&ObjectLabels {
                    kind: kind.kind(),
                    reason,
                })
                .set(n);
        }
        self.rejected_objects.set(rejected);
        self.unresolved_objects.set(unresolved);
        self.health.lock().expect("metrics lock").objects = statuses.len();
    }

    /// Nodes, groups and oversized snapshots of the desired state.
    pub fn observe_desired(&self, nodes: usize, groups: usize, oversized: usize) {
        self.nodes.set(nodes as i64);
        self.groups.set(groups as i64);
        self.oversized_snapshots.set(oversized as i64);
        let mut h = self.health.lock().expect("metrics lock");
        h.nodes = nodes;
        h.groups = groups;
    }

    /// EndpointSlices known and the endpoints produced from them.
    pub fn observe_service_endpoints(&self, slices: usize, endpoints: usize) {
        self.endpoint_slices.set(slices as i64);
        self.service_endpoints.set(endpoints as i64);
    }

    /// A reconcile of a follower: nothing written, but the index is warm.
    /// One AdmissionReview answered (`allowed`, `warned`, `denied`, `error`).
    pub fn observe_review(&self, result: &'static str) {
        self.webhook_reviews
            .get_or_create(&ResultLabel { result })
            .inc();
    }

    pub fn observe_follower(&self) {
        self.syncs
            .get_or_create(&ResultLabel { result: "follower" })
            .inc();
        self.health.lock().expect("metrics lock").write_error = None;
        self.mark_success();
    }

    /// A reconcile of the leader that wrote (or had nothing to write).
    pub fn observe_write(&self, stats: &WriteStats, elapsed: Duration) {
        self.sync_duration.observe(elapsed.as_secs_f64());
        let result = if stats.txns > 0 {
            "written"
        } else {
            "unchanged"
        };
        self.syncs.get_or_create(&ResultLabel { result }).inc();
        self.etcd_txns.inc_by(stats.txns as u64);
        self.etcd_ops
            .get_or_create(&OpLabel { op: "put" })
            .inc_by(stats.puts as u64);
        self.etcd_ops
            .get_or_create(&OpLabel { op: "delete" })
            .inc_by(stats.deletes as u64);
        self.etcd_bytes.inc_by(stats.bytes as u64);
        self.health.lock().expect("metrics lock").write_error = None;
        self.mark_success();
    }

    /// A reconcile of the leader whose write to etcd failed.
    pub fn observe_write_error(&self, error: &dyn std::fmt::Display, elapsed: Duration) {
        self.sync_duration.observe(elapsed.as_secs_f64());
        self.syncs
            .get_or_create(&ResultLabel { result: "error" })
            .inc();
        self.health.lock().expect("metrics lock").write_error = Some(error.to_string());
    }

    fn mark_success(&self) {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        self.last_write.set(now.as_secs() as i64);
    }

    pub fn health(&self) -> Health {
        self.health.lock().expect("metrics lock").clone()
    }

    pub fn is_leader(&self) -> bool {
        self.leadership
            .lock()
            .expect("metrics lock")
            .as_ref()
            // Before the election starts (etcd not reached yet) nobody leads.
            .is_some_and(|l| l.borrow().is_some())
    }

    /// The OpenMetrics text of every series.
    pub fn encode(&self) -> String {
        self.leader.set(i64::from(self.is_leader()));
        bootes_runtime::admin::encode(&self.registry)
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// `/readyz`: whether Kubernetes' readiness probe should pass, and the body.
///
/// Ready once the first reconcile finished (`synced`: the leader wrote the
/// state to etcd; a follower has its index loaded), while etcd answers
/// (`etcd`), and not while the leader's writes to etcd fail.
pub fn readiness(metrics: &Metrics, synced: bool, etcd: Result<(), String>) -> (bool, String) {
    let h = metrics.health();
    let role = match metrics.leadership.lock().expect("metrics lock").as_ref() {
        None => "starting",
        Some(l) if l.borrow().is_some() => "leader",
        Some(_) => "follower",
    };
    let counts = format!(
        "{} objects, {} nodes, {} groups",
        h.objects, h.nodes, h.groups
    );
    if let Err(e) = etcd {
        return (
            false,
            format!("not ready ({role}): etcd does not answer: {e}\n"),
        );
    }
    match (&h.write_error, synced) {
        (Some(e), _) => (
            false,
            format!("not ready ({role}): writing to etcd fails: {e}\n"),
        ),
        (None, false) => (
            false,
            format!("not ready ({role}): first reconcile not finished yet\n"),
        ),
        (None, true) => (true, format!("ok ({role}): {counts}\n")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(reason: &str) -> ObjectStatus {
        use bootes_core::rollout::{Nodes, Rollout};
        use bootes_core::verdict::Verdict;
        let verdict = match reason {
            "InvalidConfig" => Verdict::Invalid {
                errors: Vec::new(),
                too_large: false,
                in_force: None,
            },
            _ => Verdict::Valid {
                warnings: Vec::new(),
            },
        };
        let rejected = Nodes {
            count: usize::from(reason == "Rejected"),
            examples: Vec::new(),
        };
        ObjectStatus {
            verdict,
            observed_generation: 1,
            nodes: 1,
            refs: None,
            rollout: Some(Rollout {
                generation: 1,
                running: 1,
                rejected,
                ..Rollout::default()
            }),
        }
    }

    fn key(kind: ResourceType, name: &str) -> ObjectKey {
        ObjectKey {
            kind,
            namespace: "ns".into(),
            name: name.into(),
        }
    }

    fn line<'a>(text: &'a str, series: &str) -> &'a str {
        text.lines()
            .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
            .unwrap_or_else(|| panic!("no {series} in\n{text}"))
    }

    #[test]
    fn leadership_changes_count_each_gain_and_loss() {
        let m = Metrics::new();
        let changes =
            |m: &Metrics| line(&m.encode(), "bootes_controller_leader_changes_total").to_string();
        assert_eq!(changes(&m), "bootes_controller_leader_changes_total 0");
        m.observe_leadership(false);
        assert_eq!(changes(&m), "bootes_controller_leader_changes_total 0");
        m.observe_leadership(true);
        m.observe_leadership(true);
        assert_eq!(changes(&m), "bootes_controller_leader_changes_total 1");
        m.observe_leadership(false);
        assert_eq!(changes(&m), "bootes_controller_leader_changes_total 2");
    }

    #[test]
    fn etcd_errors_by_op_start_at_zero() {
        let m = Metrics::new();
        let text = m.encode();
        for op in ETCD_OPS {
            let series = format!(r#"bootes_controller_etcd_errors_total{{op="{op}"}}"#);
            assert_eq!(line(&text, &series), format!("{series} 0"));
        }
        m.observe_etcd_error("watch");
        let series = r#"bootes_controller_etcd_errors_total{op="watch"}"#;
        assert_eq!(line(&m.encode(), series), format!("{series} 1"));
    }

    #[test]
    fn objects_by_kind_and_reason_every_series_present() {
        let m = Metrics::new();
        let text = m.encode();
        assert_eq!(
            line(
                &text,
                r#"bootes_controller_objects{kind="Secret",reason="Conflict"}"#
            ),
            r#"bootes_controller_objects{kind="Secret",reason="Conflict"} 0"#
        );
        let statuses: BTreeMap<_, _> = [
            (key(ResourceType::Cluster, "a"), status("Valid")),
            (key(ResourceType::Cluster, "b"), status("Valid")),
            (key(ResourceType::Cluster, "c"), status("InvalidConfig")),
            (key(ResourceType::Route, "r"), status("Rejected")),
            (
                key(ResourceType::Route, "dangling"),
                ObjectStatus {
                    refs: Some(vec![bootes_core::xref::Unresolved {
                        problem: bootes_envoy::convert::ConfigError::new("spec.config.x", "y"),
                        envoy_rejects: false,
                        reason: "UnresolvedReferences",
                    }]),
                    ..status("Valid")
                },
            ),
        ]
        .into();
        m.observe_objects(&statuses);
        let text = m.encode();
        assert!(text.contains(r#"bootes_controller_objects{kind="Cluster",reason="Valid"} 2"#));
        assert!(
            text.contains(r#"bootes_controller_objects{kind="Cluster",reason="InvalidConfig"} 1"#)
        );
        assert!(text.contains(r#"bootes_controller_objects{kind="Route",reason="Rejected"} 1"#));
        assert!(text.contains("bootes_controller_rejected_objects 2"));
        assert!(text.contains(
            r#"bootes_controller_programmed_objects{kind="Cluster",status="True",reason="Programmed"} 2"#
        ), "{text}");
        assert!(text.contains(
            r#"bootes_controller_programmed_objects{kind="Route",status="False",reason="Rejected"} 1"#
        ));
        assert!(
            text.contains(
                r#"bootes_controller_rollout_convergence_seconds_count{kind="Cluster"} 2"#
            ),
            "{text}"
        );
        assert!(text.contains("bootes_controller_unresolved_objects 1"));
        // Removed objects go back to zero.
        m.observe_objects(&BTreeMap::new());
        let text = m.encode();
        assert!(text.contains("bootes_controller_unresolved_objects 0"));
        assert!(text.contains(r#"bootes_controller_objects{kind="Cluster",reason="Valid"} 0"#));
        assert!(text.contains("bootes_controller_rejected_objects 0"));
    }

    #[test]
    fn writes_count_txns_ops_bytes_and_durations() {
        let m = Metrics::new();
        let stats = WriteStats {
            txns: 2,
            puts: 3,
            deletes: 1,
            bytes: 1000,
        };
        m.observe_write(&stats, Duration::from_millis(20));
        m.observe_write(&WriteStats::default(), Duration::from_millis(1));
        let text = m.encode();
        assert!(
            text.contains("bootes_controller_etcd_write_txns_total 2"),
            "{text}"
        );
        assert!(text.contains(r#"bootes_controller_etcd_write_ops_total{op="put"} 3"#));
        assert!(text.contains(r#"bootes_controller_etcd_write_ops_total{op="delete"} 1"#));
        assert!(text.contains("bootes_controller_etcd_write_bytes_total 1000"));
        assert!(text.contains(r#"bootes_controller_reconciles_total{result="written"} 1"#));
        assert!(text.contains(r#"bootes_controller_reconciles_total{result="unchanged"} 1"#));
        assert!(text.contains("bootes_controller_reconcile_duration_seconds_count 2"));
        assert!(text.contains("# TYPE bootes_controller_reconcile_duration_seconds histogram"));
        // The etcd part alone, observed only where a plan was written.
        assert!(text.contains("bootes_controller_etcd_write_duration_seconds_count 0"));
        m.observe_etcd_write(Duration::from_millis(15));
        let text = m.encode();
        assert!(text.contains("bootes_controller_etcd_write_duration_seconds_count 1"));
        assert!(
            text.contains(r#"bootes_controller_etcd_write_duration_seconds_bucket{le="0.025"} 1"#),
            "{text}"
        );
    }

    #[test]
    fn slices_and_endpoints_from_services_start_at_zero() {
        let m = Metrics::new();
        let text = m.encode();
        assert_eq!(
            line(&text, "bootes_controller_endpoint_slices"),
            "bootes_controller_endpoint_slices 0"
        );
        assert_eq!(
            line(&text, "bootes_controller_service_endpoints"),
            "bootes_controller_service_endpoints 0"
        );
        m.observe_service_endpoints(3, 250);
        let text = m.encode();
        assert!(
            text.contains("bootes_controller_endpoint_slices 3"),
            "{text}"
        );
        assert!(
            text.contains("bootes_controller_service_endpoints 250"),
            "{text}"
        );
    }

    #[test]
    fn leadership_is_read_when_scraped() {
        let m = Metrics::new();
        // Before the election has started nobody leads.
        assert!(m.encode().contains("bootes_controller_leader 0"));
        assert!(readiness(&m, false, Ok(())).1.contains("(starting)"));
        let (leader, leadership) = tokio::sync::watch::channel(None);
        m.set_leadership(leadership);
        assert!(m.encode().contains("bootes_controller_leader 0"));
        leader.send_replace(Some(bootes_proto::Fence {
            key: "leader".into(),
            create_revision: 1,
        }));
        assert!(m.encode().contains("bootes_controller_leader 1"));
    }

    #[test]
    fn readiness_follows_the_first_sync_and_write_failures() {
        let m = Metrics::new();
        let (ready, body) = readiness(&m, false, Ok(()));
        assert!(!ready, "{body}");
        m.observe_desired(3, 1, 0);
        m.observe_write(&WriteStats::default(), Duration::ZERO);
        let (ready, body) = readiness(&m, true, Ok(()));
        assert!(ready, "{body}");
        assert!(body.contains("3 nodes, 1 groups"), "{body}");
        m.observe_write_error(&"connection refused", Duration::ZERO);
        let (ready, body) = readiness(&m, true, Ok(()));
        assert!(!ready);
        assert!(body.contains("connection refused"), "{body}");
        m.observe_write(&WriteStats::default(), Duration::ZERO);
        assert!(readiness(&m, true, Ok(())).0);
        let (ready, body) = readiness(&m, true, Err("tcp connect error".into()));
        assert!(!ready);
        assert!(
            body.contains("etcd does not answer: tcp connect error"),
            "{body}"
        );
        // A follower is ready once its index is loaded.
        let f = Metrics::new();
        f.set_leadership(tokio::sync::watch::channel(None).1);
        f.observe_follower();
        let (ready, body) = readiness(&f, true, Ok(()));
        assert!(ready);
        assert!(body.contains("follower"), "{body}");
    }
}
