//! The Kubernetes install, checked without a cluster, in both renderings:
//! `kubectl kustomize manifests/` (the secure default) and
//! `manifests/overlays/insecure-dev` (plain HTTP).
//!
//! * Both validate against the Kubernetes schemas, offline, with PyPI's
//!   `kubernetes-validate` (pinned by scripts/install-tools.sh). It has no
//!   schema for cert-manager's `Certificate` and `Issuer` and says so (a
//!   warning, not a failure): those two kinds, and only those, are checked
//!   here by hand (fields, usages, issuers that exist).
//! * Every flag of every container is one its binary accepts (the real
//!   `--help` of bootes-controller, bootes-xds-server and etcd).
//! * Every mounted directory is named by the args or environment, and every
//!   file they name is a key of the Secret mounted above it.
//! * Every Secret named exists (a Certificate's), or is the one Secret the
//!   operator makes (the sealing key, documented in manifests/README.md).
//! * The default install is the secure one: TLS and client certificates on
//!   every hop, each etcd client certificate's CN is its etcd user.
//! * The NetworkPolicies select the pods they mean and let in only whom
//!   docs/SECURITY.md says.
//!
//! Needs `cargo build --workspace --bins`, kubectl, etcd and the venv of
//! scripts/install-tools.sh.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;

use bootes_tests::harness::{
    find_bootes_bin, find_doc, find_etcd, find_venv_tool, flags_of, flags_used, pod_spec, render,
    repo_dir, workloads, yaml_stream_of, Container,
};
use serde_yaml::Value;

const BASE: &str = "manifests";
const DEV: &str = "manifests/overlays/insecure-dev";
/// The Kubernetes version whose schemas the manifests must pass.
const KUBERNETES_VERSION: &str = "1.32.0";
/// Kinds `kubernetes-validate` has no schema for; checked by hand below.
const NO_SCHEMA: [&str; 2] = [
    "cert-manager.io/v1 Certificate",
    "cert-manager.io/v1 Issuer",
];
/// The one Secret the operator makes before the install (a key cannot be
/// in the repository); manifests/README.md says how.
const OPERATOR_SECRET: (&str, &str) = ("bootes-secret-keys", "secrets.keys");
/// The keys of a Secret cert-manager writes.
const CERT_KEYS: [&str; 3] = ["tls.crt", "tls.key", "ca.crt"];

fn both() -> [(&'static str, Vec<Value>); 2] {
    [(BASE, render(BASE).unwrap()), (DEV, render(DEV).unwrap())]
}

fn str_of<'a>(v: &'a Value, what: &str) -> &'a str {
    v.as_str()
        .unwrap_or_else(|| panic!("{what}: not a string: {v:?}"))
}

fn type_of(d: &Value) -> String {
    format!(
        "{} {}",
        str_of(&d["apiVersion"], "apiVersion"),
        str_of(&d["kind"], "kind")
    )
}

/// Runs kubernetes-validate on `docs`: (succeeded, output).
fn validate(docs: &[Value]) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rendered.yaml");
    std::fs::write(&file, yaml_stream_of(docs)).unwrap();
    let kv = find_venv_tool("kubernetes-validate", "kubernetes-validate==1.37.0").unwrap();
    let out = Command::new(kv)
        .args(["--strict", "-k", KUBERNETES_VERSION])
        .arg(&file)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn both_renderings_validate_against_the_kubernetes_schemas_offline() {
    for (name, docs) in both() {
        let (ok, out) = validate(&docs);
        assert!(ok, "{name} does not validate:\n{out}");
        for line in out.lines() {
            assert!(!line.starts_with("ERROR"), "{name}: {line}");
            if line.starts_with("WARN") {
                assert!(
                    NO_SCHEMA.iter().any(|t| {
                        let (api, kind) = t.split_once(' ').unwrap();
                        line.contains(&format!("kind {kind} with api version {api} "))
                    }),
                    "{name}: unexpected warning {line}"
                );
            }
        }
        // Every object of a kind with a schema was validated against it.
        for d in &docs {
            if NO_SCHEMA.contains(&type_of(d).as_str()) {
                continue;
            }
            let id = format!(
                "passed for resource {}/{} ",
                str_of(&d["kind"], "kind").to_lowercase(),
                str_of(&d["metadata"]["name"], "name")
            );
            assert!(out.contains(&id), "{name}: no `{id}` in:\n{out}");
        }
    }
    // Not a rubber stamp: a misspelt field of the xds-server's pod fails.
    let mut docs = render(BASE).unwrap();
    let xds = docs
        .iter_mut()
        .find(|d| d["kind"] == "Deployment" && d["metadata"]["name"] == "bootes-xds-server")
        .unwrap();
    xds["spec"]["template"]["spec"]["containers"][0]["volumeMount"] = Value::Null;
    let (ok, out) = validate(&docs);
    assert!(!ok, "an unknown field passed:\n{out}");
    assert!(out.contains("volumeMount"), "{out}");
}

