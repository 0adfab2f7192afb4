//! The xDS port's accept loop: bounds what a client can hold before it has
//! spoken gRPC. Every connection takes a slot of `max_connections` (refused
//! when none is free) and must finish TCP → TLS (when configured) → the
//! HTTP/2 client preface within `handshake_timeout`, or it is closed. tonic
//! then serves the connections it is handed (`serve_with_incoming`), with
//! the peer's certificate identity in each request's extensions.
//!
//! Reconnect storms. When thousands of Envoys reconnect at once, the kernel
//! queues their connections in the listen backlog until the process accepts
//! them; a connection that finds the queue full is dropped, and with SYN
//! cookies its client sees a reset once it sends data. So the backlog is
//! sized by a flag ([`bind`]), and accepting runs on a thread of its own
//! that does nothing else: it empties the queue at system-call speed however
//! busy the runtime serving the streams is. The handshakes run on the serving
//! runtime, each under its own `handshake_timeout`. (They are not queued
//! behind a concurrency limit: clients that never finish theirs would hold
//! every turn and lock everyone else out.)
//!
//! A connection's writes are batched ([`batched`]): a push to the streams
//! of one connection goes out as one write, not one per stream.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;

use crate::authz::PeerIdentity;
use crate::log_limit::LogLimit;
use batched::Batched;
use bootes_tls::ReloadingTls;

mod batched;

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
    io: Batched<Io>,
    preface_sent: usize,
    info: ConnInfo,
    _slot: OwnedSemaphorePermit,
}

/// Binds `addr` for the xDS port with a listen backlog of `backlog`
/// connections (the kernel caps it at `net.core.somaxconn`).
pub fn bind(addr: SocketAddr, backlog: u32) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    // As std and tokio do: a restarted replica can bind at once.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(backlog)
}

/// Accepts connections on `listener` for as long as the returned stream is
/// polled by the server; `on_refused` counts every connection closed before
/// gRPC. Must be called within the serving runtime: handshakes and the
/// connections run there; only accepting runs on a thread of its own.
pub fn incoming(
    listener: TcpListener,
    tls: Option<Arc<ReloadingTls>>,
    limits: Limits,
    on_refused: impl Fn(Refused) + Send + Sync + 'static,
) -> io::Result<ReceiverStream<io::Result<Conn>>> {
    let (tx, rx) = mpsc::channel(64);
    let serving = tokio::runtime::Handle::current();
    let listener = listener.into_std()?;
    let refusals = Arc::new(Refusals::new(on_refused));
    let accepting = Accepting {
        slots: Arc::new(Semaphore::new(limits.max_connections)),
        tls,
        limits,
        refusals,
        tx,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("xds-accept".into())
        .spawn(move || {
            runtime.block_on(async move {
                match TcpListener::from_std(listener) {
                    Ok(listener) => accepting.run(listener, serving).await,
                    Err(e) => tracing::error!(error = %e, "xDS listener failed"),
                }
            })
        })?;
    Ok(ReceiverStream::new(rx))
}

/// The accept thread's state.
struct Accepting<F> {
    slots: Arc<Semaphore>,
    tls: Option<Arc<ReloadingTls>>,
    limits: Limits,
    refusals: Arc<Refusals<F>>,
    tx: mpsc::Sender<io::Result<Conn>>,
}

impl<F: Fn(Refused) + Send + Sync + 'static> Accepting<F> {
    /// Accepts until the server stops polling the connections (it drains):
    /// then the listener is closed, so new clients are refused at once and
    /// go to another replica.
    async fn run(self, listener: TcpListener, serving: tokio::runtime::Handle) {
        loop {
            let (tcp, addr) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // E.g. out of file descriptors: back off instead of
                        // spinning; the connection waits in the backlog.
                        self.refusals.refused(Refused::AcceptFailed, None, &e.to_string());
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
                () = self.tx.closed() => return,
            };
            let Ok(slot) = self.slots.clone().try_acquire_owned() else {
                self.refusals.refused(
                    Refused::TooManyConnections,
                    Some(addr),
                    "max connections reached",
                );
                continue;
            };
            let tcp = match tcp.into_std() {
                Ok(tcp) => tcp,
                Err(e) => {
                    self.refusals
                        .refused(Refused::AcceptFailed, Some(addr), &e.to_string());
                    continue;
                }
            };
            let (tls, tx, refusals) = (self.tls.clone(), self.tx.clone(), self.refusals.clone());
            let limits = self.limits;
            serving.spawn(async move {
                let admitted = async {
                    let tcp = TcpStream::from_std(tcp)?;
                    let _ = tcp.set_nodelay(true);
                    handshake(tcp, addr, tls.as_deref(), slot).await
                };
                match tokio::time::timeout(limits.handshake_timeout, admitted).await {
                    Ok(Ok(conn)) => {
                        let _ = tx.send(Ok(conn)).await;
                    }
                    Ok(Err(e)) => {
                        let why = if is_peer_gone(&e) {
                            Refused::PeerClosed
                        } else {
                            Refused::Handshake
                        };
                        refusals.refused(why, Some(addr), &e.to_string());
                    }
                    Err(_) => {
                        refusals.refused(
                            Refused::HandshakeTimeout,
                            Some(addr),
                            "no handshake within the timeout",
                        );
                    }
                }
            });
        }
    }
}

/// The client went away during the handshake (nothing the server refused).
fn is_peer_gone(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::UnexpectedEof
    )
}

/// Why a connection was closed before it reached gRPC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Refused {
    TooManyConnections,
    Handshake,
    HandshakeTimeout,
    /// The client reset or closed the connection before its preface.
    PeerClosed,
    /// `accept` itself failed (e.g. no file descriptor left).
    AcceptFailed,
}

impl Refused {
    pub fn label(self) -> &'static str {
        match self {
            Self::TooManyConnections => "max_connections",
            Self::Handshake => "handshake_failed",
            Self::HandshakeTimeout => "handshake_timeout",
            Self::PeerClosed => "peer_closed",
            Self::AcceptFailed => "accept_failed",
        }
    }
}

/// Counts every refusal and logs each reason at a bounded rate
/// ([`LogLimit`]).
struct Refusals<F> {
    count: F,
    log: LogLimit,
}

impl<F: Fn(Refused)> Refusals<F> {
    fn new(count: F) -> Self {
        Self {
            count,
            log: LogLimit::default(),
        }
    }

    /// Counts the refusal; logs it unless its reason was logged recently
    /// (returns whether it logged).
    fn refused(&self, why: Refused, peer: Option<SocketAddr>, detail: &str) -> bool {
        (self.count)(why);
        let Some(suppressed) = self.log.may_log(why.label()) else {
            return false;
        };
        tracing::warn!(
            reason = why.label(),
            peer = ?peer,
            detail,
            not_logged_since_last = suppressed,
            "connection refused before gRPC"
        );
        true
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
        io: Batched::new(io),
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
        Pin::new(&mut this.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

impl AsyncRead for Io {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Io::Tls(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Io {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Io::Tls(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Io::Tls(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Io::Plain(s) => s.is_write_vectored(),
            Io::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_flush(cx),
            Io::Tls(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Io::Tls(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests;
