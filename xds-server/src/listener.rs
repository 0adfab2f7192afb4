//! The xDS port's accept loop: bounds what a client can hold before it has
//! spoken gRPC. Every connection takes a slot of `max_connections` (refused
//! when none is free) and must finish TCP → TLS (when configured) → the
//! HTTP/2 client preface within `handshake_timeout`, or it is closed. tonic
//! then serves the connections it is handed (`serve_with_incoming`), with
//! the peer's certificate identity in each request's extensions.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;

use crate::authz::PeerIdentity;
use bootes_tls::ReloadingTls;

/// What every HTTP/2 connection starts with (RFC 9113 §3.4).
const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub handshake_timeout: Duration,
    pub max_connections: usize,
}

/// Per-connection facts, in every request's extensions.
#[derive(Clone, Debug, Default)]
pub struct ConnInfo {
    pub remote_addr: Option<SocketAddr>,
    /// The verified client certificate's names, when the server requires
    /// client certificates.
    pub peer: Option<Arc<PeerIdentity>>,
}

enum Io {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

/// An accepted connection whose client preface has been read (and is
/// replayed to hyper before anything else).
pub struct Conn {
    io: Io,
    preface_sent: usize,
    info: ConnInfo,
    _slot: OwnedSemaphorePermit,
}

/// Accepts connections on `listener` for as long as the returned stream is
/// polled by the server.
pub fn incoming(
    listener: TcpListener,
    tls: Option<Arc<ReloadingTls>>,
    limits: Limits,
    on_refused: impl Fn(Refused) + Send + Sync + 'static,
) -> ReceiverStream<io::Result<Conn>> {
    let (tx, rx) = mpsc::channel(64);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let on_refused = Arc::new(on_refused);
    tokio::spawn(async move {
        loop {
            let (tcp, addr) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // E.g. out of file descriptors: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
                () = tx.closed() => return,
            };
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                on_refused(Refused::TooManyConnections);
                tracing::debug!(peer = %addr, "connection refused: max connections reached");
                continue;
            };
            let _ = tcp.set_nodelay(true);
            let tls = tls.clone();
            let tx = tx.clone();
            let on_refused = on_refused.clone();
            tokio::spawn(async move {
                let handshake = handshake(tcp, addr, tls.as_deref(), slot);
                match tokio::time::timeout(limits.handshake_timeout, handshake).await {
                    Ok(Ok(conn)) => {
                        let _ = tx.send(Ok(conn)).await;
                    }
                    Ok(Err(e)) => {
                        on_refused(Refused::Handshake);
                        tracing::debug!(peer = %addr, error = %e, "connection refused: handshake failed");
                    }
                    Err(_) => {
                        on_refused(Refused::HandshakeTimeout);
                        tracing::debug!(peer = %addr, "connection closed: no handshake within the timeout");
                    }
                }
            });
        }
    });
    ReceiverStream::new(rx)
}

/// Why a connection was closed before it reached gRPC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    TooManyConnections,
    Handshake,
    HandshakeTimeout,
}

impl Refused {
    pub fn label(self) -> &'static str {
        match self {
            Self::TooManyConnections => "max_connections",
            Self::Handshake => "handshake_failed",
            Self::HandshakeTimeout => "handshake_timeout",
        }
    }
}

async fn handshake(
    tcp: TcpStream,
    addr: SocketAddr,
    tls: Option<&ReloadingTls>,
    slot: OwnedSemaphorePermit,
) -> io::Result<Conn> {
    let mut info = ConnInfo {
        remote_addr: Some(addr),
        peer: None,
    };
    let mut io = match tls {
        None => Io::Plain(tcp),
        Some(tls) => {
            let stream = tokio_rustls::TlsAcceptor::from(tls.config())
                .accept(tcp)
                .await?;
            if tls.requires_client_auth() {
                // rustls refused the handshake unless a verified certificate
                // was presented, so there is one.
                let cert = stream
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|c| c.first())
                    .ok_or_else(|| io::Error::other("no client certificate"))?;
                info.peer = Some(Arc::new(crate::tls::peer::identity(cert)));
            }
            Io::Tls(Box::new(stream))
        }
    };
    let mut preface = [0u8; PREFACE.len()];
    match &mut io {
        Io::Plain(s) => s.read_exact(&mut preface).await?,
        Io::Tls(s) => s.read_exact(&mut preface).await?,
    };
    if &preface != PREFACE {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "not an HTTP/2 client (gRPC needs HTTP/2)",
        ));
    }
    Ok(Conn {
        io,
        preface_sent: 0,
        info,
        _slot: slot,
    })
}

impl tonic::transport::server::Connected for Conn {
    type ConnectInfo = ConnInfo;

    fn connect_info(&self) -> ConnInfo {
        self.info.clone()
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.preface_sent < PREFACE.len() {
            let rest = &PREFACE[this.preface_sent..];
            let n = rest.len().min(buf.remaining());
            buf.put_slice(&rest[..n]);
            this.preface_sent += n;
            return Poll::Ready(Ok(()));
        }
        match &mut this.io {
            Io::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Io::Tls(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match &mut self.io {
            Io::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Io::Tls(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match &mut self.io {
            Io::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Io::Tls(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match &self.io {
            Io::Plain(s) => s.is_write_vectored(),
            Io::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.io {
            Io::Plain(s) => Pin::new(s).poll_flush(cx),
            Io::Tls(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.io {
            Io::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Io::Tls(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests;
