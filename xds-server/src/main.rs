//! `bootes-xds-server`: serves the snapshots in etcd to Envoys over xDS.
//! Stateless: any replica serves any node.

mod admin;
mod authz;
mod clients;
mod etcd_sync;
mod grpc;
mod listener;
mod metrics;
mod source;
mod status_report;
mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{CommandFactory, Parser, ValueEnum};
use tokio::sync::watch;

#[derive(Debug, Parser)]
#[command(
    name = "bootes-xds-server",
    version,
    about = "Bootes xDS server: snapshots from etcd, served to Envoy over ADS"
)]
struct Cli {
    #[command(flatten)]
    etcd: bootes_etcd::EtcdArgs,
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
    #[command(flatten)]
    tls: TlsArgs,
    #[command(flatten)]
    limits: LimitArgs,
}

/// TLS on the xDS port and who may read what (docs/SECURITY.md).
#[derive(Debug, clap::Args)]
struct TlsArgs {
    /// Server certificate chain (PEM). With it, the xDS port speaks TLS only.
    /// Re-read when it changes.
    #[arg(long, env = "BOOTES_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<std::path::PathBuf>,
    /// Private key of --tls-cert (PEM).
    #[arg(long, env = "BOOTES_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<std::path::PathBuf>,
    /// CA bundle (PEM) for client certificates. With it, every client must
    /// present a certificate it signed (mutual TLS), and a stream may only
    /// claim a node ID its certificate authorizes.
    #[arg(long, env = "BOOTES_TLS_CLIENT_CA", requires = "tls_cert")]
    tls_client_ca: Option<std::path::PathBuf>,
    /// How often the TLS files are checked for changes (seconds).
    #[arg(long, env = "BOOTES_TLS_RELOAD_INTERVAL", value_parser = parse_seconds, default_value = "10")]
    tls_reload_interval: Duration,
    /// Only SPIFFE IDs of this trust domain authorize nodes (default: any
    /// the client CA signed).
    #[arg(long, env = "BOOTES_SPIFFE_TRUST_DOMAIN")]
    spiffe_trust_domain: Option<String>,
    /// Serve Secrets (SDS) to clients that did not authenticate with a
    /// certificate. Anyone who can reach the port can then read every
    /// node's private keys: for local demos only.
    #[arg(long, env = "BOOTES_ALLOW_UNAUTHENTICATED_SECRETS")]
    allow_unauthenticated_secrets: bool,
    /// Listener serving CSDS (and only CSDS) to whoever reaches it; `off` to
    /// have none. Keep it on loopback or an operator-only network.
    #[arg(long, env = "BOOTES_CSDS_LISTEN", default_value = "127.0.0.1:18001", value_parser = parse_optional_addr)]
    csds_listen: OptionalAddr,
    /// Certificate names (SPIFFE ID, URI or DNS SAN) that may use CSDS on
    /// the xDS port (needs --tls-client-ca). Comma separated.
    #[arg(long, env = "BOOTES_CSDS_OPERATORS", value_delimiter = ',')]
    csds_operator: Vec<String>,
}

