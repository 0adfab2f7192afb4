use std::cell::RefCell;
use std::collections::HashMap;

use bootes_proto::envoy::core::Node;
use bootes_proto::envoy::discovery::{DeltaDiscoveryRequest, DiscoveryRequest};
use bootes_proto::ResourceType::{self, *};

use super::*;
use crate::response::NameError;
use crate::test_support::snap;

/// Nodes as a test sets them.
#[derive(Default)]
struct World {
    access: RefCell<HashMap<String, Access>>,
    snapshots: RefCell<HashMap<String, Arc<Snapshot>>>,
}

impl World {
    fn with(node: &str, access: Access, snapshot: Option<Arc<Snapshot>>) -> Self {
        let w = World::default();
        w.set(node, access, snapshot);
        w
    }

    fn set(&self, node: &str, access: Access, snapshot: Option<Arc<Snapshot>>) {
        self.access.borrow_mut().insert(node.into(), access);
        match snapshot {
            Some(s) => self.snapshots.borrow_mut().insert(node.into(), s),
            None => self.snapshots.borrow_mut().remove(node),
        };
    }
}

impl Nodes for World {
    fn authorize(&self, node: &str) -> Access {
        self.access
            .borrow()
            .get(node)
            .cloned()
            .unwrap_or(Access::Allow)
    }

    fn snapshot(&self, node: &str) -> Option<Arc<Snapshot>> {
        self.snapshots.borrow().get(node).cloned()
    }
}

