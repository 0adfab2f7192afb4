//! The Kubernetes manifests as `kubectl kustomize` renders them, and what
//! tests read from them: workloads' containers, their flags, environment
//! and mounts, and the flags the binaries accept.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, ensure, Context, Result};
use serde_yaml::Value;

/// The repository's root directory.
pub fn repo_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `kubectl kustomize <repo>/<dir>`, as documents.
pub fn render(dir: &str) -> Result<Vec<Value>> {
    let out = kube_standin::kubectl::kubectl(kube_standin::kubectl::KUSTOMIZE)
        .arg("kustomize")
        .arg(repo_dir().join(dir))
        .output()
        .context("running kubectl (scripts/install-tools.sh installs it)")?;
    ensure!(
        out.status.success(),
        "kubectl kustomize {dir} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    yaml_docs(&String::from_utf8(out.stdout)?)
}

/// The documents of a YAML stream (empty ones left out).
pub fn yaml_docs(text: &str) -> Result<Vec<Value>> {
    let mut docs = Vec::new();
    for d in serde_yaml::Deserializer::from_str(text) {
        let v: Value = serde::Deserialize::deserialize(d)?;
        if !v.is_null() {
            docs.push(v);
        }
    }
    Ok(docs)
}

/// The document of `kind` named `name`.
pub fn find_doc<'a>(docs: &'a [Value], kind: &str, name: &str) -> Result<&'a Value> {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .with_context(|| format!("no {kind} {name} in the rendering"))
}

/// The pod template's spec of a Deployment, StatefulSet or Job.
pub fn pod_spec(workload: &Value) -> &Value {
    &workload["spec"]["template"]["spec"]
}

/// Workloads (Deployments, StatefulSets, Jobs) of a rendering.
pub fn workloads(docs: &[Value]) -> impl Iterator<Item = &Value> {
    docs.iter().filter(|d| {
        matches!(
            d["kind"].as_str(),
            Some("Deployment" | "StatefulSet" | "Job")
        )
    })
}

/// One container of a workload.
#[derive(Clone, Copy, Debug)]
pub struct Container<'a> {
    pub workload: &'a Value,
    pub container: &'a Value,
}

impl<'a> Container<'a> {
    /// Every container (init containers too) of every workload.
    pub fn all(docs: &'a [Value]) -> Vec<Self> {
        workloads(docs)
            .flat_map(|w| {
                let spec = pod_spec(w);
                [&spec["initContainers"], &spec["containers"]]
                    .into_iter()
                    .filter_map(Value::as_sequence)
                    .flatten()
                    .map(move |c| Container {
                        workload: w,
                        container: c,
                    })
            })
            .collect()
    }

    /// The container named `name` of workload `kind`/`workload`.
    pub fn named(docs: &'a [Value], kind: &str, workload: &str, name: &str) -> Result<Self> {
        let w = find_doc(docs, kind, workload)?;
        let container = pod_spec(w)["containers"]
            .as_sequence()
            .into_iter()
            .flatten()
            .find(|c| c["name"] == name)
            .with_context(|| format!("{kind} {workload} has no container {name}"))?;
        Ok(Self {
            workload: w,
            container,
        })
    }

    /// `Kind/name/container`, for messages.
    pub fn id(&self) -> String {
        format!(
            "{}/{}/{}",
            self.workload["kind"].as_str().unwrap_or("?"),
            self.workload["metadata"]["name"].as_str().unwrap_or("?"),
            self.container["name"].as_str().unwrap_or("?")
        )
    }

    pub fn image(&self) -> &str {
        self.container["image"].as_str().unwrap_or("")
    }

    /// `command` then `args`.
    pub fn argv(&self) -> Vec<String> {
        [&self.container["command"], &self.container["args"]]
            .into_iter()
            .filter_map(Value::as_sequence)
            .flatten()
            .map(|a| a.as_str().unwrap_or_default().to_string())
            .collect()
    }

    /// The value of `--flag value` or `--flag=value`.
    pub fn flag(&self, flag: &str) -> Option<String> {
        flag_value(&self.argv(), flag)
    }

