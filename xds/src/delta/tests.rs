use std::collections::BTreeMap;
use std::sync::Arc;

use bootes_proto::envoy::discovery::DeltaDiscoveryRequest;
use bootes_proto::ResourceType::{self, *};

use bootes_proto::envoy::discovery::DeltaDiscoveryResponse;
use prost::Message;

use super::*;
use crate::response::NameError;
use crate::test_support::snap;

fn req(
    ty: ResourceType,
    subscribe: &[&str],
    unsubscribe: &[&str],
    nonce: &str,
) -> DeltaDiscoveryRequest {
    DeltaDiscoveryRequest {
        type_url: ty.type_url().into(),
        resource_names_subscribe: subscribe.iter().map(|s| s.to_string()).collect(),
        resource_names_unsubscribe: unsubscribe.iter().map(|s| s.to_string()).collect(),
        response_nonce: nonce.into(),
        ..Default::default()
    }
}

fn ack(e: &Encoded) -> DeltaDiscoveryRequest {
    req(e.ty, &[], &[], &e.nonce)
}

fn nack(e: &Encoded) -> DeltaDiscoveryRequest {
    let mut r = ack(e);
    r.error_detail = Some(bootes_proto::envoy::RpcStatus {
        code: 3,
        message: "rejected".into(),
        details: vec![],
    });
    r
}

/// (name, version) pairs of the updates in a response.
fn updates(e: &Encoded) -> Vec<(&str, &str)> {
    e.resources
        .iter()
        .map(|r| (r.name.as_str(), r.version.as_str()))
        .collect()
}

struct Client {
    stream: DeltaStream,
    cache: ResponseCache,
}

impl Client {
    fn new(target: Arc<Snapshot>) -> Self {
        let mut c = Self {
            stream: DeltaStream::default(),
            cache: ResponseCache::new(),
        };
        assert!(c.snapshot(target).is_empty(), "nothing subscribed yet");
        c
    }

    fn request(&mut self, r: DeltaDiscoveryRequest) -> Vec<Arc<Encoded>> {
        self.stream.on_request(&r, &self.cache).responses
    }

    fn snapshot(&mut self, s: Arc<Snapshot>) -> Vec<Arc<Encoded>> {
        self.stream.on_snapshot(Some(s), &self.cache).responses
    }
}

#[test]
fn a_wildcard_subscriber_gets_everything_once() {
    let mut c = Client::new(snap(&[(Cluster, "a", "1"), (Cluster, "b", "1")]));
    let out = c.request(req(Cluster, &[], &[], ""));
    assert_eq!(updates(&out[0]), [("a", "1"), ("b", "1")]);
    assert!(c.request(ack(&out[0])).is_empty());
    assert!(c
        .snapshot(snap(&[(Cluster, "a", "1"), (Cluster, "b", "1")]))
        .is_empty());
    let out = c.snapshot(snap(&[(Cluster, "a", "1"), (Cluster, "b", "2")]));
    assert_eq!(updates(&out[0]), [("b", "2")], "only what changed");
    assert!(out[0].removed.is_empty());
}

#[test]
fn initial_resource_versions_are_honoured_on_reconnect() {
    let mut c = Client::new(snap(&[
        (Cluster, "a", "1"),
        (Cluster, "b", "2"),
        (Cluster, "c", "1"),
    ]));
    let mut first = req(Cluster, &[], &[], "");
    first.initial_resource_versions = [("a", "1"), ("b", "1"), ("gone", "1")]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let out = c.request(first);
    assert_eq!(
        updates(&out[0]),
        [("b", "2"), ("c", "1")],
        "a is not resent"
    );
    let out = c.request(ack(&out[0]));
    assert_eq!(out[0].removed, ["gone"]);
    assert!(out[0].resources.is_empty());
    assert!(c.request(ack(&out[0])).is_empty());
}

