//! `bootes-controller validate`: prints what [`bootes_core::validate::check`]
//! finds, one line per problem (`error: …`, then `warning: …`), then a
//! summary. Errors are the objects `run` would not accept, and references
//! whose absence makes Envoy reject the resource; warnings the other
//! unresolved references. The exit code is 0 when there is no error (warnings do not fail
//! the run), 1 otherwise.

use std::io::Write;
use std::process::ExitCode;

use bootes_core::validate::check;

use crate::cli::ValidateArgs;

/// Reads every file (directories recursively, `-` for stdin), prints one line
/// per problem, and fails when any object is invalid.
pub fn run(args: &ValidateArgs) -> anyhow::Result<ExitCode> {
    let envoy = args
        .envoy
        .as_ref()
        .map(|binary| crate::envoy_oracle::Envoy {
            binary: binary.clone(),
            parallel: args.envoy_parallel,
            timeout: args.envoy_timeout,
            metrics: None,
        });
    let outcome = check(
        &args.files,
        &crate::cli::bootstrap_clusters(&args.bootstrap_clusters),
        envoy
            .as_ref()
            .map(|e| e as &dyn bootes_core::envoy_judge::EnvoyOracle),
    );
    let mut out = std::io::stdout().lock();
    for line in &outcome.errors {
        writeln!(out, "error: {line}")?;
    }
    for line in &outcome.warnings {
        writeln!(out, "warning: {line}")?;
    }
    writeln!(
        out,
        "{} objects checked, {} errors, {} warnings",
        outcome.objects,
        outcome.errors.len(),
        outcome.warnings.len()
    )?;
    Ok(if outcome.errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
