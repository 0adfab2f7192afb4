//! A tiny in-process HTTP upstream that answers every request with its own
//! name, so a test can see where Envoy routed a request.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::{Context, Result};
use axum::http::header::{HeaderName, HeaderValue};

/// An HTTP/1.1 server on a free loopback port: every request gets `200`,
/// body `<name>`, header `x-upstream: <name>`. Stopped when dropped.
#[derive(Debug)]
pub struct Upstream {
    name: String,
    addr: SocketAddr,
    hits: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Upstream {
    /// Binds 127.0.0.1:0 and starts serving on the current Tokio runtime.
    pub async fn start(name: &str) -> Result<Self> {
        Self::start_at(name, SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// Like [`Upstream::start`], on `addr`: a loopback address such as
    /// 127.0.0.12 stands for one pod of a Service (pods share a port).
    pub async fn start_at(name: &str, addr: SocketAddr) -> Result<Self> {
        anyhow::ensure!(addr.ip().is_loopback(), "{addr} is not a loopback address");
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding the upstream on {addr}"))?;
        let addr = listener.local_addr()?;
        let hits = Arc::new(AtomicU64::new(0));
        let body = name.to_string();
        let header = HeaderValue::from_str(name).context("upstream name must be a header value")?;
        let counter = hits.clone();
        let app = axum::Router::new().fallback(move || {
            let body = body.clone();
            let header = header.clone();
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, Ordering::Relaxed);
                ([(HeaderName::from_static("x-upstream"), header)], body)
            }
        });
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self {
            name: name.to_string(),
            addr,
            hits,
            task,
        })
    }

    /// `n` upstreams standing for the pods of one Service, named `pod-0`,
    /// `pod-1`, …: on 127.0.0.`first`, 127.0.0.`first`+1, … and one port
    /// (another port is tried if one is taken on some address).
    pub async fn start_pods(first: u8, n: u8) -> Result<Vec<Self>> {
        for _ in 0..20 {
            let pod0 = Self::start_at("pod-0", SocketAddr::from(([127, 0, 0, first], 0))).await?;
            let port = pod0.addr().port();
            let mut pods = vec![pod0];
            for i in 1..n {
                let addr = SocketAddr::from(([127, 0, 0, first + i], port));
                match Self::start_at(&format!("pod-{i}"), addr).await {
                    Ok(u) => pods.push(u),
                    Err(_) => break,
                }
            }
            if pods.len() == usize::from(n) {
                return Ok(pods);
            }
        }
        anyhow::bail!("no port free on every one of 127.0.0.{first}..+{n}")
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// How many requests it answered.
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}
