//! Rebalancing after a scale-up (issue 23): clients never leave a replica on
//! their own, so `--max-connection-age` ends their streams and they
//! reconnect, through a new connection, to a replica picked at random (as
//! a Service does). Nothing they hold is sent again, and no update is
//! missed on the way.
//!
//! Needs `cargo build --bins` first and etcd (see `tests/src/harness/mod.rs`).

use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{ensure, Result};
use bootes_proto::Keys;
use bootes_tests::ads_client::{self, Held, Replicas, Roamer};
use bootes_tests::harness::{eventually, eventually_with, Etcd, XdsServer};
use prost::Message;

const CLIENTS: usize = 300;
/// Short, for the test; the default is 30 minutes.
const AGE_SECS: u64 = 4;

/// Streams per replica now.
fn spread(roamers: &[Arc<Roamer>], replicas: usize) -> Vec<usize> {
    let mut on = vec![0; replicas];
    for r in roamers {
        if let Some(k) = *r.on.lock().unwrap() {
            on[k] += 1;
        }
    }
    on
}

/// Whether every client holds `snapshot` (SotW by version, delta by
/// resource).
fn all_hold(roamers: &[Arc<Roamer>], snapshot: &bootes_proto::store::Snapshot) -> Result<()> {
    let want = ads_client::held(snapshot);
    let behind = roamers
        .iter()
        .enumerate()
        .filter(|(i, r)| {
            let held: Held = r.held.lock().unwrap().clone();
            if delta(*i) {
                held.resources != want.resources
            } else {
                held.version_info != want.version_info
            }
        })
        .count();
    ensure!(behind == 0, "{behind} of {CLIENTS} clients behind");
    Ok(())
}

/// Half the clients speak delta.
fn delta(i: usize) -> bool {
    i % 2 == 1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_scale_up_the_new_replicas_take_their_share_within_twice_the_age() -> Result<()> {
    let keys = Keys::default();
    let etcd = Etcd::start().await?;
    let age = AGE_SECS.to_string();
    let args = ["--max-connection-age", age.as_str()];
    let a = XdsServer::start_with_args(&etcd, "a", &args).await?;
    let mut kv = etcd.client().await?;
    let round = |n| ads_client::snapshot(5, n);
    kv.put(
        ads_client::snapshot_key(&keys),
        round(0).encode_to_vec(),
        None,
    )
    .await?;
    ads_client::bind_nodes(&mut kv, &keys, CLIENTS).await?;

    let replicas: Replicas = Arc::new(Mutex::new(vec![a.addr()]));
    let roamers: Vec<Arc<Roamer>> = (0..CLIENTS).map(|_| Arc::default()).collect();
    let tasks: Vec<_> = roamers
        .iter()
        .enumerate()
        .map(|(i, me)| tokio::spawn(ads_client::roam(i, delta(i), replicas.clone(), me.clone())))
        .collect();
    eventually("every client holds the first snapshot", || async {
        all_hold(&roamers, &round(0))
    })
    .await?;
    assert_eq!(spread(&roamers, 1), [CLIENTS]);

    // Scale up: two more replicas; clients find them only by reconnecting.
    let b = XdsServer::start_with_args(&etcd, "b", &args).await?;
    let c = XdsServer::start_with_args(&etcd, "c", &args).await?;
    replicas.lock().unwrap().extend([b.addr(), c.addr()]);
    // An update while they move.
    kv.put(
        ads_client::snapshot_key(&keys),
        round(1).encode_to_vec(),
        None,
    )
    .await?;
    let most = CLIENTS * 45 / 100;
    let balanced = eventually_with(
        "no replica holds more than 45% of the streams",
        Duration::from_secs(2 * AGE_SECS),
        || async {
            let on = spread(&roamers, 3);
            ensure!(
                on.iter().all(|n| *n <= most) && on.iter().sum::<usize>() == CLIENTS,
                "streams per replica: {on:?}"
            );
            Ok(on)
        },
    )
    .await?;
    println!("streams per replica after the scale-up: {balanced:?}");

    // Every client got the update made while it moved, and gets the next,
    // wherever it is now.
    eventually(
        "every client holds the update made during the move",
        || async { all_hold(&roamers, &round(1)) },
    )
    .await?;
    kv.put(
        ads_client::snapshot_key(&keys),
        round(2).encode_to_vec(),
        None,
    )
    .await?;
    eventually("every client holds the last snapshot", || async {
        all_hold(&roamers, &round(2))
    })
    .await?;
    let resent: usize = roamers.iter().map(|r| r.resent.load(Relaxed)).sum();
    let streams: usize = roamers.iter().map(|r| r.streams.load(Relaxed)).sum();
    assert!(streams > CLIENTS, "clients reconnected ({streams} streams)");
    assert_eq!(resent, 0, "responses resending what a client held");
    for t in tasks {
        t.abort();
    }
    Ok(())
}
