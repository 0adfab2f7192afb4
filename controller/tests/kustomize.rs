//! `manifests/` renders with `kubectl kustomize`, has every piece docs/DESIGN.md §7
//! asks for, grants exactly the permissions each process needs, and its
//! probes and ports match the flags the real binaries take.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_yaml::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn render() -> Vec<Value> {
    let output = kube_standin::kubectl::kubectl(kube_standin::kubectl::KUSTOMIZE)
        .arg("kustomize")
        .arg(repo().join("manifests"))
        .output()
        .expect("running kubectl (it must be installed; see scripts/install-tools.sh)");
    assert!(
        output.status.success(),
        "kubectl kustomize manifests/ failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .filter(|v: &Value| !v.is_null())
        .collect()
}

fn find<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in the rendered manifests"))
}

fn strs(v: &Value) -> Vec<String> {
    v.as_sequence()
        .map(|s| s.iter().map(|x| x.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

/// The value after `flag` in `args`.
fn arg<'a>(args: &'a [String], flag: &str) -> &'a str {
    let i = args
        .iter()
        .position(|a| a == flag)
        .unwrap_or_else(|| panic!("{flag} missing from {args:?}"));
    &args[i + 1]
}

fn port_of(addr: &str) -> i64 {
    addr.rsplit(':').next().unwrap().parse().unwrap()
}

/// The container port a probe or Service names (by name or number).
fn resolve_port(container: &Value, port: &Value) -> i64 {
    if let Some(n) = port.as_i64() {
        return n;
    }
    let name = port.as_str().unwrap();
    container["ports"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("no container port named {name}"))["containerPort"]
        .as_i64()
        .unwrap()
}

fn only_container(deployment: &Value) -> &Value {
    let containers = deployment["spec"]["template"]["spec"]["containers"]
        .as_sequence()
        .unwrap();
    assert_eq!(containers.len(), 1);
    &containers[0]
}

/// `--flags` of `bin` (from its `--help`).
fn flags_of(bin: &Path, subcommand: &[&str]) -> BTreeSet<String> {
    let output = Command::new(bin)
        .args(subcommand)
        .arg("--help")
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", bin.display()));
    assert!(output.status.success());
    String::from_utf8_lossy(&output.stdout)
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|w| w.starts_with("--"))
        .map(|w| w.split('=').next().unwrap().to_string())
        .collect()
}

fn xds_server_bin() -> PathBuf {
    let path = std::env::var_os("BOOTES_XDS_SERVER_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_BIN_EXE_bootes-controller")).with_file_name("bootes-xds-server")
        });
    assert!(
        path.exists(),
        "{} not found: build it first (`cargo build --workspace --bins`, as scripts/test.sh does) or set BOOTES_XDS_SERVER_BIN",
        path.display()
    );
    path
}

/// Checks a Deployment's probes: `/livez` and `/readyz` on the port of the
/// health-address flag, and that every flag it passes exists.
fn check_process(deployment: &Value, health_flag: &str, known_flags: &BTreeSet<String>) {
    let container = only_container(deployment);
    let args = strs(&container["args"]);
    for a in args.iter().filter(|a| a.starts_with("--")) {
        assert!(
            known_flags.contains(a),
            "{a} is not a flag of the binary ({known_flags:?})"
        );
    }
    let health_port = port_of(arg(&args, health_flag));
    for (probe, path) in [("livenessProbe", "/livez"), ("readinessProbe", "/readyz")] {
        let get = &container[probe]["httpGet"];
        assert_eq!(get["path"], path, "{probe}");
        assert_eq!(
            resolve_port(container, &get["port"]),
            health_port,
            "{probe} port"
        );
    }
    assert_eq!(
        arg(&args, "--etcd-endpoints"),
        "https://etcd.bootes-system.svc:2379"
    );
}

#[test]
fn manifests_render_with_every_piece() {
    let docs = render();
    let mut kinds: Vec<String> = docs
        .iter()
        .map(|d| d["kind"].as_str().unwrap().to_string())
        .collect();
    kinds.sort();
    kinds.dedup();
    assert_eq!(
        kinds,
        [
            "Certificate",
            "ClusterRole",
            "ClusterRoleBinding",
            "CustomResourceDefinition",
            "Deployment",
            "Issuer",
            "Job",
            "Namespace",
            "NetworkPolicy",
            "PodDisruptionBudget",
            "Service",
            "ServiceAccount",
            "StatefulSet",
            "ValidatingWebhookConfiguration",
        ]
    );
    let crds = docs
        .iter()
        .filter(|d| d["kind"] == "CustomResourceDefinition")
        .count();
    assert_eq!(crds, 9);
    find(&docs, "Namespace", "bootes-system");

    let controller = find(&docs, "Deployment", "bootes-controller");
    assert_eq!(controller["spec"]["replicas"], 2);
    let xds = find(&docs, "Deployment", "bootes-xds-server");
    assert_eq!(xds["spec"]["replicas"], 3);
    let pdb = find(&docs, "PodDisruptionBudget", "bootes-xds-server");
    assert_eq!(
        pdb["spec"]["selector"]["matchLabels"],
        xds["spec"]["selector"]["matchLabels"]
    );

    // etcd: the Service the processes use, and a StatefulSet behind it.
    let etcd = find(&docs, "Service", "etcd");
    assert_eq!(etcd["spec"]["ports"][0]["port"], 2379);
    let sts = find(&docs, "StatefulSet", "etcd");
    let headless = find(&docs, "Service", "etcd-headless");
    assert_eq!(headless["spec"]["clusterIP"], "None");
    assert_eq!(sts["spec"]["serviceName"], "etcd-headless");
}

