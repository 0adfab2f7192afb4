//! `bootes-controller validate`, run as users run it: exit codes, one line per
//! problem, stdin, directories, cross-reference warnings.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_bootes-controller");

fn validate(args: &[&str], stdin: Option<&str>) -> Output {
    validate_with(&[], args, stdin)
}

fn validate_with(flags: &[&str], args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(BIN)
        .arg("validate")
        .args(flags)
        .args(args.iter().flat_map(|a| ["-f", a]))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env_remove("RUST_LOG")
        .spawn()
        .expect("the binary runs");
    {
        let mut input = child.stdin.take().unwrap();
        if let Some(text) = stdin {
            input.write_all(text.as_bytes()).unwrap();
        }
    }
    child.wait_with_output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn lines<'a>(out: &'a str, prefix: &str) -> Vec<&'a str> {
    out.lines().filter(|l| l.starts_with(prefix)).collect()
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

const GOOD_CLUSTER: &str = "
apiVersion: bootes.io/v1
kind: Cluster
metadata: {name: web, namespace: shop}
spec:
  config:
    name: web
    connect_timeout: 1s
    type: STRICT_DNS
    load_assignment:
      cluster_name: web
      endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: web.shop, port_value: 80}}}}]}]
";

const BAD_CLUSTER: &str = "
apiVersion: bootes.io/v1
kind: Cluster
metadata: {name: db, namespace: shop}
spec:
  config:
    name: db
    conect_timeout: 1s
    type: STRICT_DNS
";

fn route(namespace: &str, name: &str, cluster: &str, selector: &str) -> String {
    format!(
        "
apiVersion: bootes.io/v1
kind: Route
metadata: {{name: {name}, namespace: {namespace}}}
spec:
  {selector}
  config:
    name: {name}
    virtual_hosts:
      - name: all
        domains: ['*']
        routes:
          - match: {{prefix: /}}
            route:
              weighted_clusters:
                clusters:
                  - {{name: web, weight: 1}}
                  - {{name: {cluster}, weight: 1}}
"
    )
}

#[test]
fn valid_manifests_exit_zero() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(dir.path(), "c.yaml", GOOD_CLUSTER);
    let o = validate(&[&f], None);
    let out = stdout(&o);
    assert!(o.status.success(), "{out}");
    assert!(lines(&out, "error:").is_empty(), "{out}");
    assert_eq!(
        out.lines().last(),
        Some("1 objects checked, 0 errors, 0 warnings")
    );
}

#[test]
fn the_shipped_examples_are_valid() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for dir in [
        root.join("../shared/seed-examples"),
        root.join("manifests/examples"),
    ] {
        if !dir.is_dir() {
            continue;
        }
        let o = validate(&[dir.to_str().unwrap()], None);
        assert!(o.status.success(), "{}: {}", dir.display(), stdout(&o));
    }
}

#[test]
fn each_problem_is_one_line_naming_file_object_path_and_rule_and_fails_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "{GOOD_CLUSTER}---{BAD_CLUSTER}---
apiVersion: bootes.io/v1
kind: Endpoint
metadata: {{name: web-eps, namespace: shop}}
spec:
  config:
    cluster_name: web
    endpoints:
      - lb_endpoints:
          - endpoint: {{address: {{socket_address: {{address: 10.0.0.1, port_value: 70000}}}}}}
"
    );
    let f = write(dir.path(), "all.yaml", &text);
    let o = validate(&[&f], None);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    let errors = lines(&out, "error:");
    assert_eq!(
        errors,
        vec![
            format!("error: {f}: Cluster shop/db: spec.config.conect_timeout: unknown field \"conect_timeout\" in envoy.config.cluster.v3.Cluster (did you mean \"connect_timeout\"?)"),
            format!("error: {f}: Endpoint shop/web-eps: spec.config.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.port_value: must be <= 65535, is 70000 (uint32.lte = 65535)"),
        ],
        "{out}"
    );
    // The good object around them was checked too.
    assert_eq!(
        out.lines().last(),
        Some("3 objects checked, 2 errors, 0 warnings")
    );
}

#[test]
fn stdin_is_read_for_dash() {
    let o = validate(&["-"], Some(GOOD_CLUSTER));
    assert!(o.status.success(), "{}", stdout(&o));
    let o = validate(&["-"], Some(BAD_CLUSTER));
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        out.contains("error: -: Cluster shop/db: spec.config.conect_timeout: unknown field"),
        "{out}"
    );
}

