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
//! during the storm, and the CPU time the storm's replica and this client
//! used from the storm's start until every stream was served (or the
//! deadline). Starts a real etcd and the real servers
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
use bootes_tests::harness::{cpu_seconds, Etcd, XdsServer};
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

/// Streams that failed, and refusals retried.
#[derive(Clone, Default)]
struct Tally {
    failed: Arc<AtomicUsize>,
    refused: Arc<AtomicUsize>,
}

impl Tally {
    fn failed(&self) -> usize {
        self.failed.load(Ordering::Relaxed)
    }
}

/// Opens `streams` (stream indexes) on `addr`, `client.per_connection` per
/// connection, each starting from `held`. A stream refused with UNAVAILABLE
/// (the replica's bounded-rate admission) is retried as Envoy would and
/// counted in `tally.refused`; one that fails otherwise (connecting, or
/// ended by anything but the end of the bench) in `tally.failed`.
async fn open(
    tasks: &mut JoinSet<()>,
    addr: std::net::SocketAddr,
    streams: &[usize],
    client: Client,
    held: &Held,
    seen: &SeenTx,
    tally: &Tally,
) {
    let delta = client.delta;
    for chunk in streams.chunks(client.per_connection.max(1)) {
        let chunk = chunk.to_vec();
        let (held, seen, failed, refused) = (
            held.clone(),
            seen.clone(),
            tally.failed.clone(),
            tally.refused.clone(),
        );
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
                let refused = refused.clone();
                streams.spawn(async move {
                    let mut backoff = Duration::from_millis(500);
                    let r = loop {
                        let r = if delta {
                            ads_client::delta_stream(channel.clone(), i, held.clone(), seen.clone())
                                .await
                        } else {
                            ads_client::sotw_stream(channel.clone(), i, held.clone(), seen.clone())
                                .await
                        };
                        // Refused by the replica's admission (UNAVAILABLE
                        // before any response): retry as Envoy does, after a
                        // jittered, doubling back-off (0.5 s base).
                        let unavailable = r
                            .as_ref()
                            .err()
                            .and_then(|e| e.downcast_ref::<tonic::Status>())
                            .is_some_and(|s| s.code() == tonic::Code::Unavailable);
                        if !unavailable || seen.is_closed() {
                            break r;
                        }
                        refused.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(backoff.mul_f64(fastrand::f64())).await;
                        backoff = (backoff * 2).min(Duration::from_secs(30));
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
    let mut b = XdsServer::start_with_args(&etcd, "b", &extra).await?;
    let b_pid = b.process().map(|p| p.pid());
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
    let before_storm = Tally::default();
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
        &before_storm,
    )
    .await;
    // Bystanders: failures counted throughout, refusals before the storm.
    let bystander_tally = Tally {
        refused: before_storm.refused.clone(),
        ..Tally::default()
    };
    open(
        &mut bystander_tasks,
        target,
        &bystanders,
        client,
        &none,
        &seen_tx,
        &bystander_tally,
    )
    .await;
    let everyone: Vec<usize> = (0..total).collect();
    ads_client::wait_all(&mut seen, &everyone, &old_version, Duration::from_secs(300))
        .await
        .context("first sync")?;
    anyhow::ensure!(
        before_storm.failed() + bystander_tally.failed() == 0,
        "streams failed before the storm"
    );

    // CPU time of the replica taking the storm, and of this client, during
    // the storm: where the time until every stream is served goes.
    let target_pid = match args.to {
        To::Same => a.process().map(|p| p.pid()),
        To::Other => b_pid,
    };
    let cpu = || {
        (
            target_pid.and_then(cpu_seconds).unwrap_or(f64::NAN),
            cpu_seconds(std::process::id()).unwrap_or(f64::NAN),
        )
    };
    let cpu_before = cpu();

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
    let storm_tally = Tally::default();
    let mut after = JoinSet::new();
    let t_put = Instant::now();
    kv.put(snap_key.as_str(), next.encode_to_vec(), None)
        .await?;
    let t_written = Instant::now();
    open(
        &mut after,
        target,
        &storm,
        client,
        &held,
        &seen_tx,
        &storm_tally,
    )
    .await;

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
    let cpu_after = cpu();
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
    println!("| storm | variant | streams | bystanders | per conn | served | all served in | failed | refused (retried) | resent | bystander update p50 | p99 | max | write | replica CPU | client CPU |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
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
        "| {:?} | {} | {} | {} | {} | {}/{} | {} | {} | {} | {} | {p50} | {p99} | {max} | {} | {:.2} s | {:.2} s |",
        args.to,
        if args.delta { "delta" } else { "SotW" },
        args.streams,
        args.bystanders,
        args.per_connection,
        storm_served,
        args.streams,
        ms(served_in),
        storm_tally.failed() + bystander_tally.failed(),
        storm_tally.refused.load(Ordering::Relaxed),
        resent,
        ms(t_written - t_put),
        cpu_after.0 - cpu_before.0,
        cpu_after.1 - cpu_before.1,
    );
    drop(b);
    Ok(())
}
