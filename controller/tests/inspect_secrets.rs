//! Secret material never shows where operators look: not in the controller's
//! logs (text or JSON, at debug level, for valid, invalid and conflicting
//! Secret objects), and not in `inspect` output unless `--show-secrets`.

use std::path::Path;

use anyhow::{ensure, Result};
use bootes_tests::harness::{eventually, pod, Controller, Etcd, ManifestDir};
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_bootes-controller");

/// Every string that is secret material in the objects below.
const SECRETS: &[&str] = &[
    "VALID-KEY-MATERIAL",
    "UNKNOWN-FIELD-KEY",
    "BAD-BASE64-KEY",
    "PEM-WHERE-AN-OBJECT-GOES",
    "WRONG-TYPE-PASSWORD",
    "CONFLICT-KEY-A",
    "CONFLICT-KEY-B",
    "GENERIC-SECRET-VALUE",
];

fn secret(name: &str, config: Value) -> Value {
    json!({"apiVersion": "bootes.io/v1", "kind": "Secret",
           "metadata": {"name": name, "namespace": "shop"},
           "spec": {"config": config}})
}

/// A certificate and key in PEM framing (Bootes checks it); the secret
/// material is a header line of the key.
fn key(material: &str) -> Value {
    json!({"certificate_chain": {"inline_string": "-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n"},
           "private_key": {"inline_string": format!(
               "-----BEGIN PRIVATE KEY-----\nComment: {material}\nMIGHAgEA\n-----END PRIVATE KEY-----\n")}})
}

fn objects() -> Vec<Value> {
    vec![
        pod("shop", "web-0", &[("app", "web")]),
        secret(
            "valid",
            json!({"name": "valid", "tls_certificate": key("VALID-KEY-MATERIAL")}),
        ),
        secret(
            "generic",
            json!({"name": "generic", "generic_secret": {"secret": {"inline_string": "GENERIC-SECRET-VALUE"}}}),
        ),
        // Invalid in every way that could make an error message quote a value.
        secret(
            "unknown-field",
            json!({"name": "unknown-field", "tls_certificate": {
                "private_key": {"inline_string": "UNKNOWN-FIELD-KEY"}, "bogus": "x"}}),
        ),
        secret(
            "bad-base64",
            json!({"name": "bad-base64", "tls_certificate": {
                "private_key": {"inline_bytes": "BAD-BASE64-KEY!!"}}}),
        ),
        secret(
            "pem-string",
            json!({"name": "pem-string", "tls_certificate": {
                "private_key": "-----BEGIN PRIVATE KEY-----PEM-WHERE-AN-OBJECT-GOES"}}),
        ),
        secret(
            "wrong-type",
            json!({"name": "wrong-type", "tls_certificate": {
                "private_key": {"inline_string": "k"},
                "password": {"inline_string": ["WRONG-TYPE-PASSWORD"]}}}),
        ),
        // Two objects, one resource name: one of them is a Conflict.
        secret(
            "dup-a",
            json!({"name": "dup", "tls_certificate": key("CONFLICT-KEY-A")}),
        ),
        secret(
            "dup-b",
            json!({"name": "dup", "tls_certificate": key("CONFLICT-KEY-B")}),
        ),
    ]
}

fn leaks(text: &str) -> Vec<&'static str> {
    SECRETS
        .iter()
        .copied()
        .filter(|s| text.contains(s))
        .collect()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_material_never_reaches_logs_or_inspect_output() -> Result<()> {
    let m = ManifestDir::new()?;
    m.write_docs("secrets.yaml", &objects())?;
    let etcd = Etcd::start().await?;
    let mut text = Controller::start_with_args(&etcd, m.path(), &["--log-format", "text"]).await?;
    let mut json_log =
        Controller::start_with_args(&etcd, m.path(), &["--log-format", "json"]).await?;

    // Both replicas have validated everything (each logs every rejection).
    let rejected = ["unknown-field", "bad-base64", "pem-string", "wrong-type"];
    for c in [&mut text, &mut json_log] {
        let path = c.process().stderr_path().to_path_buf();
        eventually("every invalid Secret is logged as rejected", || {
            let log = read(&path);
            async move {
                for name in rejected {
                    ensure!(
                        log.contains(&format!("shop/{name}")),
                        "no line about {name} yet"
                    );
                }
                Ok(())
            }
        })
        .await?;
    }
    // The leader logs statuses, the conflict among them.
    eventually("the conflict is logged", || {
        let logs = read(text.process().stderr_path()) + &read(json_log.process().stderr_path());
        async move {
            ensure!(logs.contains("Conflict"), "no Conflict line yet");
            Ok(())
        }
    })
    .await?;

    for c in [&mut text, &mut json_log] {
        let log = read(c.process().stderr_path()) + &read(c.process().stdout_path());
        assert!(
            leaks(&log).is_empty(),
            "secret material in the controller's log: {:?} (error messages must not quote \
             the value of a field Envoy marks (udpa.annotations.sensitive), nor of anything \
             inside it)\n{log}",
            leaks(&log)
        );
    }
    let json_lines = read(json_log.process().stderr_path());
    assert!(
        json_lines
            .lines()
            .filter(|l| !l.trim().is_empty())
            .all(|l| serde_json::from_str::<Value>(l).is_ok()),
        "--log-format json writes one JSON object per line:\n{json_lines}"
    );

    // inspect: redacted by default, shown on request.
    let inspect = |extra: &[&str]| {
        std::process::Command::new(BIN)
            .args(["inspect", "snapshot", "web-0.shop", "--etcd-endpoints"])
            .arg(etcd.endpoint())
            .args(extra)
            .output()
            .expect("the binary runs")
    };
    let out = eventually("inspect shows the valid Secrets", || {
        let out = inspect(&["-o", "json"]);
        async move {
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            ensure!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            ensure!(
                text.contains("\"valid\"") && text.contains("\"generic\""),
                "{text}"
            );
            Ok(text)
        }
    })
    .await?;
    assert!(leaks(&out).is_empty(), "{:?} in\n{out}", leaks(&out));
    let yaml = String::from_utf8(inspect(&[]).stdout)?;
    assert!(leaks(&yaml).is_empty(), "{:?} in\n{yaml}", leaks(&yaml));
    let shown = String::from_utf8(inspect(&["--show-secrets"]).stdout)?;
    assert!(shown.contains("VALID-KEY-MATERIAL"), "{shown}");
    assert!(shown.contains("GENERIC-SECRET-VALUE"), "{shown}");
    Ok(())
}
