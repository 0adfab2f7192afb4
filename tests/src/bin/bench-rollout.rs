//! bench-rollout: how long until an object says `Programmed=True` after an
//! edit, on a fleet of many streams, and what counting it costs the
//! controller.
//!
//! The whole real path, directory mode: a manifest directory with
//! `--streams` pods (namespace `bench`, node IDs `envoy-N.bench`) and
//! `--objects` STATIC Clusters selecting all of them; a real etcd, the real
//! controller (`BOOTES_CONTROLLER_BIN`) and one real xds-server
//! (`BOOTES_XDS_SERVER_BIN`); `--streams` SotW ADS streams acting as Envoys
//! (the lean client of bench-fanout: CDS, every response ACKed at once).
//! Once every object is Programmed, `--rounds` times the file of Cluster
//! `c-0` is rewritten with a new connect timeout and generation, and the
//! bench measures, from that write:
//!
//! * each stream's receipt of the new version (its ACK is sent at once):
//!   p50 / p99 / the last;
//! * the object saying `Programmed=True` for the new generation: the
//!   controller's histogram `bootes_controller_rollout_convergence_seconds`
//!   counting one more, read from its `/metrics` every 10 ms (so up to 10 ms
//!   late); and how long after the last ACK that was (what the controller
//!   adds: the xds-server writing `status/`, the controller's watch, its
//!   count and its next sync);
//! * the controller's CPU (user + system, from `/proc`) from the write to
//!   `Programmed=True`, including its share of the bench's `/metrics` reads;
//! * the status writes of the object: in directory mode its `programmed`
//!   log lines (written when the condition's reason or generation changes,
//!   never per ACK), counted in the controller's log for the round;
//! * when the xds-server's `status/` records land in etcd (a watch): how
//!   many in the round, the last one after the last ACK, and the controller
//!   from that last one to `Programmed=True`.
//!
//!
//! With `--kube`, the same in Kubernetes mode: the pods and Clusters are
//! created in kube-standin (`KUBE_STANDIN_BIN`, or beside the bench), the
//! controller watches it, each edit is a merge patch of `c-0`'s spec, and
//! the object's status is read as the API server holds it: a watch on the
//! Clusters times when `c-0`'s `Programmed` condition turns `True` for the
//! new generation (the status write reaching the object, after the
//! controller's coalescing), and counts every status write of every object
//! (at most one per object per second is the promise).
//!
//! ```text
//! cargo build --release -p bootes-controller -p bootes-xds-server -p bootes-tests \
//!   --bin bootes-controller --bin bootes-xds-server --bin bench-rollout
//! BOOTES_CONTROLLER_BIN=target/release/bootes-controller \
//! BOOTES_XDS_SERVER_BIN=target/release/bootes-xds-server \
//!   target/release/bench-rollout --streams 10000 --objects 100 --rounds 5 2>/dev/null
//! # Kubernetes mode (also build kube-standin: --bin kube-standin -p kube-standin):
//! ... bench-rollout --kube --streams 10000 --objects 100 --rounds 5
//! ```

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use bootes_proto::{store, Keys, ResourceType};
use bootes_tests::ads_client::{self, percentile, Held};
use bootes_tests::harness::{
    apply_bootes_crds, eventually, find_bootes_bin, kubectl, metric, metric_sum, pod, Controller,
    Etcd, ManifestDir, XdsServer,
};
use clap::Parser;
use futures::StreamExt;
use kube_standin::client::{json_request, StandinProcess, WatchStream};
use prost::Message;
use serde_json::{json, Value};
use tokio::sync::mpsc;

#[derive(Debug, Parser)]
struct Args {
    /// ADS streams (Envoys), one pod each.
    #[arg(long, default_value_t = 1000)]
    streams: usize,
    /// Streams per HTTP/2 connection.
    #[arg(long, default_value_t = 10)]
    per_connection: usize,
    /// Clusters selecting every pod.
    #[arg(long, default_value_t = 100)]
    objects: usize,
    /// Edits of Cluster c-0 to measure.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Kubernetes mode, against kube-standin.
    #[arg(long)]
    kube: bool,
}

/// Where the objects live: a manifest directory, or kube-standin.
enum Source {
    Dir(ManifestDir),
    Kube(StandinProcess),
}

