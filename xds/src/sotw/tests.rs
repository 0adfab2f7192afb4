use std::sync::Arc;

use bootes_proto::envoy::core::Node;
use bootes_proto::envoy::discovery::DiscoveryRequest;
use bootes_proto::ResourceType::{self, *};

use bootes_proto::envoy::discovery::DiscoveryResponse;
use prost::Message;

use super::*;
use crate::response::NameError;
use crate::test_support::snap;

fn req(ty: ResourceType, names: &[&str], nonce: &str) -> DiscoveryRequest {
    DiscoveryRequest {
        type_url: ty.type_url().into(),
        resource_names: names.iter().map(|s| s.to_string()).collect(),
        response_nonce: nonce.into(),
        node: Some(Node {
            id: "envoy-0.ns".into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn nack(ty: ResourceType, nonce: &str) -> DiscoveryRequest {
    let mut r = req(ty, &[], nonce);
    r.error_detail = Some(bootes_proto::envoy::RpcStatus {
        code: 3,
        message: "bad cluster".into(),
        details: vec![],
    });
    r
}

/// Names carried by a response.
fn names(e: &Encoded) -> Vec<&str> {
    e.names().collect()
}

/// Drives one stream the way Envoy does: ACKs every response.
struct Client {
    stream: SotwStream,
    cache: ResponseCache,
    /// Responses received, in order.
    log: Vec<Arc<Encoded>>,
}

impl Client {
    fn new() -> Self {
        let stream = SotwStream::default();
        Self {
            stream,
            cache: ResponseCache::new(),
            log: Vec::new(),
        }
    }

    fn request(&mut self, r: DiscoveryRequest) -> Vec<Arc<Encoded>> {
        let effects = self.stream.on_request(&r, &self.cache);
        self.log.extend(effects.responses.iter().cloned());
        effects.responses
    }

    fn snapshot(&mut self, s: Option<Arc<Snapshot>>) -> Vec<Arc<Encoded>> {
        let effects = self.stream.on_snapshot(s, &self.cache);
        self.log.extend(effects.responses.iter().cloned());
        effects.responses
    }

    /// ACKs `response` keeping the subscription `names`; returns what follows.
    fn ack(&mut self, response: &Encoded, names: &[&str]) -> Vec<Arc<Encoded>> {
        let mut r = req(response.ty, names, &response.nonce);
        r.version_info = response.version_info.clone();
        self.request(r)
    }

    /// ACKs until the stream is quiet, with the given named subscriptions.
    fn settle(&mut self, mut pending: Vec<Arc<Encoded>>, subs: &[(ResourceType, &[&str])]) {
        for _ in 0..32 {
            let Some(next) = pending.pop() else { return };
            let names = subs
                .iter()
                .find(|(t, _)| *t == next.ty)
                .map(|(_, n)| *n)
                .unwrap_or(&[]);
            pending = self.ack(&next, names);
        }
        panic!("stream never settled");
    }
}

#[test]
fn first_request_must_name_the_node_and_it_may_not_change() {
    use crate::{Identity, ProtocolError};
    let mut id = Identity::default();
    let node = |s: &str| Node {
        id: s.into(),
        ..Default::default()
    };
    assert_eq!(id.identify(None), Err(ProtocolError::MissingNodeId));
    assert_eq!(
        id.identify(Some(&node(""))),
        Err(ProtocolError::MissingNodeId)
    );
    assert_eq!(id.identify(Some(&node("envoy-0.ns"))), Ok(true));
    assert_eq!(id.identify(None), Ok(false), "later requests may omit it");
    assert!(matches!(
        id.identify(Some(&node("other.ns"))),
        Err(ProtocolError::NodeIdChanged(..))
    ));
    assert_eq!(id.get(), Some("envoy-0.ns"));
}

#[test]
fn a_node_without_snapshot_waits_and_is_served_when_one_appears() {
    let mut c = Client::new();
    assert!(c.request(req(Cluster, &[], "")).is_empty());
    assert!(c.snapshot(None).is_empty());
    let sent = c.snapshot(Some(snap(&[(Cluster, "a", "1")])));
    assert_eq!(sent.len(), 1);
    assert_eq!(names(&sent[0]), ["a"]);
}

#[test]
fn an_empty_snapshot_still_answers_so_envoy_can_finish_initialising() {
    let mut c = Client::new();
    c.snapshot(Some(snap(&[])));
    let sent = c.request(req(Cluster, &[], ""));
    assert_eq!(sent.len(), 1);
    assert!(names(&sent[0]).is_empty());
}

#[test]
fn a_client_reconnecting_with_what_it_has_is_not_sent_it_again() {
    let target = snap(&[(Endpoint, "a", "1"), (Cluster, "c", "1")]);
    let mut first = Client::new();
    first.snapshot(Some(target.clone()));
    let cds = first.request(req(Cluster, &[], ""))[0].clone();
    first.ack(&cds, &[]);
    let eds = first.request(req(Endpoint, &["a"], ""))[0].clone();

    // The same client on a new stream (this replica or another).
    let mut again = Client::new();
    again.snapshot(Some(target));
    let mut r = req(Cluster, &[], "");
    r.version_info = cds.version_info.clone();
    assert!(again.request(r).is_empty(), "CDS not resent");
    let mut r = req(Endpoint, &["a"], "");
    r.version_info = eds.version_info.clone();
    assert!(again.request(r).is_empty(), "EDS not resent");
    let report = again.stream.report();
    assert_eq!(report[&Endpoint].acked["a"], "1");
    for (ty, r) in &report {
        let set = r.acked.iter().map(|(n, v)| (n.as_str(), v.as_str()));
        assert_eq!(r.acked_version, bootes_proto::version::of_set(set), "{ty}");
    }
    assert_eq!(report[&Cluster].acked_version, cds.version_info);

    // It has no nonce on this stream yet: its requests still count.
    let more = again.request(req(Endpoint, &["a", "b"], ""));
    assert_eq!(names(&more[0]), ["a"]);
    assert_eq!(more[0].errors, [("b".to_string(), NameError::NotFound)]);
    again.request(req(Endpoint, &["a", "b"], &more[0].nonce));
    // The next change is pushed as usual.
    let next = again.snapshot(Some(snap(&[
        (Endpoint, "a", "2"),
        (Endpoint, "b", "1"),
        (Cluster, "c", "1"),
    ])));
    assert_eq!(next.len(), 1);
    assert_eq!(names(&next[0]), ["a", "b"]);
}

#[test]
fn a_reconnecting_client_still_warming_is_answered() {
    // It claims the version of a response that lacked a name it now wants.
    let mut first = Client::new();
    first.snapshot(Some(snap(&[(Endpoint, "a", "1"), (Endpoint, "b", "1")])));
    let eds = first.request(req(Endpoint, &["a"], ""))[0].clone();

    let mut again = Client::new();
    again.snapshot(Some(snap(&[(Endpoint, "a", "1"), (Endpoint, "b", "1")])));
    let mut r = req(Endpoint, &["a", "b"], "");
    r.version_info = eds.version_info.clone();
    let sent = again.request(r);
    assert_eq!(sent.len(), 1);
    assert_eq!(names(&sent[0]), ["a", "b"]);
}

#[test]
fn an_unchanged_version_is_never_pushed_twice() {
    let mut c = Client::new();
    c.snapshot(Some(snap(&[(Cluster, "a", "1")])));
    let first = c.request(req(Cluster, &[], ""));
    assert!(c.ack(&first[0], &[]).is_empty());
    // Same content in a new snapshot object (e.g. another resource type changed elsewhere).
    assert!(c.snapshot(Some(snap(&[(Cluster, "a", "1")]))).is_empty());
    // A repeated ACK is not a reason to send either.
    assert!(c.ack(&first[0], &[]).is_empty());
    let next = c.snapshot(Some(snap(&[(Cluster, "a", "2")])));
    assert_eq!(next.len(), 1);
    assert_ne!(next[0].version_info, first[0].version_info);
}

#[test]
fn a_nacked_version_is_not_resent_but_the_next_one_is() {
    let mut c = Client::new();
    c.snapshot(Some(snap(&[(Cluster, "a", "1")])));
    let first = c.request(req(Cluster, &[], ""));
    c.ack(&first[0], &[]);
    let bad = c.snapshot(Some(snap(&[(Cluster, "a", "bad")])));
    let effects = c.stream.on_request(&nack(Cluster, &bad[0].nonce), &c.cache);
    assert!(effects.responses.is_empty(), "no resend loop");
    assert_eq!(effects.nacks.len(), 1);
    assert_eq!(effects.nacks[0].version, bad[0].version_info);
    assert_eq!(effects.nacks[0].detail, "bad cluster");
    assert_eq!(effects.nacks[0].resources, ["a"]);
    let report = c.stream.report();
    assert_eq!(
        report[&Cluster].acked["a"], "1",
        "Envoy keeps the version it ACKed"
    );
    assert!(report[&Cluster].nack.is_some());

    assert!(c.snapshot(Some(snap(&[(Cluster, "a", "bad")]))).is_empty());
    let fixed = c.snapshot(Some(snap(&[(Cluster, "a", "good")])));
    assert_eq!(fixed.len(), 1);
    let effects = c
        .stream
        .on_request(&req(Cluster, &[], &fixed[0].nonce), &c.cache);
    assert_eq!(effects.acks, [(Cluster, fixed[0].version_info.clone())]);
    assert!(c.stream.report()[&Cluster].nack.is_none());
    assert_eq!(c.stream.report()[&Cluster].acked["a"], "good");
}

#[test]
fn stale_nonces_are_ignored() {
    let mut c = Client::new();
    c.snapshot(Some(snap(&[(Endpoint, "a", "1"), (Endpoint, "b", "1")])));
    let first = c.request(req(Endpoint, &["a"], ""));
    c.ack(&first[0], &["a"]);
    let second = c.snapshot(Some(snap(&[(Endpoint, "a", "2"), (Endpoint, "b", "1")])));
    // A late request carrying the first nonce must not change the subscription.
    let effects = c
        .stream
        .on_request(&req(Endpoint, &["a", "b"], &first[0].nonce), &c.cache);
    assert!(effects.responses.is_empty());
    assert_eq!(effects.ignored.len(), 1);
    assert!(effects.acks.is_empty());
    // The current nonce is accepted.
    let more = c.ack(&second[0], &["a", "b"]);
    assert_eq!(names(&more[0]), ["a", "b"]);
}

#[test]
fn named_subscriptions_get_exactly_the_requested_names_that_exist() {
    let mut c = Client::new();
    c.snapshot(Some(snap(&[(Route, "r1", "1"), (Route, "r2", "1")])));
    let sent = c.request(req(Route, &["r2", "missing"], ""));
    assert_eq!(names(&sent[0]), ["r2"]);
    let more = c.ack(&sent[0], &["r1", "r2"]);
    assert_eq!(names(&more[0]), ["r1", "r2"]);
    assert!(more[0].errors.is_empty());
    assert!(c.ack(&more[0], &["r1", "r2"]).is_empty());
}

#[test]
fn a_named_subscription_to_what_does_not_exist_gets_not_found_at_once() {
    let mut c = Client::new();
    c.snapshot(Some(snap(&[(Route, "r1", "1"), (Cluster, "c", "1")])));
    let not_found = |names: &[&str]| -> Vec<(String, NameError)> {
        names
            .iter()
            .map(|n| (n.to_string(), NameError::NotFound))
            .collect()
    };
    let sent = c.request(req(Route, &["r1", "missing"], ""));
    assert_eq!(names(&sent[0]), ["r1"]);
    assert_eq!(sent[0].errors, not_found(&["missing"]));
    let wire = DiscoveryResponse::decode(sent[0].bytes.clone()).unwrap();
    assert_eq!(wire.resource_errors.len(), 1);
    let error = &wire.resource_errors[0];
    assert_eq!(error.resource_name.as_ref().unwrap().name, "missing");
    assert_eq!(error.error_detail.as_ref().unwrap().code, 5, "NOT_FOUND");
    // The ACK repeats the subscription: nothing more.
    assert!(c.ack(&sent[0], &["r1", "missing"]).is_empty());
    // Another missing name is reported as soon as it is named.
    let more = c.ack(&sent[0], &["r1", "missing", "nope"]);
    assert_eq!(more[0].errors, not_found(&["missing", "nope"]));
    // When it appears, it is sent and no longer an error.
    let appeared = c.snapshot(Some(snap(&[
        (Route, "r1", "1"),
        (Route, "nope", "1"),
        (Cluster, "c", "1"),
    ])));
    assert!(appeared.is_empty(), "waits for the ACK in flight");
    let appeared = c.ack(&more[0], &["r1", "missing", "nope"]);
    assert_eq!(names(&appeared[0]), ["nope", "r1"]);
    assert_eq!(appeared[0].errors, not_found(&["missing"]));
    // A wildcard subscriber is told nothing of names it did not name.
    let cds = c.request(req(Cluster, &[], ""));
    assert!(cds[0].errors.is_empty());
    let cds = c.ack(&cds[0], &["*", "other"]);
    assert!(cds.is_empty() || cds[0].errors.is_empty());
}

#[test]
fn unknown_types_are_ignored() {
    let mut c = Client::new();
    c.snapshot(Some(snap(&[])));
    let mut r = req(Cluster, &[], "");
    r.type_url = "type.googleapis.com/some.Other".into();
    let effects = c.stream.on_request(&r, &c.cache);
    assert!(effects.responses.is_empty());
    assert_eq!(effects.ignored.len(), 1);
}

/// A client at the steady state of a snapshot with one cluster, its
/// endpoints, one listener and one route.
fn steady(c: &mut Client, cluster: &str, route_version: &str) -> (Arc<Encoded>, Arc<Encoded>) {
    c.snapshot(Some(snap(&[
        (Cluster, cluster, "1"),
        (Endpoint, cluster, "1"),
        (Listener, "l", "1"),
        (Route, "r", route_version),
    ])));
    let cds = c.request(req(Cluster, &[], ""));
    let eds = c.request(req(Endpoint, &[cluster], ""));
    c.ack(&eds[0], &[cluster]);
    c.ack(&cds[0], &[]);
    let lds = c.request(req(Listener, &[], ""));
    let rds = c.request(req(Route, &["r"], ""));
    c.ack(&rds[0], &["r"]);
    assert!(c.ack(&lds[0], &[]).is_empty());
    (eds[0].clone(), rds[0].clone())
}

#[test]
fn changes_go_out_in_order_and_routing_waits_for_the_cluster_ack() {
    let mut c = Client::new();
    steady(&mut c, "c", "1");

    // Everything changes at once: clusters and endpoints go out first;
    // endpoints do not wait for the CDS ACK (Envoy needs them to warm).
    let first = c.snapshot(Some(snap(&[
        (Cluster, "c", "2"),
        (Endpoint, "c", "2"),
        (Listener, "l", "2"),
        (Route, "r", "2"),
    ])));
    let types: Vec<_> = first.iter().map(|e| e.ty).collect();
    assert_eq!(types, [Cluster, Endpoint]);
    assert!(
        c.ack(&first[1], &["c"]).is_empty(),
        "listeners and routes wait for the CDS ACK"
    );
    // Envoy ACKs CDS once the clusters warmed: now listeners and routes.
    let second = c.ack(&first[0], &[]);
    let types: Vec<_> = second.iter().map(|e| e.ty).collect();
    assert_eq!(types, [Listener, Route]);
    assert!(c.ack(&second[1], &["r"]).is_empty());
    assert!(c.ack(&second[0], &[]).is_empty());
}

#[test]
fn a_cluster_a_route_stops_using_is_removed_only_after_the_route_update() {
    let mut c = Client::new();
    let (eds, _) = steady(&mut c, "old", "to-old");
    c.log.clear();

    // One change: route moves to "new", "old" is deleted.
    let out = c.snapshot(Some(snap(&[
        (Cluster, "new", "1"),
        (Endpoint, "new", "1"),
        (Listener, "l", "1"),
        (Route, "r", "to-new"),
    ])));
    // CDS first, with both clusters.
    assert_eq!(out[0].ty, Cluster);
    assert_eq!(names(&out[0]), ["new", "old"]);
    // The endpoints of the subscription ("old") changed too: gone.
    assert_eq!(out.len(), 2);
    assert_eq!(out[1].ty, Endpoint);
    assert!(names(&out[1]).is_empty());
    // While processing CDS, Envoy subscribes to the new cluster's endpoints
    // with the EDS nonce it has seen so far (stale: ignored), then ACKs the
    // EDS response with the new names; it holds the CDS ACK until "new" warms.
    assert!(c
        .request(req(Endpoint, &["new", "old"], &eds.nonce))
        .is_empty());
    let warm = c.ack(&out[1], &["new", "old"]);
    assert_eq!(warm.len(), 1, "endpoints are sent before the CDS ACK");
    assert_eq!(names(&warm[0]), ["new"]);
    assert!(
        c.ack(&warm[0], &["new", "old"]).is_empty(),
        "routes wait for the CDS ACK"
    );
    let next = c.ack(&out[0], &[]);
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].ty, Route, "the listener did not change");
    let route = next[0].resources.iter().find(|r| r.name == "r").unwrap();
    assert_eq!(route.version, "to-new");
    // Only now is the old cluster removed.
    let next = c.ack(&next[0], &["r"]);
    assert_eq!(next[0].ty, Cluster);
    assert_eq!(names(&next[0]), ["new"]);
    assert!(c.ack(&next[0], &[]).is_empty());

    let cds: Vec<Vec<&str>> = c
        .log
        .iter()
        .filter(|e| e.ty == Cluster)
        .map(|e| names(e))
        .collect();
    assert_eq!(cds, [vec!["new", "old"], vec!["new"]]);
    let route_at = c.log.iter().position(|e| e.ty == Route).unwrap();
    let removal_at = c.log.iter().rposition(|e| e.ty == Cluster).unwrap();
    assert!(route_at < removal_at);
}

#[test]
fn a_nack_during_a_change_does_not_stall_the_remaining_types() {
    let mut c = Client::new();
    c.snapshot(Some(snap(&[(Cluster, "c", "1"), (Listener, "l", "1")])));
    let cds = c.request(req(Cluster, &[], ""));
    c.ack(&cds[0], &[]);
    let lds = c.request(req(Listener, &[], ""));
    c.ack(&lds[0], &[]);
    let out = c.snapshot(Some(snap(&[(Cluster, "c", "bad"), (Listener, "l", "2")])));
    assert_eq!(out[0].ty, Cluster);
    let effects = c.stream.on_request(&nack(Cluster, &out[0].nonce), &c.cache);
    assert_eq!(effects.responses.len(), 1);
    assert_eq!(effects.responses[0].ty, Listener);
}

#[test]
fn streams_of_one_group_share_one_encoding() {
    let cache = ResponseCache::new();
    let target = snap(&[(Cluster, "a", "1"), (Cluster, "b", "1")]);
    let mut streams: Vec<SotwStream> = (0..100).map(|_| SotwStream::default()).collect();
    let mut first: Option<Arc<Encoded>> = None;
    for s in &mut streams {
        s.on_snapshot(Some(target.clone()), &cache);
        let sent = s.on_request(&req(Cluster, &[], ""), &cache).responses;
        if let Some(f) = &first {
            assert!(Arc::ptr_eq(f, &sent[0]));
        }
        first = Some(sent[0].clone());
    }
    assert_eq!(cache.encodes(), 1);
}

#[test]
fn settles_after_a_random_walk_of_changes() {
    // Whatever sequence of snapshots arrives, once the client has ACKed
    // everything the stream carries exactly the last snapshot.
    let mut c = Client::new();
    let subs: &[(ResourceType, &[&str])] = &[(Endpoint, &["a", "b"]), (Route, &["r"])];
    c.snapshot(Some(snap(&[(Cluster, "a", "0")])));
    let mut pending = c.request(req(Cluster, &[], ""));
    pending.extend(c.request(req(Listener, &[], "")));
    c.settle(pending, subs);
    for i in 1..20 {
        let v = i.to_string();
        let mut items = vec![(Cluster, if i % 2 == 0 { "a" } else { "b" }, v.as_str())];
        if i % 3 == 0 {
            items.push((Listener, "l", v.as_str()));
        }
        let out = c.snapshot(Some(snap(&items)));
        c.settle(out, subs);
        let last_cds = c.log.iter().rev().find(|e| e.ty == Cluster).unwrap();
        assert_eq!(names(last_cds), [items[0].1]);
        let last_lds = c.log.iter().rev().find(|e| e.ty == Listener).unwrap();
        assert_eq!(last_lds.resources.len(), usize::from(i % 3 == 0));
    }
}

#[test]
fn the_shared_set_version_plans_what_building_the_set_would() {
    // The make step takes a wildcard subscriber's version from the snapshot
    // instead of hashing its own set: it must be the same version, and must
    // notice when the set keeps resources the target no longer has.
    let cache = ResponseCache::new();
    let old = snap(&[
        (Cluster, "a", "1"),
        (Cluster, "b", "1"),
        (Endpoint, "a", "1"),
    ]);
    let new = snap(&[
        (Cluster, "a", "2"),
        (Cluster, "c", "1"),
        (Endpoint, "c", "1"),
    ]);
    let subscriptions = [
        Subscription::Wildcard,
        Subscription::Names(["a".to_string(), "b".to_string()].into()),
    ];
    for ty in [Cluster, Endpoint, Listener] {
        for subscription in &subscriptions {
            for (sent_name, sent_from) in
                [("nothing", None), ("old", Some(&old)), ("new", Some(&new))]
            {
                let mut state = TypeState {
                    subscription: subscription.clone(),
                    sent: None,
                    in_flight: false,
                    must_answer: false,
                    claimed: None,
                    answered: true,
                    acked: None,
                    nack: None,
                    memo: Memo::default(),
                };
                state.sent = sent_from.map(|s| {
                    cache.state_of_the_world(ty, ResourceSet::new(exact_set(ty, &state, s)))
                });
                let (version, _) = plan(ty, &state, &new);
                let built = make_set(ty, &state, &new);
                let case = format!("{ty} {subscription:?}, sent {sent_name}");
                let errors = not_found(&state, &built);
                assert_eq!(
                    version,
                    ResourceSet::with_errors(built.clone(), errors).version,
                    "{case}"
                );
                assert_eq!(
                    keeps(ty, &state, &new),
                    built.len() != exact_set(ty, &state, &new).len(),
                    "{case}"
                );
            }
        }
    }
}
