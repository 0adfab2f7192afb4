//! bench-storm: a reconnect storm on bootes-xds-server (issue 23).
//!
//! `--streams` Envoys (ADS on CDS, `--per-connection` streams per HTTP/2
//! connection, one node ID each, all bound to one group of `--clusters`
//! STATIC clusters) hold the first version on replica A, while
//! `--bystanders` other Envoys hold it on the replica that takes the storm.
//! Then, at once:
//! * `--to other`: A is killed (SIGKILL) and every stream reconnects to
//!   replica B, where the bystanders are;
//! * `--to same`: every stream's connection is closed and a new one opened
//!   to A (a network blip), where the bystanders are too;
//!
//! and the group's snapshot changes (every cluster's port). Each reconnecting
//! stream says what it holds (SotW: `version_info`; delta:
//! `initial_resource_versions`), so a server that honours it sends it only
//! the change.
//!
//! Reported: how long until every reconnected stream has the new version
//! (from the storm's start), how many streams failed (a connection refused
//! or reset, or a stream ended by the server), how many were sent again
//! what they held (a response of the old version), and the bystanders'
//! update latency (the etcd write returning → the new version; p50/p99/max)
//! during the storm. Starts a real etcd and the real servers
//! (`BOOTES_XDS_SERVER_BIN`, e.g. target/release/bootes-xds-server).
//!
//! ```text
//! cargo build --release --bins
//! BOOTES_XDS_SERVER_BIN=target/release/bootes-xds-server \
//!   target/release/bench-storm --streams 10000 --bystanders 1000 --to same [--delta]
//! ```

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use bootes_proto::Keys;
use bootes_tests::ads_client::{self, percentile, Held, SeenTx};
use bootes_tests::harness::{Etcd, XdsServer};
use clap::{Parser, ValueEnum};
use prost::Message;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum To {
    /// Reconnect to the same replica (connections closed, then opened).
    Same,
    /// The replica is killed; reconnect to the other one.
    Other,
}

#[derive(Debug, Parser)]
struct Args {
    /// Streams in the storm.
    #[arg(long, default_value_t = 10_000)]
    streams: usize,
    /// Streams already on the replica that takes the storm.
    #[arg(long, default_value_t = 1_000)]
    bystanders: usize,
    /// Streams per HTTP/2 connection (an Envoy has one).
    #[arg(long, default_value_t = 1)]
    per_connection: usize,
    /// STATIC clusters in the group.
    #[arg(long, default_value_t = 100)]
    clusters: usize,
    #[arg(long, value_enum, default_value_t = To::Same)]
    to: To,
    /// Delta xDS instead of state of the world.
    #[arg(long)]
    delta: bool,
    /// Extra arguments for both xds-servers (e.g. "--max-connections=20000").
    #[arg(long, allow_hyphen_values = true)]
    server_arg: Vec<String>,
}

/// How the streams speak.
#[derive(Clone, Copy)]
struct Client {
    per_connection: usize,
    delta: bool,
}

