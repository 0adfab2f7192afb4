//! Run mode reports a rejected object with exactly the line `validate`
//! prints for it, once per change, and keeps serving everything else.

use anyhow::{ensure, Result};
use bootes_tests::harness::{
    cluster_eds, endpoint, eventually, find_bootes_bin, pod, route, Envoy, ManifestDir, Stack,
    VirtualHost,
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

/// Directory mode: a reference the node does not receive is logged with the
/// node's name, `inspect groups` lists it from etcd, and it is logged
/// resolved once an object provides it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directory_mode_reports_unresolved_references_in_the_log_and_inspect() -> Result<()> {
    let m = ManifestDir::new()?;
    let vh = VirtualHost::new("all", &["*"], &[("/", "nowhere")]);
    m.write_docs(
        "objects.yaml",
        &[
            pod("demo", "envoy-0", &[]),
            route("demo", "r", "r", &[vh], &[]),
        ],
    )?;
    let mut stack = Stack::start(&m, 1).await?;
    let log_path = stack.controller.process().stderr_path().to_path_buf();
    eventually("the log names the missing cluster and the node", || async {
        let log = std::fs::read_to_string(&log_path)?;
        let line = log
            .lines()
            .find(|l| l.contains("unresolved references"))
            .unwrap_or_default();
        ensure!(
            line.contains("Route demo/r")
                && line.contains("route to cluster \"nowhere\"")
                && line.contains("UnresolvedReferences"),
            "not yet: {line}"
        );
        Ok(())
    })
    .await?;
    let bin = find_bootes_bin("bootes-controller", "BOOTES_CONTROLLER_BIN")?;
    let inspect = |extra: &[&str]| {
        std::process::Command::new(&bin)
            .args(["inspect", "groups", "-o", "json", "--etcd-endpoints"])
            .arg(stack.etcd.endpoint())
            .args(extra)
            .env_remove("BOOTES_ETCD_PREFIX")
            .output()
    };
    let out = inspect(&[])?;
    ensure!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let groups: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let unresolved = &groups["groups"][0]["unresolved"];
    ensure!(
        unresolved[0]["problem"]
            .as_str()
            .is_some_and(|p| p.contains("\"nowhere\"") && p.contains("envoy-0.demo")),
        "{groups:#}"
    );
    // Declared as a bootstrap cluster: not listed.
    let out = inspect(&["--bootstrap-clusters", "nowhere"])?;
    let groups: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    ensure!(groups["groups"][0]["unresolved"] == json!([]), "{groups:#}");

    // Provided: resolved.
    m.write_docs(
        "cluster.yaml",
        &[cluster_eds("demo", "nowhere", "nowhere", &[])],
    )?;
    eventually("the log says the references resolved", || async {
        let log = std::fs::read_to_string(&log_path)?;
        ensure!(log.contains("references resolved"), "not yet");
        Ok(())
    })
    .await?;
    Ok(())
}
