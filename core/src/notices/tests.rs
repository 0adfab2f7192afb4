use super::*;
use crate::rollout::{Example, Nodes, Rollout};
use bootes_proto::ResourceType;

fn key(name: &str) -> ObjectKey {
    ObjectKey {
        kind: ResourceType::Cluster,
        namespace: "ns".into(),
        name: name.into(),
    }
}

fn nodes(names: &[&str], detail: &str) -> Nodes {
    Nodes {
        count: names.len(),
        examples: names
            .iter()
            .map(|n| Example {
                node: n.to_string(),
                detail: detail.into(),
            })
            .collect(),
    }
}

/// A valid object at `generation`, with `running` nodes of 2 running it,
/// the others pending, or rejecting it when `rejected`.
fn valid(generation: i64, running: usize, rejected: bool) -> ObjectStatus {
    let others: Vec<&str> = ["a", "b"][running..].to_vec();
    let mut rollout = Rollout {
        generation,
        running,
        ..Rollout::default()
    };
    if rejected {
        rollout.rejected = nodes(&others, "no such file /x.pem");
    } else {
        rollout.pending = nodes(&others, "");
    }
    ObjectStatus {
        verdict: Verdict::Valid {
            warnings: Vec::new(),
        },
        observed_generation: generation,
        nodes: 2,
        refs: Some(Vec::new()),
        rollout: Some(rollout),
    }
}

fn invalid(generation: i64, in_force: Option<i64>) -> ObjectStatus {
    ObjectStatus {
        verdict: Verdict::Invalid {
            errors: vec![ConfigError::new(
                "spec.config.conect_timeout",
                "unknown field",
            )],
            too_large: false,
            in_force,
        },
        observed_generation: generation,
        nodes: 0,
        refs: None,
        rollout: None,
    }
}

fn reasons(n: &[Notice]) -> Vec<(&'static str, bool)> {
    n.iter().map(|n| (n.reason, n.warning)).collect()
}

#[test]
fn invalid_generations_are_told_once_each() {
    let n = notices(None, &invalid(1, None));
    assert_eq!(reasons(&n), [("InvalidConfig", true)]);
    assert!(
        n[0].message
            .contains("spec.config.conect_timeout: unknown field"),
        "{n:?}"
    );
    assert!(notices(Some(&invalid(1, None)), &invalid(1, None)).is_empty());
    // Another invalid edit is told again.
    assert_eq!(
        reasons(&notices(Some(&invalid(1, None)), &invalid(2, None))),
        [("InvalidConfig", true)]
    );
}

#[test]
fn a_conflict_is_told_when_it_begins() {
    let conflict = ObjectStatus {
        verdict: Verdict::Conflict {
            resource: "c".into(),
            winner: key("older"),
        },
        ..valid(1, 0, false)
    };
    let n = notices(Some(&valid(1, 2, false)), &conflict);
    assert_eq!(reasons(&n)[0], ("Conflict", true));
    assert!(n[0].message.contains("Cluster ns/older"), "{n:?}");
    assert!(!reasons(&notices(Some(&conflict), &conflict)).contains(&("Conflict", true)));
}

#[test]
fn rollouts_tell_programmed_and_rejected_per_generation() {
    // A new object's first status is no rollout seen.
    assert!(notices(None, &valid(1, 2, false)).is_empty());
    // Pending → Programmed: told, with the counts.
    let n = notices(Some(&valid(1, 1, false)), &valid(1, 2, false));
    assert_eq!(reasons(&n), [("Programmed", false)]);
    assert!(
        n[0].message.starts_with("2/2 nodes run generation 1"),
        "{n:?}"
    );
    // Still programmed: nothing.
    assert!(notices(Some(&valid(1, 2, false)), &valid(1, 2, false)).is_empty());
    // Generation 2 programmed straight from generation 1's: a rollout.
    assert_eq!(
        reasons(&notices(Some(&valid(1, 2, false)), &valid(2, 2, false))),
        [("Programmed", false)]
    );
    // Rejected by an Envoy: a warning with Envoy's message, once.
    let n = notices(Some(&valid(2, 1, false)), &valid(2, 1, true));
    assert_eq!(reasons(&n), [("Rejected", true)]);
    assert!(n[0].message.contains("b: no such file /x.pem"), "{n:?}");
    assert!(notices(Some(&valid(2, 1, true)), &valid(2, 0, true)).is_empty());
    // The next generation rejected too: told again.
    assert_eq!(
        reasons(&notices(Some(&valid(2, 1, true)), &valid(3, 1, true))),
        [("Rejected", true)]
    );
}