/// Opens `streams` (stream indexes) on `addr`, `client.per_connection` per
/// connection, each starting from `held`. A stream that fails (connecting,
/// or ended by anything but the end of the bench) is counted in `failed`.
async fn open(
    tasks: &mut JoinSet<()>,
    addr: std::net::SocketAddr,
    streams: &[usize],
    client: Client,
    held: &Held,
    seen: &SeenTx,
    failed: &Arc<AtomicUsize>,
) {
    let delta = client.delta;
    for chunk in streams.chunks(client.per_connection.max(1)) {
        let chunk = chunk.to_vec();
        let (held, seen, failed) = (held.clone(), seen.clone(), failed.clone());
        tasks.spawn(async move {
            let channel = match ads_client::connect(addr).await {
                Ok(c) => c,
                Err(e) => {
                    failed.fetch_add(chunk.len(), Ordering::Relaxed);
                    eprintln!("connect for streams {chunk:?}: {e:#}");
                    return;
                }
            };
            let mut streams = JoinSet::new();
            for i in chunk {
                let (channel, held, seen) = (channel.clone(), held.clone(), seen.clone());
                streams.spawn(async move {
                    let r = if delta {
                        ads_client::delta_stream(channel, i, held, seen.clone()).await
                    } else {
                        ads_client::sotw_stream(channel, i, held, seen.clone()).await
                    };
                    (i, r, seen.is_closed())
                });
            }
            while let Some(Ok((i, r, done))) = streams.join_next().await {
                if !done {
                    failed.fetch_add(1, Ordering::Relaxed);
                    match r {
                        Ok(()) => eprintln!("stream {i}: ended by the server"),
                        Err(e) => eprintln!("stream {i}: {e:#}"),
                    }
                }
            }
        });
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let keys = Keys::default();
    let etcd = Etcd::start().await?;
    let extra: Vec<&str> = args.server_arg.iter().map(String::as_str).collect();
    let mut a = XdsServer::start_with_args(&etcd, "a", &extra).await?;
    let b = XdsServer::start_with_args(&etcd, "b", &extra).await?;
    let mut kv = etcd_client::Client::connect([etcd.endpoint()], None).await?;

    let snap_key = ads_client::snapshot_key(&keys);
    let first = ads_client::snapshot(args.clusters, 0);
    kv.put(snap_key.as_str(), first.encode_to_vec(), None)
        .await?;
    let total = args.streams + args.bystanders;
    ads_client::bind_nodes(&mut kv, &keys, total).await?;
    let held = ads_client::held(&first);
    let old_version = held.version_info.clone();

    let storm: Vec<usize> = (0..args.streams).collect();
    let bystanders: Vec<usize> = (args.streams..total).collect();
    let target = match args.to {
        To::Same => a.addr(),
        To::Other => b.addr(),
    };

    // Before: the storm's streams on A, the bystanders on the target.
    let (seen_tx, mut seen) = mpsc::unbounded_channel();
    let failed_before = Arc::new(AtomicUsize::new(0));
    let mut before = JoinSet::new();
    let mut bystander_tasks = JoinSet::new();
    let client = Client {
        per_connection: args.per_connection,
        delta: args.delta,
    };
    let none = Held::default();
    open(
        &mut before,
        a.addr(),
        &storm,
        client,
        &none,
        &seen_tx,
        &failed_before,
    )
    .await;
    let bystanders_failed = Arc::new(AtomicUsize::new(0));
    let stay = &bystanders_failed;
    open(
        &mut bystander_tasks,
        target,
        &bystanders,
        client,
        &none,
        &seen_tx,
        stay,
    )
    .await;
    let everyone: Vec<usize> = (0..total).collect();
    ads_client::wait_all(&mut seen, &everyone, &old_version, Duration::from_secs(300))
        .await
        .context("first sync")?;
    anyhow::ensure!(
        failed_before.load(Ordering::Relaxed) + bystanders_failed.load(Ordering::Relaxed) == 0,
        "streams failed before the storm"
    );

    // The storm, and a change at the same moment.
    let t0 = Instant::now();
    match args.to {
        To::Same => before.abort_all(),
        To::Other => {
            a.kill();
            before.abort_all();
        }
    }
    while before.join_next().await.is_some() {}
    let next = ads_client::snapshot(args.clusters, 1);
    let new_version = next.types[0].version.clone();
    let failed = Arc::new(AtomicUsize::new(0));
    let mut after = JoinSet::new();
    let t_put = Instant::now();
    kv.put(snap_key.as_str(), next.encode_to_vec(), None)
        .await?;
    let t_written = Instant::now();
    open(&mut after, target, &storm, client, &held, &seen_tx, &failed).await;

    // Until every stream has the new version (or the deadline), counting
    // what was sent again.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut got = std::collections::HashMap::with_capacity(total);
    let mut resent = 0usize;
    while got.len() < total {
        let Ok(Some(s)) = tokio::time::timeout_at(deadline, seen.recv()).await else {
            break;
        };
        if s.version == old_version && s.stream < args.streams && s.at > t0 {
            resent += 1;
        }
        if s.version == new_version {
            got.entry(s.stream).or_insert(s.at);
        }
    }
    let storm_served = storm.iter().filter(|i| got.contains_key(i)).count();
    let served_in = storm
        .iter()
        .filter_map(|i| got.get(i))
        .map(|at| at.saturating_duration_since(t0))
        .max()
        .unwrap_or_default();
    let mut bystander_latency: Vec<Duration> = bystanders
        .iter()
        .filter_map(|i| got.get(i))
        .map(|at| at.saturating_duration_since(t_written))
        .collect();
    bystander_latency.sort();
    drop(seen);
    println!("| storm | variant | streams | bystanders | per conn | served | all served in | failed | resent | bystander update p50 | p99 | max | write |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    let ms = |d: Duration| format!("{:.0} ms", d.as_secs_f64() * 1e3);
    let (p50, p99, max) = if bystander_latency.is_empty() {
        ("-".to_string(), "-".to_string(), "-".to_string())
    } else {
        (
            ms(percentile(&bystander_latency, 0.5)),
            ms(percentile(&bystander_latency, 0.99)),
            ms(*bystander_latency.last().expect("non-empty")),
        )
    };
    println!(
        "| {:?} | {} | {} | {} | {} | {}/{} | {} | {} | {} | {p50} | {p99} | {max} | {} |",
        args.to,
        if args.delta { "delta" } else { "SotW" },
        args.streams,
        args.bystanders,
        args.per_connection,
        storm_served,
        args.streams,
        ms(served_in),
        failed.load(Ordering::Relaxed) + bystanders_failed.load(Ordering::Relaxed),
        resent,
        ms(t_written - t_put),
    );
    drop(b);
    Ok(())
}
