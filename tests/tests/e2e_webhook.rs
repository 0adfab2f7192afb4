//! The validating admission webhook, tested as the API server uses it
//! (issue 18): `bootes-controller run` in Kubernetes mode serves it over
//! HTTPS with a certificate from `bootes-controller webhook-cert`;
//! `kube-standin` calls it for the ValidatingWebhookConfiguration of
//! manifests/webhook/ (pointed at it by `url`, with the caBundle patch
//! `webhook-cert` wrote); a real `kubectl apply` is refused with the field
//! path, or prints `Warning:`; failurePolicy, the caBundle and the
//! certificate reload are exercised; raw AdmissionReviews (the JSON the API
//! server sends) get their answers, 400 and 413.
//!
//! Needs `cargo build --workspace --bins` first, etcd and kubectl.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::ensure;

use bootes_tests::harness::{
    apply_bootes_crds, eventually, find_bootes_bin, free_port, kubectl_run, metric, test_dir,
    yaml_stream, Controller, Etcd, WebhookClient,
};
use kube_standin::admission::{review_request, Attributes, Operation, Verb};
use kube_standin::client::StandinProcess;
use serde_json::{json, Value};

const NS: &str = "shop";

/// `kubectl ARGS` (stdin from `input`): (success, stdout, stderr).
async fn kubectl(
    standin: &StandinProcess,
    args: &[&str],
    input: Option<String>,
) -> (bool, String, String) {
    let out = kubectl_run(standin, args, input).await.unwrap();
    (out.ok, out.stdout, out.stderr)
}

async fn apply(standin: &StandinProcess, docs: &[Value]) -> (bool, String, String) {
    kubectl(standin, &["apply", "-f", "-"], Some(yaml_stream(docs))).await
}

/// Sets the webhook configuration, whole (kube-standin replaces lists in a
/// strategic merge patch, so a client-side apply would drop the rules).
async fn configure(standin: &StandinProcess, config: Value) {
    let (ok, out, err) = kubectl(
        standin,
        &["apply", "--server-side", "--force-conflicts", "-f", "-"],
        Some(yaml_stream(&[config])),
    )
    .await;
    assert!(ok, "configuring the webhook: {out}{err}");
}

async fn apply_ok(standin: &StandinProcess, docs: &[Value]) -> String {
    let (ok, out, err) = apply(standin, docs).await;
    assert!(ok, "kubectl apply failed: {out}{err}");
    out + &err
}

fn cluster(ns: &str, name: &str, config: Value) -> Value {
    json!({"apiVersion": "bootes.io/v1", "kind": "Cluster",
           "metadata": {"name": name, "namespace": ns}, "spec": {"config": config}})
}

fn static_cluster(name: &str) -> Value {
    json!({"name": name, "connect_timeout": "1s", "type": "STATIC",
           "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [{"endpoint":
               {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 8080}}}}]}]}})
}

fn bad_cluster(ns: &str) -> Value {
    cluster(ns, "db", json!({"name": "db", "conect_timeout": "1s"}))
}

fn route_to(name: &str, to: &str) -> Value {
    json!({"apiVersion": "bootes.io/v1", "kind": "Route",
           "metadata": {"name": name, "namespace": NS},
           "spec": {"config": {"name": name, "virtual_hosts": [{"name": "v", "domains": ["*"],
               "routes": [{"match": {"prefix": "/"}, "route": {"cluster": to}}]}]}}})
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The ValidatingWebhookConfiguration of manifests/webhook/, reaching the
/// webhook at `url` and trusting `ca_bundle`, with `failure_policy`.
fn configuration(url: &str, ca_bundle: &str, failure_policy: &str) -> Value {
    let text = std::fs::read_to_string(repo().join("manifests/webhook/webhook.yaml")).unwrap();
    let mut config: Value = serde_yaml::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .find(|d: &Value| d["kind"] == "ValidatingWebhookConfiguration")
        .expect("the configuration in manifests/webhook/webhook.yaml");
    let hook = &mut config["webhooks"][0];
    hook["clientConfig"] = json!({"url": url, "caBundle": ca_bundle});
    hook["failurePolicy"] = json!(failure_policy);
    config
}

/// `bootes-controller webhook-cert` into `dir`: the CA bundle its patch sets.
fn webhook_cert(bin: &Path, dir: &Path) -> String {
    let out = Command::new(bin)
        .args(["webhook-cert", "--ip", "127.0.0.1", "--out-dir"])
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("kubectl patch validatingwebhookconfiguration bootes --type=json"),
        "{stdout}"
    );
    let patch: Value =
        serde_json::from_slice(&std::fs::read(dir.join("cabundle-patch.json")).unwrap()).unwrap();
    assert_eq!(patch[0]["path"], "/webhooks/0/clientConfig/caBundle");
    patch[0]["value"].as_str().unwrap().to_string()
}

