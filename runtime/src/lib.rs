//! The process plumbing both binaries share, written once: logging
//! ([`logging`]), SIGTERM and Ctrl-C ([`shutdown_signal`]), and the admin
//! HTTP listener with `/livez`, `/readyz` and `/metrics` ([`admin`]).
//!
//! No Bootes knowledge lives here: what "ready" means and which metrics
//! exist are each binary's ([`admin::Probe`]).

pub mod admin;
pub mod logging;

/// Resolves on SIGTERM (what Kubernetes sends) or Ctrl-C.
pub async fn shutdown_signal() {
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
