//! Leader election against a real etcd.

use std::time::Duration;

use bootes_proto::{store, Keys};
use bootes_tests::harness::{eventually, Etcd};

/// Waits (with the harness deadline) until `check` holds.
async fn until(what: &str, check: impl Fn() -> bool) {
    eventually(what, || async {
        if check() {
            Ok(())
        } else {
            Err(anyhow::anyhow!("not yet"))
        }
    })
    .await
    .unwrap();
}
use prost::Message;

use super::*;
use crate::etcd_writer::EtcdWriter;
use bootes_core::index::{Desired, GroupSnapshot};
use bootes_core::store::{SnapshotStore, StoreError};

async fn client(etcd: &Etcd) -> Client {
    Client::connect([etcd.endpoint()], None).await.unwrap()
}

fn leader_of(elections: &[&Election]) -> Vec<usize> {
    elections
        .iter()
        .enumerate()
        .filter(|(_, e)| e.leadership().borrow().is_some())
        .map(|(i, _)| i)
        .collect()
}

fn one_group(version: &str) -> Desired {
    let mut d = Desired::default();
    d.groups.insert(
        "ns/g".into(),
        GroupSnapshot::new(
            store::Snapshot {
                namespace: "ns".into(),
                group: "g".into(),
                version: version.into(),
                ..Default::default()
            },
            vec![],
        ),
    );
    d
}

#[tokio::test]
async fn exactly_one_leader_and_resigning_hands_over() {
    let etcd = Etcd::start().await.unwrap();
    let keys = Keys::default();
    let ttl = Duration::from_secs(2);
    let mut a = Election::start(client(&etcd).await, keys.leader(), "a".into(), ttl);
    let mut b = Election::start(client(&etcd).await, keys.leader(), "b".into(), ttl);
    until("one leader", || leader_of(&[&a, &b]).len() == 1).await;
    let first = leader_of(&[&a, &b])[0];
    let (leader, follower) = if first == 0 {
        (&mut a, &b)
    } else {
        (&mut b, &a)
    };
    leader.resign().await;
    until("the follower takes over", || {
        follower.leadership().borrow().is_some()
    })
    .await;
}

#[tokio::test]
async fn a_deposed_leader_cannot_write() {
    let etcd = Etcd::start().await.unwrap();
    let keys = Keys::default();
    let ttl = Duration::from_secs(2);
    let mut a = Election::start(client(&etcd).await, keys.leader(), "a".into(), ttl);
    until("a leads", || a.leadership().borrow().is_some()).await;
    let old_fence = a.leadership().borrow().clone().unwrap();

    let mut writer = EtcdWriter::connect(
        &bootes_etcd::connect::EtcdConfig::new([etcd.endpoint()]),
        keys.clone(),
        None,
    )
    .await
    .unwrap();
    writer.load().await.unwrap();
    let plan = writer.plan(&one_group("v1"));
    writer.write(&plan, Some(&old_fence)).await.unwrap();

    // Leadership moves to b; a's old fence must no longer pass.
    let b = Election::start(client(&etcd).await, keys.leader(), "b".into(), ttl);
    a.resign().await;
    until("b leads", || b.leadership().borrow().is_some()).await;
    let plan = writer.plan(&one_group("v2"));
    let err = writer.write(&plan, Some(&old_fence)).await.unwrap_err();
    assert!(matches!(err, StoreError::NotLeader), "{err}");

    let mut c = client(&etcd).await;
    let stored = c.get(keys.snapshot("ns/g"), None).await.unwrap();
    let snap = store::Snapshot::decode(stored.kvs()[0].value()).unwrap();
    assert_eq!(
        snap.version, "v1",
        "the deposed leader's write did not land"
    );

    let new_fence = b.leadership().borrow().clone().unwrap();
    writer.write(&plan, Some(&new_fence)).await.unwrap();
}

#[tokio::test]
async fn after_an_etcd_restart_the_leader_recognises_its_own_lease() {
    let mut etcd = Etcd::start().await.unwrap();
    let keys = Keys::default();
    // Long enough that the lease, extended by etcd when it starts again,
    // outlives the election's next campaign; short enough that the outage
    // below outlasts it.
    let ttl = Duration::from_secs(6);
    let a = Election::start(client(&etcd).await, keys.leader(), "a".into(), ttl);
    until("a leads", || a.leadership().borrow().is_some()).await;
    let fence = a.leadership().borrow().clone().unwrap();
    let mut leadership = a.leadership();
    leadership.mark_unchanged();

    // etcd is gone for longer than the lease could be renewed: the election
    // says `None` (it may have lost the lease), then, etcd back, leads again
    // with the same fence: the key on a's own lease was recognised, not
    // waited out and created again (which would give it a new create
    // revision). A shorter outage costs nothing: the lease is renewed.
    etcd.process().kill();
    tokio::time::timeout(Duration::from_secs(30), leadership.changed())
        .await
        .expect("the election noticed etcd was gone")
        .unwrap();
    assert!(a.leadership().borrow().is_none());
    etcd.restart().await.unwrap();
    until("a leads again", || a.leadership().borrow().is_some()).await;
    assert_eq!(a.leadership().borrow().clone().unwrap(), fence);
    let mut c = client(&etcd).await;
    let key = c.get(keys.leader(), None).await.unwrap();
    assert_eq!(key.kvs()[0].create_revision(), fence.create_revision);
}
