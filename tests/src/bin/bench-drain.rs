//! bench-drain: a graceful drain of a replica at scale (issue 23).
//!
//! `--streams` clients (half SotW, half delta, one connection each, one node
//! ID each, all bound to one group of `--clusters` STATIC clusters) hold the
//! first version on replica A; `--bystanders` SotW clients hold it on
//! replica B. Updates (every cluster's port) are made back to back: first
//! `--quiet` of them with nothing else happening, then as many as fit while
//! A, sent SIGTERM, drains over `--drain-period` and its clients move to B
//! (each reconnect picks A or B at random, as through a Service; A refuses
//! once it drains).
//!
//! Reported: the bystanders' update latency (the etcd write returning → the
//! new version at the client; p50/p99/max) quiet before, during the drain,
//! and quiet after it with every stream on B (the larger fan-out alone),
//! and the ratios; when A's streams ended (first, last, after the SIGTERM);
//! whether every client ends on the last update (none lost) and how many
//! responses resent what a client held. Starts a real etcd and the real
//! servers (`BOOTES_XDS_SERVER_BIN`).
//!
//! ```text
//! cargo build --release --bins
//! BOOTES_XDS_SERVER_BIN=target/release/bootes-xds-server \
//!   target/release/bench-drain --streams 1000 --bystanders 100 --drain-period 10
//! ```

use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use bootes_proto::Keys;
use bootes_tests::ads_client::{self, percentile, Held, Replicas, Roamer};
use bootes_tests::harness::{Etcd, XdsServer};
use clap::Parser;
use prost::Message;
use tokio::sync::mpsc;

#[derive(Debug, Parser)]
struct Args {
    /// Streams on the replica that drains.
    #[arg(long, default_value_t = 1_000)]
    streams: usize,
    /// Streams on the surviving replica whose update latency is measured.
    #[arg(long, default_value_t = 100)]
    bystanders: usize,
    #[arg(long, default_value_t = 50)]
    clusters: usize,
    /// The draining replica's --drain-period (seconds).
    #[arg(long, default_value_t = 10)]
    drain_period: u64,
    /// Updates measured before the drain.
    #[arg(long, default_value_t = 10)]
    quiet: usize,
}

/// Bystander latencies of one update: the etcd write returning → each
/// bystander's response of the new version.
async fn update(
    kv: &mut etcd_client::Client,
    keys: &Keys,
    seen: &mut mpsc::UnboundedReceiver<ads_client::Seen>,
    bystanders: &[usize],
    snapshot: &bootes_proto::store::Snapshot,
) -> Result<Vec<Duration>> {
    kv.put(
        ads_client::snapshot_key(keys),
        snapshot.encode_to_vec(),
        None,
    )
    .await?;
    let written = Instant::now();
    let want = ads_client::held(snapshot).version_info;
    let got = ads_client::wait_all(seen, bystanders, &want, Duration::from_secs(60)).await?;
    Ok(got
        .values()
        .map(|at| at.saturating_duration_since(written))
        .collect())
}