/// Bounds on what one client can cost (docs/SECURITY.md).
#[derive(Debug, clap::Args)]
struct LimitArgs {
    /// A connection must finish TCP, TLS and the HTTP/2 preface within this
    /// (seconds), or it is closed.
    #[arg(long, env = "BOOTES_HANDSHAKE_TIMEOUT", value_parser = parse_seconds, default_value = "10")]
    handshake_timeout: Duration,
    /// HTTP/2 PING interval on idle connections (seconds).
    #[arg(long, env = "BOOTES_HTTP2_KEEPALIVE_INTERVAL", value_parser = parse_seconds, default_value = "30")]
    http2_keepalive_interval: Duration,
    /// A connection whose PING is not answered within this is closed (seconds).
    #[arg(long, env = "BOOTES_HTTP2_KEEPALIVE_TIMEOUT", value_parser = parse_seconds, default_value = "10")]
    http2_keepalive_timeout: Duration,
    /// Connections held at once (including handshakes); more are refused.
    #[arg(long, env = "BOOTES_MAX_CONNECTIONS", default_value_t = 10_000)]
    max_connections: usize,
    /// Connections the kernel queues for the xDS port until they are
    /// accepted (capped by net.core.somaxconn). A reconnect storm larger
    /// than this, arriving faster than the accept thread empties it, gets
    /// resets.
    #[arg(long, env = "BOOTES_LISTEN_BACKLOG", default_value_t = 4096)]
    listen_backlog: u32,
    /// Concurrent HTTP/2 streams per connection.
    #[arg(long, env = "BOOTES_MAX_STREAMS_PER_CONNECTION", default_value_t = 100)]
    max_streams_per_connection: u32,
    /// Largest request message (bytes).
    #[arg(long, env = "BOOTES_MAX_REQUEST_BYTES", default_value_t = 4 << 20)]
    max_request_bytes: usize,
    /// Resource names one request may carry.
    #[arg(long, env = "BOOTES_MAX_RESOURCE_NAMES", default_value_t = 10_000)]
    max_resource_names: usize,
    /// NACK details are cut to this many bytes on receipt (logs, metrics,
    /// CSDS, etcd and object status only see the cut text).
    #[arg(long, env = "BOOTES_MAX_NACK_DETAIL_BYTES", default_value_t = bootes_proto::limits::DEFAULT_MAX_NACK_DETAIL)]
    max_nack_detail_bytes: usize,
    /// Longest node ID accepted (bytes).
    #[arg(long, env = "BOOTES_MAX_NODE_ID_BYTES", default_value_t = bootes_proto::limits::DEFAULT_MAX_NODE_ID)]
    max_node_id_bytes: usize,
    /// At most one round of `status/` writes per interval (seconds); changes
    /// in between are coalesced.
    #[arg(long, env = "BOOTES_STATUS_WRITE_INTERVAL", value_parser = parse_seconds, default_value = "1")]
    status_write_interval: Duration,
    /// Largest `status/` record (bytes; etcd's request limit is 1.5 MiB).
    #[arg(long, env = "BOOTES_MAX_STATUS_RECORD_BYTES", default_value_t = bootes_proto::limits::DEFAULT_MAX_STATUS_RECORD, value_parser = parse_record_bound)]
    max_status_record_bytes: usize,
}

fn parse_record_bound(s: &str) -> Result<usize, String> {
    let n: usize = s.parse().map_err(|e| format!("{s:?}: {e}"))?;
    if !(1024..=1 << 20).contains(&n) {
        return Err(format!(
            "{n}: must be between 1024 and 1048576 (etcd's request limit is 1.5 MiB)"
        ));
    }
    Ok(n)
}

/// An address, or `off`.
#[derive(Clone, Copy, Debug)]
struct OptionalAddr(Option<SocketAddr>);

