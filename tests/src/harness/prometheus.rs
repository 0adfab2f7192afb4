//! A real Prometheus (Debian's `prometheus` package) scraping Bootes
//! processes on loopback, and what `manifests/monitoring/` names: the
//! PrometheusRule's rules and the Grafana dashboard's queries.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{anyhow, bail, ensure, Context, Result};
use serde_json::Value;

use super::process::on_path;
use super::{eventually, free_port, http_get, test_dir, ChildProcess};

/// `manifests/monitoring/` of this repository.
pub fn monitoring_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests/monitoring")
}

/// The PrometheusRule's `spec`: a plain Prometheus rules file (`groups:`).
pub fn rules_spec() -> Result<serde_yaml::Value> {
    let path = monitoring_dir().join("prometheusrule.yaml");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let rule: serde_yaml::Value = serde_yaml::from_str(&text)?;
    ensure!(
        rule["kind"] == "PrometheusRule",
        "{} is not a PrometheusRule",
        path.display()
    );
    Ok(rule["spec"].clone())
}

/// Writes the PrometheusRule's `spec` as `dir/bootes-rules.yaml` (the name
/// `alerts_test.yaml` refers to) and returns its path.
pub fn write_rules_file(dir: &Path) -> Result<PathBuf> {
    let path = dir.join("bootes-rules.yaml");
    std::fs::write(&path, serde_yaml::to_string(&rules_spec()?)?)?;
    Ok(path)
}

/// (alert name, expression) of every rule of the PrometheusRule.
pub fn rule_exprs() -> Result<Vec<(String, String)>> {
    let spec = rules_spec()?;
    let mut out = Vec::new();
    for group in spec["groups"].as_sequence().context("spec.groups")? {
        for rule in group["rules"].as_sequence().context("rules")? {
            let name = rule["alert"]
                .as_str()
                .or_else(|| rule["record"].as_str())
                .context("a rule without alert or record")?;
            let expr = rule["expr"].as_str().context("a rule without expr")?;
            out.push((name.to_string(), expr.to_string()));
        }
    }
    Ok(out)
}

/// (panel title, expression) of every query of the Grafana dashboard.
pub fn dashboard_exprs() -> Result<Vec<(String, String)>> {
    let path = monitoring_dir().join("bootes-dashboard.json");
    let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(&path)?)
        .with_context(|| format!("{} is not JSON", path.display()))?;
    let mut out = Vec::new();
    for panel in dashboard["panels"].as_array().context("panels")? {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().context("a target without expr")?;
            out.push((
                panel["title"].as_str().unwrap_or_default().to_string(),
                expr.to_string(),
            ));
        }
    }
    Ok(out)
}

/// The metric names an expression reads: the `bootes_*` identifiers, and
/// `up`. Label names, functions and keywords are not metric names here.
pub fn metric_names_in(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = expr;
    // Skip label matchers' quoted values ("bootes-controller|…").
    while let Some(start) = rest.find(|c: char| c.is_ascii_alphabetic() || c == '_' || c == '"') {
        rest = &rest[start..];
        if let Some(quoted) = rest.strip_prefix('"') {
            rest = quoted.split_once('"').map_or("", |(_, r)| r);
            continue;
        }
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
            .unwrap_or(rest.len());
        let word = &rest[..end];
        if word.starts_with("bootes_") || (word == "up" && rest[end..].starts_with('{')) {
            names.insert(word.to_string());
        }
        rest = &rest[end..];
    }
    names
}

/// The Prometheus binary: `PROMETHEUS_BIN`, else `prometheus` on `PATH`.
pub fn find_prometheus() -> Result<PathBuf> {
    find_tool("prometheus", "PROMETHEUS_BIN")
}

/// promtool: `PROMTOOL_BIN`, else `promtool` on `PATH`.
pub fn find_promtool() -> Result<PathBuf> {
    find_tool("promtool", "PROMTOOL_BIN")
}