impl Source {
    async fn new(args: &Args) -> Result<Self> {
        let pods: Vec<Value> = (0..args.streams)
            .map(|i| pod(NAMESPACE, &format!("envoy-{i}"), &[]))
            .collect();
        let clusters: Vec<Value> = (0..args.objects).map(|i| cluster(i, 0)).collect();
        if !args.kube {
            let m = ManifestDir::new()?;
            m.write_docs("pods.yaml", &pods)?;
            for (i, c) in clusters.iter().enumerate() {
                m.write_docs(&format!("c-{i}.yaml"), std::slice::from_ref(c))?;
            }
            return Ok(Self::Dir(m));
        }
        let standin = StandinProcess::start(find_bootes_bin("kube-standin", "KUBE_STANDIN_BIN")?)?;
        apply_bootes_crds(&standin).await?;
        kubectl(&standin, &["create", "namespace", NAMESPACE], None).await?;
        let addr = standin.addr;
        let posts = pods
            .iter()
            .map(|p| (format!("/api/v1/namespaces/{NAMESPACE}/pods"), p))
            .chain(clusters.iter().map(|c| {
                (
                    format!("/apis/bootes.io/v1/namespaces/{NAMESPACE}/clusters"),
                    c,
                )
            }));
        let created: Vec<Result<()>> = futures::stream::iter(posts)
            .map(|(path, doc)| async move {
                let (code, body) =
                    json_request(addr, "POST", &path, "application/json", Some(doc)).await?;
                anyhow::ensure!(code == 201, "POST {path}: {code} {body}");
                Ok(())
            })
            .buffer_unordered(16)
            .collect()
            .await;
        created.into_iter().collect::<Result<Vec<()>>>()?;
        Ok(Self::Kube(standin))
    }

    async fn controller(&self, etcd: &Etcd) -> Result<Controller> {
        match self {
            Self::Dir(m) => Controller::start(etcd, m.path()).await,
            Self::Kube(standin) => {
                Controller::start_kube("controller", etcd, &standin.kubeconfig, &[]).await
            }
        }
    }

    /// Edits `c-0` for `round`.
    async fn edit(&self, round: usize) -> Result<()> {
        match self {
            Self::Dir(m) => m.write_docs("c-0.yaml", &[cluster(0, round)]),
            Self::Kube(standin) => {
                let path = format!("/apis/bootes.io/v1/namespaces/{NAMESPACE}/clusters/c-0");
                let patch = json!({"spec": cluster(0, round)["spec"]});
                let (code, body) = json_request(
                    standin.addr,
                    "PATCH",
                    &path,
                    "application/merge-patch+json",
                    Some(&patch),
                )
                .await?;
                anyhow::ensure!(code == 200, "PATCH {path}: {code} {body}");
                Ok(())
            }
        }
    }
}

/// A change of a Cluster seen by a watch on kube-standin.
struct Seen {
    at: Instant,
    name: String,
    generation: i64,
    /// `Programmed` is `True` for `generation`.
    programmed: bool,
    /// `status` differs from the object's previous one.
    status_write: bool,
}

/// Watches the namespace's Clusters, from the current state on.
async fn watch_clusters(standin: &StandinProcess) -> Result<mpsc::UnboundedReceiver<Seen>> {
    let path = format!("/apis/bootes.io/v1/namespaces/{NAMESPACE}/clusters");
    let (code, list) = json_request(standin.addr, "GET", &path, "application/json", None).await?;
    anyhow::ensure!(code == 200, "GET {path}: {code}");
    let version = list["metadata"]["resourceVersion"]
        .as_str()
        .context("list without resourceVersion")?
        .to_string();
    let mut last: std::collections::HashMap<String, Value> = list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|o| {
            (
                o["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                o["status"].clone(),
            )
        })
        .collect();
    let mut stream = WatchStream::open(
        standin.addr,
        &format!("{path}?watch=true&resourceVersion={version}"),
        None,
    )
    .await?;
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(Some(event)) = stream.next(Duration::from_secs(3600)).await {
            let at = Instant::now();
            let object = &event["object"];
            let name = object["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let generation = object["metadata"]["generation"]
                .as_i64()
                .unwrap_or_default();
            let programmed = object["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| {
                    c["type"] == "Programmed"
                        && c["status"] == "True"
                        && c["observedGeneration"].as_i64() == Some(generation)
                });
            let status = object["status"].clone();
            let status_write = last.insert(name.clone(), status.clone()) != Some(status);
            let seen = Seen {
                at,
                name,
                generation,
                programmed,
                status_write,
            };
            if tx.send(seen).is_err() {
                break;
            }
        }
    });
    Ok(rx)
}