#[test]
fn probes_and_ports_match_the_binaries_flags() {
    let docs = render();
    let controller_flags = flags_of(Path::new(env!("CARGO_BIN_EXE_bootes-controller")), &["run"]);
    let controller = find(&docs, "Deployment", "bootes-controller");
    assert_eq!(strs(&only_container(controller)["args"])[0], "run");
    check_process(controller, "--metrics-addr", &controller_flags);

    let xds_flags = flags_of(&xds_server_bin(), &[]);
    let xds = find(&docs, "Deployment", "bootes-xds-server");
    check_process(xds, "--admin-listen", &xds_flags);

    // The Service reaches the gRPC port the server listens on.
    let container = only_container(xds);
    let listen = port_of(arg(&strs(&container["args"]), "--listen"));
    let service = find(&docs, "Service", "bootes-xds-server");
    let port = &service["spec"]["ports"][0];
    assert_eq!(port["name"], "grpc");
    assert_eq!(port["port"], 18000);
    assert_eq!(resolve_port(container, &port["targetPort"]), listen);
    let name = &service["spec"]["selector"]["app.kubernetes.io/name"];
    assert_eq!(name, "bootes-xds-server");
    assert_eq!(
        &xds["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"],
        name
    );
}

#[test]
fn rbac_is_least_privilege() {
    let docs = render();
    let plurals: BTreeSet<String> = docs
        .iter()
        .filter(|d| d["kind"] == "CustomResourceDefinition")
        .map(|d| d["spec"]["names"]["plural"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(plurals.len(), 9);

    let role = find(&docs, "ClusterRole", "bootes-controller");
    let mut granted: BTreeSet<(String, String, String)> = BTreeSet::new();
    for rule in role["rules"].as_sequence().unwrap() {
        for group in strs(&rule["apiGroups"]) {
            for resource in strs(&rule["resources"]) {
                for verb in strs(&rule["verbs"]) {
                    granted.insert((group.clone(), resource.clone(), verb));
                }
            }
        }
    }
    let mut expected = BTreeSet::new();
    for p in &plurals {
        for verb in ["get", "list", "watch"] {
            expected.insert(("bootes.io".into(), p.clone(), verb.into()));
        }
        for verb in ["get", "patch", "update"] {
            expected.insert(("bootes.io".into(), format!("{p}/status"), verb.into()));
        }
    }
    for verb in ["list", "watch"] {
        expected.insert((String::new(), "pods".into(), verb.into()));
    }
    // Endpoints naming a Service read its EndpointSlices.
    for verb in ["get", "list", "watch"] {
        expected.insert((
            "discovery.k8s.io".into(),
            "endpointslices".into(),
            verb.into(),
        ));
    }
    // Events on transitions (kube-runtime's recorder creates, then patches a
    // series); never read, never deleted.
    for verb in ["create", "patch"] {
        expected.insert(("events.k8s.io".into(), "events".into(), verb.into()));
    }
    assert_eq!(granted, expected);

    // Only the controller is bound to anything; the xds-server has no
    // Kubernetes access and no token.
    for binding in docs
        .iter()
        .filter(|d| d["kind"] == "ClusterRoleBinding" || d["kind"] == "RoleBinding")
    {
        for subject in binding["subjects"].as_sequence().unwrap() {
            assert_eq!(subject["name"], "bootes-controller", "{binding:?}");
        }
    }
    assert!(!docs.iter().any(|d| d["kind"] == "Role"));
    let xds_sa = find(&docs, "ServiceAccount", "bootes-xds-server");
    assert_eq!(xds_sa["automountServiceAccountToken"], false);
    let xds = find(&docs, "Deployment", "bootes-xds-server");
    let pod = &xds["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], "bootes-xds-server");
    assert_eq!(pod["automountServiceAccountToken"], false);
    let controller = find(&docs, "Deployment", "bootes-controller");
    assert_eq!(
        controller["spec"]["template"]["spec"]["serviceAccountName"],
        "bootes-controller"
    );
}

#[test]
fn the_base_installs_the_generated_crds() {
    let output = Command::new(env!("CARGO_BIN_EXE_bootes-controller"))
        .arg("crds")
        .output()
        .unwrap();
    assert!(output.status.success());
    let generated: Vec<Value> =
        serde_yaml::Deserializer::from_str(&String::from_utf8(output.stdout).unwrap())
            .map(|d| serde::Deserialize::deserialize(d).unwrap())
            .collect();
    let docs = render();
    let rendered: Vec<&Value> = docs
        .iter()
        .filter(|d| d["kind"] == "CustomResourceDefinition")
        .collect();
    assert_eq!(rendered.len(), generated.len());
    for crd in &generated {
        let name = crd["metadata"]["name"].as_str().unwrap();
        let in_base = find(&docs, "CustomResourceDefinition", name);
        assert_eq!(in_base["spec"], crd["spec"], "{name}");
    }
}

/// The webhook's pieces fit together: configuration → Service → the
/// controller's port and `--webhook-listen`; the Certificate's Secret →
/// the files `--webhook-cert`/`--webhook-key` name; CA injection from that
/// Certificate.
#[test]
fn the_webhook_configuration_reaches_the_controller() {
    let docs = render();
    let config = find(&docs, "ValidatingWebhookConfiguration", "bootes");
    let hook = &config["webhooks"][0];
    assert_eq!(hook["failurePolicy"], "Ignore");
    assert_eq!(hook["sideEffects"], "None");
    assert!(hook["timeoutSeconds"].as_i64().unwrap() <= 30);
    assert_eq!(strs(&hook["admissionReviewVersions"]), ["v1"]);
    assert!(hook["namespaceSelector"]["matchExpressions"].is_sequence());
    let rule = &hook["rules"][0];
    assert_eq!(strs(&rule["apiGroups"]), ["bootes.io"]);
    assert_eq!(strs(&rule["operations"]), ["CREATE", "UPDATE"]);
    let client = &hook["clientConfig"]["service"];
    let service = find(&docs, "Service", client["name"].as_str().unwrap());
    assert_eq!(service["metadata"]["namespace"], client["namespace"]);
    let port = service["spec"]["ports"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|p| p["port"] == client["port"])
        .expect("the Service port the configuration names");

    let controller = find(&docs, "Deployment", "bootes-controller");
    assert_eq!(
        service["spec"]["selector"], controller["spec"]["selector"]["matchLabels"],
        "every replica serves the webhook"
    );
    let container = only_container(controller);
    let env: BTreeMap<String, String> = container["env"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(|e| {
            Some((
                e["name"].as_str()?.to_string(),
                e["value"].as_str()?.to_string(),
            ))
        })
        .collect();
    let help = Command::new(env!("CARGO_BIN_EXE_bootes-controller"))
        .args(["run", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for var in [
        "BOOTES_WEBHOOK_LISTEN",
        "BOOTES_WEBHOOK_CERT",
        "BOOTES_WEBHOOK_KEY",
    ] {
        assert!(env.contains_key(var), "{var} not set");
        assert!(
            help.contains(&format!("env: {var}=")),
            "{var} is not a variable of run"
        );
    }
    assert_eq!(
        resolve_port(container, &port["targetPort"]),
        port_of(&env["BOOTES_WEBHOOK_LISTEN"])
    );

    let certificate = find(&docs, "Certificate", "bootes-webhook");
    let dns = format!(
        "{}.{}.svc",
        client["name"].as_str().unwrap(),
        client["namespace"].as_str().unwrap()
    );
    assert!(strs(&certificate["spec"]["dnsNames"]).contains(&dns));
    assert_eq!(
        config["metadata"]["annotations"]["cert-manager.io/inject-ca-from"].as_str(),
        Some(
            format!(
                "bootes-system/{}",
                certificate["metadata"]["name"].as_str().unwrap()
            )
            .as_str()
        )
    );
    let issuer = &certificate["spec"]["issuerRef"];
    find(
        &docs,
        issuer["kind"].as_str().unwrap(),
        issuer["name"].as_str().unwrap(),
    );
    let secret = certificate["spec"]["secretName"].as_str().unwrap();
    let pod = &controller["spec"]["template"]["spec"];
    let volume = pod["volumes"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|v| v["secret"]["secretName"].as_str() == Some(secret))
        .expect("the Certificate's Secret mounted");
    let mount = container["volumeMounts"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|m| m["name"] == volume["name"])
        .expect("its volume mounted");
    let dir = mount["mountPath"].as_str().unwrap();
    assert_eq!(env["BOOTES_WEBHOOK_CERT"], format!("{dir}/tls.crt"));
    assert_eq!(env["BOOTES_WEBHOOK_KEY"], format!("{dir}/tls.key"));
}
