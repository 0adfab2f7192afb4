//! Helpers for tests that use the stand-in: start the `kube-standin` binary on a free
//! loopback port with its own kubeconfig, run `kubectl` against it, and speak plain
//! HTTP/1.1 to it (including chunked watch streams) without an HTTP client crate.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader as AsyncBufReader};
use tokio::net::TcpStream;

/// A running `kube-standin` process; killed on drop.
pub struct StandinProcess {
    child: Child,
    pub addr: SocketAddr,
    pub kubeconfig: PathBuf,
    pub dir: tempfile::TempDir,
}

impl std::fmt::Debug for StandinProcess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StandinProcess")
            .field("addr", &self.addr)
            .field("kubeconfig", &self.kubeconfig)
            .finish()
    }
}

impl StandinProcess {
    /// Starts the binary (pass `env!("CARGO_BIN_EXE_kube-standin")`) on 127.0.0.1:0
    /// with extra arguments, and waits (at most 30 s) for its `listening on` line.
    pub fn start_with(bin: impl AsRef<Path>, extra_args: &[&str]) -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let kubeconfig = dir.path().join("kubeconfig");
        let mut child = Command::new(bin.as_ref())
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--write-kubeconfig")
            .arg(&kubeconfig)
            .args(extra_args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting {}", bin.as_ref().display()))?;
        let stdout = child.stdout.take().context("no stdout")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(first)) = lines.next() {
                let _ = tx.send(first);
            }
            // Keep draining so the child never blocks on a full pipe.
            for _ in lines {}
        });
        let line = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(l) => l,
            Err(_) => {
                let _ = child.kill();
                bail!("kube-standin did not print its address within 30 s");
            }
        };
        let addr: SocketAddr = line
            .strip_prefix("listening on ")
            .ok_or_else(|| anyhow!("unexpected first line {line:?}"))?
            .trim()
            .parse()?;
        Ok(Self {
            child,
            addr,
            kubeconfig,
            dir,
        })
    }

    pub fn start(bin: impl AsRef<Path>) -> Result<Self> {
        Self::start_with(bin, &[])
    }

    /// `http://ADDR`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A `kubectl` command using this stand-in's kubeconfig and a private
    /// cache (failing the test, saying why, when kubectl is too old).
    pub fn kubectl(&self) -> Command {
        let mut c = crate::kubectl::kubectl(crate::kubectl::AGAINST_STANDIN);
        c.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(self.dir.path().join("kube-cache"))
            .env("KUBECONFIG", &self.kubeconfig)
            .env("HOME", self.dir.path());
        c
    }
}

impl Drop for StandinProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A complete HTTP response.
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn json(&self) -> Result<Value> {
        serde_json::from_slice(&self.body).with_context(|| {
            format!(
                "response body is not JSON: {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn request_head(
    method: &str,
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    len: usize,
    close: bool,
) -> String {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if len > 0 || matches!(method, "POST" | "PUT" | "PATCH") {
        head.push_str(&format!("Content-Length: {len}\r\n"));
    }
    if close {
        head.push_str("Connection: close\r\n");
    }
    head.push_str("\r\n");
    head
}

fn parse_head(head: &str) -> Result<(u16, Vec<(String, String)>)> {
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .ok_or_else(|| anyhow!("bad status line {status_line:?}"))?
        .parse()?;
    let headers = lines
        .filter(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Ok((status, headers))
}

fn decode_chunked(mut data: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let pos = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or_else(|| anyhow!("truncated chunk header"))?;
        let size_text = std::str::from_utf8(&data[..pos])?;
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)?;
        data = &data[pos + 2..];
        if size == 0 {
            return Ok(out);
        }
        if data.len() < size + 2 {
            bail!("truncated chunk");
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

/// One HTTP/1.1 request on a fresh connection (`Connection: close`).
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Result<HttpResponse> {
    let body = body.unwrap_or_default();
    let mut stream = TcpStream::connect(addr).await?;
    stream
        .write_all(request_head(method, addr, path, headers, body.len(), true).as_bytes())
        .await?;
    stream.write_all(body).await?;
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut raw))
        .await
        .context("response timed out")??;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| anyhow!("no end of headers in response"))?;
    let (status, headers) = parse_head(std::str::from_utf8(&raw[..split])?)?;
    let rest = &raw[split + 4..];
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    let body = if chunked {
        decode_chunked(rest)?
    } else {
        rest.to_vec()
    };
    Ok(HttpResponse {
        status,
        headers,
        body,
    })
}

/// A JSON request: returns the status and the parsed body.
pub async fn json_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    content_type: &str,
    body: Option<&Value>,
) -> Result<(u16, Value)> {
    let bytes = body.map(|b| b.to_string().into_bytes());
    let r = request(
        addr,
        method,
        path,
        &[
            ("Content-Type", content_type),
            ("Accept", "application/json"),
        ],
        bytes.as_deref(),
    )
    .await?;
    Ok((r.status, r.json()?))
}

/// A watch stream: JSON events read from a chunked response, one at a time.
pub struct WatchStream {
    reader: AsyncBufReader<TcpStream>,
    buf: Vec<u8>,
    events: VecDeque<Value>,
    ended: bool,
}

impl std::fmt::Debug for WatchStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatchStream")
            .field("ended", &self.ended)
            .finish()
    }
}

