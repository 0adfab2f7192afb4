//! The real `kubectl` against kube-standin, from async tests.

use std::process::Stdio;

use anyhow::{ensure, Context, Result};
use kube_standin::client::StandinProcess;
use serde_json::Value;

use super::{find_bootes_bin, yaml_stream};

/// What one `kubectl` run printed.
#[derive(Debug)]
pub struct KubectlOutput {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `kubectl ARGS` against the stand-in (with `stdin` piped in when
/// given) off the async runtime, whatever its exit status.
pub async fn kubectl_run(
    standin: &StandinProcess,
    args: &[&str],
    stdin: Option<String>,
) -> Result<KubectlOutput> {
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
    tokio::task::spawn_blocking(move || -> Result<KubectlOutput> {
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
        Ok(KubectlOutput {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    })
    .await?
}

/// Runs `kubectl ARGS`; fails with its output unless it succeeds.
pub async fn kubectl(
    standin: &StandinProcess,
    args: &[&str],
    stdin: Option<String>,
) -> Result<String> {
    let out = kubectl_run(standin, args, stdin).await?;
    ensure!(
        out.ok,
        "kubectl {} failed: {}{}",
        args.join(" "),
        out.stdout,
        out.stderr
    );
    Ok(out.stdout)
}

/// `kubectl apply -f -` of `docs`.
pub async fn kubectl_apply(standin: &StandinProcess, docs: &[Value]) -> Result<String> {
    kubectl(standin, &["apply", "-f", "-"], Some(yaml_stream(docs))).await
}

/// Applies the CRDs exactly as `bootes-controller crds` generates them.
pub async fn apply_bootes_crds(standin: &StandinProcess) -> Result<String> {
    let bin = find_bootes_bin("bootes-controller", "BOOTES_CONTROLLER_BIN")?;
    let crds = std::process::Command::new(bin).arg("crds").output()?;
    ensure!(crds.status.success(), "bootes-controller crds failed");
    kubectl(
        standin,
        &["apply", "-f", "-"],
        Some(String::from_utf8(crds.stdout)?),
    )
    .await
}