struct Webhook {
    controller: Controller,
    addr: SocketAddr,
}

async fn start_controller(etcd: &Etcd, standin: &StandinProcess, certs: &Path) -> Webhook {
    let addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let (cert, key) = (certs.join("tls.crt"), certs.join("tls.key"));
    let args = [
        "--webhook-listen",
        &addr.to_string(),
        "--webhook-cert",
        cert.to_str().unwrap(),
        "--webhook-key",
        key.to_str().unwrap(),
        "--webhook-reload-interval",
        "100ms",
    ];
    let controller = Controller::start_kube("controller", etcd, &standin.kubeconfig, &args)
        .await
        .unwrap();
    Webhook { controller, addr }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_apply_is_refused_or_warned_by_the_webhook() {
    let bin = find_bootes_bin("bootes-controller", "BOOTES_CONTROLLER_BIN").unwrap();
    let standin =
        StandinProcess::start(find_bootes_bin("kube-standin", "KUBE_STANDIN_BIN").unwrap())
            .unwrap();
    apply_bootes_crds(&standin).await.unwrap();
    for ns in [NS, "optout"] {
        let (ok, _, err) = kubectl(&standin, &["create", "namespace", ns], None).await;
        assert!(ok, "{err}");
    }
    let (ok, _, err) = kubectl(
        &standin,
        &["label", "namespace", "optout", "bootes.io/webhook=disabled"],
        None,
    )
    .await;
    assert!(ok, "{err}");
    let etcd = Etcd::start().await.unwrap();
    let certs = test_dir("webhook-certs").unwrap();
    let ca_bundle = webhook_cert(&bin, certs.path());
    let mut controller = start_controller(&etcd, &standin, certs.path()).await;
    let url = format!("https://{}/validate", controller.addr);
    configure(&standin, configuration(&url, &ca_bundle, "Fail")).await;

    // A bad object: refused, with the object, the field path and the rule.
    let (ok, out, err) = apply(&standin, &[bad_cluster(NS)]).await;
    assert!(!ok, "{out}");
    assert!(
        err.contains("admission webhook \"validate.bootes.io\" denied the request: Cluster shop/db: spec.config.conect_timeout: unknown field \"conect_timeout\" in envoy.config.cluster.v3.Cluster (did you mean \"connect_timeout\"?)"),
        "{err}"
    );
    let (ok, _, _) = kubectl(
        &standin,
        &["get", "clusters.bootes.io", "db", "-n", NS],
        None,
    )
    .await;
    assert!(!ok, "the refused object was stored");
    // A good object with a dangling reference: created, with a warning.
    let out = apply_ok(&standin, &[route_to("r", "nowhere")]).await;
    assert!(out.contains("route.bootes.io/r created"), "{out}");
    assert!(
        out.contains("Warning: Route shop/r: spec.config.virtual_hosts[0].routes[0].route.cluster: route to cluster \"nowhere\": no Cluster object"),
        "{out}"
    );
    // Namespaces labelled bootes.io/webhook=disabled are not sent.
    apply_ok(&standin, &[bad_cluster("optout")]).await;
    // Status writes are not sent either (the rules' `*`): the controller
    // wrote the optout object's status.
    eventually(
        "the controller reports the opted-out object invalid",
        || {
            let standin = &standin;
            async move {
                let (_, out, _) = kubectl(
                    standin,
                    &[
                        "get",
                        "clusters.bootes.io",
                        "db",
                        "-n",
                        "optout",
                        "-o",
                        "json",
                    ],
                    None,
                )
                .await;
                let object: Value = serde_json::from_str(&out)?;
                ensure!(
                    object["status"]["conditions"]
                        .to_string()
                        .contains("InvalidConfig"),
                    "{}",
                    object["status"]
                );
                Ok(())
            }
        },
    )
    .await
    .unwrap();

    // Raw reviews, as the API server sends them.
    let ca_pem = std::fs::read(certs.path().join("tls.crt")).unwrap();
    let mut client = WebhookClient::connect(controller.addr, &ca_pem)
        .await
        .unwrap();
    let attrs = |op: Operation, dry_run: bool| Attributes {
        group: "bootes.io".into(),
        version: "v1".into(),
        kind: "Cluster".into(),
        resource: "clusters".into(),
        sub_resource: None,
        namespace: Some(NS.into()),
        name: "web".into(),
        operation: op,
        verb: Verb::Patch,
        dry_run,
    };
    let good = cluster(NS, "web", static_cluster("web"));
    let mut bad = cluster(
        NS,
        "web",
        json!({"name": "web", "connect_timeout": "250ms"}),
    );
    bad["metadata"]["generation"] = json!(2);
    let update = review_request("u-1", &attrs(Operation::Update, true), &bad, Some(&good));
    let (code, body) = client.post(update.to_string()).await.unwrap();
    assert_eq!(code, 200);
    let answer: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(answer["kind"], "AdmissionReview");
    assert_eq!(answer["response"]["uid"], "u-1");
    assert_eq!(answer["response"]["allowed"], false);
    assert!(
        answer["response"]["status"]["message"]
            .as_str()
            .unwrap()
            .starts_with(
                "Cluster shop/web: spec.config.connect_timeout: \"250ms\" is not a duration"
            ),
        "{answer}"
    );
    let create = review_request("c-1", &attrs(Operation::Create, false), &good, None);
    let (code, body) = client.post(create.to_string()).await.unwrap();
    assert_eq!(code, 200);
    let answer: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(answer["response"]["allowed"], true, "{answer}");
    // Malformed: 400 with what is wrong.
    let (code, body) = client.post("{\"kind\": \"AdmissionReview\"").await.unwrap();
    assert_eq!(code, 400);
    assert!(String::from_utf8_lossy(&body).contains("not an admission.k8s.io/v1 AdmissionReview"));
    // Over the bound (3 MiB by default): refused, and the process lives on.
    let mut client = WebhookClient::connect(controller.addr, &ca_pem)
        .await
        .unwrap();
    let (code, _) = client.post(vec![b' '; 3 * 1024 * 1024 + 1]).await.unwrap();
    assert_eq!(code, 413);
    controller.controller.process().check_running().unwrap();
    for (result, at_least) in [
        ("denied", 2.0),
        ("warned", 1.0),
        ("allowed", 1.0),
        ("error", 1.0),
    ] {
        let n = metric(
            controller.controller.metrics_addr(),
            &format!("bootes_controller_webhook_reviews_total{{result=\"{result}\"}}"),
        )
        .await
        .unwrap();
        assert!(n >= at_least, "{result}: {n}");
    }

    // The certificate is re-read when its files change: a new pair, and
    // the configuration trusting only it, works without a restart.
    let new_bundle = webhook_cert(&bin, certs.path());
    assert_ne!(new_bundle, ca_bundle);
    configure(&standin, configuration(&url, &new_bundle, "Fail")).await;
    eventually("the webhook presents the new certificate", || {
        let standin = &standin;
        async move {
            let (ok, _, err) = apply(standin, &[bad_cluster(NS)]).await;
            ensure!(!ok && err.contains("denied the request"), "{err}");
            Ok(())
        }
    })
    .await
    .unwrap();

    // A caBundle that does not sign the webhook's certificate: the call
    // fails, and failurePolicy Fail refuses the request.
    configure(&standin, configuration(&url, &ca_bundle, "Fail")).await;
    let (ok, _, err) = apply(&standin, &[cluster(NS, "ok", static_cluster("ok"))]).await;
    assert!(!ok);
    assert!(
        err.contains("failed calling webhook \"validate.bootes.io\""),
        "{err}"
    );
    // Nothing listening: Fail refuses, Ignore lets the request through.
    let dead = format!("https://127.0.0.1:{}/validate", free_port());
    configure(&standin, configuration(&dead, &new_bundle, "Fail")).await;
    let (ok, _, err) = apply(&standin, &[cluster(NS, "ok", static_cluster("ok"))]).await;
    assert!(!ok);
    assert!(err.contains("failed calling webhook"), "{err}");
    configure(&standin, configuration(&dead, &new_bundle, "Ignore")).await;
    apply_ok(&standin, &[cluster(NS, "ok", static_cluster("ok"))]).await;
}
