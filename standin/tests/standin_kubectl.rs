//! A real `kubectl` against the real `kube-standin` binary: CRDs, discovery through
//! categories and short names, client-side and server-side apply, label, merge and
//! JSON patches, the status subresource, delete, namespaces, pods and EndpointSlices.

use std::path::PathBuf;
use std::process::Output;

use kube_standin::client::StandinProcess;
use serde_json::Value;

fn testdata(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(name)
        .display()
        .to_string()
}

fn standin() -> StandinProcess {
    StandinProcess::start(env!("CARGO_BIN_EXE_kube-standin")).expect("start kube-standin")
}

fn run(s: &StandinProcess, args: &[&str]) -> Output {
    s.kubectl().args(args).output().expect("run kubectl")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Runs kubectl and requires success; returns stdout.
fn ok(s: &StandinProcess, args: &[&str]) -> String {
    let o = run(s, args);
    assert!(o.status.success(), "kubectl {args:?} failed: {}", text(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Runs kubectl and requires failure; returns stdout + stderr.
fn fails(s: &StandinProcess, args: &[&str]) -> String {
    let o = run(s, args);
    assert!(
        !o.status.success(),
        "kubectl {args:?} should fail: {}",
        text(&o)
    );
    text(&o)
}

fn json(s: &StandinProcess, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["-o", "json"]);
    serde_json::from_str(&ok(s, &all)).expect("kubectl -o json prints JSON")
}

#[test]
fn kubectl_manages_crds_and_bootes_objects() {
    let s = standin();
    let out = ok(&s, &["apply", "-f", &testdata("crd-clusters.yaml")]);
    assert!(
        out.contains("customresourcedefinition.apiextensions.k8s.io/clusters.bootes.io created"),
        "{out}"
    );
    let crd = json(&s, &["get", "crd", "clusters.bootes.io"]);
    let established = crd["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["type"] == "Established" && c["status"] == "True");
    assert!(established, "{crd}");
    let resources = ok(&s, &["api-resources", "--api-group", "bootes.io"]);
    assert!(
        resources.contains("clusters") && resources.contains("bc"),
        "{resources}"
    );

    ok(&s, &["create", "namespace", "foo"]);
    let out = ok(&s, &["apply", "-f", &testdata("cluster-foo.yaml")]);
    assert!(
        out.contains("cluster.bootes.io/example-cluster created"),
        "{out}"
    );
    let out = ok(&s, &["apply", "-f", &testdata("cluster-foo-v2.yaml")]);
    assert!(
        out.contains("cluster.bootes.io/example-cluster configured"),
        "{out}"
    );
    let out = ok(&s, &["apply", "-f", &testdata("cluster-foo-v2.yaml")]);
    assert!(out.contains("unchanged"), "{out}");

    let list = json(&s, &["get", "clusters.bootes.io", "-n", "foo"]);
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{list}");
    let c = &items[0];
    assert_eq!(c["spec"]["config"]["connect_timeout"], "2s");
    assert_eq!(c["metadata"]["generation"], 2);
    assert_eq!(c["metadata"]["namespace"], "foo");
    assert!(c["metadata"]["uid"].as_str().is_some_and(|u| u.len() == 36));

    // Category and short name.
    let table = ok(&s, &["get", "bootes", "-A"]);
    let header = table.lines().next().unwrap_or("");
    for col in ["NAMESPACE", "NAME", "ACCEPTED", "NODES", "AGE"] {
        assert!(header.contains(col), "{table}");
    }
    assert!(
        table.contains("foo") && table.contains("example-cluster"),
        "{table}"
    );
    assert!(ok(&s, &["get", "bc", "-n", "foo", "-o", "name"])
        .contains("cluster.bootes.io/example-cluster"));

    // Label, merge patch, JSON patch.
    ok(
        &s,
        &[
            "label",
            "-n",
            "foo",
            "clusters.bootes.io",
            "example-cluster",
            "tier=web",
        ],
    );
    let out = fails(
        &s,
        &["label", "-n", "foo", "bc", "example-cluster", "tier=db"],
    );
    assert!(out.contains("already has a value"), "{out}");
    ok(
        &s,
        &[
            "label",
            "-n",
            "foo",
            "bc",
            "example-cluster",
            "tier=db",
            "--overwrite",
        ],
    );
    ok(
        &s,
        &[
            "patch",
            "-n",
            "foo",
            "bc",
            "example-cluster",
            "--type",
            "merge",
            "-p",
            r#"{"spec":{"config":{"lb_policy":"ROUND_ROBIN"}}}"#,
        ],
    );
    ok(
        &s,
        &[
            "patch",
            "-n",
            "foo",
            "bc",
            "example-cluster",
            "--type",
            "json",
            "-p",
            r#"[{"op":"add","path":"/metadata/annotations/owner","value":"team-a"}]"#,
        ],
    );
    let c = json(&s, &["get", "bc", "-n", "foo", "example-cluster"]);
    assert_eq!(c["metadata"]["labels"]["tier"], "db");
    assert_eq!(c["metadata"]["labels"]["app"], "foo");
    assert_eq!(c["metadata"]["annotations"]["owner"], "team-a");
    assert_eq!(c["spec"]["config"]["lb_policy"], "ROUND_ROBIN");
    assert_eq!(
        c["metadata"]["generation"], 3,
        "labels and annotations do not bump generation"
    );

    // The status subresource: only status changes, and the printer columns show it.
    ok(
        &s,
        &[
            "patch",
            "-n",
            "foo",
            "bc",
            "example-cluster",
            "--subresource",
            "status",
            "--type",
            "merge",
            "-p",
            r#"{"status":{"nodes":3,"observedGeneration":3,"conditions":[{"type":"Accepted","status":"True","reason":"Valid","message":"ok","lastTransitionTime":"2024-01-01T00:00:00Z"}]},"spec":{"config":null}}"#,
        ],
    );
    let c = json(&s, &["get", "bc", "-n", "foo", "example-cluster"]);
    assert_eq!(c["status"]["nodes"], 3);
    assert_eq!(
        c["spec"]["config"]["lb_policy"], "ROUND_ROBIN",
        "status patches leave spec alone"
    );
    assert_eq!(c["metadata"]["generation"], 3);
    // Status in a main-resource patch is ignored.
    ok(
        &s,
        &[
            "patch",
            "-n",
            "foo",
            "bc",
            "example-cluster",
            "--type",
            "merge",
            "-p",
            r#"{"status":{"nodes":99}}"#,
        ],
    );
    assert_eq!(
        json(&s, &["get", "bc", "-n", "foo", "example-cluster"])["status"]["nodes"],
        3
    );
    let table = ok(&s, &["get", "bootes", "-A"]);
    let row = table
        .lines()
        .find(|l| l.contains("example-cluster"))
        .unwrap();
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        &cells[..4],
        &["foo", "example-cluster", "True", "3"],
        "{table}"
    );

    // Server-side apply, twice (create, then update), and status through apply.
    ok(&s, &["apply", "-f", &testdata("crd-routes.yaml")]);
    let out = ok(
        &s,
        &["apply", "--server-side", "-f", &testdata("route-foo.yaml")],
    );
    assert!(
        out.contains("route.bootes.io/example-route serverside-applied"),
        "{out}"
    );
    ok(
        &s,
        &[
            "apply",
            "--server-side",
            "--force-conflicts",
            "-f",
            &testdata("route-foo.yaml"),
        ],
    );
    let r = json(
        &s,
        &["get", "routes.bootes.io", "-n", "foo", "example-route"],
    );
    assert_eq!(r["spec"]["config"]["virtual_hosts"][0]["domains"][0], "*");
    assert_eq!(r["metadata"]["generation"], 1);
    let table = ok(&s, &["get", "bootes", "-A"]);
    assert!(
        table.contains("cluster.bootes.io/example-cluster")
            && table.contains("route.bootes.io/example-route"),
        "{table}"
    );

    // Delete: the object is gone and a get reports NotFound as a real server does.
    let out = ok(&s, &["delete", "-n", "foo", "bc", "example-cluster"]);
    assert!(out.contains("\"example-cluster\" deleted"), "{out}");
    let out = fails(&s, &["get", "-n", "foo", "bc", "example-cluster"]);
    assert!(
        out.contains(
            "Error from server (NotFound): clusters.bootes.io \"example-cluster\" not found"
        ),
        "{out}"
    );
    ok(&s, &["delete", "-f", &testdata("route-foo.yaml")]);
    let out = ok(&s, &["get", "bootes", "-A"]);
    assert!(out.trim().is_empty(), "{out}");

    // Deleting the CRD removes the resource from discovery.
    ok(&s, &["delete", "crd", "routes.bootes.io"]);
    let out = fails(&s, &["get", "routes.bootes.io", "-A"]);
    assert!(out.contains("doesn't have a resource type"), "{out}");
}

#[test]
fn kubectl_manages_namespaces_and_pods() {
    let s = standin();
    ok(&s, &["apply", "-f", &testdata("namespace-foo.yaml")]);
    let ns = json(&s, &["get", "namespace", "foo"]);
    assert_eq!(ns["status"]["phase"], "Active");
    let out = ok(&s, &["get", "ns"]);
    for n in ["default", "kube-system", "foo"] {
        assert!(out.contains(n), "{out}");
    }

    let out = ok(&s, &["apply", "-f", &testdata("pod-envoy.yaml")]);
    assert!(out.contains("pod/envoy-1 created"), "{out}");
    ok(
        &s,
        &[
            "run",
            "envoy-2",
            "-n",
            "foo",
            "--image=envoyproxy/envoy:v1.33-latest",
            "--labels=app=foo",
        ],
    );
    let names = ok(
        &s,
        &["get", "pods", "-n", "foo", "-l", "app=foo", "-o", "name"],
    );
    assert_eq!(
        names.lines().collect::<Vec<_>>(),
        vec!["pod/envoy-1", "pod/envoy-2"]
    );

    ok(
        &s,
        &[
            "label",
            "pod",
            "-n",
            "foo",
            "envoy-1",
            "app=bar",
            "--overwrite",
        ],
    );
    let names = ok(
        &s,
        &[
            "get",
            "pods",
            "-n",
            "foo",
            "-l",
            "app in (foo)",
            "-o",
            "name",
        ],
    );
    assert_eq!(names.trim(), "pod/envoy-2");
    let names = ok(&s, &["get", "pods", "-A", "-l", "app!=foo", "-o", "name"]);
    assert_eq!(names.trim(), "pod/envoy-1");
    let names = ok(
        &s,
        &[
            "get",
            "pods",
            "-n",
            "foo",
            "--field-selector",
            "metadata.name=envoy-2",
            "-o",
            "name",
        ],
    );
    assert_eq!(names.trim(), "pod/envoy-2");
    let table = ok(&s, &["get", "pods", "-n", "foo"]);
    assert!(table.lines().next().unwrap().contains("STATUS"), "{table}");

    // Apply again after relabelling: client-side apply computes its patch from the
    // last-applied annotation and puts the label back.
    ok(&s, &["apply", "-f", &testdata("pod-envoy.yaml")]);
    let pod = json(&s, &["get", "pod", "-n", "foo", "envoy-1"]);
    assert_eq!(pod["metadata"]["labels"]["app"], "foo");
    assert_eq!(pod["spec"]["containers"][0]["name"], "envoy");

    ok(&s, &["delete", "pod", "-n", "foo", "envoy-2"]);
    let names = ok(&s, &["get", "pods", "-n", "foo", "-o", "name"]);
    assert_eq!(names.trim(), "pod/envoy-1");

    // Creating in a namespace that does not exist fails as it does on a real server.
    let out = fails(&s, &["run", "x", "-n", "nowhere", "--image=x"]);
    assert!(out.contains("namespaces \"nowhere\" not found"), "{out}");

    // Deleting a namespace deletes what is in it.
    ok(&s, &["delete", "namespace", "foo"]);
    let out = ok(&s, &["get", "pods", "-A", "-o", "name"]);
    assert!(out.trim().is_empty(), "{out}");
}

#[test]
fn kubectl_applies_endpoint_slices() {
    let s = standin();
    ok(&s, &["create", "namespace", "foo"]);
    let out = ok(&s, &["apply", "-f", &testdata("endpointslice-web.yaml")]);
    assert!(
        out.contains("endpointslice.discovery.k8s.io/web-abc12 created"),
        "{out}"
    );
    let names = ok(
        &s,
        &[
            "get",
            "endpointslices",
            "-A",
            "-l",
            "kubernetes.io/service-name=web",
            "-o",
            "name",
        ],
    );
    assert_eq!(names.trim(), "endpointslice.discovery.k8s.io/web-abc12");

    // A rollout step: the old pod terminating, a new one ready.
    let out = ok(
        &s,
        &["apply", "-f", &testdata("endpointslice-web-scaled.yaml")],
    );
    assert!(out.contains("configured"), "{out}");
    let slice = json(&s, &["get", "endpointslice", "-n", "foo", "web-abc12"]);
    assert_eq!(slice["addressType"], "IPv4");
    let endpoints = slice["endpoints"].as_array().unwrap();
    assert_eq!(endpoints.len(), 2);
    assert_eq!(endpoints[0]["conditions"]["terminating"], true);
    assert_eq!(endpoints[1]["zone"], "zone-b");

    // Other Services' selectors do not see it; delete removes it.
    let names = ok(
        &s,
        &[
            "get",
            "endpointslices",
            "-n",
            "foo",
            "-l",
            "kubernetes.io/service-name=api",
            "-o",
            "name",
        ],
    );
    assert!(names.trim().is_empty(), "{names}");
    ok(&s, &["delete", "endpointslice", "-n", "foo", "web-abc12"]);
    let names = ok(&s, &["get", "endpointslices", "-A", "-o", "name"]);
    assert!(names.trim().is_empty(), "{names}");
}

#[test]
fn kubectl_sees_api_errors() {
    let s = standin();
    ok(&s, &["create", "namespace", "foo"]);
    let out = fails(&s, &["create", "namespace", "foo"]);
    assert!(
        out.contains("AlreadyExists") && out.contains("namespaces \"foo\" already exists"),
        "{out}"
    );
    let out = fails(&s, &["get", "pod", "-n", "foo", "missing"]);
    assert!(out.contains("pods \"missing\" not found"), "{out}");
    let out = fails(&s, &["get", "clusters.bootes.io", "-A"]);
    assert!(out.contains("doesn't have a resource type"), "{out}");

    // An inconsistent CRD is rejected with the field named.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad-crd.yaml");
    let crd = std::fs::read_to_string(testdata("crd-clusters.yaml")).unwrap();
    std::fs::write(
        &bad,
        crd.replace("name: clusters.bootes.io", "name: clusters.example.com"),
    )
    .unwrap();
    let out = fails(&s, &["apply", "-f", bad.to_str().unwrap()]);
    assert!(
        out.contains("is invalid") && out.contains("metadata.name"),
        "{out}"
    );

    // Invalid object names are rejected.
    ok(&s, &["apply", "-f", &testdata("crd-clusters.yaml")]);
    let obj = dir.path().join("bad-name.yaml");
    let c = std::fs::read_to_string(testdata("cluster-foo.yaml")).unwrap();
    std::fs::write(
        &obj,
        c.replace(
            "name: example-cluster\n  namespace",
            "name: Example_Cluster\n  namespace",
        ),
    )
    .unwrap();
    let out = fails(&s, &["apply", "-f", obj.to_str().unwrap()]);
    assert!(out.contains("Invalid value: \"Example_Cluster\""), "{out}");

    let v = ok(&s, &["version", "-o", "json"]);
    let v: Value = serde_json::from_str(&v).unwrap();
    assert_eq!(v["serverVersion"]["major"], "1");
}

#[test]
fn kubectl_field_validation_follows_the_crd_schema() {
    let s = standin();
    ok(&s, &["apply", "-f", &testdata("crd-clusters.yaml")]);
    ok(&s, &["create", "namespace", "foo"]);
    let dir = tempfile::tempdir().unwrap();
    let typo = dir.path().join("typo.yaml");
    let c = std::fs::read_to_string(testdata("cluster-foo.yaml")).unwrap();
    std::fs::write(&typo, c.replace("workloadSelector:", "workloadSelectr:")).unwrap();
    let typo = typo.to_str().unwrap();

    // kubectl asks for strict validation by default: the unknown field is an error.
    let out = fails(&s, &["apply", "-f", typo]);
    assert!(
        out.contains("BadRequest") && out.contains("unknown field \"spec.workloadSelectr\""),
        "{out}"
    );
    // With warnings, the field is pruned and kubectl prints the server's warning.
    let out = text(&run(&s, &["apply", "--validate=warn", "-f", typo]));
    assert!(
        out.contains("Warning: unknown field \"spec.workloadSelectr\""),
        "{out}"
    );
    let c = json(&s, &["get", "bc", "-n", "foo", "example-cluster"]);
    assert!(c["spec"].get("workloadSelectr").is_none(), "{c}");
    // Free-form config (x-kubernetes-preserve-unknown-fields) is kept as written.
    assert_eq!(
        c["spec"]["config"]["eds_cluster_config"]["eds_config"]["ads"],
        serde_json::json!({})
    );

    // Values of the wrong type are rejected with the field named.
    let out = fails(
        &s,
        &[
            "patch",
            "-n",
            "foo",
            "bc",
            "example-cluster",
            "--subresource",
            "status",
            "--type",
            "merge",
            "-p",
            r#"{"status":{"nodes":"many"}}"#,
        ],
    );
    assert!(
        out.contains("status.nodes") && out.contains("must be of type integer"),
        "{out}"
    );
}

/// The project's own install (`manifests/`, a kustomize tree) and examples apply to
/// the stand-in as they would to a cluster. If a manifest starts using a kind the
/// stand-in does not serve, add it to `builtin_types` in standin/src/types.rs.
#[test]
fn kubectl_applies_the_project_manifests() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let manifests = root.join("manifests");
    if !manifests.join("kustomization.yaml").exists() {
        eprintln!("no manifests/kustomization.yaml; nothing to apply");
        return;
    }
    let s = standin();
    // The base needs cert-manager (pki/, the webhook's Certificate): its
    // CRDs, as a cluster with cert-manager has them.
    let crds: String = ["certificates/Certificate", "issuers/Issuer"]
        .iter()
        .map(|pk| {
            let (plural, kind) = pk.split_once('/').unwrap();
            format!(
                "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata: {{name: {plural}.cert-manager.io}}\nspec:\n  group: cert-manager.io\n  scope: Namespaced\n  names: {{plural: {plural}, singular: {}, kind: {kind}, listKind: {kind}List}}\n  versions:\n  - name: v1\n    served: true\n    storage: true\n    schema: {{openAPIV3Schema: {{type: object, x-kubernetes-preserve-unknown-fields: true}}}}\n---\n",
                kind.to_ascii_lowercase()
            )
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let crd_file = dir.path().join("cert-manager-crds.yaml");
    std::fs::write(&crd_file, crds).unwrap();
    ok(&s, &["apply", "-f", crd_file.to_str().unwrap()]);
    let m = manifests.to_str().unwrap();
    let out = ok(&s, &["apply", "-k", m]);
    assert!(out.contains("created"), "{out}");
    // Applying again changes nothing that matters (PodDisruptionBudget selectors are
    // always re-sent by kubectl, as against a real cluster).
    ok(&s, &["apply", "-k", m]);
    let crds = ok(&s, &["get", "crd", "-o", "name"]);
    assert!(crds.contains("clusters.bootes.io"), "{crds}");
    let examples = manifests.join("examples");
    if examples.is_dir() {
        // As the README says: the examples' kustomization (with their namespace).
        ok(&s, &["apply", "-k", examples.to_str().unwrap()]);
        let objects = ok(&s, &["get", "bootes", "-n", "demo", "-o", "name"]);
        assert!(!objects.trim().is_empty(), "no Bootes objects listed");
    }
}
