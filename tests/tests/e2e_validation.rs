//! Run mode reports a rejected object with exactly the line `validate`
//! prints for it, once per change, and keeps serving everything else.

use anyhow::{ensure, Result};
use bootes_tests::harness::{
    cluster_eds, endpoint, eventually, find_bootes_bin, pod, Envoy, ManifestDir, Stack,
};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_logs_the_validate_line_once_per_change() -> Result<()> {
    let m = ManifestDir::new()?;
    // EDS clusters with endpoints, so that Envoy warms them at once.
    let addr = "127.0.0.1:9".parse()?;
    let good = |names: &[&str]| {
        let mut docs = vec![pod("demo", "envoy-0", &[])];
        for n in names {
            docs.push(cluster_eds("demo", n, n, &[]));
            docs.push(endpoint("demo", &format!("{n}-endpoints"), n, &[addr], &[]));
        }
        docs
    };
    m.write_docs("good.yaml", &good(&["good"]))?;
    let mut bad = cluster_eds("demo", "bad", "bad", &[]);
    bad["spec"]["config"]["conect_timeout"] = json!("1s");
    m.write_docs("bad.yaml", &[bad.clone()])?;

    // What `validate` says about the file.
    let bin = find_bootes_bin("bootes-controller", "BOOTES_CONTROLLER_BIN")?;
    let out = std::process::Command::new(&bin)
        .args(["validate", "-f"])
        .arg(m.path().join("bad.yaml"))
        .output()?;
    assert!(!out.status.success());
    let stdout = String::from_utf8(out.stdout)?;
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("error: "))
        .expect("validate reports the error")
        .to_string();
    assert!(
        line.contains("Cluster demo/bad") && line.contains("conect_timeout"),
        "{line}"
    );

    let mut stack = Stack::start(&m, 1).await?;
    let envoy = Envoy::start("envoy-0.demo", &stack.xds_addrs()).await?;
    envoy.wait_for_cluster("good").await?;
    let log_path = stack.controller.process().stderr_path().to_path_buf();
    eventually("run logs the same line", || async {
        let log = std::fs::read_to_string(&log_path)?;
        ensure!(log.contains(&line), "not yet");
        Ok(())
    })
    .await?;

    // An unrelated change does not repeat it; changing the bad object does.
    m.write_docs("good.yaml", &good(&["good", "more"]))?;
    envoy.wait_for_cluster("more").await?;
    let count = |log: &str| log.matches(line.as_str()).count();
    assert_eq!(
        count(&std::fs::read_to_string(&log_path)?),
        1,
        "logged once per change"
    );
    bad["spec"]["config"]["lb_policy"] = json!("RANDOM");
    m.write_docs("bad.yaml", &[bad])?;
    eventually("the changed object is reported again", || async {
        let log = std::fs::read_to_string(&log_path)?;
        ensure!(count(&log) == 2, "{} times", count(&log));
        Ok(())
    })
    .await?;
    assert!(!envoy.cluster_names().await?.contains("bad"));
    Ok(())
}
