//! `docker-compose.yml` and the `Dockerfile`, checked without a Docker
//! engine: the compose file parses, every file it mounts exists, every
//! command uses flags the real binaries accept, every certificate file a
//! service names is one the one-shot `certs` service writes
//! (deploy/compose/make-certs.sh, run here with the local openssl), with
//! the common name and names its reader needs, so that every hop is TLS and
//! each process is its own etcd user; the Envoy bootstrap passes the real
//! Envoy's `--mode validate` (with those certificates), the manifests it mounts are
//! manifests/examples/ (two files replaced by deploy/compose/manifests/) and
//! pass `bootes-controller validate`, and addresses and ports agree between
//! the services, the manifests and the bootstrap.
//!
//! Needs `cargo build --workspace --bins` (as scripts/test.sh does) and
//! Envoy (scripts/install-tools.sh).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use bootes_tests::harness::{find_bootes_bin, find_envoy, flags_used};
use serde_yaml::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn compose() -> Value {
    let text = std::fs::read_to_string(repo().join("docker-compose.yml")).unwrap();
    let mut v: Value = serde_yaml::from_str(&text).expect("docker-compose.yml is YAML");
    v.apply_merge().expect("merge keys resolve");
    v
}

fn service<'a>(c: &'a Value, name: &str) -> &'a Value {
    let s = &c["services"][name];
    assert!(s.is_mapping(), "no service {name} in docker-compose.yml");
    s
}

fn strs(v: &Value) -> Vec<String> {
    v.as_sequence()
        .unwrap_or_else(|| panic!("expected a list, got {v:?}"))
        .iter()
        .map(|x| x.as_str().expect("a string").to_string())
        .collect()
}

/// The value of `flag` in `args` (either form).
fn flag_value(args: &[String], flag: &str) -> String {
    bootes_tests::harness::flag_value(args, flag)
        .unwrap_or_else(|| panic!("{flag} missing from {args:?}"))
}

/// Long flags in a binary's `--help`.
fn flags_of(bin: &Path, args: &[&str]) -> BTreeSet<String> {
    bootes_tests::harness::flags_of(bin, args).unwrap()
}

fn controller_bin() -> PathBuf {
    find_bootes_bin("bootes-controller", "BOOTES_CONTROLLER_BIN").unwrap()
}

fn xds_bin() -> PathBuf {
    find_bootes_bin("bootes-xds-server", "BOOTES_XDS_SERVER_BIN").unwrap()
}

/// (host path, container path) of each bind mount of `svc`.
fn binds(svc: &Value) -> Vec<(String, String)> {
    strs(&svc["volumes"])
        .into_iter()
        .filter(|v| v.starts_with("./"))
        .map(|v| {
            let parts: Vec<&str> = v.split(':').collect();
            assert!(
                parts.len() == 3 && parts[2] == "ro",
                "{v}: bind mounts are read-only"
            );
            (parts[0].to_string(), parts[1].to_string())
        })
        .collect()
}

#[test]
fn every_service_is_there_with_pinned_images() {
    let c = compose();
    let names: BTreeSet<&str> = c["services"]
        .as_mapping()
        .unwrap()
        .keys()
        .map(|k| k.as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        BTreeSet::from([
            "certs",
            "etcd",
            "etcd-roles",
            "controller",
            "xds-server-a",
            "xds-server-b",
            "envoy",
            "web",
            "api"
        ])
    );
    for name in &names {
        let svc = service(&c, name);
        let image = svc["image"]
            .as_str()
            .unwrap_or_else(|| panic!("{name}: no image"));
        let (_, tag) = image
            .rsplit_once(':')
            .unwrap_or_else(|| panic!("{name}: {image} is not pinned"));
        assert!(
            tag != "latest" && !tag.is_empty(),
            "{name}: {image} is not pinned"
        );
        if svc["build"].is_mapping() {
            assert_eq!(svc["build"]["context"], ".");
            assert_eq!(svc["build"]["dockerfile"], "Dockerfile");
        }
    }
    assert!(service(&c, "envoy")["image"]
        .as_str()
        .unwrap()
        .starts_with("envoyproxy/envoy:v1.40"));
    assert!(service(&c, "etcd")["image"]
        .as_str()
        .unwrap()
        .contains("etcd"));
}

