//! bench-propagation: edit → Envoy in Kubernetes mode, and what bursts
//! cost in etcd writes (issue 23, item 7).
//!
//! Starts kube-standin, a real etcd, the real controller in Kubernetes mode
//! (`KUBECONFIG` at the stand-in), one real xds-server and a real Envoy
//! (pod `envoy-0`), and applies a listener → RDS route → EDS cluster for
//! it with the real `kubectl`. Then:
//!
//! * **single edits**: `--edits` times, after `--quiet` without changes,
//!   `kubectl patch` of the Route (a new domain); measured from `kubectl`
//!   returning until Envoy's `config_dump` shows the new domain (polled
//!   every millisecond);
//! * **30 patches**: `--burst` `kubectl patch`es of the Route back to back
//!   (each as soon as the previous returned);
//! * **one apply of 30**: one `kubectl apply` changing `--burst` Clusters;
//! * **rollout of 10 pods**: the EndpointSlice of Service `web` as a
//!   rolling update of `--pods` pods writes it, 4 `kubectl apply`s per pod
//!   (new pod not ready, ready, old terminating, old gone), back to back;
//!
//! and for each burst the controller's etcd transactions and puts
//! (`bootes_controller_etcd_write_*`), counted until `--quiet` after the
//! burst's last change reached Envoy.
//!
//! ```text
//! cargo build --release --bins
//! BOOTES_CONTROLLER_BIN=target/release/bootes-controller \
//! BOOTES_XDS_SERVER_BIN=target/release/bootes-xds-server \
//! KUBE_STANDIN_BIN=target/release/kube-standin \
//!   target/release/bench-propagation --edits 20
//! ```
//!
//! `--controller-arg=--first-debounce=100ms` gives the plain trailing
//! debounce of before.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use bootes_tests::harness::{
    apply_bootes_crds, cluster_eds, endpoint_for_service, endpoint_slice, find_bootes_bin,
    free_port, kubectl, kubectl_apply, listener_http, metric, route, Controller, Envoy, Etcd,
    SliceEndpoint, VirtualHost, XdsServer,
};
use clap::Parser;
use kube_standin::client::StandinProcess;
use serde_json::{json, Value};
use tokio::time::Instant;

const NS: &str = "bench";
const EDGE: &[(&str, &str)] = &[("app", "edge")];

#[derive(Debug, Parser)]
struct Args {
    /// Single edits to measure.
    #[arg(long, default_value_t = 20)]
    edits: usize,
    /// Changes in each burst.
    #[arg(long, default_value_t = 30)]
    burst: usize,
    /// Pods the rollout replaces.
    #[arg(long, default_value_t = 10)]
    pods: usize,
    /// Times each burst is repeated (its write counts vary with kubectl's
    /// pace).
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    /// Quiet time before each single edit and after each burst (ms).
    #[arg(long, default_value_t = 1500)]
    quiet: u64,
    /// Extra arguments for the controller (repeat).
    #[arg(long, allow_hyphen_values = true)]
    controller_arg: Vec<String>,
}

fn routes(domain: &str) -> Value {
    route(
        NS,
        "route-1",
        "route-1",
        &[VirtualHost::new("edge", &[domain], &[("/", "web")])],
        EDGE,
    )
}

fn cluster(i: usize, timeout_ms: u64) -> Value {
    let mut c = cluster_eds(NS, &format!("c-{i}"), &format!("c-{i}"), EDGE);
    c["spec"]["config"]["connect_timeout"] = json!(format!("{}s", timeout_ms as f64 / 1000.0));
    c
}

fn pod_ip(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 1, (i / 250) as u8, (i % 250 + 1) as u8))
}

fn slice(endpoints: &[SliceEndpoint]) -> Value {
    endpoint_slice(NS, "web-x1", "web", "http", 8080, endpoints)
}

/// A Pod standing for an Envoy (kube-standin, like an API server, wants a
/// container).
fn envoy_pod(name: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": NS, "labels": {"app": "edge"}},
        "spec": {"containers": [{"name": "envoy", "image": "envoyproxy/envoy:v1.40.0"}]},
    })
}

