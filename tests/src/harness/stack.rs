//! The usual end-to-end setup, and assertions on requests through Envoy.

use std::net::SocketAddr;

use anyhow::{ensure, Result};

use super::{eventually, http_get, Controller, Etcd, ManifestDir, Upstream, XdsServer};

/// etcd, the controller on a manifest directory, and `replicas` xds-servers
/// (named a, b, …). Dropped in order: servers, controller, etcd.
#[derive(Debug)]
pub struct Stack {
    pub xds: Vec<XdsServer>,
    pub controller: Controller,
    pub etcd: Etcd,
}

impl Stack {
    pub async fn start(manifests: &ManifestDir, replicas: usize) -> Result<Self> {
        let etcd = Etcd::start().await?;
        let controller = Controller::start(&etcd, manifests.path()).await?;
        let mut xds = Vec::new();
        for i in 0..replicas {
            let name = ((b'a' + i as u8) as char).to_string();
            // Plaintext on loopback, as the quickstart runs: SDS is allowed
            // without client certificates (the TLS tests cover the rest).
            xds.push(
                XdsServer::start_with_args(&etcd, &name, &["--allow-unauthenticated-secrets"])
                    .await?,
            );
        }
        Ok(Self {
            xds,
            controller,
            etcd,
        })
    }

    /// The gRPC addresses of every replica (for the Envoy bootstrap).
    pub fn xds_addrs(&self) -> Vec<SocketAddr> {
        self.xds.iter().map(XdsServer::addr).collect()
    }

    /// The replica listening on `addr`.
    pub fn replica(&mut self, addr: SocketAddr) -> Option<&mut XdsServer> {
        self.xds.iter_mut().find(|s| s.addr() == addr)
    }
}

/// 127.0.0.1:`port`.
pub fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Waits until `GET path` with `Host: host` on 127.0.0.1:`port` is answered
/// 200 by the upstream named `want` (see [`super::Upstream`]), then checks
/// that the next five requests go there too.
pub async fn expect_routed(port: u16, host: &str, path: &str, want: &str) -> Result<()> {
    let addr = local(port);
    eventually(
        &format!("GET http://{host}{path} via Envoy :{port} reaches {want}"),
        || async {
            let r = http_get(addr, host, path).await?;
            ensure!(
                r.status == 200 && r.text() == want,
                "got {} {:?}",
                r.status,
                r.text()
            );
            Ok(())
        },
    )
    .await?;
    for i in 0..5 {
        let r = http_get(addr, host, path).await?;
        ensure!(
            r.status == 200 && r.text() == want,
            "request {i} after the switch: GET http://{host}{path} via :{port} got {} {:?}, want {want}",
            r.status,
            r.text()
        );
    }
    Ok(())
}

/// Waits until `GET path` on 127.0.0.1:`port` is answered with `status`.
pub async fn expect_status(port: u16, host: &str, path: &str, status: u16) -> Result<()> {
    eventually(
        &format!("GET http://{host}{path} via Envoy :{port} answers {status}"),
        || async {
            let r = http_get(local(port), host, path).await?;
            ensure!(r.status == status, "got {} {:?}", r.status, r.text());
            Ok(())
        },
    )
    .await
}

/// Waits until a batch of `GET path` requests (Host `host`) through Envoy on
/// `port` is answered by every one of `serving` and by no other upstream
/// (load balancing spreads them: 8 per upstream), then checks that the next
/// batch is too.
pub async fn expect_spread(port: u16, host: &str, path: &str, serving: &[&Upstream]) -> Result<()> {
    let mut want: Vec<&str> = serving.iter().map(|u| u.name()).collect();
    want.sort();
    let check = || async {
        let mut seen = std::collections::BTreeMap::<String, usize>::new();
        for _ in 0..8 * serving.len() {
            let r = http_get(local(port), host, path).await?;
            ensure!(r.status == 200, "got {} {:?}", r.status, r.text());
            *seen.entry(r.text().to_string()).or_default() += 1;
        }
        let names: Vec<&str> = seen.keys().map(String::as_str).collect();
        ensure!(names == want, "answered by {seen:?}, want exactly {want:?}");
        Ok(())
    };
    eventually(
        &format!("GET http://{host}{path} via Envoy :{port} reaches exactly {want:?}"),
        check,
    )
    .await?;
    check().await
}
