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
use bootes_tests::harness::{eventually, eventually_with, http_get, Etcd, XdsServer};
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

/// A SIGTERM'd replica turns not ready first, then ends its streams spread
/// over its drain period; its clients move to the survivor, which serves
/// every update made meanwhile; nothing held is resent. (Timings of the
/// survivor's updates: `bench-drain`, BENCHMARKS.md.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draining_replica_turns_unready_then_ends_its_streams_over_the_period() -> Result<()> {
    const DRAIN_SECS: u64 = 6;
    const ON_A: usize = 200;
    let keys = Keys::default();
    let etcd = Etcd::start().await?;
    let drain = DRAIN_SECS.to_string();
    let mut a = XdsServer::start_with_args(&etcd, "a", &["--drain-period", drain.as_str()]).await?;
    let b = XdsServer::start(&etcd, "b").await?;
    let mut kv = etcd.client().await?;
    let round = |n| ads_client::snapshot(5, n);
    kv.put(
        ads_client::snapshot_key(&keys),
        round(0).encode_to_vec(),
        None,
    )
    .await?;
    ads_client::bind_nodes(&mut kv, &keys, ON_A).await?;
    let replicas: Replicas = Arc::new(Mutex::new(vec![a.addr()]));
    let roamers: Vec<Arc<Roamer>> = (0..ON_A).map(|_| Arc::default()).collect();
    let tasks: Vec<_> = roamers
        .iter()
        .enumerate()
        .map(|(i, me)| tokio::spawn(ads_client::roam(i, delta(i), replicas.clone(), me.clone())))
        .collect();
    eventually("every client holds the first snapshot on A", || async {
        all_hold(&roamers, &round(0))?;
        ensure!(spread(&roamers, 1) == [ON_A]);
        Ok(())
    })
    .await?;
    // From now on a reconnect may reach either replica (as through a
    // Service); A refuses new connections once it drains.
    replicas.lock().unwrap().push(b.addr());

    let sigterm = std::time::Instant::now();
    a.terminate()?;
    let admin = a.admin_addr();
    let still_on_a = eventually("A says it is not ready", || async {
        let status = http_get(admin, "localhost", "/readyz").await?.status;
        ensure!(status != 200, "/readyz {status}");
        Ok(spread(&roamers, 2)[0])
    })
    .await?;
    assert!(
        still_on_a * 2 > ON_A,
        "A turned unready before its streams ended (it held {still_on_a} of {ON_A} then)"
    );
    // An update while A drains.
    kv.put(
        ads_client::snapshot_key(&keys),
        round(1).encode_to_vec(),
        None,
    )
    .await?;
    eventually("every client left A", || async {
        let on = spread(&roamers, 2);
        ensure!(on[0] == 0, "streams per replica: {on:?}");
        Ok(())
    })
    .await?;
    let mut ends: Vec<Duration> = roamers
        .iter()
        .flat_map(|r| r.ended.lock().unwrap().clone())
        .filter(|(on, _)| *on == 0)
        .map(|(_, at)| at - sigterm)
        .collect();
    ends.sort();
    let (first, last) = (ends[0], ends[ends.len() - 1]);
    println!("A's streams ended between {first:?} and {last:?} after SIGTERM");
    assert!(
        last - first >= Duration::from_secs(DRAIN_SECS) / 3,
        "spread over the drain period, not at once: {first:?}..{last:?}"
    );
    eventually(
        "every client holds the update made during the drain",
        || async { all_hold(&roamers, &round(1)) },
    )
    .await?;
    kv.put(
        ads_client::snapshot_key(&keys),
        round(2).encode_to_vec(),
        None,
    )
    .await?;
    eventually("every client holds the next update, on B", || async {
        all_hold(&roamers, &round(2))
    })
    .await?;
    let resent: usize = roamers.iter().map(|r| r.resent.load(Relaxed)).sum();
    assert_eq!(resent, 0, "responses resending what a client held");
    for t in tasks {
        t.abort();
    }
    Ok(())
}

/// The same with real Envoys, smaller: four Envoys on one replica, two more
/// replicas come up (each Envoy's xDS cluster lists all three, as a
/// Service's endpoints would), and with `--max-connection-age` the new
/// replicas get Envoys while every Envoy keeps its configuration.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_envoys_move_to_new_replicas_at_their_connection_age() -> Result<()> {
    use bootes_tests::harness::{cluster_eds, endpoint, pod, Controller, Envoy, ManifestDir};
    const ENVOYS: usize = 4;
    let m = ManifestDir::new()?;
    let mut docs: Vec<_> = (0..ENVOYS)
        .map(|i| pod("demo", &format!("envoy-{i}"), &[]))
        .collect();
    docs.push(cluster_eds("demo", "cluster-a", "cluster-a", &[]));
    docs.push(endpoint(
        "demo",
        "cluster-a-endpoints",
        "cluster-a",
        &["127.0.0.1:9".parse()?],
        &[],
    ));
    m.write_docs("objects.yaml", &docs)?;
    let etcd = Etcd::start().await?;
    let _controller = Controller::start(&etcd, m.path()).await?;
    let age = AGE_SECS.to_string();
    let args = ["--max-connection-age", age.as_str()];
    let a = XdsServer::start_with_args(&etcd, "a", &args).await?;
    // B and C exist in the Envoys' bootstrap from the start, but are down.
    let mut b = XdsServer::start_with_args(&etcd, "b", &args).await?;
    let mut c = XdsServer::start_with_args(&etcd, "c", &args).await?;
    b.kill();
    c.kill();
    let addrs = [a.addr(), b.addr(), c.addr()];
    let mut envoys = Vec::new();
    for i in 0..ENVOYS {
        envoys.push(Envoy::start(&format!("envoy-{i}.demo"), &addrs).await?);
    }
    let has_cluster = |e: &Envoy| {
        let e = e.admin_addr();
        async move {
            let body = http_get(e, "localhost", "/clusters").await?.body;
            ensure!(body.contains("cluster-a::"), "no cluster-a yet");
            Ok(())
        }
    };
    for e in &envoys {
        eventually("Envoy has its cluster from A", || has_cluster(e)).await?;
    }
    b.restart().await?;
    c.restart().await?;
    // Which replica an Envoy reconnects to is chance (its xDS cluster's load
    // balancer over three endpoints), so the test counts every replica seen
    // serving an Envoy since the restart: each Envoy reconnects about once per
    // age, so over 4 ages both new replicas are missed with odds of about 1%.
    let seen = std::sync::Mutex::new([0usize; 3]);
    let on = eventually_with(
        "both new replicas serve Envoys",
        Duration::from_secs(4 * AGE_SECS),
        || async {
            let mut on = [0usize; 3];
            for e in &envoys {
                for addr in e.connected_xds_servers().await? {
                    if let Some(k) = addrs.iter().position(|a| *a == addr) {
                        on[k] += 1;
                    }
                }
            }
            let mut seen = seen.lock().unwrap();
            for k in 0..3 {
                seen[k] = seen[k].max(on[k]);
            }
            ensure!(
                seen[1] > 0 && seen[2] > 0,
                "most Envoys seen per replica: {seen:?} (now {on:?})"
            );
            Ok(*seen)
        },
    )
    .await?;
    println!("Envoys per replica: {on:?}");
    for e in &envoys {
        has_cluster(e).await?;
    }
    Ok(())
}