fn find_tool(name: &str, env_var: &str) -> Result<PathBuf> {
    if let Some(p) = std::env::var_os(env_var).filter(|v| !v.is_empty()) {
        let p = PathBuf::from(p);
        ensure!(p.is_file(), "{env_var}={} does not exist", p.display());
        return Ok(p);
    }
    on_path(name).ok_or_else(|| {
            anyhow!(
                "{name} not found: run scripts/install-tools.sh (Debian package prometheus), or set {env_var}"
            )
        })
}

/// A Prometheus server on 127.0.0.1 with temporary storage, scraping the
/// given jobs every second and evaluating the given rules file.
#[derive(Debug)]
pub struct Prometheus {
    _process: ChildProcess,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    /// Starts it with one scrape job per (job name, target) and waits until
    /// it is ready.
    pub async fn start(jobs: &[(&str, SocketAddr)], rules: Option<&Path>) -> Result<Self> {
        let bin = find_prometheus()?;
        let dir = test_dir("prometheus")?;
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let mut config = serde_json::json!({
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
            "scrape_configs": jobs.iter().map(|(job, target)| serde_json::json!({
                "job_name": job,
                "static_configs": [{"targets": [target.to_string()]}],
            })).collect::<Vec<_>>(),
        });
        if let Some(rules) = rules {
            config["rule_files"] = serde_json::json!([rules]);
        }
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, serde_yaml::to_string(&config)?)?;
        let mut cmd = Command::new(bin);
        cmd.arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .current_dir(dir.path());
        let mut process = ChildProcess::spawn("prometheus", &mut cmd, dir.path())?;
        eventually(
            &format!("prometheus answers on http://{addr}/-/ready"),
            || {
                let running = process.check_running();
                async move {
                    running?;
                    let r = http_get(addr, "127.0.0.1", "/-/ready").await?;
                    ensure!(r.status == 200, "/-/ready: {} {}", r.status, r.text());
                    Ok(())
                }
            },
        )
        .await?;
        Ok(Self {
            _process: process,
            addr,
            _dir: dir,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `GET /api/v1/PATH?QUERY` (the query's values are URL-encoded here);
    /// the `data` of a successful answer.
    pub async fn api(&self, path: &str, query: &[(&str, &str)]) -> Result<Value> {
        let mut url = format!("/api/v1/{path}");
        for (i, (k, v)) in query.iter().enumerate() {
            url.push(if i == 0 { '?' } else { '&' });
            url.push_str(k);
            url.push('=');
            url.push_str(&url_encode(v));
        }
        let r = http_get(self.addr, "127.0.0.1", &url).await?;
        let body: Value = serde_json::from_str(&r.body)
            .with_context(|| format!("{url}: {} {}", r.status, r.text()))?;
        if body["status"] != "success" {
            bail!("{url}: {} {body}", r.status);
        }
        Ok(body["data"].clone())
    }

    /// Every metric name Prometheus has series of.
    pub async fn metric_names(&self) -> Result<BTreeSet<String>> {
        let names = self.api("label/__name__/values", &[]).await?;
        Ok(names
            .as_array()
            .context("names")?
            .iter()
            .filter_map(|n| n.as_str().map(str::to_string))
            .collect())
    }

    /// The result of an instant query.
    pub async fn query(&self, expr: &str) -> Result<Value> {
        Ok(self.api("query", &[("query", expr)]).await?["result"].clone())
    }
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_names_are_the_bootes_identifiers_and_up() {
        let names = metric_names_in(
            r#"histogram_quantile(0.99, sum by (le, kind) (rate(bootes_controller_rollout_convergence_seconds_bucket[5m]))) > 30
               or up{job=~"bootes_xds_fake|bootes-controller"} == 0 or sum by (instance) (1 - bootes_xds_etcd_connected)"#,
        );
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        assert_eq!(
            names,
            [
                "bootes_controller_rollout_convergence_seconds_bucket",
                "bootes_xds_etcd_connected",
                "up"
            ]
        );
    }

    #[test]
    fn query_values_are_url_encoded() {
        assert_eq!(
            url_encode("sum(x{a=\"b\"}) > 0"),
            "sum%28x%7Ba%3D%22b%22%7D%29%20%3E%200"
        );
    }
}
