//! `run --envoy-validate`: the I/O shell of [`bootes_core::envoy_gate`].
//! Envoy runs on a blocking thread, a bounded number of processes at a
//! time, each killed after its timeout (see [`crate::envoy_oracle`]).

use std::sync::Arc;

use bootes_core::envoy_gate::EnvoyGate;
use bootes_core::envoy_judge::{self, EnvoyOracle, GroupVerdict};
use bootes_core::index::Desired;
use bootes_core::xref::BootstrapClusters;

use crate::metrics::Metrics;

pub struct EnvoyCheck {
    gate: EnvoyGate,
    oracle: Arc<dyn EnvoyOracle + Send + Sync>,
    bootstrap: BootstrapClusters,
}

impl EnvoyCheck {
    pub fn new(oracle: Arc<dyn EnvoyOracle + Send + Sync>, bootstrap: BootstrapClusters) -> Self {
        Self {
            gate: EnvoyGate::new(),
            oracle,
            bootstrap,
        }
    }

    /// Judges the groups of `desired` that changed and withholds those
    /// Envoy does not accept. Returns whether a group got no verdict (to
    /// judge again soon).
    pub async fn check(&mut self, desired: &mut Desired, metrics: &Metrics) -> bool {
        let groups = self.gate.to_judge(desired, &self.bootstrap);
        if !groups.is_empty() {
            let oracle = self.oracle.clone();
            let started = std::time::Instant::now();
            let (groups, verdicts) = tokio::task::spawn_blocking(move || {
                // A bug in judging must not stop the controller: its groups
                // get no verdict (withheld, judged again), as for a hung Envoy.
                let judged = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    envoy_judge::judge_groups(&groups, &*oracle)
                }));
                let verdicts = judged.unwrap_or_else(|panic| {
                    let why = panic_message(panic.as_ref());
                    vec![GroupVerdict::Unjudged(format!("judging panicked: {why}")); groups.len()]
                });
                (groups, verdicts)
            })
            .await
            .expect("the judging task catches its panics");
            let mut rejected = 0;
            for (g, v) in groups.iter().zip(&verdicts) {
                match v {
                    GroupVerdict::Accepted => {}
                    GroupVerdict::Rejected(blamed) => {
                        rejected += 1;
                        let resources: Vec<String> = blamed
                            .iter()
                            .map(|b| format!("{} {}: {}", b.ty.short_name(), b.name, b.reason))
                            .collect();
                        tracing::warn!(
                            group = g.name,
                            nodes = desired.groups[&g.name].nodes.len(),
                            rejected = ?resources,
                            "Envoy (--envoy-validate) rejects the group's snapshot: not written, its nodes keep their previous one"
                        );
                    }
                    GroupVerdict::Unjudged(why) => tracing::error!(
                        group = g.name,
                        error = why.as_str(),
                        "Envoy (--envoy-validate) gave no verdict on the group's snapshot: not written, its nodes keep their previous one; judged again in a while"
                    ),
                }
            }
            tracing::info!(
                groups = groups.len(),
                rejected,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "Envoy (--envoy-validate) judged the changed groups"
            );
            self.gate.record(&groups, verdicts);
        }
        let withheld = self.gate.apply(desired);
        metrics.observe_envoy_withheld(withheld.rejected + withheld.unjudged);
        withheld.unjudged > 0
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

#[cfg(test)]
mod tests {
    use bootes_core::envoy_judge::Judgement;
    use bootes_core::index::GroupSnapshot;
    use bootes_proto::{store, ResourceType};

    use super::*;

    struct Panics;

    impl EnvoyOracle for Panics {
        fn judge(&self, _: &[Vec<u8>]) -> Vec<Judgement> {
            panic!("a bug in judging")
        }
    }

    #[tokio::test]
    async fn a_panic_while_judging_withholds_the_groups_and_the_controller_goes_on() {
        let snapshot = store::Snapshot {
            namespace: "ns".into(),
            group: "a".into(),
            version: "1".into(),
            types: vec![store::TypeResources {
                type_url: ResourceType::Cluster.type_url().into(),
                resources: vec![store::Resource {
                    name: "c".into(),
                    source: Some(store::ObjectRef {
                        kind: "Cluster".into(),
                        namespace: "ns".into(),
                        name: "x".into(),
                        ..Default::default()
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        };
        let mut desired = Desired::default();
        desired.groups.insert(
            "ns/a".into(),
            GroupSnapshot::new(snapshot, vec!["p0.ns".into()]),
        );
        let mut check = EnvoyCheck::new(Arc::new(Panics), BootstrapClusters::default());
        let judge_again = check.check(&mut desired, &Metrics::new()).await;
        assert!(judge_again, "a group with no verdict is judged again");
        assert_eq!(desired.withheld, ["ns/a".to_string()].into());
    }
}