#[test]
fn a_client_that_has_everything_still_gets_an_answer_and_nothing_more() {
    let mut c = Client::new(snap(&[(Cluster, "a", "1")]));
    let mut first = req(Cluster, &[], &[], "");
    first
        .initial_resource_versions
        .insert("a".into(), "1".into());
    let out = c.request(first);
    assert_eq!(out.len(), 1);
    assert!(out[0].resources.is_empty() && out[0].removed.is_empty());
    assert!(c.request(ack(&out[0])).is_empty());
}

#[test]
fn named_subscriptions_add_and_drop_names() {
    let mut c = Client::new(snap(&[(Endpoint, "a", "1"), (Endpoint, "b", "1")]));
    let out = c.request(req(Endpoint, &["a"], &[], ""));
    assert_eq!(updates(&out[0]), [("a", "1")]);
    let out = c.request(req(Endpoint, &["b"], &[], &out[0].nonce));
    assert_eq!(updates(&out[0]), [("b", "1")], "a is not resent");
    assert!(c
        .request(req(Endpoint, &[], &["a"], &out[0].nonce))
        .is_empty());
    // A change to the unsubscribed name is not sent; to the other one it is.
    let out = c.snapshot(snap(&[(Endpoint, "a", "2"), (Endpoint, "b", "2")]));
    assert_eq!(updates(&out[0]), [("b", "2")]);
    // Resubscribing sends the current version.
    let out = c.request(req(Endpoint, &["a"], &[], &out[0].nonce));
    assert_eq!(updates(&out[0]), [("a", "2")]);
}

#[test]
fn vhds_sends_virtual_hosts_only_as_they_are_asked_for() {
    let mut c = Client::new(snap(&[
        (VirtualHost, "routes/a.example", "1"),
        (VirtualHost, "routes/b.example", "1"),
    ]));
    // Envoy's first VHDS request names nothing: it is answered, empty.
    let out = c.request(req(VirtualHost, &[], &[], ""));
    assert_eq!(out.len(), 1);
    assert!(updates(&out[0]).is_empty());
    // A request for a.example needs it.
    let out = c.request(req(VirtualHost, &["routes/a.example"], &[], &out[0].nonce));
    assert_eq!(updates(&out[0]), [("routes/a.example", "1")]);
    assert!(c.request(ack(&out[0])).is_empty());
    let out = c.snapshot(snap(&[
        (VirtualHost, "routes/a.example", "2"),
        (VirtualHost, "routes/b.example", "2"),
    ]));
    assert_eq!(updates(&out[0]), [("routes/a.example", "2")]);
}

#[test]
fn subscription_changes_with_a_stale_nonce_still_apply() {
    let mut c = Client::new(snap(&[(Endpoint, "a", "1"), (Endpoint, "b", "1")]));
    let first = c.request(req(Endpoint, &["a"], &[], ""));
    let effects = c
        .stream
        .on_request(&req(Endpoint, &["b"], &[], "not-a-nonce"), &c.cache);
    assert_eq!(effects.ignored.len(), 1);
    assert!(
        effects.responses.is_empty(),
        "still waiting for the first ACK"
    );
    let out = c.request(ack(&first[0]));
    assert_eq!(updates(&out[0]), [("b", "1")]);
}

#[test]
fn a_nacked_version_is_not_resent_and_the_client_keeps_the_old_one() {
    let mut c = Client::new(snap(&[(Cluster, "a", "1")]));
    let out = c.request(req(Cluster, &[], &[], ""));
    c.request(ack(&out[0]));
    let bad = c.snapshot(snap(&[(Cluster, "a", "bad")]));
    let effects = c.stream.on_request(&nack(&bad[0]), &c.cache);
    assert!(effects.responses.is_empty(), "no resend loop");
    assert_eq!(effects.nacks[0].resources, ["a"]);
    assert_eq!(
        c.stream.report()[&Cluster].acked["a"],
        "1",
        "the client kept version 1"
    );
    assert_eq!(
        c.stream.report()[&Cluster].acked_version,
        bootes_proto::version::of_set([("a", "1")])
    );
    assert!(c.snapshot(snap(&[(Cluster, "a", "bad")])).is_empty());
    let good = c.snapshot(snap(&[(Cluster, "a", "good")]));
    assert_eq!(updates(&good[0]), [("a", "good")]);
    // Going back to the version the client has needs no update either.
    c.request(nack(&good[0]));
    assert!(c.snapshot(snap(&[(Cluster, "a", "1")])).is_empty());
}