#[test]
fn every_mounted_file_exists() {
    let c = compose();
    let mut count = 0;
    for (name, svc) in c["services"].as_mapping().unwrap() {
        if svc["volumes"].is_null() {
            continue;
        }
        for (host, _) in binds(svc) {
            let path = repo().join(&host);
            assert!(
                path.is_file(),
                "{name:?} mounts {host}, which does not exist"
            );
            count += 1;
        }
    }
    assert!(count >= 7, "{count} bind mounts");
}

#[test]
fn commands_use_flags_the_binaries_accept() {
    let c = compose();
    let controller = strs(&service(&c, "controller")["command"]);
    assert_eq!(controller[0], "run");
    let accepted = flags_of(&controller_bin(), &["run"]);
    let used = flags_used(&controller[1..]);
    assert!(
        used.is_subset(&accepted),
        "controller flags {:?} are not accepted by `bootes-controller run` ({accepted:?})",
        used.difference(&accepted).collect::<Vec<_>>()
    );
    let accepted = flags_of(&xds_bin(), &[]);
    for name in ["xds-server-a", "xds-server-b"] {
        let args = strs(&service(&c, name)["command"]);
        let used = flags_used(&args);
        assert!(
            used.is_subset(&accepted),
            "{name} flags {:?} are not accepted by bootes-xds-server ({accepted:?})",
            used.difference(&accepted).collect::<Vec<_>>()
        );
        assert_eq!(
            flag_value(&args, "--replica-id"),
            name,
            "replica IDs differ"
        );
    }
    // Every Bootes process finds etcd where the etcd service listens.
    let etcd = strs(&service(&c, "etcd")["command"]);
    let client_port = flag_value(&etcd, "--listen-client-urls")
        .rsplit(':')
        .next()
        .unwrap()
        .to_string();
    for name in ["controller", "xds-server-a", "xds-server-b"] {
        let args = strs(&service(&c, name)["command"]);
        assert_eq!(
            flag_value(&args, "--etcd-endpoints"),
            format!("https://etcd:{client_port}"),
            "{name}"
        );
        assert!(
            service(&c, name)["depends_on"]["etcd-roles"]["condition"]
                == "service_completed_successfully",
            "{name} waits for etcd's users and roles"
        );
    }
    let roles = service(&c, "etcd-roles");
    assert_eq!(
        roles["environment"]["ETCDCTL_ENDPOINTS"],
        format!("https://etcd:{client_port}").as_str()
    );
    assert_eq!(roles["depends_on"]["etcd"]["condition"], "service_healthy");
    assert_eq!(roles["environment"]["BOOTES_ETCD_PASSWORDLESS"], "true");
}

/// Parses the Envoy bootstrap mounted into the envoy service.
fn envoy_bootstrap(c: &Value) -> (PathBuf, Value) {
    let envoy = service(c, "envoy");
    let args = strs(&envoy["command"]);
    let config = flag_value(&args, "-c");
    let (host, _) = binds(envoy)
        .into_iter()
        .find(|(_, container)| *container == config)
        .unwrap_or_else(|| panic!("envoy's -c {config} is not a mounted file"));
    let path = repo().join(host);
    let bootstrap = serde_yaml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    (path, bootstrap)
}

