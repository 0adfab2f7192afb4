//! `bootes-controller run`: wires a source, the reconciler and the health
//! endpoints together.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use anyhow::Context;
use bootes_proto::Keys;
use tokio::sync::mpsc;

use crate::cli::RunArgs;
use crate::etcd_writer::EtcdWriter;
use crate::leader::Election;
use crate::metrics::{self, Metrics};
use crate::reconcile::debounce::Timing;
use crate::reconcile::{Config, Reconciler};
use crate::source;
use crate::status_kube::{KubeStatus, ObservedStatuses};
use crate::webhook::{self, Views};
use bootes_core::status::{LogStatus, StatusSink};
use bootes_core::store::SnapshotStore;
use bootes_etcd::{backoff::Backoff, etcd_client};

pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    // Health first: `/livez` answers from the moment the process is up,
    // whether or not etcd is reachable (restarting would not bring it back);
    // `/readyz` says "connecting to etcd" until the client exists.
    let metrics = Arc::new(Metrics::new());
    let synced = Arc::new(AtomicBool::new(false));
    let etcd_client = Arc::new(OnceLock::new());
    bootes_runtime::admin::serve(
        args.metrics_addr,
        bootes_runtime::admin::router(Arc::new(Health {
            synced: synced.clone(),
            metrics: metrics.clone(),
            etcd: etcd_client.clone(),
        })),
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
        first: args.first_debounce.min(args.debounce),
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
    metrics.set_leadership(election.leadership());
    let envoy = args.envoy_validate.as_ref().map(|binary| {
        tracing::info!(envoy = %binary.display(), "judging each changed group's snapshot with Envoy before it is written (--envoy-validate)");
        Arc::new(crate::envoy_oracle::Envoy {
            binary: binary.clone(),
            parallel: args.envoy_validate_parallel,
            timeout: args.envoy_validate_timeout,
            metrics: Some(metrics.clone()),
        }) as Arc<dyn bootes_core::envoy_judge::EnvoyOracle + Send + Sync>
    });
    let reconciler = Reconciler::new(Config {
        store: writer,
        status,
        timing,
        leadership: Some(election.leadership()),
        bootstrap_clusters: bootstrap,
        synced,
        metrics,
        views: Some(views),
        envoy,
    });
    tokio::select! {
        () = reconciler.run(rx) => tracing::info!("sources ended"),
        () = bootes_runtime::shutdown_signal() => tracing::info!("stopping"),
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
    config: &bootes_etcd::connect::EtcdConfig,
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

/// What the admin listener answers: `/readyz` is 200 once the first
/// reconcile finished (the leader wrote to etcd, a follower loaded its
/// index), while etcd answers and the leader's writes succeed.
struct Health {
    synced: Arc<AtomicBool>,
    metrics: Arc<Metrics>,
    etcd: Arc<OnceLock<etcd_client::Client>>,
}

impl bootes_runtime::admin::Probe for Health {
    async fn readiness(&self) -> (bool, String) {
        let etcd = match self.etcd.get().cloned() {
            Some(mut client) => etcd_reachable(&mut client).await,
            None => Err("connecting to etcd".to_string()),
        };
        metrics::readiness(&self.metrics, self.synced.load(Ordering::Acquire), etcd)
    }

    fn metrics(&self) -> String {
        self.metrics.encode()
    }
}

/// Whether etcd answers (a Status call), for `/readyz`.
async fn etcd_reachable(client: &mut etcd_client::Client) -> Result<(), String> {
    match tokio::time::timeout(std::time::Duration::from_secs(2), client.status()).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("no answer within 2s".into()),
    }
}
