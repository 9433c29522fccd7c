//! A pooled connection's I/O ([`Counted`]: holds the connection's permit
//! and notes when bytes arrive) and the response body that gives the
//! connection back to the pool when read to its end ([`PooledBody`]).

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::OwnedSemaphorePermit;

use super::multiplex::StreamSlot;
use super::{Conn, Pool};

/// A connection's I/O: holds its permit for as long as the connection (or
/// the tunnel it became) is open, and notes when bytes arrive.
pub(super) struct Counted<IO> {
    pub(super) io: IO,
    pub(super) read_any: Arc<AtomicBool>,
    pub(super) _slot: OwnedSemaphorePermit,
}

impl<IO: AsyncRead + Unpin> AsyncRead for Counted<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.io).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.read_any.store(true, Ordering::Relaxed);
        }
        polled
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Counted<IO> {
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

/// An upstream response body that hands its connection back to the pool
/// once it has been read to the end.
pub struct PooledBody {
    pub(super) body: Incoming,
    pub(super) home: Option<(Conn, Arc<Pool>)>,
    /// An HTTP/2 stream's place on its connection, freed with the body.
    pub(super) _stream: Option<StreamSlot>,
}

impl PooledBody {
    /// The body of an HTTP/2 stream: nothing to hand back but its place.
    pub(super) fn stream(body: Incoming, slot: StreamSlot) -> PooledBody {
        PooledBody {
            body,
            home: None,
            _stream: Some(slot),
        }
    }

    /// The body, for a `101` whose connection becomes a tunnel.
    pub fn into_inner(self) -> Incoming {
        self.body
    }

    pub(super) fn return_if_done(&mut self) {
        if self.body.is_end_stream() {
            self.go_home();
        }
    }

    fn go_home(&mut self) {
        if let Some((conn, pool)) = self.home.take() {
            pool.checkin(conn);
        }
    }
}

impl Body for PooledBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => self.go_home(),
            Poll::Ready(Some(Ok(_))) => self.return_if_done(),
            Poll::Ready(Some(Err(_))) => self.home = None,
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