/// Etcd transactions and puts of each burst of one repeat: 30 patches,
/// one apply of 30, the rollout.
type Counts = ((f64, f64), (f64, f64), (f64, f64));

struct Writes {
    txns: f64,
    puts: f64,
}

async fn writes(controller: &Controller) -> Result<Writes> {
    let c = controller.metrics_addr();
    Ok(Writes {
        txns: metric(c, "bootes_controller_etcd_write_txns_total").await?,
        puts: metric(c, "bootes_controller_etcd_write_ops_total{op=\"put\"}").await?,
    })
}

/// Polls Envoy's route configs until they contain `needle`; how long that
/// took from `since`.
async fn until_envoy_has(envoy: &Envoy, needle: &str, since: Instant) -> Result<Duration> {
    let deadline = since + Duration::from_secs(30);
    loop {
        let r = envoy
            .admin_get("/config_dump?resource=dynamic_route_configs")
            .await?;
        if r.text().contains(needle) {
            return Ok(since.elapsed());
        }
        ensure!(Instant::now() < deadline, "Envoy never showed {needle}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Polls Envoy's clusters until `cluster` has the connect timeout `ms`.
async fn until_cluster_timeout(envoy: &Envoy, cluster: &str, ms: u64) -> Result<()> {
    let want = format!("{}s", ms as f64 / 1000.0);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let dump = envoy
            .admin_get("/config_dump?resource=dynamic_active_clusters")
            .await?;
        let v: Value = serde_json::from_str(dump.text())?;
        let found = v["configs"].as_array().into_iter().flatten().any(|c| {
            c["cluster"]["name"] == cluster && c["cluster"]["connect_timeout"] == want.as_str()
        });
        if found {
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "Envoy never showed {cluster} at {want}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Polls Envoy's endpoints of `web` until they are `want`.
async fn until_web_endpoints(envoy: &Envoy, want: &[IpAddr]) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut have: Vec<IpAddr> = envoy
            .endpoint_addrs("web")
            .await
            .unwrap_or_default()
            .iter()
            .map(|a| a.ip())
            .collect();
        have.sort();
        let mut want = want.to_vec();
        want.sort();
        if have == want {
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "Envoy's web endpoints {have:?}, not {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

/// Etcd writes of the burst `run`, counted after `quiet` has passed.
async fn burst<F, Fut>(controller: &Controller, quiet: Duration, run: F) -> Result<(f64, f64)>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    tokio::time::sleep(quiet).await;
    let before = writes(controller).await?;
    run().await?;
    tokio::time::sleep(quiet).await;
    let after = writes(controller).await?;
    Ok((after.txns - before.txns, after.puts - before.puts))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let args = Args::parse();
    let quiet = Duration::from_millis(args.quiet);
    let standin = StandinProcess::start(find_bootes_bin("kube-standin", "KUBE_STANDIN_BIN")?)?;
    apply_bootes_crds(&standin).await?;
    kubectl(&standin, &["create", "namespace", NS], None).await?;
    let port = free_port();
    let mut docs = vec![
        listener_http(NS, "listener-1", "listener_1", port, "route-1", EDGE),
        routes("edit-0.example"),
        cluster_eds(NS, "web", "web", EDGE),
        endpoint_for_service(NS, "web", "web", "web", json!(8080), EDGE),
        slice(
            &(0..args.pods)
                .map(|i| SliceEndpoint::Ready(pod_ip(i)))
                .collect::<Vec<_>>(),
        ),
        envoy_pod("envoy-0"),
    ];
    docs.extend((0..args.burst).map(|i| cluster(i, 1000)));
    kubectl_apply(&standin, &docs).await?;

    let etcd = Etcd::start().await?;
    let extra: Vec<&str> = args.controller_arg.iter().map(String::as_str).collect();
    let controller =
        Controller::start_kube("controller", &etcd, &standin.kubeconfig, &extra).await?;
    let xds = XdsServer::start(&etcd, "a").await?;
    let envoy = Envoy::start(&format!("envoy-0.{NS}"), &[xds.addr()]).await?;
    envoy.wait_for_listener("listener_1").await?;
    until_envoy_has(&envoy, "edit-0.example", Instant::now()).await?;

    // Single edits on a quiet controller.
    let mut single = Vec::new();
    for i in 1..=args.edits {
        tokio::time::sleep(quiet).await;
        let domain = format!("edit-{i}.example");
        let patch = json!({"spec": routes(&domain)["spec"]}).to_string();
        kubectl(
            &standin,
            &[
                "patch",
                "routes.bootes.io",
                "route-1",
                "-n",
                NS,
                "--type",
                "merge",
                "-p",
                &patch,
            ],
            None,
        )
        .await?;
        let returned = Instant::now();
        single.push(until_envoy_has(&envoy, &domain, returned).await?);
    }
    single.sort();

    let mut counts = Vec::new();
    for r in 0..args.repeats {
        // 30 kubectl patches, back to back.
        let patches = burst(&controller, quiet, || async {
            let mut last = String::new();
            for i in 0..args.burst {
                last = format!("burst-{r}-{i}.example");
                let patch = json!({"spec": routes(&last)["spec"]}).to_string();
                kubectl(
                    &standin,
                    &[
                        "patch",
                        "routes.bootes.io",
                        "route-1",
                        "-n",
                        NS,
                        "--type",
                        "merge",
                        "-p",
                        &patch,
                    ],
                    None,
                )
                .await?;
            }
            until_envoy_has(&envoy, &last, Instant::now()).await?;
            Ok(())
        })
        .await?;

        // One kubectl apply changing 30 Clusters.
        let applied = burst(&controller, quiet, || async {
            let docs: Vec<Value> = (0..args.burst)
                .map(|i| cluster(i, 2000 + r as u64))
                .collect();
            kubectl_apply(&standin, &docs).await?;
            until_cluster_timeout(&envoy, &format!("c-{}", args.burst - 1), 2000 + r as u64).await
        })
        .await?;

        // A rolling update of the pods behind Service `web`.
        let rollout = burst(&controller, quiet, || async {
            let n = args.pods;
            let mut ready: Vec<SliceEndpoint> = (r * n..(r + 1) * n)
                .map(|i| SliceEndpoint::Ready(pod_ip(i)))
                .collect();
            for i in 0..n {
                let new = pod_ip((r + 1) * n + i);
                let old = pod_ip(r * n + i);
                for step in 0..4 {
                    let mut eps = ready.clone();
                    match step {
                        0 => eps.push(SliceEndpoint::NotReady(new)),
                        1 => eps.push(SliceEndpoint::Ready(new)),
                        2 => {
                            eps.retain(|e| *e != SliceEndpoint::Ready(old));
                            eps.push(SliceEndpoint::Terminating(old));
                            eps.push(SliceEndpoint::Ready(new));
                        }
                        _ => {
                            eps.retain(|e| *e != SliceEndpoint::Ready(old));
                            eps.push(SliceEndpoint::Ready(new));
                        }
                    }
                    kubectl_apply(&standin, &[slice(&eps)]).await?;
                    if step == 3 {
                        ready = eps;
                    }
                }
            }
            let want: Vec<IpAddr> = ((r + 1) * n..(r + 2) * n).map(pod_ip).collect();
            until_web_endpoints(&envoy, &want).await
        })
        .await
        .context("rollout")?;

        counts.push((patches, applied, rollout));
    }

    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "| edits | edit → Envoy p50 | p90 | max | min | 30 patches: txns / puts | one apply of 30: txns / puts | rollout of {} pods: txns / puts | load (1 min) |",
        args.pods
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let each = |f: fn(&Counts) -> (f64, f64)| {
        counts
            .iter()
            .map(|c| {
                let (txns, puts) = f(c);
                format!("{txns} / {puts}")
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!(
        "| {} | {} ms | {} ms | {} ms | {} ms | {} | {} | {} | {} |",
        single.len(),
        ms(percentile(&single, 0.5)),
        ms(percentile(&single, 0.9)),
        ms(*single.last().context("no edits")?),
        ms(single[0]),
        each(|c| c.0),
        each(|c| c.1),
        each(|c| c.2),
        load.split_whitespace().next().unwrap_or("?"),
    );
    eprintln!(
        "single edits (ms): {:?}",
        single.iter().map(|d| ms(*d)).collect::<Vec<_>>()
    );
    Ok(())
}
