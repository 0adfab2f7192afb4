//! One member of three lost — killed, hung (SIGSTOP: its TCP connections
//! stay open), or never reachable — costs a client nothing: requests go to
//! the others, a watch resumes from its revision on another member, a lease
//! stays alive through them.

use std::time::Duration;

use bootes_etcd::connect::{connect, connect_members, EtcdConfig};
use bootes_etcd::etcd_client::{Client, EventType, PutOptions};
use bootes_etcd::{lease, members::Members, watch::Watch};
use bootes_tests::harness::{free_port, Etcd, EtcdCluster};
use tokio::time::Instant;

#[derive(Clone, Copy, Debug)]
enum Loss {
    Kill,
    Pause,
}

async fn client_of(cluster: &EtcdCluster) -> (Members, Client) {
    let config = EtcdConfig::new(cluster.endpoints().split(','))
        .with_request_timeout(Some(Duration::from_secs(30)));
    connect_members(&config).await.unwrap()
}

async fn put(client: &mut Client, key: &str, value: &str) {
    client
        .put(key, value, None)
        .await
        .unwrap_or_else(|e| panic!("put {key}: {e}"));
}

/// Loses the member this client prefers (where its watch and keep-alive
/// stream are), then checks that requests, the watch and the lease go on.
async fn losing_the_preferred_member(loss: Loss) {
    let mut cluster = EtcdCluster::start(3).await.unwrap();
    let (members, mut client) = client_of(&cluster).await;
    put(&mut client, "/k/0", "before").await;
    let revision = client
        .get("/k/0", None)
        .await
        .unwrap()
        .header()
        .unwrap()
        .revision();
    let mut watch = Watch::prefix(&client, "/k/", revision + 1);
    put(&mut client, "/k/1", "seen").await;
    let first = watch.next().await.unwrap();
    assert_eq!(first.events()[0].kv().unwrap().key(), b"/k/1");

    let lease = client.lease_grant(3, None).await.unwrap().id();
    client
        .put("/leased", "x", Some(PutOptions::new().with_lease(lease)))
        .await
        .unwrap();
    let keeper = tokio::spawn(lease::keep_alive(
        client.clone(),
        lease,
        Duration::from_secs(3),
    ));

    let victim = cluster
        .endpoints()
        .split(',')
        .position(|e| e == members.preferred())
        .unwrap();
    match loss {
        Loss::Kill => cluster.kill(victim),
        Loss::Pause => cluster.pause(victim).unwrap(),
    }

    // Every request succeeds (none is sent to the lost member twice).
    for n in 0..20 {
        put(&mut client, &format!("/k/after/{n}"), "v").await;
        client.get("/k/0", None).await.unwrap();
    }
    assert!(
        members
            .set_aside()
            .contains(&cluster.endpoint(victim).as_str()),
        "{loss:?}: member {victim} not set aside: {members:?}"
    );
    // The watch resumed after the last event it delivered: the next one is
    // the first put after the loss, no relist, nothing twice.
    let next = watch.next().await.unwrap();
    let event = &next.events()[0];
    assert_eq!(event.event_type(), EventType::Put);
    assert_eq!(event.kv().unwrap().key(), b"/k/after/0", "{loss:?}");

    // The lease outlives its TTL: it is renewed through the other members.
    let until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < until {
        let left = client.lease_time_to_live(lease, None).await.unwrap().ttl();
        assert!(left > 0, "{loss:?}: the kept lease expired");
        assert!(!keeper.is_finished(), "{loss:?}: the keeper gave up");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    if let Loss::Pause = loss {
        cluster.resume(victim).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_member_costs_requests_watches_and_leases_nothing() {
    losing_the_preferred_member(Loss::Kill).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_member_costs_requests_watches_and_leases_nothing() {
    losing_the_preferred_member(Loss::Pause).await;
}

/// Members that refuse connections, or accept them and never answer, from
/// the start: the client uses the one that answers.
#[tokio::test]
async fn members_unreachable_from_the_start_are_set_aside() {
    let etcd = Etcd::start().await.unwrap();
    let refusing = format!("http://127.0.0.1:{}", free_port());
    // Accepts TCP connections (the kernel does) and never answers.
    let hung = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let hung = format!("http://{}", hung.local_addr().unwrap());
    let config = EtcdConfig::new([refusing.clone(), hung.clone(), etcd.endpoint()]);
    let mut client = connect(&config).await.unwrap();
    for n in 0..20 {
        put(&mut client, &format!("/n/{n}"), "v").await;
    }
    let (members, _) = connect_members(&config).await.unwrap();
    assert_eq!(members.preferred(), etcd.endpoint());
}
