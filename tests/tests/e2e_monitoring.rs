//! Issue 18, dashboards and alerts: a real Prometheus (Debian's) scrapes
//! both processes, with an Envoy connected so that the stream, push, ACK and
//! convergence series exist, and every metric that
//! `manifests/monitoring/`'s dashboard and alerts name is there; every
//! dashboard query and rule evaluates. And the metrics added for them
//! (etcd errors, leader changes, the status-write backlog) count what they
//! say while etcd is down.
//!
//! Needs `cargo build --bins` first, etcd, Envoy and Prometheus (see the harness).

use std::collections::BTreeSet;

use anyhow::{ensure, Context, Result};
use bootes_tests::harness::{
    dashboard_exprs, endpoint_a, eventually, metric, metric_names_in, pod, route_all_to_cluster_a,
    rule_exprs, test_dir, write_rules_file, Envoy, ManifestDir, Prometheus, Stack,
};

const NS: &str = "demo";

/// etcd, the controller and one xds-server with an Envoy's worth of
/// objects, and that Envoy connected (the directory must outlive them).
async fn stack_with_envoy() -> Result<(Stack, Envoy, ManifestDir)> {
    let m = ManifestDir::new()?;
    let mut docs = route_all_to_cluster_a(NS, bootes_tests::harness::free_port());
    docs.push(pod(NS, "envoy-0", &[]));
    m.write_docs("objects.yaml", &docs)?;
    m.write_docs(
        "endpoint.yaml",
        &[endpoint_a(NS, &["127.0.0.1:9".parse()?])],
    )?;
    let stack = Stack::start(&m, 1).await?;
    let envoy = Envoy::start("envoy-0.demo", &stack.xds_addrs()).await?;
    envoy.wait_for_listener("listener_1").await?;
    Ok((stack, envoy, m))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_every_metric_the_dashboard_and_alerts_name() {
    let (stack, _envoy, manifests) = stack_with_envoy().await.unwrap();
    // A change once the Envoy is connected: the xds-server times it from
    // its arrival to the Envoy's ACK (its first responses are no change).
    manifests
        .write_docs(
            "endpoint.yaml",
            &[endpoint_a(NS, &["127.0.0.1:10".parse().unwrap()])],
        )
        .unwrap();
    let xds = stack.xds[0].admin_addr();
    eventually(
        "the xds-server timed a change to the Envoy's ACK",
        || async {
            let n = metric(
                xds,
                r#"bootes_xds_ack_convergence_seconds_count{type="EDS"}"#,
            )
            .await?;
            ensure!(n >= 1.0, "{n}");
            Ok(())
        },
    )
    .await
    .unwrap();
    let rules_dir = test_dir("rules").unwrap();
    let rules = write_rules_file(rules_dir.path()).unwrap();
    let prometheus = Prometheus::start(
        &[
            ("bootes-controller", stack.controller.metrics_addr()),
            ("bootes-xds-server", stack.xds[0].admin_addr()),
        ],
        Some(&rules),
    )
    .await
    .unwrap();

    let dashboard = dashboard_exprs().unwrap();
    let alerts = rule_exprs().unwrap();
    let named: BTreeSet<String> = dashboard
        .iter()
        .chain(&alerts)
        .flat_map(|(_, expr)| metric_names_in(expr))
        .collect();
    assert!(named.len() > 12, "{named:?}");
    let missing = eventually(
        "Prometheus has every metric the dashboard and the alerts name",
        || async {
            let have = prometheus.metric_names().await?;
            let missing: Vec<&String> = named.iter().filter(|n| !have.contains(*n)).collect();
            ensure!(missing.is_empty(), "missing {missing:?}");
            Ok(missing.len())
        },
    )
    .await;
    if let Err(e) = missing {
        panic!("{e:#}");
    }

    // Both processes are scraped for real: the Envoy's stream is counted.
    eventually("Prometheus counts the Envoy's stream", || async {
        let r = prometheus
            .query("sum(bootes_xds_connected_streams{job=\"bootes-xds-server\"})")
            .await?;
        let value = r[0]["value"][1].as_str().context("no value")?.to_string();
        ensure!(value == "1", "{r}");
        Ok(())
    })
    .await
    .unwrap();

    // Every dashboard query is valid PromQL against these series
    // (Grafana's $__rate_interval is at least four scrape intervals).
    for (panel, expr) in &dashboard {
        let expr = expr.replace("$__rate_interval", "4s");
        prometheus
            .query(&expr)
            .await
            .unwrap_or_else(|e| panic!("panel {panel:?}: {expr}: {e:#}"));
    }
    // Every rule is loaded and evaluates without error.
    eventually("Prometheus evaluated every rule", || async {
        let groups = prometheus.api("rules", &[]).await?;
        let mut seen = BTreeSet::new();
        for group in groups["groups"].as_array().context("groups")? {
            for rule in group["rules"].as_array().context("rules")? {
                ensure!(
                    rule["health"] == "ok",
                    "rule {} is {}: {}",
                    rule["name"],
                    rule["health"],
                    rule["lastError"]
                );
                seen.insert(rule["name"].as_str().unwrap_or_default().to_string());
            }
        }
        let want: BTreeSet<String> = alerts.iter().map(|(a, _)| a.clone()).collect();
        ensure!(seen == want, "loaded {seen:?}, want {want:?}");
        Ok(())
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_errors_leader_changes_and_the_status_backlog_are_counted() {
    let (mut stack, _envoy, _manifests) = stack_with_envoy().await.unwrap();
    let controller = stack.controller.metrics_addr();
    let xds = stack.xds[0].admin_addr();
    let changes = "bootes_controller_leader_changes_total";
    eventually("the controller became the leader once", || async {
        ensure!(metric(controller, changes).await? == 1.0);
        ensure!(metric(controller, "bootes_controller_leader").await? == 1.0);
        Ok(())
    })
    .await
    .unwrap();
    for series in [
        r#"bootes_xds_etcd_errors_total{op="watch"}"#,
        r#"bootes_xds_etcd_errors_total{op="status"}"#,
        r#"bootes_controller_etcd_errors_total{op="watch"}"#,
    ] {
        let addr = if series.starts_with("bootes_xds") {
            xds
        } else {
            controller
        };
        assert_eq!(metric(addr, series).await.unwrap(), 0.0, "{series}");
    }
    // The Envoy's ACKs are written (after at most one write interval).
    eventually("the status backlog is empty", || async {
        let backlog = metric(xds, "bootes_xds_status_backlog").await?;
        ensure!(backlog == 0.0, "backlog {backlog}");
        Ok(())
    })
    .await
    .unwrap();

    // etcd goes away: both processes count their failures, the controller
    // loses its lease (a second change), and the Envoy's status record
    // waits to be written.
    stack.etcd.process().kill();
    eventually("etcd errors, the backlog and the lost leadership show", || async {
        let watch = metric(xds, r#"bootes_xds_etcd_errors_total{op="watch"}"#).await?;
        let status = metric(xds, r#"bootes_xds_etcd_errors_total{op="status"}"#).await?;
        let backlog = metric(xds, "bootes_xds_status_backlog").await?;
        let controller_watch =
            metric(controller, r#"bootes_controller_etcd_errors_total{op="watch"}"#).await?;
        let leader_changes = metric(controller, changes).await?;
        ensure!(
            watch >= 1.0
                && status >= 1.0
                && backlog == 1.0
                && controller_watch >= 1.0
                && leader_changes == 2.0,
            "xds watch errors {watch}, status errors {status}, backlog {backlog}; controller watch errors {controller_watch}, leader changes {leader_changes}"
        );
        Ok(())
    })
    .await
    .unwrap();

    // etcd is back: the record is written, the controller leads again.
    stack.etcd.restart().await.unwrap();
    eventually(
        "the backlog drains and the controller leads again",
        || async {
            let backlog = metric(xds, "bootes_xds_status_backlog").await?;
            let leader_changes = metric(controller, changes).await?;
            ensure!(
                backlog == 0.0 && leader_changes == 3.0,
                "backlog {backlog}, leader changes {leader_changes}"
            );
            Ok(())
        },
    )
    .await
    .unwrap();
}
