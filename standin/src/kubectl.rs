//! The `kubectl` the tests drive, and the version they need of it.
//!
//! `scripts/install-tools.sh` falls back to Debian's `kubernetes-client`
//! (kubectl 1.20) when the machine has no kubectl. That one is too old for
//! some tests; they call [`kubectl`] with what they need, and fail saying so
//! instead of with an obscure error from inside kubectl.

use std::process::Command;
use std::sync::OnceLock;

/// What a test needs of kubectl: the oldest minor version verified to work, and why.
#[derive(Clone, Copy, Debug)]
pub struct Need {
    pub min_minor: u32,
    pub why: &'static str,
}

/// `kubectl apply`/`get` against kube-standin, which serves OpenAPI v3 only:
/// kubectl 1.27 and older insist on `/openapi/v2` (verified with 1.20 and
/// 1.27: "the server could not find the requested resource"); 1.32 works.
pub const AGAINST_STANDIN: Need = Need {
    min_minor: 32,
    why: "kubectl apply against kube-standin (it serves OpenAPI v3 only; kubectl 1.27 and older require /openapi/v2)",
};

/// `kubectl kustomize manifests/`: the tree uses `labels`, which Debian's
/// kubectl 1.20 (kustomize v2) rejects; verified with 1.27 and 1.32.
pub const KUSTOMIZE: Need = Need {
    min_minor: 27,
    why: "kubectl kustomize manifests/ (its `labels` field is unknown to the kustomize of Debian's kubectl 1.20; verified with 1.27)",
};

/// The `kubectl` on PATH, as `(major, minor, version text)`.
fn found() -> &'static Result<(u32, u32, String), String> {
    static FOUND: OnceLock<Result<(u32, u32, String), String>> = OnceLock::new();
    FOUND.get_or_init(|| {
        let out = Command::new("kubectl")
            .args(["version", "--client", "-o", "json"])
            .output()
            .map_err(|e| format!("kubectl not runnable ({e}); run scripts/install-tools.sh"))?;
        let json: serde_json::Value = serde_json::from_slice(&out.stdout)
            .map_err(|e| format!("`kubectl version --client -o json` is not JSON: {e}"))?;
        let info = &json["clientVersion"];
        let number = |k: &str| {
            info[k]
                .as_str()
                .and_then(|s| s.trim_end_matches('+').parse::<u32>().ok())
                .ok_or_else(|| format!("kubectl version has no {k}: {json}"))
        };
        let text = info["gitVersion"].as_str().unwrap_or("?").to_string();
        Ok((number("major")?, number("minor")?, text))
    })
}

/// Whether the kubectl on PATH meets `need`, or the message saying why not.
pub fn check(need: Need) -> Result<(), String> {
    let (major, minor, text) = found().as_ref().map_err(Clone::clone)?;
    if (*major, *minor) >= (1, need.min_minor) {
        return Ok(());
    }
    let path = which("kubectl").unwrap_or_else(|| "kubectl".into());
    Err(format!(
        "this test needs kubectl >= 1.{} for {}; found {text} at {path}. \
         Debian's kubernetes-client is too old for it: put a newer kubectl first on PATH \
         (these machines' image ships one)",
        need.min_minor, need.why
    ))
}

/// A `kubectl` command, after checking (once per process) that it meets `need`.
///
/// # Panics
/// When it does not, with a message naming the version needed and why.
pub fn kubectl(need: Need) -> Command {
    if let Err(message) = check(need) {
        panic!("{message}");
    }
    Command::new("kubectl")
}

fn which(name: &str) -> Option<String> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
            .map(|p| p.display().to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kubectl_on_path_meets_every_need_or_says_which() {
        // On these machines it must meet both; the message is what a user
        // with Debian's kubectl would read.
        for need in [AGAINST_STANDIN, KUSTOMIZE] {
            if let Err(message) = check(need) {
                assert!(message.contains(need.why), "{message}");
                panic!("{message}");
            }
        }
    }
}
