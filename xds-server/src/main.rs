//! `bootes-xds-server`: serves the snapshots in etcd to Envoys over xDS.
//! Stateless: any replica serves any node.

mod admin;
mod ads;
mod codec;
mod etcd_sync;
mod jitter;
mod protocol;
mod snapshots;

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
    /// Admin listen address (/livez, /readyz).
    #[arg(long, env = "BOOTES_ADMIN_LISTEN", default_value = "0.0.0.0:19000")]
    admin_listen: SocketAddr,
    /// On SIGTERM, streams end at random points within this period.
    #[arg(long, env = "BOOTES_DRAIN_PERIOD", value_parser = parse_seconds, default_value = "5")]
    drain_period: Duration,
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
    let etcd = etcd_client::Client::connect(
        &cli.etcd_endpoints,
        Some(
            etcd_client::ConnectOptions::new()
                .with_connect_timeout(Duration::from_secs(3))
                .with_keep_alive(Duration::from_secs(10), Duration::from_secs(5)),
        ),
    )
    .await
    .context("etcd client")?;

    let shared = etcd_sync::Shared::new(keys.clone());
    tokio::spawn(etcd_sync::run(etcd, keys, shared.clone()));

    let (drain_tx, draining) = watch::channel(false);
    let server = Arc::new(ads::Server {
        snapshots: shared.clone(),
        cache: protocol::response::ResponseCache::new(),
        draining,
        drain_period: cli.drain_period,
    });

    let admin = tokio::net::TcpListener::bind(cli.admin_listen)
        .await
        .with_context(|| format!("binding admin {}", cli.admin_listen))?;
    tokio::spawn(async move {
        if let Err(e) = axum::serve(admin, admin::router(shared)).await {
            tracing::error!(error = %e, "admin server failed");
        }
    });

    let grpc = tokio::net::TcpListener::bind(cli.listen)
        .await
        .with_context(|| format!("binding {}", cli.listen))?;
    tracing::info!(listen = %cli.listen, admin = %cli.admin_listen, "serving xDS");
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(grpc);
    let shutdown = async move {
        shutdown_signal().await;
        tracing::info!("draining: no new connections, streams end within the drain period");
        let _ = drain_tx.send(true);
    };
    tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(10)))
        .add_service(ads::AdsService::new(server))
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
        .context("gRPC server")?;
    tracing::info!("stopped");
    Ok(())
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
        .with_writer(std::io::stderr);
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
