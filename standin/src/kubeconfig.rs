//! The kubeconfig the stand-in writes: one cluster, user and context, plain HTTP.

use std::path::Path;

/// Name used for the cluster, the user and the context.
pub const CONTEXT: &str = "kube-standin";

/// A kubeconfig pointing at `server` (e.g. `http://127.0.0.1:6443`).
pub fn kubeconfig_yaml(server: &str) -> String {
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: {CONTEXT}
  cluster:
    server: {server}
users:
- name: {CONTEXT}
  user:
    token: {CONTEXT}
contexts:
- name: {CONTEXT}
  context:
    cluster: {CONTEXT}
    user: {CONTEXT}
    namespace: default
current-context: {CONTEXT}
preferences: {{}}
"
    )
}

/// Writes the kubeconfig atomically (temporary file, then rename), so a reader never
/// sees half of it.
pub fn write_kubeconfig(path: &Path, server: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp-kube-standin");
    std::fs::write(&tmp, kubeconfig_yaml(server))?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubeconfig_is_valid_yaml_with_one_context() {
        let v: serde_yaml::Value =
            serde_yaml::from_str(&kubeconfig_yaml("http://127.0.0.1:1")).unwrap();
        assert_eq!(v["current-context"].as_str(), Some(CONTEXT));
        assert_eq!(
            v["clusters"][0]["cluster"]["server"].as_str(),
            Some("http://127.0.0.1:1")
        );
        assert_eq!(v["contexts"][0]["context"]["user"].as_str(), Some(CONTEXT));
    }
}