/// cert-manager's objects, which no schema checks: known fields only,
/// issuers that exist, CA secrets that a CA Certificate makes.
#[test]
fn cert_manager_objects_are_well_formed() {
    let docs = render(BASE).unwrap();
    let certs: Vec<&Value> = docs.iter().filter(|d| d["kind"] == "Certificate").collect();
    let issuers: Vec<&Value> = docs.iter().filter(|d| d["kind"] == "Issuer").collect();
    assert!(certs.len() >= 6 && issuers.len() >= 2);
    let fields = BTreeSet::from([
        "secretName",
        "commonName",
        "dnsNames",
        "usages",
        "privateKey",
        "issuerRef",
        "isCA",
        "duration",
        "renewBefore",
    ]);
    let usages = BTreeSet::from([
        "server auth",
        "client auth",
        "digital signature",
        "key encipherment",
        "cert sign",
    ]);
    for c in &certs {
        let name = str_of(&c["metadata"]["name"], "name");
        assert_eq!(c["apiVersion"], "cert-manager.io/v1", "{name}");
        for k in c["spec"].as_mapping().unwrap().keys() {
            assert!(
                fields.contains(str_of(k, "field")),
                "Certificate {name}: unknown field {k:?}"
            );
        }
        str_of(&c["spec"]["secretName"], "secretName");
        for u in c["spec"]["usages"].as_sequence().into_iter().flatten() {
            assert!(
                usages.contains(str_of(u, "usage")),
                "Certificate {name}: usage {u:?}"
            );
        }
        let issuer = &c["spec"]["issuerRef"];
        assert_eq!(issuer["kind"], "Issuer", "{name}");
        let issuer = find_doc(&docs, "Issuer", str_of(&issuer["name"], "issuerRef.name")).unwrap();
        assert_eq!(
            issuer["metadata"]["namespace"], c["metadata"]["namespace"],
            "{name}"
        );
    }
    for i in &issuers {
        let spec = i["spec"].as_mapping().unwrap();
        assert_eq!(spec.len(), 1, "an Issuer is of one type: {i:?}");
        if let Some(secret) = i["spec"]["ca"]["secretName"].as_str() {
            let ca = certs
                .iter()
                .find(|c| c["spec"]["secretName"] == secret)
                .unwrap_or_else(|| panic!("no Certificate makes the CA Secret {secret}"));
            assert_eq!(ca["spec"]["isCA"], true);
        } else {
            assert!(i["spec"]["selfSigned"].is_mapping(), "{i:?}");
        }
    }
}

fn controller_bin() -> PathBuf {
    find_bootes_bin("bootes-controller", "BOOTES_CONTROLLER_BIN").unwrap()
}

fn xds_bin() -> PathBuf {
    find_bootes_bin("bootes-xds-server", "BOOTES_XDS_SERVER_BIN").unwrap()
}

