//! One write per connection per turn, however many streams pushed.
//!
//! h2 flushes its writer after every data frame it sends without copying
//! (all but the smallest): a push to the 10 streams of one connection would
//! cost 10 `writev`s, and as many TCP segments for the client to read. Here
//! a connection's writes are copied into one buffer, and a flush only
//! schedules the write: the connection task wakes itself and yields, so the
//! other streams woken by the same push queue their frames meanwhile, and
//! its next turn (which always starts by reading the socket, as h2's does)
//! writes everything at once. A buffer over [`HIGH_WATER`] is written at
//! once, shutting down writes what is left first, and the buffer's memory is
//! returned once written, so an idle connection holds none.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Buffered bytes beyond which a write goes to the socket without waiting
/// for the connection's next turn.
pub const HIGH_WATER: usize = 256 * 1024;

/// A batch's first allocation: a push of a few responses fits without
/// growing (each growth copies the batch).
const FIRST_CAPACITY: usize = 64 * 1024;

/// `T` with its writes batched per turn of the task that polls it.
pub struct Batched<T> {
    inner: T,
    out: Vec<u8>,
    /// Bytes of `out` already written.
    written: usize,
    /// A flush was deferred: the task woke itself and writes `out` on its
    /// next turn.
    deferred: bool,
}

impl<T> Batched<T> {
    pub fn new(inner: T) -> Self {
        Self {
            inner,
            out: Vec::new(),
            written: 0,
            deferred: false,
        }
    }
}

impl<T: AsyncWrite + Unpin> Batched<T> {
    /// Writes the whole buffer to `inner`; the buffer's memory is freed.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.out.len() {
            let n = std::task::ready!(
                Pin::new(&mut self.inner).poll_write(cx, &self.out[self.written..])
            )?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        self.out = Vec::new();
        self.written = 0;
        self.deferred = false;
        Poll::Ready(Ok(()))
    }

    fn buffer(&mut self, bufs: &[io::IoSlice<'_>]) -> usize {
        let len: usize = bufs.iter().map(|b| b.len()).sum();
        self.out.reserve(if self.out.capacity() == 0 {
            len.max(FIRST_CAPACITY)
        } else {
            len
        });
        for b in bufs {
            self.out.extend_from_slice(b);
        }
        len
    }

    fn poll_write_all(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.out.len() >= HIGH_WATER {
            std::task::ready!(self.poll_drain(cx))?;
        }
        Poll::Ready(Ok(self.buffer(bufs)))
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncRead for Batched<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        // A new turn: what the last one buffered goes out now. A socket
        // that is full wakes the task when it is writable again.
        if this.deferred {
            if let Poll::Ready(Err(e)) = this.poll_drain(cx) {
                return Poll::Ready(Err(e));
            }
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Batched<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_all(cx, &[io::IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_all(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.out.len() >= HIGH_WATER {
            std::task::ready!(this.poll_drain(cx))?;
        }
        if this.out.is_empty() {
            return Pin::new(&mut this.inner).poll_flush(cx);
        }
        if !this.deferred {
            this.deferred = true;
            cx.waker().wake_by_ref();
        }
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        std::task::ready!(this.poll_drain(cx))?;
        std::task::ready!(Pin::new(&mut this.inner).poll_flush(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use super::*;

    /// Records every write that reaches it.
    #[derive(Default)]
    struct Socket {
        writes: Vec<Vec<u8>>,
        /// Writes refused (`Pending`) before the next is taken.
        full_for: usize,
        shut: bool,
    }

    impl AsyncRead for Socket {
        fn poll_read(
            self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
            _buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            Poll::Pending
        }
    }

    impl AsyncWrite for Socket {
        fn poll_write(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            if self.full_for > 0 {
                self.full_for -= 1;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            self.writes.push(buf.to_vec());
            Poll::Ready(Ok(buf.len()))
        }
        fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            self.shut = true;
            Poll::Ready(Ok(()))
        }
    }

    /// A waker that counts its wakes.
    fn waker() -> (std::task::Waker, Arc<AtomicUsize>) {
        struct Count(Arc<AtomicUsize>);
        impl std::task::Wake for Count {
            fn wake(self: Arc<Self>) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let n = Arc::new(AtomicUsize::new(0));
        (Arc::new(Count(n.clone())).into(), n)
    }

    /// What h2 does on one turn of a connection: reads until the socket
    /// has nothing, then writes each frame and flushes after each.
    fn turn(io: &mut Batched<Socket>, cx: &mut Context<'_>, frames: &[&[u8]]) {
        let mut space = [0u8; 16];
        let mut buf = ReadBuf::new(&mut space);
        assert!(Pin::new(&mut *io).poll_read(cx, &mut buf).is_pending());
        for f in frames {
            let head = [0u8; 9];
            let n = Pin::new(&mut *io)
                .poll_write_vectored(cx, &[io::IoSlice::new(&head), io::IoSlice::new(f)]);
            assert!(matches!(n, Poll::Ready(Ok(n)) if n == 9 + f.len()));
            assert!(Pin::new(&mut *io).poll_flush(cx).is_ready());
        }
    }

    #[test]
    fn the_frames_of_one_turn_reach_the_socket_as_one_write_on_the_next() {
        let (waker, wakes) = waker();
        let mut cx = Context::from_waker(&waker);
        let mut io = Batched::new(Socket::default());
        turn(&mut io, &mut cx, &[b"one", b"two", b"three"]);
        assert!(io.inner.writes.is_empty(), "nothing written yet");
        assert_eq!(wakes.load(Ordering::SeqCst), 1, "the task woke itself once");

        turn(&mut io, &mut cx, &[b"four"]);
        let writes = &io.inner.writes;
        assert_eq!(writes.len(), 1, "one write for the whole first turn");
        assert_eq!(writes[0].len(), 3 * 9 + 11);
        assert!(writes[0].ends_with(b"three"));
        assert_eq!(wakes.load(Ordering::SeqCst), 2);

        turn(&mut io, &mut cx, &[]);
        assert_eq!(io.inner.writes.len(), 2);
        assert!(io.inner.writes[1].ends_with(b"four"));
        assert!(io.out.capacity() == 0, "an idle connection holds no buffer");
        assert_eq!(wakes.load(Ordering::SeqCst), 2, "nothing left: no wake");
    }

    #[test]
    fn a_full_buffer_is_written_at_once_and_waits_for_the_socket() {
        let (waker, _) = waker();
        let mut cx = Context::from_waker(&waker);
        let mut io = Batched::new(Socket::default());
        let big = vec![7u8; HIGH_WATER];
        turn(&mut io, &mut cx, &[&big]);
        assert_eq!(io.inner.writes.len(), 1, "over the mark: written");
        io.inner.full_for = 1;
        let mut pending = Pin::new(&mut io).poll_write(&mut cx, &big);
        assert!(pending.is_ready(), "below the mark: buffered");
        pending = Pin::new(&mut io).poll_write(&mut cx, b"more");
        assert!(pending.is_pending(), "over the mark and the socket is full");
        assert!(Pin::new(&mut io).poll_write(&mut cx, b"more").is_ready());
        assert_eq!(io.inner.writes.len(), 2);
    }

    #[test]
    fn shutting_down_writes_what_is_buffered_first() {
        let (waker, _) = waker();
        let mut cx = Context::from_waker(&waker);
        let mut io = Batched::new(Socket::default());
        turn(&mut io, &mut cx, &[b"goaway"]);
        assert!(Pin::new(&mut io).poll_shutdown(&mut cx).is_ready());
        assert!(io.inner.shut);
        assert!(io.inner.writes[0].ends_with(b"goaway"));
    }
}