#[test]
fn malformed_slices_are_told_when_their_warnings_change() {
    let with = |warnings: Vec<ConfigError>| ObjectStatus {
        verdict: Verdict::Valid { warnings },
        ..valid(1, 2, false)
    };
    let bad = ConfigError::new(
        "spec.service",
        "EndpointSlice ns/web-x1: endpoints[2].addresses[0]: \"10.0.0.x\" is not an IPv4 address",
    );
    let n = notices(Some(&with(Vec::new())), &with(vec![bad.clone()]));
    assert_eq!(reasons(&n), [("MalformedEndpointSlice", true)]);
    assert!(n[0]
        .message
        .contains("EndpointSlice ns/web-x1: endpoints[2].addresses[0]"));
    assert!(notices(Some(&with(vec![bad.clone()])), &with(vec![bad])).is_empty());
    // Other warnings are in the condition, not Events.
    let other = ConfigError::new("spec.config.x", "deprecated");
    assert!(notices(Some(&with(Vec::new())), &with(vec![other])).is_empty());
}

fn notice(reason: &'static str, message: &str) -> Notice {
    Notice {
        warning: true,
        reason,
        action: "Rollout",
        message: message.into(),
    }
}

#[test]
fn the_gate_lets_one_per_object_and_reason_per_interval_and_counts_the_rest() {
    let t0 = Instant::now();
    let s = Duration::from_secs(1);
    let mut gate = Gate::new(Duration::from_secs(60), 100.0, 100);
    gate.offer(&key("a"), notice("Rejected", "1"));
    let out = gate.release(t0);
    assert_eq!(out.len(), 1);
    assert_eq!((out[0].count, out[0].message()), (1, "1".to_string()));
    // Flapping: held within the interval, the latest kept and counted.
    for i in 2..=5 {
        gate.offer(&key("a"), notice("Rejected", &i.to_string()));
        assert!(gate.release(t0 + s * i).is_empty());
    }
    // Another reason, or another object, is not held by it.
    gate.offer(&key("a"), notice("Programmed", "p"));
    gate.offer(&key("b"), notice("Rejected", "b"));
    assert_eq!(gate.release(t0 + s * 6).len(), 2);
    assert_eq!(gate.next_release(t0 + s * 6), Some(t0 + s * 60));
    let out = gate.release(t0 + s * 60);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].count, 4);
    assert_eq!(out[0].message(), "5 (4 times since the last event)");
    assert_eq!(gate.next_release(t0 + s * 60), None);
}

#[test]
fn the_gate_bounds_the_total_rate_and_loses_nothing() {
    let t0 = Instant::now();
    // 10,000 objects flapping at once: 50 per second in bursts of 10.
    let mut gate = Gate::new(Duration::from_secs(60), 50.0, 10);
    for i in 0..10_000 {
        gate.offer(&key(&format!("o{i}")), notice("Rejected", "x"));
    }
    assert_eq!(gate.release(t0).len(), 10);
    assert!(gate.release(t0).is_empty());
    assert_eq!(gate.next_release(t0), Some(t0 + Duration::from_millis(20)));
    assert_eq!(gate.release(t0 + Duration::from_millis(100)).len(), 5);
    // Every object is told eventually.
    let mut told = 15;
    let mut t = t0 + Duration::from_millis(100);
    while let Some(next) = gate.next_release(t) {
        t = next.max(t + Duration::from_millis(200));
        let released = gate.release(t).len();
        assert!(released <= 10, "{released} at once");
        told += released;
    }
    assert_eq!(told, 10_000);
}
