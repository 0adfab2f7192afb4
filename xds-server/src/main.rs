//! `bootes-xds-server`: the command line, and a call to
//! [`bootes_xds_server::start`].

use clap::{CommandFactory, Parser};

#[derive(Debug, Parser)]
#[command(
    name = "bootes-xds-server",
    version,
    about = "Bootes xDS server: snapshots from etcd, served to Envoy over ADS"
)]
struct Cli {
    #[command(flatten)]
    config: bootes_xds_server::config::Config,
    /// Log format.
    #[arg(long, env = "BOOTES_LOG_FORMAT", value_enum, default_value_t = bootes_runtime::logging::LogFormat::Text)]
    log_format: bootes_runtime::logging::LogFormat,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    cli.config
        .etcd
        .require(Cli::command())
        .unwrap_or_else(|e| e.exit());
    bootes_runtime::logging::init(cli.log_format);
    tracing::info!(?cli, "starting");
    bootes_xds_server::start(cli.config)
        .await?
        .run_until(bootes_runtime::shutdown_signal())
        .await
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
            cli.config.tls.csds_listen.0,
            Some("127.0.0.1:18001".parse().unwrap())
        );
        assert!(!cli.config.tls.allow_unauthenticated_secrets);
        assert_eq!(cli.config.limits.max_nack_detail_bytes, 4096);
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
        assert_eq!(cli.config.tls.csds_listen.0, None);
        assert_eq!(cli.config.tls.csds_operator, ["a", "b"]);
        assert!(Cli::try_parse_from(["x", "--etcd-endpoints=e", "--tls-cert=c"]).is_err());
        assert!(Cli::try_parse_from([
            "x",
            "--etcd-endpoints=e",
            "--max-status-record-bytes=2000000"
        ])
        .is_err());
    }
}
