//! `bootes-xds-server`: serves the snapshots in etcd to Envoys over xDS.
//! Stateless: any replica serves any node.
//!
//! [`start`] runs the server from a [`config::Config`] and returns a
//! [`Running`] handle; `main.rs` is the command line and that call, and
//! tests start the server the same way.

mod admin;
mod authz;
mod clients;
pub mod config;
mod etcd_sync;
mod grpc;
mod listener;
mod log_limit;
mod metrics;
mod source;
mod status_report;
mod tls;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use config::Config;

/// A started server: its bound addresses, and the way to stop it.
#[derive(Debug)]
pub struct Running {
    /// The xDS (gRPC) address.
    pub xds: SocketAddr,
    /// The admin address (`/livez`, `/readyz`, `/metrics`).
    pub admin: SocketAddr,
    /// The operators' CSDS listener, unless `--csds-listen=off`.
    pub csds: Option<SocketAddr>,
    drain: oneshot::Sender<()>,
    served: JoinHandle<anyhow::Result<()>>,
}

impl Running {
    /// Serves until `signal` resolves, then drains (health NOT_SERVING, no
    /// new connections, streams end within the drain period) and returns
    /// once the server stopped. Returns early if the server fails.
    pub async fn run_until(self, signal: impl Future<Output = ()>) -> anyhow::Result<()> {
        let Running {
            drain, mut served, ..
        } = self;
        tokio::select! {
            result = &mut served => return result.context("gRPC server task")?,
            () = signal => {}
        }
        let _ = drain.send(());
        served.await.context("gRPC server task")?
    }

    /// Drains and waits until the server stopped.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.run_until(std::future::ready(())).await
    }
}

