//! `bootes-controller inspect` against a real etcd holding what the real
//! controller (directory mode) wrote, and what a real xds-server recorded
//! about a real Envoy.
//!
//! Needs etcd, Envoy and `bootes-xds-server` (`cargo build --workspace --bins`,
//! as scripts/test.sh does); see tests/src/harness/mod.rs.

use std::process::Output;

use anyhow::{ensure, Context, Result};
use bootes_tests::harness::{
    cluster_eds, endpoint, eventually, expect_routed, free_port, listener_http, pod, route,
    Controller, Envoy, Etcd, ManifestDir, Stack, Upstream, VirtualHost,
};
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_bootes-controller");
const PREFIX: &str = "/inspect-test/";

async fn inspect(etcd: &str, args: &[&str]) -> Output {
    tokio::process::Command::new(BIN)
        .arg("inspect")
        .args(args)
        .arg("--etcd-endpoints")
        .arg(etcd)
        .env_remove("RUST_LOG")
        .env_remove("BOOTES_ETCD_PREFIX")
        .output()
        .await
        .expect("the binary runs")
}

/// Runs `inspect ARGS -o json` and parses its output; fails on a non-zero exit.
async fn inspect_json(etcd: &str, args: &[&str]) -> Result<Value> {
    let mut all = args.to_vec();
    all.extend(["-o", "json"]);
    let out = inspect(etcd, &all).await;
    ensure!(
        out.status.success(),
        "inspect {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .with_context(|| format!("inspect {args:?} -o json is not JSON"))
}

/// PEM framing (Bootes checks it) around markers the test looks for.
const PUBLIC_CHAIN: &str =
    "-----BEGIN CERTIFICATE-----\nComment: PUBLIC-CHAIN\nMIIBnTCC\n-----END CERTIFICATE-----\n";
const PRIVATE_KEY: &str =
    "-----BEGIN PRIVATE KEY-----\nComment: PRIVATE-KEY-MATERIAL\nMIGHAgEA\n-----END PRIVATE KEY-----\n";

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

const WEB: &[(&str, &str)] = &[("app", "web")];
const API: &[(&str, &str)] = &[("app", "api")];

/// Namespace shop: web-0 and web-1 (app=web) and api-0 (app=api). Every pod
/// gets the cluster `shared`; web pods also get `web` (with its endpoints), a
/// listener, a route and a Secret with a private key.
fn write_shop(m: &ManifestDir) {
    m.write_docs(
        "pods.yaml",
        &[
            pod("shop", "web-0", WEB),
            pod("shop", "web-1", WEB),
            pod("shop", "api-0", API),
        ],
    )
    .unwrap();
    m.write_docs(
        "objects.yaml",
        &[
            cluster_eds("shop", "shared", "shared", &[]),
            cluster_eds("shop", "web", "web", WEB),
            endpoint(
                "shop",
                "web",
                "web",
                &["10.1.2.3:8080".parse().unwrap()],
                WEB,
            ),
            listener_http("shop", "http", "http", 18080, "main", WEB),
            route(
                "shop",
                "main",
                "main",
                &[VirtualHost::new("all", &["*"], &[("/", "web")])],
                WEB,
            ),
            json!({
                "apiVersion": "bootes.io/v1", "kind": "Secret",
                "metadata": {"name": "tls", "namespace": "shop"},
                "spec": {"workloadSelector": {"labels": {"app": "web"}}, "config": {
                    "name": "tls",
                    "tls_certificate": {
                        "certificate_chain": {"inline_string": PUBLIC_CHAIN},
                        "private_key": {"inline_string": PRIVATE_KEY}
                    }
                }}
            }),
        ],
    )
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inspect_decodes_what_the_controller_wrote() -> Result<()> {
    let m = ManifestDir::new()?;
    write_shop(&m);
    let etcd = Etcd::start().await?;
    let controller =
        Controller::start_with_args(&etcd, m.path(), &["--etcd-prefix", PREFIX]).await?;
    let url = etcd.endpoint();
    let p = ["--etcd-prefix", PREFIX];

    let groups = eventually("two groups written", || async {
        let v = inspect_json(&url, &[&["groups"][..], &p].concat()).await?;
        ensure!(v["groups"].as_array().map(Vec::len) == Some(2), "{v:#}");
        Ok(v)
    })
    .await?;
    assert_eq!(groups["errors"], json!([]));
    let web_group = groups["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["nodes"] == json!(["web-0.shop", "web-1.shop"]))
        .unwrap_or_else(|| panic!("no group with both web pods: {groups:#}"));
    assert_eq!(web_group["namespace"], "shop");
    let objects: Vec<String> = web_group["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            format!(
                "{} {}",
                o["kind"].as_str().unwrap(),
                o["name"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        objects,
        [
            "Cluster shared",
            "Cluster web",
            "Endpoint web",
            "Listener http",
            "Route main",
            "Secret tls"
        ]
    );

    // nodes: sorted, with their group and resource counts.
    let nodes = inspect_json(&url, &[&["nodes"][..], &p].concat()).await?;
    let ids: Vec<&str> = nodes["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["node"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["api-0.shop", "web-0.shop", "web-1.shop"]);
    assert_eq!(nodes["nodes"][1]["snapshot"], web_group["snapshot"]);
    assert_eq!(nodes["nodes"][1]["pod"], "web-0");
    assert_eq!(
        nodes["nodes"][1]["resources"],
        json!({"CDS": 2, "EDS": 1, "SDS": 1, "LDS": 1, "RDS": 1})
    );
    assert_eq!(nodes["nodes"][0]["resources"], json!({"CDS": 1}));
    // Nothing connected: no xds-server has a record of them.
    assert_eq!(nodes["nodes"][1]["state"], "disconnected");

    // snapshot: every resource decoded, with its source object; Anys too.
    let snap = inspect_json(&url, &[&["snapshot", "web-0.shop"][..], &p].concat()).await?;
    assert_eq!(snap["snapshot"], web_group["snapshot"]);
    let by_type = |t: &str| -> Value {
        snap["types"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["type"] == t)
            .unwrap_or_else(|| panic!("no {t} in {snap:#}"))
            .clone()
    };
    let cds = by_type("CDS");
    let names: Vec<&str> = cds["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["shared", "web"]);
    let web = &cds["resources"][1];
    assert_eq!(web["source"]["kind"], "Cluster");
    assert_eq!(web["source"]["name"], "web");
    assert_eq!(web["source"]["namespace"], "shop");
    assert_eq!(web["config"]["type"], "EDS");
    assert_eq!(web["config"]["connect_timeout"], "1s");
    assert!(!web["version"].as_str().unwrap().is_empty());
    let eds = by_type("EDS");
    assert_eq!(
        eds["resources"][0]["config"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
            ["socket_address"]["port_value"],
        8080
    );
    let hcm =
        &by_type("LDS")["resources"][0]["config"]["filter_chains"][0]["filters"][0]["typed_config"];
    assert_eq!(hcm["rds"]["route_config_name"], "main");
    assert_eq!(
        hcm["http_filters"][0]["typed_config"]["@type"],
        "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
    );
    let tls = &by_type("SDS")["resources"][0]["config"]["tls_certificate"];
    assert_eq!(tls["private_key"]["inline_string"], "[redacted]");
    assert_eq!(tls["certificate_chain"]["inline_string"], PUBLIC_CHAIN);

    // Secret material only with --show-secrets, in any format.
    let yaml = inspect(&url, &[&["snapshot", "web-0.shop"][..], &p].concat()).await;
    assert!(yaml.status.success(), "{}", stderr(&yaml));
    let yaml_text = String::from_utf8(yaml.stdout).unwrap();
    assert!(!yaml_text.contains("PRIVATE-KEY-MATERIAL"));
    let from_yaml: Value = serde_yaml::from_str(&yaml_text).expect("default output is YAML");
    assert_eq!(from_yaml, snap, "YAML and JSON say the same");
    let shown = inspect_json(
        &url,
        &[&["snapshot", "web-0.shop", "--show-secrets"][..], &p].concat(),
    )
    .await?;
    assert!(shown.to_string().contains("PRIVATE-KEY-MATERIAL"));

    // diff: the web pod has what the api pod lacks; identical pods are identical.
    let d = inspect_json(
        &url,
        &[&["diff", "web-0.shop", "api-0.shop"][..], &p].concat(),
    )
    .await?;
    assert_eq!(d["identical"], false);
    let cds = d["types"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["type"] == "CDS")
        .unwrap();
    assert_eq!(cds["only_in_a"][0]["name"], "web");
    assert_eq!(cds["only_in_b"], json!([]));
    assert_eq!(cds["different"], json!([]));
    let same = inspect_json(
        &url,
        &[&["diff", "web-0.shop", "web-1.shop"][..], &p].concat(),
    )
    .await?;
    assert_eq!(same["identical"], true);

    // Another prefix sees nothing.
    let empty = inspect_json(&url, &["nodes"]).await?;
    assert_eq!(empty, json!({"nodes": [], "errors": []}));

    // A damaged snapshot (empty: it would decode as an empty snapshot) is
    // noticed and repaired by the running controller.
    let mut client = etcd.client().await?;
    let snapshot_key = etcd.keys(&format!("{PREFIX}snapshots/")).await?[0].clone();
    let good = client.get(snapshot_key.clone(), None).await?.kvs()[0]
        .value()
        .to_vec();
    client.put(snapshot_key.clone(), Vec::new(), None).await?;
    eventually("the controller repaired the damaged snapshot", || {
        let (mut client, key, good) = (client.clone(), snapshot_key.clone(), good.clone());
        async move {
            let now = client.get(key, None).await?;
            ensure!(now.kvs()[0].value() == good.as_slice(), "not yet");
            Ok(())
        }
    })
    .await?;

    // Garbage in etcd: reported per key, never a crash. (The controller
    // would repair it too: stop it first.)
    drop(controller);
    client
        .put(
            format!("{PREFIX}nodes/junk-0.shop"),
            vec![0xffu8, 0xff, 0x01],
            None,
        )
        .await?;
    client
        .put(
            format!("{PREFIX}snapshots/shop/junk"),
            b"\x0a\xff garbage".to_vec(),
            None,
        )
        .await?;
    let out = inspect(&url, &[&["nodes", "-o", "json"][..], &p].concat()).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout)?;
    let bad: Vec<&str> = v["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["key"].as_str().unwrap())
        .collect();
    assert_eq!(
        bad,
        [
            format!("{PREFIX}nodes/junk-0.shop"),
            format!("{PREFIX}snapshots/shop/junk")
        ]
    );
    assert_eq!(
        v["nodes"].as_array().unwrap().len(),
        3,
        "the good nodes still show"
    );
    assert!(stderr(&out).contains(&format!("{PREFIX}nodes/junk-0.shop")));
    let out = inspect(&url, &[&["snapshot", "junk-0.shop"][..], &p].concat()).await;
    assert!(!out.status.success());
    assert!(stderr(&out).contains("junk-0.shop"), "{}", stderr(&out));

    // Errors of the command itself: exit 1 with a message.
    let out = inspect(&url, &[&["snapshot", "nobody.shop"][..], &p].concat()).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("nobody.shop"), "{}", stderr(&out));
    Ok(())
}

/// A cluster whose TLS context names a secret of the Envoy's bootstrap that
/// the bootstrap does not have: valid for Bootes, which cannot know the
/// bootstrap, NACKed by Envoy ("Unknown static secret").
fn bad_static_cluster() -> Value {
    json!({"apiVersion": "bootes.io/v1", "kind": "Cluster",
           "metadata": {"name": "static-bad", "namespace": "demo"},
           "spec": {"config": {"name": "static-bad", "type": "STATIC", "connect_timeout": "1s",
               "load_assignment": {"cluster_name": "static-bad", "endpoints": [{"lb_endpoints": [
                   {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 80}}}}]}]},
               "transport_socket": {"name": "envoy.transport_sockets.tls", "typed_config": {
                   "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
                   "common_tls_context": {"tls_certificate_sds_secret_configs": [{"name": "no-such-secret"}]}}}}}})
}

fn node<'a>(v: &'a Value, id: &str) -> Result<&'a Value> {
    v["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|n| n["node"] == id)
        .with_context(|| format!("no node {id} in {v:#}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inspect_nodes_shows_what_envoy_acked_and_nacked() -> Result<()> {
    let up = Upstream::start("upstream-a").await?;
    let port = free_port();
    let edge = &[("app", "edge")];
    let m = ManifestDir::new()?;
    m.write_docs("pods.yaml", &[pod("demo", "envoy-0", edge)])?;
    m.write_docs(
        "routing.yaml",
        &[
            listener_http("demo", "l", "l", port, "r", edge),
            route(
                "demo",
                "r",
                "r",
                &[VirtualHost::new("all", &["*"], &[("/", "a")])],
                edge,
            ),
            cluster_eds("demo", "a", "a", edge),
            endpoint("demo", "a", "a", &[up.addr()], edge),
        ],
    )?;
    let stack = Stack::start(&m, 1).await?;
    let _envoy = Envoy::start("envoy-0.demo", &stack.xds_addrs()).await?;
    expect_routed(port, "example.com", "/", "upstream-a").await?;
    let url = stack.etcd.endpoint();

    eventually(
        "inspect nodes: envoy-0.demo synced on every type",
        || async {
            let v = inspect_json(&url, &["nodes"]).await?;
            let n = node(&v, "envoy-0.demo")?;
            ensure!(n["state"] == "synced", "{n:#}");
            let types: Vec<(&str, &str)> = n["xds"][0]["types"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|t| (t["type"].as_str().unwrap(), t["state"].as_str().unwrap()))
                .collect();
            ensure!(
                types
                    == [
                        ("CDS", "synced"),
                        ("EDS", "synced"),
                        ("LDS", "synced"),
                        ("RDS", "synced")
                    ],
                "{n:#}"
            );
            ensure!(n["xds"][0]["replica"]
                .as_str()
                .is_some_and(|r| !r.is_empty()));
            Ok(())
        },
    )
    .await?;

    m.write_docs("bad.yaml", &[bad_static_cluster()])?;
    eventually(
        "inspect nodes: the cluster NACK with Envoy's message",
        || async {
            let v = inspect_json(&url, &["nodes"]).await?;
            let n = node(&v, "envoy-0.demo")?;
            ensure!(n["state"] == "nacked", "{n:#}");
            let cds = n["xds"][0]["types"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|t| t["type"] == "CDS")
                .context("no CDS")?;
            ensure!(cds["state"] == "nacked", "{cds:#}");
            let detail = cds["nack"]["detail"].as_str().unwrap_or_default();
            ensure!(detail.contains("Unknown static secret"), "{cds:#}");
            ensure!(
                cds["nack"]["resources"]
                    .as_array()
                    .is_some_and(|r| r.contains(&json!("static-bad"))),
                "{cds:#}"
            );
            Ok(())
        },
    )
    .await?;
    Ok(())
}
