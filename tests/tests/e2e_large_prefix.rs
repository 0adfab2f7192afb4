//! Far more under the prefix than one etcd reply may carry by default
//! (4 MiB): every reader lists it in pages (issue 11). 100 MiB of snapshots
//! (2,048 groups of 50 KiB, one node each; `BOOTES_LARGE_PREFIX_MIB`
//! changes the size):
//!
//! * a fresh xds-server loads them, becomes ready and serves every node its
//!   own group;
//! * `inspect nodes`, `groups` and `snapshot` read them;
//! * a compaction in the middle of a fresh xds-server's list (held between
//!   two pages by the test hook of `bootes_etcd::list`) makes it list again,
//!   and it serves what was written meanwhile;
//! * a controller starting on them reads them all, writes, and writes an
//!   edit.

use std::time::Instant;

use anyhow::{ensure, Context, Result};
use bootes_proto::envoy::core::Node;
use bootes_proto::{store, version, Keys, ResourceType};
use bootes_tests::harness::{
    cluster_eds, eventually, find_bootes_bin, metric, pod, test_dir, Controller, Etcd, ManifestDir,
    XdsServer,
};
use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use futures::{StreamExt, TryStreamExt};
use prost::Message;
use serde_json::Value;

/// Each group's one resource.
const RESOURCE_BYTES: usize = 50 * 1024;
/// Groups per etcd transaction: 25 × 50 KiB stays under etcd's 1.5 MiB
/// request limit.
const GROUPS_PER_TXN: usize = 25;
/// `bootes_etcd::list::HOLD_FILE_ENV` (this crate does not depend on
/// bootes-etcd).
const HOLD_FILE_ENV: &str = "BOOTES_TEST_HOLD_LIST_FILE";

fn groups() -> usize {
    let mib: usize = std::env::var("BOOTES_LARGE_PREFIX_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    (mib * 1024 * 1024).div_ceil(RESOURCE_BYTES)
}

fn node_id(group: usize) -> String {
    format!("n{group}.big")
}

/// Group `g`'s one cluster, `c`, at version `g<g>`: valid (inspect decodes
/// it), 50 KiB, and different in every group.
fn resource(group: usize) -> store::Resource {
    let filler = format!("{group:08}").repeat(RESOURCE_BYTES / 8);
    let cluster = Cluster {
        name: "c".into(),
        alt_stat_name: filler,
        ..Default::default()
    };
    store::Resource {
        name: "c".into(),
        version: format!("g{group}"),
        value: cluster.encode_to_vec(),
        ..Default::default()
    }
}

fn snapshot(group: usize) -> Vec<u8> {
    store::Snapshot {
        namespace: "big".into(),
        group: format!("g{group}"),
        version: format!("v{group}"),
        types: vec![store::TypeResources {
            type_url: ResourceType::Cluster.type_url().into(),
            version: format!("t{group}"),
            resources: vec![resource(group)],
        }],
        objects: Vec::new(),
    }
    .encode_to_vec()
}

fn binding(group: usize) -> Vec<u8> {
    store::NodeBinding {
        snapshot: format!("big/g{group}"),
        namespace: "big".into(),
        ..Default::default()
    }
    .encode_to_vec()
}

/// Writes every group and its node binding: transactions of
/// [`GROUPS_PER_TXN`] groups, several at once.
async fn load(etcd: &Etcd, keys: &Keys, groups: usize) -> Result<()> {
    let client = etcd.client().await?;
    let chunks: Vec<Vec<usize>> = (0..groups)
        .collect::<Vec<_>>()
        .chunks(GROUPS_PER_TXN)
        .map(<[usize]>::to_vec)
        .collect();
    futures::stream::iter(chunks)
        .map(|chunk| {
            let mut client = client.clone();
            async move {
                let ops: Vec<etcd_client::TxnOp> = chunk
                    .iter()
                    .flat_map(|&g| {
                        [
                            etcd_client::TxnOp::put(
                                keys.snapshot(&format!("big/g{g}")),
                                snapshot(g),
                                None,
                            ),
                            etcd_client::TxnOp::put(keys.node(&node_id(g)), binding(g), None),
                        ]
                    })
                    .collect();
                client
                    .txn(etcd_client::Txn::new().and_then(ops))
                    .await
                    .context("loading etcd")
            }
        })
        .buffer_unordered(4)
        .try_collect::<Vec<_>>()
        .await?;
    Ok(())
}

/// A DiscoveryRequest with only what this client sends.
#[derive(Clone, PartialEq, Message)]
struct Request {
    #[prost(message, optional, tag = "2")]
    node: Option<Node>,
    #[prost(string, tag = "4")]
    type_url: String,
}

/// A DiscoveryResponse with its resources left encoded.
#[derive(Clone, PartialEq, Message)]
struct Response {
    #[prost(string, tag = "1")]
    version_info: String,
    #[prost(bytes = "bytes", repeated, tag = "2")]
    resources: Vec<bytes::Bytes>,
}

const ADS: &str =
    "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources";

/// Asks for `group`'s node's clusters over ADS; checks it gets its own group's.
async fn served(channel: tonic::transport::Channel, group: usize) -> Result<()> {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await?;
    let request = Request {
        node: Some(Node {
            id: node_id(group),
            ..Default::default()
        }),
        type_url: ResourceType::Cluster.type_url().into(),
    };
    // The stream stays open until the response is read.
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tx.send(request).await?;
    let mut responses = grpc
        .streaming(
            tonic::Request::new(tokio_stream::wrappers::ReceiverStream::new(rx)),
            http::uri::PathAndQuery::from_static(ADS),
            tonic_prost::ProstCodec::<Request, Response>::default(),
        )
        .await?
        .into_inner();
    let response = responses
        .message()
        .await?
        .with_context(|| format!("{}: stream ended", node_id(group)))?;
    let own = resource(group);
    let want = version::of_set([(own.name.as_str(), own.version.as_str())]);
    ensure!(
        response.version_info == want && response.resources.len() == 1,
        "{}: got version {} with {} resources, want its group's {want}",
        node_id(group),
        response.version_info,
        response.resources.len()
    );
    drop(tx);
    Ok(())
}

/// Every node gets its own group from `xds`.
async fn serves_every_node(xds: &XdsServer, groups: usize) -> Result<()> {
    let mut channels = Vec::new();
    for _ in 0..8 {
        channels.push(
            tonic::transport::Endpoint::from_shared(format!("http://{}", xds.addr()))?
                .connect()
                .await?,
        );
    }
    futures::stream::iter(0..groups)
        .map(|g| served(channels[g % channels.len()].clone(), g))
        .buffer_unordered(64)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}

/// The snapshots in etcd: key and value.
async fn snapshots_in(
    client: &etcd_client::Client,
    keys: &Keys,
) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let got = client
        .clone()
        .get(
            keys.snapshots(),
            Some(etcd_client::GetOptions::new().with_prefix()),
        )
        .await?;
    Ok(got
        .kvs()
        .iter()
        .map(|kv| (kv.key().to_vec(), kv.value().to_vec()))
        .collect())
}