#[test]
fn envoy_bootstrap_is_valid_for_the_real_envoy() {
    let c = compose();
    let (original, _) = envoy_bootstrap(&c);
    // Envoy reads the certificate files it names: those of make-certs.sh.
    let certs = made_certs();
    let path = certs.path().join("envoy.yaml");
    std::fs::write(
        &path,
        std::fs::read_to_string(&original).unwrap().replace(
            "/certs/",
            &format!("{}/", certs.path().join("certs").display()),
        ),
    )
    .unwrap();
    let envoy = find_envoy().unwrap();
    let out = Command::new(&envoy)
        .args(["--mode", "validate", "--disable-hot-restart", "-c"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "envoy --mode validate -c {} failed:\n{}\n{}",
        path.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // And validation is not a rubber stamp: a broken bootstrap fails.
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.yaml");
    std::fs::write(
        &broken,
        std::fs::read_to_string(&path).unwrap().replace(
            "connect_timeout: 1s",
            "connect_timeout: 1s\n      conect_timeout: 1s",
        ),
    )
    .unwrap();
    let out = Command::new(&envoy)
        .args(["--mode", "validate", "--disable-hot-restart", "-c"])
        .arg(&broken)
        .output()
        .unwrap();
    assert!(!out.status.success(), "Envoy accepted an unknown field");
}

#[test]
fn envoy_reaches_both_xds_servers_as_the_pod_of_the_examples() {
    let c = compose();
    let (_, b) = envoy_bootstrap(&c);
    let ads = &b["dynamic_resources"]["ads_config"];
    let cluster_name = ads["grpc_services"][0]["envoy_grpc"]["cluster_name"]
        .as_str()
        .unwrap();
    let cluster = b["static_resources"]["clusters"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|c| c["name"] == cluster_name)
        .expect("the ADS cluster is defined");
    let targets: BTreeSet<(String, u64)> = cluster["load_assignment"]["endpoints"][0]
        ["lb_endpoints"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|e| {
            let a = &e["endpoint"]["address"]["socket_address"];
            (
                a["address"].as_str().unwrap().to_string(),
                a["port_value"].as_u64().unwrap(),
            )
        })
        .collect();
    let expected: BTreeSet<(String, u64)> = ["xds-server-a", "xds-server-b"]
        .iter()
        .map(|name| {
            let args = strs(&service(&c, name)["command"]);
            let listen = flag_value(&args, "--listen");
            (
                name.to_string(),
                listen.rsplit(':').next().unwrap().parse().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        targets, expected,
        "the bootstrap names both replicas and their gRPC ports"
    );
    // Over TLS, to the name the servers' certificate carries, presenting
    // the Envoy's own.
    let tls = &cluster["transport_socket"]["typed_config"];
    assert_eq!(tls["sni"], "bootes-xds-server");
    let context = &tls["common_tls_context"];
    assert_eq!(
        context["validation_context"]["match_typed_subject_alt_names"][0]["matcher"]["exact"],
        "bootes-xds-server"
    );
    let node_id = b["node"]["id"].as_str().unwrap();
    let pods: Vec<String> = manifest_docs(&c)
        .iter()
        .filter(|d| d["kind"] == "Pod")
        .map(|d| {
            format!(
                "{}.{}",
                d["metadata"]["name"].as_str().unwrap(),
                d["metadata"]["namespace"].as_str().unwrap()
            )
        })
        .collect();
    assert!(
        pods.iter().any(|p| p == node_id),
        "node {node_id} is none of the Pods {pods:?}"
    );
}

/// deploy/compose/make-certs.sh run (twice: the second run keeps the
/// first's files) into `<tempdir>/certs`, as the `certs` service does.
fn made_certs() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let c = compose();
    let certs = service(&c, "certs");
    let command = strs(&certs["command"]);
    assert_eq!(command[0], "/usr/local/share/bootes/make-certs.sh");
    assert_eq!(command[1], "/certs");
    assert!(strs(&certs["volumes"]).contains(&"certs:/certs".to_string()));
    let mut first = None;
    for run in 0..2 {
        let out = Command::new("bash")
            .arg(repo().join("deploy/compose/make-certs.sh"))
            .arg(dir.path().join("certs"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "make-certs.sh (run {run}): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let ca = std::fs::read(dir.path().join("certs/ca.crt")).unwrap();
        assert_eq!(
            *first.get_or_insert(ca.clone()),
            ca,
            "a second run changed the CA"
        );
    }
    dir
}

/// `openssl x509 -noout -subject -ext subjectAltName` of a certificate.
fn describe(cert: &Path) -> String {
    let out = Command::new("openssl")
        .args([
            "x509",
            "-noout",
            "-subject",
            "-ext",
            "subjectAltName",
            "-in",
        ])
        .arg(cert)
        .output()
        .unwrap();
    assert!(out.status.success(), "openssl x509 {}", cert.display());
    String::from_utf8(out.stdout).unwrap()
}

/// The subject's common name of a certificate.
fn common_name(cert: &Path) -> String {
    let text = describe(cert);
    let subject = text.lines().next().unwrap();
    subject
        .rsplit("CN")
        .next()
        .unwrap()
        .trim_start_matches([' ', '='])
        .trim()
        .to_string()
}

/// Every hop is TLS with the identities docs/SECURITY.md asks for, from
/// files the `certs` service writes into the volume each reader mounts.
#[test]
fn certificates_come_from_the_one_shot_service_with_the_right_names() {
    let c = compose();
    let made = made_certs();
    let local = |p: &str| -> PathBuf {
        let rest = p
            .strip_prefix("/certs/")
            .unwrap_or_else(|| panic!("{p} is not in /certs"));
        let f = made.path().join("certs").join(rest);
        assert!(f.is_file(), "{p} is not written by make-certs.sh");
        f
    };
    let services = c["services"].as_mapping().unwrap();
    for (name, svc) in services {
        let name = name.as_str().unwrap();
        let mut named: Vec<String> = svc["command"]
            .as_sequence()
            .map(|_| strs(&svc["command"]))
            .unwrap_or_default()
            .iter()
            .chain(
                svc["healthcheck"]["test"]
                    .as_sequence()
                    .map(|_| strs(&svc["healthcheck"]["test"]))
                    .unwrap_or_default()
                    .iter(),
            )
            .map(|a| a.split_once('=').map_or(a.clone(), |(_, v)| v.to_string()))
            .collect();
        if let Some(env) = svc["environment"].as_mapping() {
            named.extend(env.values().filter_map(|v| v.as_str().map(str::to_string)));
        }
        let named: Vec<String> = named
            .into_iter()
            .filter(|a| a.starts_with("/certs/"))
            .collect();
        if name == "certs" {
            continue;
        }
        if !named.is_empty() {
            assert!(
                strs(&svc["volumes"]).iter().any(|v| v == "certs:/certs:ro"),
                "{name} reads /certs without mounting the certs volume read-only"
            );
            assert_eq!(
                svc["depends_on"]["certs"]["condition"].as_str().or(
                    // Through etcd-roles, which waits for certs.
                    svc["depends_on"]["etcd-roles"]["condition"].as_str()
                ),
                Some("service_completed_successfully"),
                "{name} starts after the certificates exist"
            );
        }
        for p in &named {
            local(p);
        }
    }
    // Each etcd client is its own etcd user.
    for (name, user) in [
        ("controller", "bootes-controller"),
        ("xds-server-a", "bootes-xds-server"),
        ("xds-server-b", "bootes-xds-server"),
    ] {
        let args = strs(&service(&c, name)["command"]);
        for flag in ["--etcd-ca", "--etcd-key", "--secret-key-file"] {
            local(&flag_value(&args, flag));
        }
        // A certificate and its own key (and CA), from one directory.
        let dir = |flag: &str| {
            local(&flag_value(&args, flag))
                .parent()
                .unwrap()
                .to_path_buf()
        };
        assert_eq!(dir("--etcd-cert"), dir("--etcd-key"), "{name}");
        assert_eq!(dir("--etcd-cert"), dir("--etcd-ca"), "{name}");
        assert_eq!(
            common_name(&local(&flag_value(&args, "--etcd-cert"))),
            user,
            "{name}"
        );
        if name.starts_with("xds-server") {
            // Mutual TLS on the xDS port, with a certificate the Envoy accepts.
            let served = describe(&local(&flag_value(&args, "--tls-cert")));
            assert!(served.contains("DNS:bootes-xds-server"), "{served}");
            local(&flag_value(&args, "--tls-key"));
            local(&flag_value(&args, "--tls-client-ca"));
        }
    }
    let roles = &service(&c, "etcd-roles")["environment"];
    assert_eq!(
        common_name(&local(roles["ETCDCTL_CERT"].as_str().unwrap())),
        "root"
    );
    // etcd: TLS only, client certificates required.
    let etcd = strs(&service(&c, "etcd")["command"]);
    for flag in ["--client-cert-auth", "--peer-client-cert-auth"] {
        assert!(etcd.iter().any(|a| a == flag), "etcd without {flag}");
    }
    for flag in [
        "--listen-client-urls",
        "--advertise-client-urls",
        "--listen-peer-urls",
    ] {
        assert!(flag_value(&etcd, flag).starts_with("https://"), "{flag}");
    }
    assert!(describe(&local(&flag_value(&etcd, "--cert-file"))).contains("DNS:etcd"));
    // The Envoy's certificate names its node.
    let (_, b) = envoy_bootstrap(&c);
    let node = b["node"]["id"].as_str().unwrap();
    let cert = b["static_resources"]["clusters"][0]["transport_socket"]["typed_config"]
        ["common_tls_context"]["tls_certificates"][0]["certificate_chain"]["filename"]
        .as_str()
        .unwrap();
    assert!(describe(&local(cert)).contains(&format!("DNS:{node}")));
}

/// The files the controller reads: container name → host path.
fn manifest_mounts(c: &Value) -> BTreeMap<String, String> {
    let svc = service(c, "controller");
    let dir = flag_value(&strs(&svc["command"]), "--manifests");
    binds(svc)
        .into_iter()
        .filter_map(|(host, container)| {
            let name = container.strip_prefix(&format!("{dir}/"))?;
            Some((name.to_string(), host))
        })
        .collect()
}

fn docs_of(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .filter(|v: &Value| !v.is_null())
        .collect()
}

fn manifest_docs(c: &Value) -> Vec<Value> {
    manifest_mounts(c)
        .values()
        .flat_map(|host| docs_of(&repo().join(host)))
        .collect()
}

fn identities(docs: &[Value]) -> BTreeSet<String> {
    docs.iter()
        .map(|d| {
            format!(
                "{} {}/{}",
                d["kind"].as_str().unwrap(),
                d["metadata"]["namespace"].as_str().unwrap(),
                d["metadata"]["name"].as_str().unwrap()
            )
        })
        .collect()
}

#[test]
fn the_controller_reads_the_examples_with_two_files_replaced() {
    let c = compose();
    let mounts = manifest_mounts(&c);
    // Files with Bootes objects or Pods; the kustomization and the Namespace
    // (Kubernetes only) mean nothing to a directory-mode controller.
    let examples: BTreeSet<String> = std::fs::read_dir(repo().join("manifests/examples"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".yaml"))
        .filter(|n| {
            docs_of(&repo().join("manifests/examples").join(n))
                .iter()
                .any(|d| d["apiVersion"] == "bootes.io/v1" || d["kind"] == "Pod")
        })
        .collect();
    assert_eq!(
        mounts.keys().cloned().collect::<BTreeSet<_>>(),
        examples,
        "every file of manifests/examples/ with objects or pods is mounted (or replaced)"
    );
    let mut replaced = Vec::new();
    for (name, host) in &mounts {
        let example = format!("./manifests/examples/{name}");
        if *host == example {
            continue;
        }
        assert_eq!(
            *host,
            format!("./deploy/compose/manifests/{name}"),
            "a replacement lives in deploy/compose/manifests/ under the same name"
        );
        assert_eq!(
            identities(&docs_of(&repo().join(host))),
            identities(&docs_of(&repo().join(&example))),
            "{host} defines the same objects as {example}"
        );
        replaced.push(name.as_str());
    }
    assert_eq!(replaced, ["endpoints.yaml", "listener.yaml"]);

    // What the controller reads is valid.
    let dir = tempfile::tempdir().unwrap();
    for (name, host) in &mounts {
        std::fs::copy(repo().join(host), dir.path().join(name)).unwrap();
    }
    let out = Command::new(controller_bin())
        .args(["validate", "-f"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "bootes-controller validate on the compose manifests:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `host:container` published ports of a service.
fn published(svc: &Value) -> BTreeMap<u64, u64> {
    strs(&svc["ports"])
        .iter()
        .map(|p| {
            let (host, container) = p.split_once(':').unwrap();
            (container.parse().unwrap(), host.parse().unwrap())
        })
        .collect()
}

#[test]
fn endpoints_and_listener_match_the_services() {
    let c = compose();
    let docs = manifest_docs(&c);
    // Endpoints: the fixed addresses of web and api, on the port they listen on.
    let mut upstreams = BTreeMap::new();
    for name in ["web", "api"] {
        let svc = service(&c, name);
        let ip = svc["networks"]["bootes"]["ipv4_address"]
            .as_str()
            .unwrap_or_else(|| panic!("{name} has no fixed address"))
            .to_string();
        let args = strs(&svc["command"]);
        let port: u64 = flag_value(&args, "-listen")
            .trim_start_matches(':')
            .parse()
            .unwrap();
        upstreams.insert(name.to_string(), (ip, port));
    }
    let subnet = c["networks"]["bootes"]["ipam"]["config"][0]["subnet"]
        .as_str()
        .unwrap();
    let net = subnet
        .split('/')
        .next()
        .unwrap()
        .rsplit_once('.')
        .unwrap()
        .0;
    for (ip, _) in upstreams.values() {
        assert!(ip.starts_with(&format!("{net}.")), "{ip} outside {subnet}");
    }
    let endpoints: BTreeMap<String, (String, u64)> = docs
        .iter()
        .filter(|d| d["kind"] == "Endpoint")
        .map(|d| {
            let cfg = &d["spec"]["config"];
            let a =
                &cfg["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"];
            (
                cfg["cluster_name"].as_str().unwrap().to_string(),
                (
                    a["address"].as_str().unwrap().to_string(),
                    a["port_value"].as_u64().unwrap(),
                ),
            )
        })
        .collect();
    assert_eq!(
        endpoints, upstreams,
        "Endpoint addresses are the upstream services'"
    );

    // The Listener envoy-0 gets listens on all interfaces, on a published port.
    let envoy_ports = published(service(&c, "envoy"));
    let listener = docs
        .iter()
        .find(|d| d["kind"] == "Listener" && d["metadata"]["name"] == "listener-1")
        .unwrap();
    let a = &listener["spec"]["config"]["address"]["socket_address"];
    assert_eq!(a["address"], "0.0.0.0");
    let port = a["port_value"].as_u64().unwrap();
    assert!(
        envoy_ports.contains_key(&port),
        "listener port {port} is not published"
    );
    let (_, b) = envoy_bootstrap(&c);
    let admin = b["admin"]["address"]["socket_address"]["port_value"]
        .as_u64()
        .unwrap();
    assert!(
        envoy_ports.contains_key(&admin),
        "Envoy admin port {admin} is not published"
    );
    // Health ports are the ones the processes serve.
    let controller = strs(&service(&c, "controller")["command"]);
    let metrics: u64 = flag_value(&controller, "--metrics-addr")
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(published(service(&c, "controller")).contains_key(&metrics));
}

#[test]
fn dockerfile_builds_both_binaries_into_non_root_images() {
    let text = std::fs::read_to_string(repo().join("Dockerfile")).unwrap();
    let mut stages: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut current = String::new();
    let mut builder = None;
    for line in text.lines().map(str::trim) {
        if let Some(from) = line.strip_prefix("FROM ") {
            let parts: Vec<&str> = from.split_whitespace().collect();
            current = parts
                .iter()
                .position(|p| p.eq_ignore_ascii_case("AS"))
                .map(|i| parts[i + 1].to_string())
                .unwrap_or_default();
            if parts[0].starts_with("rust:") {
                builder = Some(parts[0].to_string());
            }
        }
        stages
            .entry(current.clone())
            .or_default()
            .push(line.to_string());
    }
    // The builder's Rust is at least the workspace's rust-version.
    let builder = builder.expect("a rust: builder stage");
    let version = |s: &str| -> (u32, u32) {
        let mut it = s.split(['.', '-']).map(|p| p.parse().unwrap_or(0));
        (it.next().unwrap(), it.next().unwrap())
    };
    let cargo = std::fs::read_to_string(repo().join("Cargo.toml")).unwrap();
    let workspace = workspace_rust_version(&cargo);
    let image = version(builder.trim_start_matches("rust:"));
    assert!(
        image >= version(&workspace),
        "{builder} is older than the workspace's rust-version {workspace}"
    );
    // Every target compose builds exists, runs as non-root, and runs its binary.
    let c = compose();
    for (target, bin) in [
        ("controller", "bootes-controller"),
        ("xds-server", "bootes-xds-server"),
    ] {
        let stage = stages
            .get(target)
            .unwrap_or_else(|| panic!("no stage {target} in the Dockerfile"));
        let user = stage
            .iter()
            .rev()
            .find_map(|l| l.strip_prefix("USER "))
            .unwrap_or_else(|| panic!("stage {target} sets no USER"));
        assert!(
            !user.starts_with("root") && !user.starts_with('0'),
            "{target} runs as {user}"
        );
        assert!(
            stage
                .iter()
                .any(|l| l.starts_with("ENTRYPOINT") && l.contains(bin)),
            "{target} runs {bin}"
        );
        assert!(stage
            .iter()
            .any(|l| l.starts_with("COPY --from=build") && l.contains(bin)));
        assert!(
            c["services"]
                .as_mapping()
                .unwrap()
                .values()
                .any(|s| s["build"]["target"] == target),
            "compose builds {target}"
        );
    }
    // The setup image: the scripts the one-shot services run, non-root.
    let setup = stages.get("setup").expect("a setup stage");
    assert!(setup.iter().any(|l| l.starts_with(
        "COPY manifests/etcd/roles.sh deploy/compose/make-certs.sh /usr/local/share/bootes/"
    )));
    assert!(setup.iter().any(|l| l == "USER 65532:65532"));
    for name in ["certs", "etcd-roles"] {
        assert_eq!(service(&c, name)["image"], "bootes-setup:dev", "{name}");
    }
    assert_eq!(service(&c, "certs")["build"]["target"], "setup");
    let build = stages.get("build").expect("a build stage");
    assert!(build
        .iter()
        .any(|l| l.contains("-p bootes-controller") && l.contains("-p bootes-xds-server")));
    // The build context leaves out the target directory.
    let ignore = std::fs::read_to_string(repo().join(".dockerignore")).unwrap();
    assert!(ignore.lines().any(|l| l.trim_end_matches('/') == "target"));
}

/// The `rust-version` of `[workspace.package]`, without a TOML parser.
fn workspace_rust_version(cargo_toml: &str) -> String {
    let line = cargo_toml
        .lines()
        .find(|l| l.trim_start().starts_with("rust-version"))
        .expect("rust-version in Cargo.toml");
    line.split('"').nth(1).unwrap().to_string()
}
