//! `bootes-controller run --envoy-validate PATH` (issue 24, item 4) with the
//! real etcd, the real controller in directory mode and the real Envoy: a
//! config Bootes accepts and Envoy rejects is not written (etcd keeps the
//! group's previous snapshot), the object whose resource Envoy rejects says
//! why and the group's other objects do not; a good edit afterwards goes
//! through; without the flag the same config is written.

use anyhow::{ensure, Result};
use bootes_tests::harness::{eventually, find_envoy, pod, Controller, Etcd, ManifestDir};
use serde_json::{json, Value};

const NODE: &str = "envoy-0.demo";

fn object(kind: &str, name: &str, config: Value) -> Value {
    json!({"apiVersion": "bootes.io/v1", "kind": kind,
        "metadata": {"name": name, "namespace": "demo"}, "spec": {"config": config}})
}

/// Pod, a cluster and a route adding header `x-a: <value>`. Envoy knows no
/// `%FOO%` command; Bootes checks a format's structure only.
fn manifests(value: &str, cluster_timeout: &str) -> Vec<Value> {
    vec![
        pod("demo", "envoy-0", &[]),
        object(
            "Cluster",
            "web",
            json!({"name": "web", "connect_timeout": cluster_timeout, "type": "STATIC"}),
        ),
        object(
            "Route",
            "r",
            json!({"name": "r", "virtual_hosts": [{"name": "v", "domains": ["*"], "routes": [{
                "match": {"prefix": "/"}, "route": {"cluster": "web"},
                "request_headers_to_add": [{"header": {"key": "x-a", "value": value}}]}]}]}),
        ),
    ]
}

/// Waits until etcd holds, for the node, a snapshot whose route carries
/// `value` and whose cluster has `timeout`.
async fn expect_written(etcd: &Etcd, value: &str, timeout: &str) -> Result<()> {
    let seconds: i64 = timeout.trim_end_matches('s').parse()?;
    eventually(
        &format!("etcd holds x-a: {value}, timeout {timeout}"),
        || async {
            let snapshot = etcd.node_snapshot(NODE).await?;
            let snapshot = snapshot.ok_or_else(|| anyhow::anyhow!("no snapshot yet"))?;
            let route = find(&snapshot, "RouteConfiguration")?;
            ensure!(
                route.windows(value.len()).any(|w| w == value.as_bytes()),
                "route without {value:?}"
            );
            // connect_timeout { seconds } as encoded: field 4, then field 1.
            let cluster = find(&snapshot, "Cluster")?;
            ensure!(
                cluster
                    .windows(4)
                    .any(|w| w == [0x22, 0x02, 0x08, seconds as u8]),
                "cluster without timeout {timeout}"
            );
            Ok(())
        },
    )
    .await
}

fn find(snapshot: &bootes_proto::store::Snapshot, ty: &str) -> Result<Vec<u8>> {
    snapshot
        .types
        .iter()
        .find(|t| t.type_url.ends_with(&format!(".{ty}")))
        .and_then(|t| t.resources.first())
        .map(|r| r.value.to_vec())
        .ok_or_else(|| anyhow::anyhow!("no {ty} in the snapshot"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_in_the_loop_keeps_what_envoy_rejects_out_of_etcd() -> Result<()> {
    let envoy = find_envoy()?;
    let etcd = Etcd::start().await?;
    let m = ManifestDir::new()?;
    m.write_docs("objects.yaml", &manifests("v1", "1s"))?;
    let mut controller = Controller::start_with_args(
        &etcd,
        m.path(),
        &[
            "--envoy-validate",
            envoy.to_str().expect("a UTF-8 path"),
            "--envoy-validate-timeout",
            "60s",
        ],
    )
    .await?;
    expect_written(&etcd, "v1", "1s").await?;

    // The route goes bad, and the cluster changes in the same edit.
    m.write_docs("objects.yaml", &manifests("%FOO%", "2s"))?;
    let log_path = controller.process().stderr_path().to_path_buf();
    let line = eventually("the route's status carries Envoy's reason", || async {
        let log = std::fs::read_to_string(&log_path)?;
        let line = log
            .lines()
            .find(|l| l.contains("not accepted") && l.contains("Route demo/r"))
            .unwrap_or_default()
            .to_string();
        ensure!(!line.is_empty(), "not yet");
        Ok(line)
    })
    .await?;
    ensure!(
        line.contains("EnvoyRejected")
            && line.contains("Envoy (--envoy-validate) rejects it")
            && line.contains("Not supported field in StreamInfo: FOO")
            && line.contains("keep their previous snapshot"),
        "{line}"
    );
    // Logged after the sync that withheld the group: etcd has the old one.
    expect_written(&etcd, "v1", "1s").await?;
    let log = std::fs::read_to_string(&log_path)?;
    ensure!(
        !log.lines()
            .any(|l| l.contains("not accepted") && l.contains("Cluster demo/web")),
        "the group's other object is not blamed:\n{log}"
    );

    // A good edit goes through.
    m.write_docs("objects.yaml", &manifests("v2", "2s"))?;
    expect_written(&etcd, "v2", "2s").await?;
    eventually("the route is accepted again", || async {
        let log = std::fs::read_to_string(&log_path)?;
        let after = log.split_once(line.as_str()).map_or("", |(_, a)| a);
        let accepted = after.lines().any(|l| {
            l.contains("object=Route demo/r")
                && l.contains("accepted")
                && !l.contains("not accepted")
        });
        ensure!(accepted, "not yet");
        Ok(())
    })
    .await?;
    drop(controller);

    // Without the flag the same bad config is written.
    let etcd = Etcd::start().await?;
    let m = ManifestDir::new()?;
    m.write_docs("objects.yaml", &manifests("%FOO%", "2s"))?;
    let _controller = Controller::start(&etcd, m.path()).await?;
    expect_written(&etcd, "%FOO%", "2s").await
}
