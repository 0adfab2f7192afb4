//! kube-standin: an in-memory Kubernetes API stand-in for tests (see
//! `kube_standin`). Listens on a loopback address only.
//!
//! ```text
//! kube-standin --listen 127.0.0.1:0 --write-kubeconfig /tmp/kubeconfig
//! ```
//!
//! Prints `listening on ADDR` on stdout once it accepts connections, after the
//! kubeconfig (pointing at `http://ADDR`) is written.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Parser;
use kube_standin::{kubeconfig, server};

#[derive(Parser, Debug)]
#[command(
    name = "kube-standin",
    about = "Kubernetes API stand-in for tests (in memory, plain HTTP, loopback only)"
)]
struct Args {
    /// Address to listen on; must be a loopback address. Port 0 picks a free port.
    #[arg(long, env = "KUBE_STANDIN_LISTEN")]
    listen: SocketAddr,
    /// Where to write a kubeconfig pointing at the server.
    #[arg(long, env = "KUBE_STANDIN_KUBECONFIG")]
    write_kubeconfig: PathBuf,
    /// Interval between BOOKMARK events on watches that allow them, in milliseconds.
    #[arg(
        long,
        env = "KUBE_STANDIN_BOOKMARK_INTERVAL_MS",
        default_value_t = 1000
    )]
    bookmark_interval_ms: u64,
    /// Number of events kept for watches; older resourceVersions get 410 Gone.
    #[arg(long, env = "KUBE_STANDIN_HISTORY_LIMIT", default_value_t = 10_000)]
    history_limit: usize,
    /// Log filter (tracing EnvFilter syntax), e.g. `debug` to log every request.
    #[arg(long, env = "KUBE_STANDIN_LOG", default_value = "info")]
    log: String,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_new(&args.log).context("--log")?)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    if !args.listen.ip().is_loopback() {
        bail!(
            "refusing to listen on {}: kube-standin has no authentication and only listens on loopback addresses",
            args.listen
        );
    }
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let addr = listener.local_addr()?;
    kubeconfig::write_kubeconfig(&args.write_kubeconfig, &format!("http://{addr}"))
        .with_context(|| format!("writing {}", args.write_kubeconfig.display()))?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening on {addr}")?;
        out.flush()?;
    }
    tracing::info!(%addr, kubeconfig = %args.write_kubeconfig.display(), "kube-standin serving");
    let options = server::Options {
        bookmark_interval: Duration::from_millis(args.bookmark_interval_ms),
        history_limit: args.history_limit,
    };
    let app = server::App::new(options, addr);
    let shutdown = async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing the SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {},
            _ = term.recv() => {},
        }
    };
    // Open watches never end by themselves, so stop at once on a signal rather than
    // waiting for connections to drain.
    tokio::select! {
        r = axum::serve(listener, server::router(app)) => r?,
        _ = shutdown => tracing::info!("kube-standin stopping"),
    }
    Ok(())
}
