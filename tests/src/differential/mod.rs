//! The Envoy differential test's machinery (tests/tests/envoy_differential.rs):
//! a corpus of valid configs, seeded mutations of them ([`mutate`]), each
//! mutant checked by `envoy --mode validate` (in a bootstrap, [`embed`]) and
//! by `bootes-controller validate`.

pub mod embed;
pub mod mutate;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

/// The kinds the test covers.
pub const KINDS: [&str; 5] = ["Listener", "Cluster", "Route", "Endpoint", "Secret"];

/// One valid config of the corpus.
#[derive(Clone, Debug)]
pub struct Original {
    /// Where it came from: `file (kind namespace/name)`.
    pub source: String,
    pub kind: String,
    pub config: Value,
}

/// The repository's root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is in the repository")
        .to_path_buf()
}

/// The corpus: `tests/corpus/envoy/` (configs written from Envoy's
/// documentation, and the original project's examples), the manifests of
/// `manifests/examples/` and the YAML examples of README.md. Listeners with
/// an `api_listener` are left out (they are for proxyless gRPC clients, and
/// an Envoy ignores them over LDS), and so are Endpoints naming a Service
/// (Bootes generates their config).
pub fn corpus() -> Result<Vec<Original>> {
    let root = repo_root();
    let mut sources: Vec<(String, String)> = Vec::new();
    for dir in ["tests/corpus/envoy", "manifests/examples"] {
        for file in yaml_files(&root.join(dir))? {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let name = file
                .strip_prefix(&root)
                .unwrap_or(&file)
                .display()
                .to_string();
            sources.push((name, text));
        }
    }
    let readme = std::fs::read_to_string(root.join("README.md")).context("reading README.md")?;
    for (i, block) in yaml_blocks(&readme).into_iter().enumerate() {
        if block.contains("apiVersion: bootes.io/v1") {
            sources.push((format!("README.md yaml block {i}"), block));
        }
    }
    let mut out = Vec::new();
    for (name, text) in sources {
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let doc: Value =
                serde::Deserialize::deserialize(doc).with_context(|| format!("parsing {name}"))?;
            let Some(kind) = doc["kind"].as_str().filter(|k| KINDS.contains(k)) else {
                continue;
            };
            if doc["apiVersion"] != "bootes.io/v1" {
                continue;
            }
            // An Endpoint naming a Service has its endpoints generated.
            if doc["spec"].get("service").is_some() {
                continue;
            }
            let config = doc["spec"]["config"].clone();
            if config.get("api_listener").is_some() {
                continue;
            }
            out.push(Original {
                source: format!(
                    "{name} ({kind} {}/{})",
                    doc["metadata"]["namespace"].as_str().unwrap_or(""),
                    doc["metadata"]["name"].as_str().unwrap_or("")
                ),
                kind: kind.to_string(),
                config,
            });
        }
    }
    Ok(out)
}

/// The listeners and clusters of the Envoy bootstraps under `dir` (every
/// `*.yaml` / `*.yml` with `static_resources`; files that are not YAML
/// Bootes can read are skipped): a corpus from outside the repository, read
/// where it lies (`BOOTES_DIFF_CORPUS`), for figures on configs the rules
/// were not written from. Some of them name files on their Envoy's machine
/// or need other resources, so the caller keeps only those both validators
/// accept as they are.
pub fn bootstrap_corpus(dir: &Path) -> Result<Vec<Original>> {
    let mut out = Vec::new();
    for file in yaml_files(dir)? {
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        let name = file
            .strip_prefix(dir)
            .unwrap_or(&file)
            .display()
            .to_string();
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let Ok(doc) = <Value as serde::Deserialize>::deserialize(doc) else {
                break;
            };
            let statics = &doc["static_resources"];
            for (kind, key) in [("Listener", "listeners"), ("Cluster", "clusters")] {
                for config in statics[key].as_array().into_iter().flatten() {
                    let Some(resource) = config["name"].as_str() else {
                        continue;
                    };
                    out.push(Original {
                        source: format!("{name} ({kind} {resource})"),
                        kind: kind.to_string(),
                        config: config.clone(),
                    });
                }
            }
        }
    }
    Ok(out)
}