    /// Literal environment values (`value:`), by name.
    pub fn env(&self, name: &str) -> Option<String> {
        self.container["env"]
            .as_sequence()?
            .iter()
            .find(|e| e["name"] == name)?["value"]
            .as_str()
            .map(str::to_string)
    }

    /// Every literal environment value.
    pub fn env_values(&self) -> Vec<String> {
        self.container["env"]
            .as_sequence()
            .into_iter()
            .flatten()
            .filter_map(|e| e["value"].as_str().map(str::to_string))
            .collect()
    }

    /// (mount path, the pod's volume it mounts) of each volume mount.
    pub fn mounts(&self) -> Result<Vec<(String, &'a Value)>> {
        let volumes = pod_spec(self.workload)["volumes"].as_sequence();
        let claims = self.workload["spec"]["volumeClaimTemplates"].as_sequence();
        let mut mounts = Vec::new();
        for m in self.container["volumeMounts"]
            .as_sequence()
            .into_iter()
            .flatten()
        {
            let name = &m["name"];
            let volume = volumes
                .into_iter()
                .flatten()
                .chain(claims.into_iter().flatten().map(|c| &c["metadata"]))
                .find(|v| v["name"] == *name)
                .with_context(|| format!("{}: mount of unknown volume {name:?}", self.id()))?;
            let path = m["mountPath"].as_str().context("mountPath")?;
            mounts.push((path.to_string(), volume));
        }
        Ok(mounts)
    }

    /// Where the file `path` (in the container) comes from: the Secret
    /// mounted above it and the key within it.
    pub fn secret_file(&self, path: &str) -> Result<(String, String)> {
        for (mount, volume) in self.mounts()? {
            let Some(key) = path.strip_prefix(&format!("{mount}/")) else {
                continue;
            };
            let secret = volume["secret"]["secretName"]
                .as_str()
                .with_context(|| format!("{}: {mount} is not a Secret", self.id()))?;
            return Ok((secret.to_string(), key.to_string()));
        }
        bail!("{}: no volume mounted above {path}", self.id())
    }
}

/// The value of `--flag value` or `--flag=value` in `args`.
pub fn flag_value(args: &[String], flag: &str) -> Option<String> {
    args.iter().enumerate().find_map(|(i, a)| {
        if a == flag {
            args.get(i + 1).cloned()
        } else {
            a.strip_prefix(flag)?.strip_prefix('=').map(str::to_string)
        }
    })
}

/// `--flag` of each `--flag` / `--flag=value` argument.
pub fn flags_used(args: &[String]) -> BTreeSet<String> {
    args.iter()
        .filter(|a| a.starts_with("--"))
        .map(|a| a.split('=').next().unwrap_or_default().to_string())
        .collect()
}

/// The long flags a binary's `--help` lists (`bin SUBCOMMAND... --help`):
/// clap's (`  -o, --output <X>`) and Go's flag package's (`  --name 'x'`).
pub fn flags_of(bin: &Path, subcommand: &[&str]) -> Result<BTreeSet<String>> {
    let out = Command::new(bin)
        .args(subcommand)
        .arg("--help")
        .output()
        .with_context(|| format!("running {}", bin.display()))?;
    // etcd prints its help to stderr.
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let flags: BTreeSet<String> = text
        .lines()
        .filter_map(|l| {
            let l = l.trim_start();
            let l = l.strip_prefix('-').map_or(l, |rest| {
                // `-o, --output`
                rest.split_once(", ").map_or(l, |(_, long)| long)
            });
            let flag = l.split([' ', '=', '<', '\t']).next()?;
            (flag.starts_with("--") && flag.len() > 2).then(|| flag.to_string())
        })
        .collect();
    ensure!(
        flags.len() > 3,
        "no flags found in the help of {}:\n{text}",
        bin.display()
    );
    Ok(flags)
}

/// Documents as one YAML stream.
pub fn yaml_stream_of(docs: &[Value]) -> String {
    docs.iter()
        .map(|d| serde_yaml::to_string(d).expect("YAML values serialize"))
        .collect::<Vec<_>>()
        .join("---\n")
}
