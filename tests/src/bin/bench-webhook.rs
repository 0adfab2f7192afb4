//! bench-webhook: how long the admission webhook takes to answer a review
//! of a large object (issue 18: ≤ 50 ms p99 for 100 KB).
//!
//! Starts a real etcd and the real controller (directory mode, with
//! `--objects` valid Clusters already in namespace `bench`, and the
//! webhook on a certificate from `bootes-controller webhook-cert`), then
//! POSTs `--requests` AdmissionReviews (the JSON kube-standin sends, as the
//! API server does) over one kept-alive HTTPS connection, one at a time:
//! UPDATEs of a STATIC Cluster of about `--kib` KiB (lb_endpoints), in turn
//! valid (allowed) and with one bad port deep in the list (denied). Prints
//! the object size and the latency percentiles, from sending the request to
//! having read the whole answer.
//!
//! ```text
//! cargo build --release --bins
//! BOOTES_CONTROLLER_BIN=target/release/bootes-controller \
//!   target/release/bench-webhook --kib 100 --requests 2000
//! ```

use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use bootes_tests::harness::{
    find_bootes_bin, free_port, test_dir, yaml_stream, Controller, Etcd, ManifestDir, WebhookClient,
};
use clap::Parser;
use kube_standin::admission::{review_request, Attributes, Operation, Verb};
use serde_json::{json, Value};

const NS: &str = "bench";

#[derive(Debug, Parser)]
struct Args {
    /// Size of the reviewed object, in KiB (approximately: whole endpoints).
    #[arg(long, default_value_t = 100)]
    kib: usize,
    /// Reviews to send.
    #[arg(long, default_value_t = 2000)]
    requests: usize,
    /// Other Clusters in the namespace (what the object is judged against).
    #[arg(long, default_value_t = 100)]
    objects: usize,
}

fn endpoints(n: usize, bad_at: Option<usize>) -> Vec<Value> {
    (0..n)
        .map(|i| {
            let port = if Some(i) == bad_at {
                70000
            } else {
                8000 + (i % 1000)
            };
            json!({"endpoint": {"address": {"socket_address": {
                "address": format!("10.{}.{}.{}", i / 65536 % 256, i / 256 % 256, i % 256),
                "port_value": port}}}})
        })
        .collect()
}

fn cluster(name: &str, n: usize, bad_at: Option<usize>, generation: i64) -> Value {
    json!({
        "apiVersion": "bootes.io/v1", "kind": "Cluster",
        "metadata": {"name": name, "namespace": NS, "uid": format!("uid-{name}"),
                     "generation": generation, "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"config": {"name": name, "connect_timeout": "1s", "type": "STATIC",
            "load_assignment": {"cluster_name": name,
                "endpoints": [{"lb_endpoints": endpoints(n, bad_at)}]}}},
    })
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let args = Args::parse();
    let bin = find_bootes_bin("bootes-controller", "BOOTES_CONTROLLER_BIN")?;
    let certs = test_dir("bench-webhook-certs")?;
    let out = std::process::Command::new(&bin)
        .args(["webhook-cert", "--ip", "127.0.0.1", "--out-dir"])
        .arg(certs.path())
        .output()?;
    ensure!(
        out.status.success(),
        "webhook-cert: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ca_pem = std::fs::read(certs.path().join("tls.crt"))?;

    let manifests = ManifestDir::new()?;
    let others: Vec<Value> = (0..args.objects)
        .map(|i| cluster(&format!("other-{i}"), 3, None, 1))
        .collect();
    manifests.write("others.yaml", &yaml_stream(&others))?;
    let etcd = Etcd::start().await?;
    let listen = format!("127.0.0.1:{}", free_port());
    let cert = certs.path().join("tls.crt").display().to_string();
    let key = certs.path().join("tls.key").display().to_string();
    let _controller = Controller::start_with_args(
        &etcd,
        manifests.path(),
        &[
            "--webhook-listen",
            &listen,
            "--webhook-cert",
            &cert,
            "--webhook-key",
            &key,
        ],
    )
    .await?;
    let mut client = WebhookClient::connect(listen.parse()?, &ca_pem).await?;

    // Endpoints for about `kib` KiB of JSON.
    let per_endpoint = serde_json::to_vec(&endpoints(1, None)[0])?.len() + 1;
    let n = args.kib * 1024 / per_endpoint;
    let old = cluster("big", n, None, 1);
    let attrs = Attributes {
        group: "bootes.io".into(),
        version: "v1".into(),
        kind: "Cluster".into(),
        resource: "clusters".into(),
        sub_resource: None,
        namespace: Some(NS.into()),
        name: "big".into(),
        operation: Operation::Update,
        verb: Verb::Patch,
        dry_run: false,
    };
    let good = review_request("good", &attrs, &cluster("big", n, None, 2), Some(&old)).to_string();
    let bad = review_request(
        "bad",
        &attrs,
        &cluster("big", n, Some(n - 1), 2),
        Some(&old),
    )
    .to_string();
    let object_bytes = serde_json::to_vec(&cluster("big", n, None, 2))?.len();

    let mut latencies = Vec::with_capacity(args.requests);
    let mut by_answer: [Vec<Duration>; 2] = [Vec::new(), Vec::new()];
    for i in 0..args.requests {
        let (body, want) = if i % 2 == 0 {
            (&good, true)
        } else {
            (&bad, false)
        };
        let started = Instant::now();
        let (code, answer) = client.post(body.clone()).await?;
        latencies.push(started.elapsed());
        by_answer[usize::from(want)].push(started.elapsed());
        ensure!(
            code == 200,
            "HTTP {code}: {}",
            String::from_utf8_lossy(&answer)
        );
        let answer: Value = serde_json::from_slice(&answer).context("answer")?;
        ensure!(
            answer["response"]["allowed"] == want,
            "unexpected answer: {answer}"
        );
    }
    latencies.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "object {} bytes ({} endpoints; review {} bytes), {} other objects, {} reviews (half allowed, half denied)",
        object_bytes,
        n,
        good.len(),
        args.objects,
        latencies.len()
    );
    println!(
        "latency ms: p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}",
        ms(percentile(&latencies, 0.50)),
        ms(percentile(&latencies, 0.90)),
        ms(percentile(&latencies, 0.99)),
        ms(*latencies.last().context("no request")?)
    );
    for (answer, mut latencies) in ["denied", "allowed"].into_iter().zip(by_answer) {
        latencies.sort();
        if let Some(max) = latencies.last() {
            println!(
                "  {answer}: p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}",
                ms(percentile(&latencies, 0.50)),
                ms(percentile(&latencies, 0.90)),
                ms(percentile(&latencies, 0.99)),
                ms(*max)
            );
        }
    }
    Ok(())
}
