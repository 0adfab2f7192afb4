//! Compiles our own `.proto` (with protox, so no `protoc` is needed) and
//! copies the Envoy API descriptor set that the `envoy-types` crate ships.
//! Envoy's `.proto` files are never copied into this repository.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=bootes/v1/store.proto");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));

    let fds = protox::compile(["bootes/v1/store.proto"], ["."]).expect("compile store.proto");
    prost_build::Config::new()
        .compile_fds(fds)
        .expect("generate store.proto code");

    let types_bin = envoy_types_dir().join("src/generated/types.bin");
    println!("cargo:rerun-if-changed={}", types_bin.display());
    std::fs::copy(&types_bin, out.join("envoy_descriptors.bin"))
        .unwrap_or_else(|e| panic!("copy {}: {e}", types_bin.display()));
}

/// Finds the source directory of the `envoy-types` package this build uses.
fn envoy_types_dir() -> PathBuf {
    // Offline first: cargo has downloaded what this target needs. Packages
    // that only other workspace members use (e.g. their dev-dependencies)
    // may be missing, in which case cargo metadata fetches them.
    let meta = cargo_metadata(true)
        .or_else(|offline_err| cargo_metadata(false).map_err(|e| format!("{offline_err}\n{e}")));
    let meta = meta.unwrap_or_else(|e| panic!("cargo metadata failed: {e}"));
    let packages = meta["packages"].as_array().expect("packages");
    let envoy = packages
        .iter()
        .find(|p| p["name"] == "envoy-types")
        .expect("envoy-types in cargo metadata");
    PathBuf::from(envoy["manifest_path"].as_str().expect("manifest_path"))
        .parent()
        .expect("package dir")
        .to_path_buf()
}

fn cargo_metadata(offline: bool) -> Result<serde_json::Value, String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("manifest dir"));
    let mut cmd = Command::new(cargo);
    cmd.args(["metadata", "--format-version", "1", "--filter-platform"])
        .arg(std::env::var("TARGET").expect("TARGET"))
        .arg("--manifest-path")
        .arg(manifest.join("Cargo.toml"));
    if offline {
        cmd.arg("--offline");
    }
    let output = cmd
        .output()
        .map_err(|e| format!("run cargo metadata: {e}"))?;
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).into_owned());
    }
    serde_json::from_slice(&output.stdout).map_err(|e| format!("cargo metadata output: {e}"))
}