fn summary(mut d: Vec<Duration>) -> (Duration, Duration, Duration) {
    d.sort();
    (
        percentile(&d, 0.5),
        percentile(&d, 0.99),
        *d.last().expect("samples"),
    )
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let keys = Keys::default();
    let etcd = Etcd::start().await?;
    let drain = args.drain_period.to_string();
    let mut a = XdsServer::start_with_args(&etcd, "a", &["--drain-period", drain.as_str()]).await?;
    let b = XdsServer::start(&etcd, "b").await?;
    let mut kv = etcd_client::Client::connect([etcd.endpoint()], None).await?;
    let round = |n: usize| ads_client::snapshot(args.clusters, n);
    kv.put(
        ads_client::snapshot_key(&keys),
        round(0).encode_to_vec(),
        None,
    )
    .await?;
    let total = args.streams + args.bystanders;
    ads_client::bind_nodes(&mut kv, &keys, total).await?;

    // The bystanders on B, for good.
    let (seen_tx, mut seen) = mpsc::unbounded_channel();
    let bystanders: Vec<usize> = (args.streams..total).collect();
    for &i in &bystanders {
        let channel = ads_client::connect(b.addr()).await?;
        let tx = seen_tx.clone();
        tokio::spawn(ads_client::sotw_stream(channel, i, Held::default(), tx));
    }
    // The draining replica's clients.
    let replicas: Replicas = Arc::new(Mutex::new(vec![a.addr()]));
    let roamers: Vec<Arc<Roamer>> = (0..args.streams).map(|_| Arc::default()).collect();
    for (i, me) in roamers.iter().enumerate() {
        tokio::spawn(ads_client::roam(
            i,
            i % 2 == 1,
            replicas.clone(),
            me.clone(),
        ));
    }
    let holds = |snapshot: &bootes_proto::store::Snapshot| {
        let want = ads_client::held(snapshot);
        roamers
            .iter()
            .enumerate()
            .filter(|(i, r)| {
                let held = r.held.lock().expect("held");
                if i % 2 == 1 {
                    held.resources == want.resources
                } else {
                    held.version_info == want.version_info
                }
            })
            .count()
    };
    ads_client::wait_all(
        &mut seen,
        &bystanders,
        &ads_client::held(&round(0)).version_info,
        Duration::from_secs(120),
    )
    .await
    .context("bystanders' first sync")?;
    let deadline = Instant::now() + Duration::from_secs(120);
    while holds(&round(0)) < args.streams {
        ensure!(Instant::now() < deadline, "first sync on A");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    replicas.lock().expect("replicas").push(b.addr());

    let mut n = 1;
    let mut quiet = Vec::new();
    for _ in 0..args.quiet {
        quiet.extend(update(&mut kv, &keys, &mut seen, &bystanders, &round(n)).await?);
        n += 1;
    }

    let sigterm = Instant::now();
    a.terminate()?;
    let mut during = Vec::new();
    let mut updates_during = 0;
    let on_a = || {
        roamers
            .iter()
            .filter(|r| *r.on.lock().expect("on") == Some(0))
            .count()
    };
    loop {
        let still = on_a();
        if still == 0 && sigterm.elapsed() > Duration::from_secs(1) {
            break;
        }
        during.extend(update(&mut kv, &keys, &mut seen, &bystanders, &round(n)).await?);
        n += 1;
        updates_during += 1;
    }
    let drained_in = sigterm.elapsed();
    // Every client ends on the last update.
    let last = round(n - 1);
    let deadline = Instant::now() + Duration::from_secs(60);
    while holds(&last) < args.streams {
        ensure!(
            Instant::now() < deadline,
            "{} of {} clients never got the last update",
            args.streams - holds(&last),
            args.streams
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let on_last = holds(&last);
    // Quiet again, now with every stream on B: what the larger fan-out
    // alone costs, without a drain.
    let mut after = Vec::new();
    for _ in 0..args.quiet {
        after.extend(update(&mut kv, &keys, &mut seen, &bystanders, &round(n)).await?);
        n += 1;
    }
    let mut ends: Vec<Duration> = roamers
        .iter()
        .flat_map(|r| r.ended.lock().expect("ended").clone())
        .filter(|(on, _)| *on == 0)
        .map(|(_, at)| at.saturating_duration_since(sigterm))
        .collect();
    ends.sort();
    let resent: usize = roamers.iter().map(|r| r.resent.load(Relaxed)).sum();
    let ms = |d: Duration| format!("{:.0} ms", d.as_secs_f64() * 1e3);
    let (q50, q99, qmax) = summary(quiet);
    let (d50, d99, dmax) = summary(during);
    let (a50, a99, amax) = summary(after);
    println!("| streams on A | bystanders on B | drain period | A's streams ended | updates during | quiet before p50 / p99 / max | during p50 / p99 / max | quiet after (all on B) p50 / p99 / max | p99 during / before | p99 during / after | all on last update | resent |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    println!(
        "| {} | {} | {} s | {} – {} after SIGTERM (all moved in {}) | {updates_during} | {} / {} / {} | {} / {} / {} | {} / {} / {} | {:.2} | {:.2} | {}/{} | {resent} |",
        args.streams,
        args.bystanders,
        args.drain_period,
        ms(ends[0]),
        ms(*ends.last().expect("ends")),
        ms(drained_in),
        ms(q50),
        ms(q99),
        ms(qmax),
        ms(d50),
        ms(d99),
        ms(dmax),
        ms(a50),
        ms(a99),
        ms(amax),
        d99.as_secs_f64() / q99.as_secs_f64(),
        d99.as_secs_f64() / a99.as_secs_f64(),
        on_last,
        args.streams,
    );
    drop(b);
    Ok(())
}