const NAMESPACE: &str = "bench";
const CONVERGED: &str = "bootes_controller_rollout_convergence_seconds_count";

/// Cluster `c-{i}`: STATIC, one endpoint; `round` sets its connect timeout
/// and generation.
fn cluster(i: usize, round: usize) -> Value {
    json!({
        "apiVersion": "bootes.io/v1",
        "kind": "Cluster",
        "metadata": {"name": format!("c-{i}"), "namespace": NAMESPACE, "generation": round + 1},
        "spec": {"config": {
            "name": format!("cluster-{i}"),
            "connect_timeout": format!("{}s", round + 1),
            "type": "STATIC",
            "load_assignment": {
                "cluster_name": format!("cluster-{i}"),
                "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {"socket_address": {
                    "address": "127.0.0.1", "port_value": 20000 + i
                }}}}]}]
            }
        }}
    })
}

/// The CDS version etcd holds for the nodes (all in one group).
async fn cds_version(kv: &mut etcd_client::Client, keys: &Keys) -> Result<String> {
    let binding = kv.get(keys.node(&ads_client::node_id(0)), None).await?;
    let binding =
        store::NodeBinding::decode(binding.kvs().first().context("no binding yet")?.value())?;
    let snap = kv.get(keys.snapshot(&binding.snapshot), None).await?;
    let snap = store::Snapshot::decode(snap.kvs().first().context("no snapshot")?.value())?;
    let cds = snap
        .types
        .iter()
        .find(|t| t.type_url == ResourceType::Cluster.type_url())
        .context("no clusters in the snapshot")?;
    Ok(cds.version.clone())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The `programmed` lines of Cluster c-0 in the controller's log from byte
/// `from` on, or 0 while none says `programmed=true`.
fn programmed_lines(log: &std::path::Path, from: usize) -> Result<usize> {
    let log = std::fs::read(log)?;
    let text = String::from_utf8_lossy(&log[from.min(log.len())..]).into_owned();
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.contains(" programmed ") && l.contains("object=Cluster bench/c-0 "))
        .collect();
    let done = lines.iter().any(|l| l.contains("programmed=true"));
    Ok(if done { lines.len() } else { 0 })
}