#[test]
fn removals_wait_until_every_type_carries_the_new_state() {
    let mut c = Client::new(snap(&[
        (Cluster, "old", "1"),
        (Endpoint, "old", "1"),
        (Route, "r", "to-old"),
    ]));
    let out = c.request(req(Cluster, &[], &[], ""));
    c.request(ack(&out[0]));
    let out = c.request(req(Endpoint, &["old"], &[], ""));
    c.request(ack(&out[0]));
    let out = c.request(req(Route, &["r"], &[], ""));
    assert!(c.request(ack(&out[0])).is_empty());

    let out = c.snapshot(snap(&[
        (Cluster, "new", "1"),
        (Endpoint, "new", "1"),
        (Route, "r", "to-new"),
    ]));
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let describe = |r: &Encoded| {
        (
            r.ty,
            updates(r)
                .iter()
                .map(|(n, _)| n.to_string())
                .collect::<Vec<_>>(),
            r.removed.clone(),
        )
    };
    assert_eq!(out.len(), 1);
    assert_eq!(describe(&out[0]), (Cluster, s(&["new"]), vec![]));
    // Envoy subscribes to the new cluster's endpoints and holds the CDS ACK
    // until the cluster warmed: the endpoints must not wait for that ACK.
    let eds = c.request(req(Endpoint, &["new"], &[], "stale"));
    assert_eq!(describe(&eds[0]), (Endpoint, s(&["new"]), vec![]));
    assert!(
        c.request(ack(&eds[0])).is_empty(),
        "the route waits for the CDS ACK"
    );
    let rds = c.request(ack(&out[0]));
    assert_eq!(describe(&rds[0]), (Route, s(&["r"]), vec![]));
    // Removals only once everything carries the new state.
    let removal = c.request(ack(&rds[0]));
    assert_eq!(describe(&removal[0]), (Endpoint, vec![], s(&["old"])));
    let removal = c.request(ack(&removal[0]));
    assert_eq!(describe(&removal[0]), (Cluster, vec![], s(&["old"])));
    assert!(c.request(ack(&removal[0])).is_empty());
}

#[test]
fn a_named_subscription_to_what_does_not_exist_is_told_so_once() {
    let mut c = Client::new(snap(&[(Cluster, "a", "1")]));
    let out = c.request(req(Cluster, &["a", "missing"], &[], ""));
    assert_eq!(updates(&out[0]), [("a", "1")]);
    assert_eq!(
        out[0].removed,
        ["missing"],
        "the delta protocol's does-not-exist"
    );
    assert_eq!(
        out[0].errors,
        [("missing".to_string(), NameError::NotFound)]
    );
    let wire = DeltaDiscoveryResponse::decode(out[0].bytes.clone()).unwrap();
    assert_eq!(
        wire.resource_errors[0].error_detail.as_ref().unwrap().code,
        5
    );
    assert!(c.request(ack(&out[0])).is_empty(), "told once");
    // Another one, named later, at once.
    let out = c.request(req(Cluster, &["other"], &[], ""));
    assert_eq!(out[0].removed, ["other"]);
    assert!(c.request(ack(&out[0])).is_empty());
    // It appears, then goes: sent, then removed once.
    let out = c.snapshot(snap(&[(Cluster, "a", "1"), (Cluster, "other", "1")]));
    assert_eq!(updates(&out[0]), [("other", "1")]);
    assert!(c.request(ack(&out[0])).is_empty());
    let out = c.snapshot(snap(&[(Cluster, "a", "1")]));
    assert_eq!(out[0].removed, ["other"]);
    assert!(c.request(ack(&out[0])).is_empty(), "not told again");
    // Unsubscribed and named again: told again.
    c.request(req(Cluster, &[], &["missing"], ""));
    let out = c.request(req(Cluster, &["missing"], &[], ""));
    assert_eq!(out[0].removed, ["missing"]);
    c.request(ack(&out[0]));
    // A wildcard subscriber is told nothing of names it did not name.
    let mut w = Client::new(snap(&[(Cluster, "a", "1")]));
    let out = w.request(req(Cluster, &[], &[], ""));
    assert!(out[0].errors.is_empty() && out[0].removed.is_empty());
}