#[test]
fn directories_are_searched_recursively_for_yaml_yml_and_json_skipping_hidden_entries() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a/b/c.yml", GOOD_CLUSTER);
    write(
        dir.path(),
        "r.json",
        r#"{"apiVersion": "bootes.io/v1", "kind": "Route", "metadata": {"name": "r", "namespace": "shop"},
            "spec": {"config": {"name": "r", "virtual_hosts": [{"name": "v", "domains": ["*"],
              "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "web"}}]}]}}}"#,
    );
    let bad = write(dir.path(), "z/bad.yaml", BAD_CLUSTER);
    // Never read: hidden, or not a manifest by its extension.
    write(dir.path(), ".git/bad.yaml", BAD_CLUSTER);
    write(dir.path(), ".hidden.yaml", BAD_CLUSTER);
    write(dir.path(), "notes.txt", "not yaml: [");
    let o = validate(&[dir.path().to_str().unwrap()], None);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    let errors = lines(&out, "error:");
    assert_eq!(errors.len(), 1, "{out}");
    assert!(
        errors[0].starts_with(&format!("error: {bad}: Cluster shop/db:")),
        "{out}"
    );
    assert_eq!(
        out.lines().last(),
        Some("3 objects checked, 1 errors, 0 warnings")
    );
}

#[test]
fn several_paths_and_unreadable_or_unparsable_files_are_reported_without_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let good = write(dir.path(), "good.yaml", GOOD_CLUSTER);
    let broken = write(dir.path(), "broken.yaml", "kind: [unclosed");
    let missing = dir.path().join("missing.yaml").display().to_string();
    let o = validate(&[&missing, &broken, &good], None);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    let errors = lines(&out, "error:");
    assert_eq!(errors.len(), 2, "{out}");
    assert!(
        errors[0].starts_with(&format!("error: reading {missing}")),
        "{out}"
    );
    assert!(
        errors[1].starts_with(&format!("error: {broken}: document 1: invalid YAML")),
        "{out}"
    );
    assert_eq!(
        out.lines().last(),
        Some("1 objects checked, 2 errors, 0 warnings")
    );
}

#[test]
fn unresolved_references_are_warnings_that_do_not_fail_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let listener = "
apiVersion: bootes.io/v1
kind: Listener
metadata: {name: edge, namespace: shop}
spec:
  config:
    name: edge
    address: {socket_address: {address: 0.0.0.0, port_value: 8080}}
    filter_chains:
      - filters:
          - name: hcm
            typed_config:
              '@type': type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
              stat_prefix: edge
              rds: {route_config_name: nowhere, config_source: {ads: {}}}
              http_filters:
                - name: router
                  typed_config: {'@type': type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
";
    let eds = "
apiVersion: bootes.io/v1
kind: Cluster
metadata: {name: api, namespace: shop}
spec:
  config:
    name: api
    connect_timeout: 1s
    type: EDS
    eds_cluster_config: {service_name: api-svc, eds_config: {ads: {}}}
";
    let f = write(
        dir.path(),
        "shop.yaml",
        &format!(
            "{GOOD_CLUSTER}---{}---{listener}---{eds}",
            route("shop", "r", "gone", "")
        ),
    );
    // The same route in another namespace: "web" exists only in shop.
    let other = write(dir.path(), "other.yaml", &route("other", "r", "web", ""));
    let o = validate(&[&f, &other], None);
    let out = stdout(&o);
    assert!(o.status.success(), "{out}");
    let warnings = lines(&out, "warning:");
    assert_eq!(
        warnings,
        vec![
            format!("warning: {f}: Route shop/r: spec.config.virtual_hosts[0].routes[0].route.weighted_clusters.clusters[1].name: weighted route to cluster \"gone\": no Cluster object in namespace shop provides it"),
            format!("warning: {f}: Listener shop/edge: spec.config.filter_chains[0].filters[0].typed_config.rds.route_config_name: RDS route configuration \"nowhere\": no Route object in namespace shop provides it"),
            format!("warning: {f}: Cluster shop/api: spec.config.eds_cluster_config.service_name: EDS cluster needs endpoints for \"api-svc\": no Endpoint object in namespace shop provides it"),
            format!("warning: {other}: Route other/r: spec.config.virtual_hosts[0].routes[0].route.weighted_clusters.clusters[0].name: weighted route to cluster \"web\": no Cluster object in namespace other provides it (referred to in 1 more place)"),
                    ],
        "{out}"
    );
    assert!(lines(&out, "error:").is_empty(), "{out}");
    assert_eq!(
        out.lines().last(),
        Some("5 objects checked, 0 errors, 4 warnings")
    );
}

#[test]
fn warnings_follow_workload_selectors_and_pods() {
    let dir = tempfile::tempdir().unwrap();
    let canary_cluster = GOOD_CLUSTER.replace(
        "spec:\n",
        "spec:\n  workloadSelector: {labels: {track: canary}}\n",
    );
    let f = write(
        dir.path(),
        "sel.yaml",
        &format!(
            "{canary_cluster}---{}",
            route(
                "shop",
                "r",
                "web",
                "workloadSelector: {labels: {app: shop}}"
            )
        ),
    );
    // Without pods: the route reaches app=shop pods, the cluster only canary ones.
    let o = validate(&[&f], None);
    let out = stdout(&o);
    assert!(o.status.success(), "{out}");
    let warnings = lines(&out, "warning:");
    assert_eq!(warnings.len(), 1, "{out}");
    // One imagined pod per selector: the route's app=shop pod has no cluster.
    assert!(
        warnings[0]
            .ends_with("no Cluster object provides it to 1 of the 1 nodes this object reaches: [app=shop].shop (referred to in 1 more place)"),
        "{out}"
    );
    // With pods: the same set, judged per Envoy.
    let pods = "
apiVersion: v1
kind: Pod
metadata: {name: shop-0, namespace: shop, labels: {app: shop, track: canary}}
---
apiVersion: v1
kind: Pod
metadata: {name: shop-1, namespace: shop, labels: {app: shop}}
";
    let p = write(dir.path(), "pods.yaml", pods);
    let o = validate(&[&f, &p], None);
    let out = stdout(&o);
    let warnings = lines(&out, "warning:");
    assert_eq!(warnings.len(), 1, "{out}");
    assert!(
        warnings[0].ends_with(
            "no Cluster object provides it to 1 of the 2 nodes this object reaches: shop-1.shop (referred to in 1 more place)"
        ),
        "{out}"
    );
    // Every pod canary: nothing is missing.
    let p = write(
        dir.path(),
        "pods.yaml",
        &pods.replace(
            "labels: {app: shop}}",
            "labels: {app: shop, track: canary}}",
        ),
    );
    let o = validate(&[&f, &p], None);
    let out = stdout(&o);
    assert!(lines(&out, "warning:").is_empty(), "{out}");
}

#[test]
fn documents_that_are_not_valid_objects_are_errors_naming_the_object() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "docs.yaml",
        &format!(
            "apiVersion: bootes.io/v1
kind: Clustr
metadata: {{name: typo, namespace: shop}}
spec: {{config: {{}}}}
---
apiVersion: bootes.io/v1
kind: Route
metadata: {{name: r, namespace: shop}}
spec: {{workloadSelectr: {{}}, config: {{name: r}}}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: ignored}}
---{GOOD_CLUSTER}"
        ),
    );
    let o = validate(&[&f], None);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    let errors = lines(&out, "error:");
    assert_eq!(errors.len(), 2, "{out}");
    assert!(
        errors[0].starts_with(&format!(
            "error: {f}: document 1: Clustr shop/typo: kind: unknown kind \"Clustr\""
        )),
        "{out}"
    );
    assert!(
        errors[1].starts_with(&format!(
            "error: {f}: document 2: Route shop/r: spec: unknown field `workloadSelectr`"
        )),
        "{out}"
    );
    assert_eq!(
        out.lines().last(),
        Some("1 objects checked, 2 errors, 0 warnings")
    );
}

