//! `bootes-controller run`: wires a source, the reconciler and the health
//! endpoints together.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

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
use crate::webhook::{self, Views};
use bootes_core::store::SnapshotStore;
use bootes_etcd::{etcd_client, Backoff};

pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    // Health first: `/livez` answers from the moment the process is up,
    // whether or not etcd is reachable (restarting would not bring it back);
    // `/readyz` says "connecting to etcd" until the client exists.
    let metrics = Arc::new(Metrics::new());
    let synced = Arc::new(AtomicBool::new(false));
    let etcd_client = Arc::new(OnceLock::new());
    serve_health(
        args.metrics_addr,
        synced.clone(),
        metrics.clone(),
        etcd_client.clone(),
    )
    .await?;
    // Every replica answers the webhook, from the start: an object's own
    // problems need no index; the others' are known once it is published.
    let bootstrap = crate::cli::bootstrap_clusters(&args.bootstrap_clusters);
    let views = Views::new(bootstrap.clone());
    if let Some(listen) = args.webhook.webhook_listen {
        let (Some(cert), Some(key)) = (&args.webhook.webhook_cert, &args.webhook.webhook_key)
        else {
            anyhow::bail!("--webhook-listen needs --webhook-cert and --webhook-key");
        };
        webhook::serve::start(
            listen,
            bootes_tls::TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
                client_ca: None,
            },
            args.webhook.webhook_reload_interval,
            args.webhook.webhook_max_body,
            webhook::serve::Webhook {
                views: views.clone(),
                metrics: metrics.clone(),
            },
        )
        .await?;
    }

    let keys = args.etcd.keys();
    let config = args.etcd.config()?;
    config.warn_if_plaintext();
    let secrets = args.etcd.secret_keys()?;
    let writer = connect_and_load(&config, keys, secrets, &metrics).await;
    let _ = etcd_client.set(writer.client().clone());

    let (tx, rx) = mpsc::channel(1024);
    // NACKs recorded by the xds-servers, mapped back to objects by the index.
    tokio::spawn(source::node_status::run(
        writer.client().clone(),
        writer.keys().clone(),
        tx.clone(),
        metrics.clone(),
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
        Some((client, observed)) => {
            Box::new(KubeStatus::spawn(client, observed, election.leadership()))
        }
        None => Box::new(LogStatus::default()),
    };
    let mut reconciler = Reconciler::new(writer, status, timing);
    reconciler.index.set_bootstrap_clusters(bootstrap);
    reconciler.views = Some(views);
    reconciler.metrics = metrics;
    reconciler.synced = synced;
    reconciler.leadership = Some(election.leadership());
    reconciler.metrics.set_leadership(election.leadership());
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

/// Connects to etcd and reads what is under the prefix, retrying both
/// (etcd may start after the controller) until they succeed.
async fn connect_and_load(
    config: &bootes_etcd::EtcdConfig,
    keys: Keys,
    secrets: Option<Arc<bootes_proto::sealed::SecretKeys>>,
    metrics: &Metrics,
) -> EtcdWriter {
    let endpoints = &config.endpoints;
    let mut backoff = Backoff::default();
    let mut writer = None;
    loop {
        if writer.is_none() {
            match EtcdWriter::connect(config, keys.clone(), secrets.clone()).await {
                Ok(w) => writer = Some(w),
                Err(e) => {
                    metrics.observe_etcd_error("connect");
                    tracing::warn!(error = %e, endpoints = %endpoints.join(","), "etcd not reachable yet")
                }
            }
        }
        if let Some(w) = writer.as_mut() {
            match w.load().await {
                Ok(()) => return writer.expect("connected"),
                Err(e) => {
                    metrics.observe_etcd_error("read");
                    tracing::warn!(error = %e, "reading the prefix from etcd failed")
                }
            }
        }
        backoff.wait().await;
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
    etcd: Arc<OnceLock<etcd_client::Client>>,
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
                    let (metrics, synced, etcd) =
                        (metrics.clone(), synced.clone(), etcd.get().cloned());
                    async move {
                        let etcd = match etcd {
                            Some(mut client) => etcd_reachable(&mut client).await,
                            None => Err("connecting to etcd".to_string()),
                        };
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

/// Whether etcd answers (a Status call), for `/readyz`.
async fn etcd_reachable(client: &mut etcd_client::Client) -> Result<(), String> {
    match tokio::time::timeout(std::time::Duration::from_secs(2), client.status()).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("no answer within 2s".into()),
    }
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term.recv() => {},
    }
}
