//! bench-fanout: one bootes-xds-server replica carrying many Envoys.
//!
//! The protocol of issue 11, so figures compare with other xDS servers
//! measured the same way: `--streams` ADS streams (state of the world, or
//! delta with `--delta`), one node ID each, `--per-connection` streams per
//! HTTP/2 connection, all bound to one group of `--clusters` STATIC clusters
//! (`cluster-0`…, 1 s connect timeout, one inline endpoint each). Every
//! stream subscribes to CDS and ACKs every response. Then, `--rounds` times,
//! the ports of every cluster change at once.
//!
//! Reported: the full sync (streams opened → every stream has the first
//! version), the update latency (the etcd write returning → each stream
//! receiving the new version; p50/p99/max over every stream and round), and
//! the server's RSS per stream (RSS with the streams minus RSS before, over
//! the streams). The client decodes only what an ACK needs (type URL,
//! version, nonce; never the resources), so it costs the shared cores as
//! little as possible. Starts a real etcd and the real server
//! (`BOOTES_XDS_SERVER_BIN`, e.g. target/release/bootes-xds-server).
//!
//! ```text
//! cargo build --release --bins
//! BOOTES_XDS_SERVER_BIN=target/release/bootes-xds-server \
//!   target/release/bench-fanout --streams 10000 --rounds 5 [--delta]
//! ```

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bootes_proto::Keys;
use bootes_tests::ads_client::{self, percentile, Held};
use bootes_tests::harness::{eventually, http_get, Etcd, XdsServer};
use clap::Parser;
use prost::Message;
use tokio::sync::mpsc;

#[derive(Debug, Parser)]
struct Args {
    /// ADS streams (Envoys), one node ID each, all bound to one group.
    #[arg(long, default_value_t = 1000)]
    streams: usize,
    /// Streams per HTTP/2 connection.
    #[arg(long, default_value_t = 10)]
    per_connection: usize,
    /// STATIC clusters in the group.
    #[arg(long, default_value_t = 100)]
    clusters: usize,
    /// Changes (of every cluster's port) to measure.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Delta xDS instead of state of the world.
    #[arg(long)]
    delta: bool,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let keys = Keys::default();
    let etcd = Etcd::start().await?;
    let mut xds = XdsServer::start(&etcd, "bench").await?;
    let mut kv = etcd_client::Client::connect([etcd.endpoint()], None).await?;

    let snap_key = ads_client::snapshot_key(&keys);
    let first = ads_client::snapshot(args.clusters, 0);
    kv.put(snap_key.as_str(), first.encode_to_vec(), None)
        .await?;
    ads_client::bind_nodes(&mut kv, &keys, args.streams).await?;
    let pid = xds.process().context("xds-server process")?.pid();
    // The baseline is the server with every binding loaded, no stream yet.
    let admin = xds.admin_addr();
    let nodes = format!("bootes_xds_nodes {}", args.streams);
    eventually("the xds-server loaded every binding", || async {
        let r = http_get(admin, "127.0.0.1", "/metrics").await?;
        anyhow::ensure!(r.text().lines().any(|l| l == nodes), "not yet");
        Ok(())
    })
    .await?;
    let rss_before = bootes_tests::harness::rss_kib(pid).unwrap_or_default();

    let connections = args.streams.div_ceil(args.per_connection.max(1));
    let mut channels = Vec::with_capacity(connections);
    for _ in 0..connections {
        channels.push(ads_client::connect(xds.addr()).await?);
    }
    let (seen_tx, mut seen) = mpsc::unbounded_channel();
    let t_open = Instant::now();
    for i in 0..args.streams {
        let channel = channels[i / args.per_connection.max(1)].clone();
        let seen_tx = seen_tx.clone();
        let seen_closed = seen_tx.clone();
        let delta = args.delta;
        tokio::spawn(async move {
            let r = if delta {
                ads_client::delta_stream(channel, i, Held::default(), seen_tx).await
            } else {
                ads_client::sotw_stream(channel, i, Held::default(), seen_tx).await
            };
            // Once measured, the server is stopped: quiet about that.
            if let Err(e) = r {
                if !seen_closed.is_closed() {
                    eprintln!("stream {i}: {e:#}");
                }
            }
        });
    }
    drop(seen_tx);
    let want = &first.types[0].version;
    let everyone: Vec<usize> = (0..args.streams).collect();
    let arrivals =
        ads_client::wait_all(&mut seen, &everyone, want, Duration::from_secs(300)).await?;
    let full_sync = arrivals
        .values()
        .map(|at| at.saturating_duration_since(t_open))
        .max()
        .unwrap_or_default();
    let rss_with = bootes_tests::harness::rss_kib(pid).unwrap_or_default();

    let mut all = Vec::new();
    for round in 1..=args.rounds {
        let next = ads_client::snapshot(args.clusters, round);
        let bytes = next.encode_to_vec();
        let t0 = Instant::now();
        kv.put(snap_key.as_str(), bytes, None).await?;
        let arrivals = ads_client::wait_all(
            &mut seen,
            &everyone,
            &next.types[0].version,
            Duration::from_secs(120),
        )
        .await?;
        all.extend(arrivals.values().map(|at| at.saturating_duration_since(t0)));
    }
    if all.is_empty() {
        bail!("no rounds");
    }
    all.sort();
    drop(seen);
    let rss_after = bootes_tests::harness::rss_kib(pid).unwrap_or_default();
    let per_stream = |rss: u64| rss.saturating_sub(rss_before) as f64 / args.streams as f64;
    println!("| variant | streams | per conn | clusters | rounds | full sync | update p50 | p99 | max | RSS/stream after sync | after updates |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    println!(
        "| {} | {} | {} | {} | {} | {:.2} s | {:.0} ms | {:.0} ms | {:.0} ms | {:.1} KiB | {:.1} KiB |",
        if args.delta { "delta" } else { "SotW" },
        args.streams,
        args.per_connection,
        args.clusters,
        args.rounds,
        full_sync.as_secs_f64(),
        percentile(&all, 0.50).as_secs_f64() * 1e3,
        percentile(&all, 0.99).as_secs_f64() * 1e3,
        all.last().expect("non-empty").as_secs_f64() * 1e3,
        per_stream(rss_with),
        per_stream(rss_after),
    );
    Ok(())
}