#[test]
fn endpoints_from_a_service_are_checked_with_the_slices_given() {
    let dir = tempfile::tempdir().unwrap();
    let endpoint = |name: &str, spec: &str| {
        format!(
            "apiVersion: bootes.io/v1\nkind: Endpoint\nmetadata: {{name: {name}, namespace: shop}}\nspec: {spec}\n---\n"
        )
    };
    let objects = write(
        dir.path(),
        "endpoints.yaml",
        &[
            endpoint(
                "web",
                "{service: {name: web, port: http}, config: {cluster_name: web}}",
            ),
            endpoint(
                "both",
                "{service: {name: web, port: 80}, config: {cluster_name: both, endpoints: []}}",
            ),
            endpoint("neither", "{config: {cluster_name: neither}}"),
            endpoint(
                "port",
                "{service: {name: web, port: 0}, config: {cluster_name: port}}",
            ),
        ]
        .concat(),
    );
    // In another file: a slice of Service web, one of its addresses not an IP.
    let slices = write(
        dir.path(),
        "slices.yaml",
        "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n\
         metadata: {name: web-1, namespace: shop, labels: {kubernetes.io/service-name: web}}\n\
         addressType: IPv4\nports: [{name: http, port: 8080}]\n\
         endpoints: [{addresses: [10.0.0.1]}, {addresses: [web-0.shop]}]\n---\n\
         apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n\
         metadata: {name: nameless, namespace: shop}\naddressType: IPv4\n",
    );
    let o = validate(&[&objects, &slices], None);
    let out = stdout(&o);
    assert!(!o.status.success(), "{out}");
    let errors = lines(&out, "error:");
    assert_eq!(errors.len(), 4, "{out}");
    assert!(
        errors.iter().any(|l| l.contains("Endpoint shop/both")
            && l.contains("spec.service")
            && l.contains("not both")),
        "{out}"
    );
    assert!(
        errors.iter().any(|l| l.contains("Endpoint shop/neither")
            && l.contains("spec.config.endpoints")
            && l.contains("spec.service")),
        "{out}"
    );
    assert!(
        errors
            .iter()
            .any(|l| l.contains("Endpoint shop/port") && l.contains("spec.service.port")),
        "{out}"
    );
    assert!(
        errors
            .iter()
            .any(|l| l.contains("EndpointSlice shop/nameless")
                && l.contains("kubernetes.io/service-name")),
        "{out}"
    );
    // The slice's hostname in an IPv4 slice is not an error of the object,
    // but it is named (issue 18): a warning naming the slice and the field.
    assert!(
        !errors.iter().any(|l| l.contains("Endpoint shop/web")),
        "{out}"
    );
    let warnings = lines(&out, "warning:");
    assert_eq!(warnings.len(), 1, "{out}");
    assert!(
        warnings[0].contains("Endpoint shop/web")
            && warnings[0].contains("EndpointSlice shop/web-1")
            && warnings[0].contains("endpoints[1].addresses[0]"),
        "{out}"
    );
    assert_eq!(
        out.lines().last(),
        Some("4 objects checked, 4 errors, 1 warnings")
    );
}

