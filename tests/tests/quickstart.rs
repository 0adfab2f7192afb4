//! The README's run command, `scripts/quickstart.sh`, as a new user runs it:
//! it must set everything up, route requests through Envoy, and end by
//! telling the user what to try next with commands that really work.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Lines printed by the script so far, waiting up to `deadline` for one
/// that contains `needle`.
fn read_until(
    lines: &mpsc::Receiver<String>,
    seen: &mut Vec<String>,
    needle: &str,
    deadline: Instant,
) -> bool {
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match lines.recv_timeout(left) {
            Ok(line) => {
                let found = line.contains(needle);
                seen.push(line);
                if found {
                    return true;
                }
            }
            Err(_) => return false,
        }
    }
    false
}

#[test]
fn quickstart_routes_requests_and_says_what_to_try_next() {
    // Debug binaries: the test suite has just built them.
    let mut child = Command::new("bash")
        .arg(repo().join("scripts/quickstart.sh"))
        .args(["--debug", "--keep-running"])
        .current_dir(repo())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("bash runs");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });

    // Generous: it may have to build first.
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut seen = Vec::new();
    let ready = read_until(&rx, &mut seen, "Stop everything: Ctrl-C", deadline);
    let out = seen.join("\n");
    if !ready {
        // SIGTERM, not SIGKILL: the script's trap then stops what it started
        // (a killed script left etcd, the upstreams on 18081/18082 and the
        // controller running, and every later run failed on the ports).
        sigterm(&child);
        let _ = wait_exit(&mut child, Duration::from_secs(30));
        let _ = child.kill();
        panic!("the quickstart did not reach its closing text:\n{out}");
    }

    // It routed real requests through Envoy to both upstreams.
    assert!(out.contains("web answered GET /"), "{out}");
    assert!(out.contains("api answered GET /api/users"), "{out}");
    // It tells what to try next: inspect, the files to edit, how to stop.
    assert!(out.contains("manifests/examples/"), "{out}");
    assert!(out.contains("Ctrl-C"), "{out}");
    let inspect = seen
        .iter()
        .find(|l| l.contains("bootes-controller inspect nodes --etcd-endpoints http://"))
        .unwrap_or_else(|| panic!("no inspect command in:\n{out}"));
    // The printed command works as printed.
    let argv: Vec<&str> = inspect.split_whitespace().collect();
    let inspected = Command::new(argv[0])
        .args(&argv[1..])
        .output()
        .expect("the printed inspect command runs");
    let text = String::from_utf8_lossy(&inspected.stdout);
    assert!(
        inspected.status.success(),
        "{inspect}: {}",
        String::from_utf8_lossy(&inspected.stderr)
    );
    assert!(text.contains("envoy-0.demo"), "{text}");

    // Ctrl-C stops everything, as the text says. The script handles SIGINT
    // and SIGTERM with one trap; the test sends SIGTERM because a test may
    // inherit SIGINT ignored (a non-interactive shell starts `&` jobs so),
    // and bash cannot trap a signal that was ignored when it started.
    assert!(sigterm(&child), "kill -TERM failed");
    let status = wait_exit(&mut child, Duration::from_secs(60))
        .expect("the quickstart did not stop after SIGTERM");
    assert_eq!(status.code(), Some(130), "exit status after the signal");
    // Its Envoy listener is gone with it.
    assert!(
        std::net::TcpListener::bind(("127.0.0.1", 10000)).is_ok(),
        "127.0.0.1:10000 still in use after the quickstart stopped"
    );
}

/// Sends the script SIGTERM; whether `kill` succeeded.
fn sigterm(child: &Child) -> bool {
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .is_ok_and(|s| s.success())
}

/// Waits up to `within` for the script to exit.
fn wait_exit(child: &mut Child, within: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