/// Connects to etcd, binds the xDS port, then the admin port (so ready
/// always means "accepting"), and serves. The etcd listing, TLS reloads and
/// the `status/` writer run as tasks of the current runtime.
pub async fn start(config: Config) -> anyhow::Result<Running> {
    let keys = config.etcd.keys();
    let etcd_config = config.etcd.config()?.with_request_timeout(None);
    etcd_config.warn_if_plaintext();
    let etcd = bootes_etcd::connect::connect(&etcd_config)
        .await
        .context("etcd client")?;
    let secrets = config.etcd.secret_keys()?;
    let tls = match (&config.tls.tls_cert, &config.tls.tls_key) {
        (Some(cert), Some(key)) => {
            let tls = bootes_tls::ReloadingTls::load(
                bootes_tls::TlsFiles {
                    cert: cert.clone(),
                    key: key.clone(),
                    client_ca: config.tls.tls_client_ca.clone(),
                },
                tls::ALPN,
            )
            .context("TLS")?;
            tokio::spawn(tls.clone().watch(config.tls.tls_reload_interval));
            Some(tls)
        }
        _ => {
            tracing::warn!(
                listen = %config.listen,
                "serving xDS without TLS (no --tls-cert/--tls-key): configuration crosses the network in the clear and Envoys cannot verify this server; see docs/SECURITY.md"
            );
            None
        }
    };
    let client_auth = tls.as_ref().is_some_and(|t| t.requires_client_auth());
    if !config.tls.csds_operator.is_empty() && !client_auth {
        anyhow::bail!("--csds-operator needs client certificates (--tls-client-ca)");
    }
    if !client_auth && !config.tls.allow_unauthenticated_secrets {
        tracing::warn!("clients do not authenticate (no --tls-client-ca): Secrets (SDS) are not served to them");
    }

    let metrics = Arc::new(metrics::Metrics::new());
    let shared = etcd_sync::Shared::new(keys.clone(), secrets, metrics.clone());
    tokio::spawn(etcd_sync::run(etcd.clone(), keys.clone(), shared.clone()));

    let clients = clients::Clients::new();
    let replica = config.replica_id.clone().unwrap_or_else(default_replica_id);
    let bound = shared.clone();
    tokio::spawn(status_report::run(
        etcd,
        keys,
        replica,
        clients.clone(),
        status_report::Limits {
            lease_ttl: config.status_lease_ttl,
            interval: config.limits.status_write_interval,
            max_record: config.limits.max_status_record_bytes,
            max_detail: config.limits.max_nack_detail_bytes,
        },
        move |node| bound.binding(node).is_some(),
        metrics.clone(),
    ));

    let (drain_tx, draining) = watch::channel(false);
    let server = Arc::new(grpc::Server {
        snapshots: shared.clone(),
        cache: bootes_xds::response::ResponseCache::new(),
        clients: clients.clone(),
        metrics: metrics.clone(),
        draining,
        drain_period: config.drain_period,
        drain_spread: Default::default(),
        max_connection_age: Some(config.max_connection_age).filter(|age| !age.is_zero()),
        policy: grpc::Policy {
            client_auth,
            trust_domain: config.tls.spiffe_trust_domain.clone(),
            allow_unauthenticated_secrets: config.tls.allow_unauthenticated_secrets,
            limits: bootes_xds::session::Limits {
                max_resource_names: config.limits.max_resource_names,
                max_nack_detail: config.limits.max_nack_detail_bytes,
                max_node_id: config.limits.max_node_id_bytes,
            },
            max_request_bytes: config.limits.max_request_bytes,
        },
        admission: grpc::Admit::new(
            config.limits.max_new_streams_per_second,
            config.limits.new_stream_max_wait,
        ),
    });

    // The xDS port is bound before the admin port answers /readyz, so ready
    // always means "accepting"; connections made before the server runs wait
    // in the backlog.
    let grpc_listener = listener::bind(config.listen, config.limits.listen_backlog)
        .with_context(|| format!("binding {}", config.listen))?;
    let xds = grpc_listener.local_addr().context("xDS address")?;
    let admin = bootes_runtime::admin::serve(
        config.admin_listen,
        bootes_runtime::admin::router(Arc::new(admin::Admin {
            shared: shared.clone(),
            metrics: metrics.clone(),
            draining: server.draining.clone(),
        })),
    )
    .await?;

    let (health, health_service) = tonic_health::server::health_reporter();
    set_health(&health, tonic_health::ServingStatus::NotServing).await;
    tokio::spawn(report_health(health.clone(), shared.clone()));
    let mut reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(bootes_proto::envoy::descriptor_set())
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET);
    for name in grpc::service_names() {
        reflection = reflection.with_service_name(name);
    }
    let reflection = reflection
        .with_service_name("envoy.service.status.v3.ClientStatusDiscoveryService")
        .with_service_name("grpc.health.v1.Health")
        .build_v1()
        .context("reflection service")?;

    let max_request_bytes = config.limits.max_request_bytes;
    let csds = |access| {
        grpc::CsdsService::new(clients.clone(), shared.clone(), access)
            .max_decoding_message_size(max_request_bytes)
    };
    let mut csds_addr = None;
    if let Some(addr) = config.tls.csds_listen.0 {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding CSDS {addr}"))?;
        csds_addr = Some(listener.local_addr().context("CSDS address")?);
        let service = csds(grpc::CsdsAccess::Anyone);
        tokio::spawn(async move {
            let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
            if let Err(e) = tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(incoming)
                .await
            {
                tracing::error!(error = %e, "CSDS listener failed");
            }
        });
    }

    tracing::info!(
        listen = %xds,
        admin = %admin,
        csds = ?csds_addr,
        tls = tls.is_some(),
        client_auth,
        "serving xDS"
    );
    let refused = metrics.clone();
    let incoming = listener::incoming(
        grpc_listener,
        tls,
        listener::Limits {
            handshake_timeout: config.limits.handshake_timeout,
            max_connections: config.limits.max_connections,
        },
        move |why| {
            refused
                .refused_connections
                .get_or_create(&metrics::ReasonLabel {
                    reason: why.label(),
                })
                .inc();
        },
    )
    .context("starting the xDS accept thread")?;
    let (drain, drain_rx) = oneshot::channel::<()>();
    let shutdown = async move {
        // A dropped handle drains too.
        let _ = drain_rx.await;
        tracing::info!("draining: no new connections, streams end within the drain period");
        set_health(&health, tonic_health::ServingStatus::NotServing).await;
        let _ = drain_tx.send(true);
    };
    let mut builder = tonic::transport::Server::builder();
    if !config.max_connection_age.is_zero() {
        // GOAWAY at the age: a client's next stream opens a new connection,
        // which may reach another replica. The streams themselves end
        // within the next fifth of the age (`bootes_xds::session`); the
        // grace only closes connections whose client holds on.
        let age = config.max_connection_age;
        builder = builder
            .max_connection_age(age)
            .max_connection_age_grace(age / 4);
    }
    let router = builder
        .http2_keepalive_interval(Some(config.limits.http2_keepalive_interval))
        .http2_keepalive_timeout(Some(config.limits.http2_keepalive_timeout))
        .max_concurrent_streams(config.limits.max_streams_per_connection)
        .add_routes(grpc::XdsService::new(server).routes())
        .add_service(csds(grpc::CsdsAccess::Operators(Arc::new(
            config.tls.csds_operator.clone(),
        ))))
        .add_service(health_service)
        .add_service(reflection);
    let served = tokio::spawn(async move {
        router
            .serve_with_incoming_shutdown(incoming, shutdown)
            .await
            .context("gRPC server")?;
        tracing::info!("stopped");
        Ok(())
    });
    Ok(Running {
        xds,
        admin,
        csds: csds_addr,
        drain,
        served,
    })
}

/// gRPC health follows readiness: SERVING once etcd is loaded.
async fn report_health(
    health: tonic_health::server::HealthReporter,
    shared: Arc<etcd_sync::Shared>,
) {
    let mut changes = shared.subscribe();
    while !shared.is_ready() {
        if changes.changed().await.is_err() {
            return;
        }
    }
    set_health(&health, tonic_health::ServingStatus::Serving).await;
}

/// The same status for the server as a whole and every xDS service.
async fn set_health(
    health: &tonic_health::server::HealthReporter,
    status: tonic_health::ServingStatus,
) {
    for name in grpc::service_names().into_iter().chain([""]) {
        health.set_service_status(name, status).await;
    }
}

fn default_replica_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "xds-server".into());
    format!("{host}-{}", std::process::id())
}