impl WatchStream {
    /// GETs `path` (which should carry `watch=true`) and checks for a 200 response.
    pub async fn open(addr: SocketAddr, path: &str, accept: Option<&str>) -> Result<Self> {
        let mut stream = TcpStream::connect(addr).await?;
        let accept = accept.unwrap_or("application/json");
        stream
            .write_all(request_head("GET", addr, path, &[("Accept", accept)], 0, false).as_bytes())
            .await?;
        let mut reader = AsyncBufReader::new(stream);
        let mut head = String::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).await? == 0 {
                bail!("connection closed before the response headers ended");
            }
            if line == "\r\n" {
                break;
            }
            head.push_str(&line);
        }
        let (status, headers) = parse_head(&head)?;
        if status != 200 {
            let len: usize = headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or(0);
            let mut body = vec![0; len];
            reader.read_exact(&mut body).await?;
            bail!(
                "watch {path} returned {status}: {}",
                String::from_utf8_lossy(&body)
            );
        }
        Ok(Self {
            reader,
            buf: Vec::new(),
            events: VecDeque::new(),
            ended: false,
        })
    }

    async fn read_chunk(&mut self) -> Result<bool> {
        let mut size_line = String::new();
        if self.reader.read_line(&mut size_line).await? == 0 {
            return Ok(false);
        }
        let size = usize::from_str_radix(size_line.trim().split(';').next().unwrap_or(""), 16)
            .with_context(|| format!("bad chunk size line {size_line:?}"))?;
        if size == 0 {
            let mut trailer = String::new();
            let _ = self.reader.read_line(&mut trailer).await;
            return Ok(false);
        }
        let mut chunk = vec![0; size + 2];
        self.reader.read_exact(&mut chunk).await?;
        chunk.truncate(size);
        self.buf.extend_from_slice(&chunk);
        while let Some(pos) = self.buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.buf.drain(..=pos).collect();
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            self.events.push_back(serde_json::from_slice(&line)?);
        }
        Ok(true)
    }

    /// The next event; `Ok(None)` when the server ended the stream; an error when
    /// nothing arrived within `wait`.
    pub async fn next(&mut self, wait: Duration) -> Result<Option<Value>> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(e) = self.events.pop_front() {
                return Ok(Some(e));
            }
            if self.ended {
                return Ok(None);
            }
            match tokio::time::timeout_at(deadline, self.read_chunk()).await {
                Ok(Ok(true)) => {}
                Ok(Ok(false)) => self.ended = true,
                Ok(Err(e)) => return Err(e),
                Err(_) => bail!("no watch event within {wait:?}"),
            }
        }
    }

    /// Reads events until one satisfies `pred` (returned) or `wait` passes (error).
    /// Events skipped on the way are returned too, in order, for inspection.
    pub async fn until(
        &mut self,
        wait: Duration,
        mut pred: impl FnMut(&Value) -> bool,
    ) -> Result<(Value, Vec<Value>)> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut skipped = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next(left).await {
                Ok(Some(e)) if pred(&e) => return Ok((e, skipped)),
                Ok(Some(e)) => skipped.push(e),
                Ok(None) => bail!("watch ended before the expected event; saw {skipped:?}"),
                Err(e) => return Err(e.context(format!("saw {skipped:?}"))),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_decoding() {
        let body = b"5\r\nhello\r\n6;x=y\r\n world\r\n0\r\n\r\n";
        assert_eq!(decode_chunked(body).unwrap(), b"hello world");
        assert!(decode_chunked(b"5\r\nhel").is_err());
    }
}
