//! The kinds beyond the original four reach a real Envoy: a Runtime layer
//! over RTDS, and a Secret over SDS that a cluster's TLS context names.

use std::process::Command;

use anyhow::{ensure, Context, Result};
use bootes_tests::harness::{
    cluster_eds, endpoint, eventually, pod, test_dir, Envoy, EnvoyOptions, ManifestDir, Stack,
};
use serde_json::{json, Value};

fn object(kind: &str, name: &str, config: Value) -> Value {
    json!({"apiVersion": "bootes.io/v1", "kind": kind,
           "metadata": {"name": name, "namespace": "demo"},
           "spec": {"config": config}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runtime_layers_arrive_over_rtds_and_follow_edits() -> Result<()> {
    let m = ManifestDir::new()?;
    let runtime = |value: &str| {
        object(
            "Runtime",
            "flags",
            json!({"name": "bootes-flags", "layer": {"demo.feature": value}}),
        )
    };
    m.write_docs(
        "runtime.yaml",
        &[pod("demo", "envoy-0", &[]), runtime("on")],
    )?;
    let stack = Stack::start(&m, 1).await?;
    let mut options = EnvoyOptions::new("envoy-0.demo", &stack.xds_addrs());
    options.bootstrap_extra.insert(
        "layered_runtime".into(),
        json!({"layers": [{"name": "bootes", "rtds_layer": {
            "name": "bootes-flags",
            "rtds_config": {"ads": {}, "resource_api_version": "V3"}}}]}),
    );
    let envoy = Envoy::start_with(options).await?;
    let value_is = |want: &'static str| {
        let envoy = &envoy;
        async move {
            eventually(&format!("runtime demo.feature = {want}"), || async {
                let r = envoy.admin_get("/runtime").await?;
                let body: Value = serde_json::from_str(r.text())?;
                let got = &body["entries"]["demo.feature"]["final_value"];
                ensure!(got == want, "demo.feature: {got}");
                Ok(())
            })
            .await
        }
    };
    value_is("on").await?;
    m.write_docs(
        "runtime.yaml",
        &[pod("demo", "envoy-0", &[]), runtime("off")],
    )?;
    value_is("off").await?;
    Ok(())
}

/// A self-signed CA certificate in PEM, made with openssl.
fn ca_pem() -> Result<String> {
    let dir = test_dir("ca")?;
    let status = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=bootes-test-ca",
        ])
        .arg("-keyout")
        .arg(dir.path().join("ca.key"))
        .arg("-out")
        .arg(dir.path().join("ca.pem"))
        .output()
        .context("running openssl")?;
    ensure!(
        status.status.success(),
        "openssl: {}",
        String::from_utf8_lossy(&status.stderr)
    );
    Ok(std::fs::read_to_string(dir.path().join("ca.pem"))?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_named_by_a_cluster_arrives_over_sds() -> Result<()> {
    let m = ManifestDir::new()?;
    let mut cluster = cluster_eds("demo", "tls-upstream", "tls-upstream", &[]);
    cluster["spec"]["config"]["transport_socket"] = json!({
        "name": "envoy.transport_sockets.tls",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
            "common_tls_context": {"validation_context_sds_secret_config": {
                "name": "upstream-ca",
                "sds_config": {"ads": {}, "resource_api_version": "V3"}}}
        }
    });
    let secret = object(
        "Secret",
        "upstream-ca",
        json!({"name": "upstream-ca", "validation_context": {"trusted_ca": {"inline_string": ca_pem()?}}}),
    );
    let endpoints = endpoint(
        "demo",
        "tls-upstream-endpoints",
        "tls-upstream",
        &["127.0.0.1:9".parse()?],
        &[],
    );
    m.write_docs(
        "tls.yaml",
        &[pod("demo", "envoy-0", &[]), cluster, endpoints, secret],
    )?;
    let stack = Stack::start(&m, 1).await?;
    let envoy = Envoy::start("envoy-0.demo", &stack.xds_addrs()).await?;
    eventually("Envoy has the secret from SDS", || async {
        let dump = envoy.config_dump().await?;
        let secrets: Vec<&Value> = dump["configs"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|c| c["@type"] == "type.googleapis.com/envoy.admin.v3.SecretsConfigDump")
            .flat_map(|c| c["dynamic_active_secrets"].as_array().into_iter().flatten())
            .collect();
        ensure!(
            secrets.iter().any(|s| s["name"] == "upstream-ca"),
            "dynamic secrets: {secrets:?}"
        );
        Ok(())
    })
    .await?;
    // And the cluster that needed it warmed (it waits for its secret).
    envoy.wait_for_cluster("tls-upstream").await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_filter_config_arrives_over_ecds() -> Result<()> {
    // The listener's router filter is not configured inline: Envoy discovers
    // it (ECDS) from an ExtensionConfig object, and the listener only serves
    // once it has it.
    let upstream = bootes_tests::harness::Upstream::start("upstream-a").await?;
    let port = bootes_tests::harness::free_port();
    let m = ManifestDir::new()?;
    let mut listener =
        bootes_tests::harness::listener_http("demo", "listener", "listener", port, "routes", &[]);
    listener["spec"]["config"]["filter_chains"][0]["filters"][0]["typed_config"]["http_filters"] = json!([{
        "name": "router-from-ecds",
        "config_discovery": {
            "config_source": {"ads": {}, "resource_api_version": "V3"},
            "type_urls": ["type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"]
        }
    }]);
    let router = object(
        "ExtensionConfig",
        "router",
        json!({"name": "router-from-ecds", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}),
    );
    m.write_docs(
        "all.yaml",
        &[
            pod("demo", "envoy-0", &[]),
            listener,
            bootes_tests::harness::route(
                "demo",
                "routes",
                "routes",
                &[bootes_tests::harness::VirtualHost::new(
                    "all",
                    &["*"],
                    &[("/", "cluster-a")],
                )],
                &[],
            ),
            cluster_eds("demo", "cluster-a", "cluster-a", &[]),
            endpoint("demo", "endpoint-a", "cluster-a", &[upstream.addr()], &[]),
            router,
        ],
    )?;
    let stack = Stack::start(&m, 1).await?;
    let envoy = Envoy::start("envoy-0.demo", &stack.xds_addrs()).await?;
    bootes_tests::harness::expect_routed(port, "example.com", "/", "upstream-a").await?;
    let dump = envoy.config_dump().await?;
    let ecds: Vec<&Value> = dump["configs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["@type"] == "type.googleapis.com/envoy.admin.v3.EcdsConfigDump")
        .flat_map(|c| c["ecds_filters"].as_array().into_iter().flatten())
        .collect();
    ensure!(
        ecds.iter()
            .any(|f| f["ecds_filter"]["name"] == "router-from-ecds"),
        "ECDS filters: {ecds:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scoped_routes_arrive_over_srds_and_select_route_configs() -> Result<()> {
    use bootes_tests::harness::{free_port, listener_http, route, Upstream, VirtualHost};
    let a = Upstream::start("upstream-a").await?;
    let b = Upstream::start("upstream-b").await?;
    let port = free_port();
    let m = ManifestDir::new()?;
    let mut listener = listener_http("demo", "listener", "listener", port, "unused", &[]);
    let hcm = &mut listener["spec"]["config"]["filter_chains"][0]["filters"][0]["typed_config"];
    hcm.as_object_mut().context("typed_config")?.remove("rds");
    hcm["scoped_routes"] = json!({
        "name": "tenants",
        "scope_key_builder": {"fragments": [{"header_value_extractor": {
            "name": "x-tenant", "element_separator": ",", "index": 0}}]},
        "rds_config_source": {"ads": {}, "resource_api_version": "V3"},
        "scoped_rds": {"scoped_rds_config_source": {"ads": {}, "resource_api_version": "V3"}}
    });
    let scope = |tenant: &str| {
        object(
            "ScopedRoute",
            &format!("scope-{tenant}"),
            json!({"name": format!("scope-{tenant}"),
                   "route_configuration_name": format!("routes-{tenant}"),
                   "key": {"fragments": [{"string_key": tenant}]}}),
        )
    };
    let mut docs = vec![
        pod("demo", "envoy-0", &[]),
        listener,
        scope("a"),
        scope("b"),
    ];
    for (tenant, upstream) in [("a", a.addr()), ("b", b.addr())] {
        let cluster = format!("cluster-{tenant}");
        docs.push(route(
            "demo",
            &format!("routes-{tenant}"),
            &format!("routes-{tenant}"),
            &[VirtualHost::new("all", &["*"], &[("/", cluster.as_str())])],
            &[],
        ));
        docs.push(cluster_eds("demo", &cluster, &cluster, &[]));
        docs.push(endpoint(
            "demo",
            &format!("endpoint-{tenant}"),
            &cluster,
            &[upstream],
            &[],
        ));
    }
    m.write_docs("all.yaml", &docs)?;
    let stack = Stack::start(&m, 1).await?;
    let _envoy = Envoy::start("envoy-0.demo", &stack.xds_addrs()).await?;
    // The harness sends Host only; the scope comes from x-tenant, so use a
    // raw request per tenant.
    for (tenant, want) in [("a", "upstream-a"), ("b", "upstream-b")] {
        eventually(&format!("tenant {tenant} is routed to {want}"), || async {
            let r = get_with_header(port, "x-tenant", tenant).await?;
            ensure!(r == want, "got {r:?}");
            Ok(())
        })
        .await?;
    }
    Ok(())
}

/// GET / on 127.0.0.1:`port` with one extra header; the response body.
async fn get_with_header(port: u16, name: &str, value: &str) -> Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    let req = format!(
        "GET / HTTP/1.1\r\nHost: example.com\r\n{name}: {value}\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await?;
    let text = String::from_utf8_lossy(&buf);
    let (head, body) = text.split_once("\r\n\r\n").context("no HTTP response")?;
    ensure!(head.starts_with("HTTP/1.1 200"), "{head}");
    Ok(body.trim().to_string())
}
