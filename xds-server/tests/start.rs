//! The server started as `main` starts it ([`bootes_xds_server::start`]),
//! in-process against a real etcd: it becomes ready, serves gRPC health on
//! its xDS port, and stops when asked.

use anyhow::{ensure, Context, Result};
use bootes_tests::harness::{eventually, http_get, Etcd};
use bootes_xds_server::config::Config;
use clap::Parser;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

#[derive(Parser)]
struct Args {
    #[command(flatten)]
    config: Config,
}

#[tokio::test]
async fn start_serves_until_stopped() -> Result<()> {
    let etcd = Etcd::start().await?;
    let args = Args::try_parse_from([
        "bootes-xds-server",
        "--etcd-endpoints",
        &etcd.endpoint(),
        "--listen=127.0.0.1:0",
        "--admin-listen=127.0.0.1:0",
        "--csds-listen=127.0.0.1:0",
        "--drain-period=0",
    ])?;
    let running = bootes_xds_server::start(args.config).await?;
    assert!(running.csds.is_some(), "the CSDS listener is bound");

    let admin = running.admin;
    let ready = eventually("the in-process xds-server is ready", || async move {
        let r = http_get(admin, "localhost", "/readyz").await?;
        ensure!(r.status == 200, "/readyz: {} {}", r.status, r.text());
        Ok(r)
    })
    .await?;
    assert!(
        ready.text().starts_with("ok: etcd revision"),
        "{}",
        ready.text()
    );

    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", running.xds))?
        .connect()
        .await
        .context("connecting to the xDS port")?;
    let mut health = HealthClient::new(channel);
    let status = health
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await?
        .into_inner()
        .status;
    assert_eq!(status, ServingStatus::Serving as i32);

    running.stop().await
}