fn sotw(node: Option<&str>, ty: ResourceType, nonce: &str) -> DiscoveryRequest {
    DiscoveryRequest {
        type_url: ty.type_url().into(),
        response_nonce: nonce.into(),
        node: node.map(|id| Node {
            id: id.into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn delta(node: Option<&str>, ty: ResourceType, nonce: &str) -> DeltaDiscoveryRequest {
    DeltaDiscoveryRequest {
        type_url: ty.type_url().into(),
        response_nonce: nonce.into(),
        node: node.map(|id| Node {
            id: id.into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn session<P: Protocol>(rules: Rules) -> Session<P> {
    Session::new(rules, Instant::now(), None, 0.5)
}

fn ads() -> Rules {
    Rules {
        secrets_allowed: true,
        ..Rules::default()
    }
}

fn clusters() -> Arc<Snapshot> {
    snap(&[(Cluster, "a", "1"), (Listener, "l", "1")])
}

/// Types of the responses an output sends, in order.
fn sent(out: &Output) -> Vec<ResourceType> {
    out.effects.responses.iter().map(|r| r.ty).collect()
}

fn code(out: &Output) -> Option<Code> {
    out.end.as_ref().map(|r| r.code)
}

#[test]
fn the_first_request_identifies_authorizes_and_subscribes_then_is_answered() {
    let cache = ResponseCache::new();
    let world = World::with("n1", Access::Allow, Some(clusters()));
    let mut s = session::<SotwStream>(ads());
    assert!(!s.wants_changes(), "no node named yet");
    let out = s.on_request(sotw(Some("n1"), Cluster, ""), &world, &cache);
    assert_eq!(out.end, None);
    assert_eq!(out.notes, [Note::Node("n1".into()), Note::Opened]);
    assert_eq!(out.identified.as_deref(), Some("n1"));
    assert!(out.report_changed);
    assert_eq!(sent(&out), [Cluster]);
    assert!(s.wants_changes());
    assert_eq!(s.node(), Some("n1"));
    // Later requests do not identify again.
    let nonce = out.effects.responses[0].nonce.clone();
    let out = s.on_request(sotw(None, Cluster, &nonce), &world, &cache);
    assert_eq!(out.identified, None);
    assert_eq!(out.effects.acks.len(), 1);
}

#[test]
fn the_same_sequence_drives_delta() {
    let cache = ResponseCache::new();
    let world = World::with("n1", Access::Allow, Some(clusters()));
    let mut s = session::<DeltaStream>(ads());
    let out = s.on_request(delta(Some("n1"), Cluster, ""), &world, &cache);
    assert_eq!(out.identified.as_deref(), Some("n1"));
    assert_eq!(sent(&out), [Cluster]);
    let out = s.on_request(delta(Some("n2"), Cluster, ""), &world, &cache);
    assert_eq!(code(&out), Some(Code::InvalidArgument), "node ID changed");
}

#[test]
fn a_first_request_without_a_node_id_ends_the_stream() {
    let cache = ResponseCache::new();
    let mut s = session::<SotwStream>(ads());
    let out = s.on_request(sotw(None, Cluster, ""), &World::default(), &cache);
    assert_eq!(code(&out), Some(Code::InvalidArgument));
    assert!(out.effects.responses.is_empty());
}

#[test]
fn a_node_waiting_for_authorization_gets_nothing_until_allowed() {
    let cache = ResponseCache::new();
    let world = World::with("n1", Access::Wait, Some(clusters()));
    let mut s = session::<SotwStream>(ads());
    let out = s.on_request(sotw(Some("n1"), Cluster, ""), &world, &cache);
    assert_eq!(out.notes[1], Note::WaitingForAuthorization);
    assert_eq!(
        out.identified, None,
        "no trace in CSDS before authorization"
    );
    assert!(!out.report_changed);
    assert!(out.effects.responses.is_empty());
    // The binding appears.
    world.set("n1", Access::Allow, Some(clusters()));
    let out = s.on_change(&world, &cache);
    assert_eq!(out.identified.as_deref(), Some("n1"));
    assert_eq!(sent(&out), [Cluster]);
    // Then changes to another service account: the stream ends.
    world.set("n1", Access::Deny("not yours".into()), Some(clusters()));
    let out = s.on_change(&world, &cache);
    let end = out.end.expect("ends");
    assert_eq!(end.code, Code::PermissionDenied);
    assert_eq!(end.counted, Some("node_not_authorized"));
}

#[test]
fn a_node_without_a_binding_waits_and_is_served_when_bound() {
    let cache = ResponseCache::new();
    let world = World::with("n1", Access::Allow, None);
    let mut s = session::<SotwStream>(ads());
    let out = s.on_request(sotw(Some("n1"), Cluster, ""), &world, &cache);
    assert_eq!(out.notes[1], Note::WaitingForBinding);
    assert!(out.effects.responses.is_empty());
    world.set("n1", Access::Allow, Some(clusters()));
    assert_eq!(sent(&s.on_change(&world, &cache)), [Cluster]);
}

#[test]
fn a_denied_node_ends_at_its_first_request() {
    let cache = ResponseCache::new();
    let world = World::with("n1", Access::Deny("no".into()), Some(clusters()));
    let mut s = session::<SotwStream>(ads());
    let out = s.on_request(sotw(Some("n1"), Cluster, ""), &world, &cache);
    assert_eq!(code(&out), Some(Code::PermissionDenied));
    assert!(out.effects.responses.is_empty());
}

#[test]
fn a_per_type_service_fills_in_its_type_and_refuses_others() {
    let cache = ResponseCache::new();
    let world = World::with("n1", Access::Allow, Some(clusters()));
    let rules = Rules {
        only: Some(Cluster),
        ..ads()
    };
    let mut s = session::<SotwStream>(rules.clone());
    let mut req = sotw(Some("n1"), Cluster, "");
    req.type_url.clear();
    assert_eq!(sent(&s.on_request(req, &world, &cache)), [Cluster]);
    let mut s = session::<SotwStream>(rules);
    let out = s.on_request(sotw(Some("n1"), Listener, ""), &world, &cache);
    assert_eq!(code(&out), Some(Code::InvalidArgument));
}

#[test]
fn requests_beyond_the_limits_end_the_stream_and_details_are_cut() {
    let cache = ResponseCache::new();
    let world = World::with("n1", Access::Allow, Some(clusters()));
    let rules = Rules {
        limits: Limits {
            max_resource_names: 1,
            max_node_id: 4,
            max_nack_detail: 8,
        },
        ..ads()
    };
    let mut s = session::<SotwStream>(rules.clone());
    let mut req = sotw(Some("n1"), Cluster, "");
    req.resource_names = vec!["a".into(), "b".into()];
    let end = s.on_request(req, &world, &cache).end.expect("ends");
    assert_eq!(end.code, Code::ResourceExhausted);
    assert_eq!(end.counted, Some("too_many_names"));

    let mut s = session::<SotwStream>(rules.clone());
    let out = s.on_request(sotw(Some("node-1"), Cluster, ""), &world, &cache);
    assert_eq!(code(&out), Some(Code::InvalidArgument), "node ID too long");

    let s = session::<SotwStream>(rules);
    let mut req = sotw(Some("n1"), Cluster, "x");
    req.error_detail = Some(bootes_proto::envoy::RpcStatus {
        code: 3,
        message: "a very long rejection".into(),
        details: vec![],
    });
    s.accept(&mut req).unwrap();
    assert_eq!(
        req.error_detail.unwrap().message,
        bootes_proto::limits::nack_detail("a very long rejection", 8)
    );
}

fn with_secret() -> Arc<Snapshot> {
    snap(&[(Cluster, "a", "1"), (Secret, "key", "1")])
}

#[test]
fn without_authentication_sds_goes_unanswered_on_ads_and_the_rest_flows() {
    let cache = ResponseCache::new();
    let world = World::with("n1", Access::Allow, Some(with_secret()));
    let mut s = session::<SotwStream>(Rules::default());
    let out = s.on_request(sotw(Some("n1"), Secret, ""), &world, &cache);
    assert_eq!(out.end, None);
    assert_eq!(out.refused, ["unauthenticated_secrets"]);
    assert!(out.notes.contains(&Note::SecretsRefused));
    assert!(
        out.effects.responses.is_empty(),
        "a wildcard SDS request named nothing: no error"
    );
    // Named Secrets are refused by name, once each, and nothing is sent.
    let mut named = sotw(None, Secret, "");
    named.resource_names = vec!["key".into()];
    let out = s.on_request(named.clone(), &world, &cache);
    assert!(!out.notes.contains(&Note::SecretsRefused), "noted once");
    let refused = &out.effects.responses[0];
    assert!(refused.resources.is_empty());
    assert_eq!(
        refused.errors,
        [("key".to_string(), NameError::PermissionDenied)]
    );
    named.response_nonce = refused.nonce.clone();
    assert!(s
        .on_request(named, &world, &cache)
        .effects
        .responses
        .is_empty());
    assert_eq!(
        sent(&s.on_request(sotw(None, Cluster, ""), &world, &cache)),
        [Cluster]
    );
    // The SDS service itself refuses.
    let mut s = session::<SotwStream>(Rules {
        only: Some(Secret),
        ..Rules::default()
    });
    let out = s.on_request(sotw(Some("n1"), Secret, ""), &world, &cache);
    assert_eq!(code(&out), Some(Code::PermissionDenied));
    // Delta likewise.
    let mut s = session::<DeltaStream>(Rules::default());
    let mut req = delta(Some("n1"), Secret, "");
    req.resource_names_subscribe = vec!["key".into()];
    let out = s.on_request(req, &world, &cache);
    assert_eq!(
        out.effects.responses[0].errors,
        [("key".to_string(), NameError::PermissionDenied)]
    );
}

#[test]
fn a_stream_ends_within_the_fifth_after_its_age() {
    let t0 = Instant::now();
    let age = Duration::from_secs(100);
    for (jitter, at) in [(0.0, 100), (0.5, 110), (0.999_999, 120)] {
        let mut s = Session::<SotwStream>::new(ads(), t0, Some(age), jitter);
        let deadline = s.deadline().expect("has an age");
        assert_eq!((deadline - t0).as_secs_f64().round() as u64, at);
        assert_eq!(s.on_timer(deadline - Duration::from_millis(1)).end, None);
        let end = s.on_timer(deadline).end.expect("ends at its age");
        assert_eq!(end.code, Code::Unavailable);
        assert!(end.message.contains("max connection age"), "{end:?}");
    }
    assert_eq!(session::<SotwStream>(ads()).deadline(), None, "no age");
}

#[test]
fn draining_ends_a_stream_at_its_point_of_the_period_once() {
    let t0 = Instant::now();
    let period = Duration::from_secs(10);
    let mut s = Session::<DeltaStream>::new(ads(), t0, Some(Duration::from_secs(3600)), 0.5);
    s.on_drain(t0, period, 0.25);
    assert!(s.draining());
    assert_eq!(s.deadline(), Some(t0 + Duration::from_millis(2500)));
    // A second signal does not move it.
    s.on_drain(t0, period, 0.9);
    assert_eq!(s.deadline(), Some(t0 + Duration::from_millis(2500)));
    let end = s.on_timer(t0 + period).end.expect("ends");
    assert!(end.message.contains("shutting down"), "{end:?}");
    // An age due before the drain's point still ends it first.
    let mut s = Session::<DeltaStream>::new(ads(), t0, Some(Duration::from_secs(1)), 0.0);
    s.on_drain(t0, period, 0.5);
    let end = s.on_timer(s.deadline().unwrap()).end.expect("ends");
    assert!(end.message.contains("max connection age"), "{end:?}");
}
