//! The controller's `/metrics`, `/livez` and `/readyz` on `--metrics-addr`,
//! from a real process writing to a real etcd.

use anyhow::{ensure, Result};
use std::net::SocketAddr;
use std::process::Command;

use bootes_tests::harness::{
    cluster_eds, eventually, find_bootes_bin, free_port, http_get, pod, test_dir, ChildProcess,
    Controller, Etcd, ManifestDir,
};
use serde_json::json;

const EDGE: &[(&str, &str)] = &[("app", "edge")];

/// The value of the series `name` (exact labels) in an OpenMetrics text.
fn value(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

fn write_objects(m: &ManifestDir, clusters: &[&str]) {
    let mut docs = vec![
        pod("demo", "envoy-0", EDGE),
        pod("demo", "envoy-1", EDGE),
        // Invalid: a typo in a field name.
        json!({"apiVersion": "bootes.io/v1", "kind": "Cluster",
               "metadata": {"name": "typo", "namespace": "demo"},
               "spec": {"config": {"name": "typo", "conect_timeout": "1s"}}}),
    ];
    docs.extend(clusters.iter().map(|c| cluster_eds("demo", c, c, EDGE)));
    m.write_docs("objects.yaml", &docs).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_objects_writes_and_leadership_and_readyz_follows_etcd() -> Result<()> {
    let m = ManifestDir::new()?;
    write_objects(&m, &["a", "b"]);
    let mut etcd = Etcd::start().await?;
    let mut controller = Controller::start(&etcd, m.path()).await?;
    let addr = controller.metrics_addr();

    let text = eventually("metrics show the objects", || async {
        let r = http_get(addr, "127.0.0.1", "/metrics").await?;
        ensure!(r.status == 200, "{} {}", r.status, r.body);
        let valid = value(
            &r.body,
            r#"bootes_controller_objects{kind="Cluster",reason="Valid"}"#,
        );
        ensure!(valid == Some(2.0), "{}", r.body);
        Ok(r)
    })
    .await?;
    assert!(
        text.headers
            .get("content-type")
            .is_some_and(|c| c.starts_with("application/openmetrics-text")),
        "{:?}",
        text.headers
    );
    let body = &text.body;
    let v = |name: &str| value(body, name).unwrap_or_else(|| panic!("no {name} in\n{body}"));
    assert_eq!(
        v(r#"bootes_controller_objects{kind="Cluster",reason="InvalidConfig"}"#),
        1.0
    );
    assert_eq!(
        v(r#"bootes_controller_objects{kind="Route",reason="Valid"}"#),
        0.0
    );
    assert_eq!(v("bootes_controller_rejected_objects"), 1.0);
    assert_eq!(v("bootes_controller_nodes"), 2.0);
    assert_eq!(v("bootes_controller_groups"), 1.0);
    assert_eq!(v("bootes_controller_leader"), 1.0);
    assert!(v("bootes_controller_etcd_write_txns_total") >= 1.0);
    assert!(v(r#"bootes_controller_etcd_write_ops_total{op="put"}"#) >= 3.0);
    assert!(v("bootes_controller_etcd_write_bytes_total") > 0.0);
    assert!(v("bootes_controller_reconcile_duration_seconds_count") >= 1.0);
    assert!(v("bootes_controller_last_successful_reconcile_timestamp_seconds") > 0.0);
    assert!(
        body.lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .all(|l| l.starts_with("bootes_controller_")),
        "every series is prefixed bootes_controller_:\n{body}"
    );

    let ready = http_get(addr, "127.0.0.1", "/readyz").await?;
    assert_eq!(ready.status, 200);
    assert!(ready.body.starts_with("ok (leader)"), "{}", ready.body);

    // etcd goes away: /readyz says so; /livez does not (restarting the
    // controller would not bring etcd back).
    etcd.process().kill();
    write_objects(&m, &["a", "b", "c"]);
    let not_ready = eventually("/readyz answers 503 while etcd is down", || async {
        let r = http_get(addr, "127.0.0.1", "/readyz").await?;
        ensure!(r.status == 503, "{} {}", r.status, r.body);
        Ok(r)
    })
    .await?;
    assert!(not_ready.body.contains("etcd"), "{}", not_ready.body);
    let live = http_get(addr, "127.0.0.1", "/livez").await?;
    assert_eq!(live.status, 200);
    // Without etcd there is no lease: this replica no longer leads.
    eventually("bootes_controller_leader drops to 0", || async {
        let r = http_get(addr, "127.0.0.1", "/metrics").await?;
        ensure!(
            value(&r.body, "bootes_controller_leader") == Some(0.0),
            "{}",
            r.body
        );
        Ok(())
    })
    .await?;
    controller.process().check_running()?;
    Ok(())
}

/// Liveness is the process, not its dependencies: with no etcd anywhere,
/// `/livez` is 200 and `/metrics` already has its series (at 0), while
/// `/readyz` says what it waits for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn livez_and_metrics_answer_before_etcd_is_reachable() -> Result<()> {
    let m = ManifestDir::new()?;
    write_objects(&m, &["a"]);
    let dir = test_dir("controller-no-etcd")?;
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    // A port nothing listens on.
    let etcd = format!("http://127.0.0.1:{}", free_port());
    let mut cmd = Command::new(find_bootes_bin(
        "bootes-controller",
        "BOOTES_CONTROLLER_BIN",
    )?);
    cmd.args([
        "run",
        "--etcd-endpoints",
        &etcd,
        "--metrics-addr",
        &addr.to_string(),
    ])
    .arg("--manifests")
    .arg(m.path());
    let mut process = ChildProcess::spawn("bootes-controller", &mut cmd, dir.path())?;

    eventually("/livez answers 200 without etcd", || {
        let running = process.check_running();
        async move {
            running?;
            let r = http_get(addr, "127.0.0.1", "/livez").await?;
            ensure!(r.status == 200, "{} {}", r.status, r.body);
            Ok(())
        }
    })
    .await?;
    let ready = http_get(addr, "127.0.0.1", "/readyz").await?;
    assert_eq!(ready.status, 503, "{}", ready.body);
    assert!(ready.body.contains("connecting to etcd"), "{}", ready.body);
    let metrics = http_get(addr, "127.0.0.1", "/metrics").await?;
    assert_eq!(metrics.status, 200);
    for series in [
        "bootes_controller_leader",
        "bootes_controller_nodes",
        r#"bootes_controller_objects{kind="Cluster",reason="Valid"}"#,
        r#"bootes_controller_etcd_write_ops_total{op="put"}"#,
    ] {
        assert_eq!(
            value(&metrics.body, series),
            Some(0.0),
            "{series} in\n{}",
            metrics.body
        );
    }
    process.check_running()?;
    Ok(())
}