#[test]
fn an_object_too_large_for_etcd_is_an_error_naming_its_size_and_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let blob = "x".repeat(1_500_000);
    let big =
        format!("{GOOD_CLUSTER}    metadata: {{filter_metadata: {{blob: {{b: \"{blob}\"}}}}}}\n");
    let file = write(dir.path(), "big.yaml", &big);
    let o = validate(&[&file], None);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "{out:.300}");
    let errors = lines(&out, "error: ");
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains("Cluster shop/web: spec.config: too large")
            && errors[0].contains("(1400000 bytes)"),
        "{:.400}",
        errors[0]
    );
}

#[test]
fn conflicts_are_reported_as_run_reports_them_with_pods_or_imagined_ones() {
    let dir = tempfile::tempdir().unwrap();
    let same = |name: &str, selector: &str| {
        GOOD_CLUSTER
            .replace("{name: web,", &format!("{{name: {name},"))
            .replace("spec:\n", &format!("spec:\n  {selector}\n"))
    };
    let f = write(
        dir.path(),
        "c.yaml",
        &format!(
            "{}---{}",
            same("a", ""),
            same("b", "workloadSelector: {labels: {app: shop}}")
        ),
    );
    // No pods: the imagined app=shop pod receives both.
    let o = validate(&[&f], None);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert_eq!(
        lines(&out, "error:"),
        [format!("error: {f}: Cluster shop/b: spec.config.name: CDS \"web\" is already provided by Cluster shop/a (older objects win)")],
        "{out}"
    );
    // Pods that only one of them reaches: no conflict, as in `run`.
    let pods = write(
        dir.path(),
        "pods.yaml",
        "
apiVersion: v1
kind: Pod
metadata: {name: shop-0, namespace: shop, labels: {app: other}}
",
    );
    let o = validate(&[&f, &pods], None);
    let out = stdout(&o);
    assert!(o.status.success(), "{out}");
    // A pod both reach: the conflict again.
    let pods = write(
        dir.path(),
        "pods.yaml",
        "
apiVersion: v1
kind: Pod
metadata: {name: shop-0, namespace: shop, labels: {app: shop}}
",
    );
    let o = validate(&[&f, &pods], None);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert_eq!(lines(&out, "error:").len(), 1, "{out}");
}