fn parse_optional_addr(s: &str) -> Result<OptionalAddr, String> {
    if s == "off" {
        return Ok(OptionalAddr(None));
    }
    s.parse()
        .map(|a| OptionalAddr(Some(a)))
        .map_err(|e| format!("{s:?}: expected HOST:PORT or off ({e})"))
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
    cli.etcd
        .require(Cli::command())
        .unwrap_or_else(|e| e.exit());
    init_logging(cli.log_format);
    tracing::info!(?cli, "starting");

    let keys = cli.etcd.keys();
    let etcd_config = cli.etcd.config()?.with_request_timeout(None);
    etcd_config.warn_if_plaintext();
    let etcd = bootes_etcd::connect(&etcd_config)
        .await
        .context("etcd client")?;
    let secrets = cli.etcd.secret_keys()?;
    let tls = match (&cli.tls.tls_cert, &cli.tls.tls_key) {
        (Some(cert), Some(key)) => {
            let tls = bootes_tls::ReloadingTls::load(
                bootes_tls::TlsFiles {
                    cert: cert.clone(),
                    key: key.clone(),
                    client_ca: cli.tls.tls_client_ca.clone(),
                },
                tls::ALPN,
            )
            .context("TLS")?;
            tokio::spawn(tls.clone().watch(cli.tls.tls_reload_interval));
            Some(tls)
        }
        _ => {
            tracing::warn!(
                listen = %cli.listen,
                "serving xDS without TLS (no --tls-cert/--tls-key): configuration crosses the network in the clear and Envoys cannot verify this server; see docs/SECURITY.md"
            );
            None
        }
    };
    let client_auth = tls.as_ref().is_some_and(|t| t.requires_client_auth());
    if !cli.tls.csds_operator.is_empty() && !client_auth {
        anyhow::bail!("--csds-operator needs client certificates (--tls-client-ca)");
    }
    if !client_auth && !cli.tls.allow_unauthenticated_secrets {
        tracing::warn!("clients do not authenticate (no --tls-client-ca): Secrets (SDS) are not served to them");
    }

    let metrics = Arc::new(metrics::Metrics::new());
    let shared = etcd_sync::Shared::new(keys.clone(), secrets, metrics.clone());
    tokio::spawn(etcd_sync::run(etcd.clone(), keys.clone(), shared.clone()));

    let clients = clients::Clients::new();
    let replica = cli.replica_id.clone().unwrap_or_else(default_replica_id);
    let bound = shared.clone();
    tokio::spawn(status_report::run(
        etcd,
        keys,
        replica,
        clients.clone(),
        status_report::Limits {
            lease_ttl: cli.status_lease_ttl,
            interval: cli.limits.status_write_interval,
            max_record: cli.limits.max_status_record_bytes,
            max_detail: cli.limits.max_nack_detail_bytes,
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
        drain_period: cli.drain_period,
        max_connection_age: cli.max_connection_age,
        policy: grpc::Policy {
            client_auth,
            trust_domain: cli.tls.spiffe_trust_domain.clone(),
            allow_unauthenticated_secrets: cli.tls.allow_unauthenticated_secrets,
            max_resource_names: cli.limits.max_resource_names,
            max_nack_detail: cli.limits.max_nack_detail_bytes,
            max_node_id: cli.limits.max_node_id_bytes,
            max_request_bytes: cli.limits.max_request_bytes,
        },
    });

    // The xDS port is bound before the admin port answers /readyz, so ready
    // always means "accepting"; connections made before the server runs wait
    // in the backlog.
    let grpc_listener = listener::bind(cli.listen, cli.limits.listen_backlog)
        .with_context(|| format!("binding {}", cli.listen))?;
    let admin = tokio::net::TcpListener::bind(cli.admin_listen)
        .await
        .with_context(|| format!("binding admin {}", cli.admin_listen))?;
    let admin_router = admin::router(shared.clone(), metrics.clone());
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

    let csds = |access| {
        grpc::CsdsService::new(clients.clone(), shared.clone(), access)
            .max_decoding_message_size(cli.limits.max_request_bytes)
    };
    if let Some(addr) = cli.tls.csds_listen.0 {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding CSDS {addr}"))?;
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
        listen = %cli.listen,
        admin = %cli.admin_listen,
        csds = ?cli.tls.csds_listen.0,
        tls = tls.is_some(),
        client_auth,
        "serving xDS"
    );
    let refused = metrics.clone();
    let incoming = listener::incoming(
        grpc_listener,
        tls,
        listener::Limits {
            handshake_timeout: cli.limits.handshake_timeout,
            max_connections: cli.limits.max_connections,
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
    let shutdown = async move {
        shutdown_signal().await;
        tracing::info!("draining: no new connections, streams end within the drain period");
        set_health(&health, tonic_health::ServingStatus::NotServing).await;
        let _ = drain_tx.send(true);
    };
    tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(cli.limits.http2_keepalive_interval))
        .http2_keepalive_timeout(Some(cli.limits.http2_keepalive_timeout))
        .max_concurrent_streams(cli.limits.max_streams_per_connection)
        .add_routes(grpc::XdsService::new(server).routes())
        .add_service(csds(grpc::CsdsAccess::Operators(Arc::new(
            cli.tls.csds_operator.clone(),
        ))))
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

    #[test]
    fn defaults_and_trust_flags_parse() {
        let cli = Cli::try_parse_from(["x", "--etcd-endpoints", "http://e:2379"]).unwrap();
        assert_eq!(
            cli.tls.csds_listen.0,
            Some("127.0.0.1:18001".parse().unwrap())
        );
        assert!(!cli.tls.allow_unauthenticated_secrets);
        assert_eq!(cli.limits.max_nack_detail_bytes, 4096);
        let cli = Cli::try_parse_from([
            "x",
            "--etcd-endpoints=http://e:2379",
            "--csds-listen=off",
            "--tls-cert=c",
            "--tls-key=k",
            "--tls-client-ca=ca",
            "--csds-operator=a,b",
        ])
        .unwrap();
        assert_eq!(cli.tls.csds_listen.0, None);
        assert_eq!(cli.tls.csds_operator, ["a", "b"]);
        assert!(Cli::try_parse_from(["x", "--etcd-endpoints=e", "--tls-cert=c"]).is_err());
        assert!(Cli::try_parse_from([
            "x",
            "--etcd-endpoints=e",
            "--max-status-record-bytes=2000000"
        ])
        .is_err());
    }
}