fn yaml_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).with_context(|| format!("reading {}", d.display()))? {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}

/// The contents of the ```` ```yaml ```` blocks of a Markdown text.
fn yaml_blocks(markdown: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        match &mut current {
            None if line.trim_start() == "```yaml" => current = Some(String::new()),
            Some(block) if line.trim_start() == "```" => {
                out.push(std::mem::take(block));
                current = None;
            }
            Some(block) => {
                block.push_str(line);
                block.push('\n');
            }
            None => {}
        }
    }
    out
}

/// The names of the clusters `config` routes or proxies to.
pub fn cluster_targets(config: &Value) -> Vec<String> {
    let mut out = Vec::new();
    mutate::strings_under(config, "cluster", &mut out);
    fn weighted(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    if k == "weighted_clusters" {
                        mutate::strings_under(v, "name", out);
                    }
                    weighted(v, out);
                }
            }
            Value::Array(a) => a.iter().for_each(|v| weighted(v, out)),
            _ => {}
        }
    }
    weighted(config, &mut out);
    out.sort();
    out.dedup();
    out
}

/// What a validator said about one config.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub accepted: bool,
    /// The reason for a rejection (empty when accepted).
    pub message: String,
}

/// One config to check: its kind, the corpus config it was made from, the
/// config itself.
#[derive(Clone, Debug)]
pub struct Case {
    pub kind: String,
    pub original: Value,
    pub config: Value,
    /// A second resource of the same kind, received with it (a listener
    /// for the cross-resource classes): in Envoy's bootstrap after it, in
    /// `validate` an object of the same namespace.
    pub twin: Option<Value>,
}

impl Case {
    /// The original itself, unmutated: what both validators must accept.
    pub fn as_is(original: &Original) -> Self {
        Self {
            kind: original.kind.clone(),
            original: original.config.clone(),
            config: original.config.clone(),
            twin: None,
        }
    }
}

/// `envoy --mode validate` on each case, `parallel` at a time.
pub fn envoy_verdicts(
    envoy: &Path,
    dir: &Path,
    cases: &[Case],
    targets: &[String],
    parallel: usize,
) -> Result<Vec<Verdict>> {
    let next = AtomicUsize::new(0);
    let results: Mutex<BTreeMap<usize, Result<Verdict>>> = Mutex::new(BTreeMap::new());
    std::thread::scope(|s| {
        for _ in 0..parallel.max(1) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(case) = cases.get(i) else { break };
                let verdict = envoy_verdict(envoy, dir, i, case, targets);
                results.lock().unwrap().insert(i, verdict);
            });
        }
    });
    results.into_inner().unwrap().into_values().collect()
}

fn envoy_verdict(
    envoy: &Path,
    dir: &Path,
    i: usize,
    case: &Case,
    targets: &[String],
) -> Result<Verdict> {
    let path = dir.join(format!("bootstrap-{i:05}.json"));
    let mut bootstrap = embed::bootstrap(&case.kind, &case.original, &case.config, targets);
    if let Some(twin) = &case.twin {
        let kind = match case.kind.as_str() {
            "Listener" => "listeners",
            "Cluster" => "clusters",
            other => bail!("no twin of kind {other}"),
        };
        if let Some(list) = bootstrap["static_resources"][kind].as_array_mut() {
            list.push(twin.clone());
        }
    }
    std::fs::write(&path, serde_json::to_vec(&bootstrap)?)?;
    let out = Command::new(envoy)
        .args(["--mode", "validate", "--log-level", "critical", "-c"])
        .arg(&path)
        .output()
        .with_context(|| format!("running {}", envoy.display()))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    if out.status.success() {
        return Ok(Verdict {
            accepted: true,
            message: String::new(),
        });
    }
    if out.status.code().is_none() {
        // Killed by a signal: an assertion failed. Such a config would crash
        // an Envoy receiving it, so Bootes must reject it all the more.
        let assertion = stderr
            .lines()
            .find(|l| l.contains("assert"))
            .unwrap_or_default();
        return Ok(Verdict {
            accepted: false,
            message: format!("Envoy crashed ({}): {assertion}", out.status),
        });
    }
    if out.status.code() != Some(1) {
        bail!(
            "envoy --mode validate on {} ended with {}: {stderr}{stdout}",
            path.display(),
            out.status
        );
    }
    let message = stderr
        .lines()
        .chain(stdout.lines())
        .find_map(|l| {
            l.split_once("error initializing configuration")
                .map(|(_, m)| m)
        })
        .map(|m| m.split_once("': ").map_or(m, |(_, m)| m).to_string())
        .unwrap_or_else(|| format!("{stderr}{stdout}"));
    Ok(Verdict {
        accepted: false,
        message,
    })
}