/// The process's CPU time so far (user + system).
fn cpu(pid: u32) -> Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces): utime is the
    // 14th field, stime the 15th; clock ticks of 1/100 s on Linux.
    let rest = stat.rsplit_once(')').context("stat")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>()? + fields[12].parse::<u64>()?;
    Ok(Duration::from_millis(ticks * 10))
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let keys = Keys::default();
    let source = Source::new(&args).await?;
    let etcd = Etcd::start().await?;
    let mut kv = etcd_client::Client::connect([etcd.endpoint()], None).await?;
    let mut controller = source.controller(&etcd).await?;
    let mut xds = XdsServer::start(&etcd, "bench").await?;
    let metrics = controller.metrics_addr();
    let first = {
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            match cds_version(&mut kv, &keys).await {
                Ok(v) => break v,
                Err(e) if Instant::now() > deadline => return Err(e),
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    };
    let admin = xds.admin_addr();
    eventually("the xds-server loaded every binding", || async {
        let n = metric(admin, "bootes_xds_nodes").await?;
        anyhow::ensure!(n as usize == args.streams, "{n} nodes");
        Ok(())
    })
    .await?;

    let connections = args.streams.div_ceil(args.per_connection.max(1));
    let mut channels = Vec::with_capacity(connections);
    for _ in 0..connections {
        channels.push(ads_client::connect(xds.addr()).await?);
    }
    let (seen_tx, mut seen) = mpsc::unbounded_channel();
    for i in 0..args.streams {
        let channel = channels[i / args.per_connection.max(1)].clone();
        let seen_tx = seen_tx.clone();
        let seen_closed = seen_tx.clone();
        tokio::spawn(async move {
            let r = ads_client::sotw_stream(channel, i, Held::default(), seen_tx).await;
            if let Err(e) = r {
                if !seen_closed.is_closed() {
                    eprintln!("stream {i}: {e:#}");
                }
            }
        });
    }
    drop(seen_tx);
    let everyone: Vec<usize> = (0..args.streams).collect();
    ads_client::wait_all(&mut seen, &everyone, &first, Duration::from_secs(600)).await?;
    let programmed =
        "bootes_controller_programmed_objects{kind=\"Cluster\",status=\"True\",reason=\"Programmed\"}";
    let wait_all_programmed = Instant::now();
    loop {
        let n = metric(metrics, programmed).await.unwrap_or_default();
        if n as usize == args.objects {
            break;
        }
        anyhow::ensure!(
            wait_all_programmed.elapsed() < Duration::from_secs(600),
            "only {n} of {} objects Programmed",
            args.objects
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // When the xds-server's status records land in etcd.
    let (puts_tx, mut puts) = mpsc::unbounded_channel::<Instant>();
    let mut watch = kv
        .watch(
            keys.statuses(),
            Some(etcd_client::WatchOptions::new().with_prefix()),
        )
        .await?;
    tokio::spawn(async move {
        while let Ok(Some(resp)) = watch.message().await {
            let now = Instant::now();
            for e in resp.events() {
                if e.event_type() == etcd_client::EventType::Put {
                    let _ = puts_tx.send(now);
                }
            }
        }
    });
    let pid = controller.process().pid();
    let log_path = controller.process().stderr_path().to_path_buf();

    // The first programmed=true line of c-0 (directory mode) follows the
    // metric in the same sync: it must be in the log before round 1 counts
    // lines. In Kubernetes mode the status write may come up to a second
    // later (coalesced): wait for it before the watch starts.
    let start = Instant::now();
    let mut watch = None;
    match &source {
        Source::Dir(_) => {
            while programmed_lines(&log_path, 0)? == 0 {
                anyhow::ensure!(
                    start.elapsed() < Duration::from_secs(30),
                    "no programmed=true line for c-0 in the controller's log"
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        Source::Kube(standin) => {
            let path = format!("/apis/bootes.io/v1/namespaces/{NAMESPACE}/clusters/c-0");
            eventually("c-0's status says Programmed=True", || async {
                let (_, c) =
                    json_request(standin.addr, "GET", &path, "application/json", None).await?;
                let programmed = c["status"]["conditions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|c| c["type"] == "Programmed" && c["status"] == "True");
                anyhow::ensure!(programmed, "{}", c["status"]);
                Ok(())
            })
            .await?;
            watch = Some(watch_clusters(standin).await?);
        }
    }
    let mut changes: Vec<Seen> = Vec::new();

    let mut acks = Vec::new();
    let mut rows = Vec::new();
    for round in 1..=args.rounds {
        let converged = metric_sum(metrics, CONVERGED).await?;
        let log_from = std::fs::metadata(&log_path)?.len() as usize;
        while puts.try_recv().is_ok() {}
        let cpu0 = cpu(pid)?;
        let t0 = Instant::now();
        source.edit(round).await?;
        let programmed_at = loop {
            if metric_sum(metrics, CONVERGED).await? > converged {
                break Instant::now();
            }
            anyhow::ensure!(
                t0.elapsed() < Duration::from_secs(300),
                "round {round}: not Programmed in 300 s"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        let cpu_used = cpu(pid)? - cpu0;
        let mut last_put = None;
        let mut records = 0;
        while let Ok(at) = puts.try_recv() {
            if at <= programmed_at {
                last_put = Some(at);
                records += 1;
            }
        }
        let last_put = last_put.context("no status/ record written")?;
        let want = cds_version(&mut kv, &keys).await?;
        let arrivals =
            ads_client::wait_all(&mut seen, &everyone, &want, Duration::from_secs(60)).await?;
        let mut times: Vec<Duration> = arrivals
            .values()
            .map(|at| at.saturating_duration_since(t0))
            .collect();
        times.sort();
        let last = *times.last().context("no streams")?;
        let to_programmed = programmed_at - t0;
        acks.extend(times.iter().copied());
        let (writes, in_status) = match watch.as_mut() {
            // The log line follows the metric in the same sync.
            None => loop {
                let n = programmed_lines(&log_path, log_from)?;
                if n > 0 {
                    break (n, "–".to_string());
                }
                anyhow::ensure!(
                    programmed_at.elapsed() < Duration::from_secs(30),
                    "round {round}: no programmed=true line in the controller's log"
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            },
            // The object as the API server holds it: Programmed=True for
            // the edit's generation (created at 1, one more per edit).
            Some(rx) => {
                let from = changes.len();
                let at = loop {
                    let seen = tokio::time::timeout(Duration::from_secs(60), rx.recv())
                        .await
                        .with_context(|| {
                            format!("round {round}: c-0's status not Programmed in 60 s")
                        })?
                        .context("the watch ended")?;
                    let hit =
                        seen.name == "c-0" && seen.programmed && seen.generation > round as i64;
                    let at = seen.at;
                    changes.push(seen);
                    if hit {
                        break at;
                    }
                };
                let writes = changes[from..]
                    .iter()
                    .filter(|c| c.name == "c-0" && c.status_write)
                    .count();
                // One change at a time: the next edit comes after the
                // controller's one-write-a-second window of this status
                // write, or its first status write would wait for it.
                tokio::time::sleep_until((at + Duration::from_millis(1100)).into()).await;
                (
                    writes,
                    format!("{:.0} ms ({:+.0} ms)", ms(at - t0), ms(at - t0) - ms(last)),
                )
            }
        };
        rows.push(format!(
            "| {round} | {:.0} ms | {:.0} ms | {:.0} ms | {:.0} ms | {:+.0} ms | {records} | {:+.0} ms | {:+.0} ms | {:.2} s | {writes} | {in_status} |",
            percentile(&times, 0.50).as_secs_f64() * 1e3,
            percentile(&times, 0.99).as_secs_f64() * 1e3,
            last.as_secs_f64() * 1e3,
            to_programmed.as_secs_f64() * 1e3,
            ms(to_programmed) - ms(last),
            ms(last_put - t0) - ms(last),
            ms(programmed_at - last_put),
            cpu_used.as_secs_f64(),
        ));
    }
    acks.sort();
    drop(seen);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "streams {} ({} per connection), objects {}, rounds {}; load average before printing: {}",
        args.streams,
        args.per_connection,
        args.objects,
        args.rounds,
        load.trim()
    );
    println!("| round | edit → stream ACK p50 | p99 | last ACK | edit → Programmed=True | after the last ACK | status/ puts | last ACK → last put | last put → Programmed | controller CPU | status writes ({}) | edit → the object's status says it (after the last ACK) |", if args.kube { "Kubernetes, watched" } else { "log lines" });
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for row in rows {
        println!("{row}");
    }
    println!(
        "all rounds: edit → ACK p50 {:.0} ms, p99 {:.0} ms over {} ACKs",
        percentile(&acks, 0.50).as_secs_f64() * 1e3,
        percentile(&acks, 0.99).as_secs_f64() * 1e3,
        acks.len()
    );
    if args.kube {
        // The shortest gap between two status writes of one object, as
        // the watch saw them (after the first round started: what a
        // rollout writes). The promise is at most one a second.
        let mut by_object: std::collections::HashMap<&str, Vec<Instant>> = Default::default();
        for c in changes.iter().filter(|c| c.status_write) {
            by_object.entry(&c.name).or_default().push(c.at);
        }
        let shortest = by_object
            .values()
            .flat_map(|ats| ats.windows(2).map(|w| w[1] - w[0]))
            .min();
        println!(
            "Kubernetes status writes: {} in all, on {} objects; the shortest gap between two of one object: {}",
            by_object.values().map(Vec::len).sum::<usize>(),
            by_object.len(),
            shortest.map_or("none (one write each at most)".to_string(), |d| format!("{:.0} ms", ms(d)))
        );
    }
    let _ = xds.terminate();
    Ok(())
}
