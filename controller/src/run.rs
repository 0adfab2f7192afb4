//! `bootes-controller run`: wires a source, the reconciler and the health
//! endpoints together.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Context;
use axum::http::StatusCode;
use axum::routing::get;
use bootes_proto::Keys;
use tokio::sync::mpsc;

use crate::cli::RunArgs;
use crate::etcd_writer::EtcdWriter;
use crate::leader::Election;
use crate::metrics::{self, Metrics};
use crate::reconcile::{LogStatus, Reconciler, StatusSink, Timing};
use crate::source;
use crate::status_kube::{KubeStatus, ObservedStatuses};

pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    let keys = Keys::new(&args.etcd.etcd_prefix);
    let mut writer = EtcdWriter::connect(&args.etcd.etcd_endpoints, keys)
        .await
        .context("connecting to etcd")?;
    load_with_retry(&mut writer).await;

    let (tx, rx) = mpsc::channel(1024);
    // NACKs recorded by the xds-servers, mapped back to objects by the index.
    tokio::spawn(source::node_status::run(
        writer.client().clone(),
        writer.keys().clone(),
        tx.clone(),
    ));
    let kube = match args.manifests.clone() {
        Some(dir) => {
            tracing::info!(dir = %dir.display(), "reading manifests from a directory");
            tokio::spawn(source::dir::run(dir, args.poll_interval, tx));
            None
        }
        None => {
            let client = kube::Client::try_default()
                .await
                .context("connecting to Kubernetes (kubeconfig or in-cluster service account)")?;
            tracing::info!("watching Bootes objects and pods in Kubernetes");
            let observed = ObservedStatuses::default();
            tokio::spawn(source::kube::run(client.clone(), tx, observed.clone()));
            Some((client, observed))
        }
    };

    let timing = Timing {
        debounce: args.debounce,
        max_delay: args.max_delay,
    };
    let identity = args.identity.clone().unwrap_or_else(default_identity);
    let mut election = Election::start(
        writer.client().clone(),
        writer.keys().leader(),
        identity,
        args.leader_lease_ttl,
    );
    let status: Box<dyn StatusSink> = match kube {
        // Statuses are written by the leader only.
        Some((client, observed)) => Box::new(KubeStatus::spawn(
            client,
            observed,
            election.is_leader_flag(),
        )),
        None => Box::new(LogStatus::default()),
    };
    let mut reconciler = Reconciler::new(writer, status, timing);
    reconciler.leadership = Some(election.leadership());
    reconciler
        .metrics
        .set_leader_flag(election.is_leader_flag());
    let synced = reconciler.synced.clone();
    let etcd = reconciler.writer.client().clone();
    serve_health(args.metrics_addr, synced, reconciler.metrics.clone(), etcd).await?;

    tokio::select! {
        () = reconciler.run(rx) => tracing::info!("sources ended"),
        () = shutdown_signal() => tracing::info!("stopping"),
    }
    // Hand over at once instead of after the lease TTL.
    election.resign().await;
    Ok(())
}

fn default_identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "controller".into());
    format!("{host}-{}", std::process::id())
}

async fn load_with_retry(writer: &mut EtcdWriter) {
    let mut delay = std::time::Duration::from_millis(200);
    loop {
        match writer.load().await {
            Ok(()) => return,
            Err(e) => tracing::warn!(error = %e, "etcd not reachable yet"),
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(std::time::Duration::from_secs(5));
    }
}

/// `/metrics` (Prometheus); `/livez`: 200 while the process serves HTTP
/// (never depends on etcd or Kubernetes: a restart would not fix them);
/// `/readyz`: 200 once the first reconcile finished (the leader wrote to
/// etcd, a follower loaded its index), while etcd answers and the leader's
/// writes succeed.
async fn serve_health(
    addr: std::net::SocketAddr,
    synced: Arc<AtomicBool>,
    metrics: Arc<Metrics>,
    etcd: etcd_client::Client,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    let app = axum::Router::new()
        .route("/livez", get(|| async { "ok\n" }))
        .route(
            "/readyz",
            get({
                let metrics = metrics.clone();
                move || {
                    let (metrics, synced, mut etcd) =
                        (metrics.clone(), synced.clone(), etcd.clone());
                    async move {
                        let etcd = metrics::etcd_reachable(&mut etcd).await;
                        match metrics::readiness(&metrics, synced.load(Ordering::Acquire), etcd) {
                            (true, body) => (StatusCode::OK, body),
                            (false, body) => (StatusCode::SERVICE_UNAVAILABLE, body),
                        }
                    }
                }
            }),
        )
        .route(
            "/metrics",
            get(move || {
                let text = metrics.encode();
                async move {
                    (
                        [(
                            axum::http::header::CONTENT_TYPE,
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        )],
                        text,
                    )
                }
            }),
        );
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "health server failed");
        }
    });
    Ok(())
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term.recv() => {},
    }
}