#[test]
fn every_flag_is_one_the_binary_accepts() {
    let controller = flags_of(&controller_bin(), &["run"]).unwrap();
    let xds = flags_of(&xds_bin(), &[]).unwrap();
    let etcd = flags_of(&find_etcd().unwrap(), &[]).unwrap();
    let dockerfile = std::fs::read_to_string(repo_dir().join("Dockerfile")).unwrap();
    for (name, docs) in both() {
        let containers = Container::all(&docs);
        assert!(containers.len() >= 3, "{name}");
        for c in containers {
            let argv = c.argv();
            let image = c.image();
            let (accepted, args) = if image.contains("/bootes-controller:") {
                assert_eq!(argv[0], "run", "{}", c.id());
                (&controller, &argv[1..])
            } else if image.contains("/bootes-xds-server:") {
                (&xds, &argv[..])
            } else if image.contains("/etcd:") {
                assert_eq!(argv[0], "etcd", "{}", c.id());
                (&etcd, &argv[1..])
            } else if image.contains("/bootes-setup:") {
                // The roles script, where the Dockerfile's setup stage puts it.
                assert_eq!(
                    argv,
                    ["bash", "/usr/local/share/bootes/roles.sh"],
                    "{}",
                    c.id()
                );
                assert!(dockerfile
                    .lines()
                    .any(|l| l.starts_with("COPY manifests/etcd/roles.sh")
                        && l.ends_with(" /usr/local/share/bootes/")));
                continue;
            } else {
                panic!("{}: unknown image {image}", c.id());
            };
            let used = flags_used(args);
            let unknown: Vec<_> = used.difference(accepted).collect();
            assert!(
                unknown.is_empty(),
                "{name} {}: flags {unknown:?} are not accepted",
                c.id()
            );
        }
    }
}

/// Absolute paths a container's args and environment name.
fn named_paths(c: &Container<'_>) -> Vec<String> {
    c.argv()
        .into_iter()
        .chain(c.env_values())
        .map(|a| a.split_once('=').map_or(a.clone(), |(_, v)| v.to_string()))
        .filter(|a| a.starts_with("/etc/"))
        .collect()
}

#[test]
fn every_mount_is_named_by_the_args_and_every_file_is_in_its_secret() {
    let cert_secrets: BTreeSet<String> = render(BASE)
        .unwrap()
        .iter()
        .filter(|d| d["kind"] == "Certificate")
        .map(|d| str_of(&d["spec"]["secretName"], "secretName").to_string())
        .collect();
    for (name, docs) in both() {
        for c in Container::all(&docs) {
            let named = named_paths(&c);
            for (mount, volume) in c.mounts().unwrap() {
                if volume["secret"].is_null() {
                    continue; // data volumes
                }
                assert!(
                    named.iter().any(|p| p.starts_with(&format!("{mount}/"))),
                    "{name} {}: {mount} is mounted but no argument names a file in it ({named:?})",
                    c.id()
                );
            }
            for path in &named {
                let (secret, key) = c.secret_file(path).unwrap();
                if cert_secrets.contains(&secret) {
                    assert!(CERT_KEYS.contains(&key.as_str()), "{}: {path}", c.id());
                } else {
                    assert_eq!(
                        (secret.as_str(), key.as_str()),
                        OPERATOR_SECRET,
                        "{}",
                        c.id()
                    );
                }
            }
        }
    }
}

#[test]
fn every_secret_named_exists() {
    let readme = std::fs::read_to_string(repo_dir().join("manifests/README.md")).unwrap();
    let (secret, key) = OPERATOR_SECRET;
    assert!(
        readme.contains(&format!(
            "kubectl -n bootes-system create secret generic {secret} --from-file={key}="
        )),
        "manifests/README.md says how to make {secret}"
    );
    for (name, docs) in both() {
        let made: BTreeSet<&str> = docs
            .iter()
            .filter(|d| d["kind"] == "Certificate")
            .map(|d| str_of(&d["spec"]["secretName"], "secretName"))
            .collect();
        let mut used = BTreeSet::new();
        for w in workloads(&docs) {
            for v in pod_spec(w)["volumes"].as_sequence().into_iter().flatten() {
                if let Some(s) = v["secret"]["secretName"].as_str() {
                    used.insert(s);
                    assert!(
                        made.contains(s) || s == secret,
                        "{name}: Secret {s} is made by nothing"
                    );
                }
            }
        }
        for i in docs.iter().filter(|d| d["kind"] == "Issuer") {
            if let Some(s) = i["spec"]["ca"]["secretName"].as_str() {
                assert!(
                    made.contains(s),
                    "{name}: the CA Secret {s} is made by nothing"
                );
            }
        }
        if name == DEV {
            assert!(
                used.is_empty() && made.is_empty(),
                "{name} uses no certificates: {used:?}"
            );
        } else {
            assert!(used.len() >= 6, "{used:?}");
        }
    }
}