#[test]
fn equal_deltas_share_one_encoding() {
    let cache = ResponseCache::new();
    let target = snap(&[(Cluster, "a", "1")]);
    let mut sent = Vec::new();
    for _ in 0..10 {
        let mut s = DeltaStream::default();
        s.on_snapshot(Some(target.clone()), &cache);
        sent.push(s.on_request(&req(Cluster, &[], &[], ""), &cache).responses[0].clone());
    }
    assert!(sent.iter().all(|e| Arc::ptr_eq(e, &sent[0])));
    assert_eq!(cache.encodes(), 1);
}

#[test]
fn settles_on_the_target_after_a_random_walk_of_changes_nacks_and_subscriptions() {
    // Whatever happens, once the client has answered everything it holds
    // exactly what it subscribed to of the last snapshot, minus versions
    // it rejected. (ACKs skip rescanning the resources: this checks that
    // nothing is missed because of it.)
    let mut c = Client::new(snap(&[(Cluster, "a", "0")]));
    let mut held: BTreeMap<(ResourceType, String), String> = BTreeMap::new();
    let mut pending = c.request(req(Cluster, &[], &[], ""));
    pending.extend(c.request(req(Endpoint, &["a"], &[], "")));
    let names = ["a", "b", "c"];
    for i in 0..60u32 {
        // A pseudo-random walk, the same on every run.
        let r = i.wrapping_mul(2_654_435_761) >> 7;
        let v = (i % 4).to_string();
        let items: Vec<(ResourceType, &str, &str)> = names
            .iter()
            .enumerate()
            .filter(|(k, _)| r >> k & 1 == 1)
            .flat_map(|(_, n)| [(Cluster, *n, v.as_str()), (Endpoint, *n, v.as_str())])
            .collect();
        let target = snap(&items);
        pending.extend(c.snapshot(target.clone()));
        if r & 8 == 8 {
            let name = names[(r as usize >> 4) % 3];
            let (sub, unsub): (&[&str], &[&str]) = if r & 16 == 16 {
                (&[name], &[])
            } else {
                (&[], &[name])
            };
            // The client forgets what it unsubscribes from.
            for n in unsub {
                held.remove(&(Endpoint, n.to_string()));
            }
            pending.extend(c.request(req(Endpoint, sub, unsub, "")));
        }
        // Answer everything: NACK now and then, ACK the rest.
        let mut rejected = Vec::new();
        while let Some(e) = pending.pop() {
            let refuse = r & 32 == 32 && !e.resources.is_empty() && rejected.is_empty();
            if refuse {
                rejected.push(e.clone());
                pending.extend(c.request(nack(&e)));
            } else {
                for res in &e.resources {
                    held.insert((e.ty, res.name.clone()), res.version.clone());
                }
                for name in &e.removed {
                    held.remove(&(e.ty, name.clone()));
                }
                pending.extend(c.request(ack(&e)));
            }
        }
        let report = c.stream.report();
        for ty in [Cluster, Endpoint] {
            let state = &c.stream.scheduled.types[&ty];
            let mine: BTreeMap<&str, &str> = held
                .iter()
                .filter(|((t, _), _)| *t == ty)
                .map(|((_, n), v)| (n.as_str(), v.as_str()))
                .filter(|(n, _)| state.wants(n))
                .collect();
            let acked: BTreeMap<&str, &str> = report[&ty]
                .acked
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_str()))
                .collect();
            assert_eq!(acked, mine, "step {i}: the stream's view is the client's");
            for r in target.resources(ty).into_iter().flat_map(|m| m.values()) {
                if state.wants(&r.name) && state.rejected.get(&r.name) != Some(&r.version) {
                    assert_eq!(
                        mine.get(r.name.as_str()),
                        Some(&r.version.as_str()),
                        "step {i}: {ty} {} is up to date",
                        r.name
                    );
                }
            }
            for name in mine.keys() {
                assert!(
                    target.resources(ty).is_some_and(|m| m.contains_key(*name)),
                    "step {i}: {ty} {name} was removed"
                );
            }
        }
    }
}