#[test]
fn an_inline_route_config_naming_a_cluster_no_object_provides_is_an_error_unless_bootstrap_declares_it(
) {
    let dir = tempfile::tempdir().unwrap();
    let listener = |validate_clusters: &str| {
        format!(
            "
apiVersion: bootes.io/v1
kind: Listener
metadata: {{name: edge, namespace: shop}}
spec:
  config:
    name: edge
    address: {{socket_address: {{address: 0.0.0.0, port_value: 8080}}}}
    filter_chains:
      - filters:
          - name: hcm
            typed_config:
              '@type': type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
              stat_prefix: edge
              route_config:
                {validate_clusters}
                virtual_hosts:
                  - name: all
                    domains: ['*']
                    routes: [{{match: {{prefix: /}}, route: {{cluster: stats}}}}]
              http_filters:
                - name: router
                  typed_config: {{'@type': type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}
"
        )
    };
    let f = write(dir.path(), "l.yaml", &listener(""));
    let o = validate(&[&f], None);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    let errors = lines(&out, "error:");
    assert_eq!(errors.len(), 1, "{out}");
    assert!(
        errors[0].starts_with(&format!("error: {f}: Listener shop/edge: spec.config.filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0].routes[0].route.cluster: route to cluster \"stats\": no Cluster object in namespace shop provides it; Envoy rejects the listener there")),
        "{out}"
    );
    for flags in [
        &["--bootstrap-clusters", "stats"][..],
        &["--bootstrap-clusters", "x,shop/stats"],
    ] {
        let o = validate_with(flags, &[&f], None);
        let out = stdout(&o);
        assert!(o.status.success(), "{flags:?}: {out}");
        assert_eq!(
            out.lines().last(),
            Some("1 objects checked, 0 errors, 0 warnings")
        );
    }
    // Declared for another namespace only: still an error.
    let o = validate_with(&["--bootstrap-clusters", "other/stats"], &[&f], None);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    // A malformed declaration is a usage error.
    let o = validate_with(&["--bootstrap-clusters", "a/b/c"], &[&f], None);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("NAMESPACE/NAME"));
    // validate_clusters: false: Envoy accepts it; a warning only.
    let f = write(dir.path(), "l.yaml", &listener("validate_clusters: false"));
    let o = validate(&[&f], None);
    let out = stdout(&o);
    assert!(o.status.success(), "{out}");
    assert_eq!(lines(&out, "warning:").len(), 1, "{out}");
}

#[test]
fn warning_rules_report_without_failing_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "s.yaml",
        "
apiVersion: bootes.io/v1
kind: Secret
metadata: {name: empty, namespace: shop}
spec:
  config: {name: empty}
",
    );
    let o = validate(&[&f], None);
    let out = stdout(&o);
    assert!(o.status.success(), "{out}");
    assert_eq!(
        lines(&out, "warning:"),
        [format!("warning: {f}: Secret shop/empty: spec.config.type: the secret has none of tls_certificate, session_ticket_keys, validation_context, generic_secret (Envoy: Secret type not implemented, in a bootstrap; over SDS it depends on what the subscriber expects)")],
        "{out}"
    );
}

#[test]
fn a_group_too_large_only_combined_is_an_error_on_the_objects_that_push_it_over() {
    let dir = tempfile::tempdir().unwrap();
    let blob = "x".repeat(600_000);
    let big = |name: &str| {
        format!("{GOOD_CLUSTER}    metadata: {{filter_metadata: {{blob: {{b: \"{blob}\"}}}}}}\n")
            .replace("web", name)
    };
    // Without timestamps, objects take their place by name: c is the one
    // that does not fit with a and b.
    let file = write(
        dir.path(),
        "big.yaml",
        &format!("{}---{}---{}", big("c"), big("a"), big("b")),
    );
    let o = validate(&[&file], None);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "{out:.300}");
    let errors = lines(&out, "error: ");
    assert_eq!(errors.len(), 1, "{:.600}", errors.join("\n"));
    assert!(
        errors[0].contains(
            "Cluster shop/c: spec.config: too large together with the other objects of its group"
        ) && errors[0].contains("e.g. [*].shop"),
        "{:.400}",
        errors[0]
    );
}
