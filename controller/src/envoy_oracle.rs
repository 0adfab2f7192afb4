//! `validate --envoy PATH`: runs a real Envoy binary, `--mode validate`, on
//! bootstraps ([`bootes_envoy::oracle`]), a bounded number at a time, each
//! with a deadline (an Envoy that takes longer is killed and counts as a
//! rejection).

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bootes_core::validate::EnvoyOracle;

pub struct Envoy {
    pub binary: PathBuf,
    pub parallel: usize,
    pub timeout: Duration,
}

impl Envoy {
    /// Envoy's verdict on one bootstrap: `None` when it takes it.
    fn judge_one(&self, dir: &std::path::Path, i: usize, bootstrap: &[u8]) -> Option<String> {
        let path = dir.join(format!("bootstrap-{i}.json"));
        if let Err(e) = std::fs::write(&path, bootstrap) {
            return Some(format!("writing {}: {e}", path.display()));
        }
        let out_path = dir.join(format!("envoy-{i}.log"));
        let log = match std::fs::File::create(&out_path) {
            Ok(f) => f,
            Err(e) => return Some(format!("writing {}: {e}", out_path.display())),
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
            Err(e) => return Some(format!("running {}: {e}", self.binary.display())),
        };
        let deadline = Instant::now() + self.timeout;
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break Ok(status),
                Ok(None) if Instant::now() >= deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break Err(format!(
                        "envoy --mode validate took more than {:?}",
                        self.timeout
                    ));
                }
                // A child process has no readiness to wait on but its exit.
                Ok(None) => std::thread::sleep(Duration::from_millis(5)),
                Err(e) => break Err(format!("waiting for envoy: {e}")),
            }
        };
        let output = std::fs::read_to_string(&out_path).unwrap_or_default();
        match status {
            Ok(s) if s.success() => None,
            Ok(s) if s.code().is_none() => Some(format!(
                "Envoy crashed ({s}): {}",
                bootes_envoy::oracle::envoy_reason(&output)
            )),
            Ok(_) => Some(bootes_envoy::oracle::envoy_reason(&output)),
            Err(e) => Some(e),
        }
    }
}

impl EnvoyOracle for Envoy {
    fn judge(&self, bootstraps: &[Vec<u8>]) -> Vec<Option<String>> {
        let dir = match tempfile::Builder::new().prefix("bootes-envoy-").tempdir() {
            Ok(d) => d,
            Err(e) => {
                let why = format!("making a directory for Envoy's bootstraps: {e}");
                return bootstraps.iter().map(|_| Some(why.clone())).collect();
            }
        };
        let next = AtomicUsize::new(0);
        let verdicts: Mutex<Vec<Option<String>>> = Mutex::new(vec![None; bootstraps.len()]);
        std::thread::scope(|s| {
            for _ in 0..self.parallel.max(1) {
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
