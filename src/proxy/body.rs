//! The request body as it is forwarded: the client's body, bounded by
//! `server.body_read_timeout_ms`, with its failures marked as the client's.
//!
//! A body that arrives broken (a malformed chunk size or chunk line, a
//! reset stream) or too slowly is the client's fault, not the upstream's:
//! hyper's client reports both only as "the request body failed", so the
//! body itself records what happened in a [`BodyWatch`] that forwarding
//! reads when the upstream exchange fails. The deadline counts from the
//! moment the body starts to be forwarded and covers the whole body, so a
//! body that trickles a byte at a time cannot hold an upstream connection
//! for longer than the deadline either. For an HTTP/2 upstream the
//! deadline ends when the upstream's response head arrives
//! ([`BodyWatch::open_ended`]): a stream does not hold a connection to
//! itself, and gRPC streams last as long as both ends want.
//!
//! A request without a body (the common case: `GET`, or `Content-Length:
//! 0`) costs nothing: no timer and no shared state.

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::Sleep;

/// Why the client's body could not be forwarded.
#[derive(Debug, thiserror::Error)]
pub enum ClientBodyError {
    /// Bad framing or an aborted stream on the client's side.
    #[error("the request body is malformed: {0}")]
    Malformed(hyper::Error),
    /// Not all of the body arrived within `body_read_timeout_ms`.
    #[error("the request body did not arrive in time")]
    Timeout,
}

/// What happened to a forwarded body, shared between the body (owned by the
/// upstream connection) and the forwarding code; and whether the deadline
/// still holds.
#[derive(Debug, Default)]
pub struct BodyWatch {
    state: AtomicU8,
    open_ended: AtomicBool,
}

/// The states a [`BodyWatch`] records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyState {
    /// Still being read from the client.
    Reading,
    /// Read to its end.
    Complete,
    Malformed,
    TimedOut,
}

impl BodyWatch {
    fn set(&self, state: BodyState) {
        self.state.store(state as u8, Ordering::Release);
    }

    /// Lifts the deadline: the body may take as long as the exchange lasts.
    pub fn open_ended(&self) {
        self.open_ended.store(true, Ordering::Release);
    }

    pub fn state(&self) -> BodyState {
        match self.state.load(Ordering::Acquire) {
            1 => BodyState::Complete,
            2 => BodyState::Malformed,
            3 => BodyState::TimedOut,
            _ => BodyState::Reading,
        }
    }
}

/// The forwarded request body.
pub struct RequestBody {
    inner: Incoming,
    /// Only for a body that has content to read.
    guard: Option<Guard>,
}

struct Guard {
    deadline: Pin<Box<Sleep>>,
    watch: Arc<BodyWatch>,
}

impl RequestBody {
    /// Wraps the client's body; the watch is `None` for an empty body.
    pub fn new(inner: Incoming, timeout: Duration) -> (RequestBody, Option<Arc<BodyWatch>>) {
        if inner.is_end_stream() {
            return (RequestBody { inner, guard: None }, None);
        }
        let watch = Arc::new(BodyWatch::default());
        let guard = Guard {
            deadline: Box::pin(tokio::time::sleep(timeout)),
            watch: watch.clone(),
        };
        let body = RequestBody {
            inner,
            guard: Some(guard),
        };
        (body, Some(watch))
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = ClientBodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ClientBodyError>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        let Some(guard) = &mut this.guard else {
            return polled.map(|f| f.map(|r| r.map_err(ClientBodyError::Malformed)));
        };
        match polled {
            Poll::Ready(Some(Ok(frame))) => {
                if this.inner.is_end_stream() {
                    guard.watch.set(BodyState::Complete);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(None) => {
                guard.watch.set(BodyState::Complete);
                Poll::Ready(None)
            }
            Poll::Ready(Some(Err(e))) => {
                guard.watch.set(BodyState::Malformed);
                Poll::Ready(Some(Err(ClientBodyError::Malformed(e))))
            }
            Poll::Pending if guard.watch.open_ended.load(Ordering::Acquire) => Poll::Pending,
            Poll::Pending => match guard.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    guard.watch.set(BodyState::TimedOut);
                    Poll::Ready(Some(Err(ClientBodyError::Timeout)))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_watch_round_trips_every_state() {
        let watch = BodyWatch::default();
        assert_eq!(watch.state(), BodyState::Reading);
        for state in [
            BodyState::Complete,
            BodyState::Malformed,
            BodyState::TimedOut,
            BodyState::Reading,
        ] {
            watch.set(state);
            assert_eq!(watch.state(), state);
        }
    }
}