/// `bootes-controller validate` on every case at once: each is a document of
/// one file, in a namespace of its own (so that the cases cannot conflict).
/// Returns each case's verdict (its `error:` lines; warnings do not reject).
/// `targets` are declared as bootstrap clusters, as the bootstraps that
/// Envoy validates with have them ([`embed::bootstrap`]).
pub fn bootes_verdicts(
    bin: &Path,
    dir: &Path,
    cases: &[Case],
    targets: &[String],
) -> Result<Vec<Verdict>> {
    let mut text = String::new();
    for (i, case) in cases.iter().enumerate() {
        let doc = json!({
            "apiVersion": "bootes.io/v1",
            "kind": case.kind,
            "metadata": {"name": object_name(i), "namespace": object_name(i)},
            "spec": {"config": case.config},
        });
        text.push_str("---\n");
        text.push_str(&serde_json::to_string(&doc)?);
        text.push('\n');
        if let Some(twin) = &case.twin {
            let doc = json!({
                "apiVersion": "bootes.io/v1",
                "kind": case.kind,
                "metadata": {"name": format!("{}-twin", object_name(i)), "namespace": object_name(i)},
                "spec": {"config": twin},
            });
            text.push_str("---\n");
            text.push_str(&serde_json::to_string(&doc)?);
            text.push('\n');
        }
    }
    let path = dir.join("mutants.yaml");
    std::fs::write(&path, text)?;
    let mut bootstrap: Vec<&str> = targets.iter().map(String::as_str).collect();
    bootstrap.push(embed::XDS_CLUSTER);
    let out = Command::new(bin)
        .args([
            "validate",
            "--bootstrap-clusters",
            &bootstrap.join(","),
            "-f",
        ])
        .arg(&path)
        .output()
        .with_context(|| format!("running {}", bin.display()))?;
    let stdout = String::from_utf8(out.stdout)?;
    let mut errors: Vec<Vec<String>> = vec![Vec::new(); cases.len()];
    for line in stdout.lines() {
        let Some(error) = line.strip_prefix("error: ") else {
            continue;
        };
        let Some(i) = case_number(error).filter(|i| *i < cases.len()) else {
            bail!("an error line that names no case: {line}");
        };
        errors[i].push(error.to_string());
    }
    if !out.status.success() && errors.iter().all(Vec::is_empty) {
        bail!(
            "bootes-controller validate failed without an error line: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(errors
        .into_iter()
        .map(|e| Verdict {
            accepted: e.is_empty(),
            message: e.join("\n"),
        })
        .collect())
}

fn object_name(i: usize) -> String {
    format!("m{i:05}")
}

/// The case an error line is about: `… Kind m00042/m00042: …` → 42.
fn case_number(line: &str) -> Option<usize> {
    line.match_indices(" m").find_map(|(at, _)| {
        let rest = &line[at + 2..];
        let digits = rest.get(..5)?;
        let n: usize = digits.parse().ok()?;
        rest[5..].starts_with(&format!("/m{digits}")).then_some(n)
    })
}
