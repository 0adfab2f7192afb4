//! More under the prefix than one etcd reply may carry by default (4 MiB):
//! every reader lists it in pages (issue 11). 10 MiB of snapshots: a fresh
//! xds-server loads them and becomes ready, `inspect nodes` reads them, and a
//! controller starting on them reads them and writes.

use anyhow::{ensure, Result};
use bootes_proto::{store, Keys, ResourceType};
use bootes_tests::harness::{
    eventually, find_bootes_bin, http_get, Controller, Etcd, ManifestDir, XdsServer,
};
use prost::Message;
use serde_json::Value;

const GROUPS: usize = 200;
/// 200 × 50 KiB = 10 MiB.
const RESOURCE_BYTES: usize = 50 * 1024;

fn snapshot(group: usize) -> Vec<u8> {
    store::Snapshot {
        namespace: "big".into(),
        group: format!("g{group}"),
        version: format!("v{group}"),
        types: vec![store::TypeResources {
            type_url: ResourceType::Cluster.type_url().into(),
            version: format!("t{group}"),
            resources: vec![store::Resource {
                name: "c".into(),
                version: "1".into(),
                value: vec![b'x'; RESOURCE_BYTES],
                ..Default::default()
            }],
        }],
        objects: Vec::new(),
    }
    .encode_to_vec()
}

async fn metric(addr: std::net::SocketAddr, name: &str) -> Result<f64> {
    let r = http_get(addr, "127.0.0.1", "/metrics").await?;
    r.body
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no metric {name}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_mib_under_the_prefix_is_listed_by_every_reader() {
    let etcd = Etcd::start().await.unwrap();
    let mut client = etcd.client().await.unwrap();
    let keys = Keys::new(bootes_proto::keys::DEFAULT_PREFIX);
    for g in 0..GROUPS {
        let snapshot_ref = format!("big/g{g}");
        client
            .put(keys.snapshot(&snapshot_ref), snapshot(g), None)
            .await
            .unwrap();
        let binding = store::NodeBinding {
            snapshot: snapshot_ref,
            namespace: "big".into(),
            ..Default::default()
        };
        client
            .put(
                keys.node(&format!("n{g}.big")),
                binding.encode_to_vec(),
                None,
            )
            .await
            .unwrap();
    }

    // A fresh xds-server lists it all and becomes ready (the harness waits
    // for /readyz).
    let xds = XdsServer::start(&etcd, "large").await.unwrap();
    assert_eq!(
        metric(xds.admin_addr(), "bootes_xds_snapshots")
            .await
            .unwrap(),
        GROUPS as f64
    );

    // `inspect nodes` reads it.
    let bin = find_bootes_bin("bootes-controller", "BOOTES_CONTROLLER_BIN").unwrap();
    let out = tokio::process::Command::new(&bin)
        .args(["inspect", "nodes", "-o", "json", "--etcd-endpoints"])
        .arg(etcd.endpoint())
        .env_remove("BOOTES_ETCD_PREFIX")
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let nodes: Value = serde_json::from_slice(&out.stdout).unwrap();
    let nodes = nodes["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), GROUPS);
    assert!(nodes.iter().all(|n| n["snapshot_version"].is_string()));

    // A controller reads it before writing (its manifests want none of it,
    // so it deletes it all), becomes ready, and the xds-server follows.
    let manifests = ManifestDir::new().unwrap();
    let _controller = Controller::start(&etcd, manifests.path()).await.unwrap();
    eventually(
        "the controller removed what its manifests do not want",
        || {
            let etcd = &etcd;
            async move {
                let left = etcd.keys(&keys_prefix()).await?;
                ensure!(left.is_empty(), "{} keys left", left.len());
                Ok(())
            }
        },
    )
    .await
    .unwrap();
    eventually("the xds-server saw the deletions", || async {
        let n = metric(xds.admin_addr(), "bootes_xds_snapshots").await?;
        ensure!(n == 0.0, "{n} snapshots");
        Ok(())
    })
    .await
    .unwrap();
}

fn keys_prefix() -> String {
    Keys::new(bootes_proto::keys::DEFAULT_PREFIX).snapshots()
}