/// The Certificate whose Secret holds the file `path` of `c`.
fn certificate_of<'a>(docs: &'a [Value], c: &Container<'_>, path: &str) -> &'a Value {
    let (secret, _) = c.secret_file(path).unwrap();
    docs.iter()
        .find(|d| d["kind"] == "Certificate" && d["spec"]["secretName"] == secret.as_str())
        .unwrap_or_else(|| panic!("{}: no Certificate makes {secret}", c.id()))
}

#[test]
fn the_default_install_encrypts_and_authenticates_every_hop() {
    let docs = render(BASE).unwrap();
    // etcd: TLS for clients and peers, client certificates required.
    let etcd = Container::named(&docs, "StatefulSet", "etcd", "etcd").unwrap();
    let argv = etcd.argv();
    for flag in ["--client-cert-auth", "--peer-client-cert-auth"] {
        assert!(argv.iter().any(|a| a == flag), "etcd without {flag}");
    }
    for flag in [
        "--listen-client-urls",
        "--advertise-client-urls",
        "--listen-peer-urls",
        "--initial-advertise-peer-urls",
    ] {
        assert!(etcd.flag(flag).unwrap().starts_with("https://"), "{flag}");
    }
    for peer in etcd.flag("--initial-cluster").unwrap().split(',') {
        assert!(
            peer.split_once('=').unwrap().1.starts_with("https://"),
            "{peer}"
        );
    }
    let member = certificate_of(&docs, &etcd, &etcd.flag("--cert-file").unwrap());
    for flag in ["--key-file", "--peer-cert-file", "--peer-key-file"] {
        assert_eq!(
            certificate_of(&docs, &etcd, &etcd.flag(flag).unwrap()),
            member,
            "{flag}"
        );
    }
    for flag in ["--trusted-ca-file", "--peer-trusted-ca-file"] {
        assert!(etcd.flag(flag).unwrap().ends_with("/ca.crt"), "{flag}");
    }
    let dns: Vec<&str> = member["spec"]["dnsNames"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap())
        .collect();
    assert!(dns.contains(&"etcd.bootes-system.svc"), "{dns:?}");

    // Each process: etcd over TLS with a certificate whose CN is its user.
    for (kind, workload, container, user) in [
        (
            "Deployment",
            "bootes-controller",
            "controller",
            "bootes-controller",
        ),
        (
            "Deployment",
            "bootes-xds-server",
            "xds-server",
            "bootes-xds-server",
        ),
    ] {
        let c = Container::named(&docs, kind, workload, container).unwrap();
        let endpoint = c.flag("--etcd-endpoints").unwrap();
        assert_eq!(endpoint, "https://etcd.bootes-system.svc:2379");
        assert!(c.flag("--etcd-ca").unwrap().ends_with("/ca.crt"));
        let cert = certificate_of(&docs, &c, &c.flag("--etcd-cert").unwrap());
        assert_eq!(cert["spec"]["commonName"], user, "{workload}");
        assert_eq!(
            certificate_of(&docs, &c, &c.flag("--etcd-key").unwrap()),
            cert
        );
        assert!(
            c.flag("--secret-key-file").is_some(),
            "{workload} seals Secrets"
        );
    }
    // The roles Job: root, by certificate.
    let job = Container::named(&docs, "Job", "bootes-etcd-roles", "roles").unwrap();
    let root = certificate_of(&docs, &job, &job.env("ETCDCTL_CERT").unwrap());
    assert_eq!(root["spec"]["commonName"], "root");
    assert_eq!(
        job.env("ETCDCTL_ENDPOINTS").unwrap(),
        "https://etcd.bootes-system.svc:2379"
    );
    assert_eq!(job.env("BOOTES_ETCD_PASSWORDLESS").unwrap(), "true");
    // The xds-server: mutual TLS with a server certificate for its Service.
    let xds = Container::named(&docs, "Deployment", "bootes-xds-server", "xds-server").unwrap();
    let serving = certificate_of(&docs, &xds, &xds.flag("--tls-cert").unwrap());
    assert_eq!(
        certificate_of(&docs, &xds, &xds.flag("--tls-key").unwrap()),
        serving
    );
    assert!(xds.flag("--tls-client-ca").unwrap().ends_with("/ca.crt"));
    assert!(serving["spec"]["dnsNames"]
        .as_sequence()
        .unwrap()
        .iter()
        .any(|d| d == "bootes-xds-server.bootes-system.svc"));
    assert!(xds.flag("--allow-unauthenticated-secrets").is_none());

    // The overlay is the plain one, and says so in its README.
    let dev = render(DEV).unwrap();
    for c in Container::all(&dev) {
        let argv = c.argv().join(" ");
        assert!(
            !argv.contains("https://") && !argv.contains("--tls-"),
            "{}: {argv}",
            c.id()
        );
    }
    let readme = std::fs::read_to_string(repo_dir().join(DEV).join("README.md")).unwrap();
    assert!(readme.contains("plain HTTP") && readme.contains("warning"));
}

