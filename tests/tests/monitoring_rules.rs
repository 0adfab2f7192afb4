//! Issue 18: the alerts of `manifests/monitoring/` pass `promtool check
//! rules` and `promtool test rules`, every alert has unit tests, and the
//! dashboard is a Grafana dashboard whose every panel queries Prometheus.
//! The rules' one source is the PrometheusRule; its `spec` is the rules file.

use std::collections::BTreeSet;
use std::process::Command;

use bootes_tests::harness::{
    dashboard_exprs, find_promtool, metric_names_in, monitoring_dir, rule_exprs, test_dir,
    write_rules_file,
};

fn promtool(dir: &std::path::Path, args: &[&str]) -> String {
    let out = Command::new(find_promtool().unwrap())
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?} failed:\n{text}");
    text
}

#[test]
fn the_rules_pass_promtool_check_and_their_unit_tests() {
    let dir = test_dir("promtool").unwrap();
    write_rules_file(dir.path()).unwrap();
    std::fs::copy(
        monitoring_dir().join("alerts_test.yaml"),
        dir.path().join("alerts_test.yaml"),
    )
    .unwrap();
    let checked = promtool(dir.path(), &["check", "rules", "bootes-rules.yaml"]);
    assert!(checked.contains("SUCCESS"), "{checked}");
    let tested = promtool(dir.path(), &["test", "rules", "alerts_test.yaml"]);
    assert!(tested.contains("SUCCESS"), "{tested}");
}

#[test]
fn every_alert_has_a_unit_test_that_expects_it_to_fire() {
    let alerts: BTreeSet<String> = rule_exprs().unwrap().into_iter().map(|(a, _)| a).collect();
    for want in [
        "BootesNacksRising",
        "BootesReplicaNotReady",
        "BootesNoLeader",
        "BootesEtcdUnreachable",
        "BootesConvergenceSlow",
        "BootesObjectsNotProgrammed",
    ] {
        assert!(alerts.contains(want), "no alert {want} in {alerts:?}");
    }
    let text = std::fs::read_to_string(monitoring_dir().join("alerts_test.yaml")).unwrap();
    let tests: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    let mut firing = BTreeSet::new();
    let mut quiet = BTreeSet::new();
    for test in tests["tests"].as_sequence().unwrap() {
        for case in test["alert_rule_test"].as_sequence().into_iter().flatten() {
            let name = case["alertname"].as_str().unwrap().to_string();
            let fires = case["exp_alerts"]
                .as_sequence()
                .is_some_and(|a| !a.is_empty());
            if fires {
                firing.insert(name);
            } else {
                quiet.insert(name);
            }
        }
    }
    assert_eq!(firing, alerts, "alerts without a test that fires them");
    assert_eq!(quiet, alerts, "alerts without a test that they stay quiet");
}

#[test]
fn the_dashboard_covers_what_operators_watch() {
    let exprs = dashboard_exprs().unwrap();
    let titles: BTreeSet<&str> = exprs.iter().map(|(t, _)| t.as_str()).collect();
    let names: BTreeSet<String> = exprs.iter().flat_map(|(_, e)| metric_names_in(e)).collect();
    for (what, metric) in [
        ("streams per replica", "bootes_xds_connected_streams"),
        ("pushes by type", "bootes_xds_pushes_total"),
        ("NACKs by type", "bootes_xds_nacks_total"),
        (
            "convergence time",
            "bootes_controller_rollout_convergence_seconds_bucket",
        ),
        (
            "convergence time",
            "bootes_xds_ack_convergence_seconds_bucket",
        ),
        ("push latency", "bootes_xds_push_latency_seconds_bucket"),
        (
            "objects by Programmed",
            "bootes_controller_programmed_objects",
        ),
        ("objects by condition", "bootes_controller_objects"),
        (
            "reconcile latency",
            "bootes_controller_reconcile_duration_seconds_bucket",
        ),
        (
            "etcd write latency",
            "bootes_controller_etcd_write_duration_seconds_bucket",
        ),
        ("etcd errors", "bootes_controller_etcd_errors_total"),
        ("etcd errors", "bootes_xds_etcd_errors_total"),
        ("leader changes", "bootes_controller_leader_changes_total"),
        ("status-write backlog", "bootes_xds_status_backlog"),
    ] {
        assert!(
            names.contains(metric),
            "the dashboard does not show {what} ({metric}); it reads {names:?} in {titles:?}"
        );
    }
}

fn kustomize(dir: &std::path::Path) -> Vec<serde_yaml::Value> {
    let out = kube_standin::kubectl::kubectl(kube_standin::kubectl::KUSTOMIZE)
        .arg("kustomize")
        .arg(dir)
        .output()
        .expect("kubectl (scripts/install-tools.sh installs it)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "kubectl kustomize {}: {text}{}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .filter(|v: &serde_yaml::Value| !v.is_null())
        .collect()
}

#[test]
fn kustomize_renders_the_monitors_the_rules_and_the_dashboard_configmap() {
    let docs = kustomize(&monitoring_dir());
    let kinds: BTreeSet<(&str, &str)> = docs
        .iter()
        .map(|d| {
            (
                d["kind"].as_str().unwrap(),
                d["metadata"]["name"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        BTreeSet::from([
            ("ConfigMap", "bootes-grafana-dashboard"),
            ("PodMonitor", "bootes-controller"),
            ("PodMonitor", "bootes-xds-server"),
            ("PrometheusRule", "bootes"),
        ])
    );
    let configmap = docs.iter().find(|d| d["kind"] == "ConfigMap").unwrap();
    assert_eq!(configmap["metadata"]["labels"]["grafana_dashboard"], "1");
    let dashboard =
        std::fs::read_to_string(monitoring_dir().join("bootes-dashboard.json")).unwrap();
    assert_eq!(
        configmap["data"]["bootes-dashboard.json"].as_str().unwrap(),
        dashboard
    );

    // Each PodMonitor scrapes a port its Deployment's pods have, and names
    // the job as the alerts expect.
    let base = kustomize(&monitoring_dir().join(".."));
    for monitor in docs.iter().filter(|d| d["kind"] == "PodMonitor") {
        let app = monitor["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"]
            .as_str()
            .unwrap();
        assert_eq!(monitor["spec"]["jobLabel"], "app.kubernetes.io/name");
        let deployment = base
            .iter()
            .find(|d| d["kind"] == "Deployment" && d["metadata"]["name"] == app)
            .unwrap_or_else(|| panic!("no Deployment {app}"));
        let ports: BTreeSet<&str> = deployment["spec"]["template"]["spec"]["containers"][0]
            ["ports"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        let port = monitor["spec"]["podMetricsEndpoints"][0]["port"]
            .as_str()
            .unwrap();
        assert!(ports.contains(port), "{app} has no port {port}: {ports:?}");
    }
}