#[test]
fn wildcard_streams_in_the_same_position_share_their_work_and_state() {
    // Streams of one group go through the same changes: each step is
    // computed once for all of them, and they hold one shared record of
    // what the client has, not a copy each.
    let cache = ResponseCache::new();
    let first = snap(&[(Cluster, "a", "1"), (Cluster, "b", "1")]);
    let second = snap(&[(Cluster, "a", "2"), (Cluster, "c", "1")]);
    let mut streams: Vec<DeltaStream> = (0..3).map(|_| DeltaStream::default()).collect();
    // Answers every response until the stream is quiet; returns them.
    let settle = |s: &mut DeltaStream, mut pending: Vec<Arc<Encoded>>| {
        let mut all = Vec::new();
        while let Some(e) = pending.pop() {
            pending.extend(s.on_request(&ack(&e), &cache).responses);
            all.push(e);
        }
        all
    };
    let mut sent = Vec::new();
    for s in &mut streams {
        s.on_snapshot(Some(first.clone()), &cache);
        let first_responses = s.on_request(&req(Cluster, &[], &[], ""), &cache).responses;
        settle(s, first_responses);
        let pushed = s.on_snapshot(Some(second.clone()), &cache).responses;
        sent.push(settle(s, pushed));
    }
    // The update (a, c), then the removal of b: the same responses.
    assert_eq!(sent[0].len(), 2);
    assert_eq!(updates(&sent[0][0]), [("a", "2"), ("c", "1")]);
    assert_eq!(sent[0][1].removed, ["b"]);
    for other in &sent[1..] {
        assert!(other.iter().zip(&sent[0]).all(|(a, b)| Arc::ptr_eq(a, b)));
    }
    assert_eq!(cache.encodes(), 3, "first state, update, removal");
    let held = &streams[0].scheduled.types[&Cluster].client;
    assert!(streams
        .iter()
        .all(|s| Arc::ptr_eq(&s.scheduled.types[&Cluster].client, held)));
    let versions: Vec<(&str, &str)> = held
        .versions
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    assert_eq!(versions, [("a", "2"), ("c", "1")]);
}

#[test]
fn shared_steps_are_forgotten_once_their_snapshot_is_gone() {
    // A long-lived stream through many snapshots, and a new stream for
    // each: the shared steps of snapshots nobody holds any more go.
    let cache = ResponseCache::new();
    let mut stream = DeltaStream::default();
    let mut pending = Vec::new();
    for i in 0..300 {
        let v = i.to_string();
        let target = snap(&[(Cluster, "a", &v), (Cluster, &format!("n{i}"), "1")]);
        pending.extend(stream.on_snapshot(Some(target.clone()), &cache).responses);
        if i == 0 {
            pending.extend(
                stream
                    .on_request(&req(Cluster, &[], &[], ""), &cache)
                    .responses,
            );
        }
        let mut newcomer = DeltaStream::default();
        newcomer.on_snapshot(Some(target), &cache);
        newcomer.on_request(&req(Cluster, &[], &[], ""), &cache);
        while let Some(e) = pending.pop() {
            pending.extend(stream.on_request(&ack(&e), &cache).responses);
        }
    }
    assert!(
        cache.transition_count() < 150,
        "{} transitions remembered",
        cache.transition_count()
    );
}
