//! `bootes-controller`: see `cli.rs` for the commands.

mod cli;
mod crd;
mod envoy_oracle;
mod etcd_writer;
mod events_kube;
mod inspect;
mod leader;
mod metrics;
mod reconcile;
mod run;
mod source;
mod status_kube;
#[cfg(test)]
mod stored_values_tests;
mod validate_cmd;
mod webhook;

use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = cli::Cli::parse_args();
    bootes_runtime::logging::init(cli.log_format);
    let result = match cli.command {
        cli::Command::Validate(args) => validate_cmd::run(&args),
        cli::Command::Crds => {
            print!("{}", crd::crds_yaml());
            Ok(ExitCode::SUCCESS)
        }
        cli::Command::WebhookCert(args) => webhook::cert::run(&args).map(|()| ExitCode::SUCCESS),
        cli::Command::Inspect(args) => tokio::runtime::Runtime::new()
            .map_err(anyhow::Error::from)
            .and_then(|rt| rt.block_on(inspect::run(args))),
        cli::Command::Run(args) => tokio::runtime::Runtime::new()
            .map_err(anyhow::Error::from)
            .and_then(|rt| rt.block_on(run::run(*args)))
            .map(|()| ExitCode::SUCCESS),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
