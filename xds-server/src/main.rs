//! `bootes-xds-server`: serves the snapshots in etcd to Envoys over xDS.
//! Stateless: any replica serves any node.

mod admin;
mod authz;
mod clients;
mod etcd_sync;
mod grpc;
mod jitter;
mod listener;
mod metrics;
mod source;
mod status_report;
mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bootes_proto::Keys;
use clap::{Parser, ValueEnum};
use tokio::sync::watch;

#[derive(Debug, Parser)]
#[command(
    name = "bootes-xds-server",
    version,
    about = "Bootes xDS server: snapshots from etcd, served to Envoy over ADS"
)]
struct Cli {
    /// etcd endpoints, comma separated.
    #[arg(
        long,
        env = "BOOTES_ETCD_ENDPOINTS",
        value_delimiter = ',',
        required = true
    )]
    etcd_endpoints: Vec<String>,
    /// Prefix of every Bootes key in etcd.
    #[arg(long, env = "BOOTES_ETCD_PREFIX", default_value = bootes_proto::keys::DEFAULT_PREFIX)]
    etcd_prefix: String,
    /// gRPC listen address (xDS).
    #[arg(long, env = "BOOTES_LISTEN", default_value = "0.0.0.0:18000")]
    listen: SocketAddr,
    /// Admin listen address (/livez, /readyz, /metrics).
    #[arg(long, env = "BOOTES_ADMIN_LISTEN", default_value = "0.0.0.0:19000")]
    admin_listen: SocketAddr,
    /// On SIGTERM, streams end at random points within this period.
    #[arg(long, env = "BOOTES_DRAIN_PERIOD", value_parser = parse_seconds, default_value = "5")]
    drain_period: Duration,
    /// End streams older than this (± 10%) so clients rebalance after a
    /// scale-up (seconds; unset: never).
    #[arg(long, env = "BOOTES_MAX_CONNECTION_AGE", value_parser = parse_seconds)]
    max_connection_age: Option<Duration>,
    /// Name of this replica in `status/` keys (default: hostname and process ID).
    #[arg(long, env = "BOOTES_REPLICA_ID")]
    replica_id: Option<String>,
    /// TTL of the lease on this replica's `status/` keys (seconds).
    #[arg(long, env = "BOOTES_STATUS_LEASE_TTL", value_parser = parse_seconds, default_value = "15")]
    status_lease_ttl: Duration,
    /// Log format.
    #[arg(long, env = "BOOTES_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

fn parse_seconds(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .trim_end_matches('s')
        .parse()
        .map_err(|_| format!("{s:?}: expected seconds, e.g. 5 or 2.5s"))?;
    Duration::try_from_secs_f64(secs).map_err(|e| e.to_string())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    tracing::info!(?cli, "starting");

    let keys = Keys::new(&cli.etcd_prefix);
    let etcd = bootes_etcd::connect(
        &bootes_etcd::EtcdConfig::new(&cli.etcd_endpoints).with_request_timeout(None),
    )
    .await
    .context("etcd client")?;

    let metrics = Arc::new(metrics::Metrics::new());
    let shared = etcd_sync::Shared::new(keys.clone(), metrics.clone());
    tokio::spawn(etcd_sync::run(etcd.clone(), keys.clone(), shared.clone()));

    let clients = clients::Clients::new();
    let replica = cli.replica_id.clone().unwrap_or_else(default_replica_id);
    tokio::spawn(status_report::run(
        etcd,
        keys,
        replica,
        clients.clone(),
        cli.status_lease_ttl,
    ));

    let (drain_tx, draining) = watch::channel(false);
    let server = Arc::new(grpc::Server {
        snapshots: shared.clone(),
        cache: bootes_xds::response::ResponseCache::new(),
        clients: clients.clone(),
        metrics: metrics.clone(),
        draining,
        drain_period: cli.drain_period,
        max_connection_age: cli.max_connection_age,
    });

    // The xDS port is bound before the admin port answers /readyz, so ready
    // always means "accepting"; connections made before the server runs wait
    // in the backlog.
    let grpc_listener = tokio::net::TcpListener::bind(cli.listen)
        .await
        .with_context(|| format!("binding {}", cli.listen))?;
    let admin = tokio::net::TcpListener::bind(cli.admin_listen)
        .await
        .with_context(|| format!("binding admin {}", cli.admin_listen))?;
    let admin_router = admin::router(shared.clone(), metrics);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(admin, admin_router).await {
            tracing::error!(error = %e, "admin server failed");
        }
    });

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

    tracing::info!(listen = %cli.listen, admin = %cli.admin_listen, "serving xDS");
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(grpc_listener);
    let shutdown = async move {
        shutdown_signal().await;
        tracing::info!("draining: no new connections, streams end within the drain period");
        set_health(&health, tonic_health::ServingStatus::NotServing).await;
        let _ = drain_tx.send(true);
    };
    tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(10)))
        .add_routes(grpc::XdsService::new(server).routes())
        .add_service(grpc::CsdsService::new(clients, shared))
        .add_service(health_service)
        .add_service(reflection)
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
        .context("gRPC server")?;
    tracing::info!("stopped");
    Ok(())
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

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colours only on a terminal: logs captured in files stay readable.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }
}