/// A NetworkPolicy source: any, pods of workloads, or labelled namespaces.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum From {
    Anyone,
    Workload(String),
    Namespaces(String),
}

fn selects(selector: &Value, labels: &Value) -> bool {
    selector["matchLabels"]
        .as_mapping()
        .into_iter()
        .flatten()
        .all(|(k, v)| labels[k] == *v)
        && selector["matchExpressions"].is_null()
}

fn workload_id(w: &Value) -> String {
    format!(
        "{} {}",
        str_of(&w["kind"], "kind"),
        str_of(&w["metadata"]["name"], "name")
    )
}

/// Who may reach each port of `workload`'s pods, by the policies.
fn admitted(docs: &[Value], workload: &Value) -> BTreeMap<i64, BTreeSet<From>> {
    let labels = &workload["spec"]["template"]["metadata"]["labels"];
    let ns = &workload["metadata"]["namespace"];
    let mut map: BTreeMap<i64, BTreeSet<From>> = BTreeMap::new();
    for p in docs.iter().filter(|d| d["kind"] == "NetworkPolicy") {
        if p["metadata"]["namespace"] != *ns || !selects(&p["spec"]["podSelector"], labels) {
            continue;
        }
        for rule in p["spec"]["ingress"].as_sequence().into_iter().flatten() {
            let froms: BTreeSet<From> = match rule["from"].as_sequence() {
                None => BTreeSet::from([From::Anyone]),
                Some(froms) => froms
                    .iter()
                    .flat_map(|f| -> Vec<From> {
                        if f["namespaceSelector"].is_mapping() {
                            assert!(f["podSelector"].is_null(), "{f:?}");
                            let l = &f["namespaceSelector"]["matchLabels"];
                            return vec![From::Namespaces(serde_yaml::to_string(l).unwrap())];
                        }
                        // Pods of this namespace: the workloads they are.
                        let picked: Vec<From> = workloads(docs)
                            .filter(|w| w["metadata"]["namespace"] == *ns)
                            .filter(|w| {
                                selects(
                                    &f["podSelector"],
                                    &w["spec"]["template"]["metadata"]["labels"],
                                )
                            })
                            .map(|w| From::Workload(workload_id(w)))
                            .collect();
                        assert!(!picked.is_empty(), "{f:?} selects no pod");
                        picked
                    })
                    .collect(),
            };
            for port in rule["ports"].as_sequence().expect("rules name their ports") {
                let port = port["port"].as_i64().expect("numeric ports");
                map.entry(port).or_default().extend(froms.iter().cloned());
            }
        }
    }
    map
}