fn inspect(etcd: &Etcd, args: &[&str]) -> Result<Value> {
    let bin = find_bootes_bin("bootes-controller", "BOOTES_CONTROLLER_BIN")?;
    let out = std::process::Command::new(&bin)
        .arg("inspect")
        .args(args)
        .args(["-o", "json", "--etcd-endpoints"])
        .arg(etcd.endpoint())
        .env_remove("BOOTES_ETCD_PREFIX")
        .output()?;
    ensure!(
        out.status.success(),
        "inspect {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(serde_json::from_slice(&out.stdout)?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_mib_under_the_prefix_is_listed_by_every_reader() {
    let groups = groups();
    let etcd = Etcd::start().await.unwrap();
    let keys = Keys::new(bootes_proto::DEFAULT_PREFIX);
    let t = Instant::now();
    load(&etcd, &keys, groups).await.unwrap();
    eprintln!(
        "loaded {groups} groups ({} MiB) in {:?}",
        (groups * RESOURCE_BYTES) >> 20,
        t.elapsed()
    );
    // etcd's database holds it (once its backend has committed).
    eventually("etcd's database holds it all", || {
        let etcd = &etcd;
        async move {
            let db_size = etcd.client().await?.status().await?.db_size();
            ensure!(
                db_size >= (groups * RESOURCE_BYTES) as i64,
                "{db_size} bytes"
            );
            Ok(())
        }
    })
    .await
    .unwrap();

    // A fresh xds-server lists it all and becomes ready (the harness waits
    // for /readyz), then serves every node its own group.
    let t = Instant::now();
    let xds = XdsServer::start(&etcd, "large").await.unwrap();
    eprintln!("a fresh xds-server was ready in {:?}", t.elapsed());
    assert_eq!(
        metric(xds.admin_addr(), "bootes_xds_snapshots")
            .await
            .unwrap(),
        groups as f64
    );
    serves_every_node(&xds, groups).await.unwrap();

    // `inspect` reads it.
    let nodes = inspect(&etcd, &["nodes"]).unwrap();
    let nodes = nodes["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), groups);
    assert!(nodes.iter().all(|n| n["snapshot_version"].is_string()));
    let listed = inspect(&etcd, &["groups"]).unwrap();
    assert_eq!(
        listed["groups"].as_array().map(Vec::len),
        Some(groups),
        "{:.300}",
        listed.to_string()
    );
    let last = node_id(groups - 1);
    let snap = inspect(&etcd, &["snapshot", &last]).unwrap();
    assert!(
        snap.to_string().contains(&format!("{:08}", groups - 1)),
        "inspect snapshot {last} shows its group's cluster"
    );

    // A compaction while a fresh replica is between two pages of its list:
    // the revision it lists at is gone, so it lists again, and serves what
    // was written meanwhile.
    let hold_dir = test_dir("hold-list").unwrap();
    let hold = hold_dir.path().join("hold");
    std::fs::write(&hold, "").unwrap();
    let endpoint = etcd.endpoint();
    let hold_path = hold.to_string_lossy().into_owned();
    let relisting = tokio::spawn(async move {
        XdsServer::start_with_env(&endpoint, "relist", &[], &[(HOLD_FILE_ENV, &hold_path)]).await
    });
    let listed_at: i64 = eventually("the fresh replica's list held after a page", || {
        let hold = hold.clone();
        async move {
            let text = std::fs::read_to_string(&hold)?;
            Ok(text.trim().parse::<i64>()?)
        }
    })
    .await
    .unwrap();
    let mut client = etcd.client().await.unwrap();
    let late = client
        .put(
            keys.snapshot(&format!("big/g{groups}")),
            snapshot(groups),
            None,
        )
        .await
        .unwrap();
    let now = late.header().unwrap().revision();
    assert!(now > listed_at);
    client
        .compact(
            now,
            Some(etcd_client::CompactionOptions::new().with_physical()),
        )
        .await
        .unwrap();
    std::fs::remove_file(&hold).unwrap();
    let mut relisted = relisting.await.unwrap().unwrap();
    assert_eq!(
        metric(relisted.admin_addr(), "bootes_xds_snapshots")
            .await
            .unwrap(),
        (groups + 1) as f64,
        "the relist includes the group written during the first list"
    );
    let log = std::fs::read_to_string(relisted.process().unwrap().stderr_path()).unwrap();
    assert!(
        log.contains("revision compacted during a paged list; listing again"),
        "the list started over"
    );
    drop(relisted);

    // A controller starting on it reads it all before writing: its
    // manifests want one group of their own and none of this, so it writes
    // that group and deletes the rest; then it writes an edit. The
    // xds-server follows.
    let edge: &[(&str, &str)] = &[("app", "edge")];
    let manifests = ManifestDir::new().unwrap();
    manifests
        .write_docs(
            "edge.yaml",
            &[
                pod("big", "edge-0", edge),
                cluster_eds("big", "cluster-a", "cluster-a", edge),
            ],
        )
        .unwrap();
    let _controller = Controller::start(&etcd, manifests.path()).await.unwrap();
    let own = eventually("the controller replaced what it does not want", || {
        let etcd = &etcd;
        let prefix = keys.snapshots();
        async move {
            let left = etcd.keys(&prefix).await?;
            ensure!(left.len() == 1, "{} snapshots in etcd", left.len());
            Ok(left[0].clone())
        }
    })
    .await
    .unwrap();
    let before = snapshots_in(&client, &keys).await.unwrap();
    assert_eq!(before.len(), 1, "{own}");
    manifests
        .write_docs(
            "edge.yaml",
            &[
                pod("big", "edge-0", edge),
                cluster_eds("big", "cluster-a", "cluster-a", edge),
                cluster_eds("big", "cluster-b", "cluster-b", edge),
            ],
        )
        .unwrap();
    eventually("the controller wrote the edit", || {
        let (client, keys, before) = (&client, &keys, &before);
        async move {
            let now = snapshots_in(client, keys).await?;
            ensure!(now.len() == 1 && now != *before, "not yet");
            Ok(())
        }
    })
    .await
    .unwrap();
    eventually("the xds-server saw the deletions", || async {
        let n = metric(xds.admin_addr(), "bootes_xds_snapshots").await?;
        ensure!(n == 1.0, "{n} snapshots");
        Ok(())
    })
    .await
    .unwrap();
}
