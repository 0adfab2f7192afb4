//! A real Envoy binary as the oracle of [`bootes_core::envoy_judge`]
//! (`validate --envoy`, `run --envoy-validate`): `envoy --mode validate` on
//! each bootstrap, a bounded number at a time, each with a deadline (an
//! Envoy that takes longer is killed: no verdict).

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bootes_core::envoy_judge::{EnvoyOracle, Judgement};

use crate::metrics::Metrics;

pub struct Envoy {
    pub binary: PathBuf,
    pub parallel: usize,
    pub timeout: Duration,
    /// Where runs are counted (`run`; `None` for `validate`).
    pub metrics: Option<Arc<Metrics>>,
}

impl Envoy {
    /// Envoy's verdict on one bootstrap, written in `dir`.
    fn judge_one(&self, dir: &std::path::Path, i: usize, bootstrap: &[u8]) -> Judgement {
        let started = Instant::now();
        let judgement = self.run(dir, i, bootstrap);
        if let Some(m) = &self.metrics {
            let result = match judgement {
                Judgement::Accepts => "accepted",
                Judgement::Rejects(_) => "rejected",
                Judgement::Failed(_) => "failed",
            };
            m.observe_envoy_run(result, started.elapsed());
        }
        judgement
    }

    fn run(&self, dir: &std::path::Path, i: usize, bootstrap: &[u8]) -> Judgement {
        let path = dir.join(format!("bootstrap-{i}.json"));
        if let Err(e) = std::fs::write(&path, bootstrap) {
            return Judgement::Failed(format!("writing {}: {e}", path.display()));
        }
        let out_path = dir.join(format!("envoy-{i}.log"));
        let log = match std::fs::File::create(&out_path) {
            Ok(f) => f,
            Err(e) => return Judgement::Failed(format!("writing {}: {e}", out_path.display())),
        };
        let child = Command::new(&self.binary)
            .args(["--mode", "validate", "--log-level", "critical", "-c"])
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().ok().map_or(Stdio::null(), Stdio::from))
            .stderr(Stdio::from(log))
            .spawn();
        let mut child = match child {
            Ok(c) => c,
            Err(e) => return Judgement::Failed(format!("running {}: {e}", self.binary.display())),
        };
        let deadline = Instant::now() + self.timeout;
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() >= deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Judgement::Failed(format!(
                        "envoy --mode validate took more than {:?} and was killed",
                        self.timeout
                    ));
                }
                // A child process has no readiness to wait on but its exit.
                Ok(None) => std::thread::sleep(Duration::from_millis(5)),
                Err(e) => return Judgement::Failed(format!("waiting for envoy: {e}")),
            }
        };
        let output = std::fs::read_to_string(&out_path).unwrap_or_default();
        let reason = bootes_envoy::oracle::envoy_reason(&output);
        if status.success() {
            Judgement::Accepts
        } else if status.code().is_none() {
            // Killed by a signal it raised itself: the config crashes Envoy.
            Judgement::Rejects(format!("Envoy crashed ({status}): {reason}"))
        } else {
            Judgement::Rejects(reason)
        }
    }
}

impl EnvoyOracle for Envoy {
    fn judge(&self, bootstraps: &[Vec<u8>]) -> Vec<Judgement> {
        let dir = match tempfile::Builder::new().prefix("bootes-envoy-").tempdir() {
            Ok(d) => d,
            Err(e) => {
                let why = format!("making a directory for Envoy's bootstraps: {e}");
                return bootstraps
                    .iter()
                    .map(|_| Judgement::Failed(why.clone()))
                    .collect();
            }
        };
        let next = AtomicUsize::new(0);
        let verdicts: Mutex<Vec<Judgement>> =
            Mutex::new(vec![Judgement::Accepts; bootstraps.len()]);
        std::thread::scope(|s| {
            for _ in 0..self.parallel.clamp(1, bootstraps.len().max(1)) {
                s.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(b) = bootstraps.get(i) else { break };
                    let v = self.judge_one(dir.path(), i, b);
                    verdicts.lock().expect("no thread panics holding it")[i] = v;
                });
            }
        });
        verdicts.into_inner().expect("no thread panics holding it")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An "Envoy" that runs `script` (sh).
    fn fake(dir: &std::path::Path, script: &str, timeout: Duration) -> Envoy {
        use std::os::unix::fs::PermissionsExt;
        let binary = dir.join("envoy");
        std::fs::write(&binary, format!("#!/bin/sh\n{script}\n")).unwrap();
        std::fs::set_permissions(&binary, std::fs::Permissions::from_mode(0o755)).unwrap();
        Envoy {
            binary,
            parallel: 2,
            timeout,
            metrics: Some(Arc::new(Metrics::new())),
        }
    }

    #[test]
    fn envoys_answers_hangs_and_crashes_are_told_apart() {
        let dir = tempfile::tempdir().unwrap();
        let long = Duration::from_secs(60);
        let ok = fake(dir.path(), "exit 0", long);
        assert_eq!(ok.judge(&[b"{}".to_vec()]), [Judgement::Accepts]);
        let no = fake(
            &dir.path().join("."),
            "echo \"[critical] error initializing configuration '$6': boom\" >&2; exit 1",
            long,
        );
        assert_eq!(
            no.judge(&[b"{}".to_vec()]),
            [Judgement::Rejects("boom".into())]
        );
        let crash_dir = tempfile::tempdir().unwrap();
        let crash = fake(crash_dir.path(), "kill -SEGV $$", long);
        let verdict = crash.judge(&[b"{}".to_vec()]);
        assert!(
            matches!(&verdict[0], Judgement::Rejects(r) if r.starts_with("Envoy crashed")),
            "{verdict:?}"
        );
        // Hangs: killed at the deadline, no verdict; both run at once.
        let hang_dir = tempfile::tempdir().unwrap();
        let hang = fake(
            hang_dir.path(),
            "exec sleep 600",
            Duration::from_millis(300),
        );
        let verdicts = hang.judge(&[b"{}".to_vec(), b"{}".to_vec()]);
        for v in &verdicts {
            assert!(
                matches!(v, Judgement::Failed(w) if w.contains("took more than 300ms and was killed")),
                "{verdicts:?}"
            );
        }
        let missing = Envoy {
            binary: dir.path().join("no-such-envoy"),
            ..fake(dir.path(), "exit 0", long)
        };
        assert!(
            matches!(&missing.judge(&[b"{}".to_vec()])[0], Judgement::Failed(w) if w.contains("running"))
        );
        let metrics = hang.metrics.as_ref().unwrap().encode();
        assert!(
            metrics.contains("bootes_controller_envoy_validate_runs_total{result=\"failed\"} 2"),
            "{metrics}"
        );
    }
}
