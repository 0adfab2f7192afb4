//! The crate layout of docs/ARCHITECTURE.md, checked: the pure crates have no
//! I/O dependency, and every crate depends only on the workspace crates below
//! it. Reads `cargo metadata` (the Cargo.toml files), so a new dependency in
//! the wrong place fails here.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use serde_json::Value;

/// Crates that do no I/O: no async runtime, no network, no Kubernetes, no etcd.
const PURE: &[&str] = &["bootes-proto", "bootes-envoy", "bootes-core", "bootes-xds"];

/// Dependencies that mean I/O (or a runtime for it). Prefix match, so
/// `tokio-stream`, `kube-runtime`, `tonic-health`, `hyper-util` count too.
const IO: &[&str] = &[
    "tokio",
    "kube",
    "k8s-openapi",
    "etcd-client",
    "tonic",
    "hyper",
    "h2",
    "tower",
    "axum",
    "backon",
    "prometheus-client",
    "bootes-etcd",
    "bootes-runtime",
    "kube-standin",
];

/// The workspace crates each crate may depend on (normal dependencies).
fn allowed() -> BTreeMap<&'static str, &'static [&'static str]> {
    BTreeMap::from([
        ("bootes-proto", &[][..]),
        ("bootes-envoy", &["bootes-proto"][..]),
        ("bootes-core", &["bootes-proto", "bootes-envoy"][..]),
        ("bootes-xds", &["bootes-proto"][..]),
        ("bootes-etcd", &["bootes-proto"][..]),
        ("bootes-runtime", &[][..]),
        ("bootes-tls", &[][..]),
        (
            "bootes-controller",
            &[
                "bootes-proto",
                "bootes-envoy",
                "bootes-core",
                "bootes-etcd",
                "bootes-runtime",
                "bootes-tls",
            ][..],
        ),
        (
            "bootes-xds-server",
            &[
                "bootes-proto",
                "bootes-xds",
                "bootes-etcd",
                "bootes-runtime",
                "bootes-tls",
            ][..],
        ),
        ("kube-standin", &[][..]),
        // bootes-envoy: the differential test embeds resources in Envoy
        // bootstraps as the oracle of `validate --envoy` does.
        (
            "bootes-tests",
            &["bootes-proto", "bootes-envoy", "kube-standin"][..],
        ),
    ])
}

/// (package name → its normal dependencies' names), for the workspace.
fn workspace() -> BTreeMap<String, BTreeSet<String>> {
    let out = Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--no-deps",
            "--format-version",
            "1",
            "--offline",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("running cargo metadata");
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: Value = serde_json::from_slice(&out.stdout).expect("cargo metadata JSON");
    meta["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .map(|p| {
            let deps = p["dependencies"]
                .as_array()
                .expect("dependencies")
                .iter()
                // `kind` is null for normal dependencies ("dev", "build" otherwise).
                .filter(|d| d["kind"].is_null())
                .map(|d| d["name"].as_str().expect("name").to_string())
                .collect();
            (p["name"].as_str().expect("name").to_string(), deps)
        })
        .collect()
}

#[test]
fn pure_crates_have_no_io_dependency() {
    let ws = workspace();
    for pure in PURE {
        let deps = ws
            .get(*pure)
            .unwrap_or_else(|| panic!("{pure} is not in the workspace"));
        let io: Vec<_> = deps
            .iter()
            .filter(|d| IO.iter().any(|io| d.starts_with(io)))
            .collect();
        assert!(
            io.is_empty(),
            "{pure} is a pure crate (docs/ARCHITECTURE.md) but depends on {io:?}"
        );
    }
}

#[test]
fn crates_depend_only_on_the_workspace_crates_below_them() {
    let ws = workspace();
    let allowed = allowed();
    for (name, deps) in &ws {
        let Some(may) = allowed.get(name.as_str()) else {
            panic!("{name} is not in the layout of docs/ARCHITECTURE.md: add it to this test and the doc");
        };
        let wrong: Vec<_> = deps
            .iter()
            .filter(|d| ws.contains_key(*d) && !may.contains(&d.as_str()))
            .collect();
        assert!(
            wrong.is_empty(),
            "{name} may depend on {may:?} of the workspace, but depends on {wrong:?}"
        );
    }
}

/// The check itself: a pure crate with an I/O dependency is caught.
#[test]
fn the_io_check_recognises_io_crates() {
    for dep in [
        "tokio",
        "tokio-stream",
        "kube-runtime",
        "tonic-health",
        "etcd-client",
    ] {
        assert!(IO.iter().any(|io| dep.starts_with(io)), "{dep}");
    }
    for dep in ["prost", "serde_json", "bootes-proto"] {
        assert!(!IO.iter().any(|io| dep.starts_with(io)), "{dep}");
    }
}
