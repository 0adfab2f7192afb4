//! The real `kubectl` against kube-standin, run off the async runtime.

use std::process::Stdio;

use anyhow::{ensure, Context, Result};
use kube_standin::client::StandinProcess;
use serde_json::Value;

use super::yaml_stream;

/// Runs `kubectl ARGS` against the stand-in (with `stdin` piped in when
/// given); fails with its output unless it succeeds.
pub async fn kubectl(
    standin: &StandinProcess,
    args: &[&str],
    stdin: Option<String>,
) -> Result<String> {
    let mut cmd = standin.kubectl();
    cmd.args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let what = format!("kubectl {}", args.join(" "));
    tokio::task::spawn_blocking(move || -> Result<String> {
        let mut child = cmd.spawn().with_context(|| format!("starting {what}"))?;
        if let Some(input) = stdin {
            use std::io::Write;
            child
                .stdin
                .take()
                .context("kubectl stdin")?
                .write_all(input.as_bytes())?;
        }
        let out = child.wait_with_output()?;
        ensure!(
            out.status.success(),
            "{what} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    })
    .await?
}

/// `kubectl apply -f -` of `docs`.
pub async fn kubectl_apply(standin: &StandinProcess, docs: &[Value]) -> Result<String> {
    kubectl(standin, &["apply", "-f", "-"], Some(yaml_stream(docs))).await
}