fn port_of(addr: &str) -> i64 {
    addr.trim_end_matches('/')
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

/// The xds-server's pod is given the time its drain takes, and leaves the
/// Service early in it.
#[test]
fn the_xds_server_drains_within_its_grace_period_and_turns_unready_first() {
    for (name, docs) in both() {
        let xds = Container::named(&docs, "Deployment", "bootes-xds-server", "xds-server").unwrap();
        let drain: u64 = xds
            .flag("--drain-period")
            .unwrap_or_else(|| panic!("{name}: --drain-period is not set"))
            .parse()
            .unwrap();
        let grace = pod_spec(xds.workload)["terminationGracePeriodSeconds"]
            .as_u64()
            .unwrap_or(30);
        assert!(
            grace >= drain + 5,
            "{name}: terminationGracePeriodSeconds {grace} leaves no time after a {drain} s drain"
        );
        let probe = &xds.container["readinessProbe"];
        assert_eq!(probe["httpGet"]["path"], "/readyz", "{name}");
        let unready_after = probe["periodSeconds"].as_u64().unwrap_or(10)
            * probe["failureThreshold"].as_u64().unwrap_or(3);
        assert!(
            unready_after * 4 <= drain,
            "{name}: readiness notices a drain after {unready_after} s, late in a {drain} s drain"
        );
    }
}

#[test]
fn network_policies_select_the_pods_they_mean() {
    let docs = render(BASE).unwrap();
    let security = std::fs::read_to_string(repo_dir().join("docs/SECURITY.md")).unwrap();
    let operators = From::Namespaces("bootes.io/operator: 'true'\n".into());
    let monitoring = From::Namespaces("bootes.io/monitoring: 'true'\n".into());
    for label in ["bootes.io/operator", "bootes.io/monitoring"] {
        assert!(security.contains(label), "docs/SECURITY.md names {label}");
    }
    // Nothing gets in that no policy lets in.
    assert!(docs.iter().any(|d| d["kind"] == "NetworkPolicy"
        && d["spec"]["podSelector"]
            .as_mapping()
            .is_some_and(|m| m.is_empty())
        && d["spec"]["ingress"].is_null()
        && d["spec"]["policyTypes"][0] == "Ingress"));
    // Every policy selects pods that exist.
    for p in docs.iter().filter(|d| d["kind"] == "NetworkPolicy") {
        let sel = &p["spec"]["podSelector"];
        if sel.as_mapping().is_some_and(|m| m.is_empty()) {
            continue;
        }
        assert!(
            workloads(&docs).any(|w| selects(sel, &w["spec"]["template"]["metadata"]["labels"])),
            "NetworkPolicy {:?} selects no pod",
            p["metadata"]["name"]
        );
    }
    let ids = |w: &[&str]| -> BTreeSet<From> {
        w.iter().map(|w| From::Workload(w.to_string())).collect()
    };
    // etcd: clients are the controller, the xds-servers and the roles Job.
    let etcd = Container::named(&docs, "StatefulSet", "etcd", "etcd").unwrap();
    let got = admitted(&docs, etcd.workload);
    let expected = BTreeMap::from([
        (
            port_of(&etcd.flag("--listen-client-urls").unwrap()),
            ids(&[
                "Deployment bootes-controller",
                "Deployment bootes-xds-server",
                "Job bootes-etcd-roles",
            ]),
        ),
        (
            port_of(&etcd.flag("--listen-peer-urls").unwrap()),
            ids(&["StatefulSet etcd"]),
        ),
        (
            port_of(&etcd.flag("--listen-metrics-urls").unwrap()),
            BTreeSet::from([monitoring.clone()]),
        ),
    ]);
    assert_eq!(got, expected, "etcd");
    // The xds-server: xDS from anyone (mutual TLS decides), CSDS operators.
    let xds = Container::named(&docs, "Deployment", "bootes-xds-server", "xds-server").unwrap();
    let expected = BTreeMap::from([
        (
            port_of(&xds.flag("--listen").unwrap()),
            BTreeSet::from([From::Anyone]),
        ),
        (
            port_of(&xds.flag("--csds-listen").unwrap()),
            BTreeSet::from([operators]),
        ),
        (
            port_of(&xds.flag("--admin-listen").unwrap()),
            BTreeSet::from([monitoring.clone()]),
        ),
    ]);
    assert_eq!(admitted(&docs, xds.workload), expected, "xds-server");
    let controller =
        Container::named(&docs, "Deployment", "bootes-controller", "controller").unwrap();
    let metrics = port_of(&controller.flag("--metrics-addr").unwrap());
    assert_eq!(
        admitted(&docs, controller.workload).get(&metrics),
        Some(&BTreeSet::from([monitoring])),
        "controller metrics"
    );
    // The roles Job takes no connections.
    let job = find_doc(&docs, "Job", "bootes-etcd-roles").unwrap();
    assert!(admitted(&docs, job).is_empty());

    // The overlay keeps the policies, without the Job it removes.
    let dev = render(DEV).unwrap();
    let etcd = find_doc(&dev, "StatefulSet", "etcd").unwrap();
    assert_eq!(
        admitted(&dev, etcd).get(&2379),
        Some(&ids(&[
            "Deployment bootes-controller",
            "Deployment bootes-xds-server"
        ]))
    );
}
