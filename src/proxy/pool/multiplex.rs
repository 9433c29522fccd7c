//! HTTP/2 connections to one upstream (`protocol = "h2"`): streams
//! multiplexed over as few connections as the upstream allows.
//!
//! **Which connection.** A request goes on the first open connection with
//! fewer open streams than the upstream's `SETTINGS_MAX_CONCURRENT_STREAMS`
//! (read from the connection as its settings arrive). When every
//! connection is full, one more is opened, up to `max_connections`; past
//! that the least busy connection takes the stream and HTTP/2 queues it
//! until one of its streams ends. Connections are opened one at a time, so
//! a burst of requests at start shares the first connection instead of
//! opening one each.
//!
//! **GOAWAY and closed connections.** A connection the upstream closes or
//! sends GOAWAY on is forgotten, and requests that had not been sent on it
//! are sent on another: either hyper hands the request back (it never
//! left the queue), or the upstream's GOAWAY or `REFUSED_STREAM` says the
//! stream was not processed (RFC 9113 sections 6.8 and 8.7) and no byte of
//! its body was read. The head is copied before sending for that case; the
//! body comes back through [`Returnable`] when the connection dropped it
//! unread. Anything else is not retried: a stream the upstream may have
//! processed must not run twice.
//!
//! **Lifetime.** A connection lives while the upstream keeps it open and
//! the pool exists; a reload drops the pool, and hyper closes each
//! connection once its last stream has ended.

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, Uri};
use http_body::{Body, Frame, SizeHint};
use hyper::client::conn::http2::{self, SendRequest};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::OwnedSemaphorePermit;

use super::replay::replayable;
use super::wire::Counted;
use super::{Pool, PooledBody, ReqBody, SendError, WireBody};

/// Sends on a connection at most this many times for one request: the
/// first try and two on other connections after GOAWAYs.
const ATTEMPTS: usize = 3;

/// The live connections of one upstream.
#[derive(Default)]
pub(super) struct Multiplexed {
    conns: Mutex<Vec<H2Conn>>,
    /// Held while a connection is being opened.
    opening: tokio::sync::Mutex<()>,
}

/// One connection's sending half and its stream accounting.
#[derive(Clone)]
pub(super) struct H2Conn {
    sender: SendRequest<Returnable>,
    /// Streams opened through the pool and not yet ended.
    open: Arc<AtomicUsize>,
    /// The upstream's current `SETTINGS_MAX_CONCURRENT_STREAMS`.
    limit: Arc<AtomicUsize>,
}

impl H2Conn {
    fn has_room(&self) -> bool {
        self.open.load(Ordering::Relaxed) < self.limit.load(Ordering::Relaxed)
    }

    fn same(&self, other: &H2Conn) -> bool {
        Arc::ptr_eq(&self.open, &other.open)
    }
}

/// An open stream; dropping it (with the response body) frees its place.
pub struct StreamSlot(Arc<AtomicUsize>);

impl StreamSlot {
    fn take(conn: &H2Conn) -> StreamSlot {
        conn.open.fetch_add(1, Ordering::Relaxed);
        StreamSlot(Arc::clone(&conn.open))
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Multiplexed {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<H2Conn>> {
        self.conns.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The first open connection with room for a stream; closed ones are
    /// forgotten on the way.
    pub(super) fn with_room(&self) -> Option<H2Conn> {
        let mut conns = self.lock();
        conns.retain(|c| !c.sender.is_closed());
        conns.iter().find(|c| c.has_room()).cloned()
    }

    /// The open connection with the fewest streams, for when no more may
    /// be opened.
    pub(super) fn least_busy(&self) -> Option<H2Conn> {
        let mut conns = self.lock();
        conns.retain(|c| !c.sender.is_closed());
        conns
            .iter()
            .min_by_key(|c| c.open.load(Ordering::Relaxed))
            .cloned()
    }

    pub(super) fn add(&self, conn: H2Conn) {
        self.lock().push(conn);
    }

    /// Forgets a connection that is closing.
    fn forget(&self, conn: &H2Conn) {
        self.lock().retain(|c| !c.same(conn));
    }
}

impl Pool {
    /// Sends `req` on a connection with room for a stream, again on
    /// another when the first one went away before the request was
    /// processed (see the module doc).
    pub(super) async fn send_multiplexed(
        self: &Arc<Self>,
        h2: &Multiplexed,
        req: Request<ReqBody>,
    ) -> Result<Response<PooledBody>, SendError> {
        let (parts, body) = req.into_parts();
        let head = Head {
            method: parts.method,
            uri: parts.uri,
            headers: parts.headers,
        };
        let bodiless = body.is_end_stream();
        let mut body = Some(WireBody::Left(body));
        let mut last = None;
        for _ in 0..ATTEMPTS {
            let Some(next_body) = body.take() else { break };
            let conn = self.h2_conn(h2).await?;
            let slot = StreamSlot::take(&conn);
            let (wire, back) = Returnable::new(next_body);
            let mut sender = conn.sender.clone();
            match sender.try_send_request(head.request(wire)).await {
                Ok(resp) => return Ok(resp.map(|body| PooledBody::stream(body, slot))),
                Err(mut e) => {
                    if let Some(unsent) = e.take_message() {
                        h2.forget(&conn);
                        body = unsent.into_body().into_inner();
                        continue;
                    }
                    let e = e.into_error();
                    let went_away = went_away(&e);
                    if went_away.is_some() {
                        h2.forget(&conn);
                    }
                    let again = match went_away {
                        Some(Away::Refused) => true,
                        Some(Away::GoAway) => !bodiless || replayable(&head.method, true),
                        None => false,
                    };
                    body = back.take().filter(|_| again);
                    tracing::debug!(upstream = %self.name, error = %e, retry = body.is_some(), "h2 upstream stream failed");
                    last = Some(e);
                }
            }
        }
        Err(match last {
            Some(e) => SendError::Protocol(e),
            None => SendError::Connect("every connection went away".into()),
        })
    }

    /// A connection with room for a stream: an open one, else a new one
    /// (one opening at a time), else at `max_connections` the least busy.
    async fn h2_conn(&self, h2: &Multiplexed) -> Result<H2Conn, SendError> {
        if let Some(conn) = h2.with_room() {
            return Ok(conn);
        }
        let _opening = Box::pin(h2.opening.lock()).await;
        if let Some(conn) = h2.with_room() {
            return Ok(conn);
        }
        let slot = match self.slots.clone().try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => match h2.least_busy() {
                Some(conn) => return Ok(conn),
                None => Box::pin(self.slot()).await?,
            },
        };
        let conn = Box::pin(self.connect_h2(slot)).await?;
        h2.add(conn.clone());
        Ok(conn)
    }
}

/// How an upstream said a stream was not processed.
enum Away {
    /// `REFUSED_STREAM` (RFC 9113 section 8.7).
    Refused,
    /// A GOAWAY: the stream was excluded by it or opened after it, unless
    /// the connection then broke under a stream it had accepted.
    GoAway,
}

/// Whether the stream failed because the upstream refused it or went
/// away.
fn went_away(e: &hyper::Error) -> Option<Away> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if let Some(h2) = err.downcast_ref::<h2::Error>() {
            if h2.is_reset() && h2.reason() == Some(h2::Reason::REFUSED_STREAM) {
                return Some(Away::Refused);
            }
            return (h2.is_go_away() && h2.is_remote()).then_some(Away::GoAway);
        }
        source = err.source();
    }
    None
}

/// The request head, kept to send the request again.
struct Head {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
}

impl Head {
    fn request(&self, body: Returnable) -> Request<Returnable> {
        let mut req = Request::new(body);
        *req.method_mut() = self.method.clone();
        *req.uri_mut() = self.uri.clone();
        *req.version_mut() = http::Version::HTTP_2;
        *req.headers_mut() = self.headers.clone();
        req
    }
}

/// A request body that, when the connection drops it without reading a
/// frame, leaves itself where the sender can take it back.
pub(super) struct Returnable {
    body: Option<WireBody>,
    polled: bool,
    back: Arc<Mutex<Option<WireBody>>>,
}

/// The sender's end of a [`Returnable`].
struct Back(Arc<Mutex<Option<WireBody>>>);

impl Back {
    fn take(&self) -> Option<WireBody> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

impl Returnable {
    fn new(body: WireBody) -> (Returnable, Back) {
        let back = Arc::new(Mutex::new(None));
        let wire = Returnable {
            body: Some(body),
            polled: false,
            back: Arc::clone(&back),
        };
        (wire, Back(back))
    }

    /// The body, when hyper handed the whole request back.
    fn into_inner(mut self) -> Option<WireBody> {
        self.body.take()
    }
}

impl Drop for Returnable {
    fn drop(&mut self) {
        if !self.polled {
            if let Some(body) = self.body.take() {
                *self.back.lock().unwrap_or_else(|e| e.into_inner()) = Some(body);
            }
        }
    }
}

impl Body for Returnable {
    type Data = Bytes;
    type Error = <WireBody as Body>::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        this.polled = true;
        match &mut this.body {
            Some(body) => Pin::new(body).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.body
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), Body::size_hint)
    }
}

impl Pool {
    /// Opens a connection within the connect timeout.
    async fn connect_h2(&self, slot: OwnedSemaphorePermit) -> Result<H2Conn, SendError> {
        let connected = tokio::time::timeout(self.connect_timeout, self.open_h2(slot)).await;
        connected.unwrap_or_else(|_| {
            Err(SendError::Connect(format!(
                "no connection within {} ms",
                self.connect_timeout.as_millis()
            )))
        })
    }

    /// TCP, then TLS where the URL says https (which must not settle on
    /// HTTP/1.1 by ALPN), then the HTTP/2 handshake.
    async fn open_h2(&self, slot: OwnedSemaphorePermit) -> Result<H2Conn, SendError> {
        let tcp = self.tcp().await?;
        let Some((connector, server_name)) = &self.tls else {
            return handshake(counted(tcp, slot), self.name.clone()).await;
        };
        let tls = connector
            .connect(server_name.clone(), tcp)
            .await
            .map_err(super::connect_error)?;
        if tls.get_ref().1.alpn_protocol() == Some(b"http/1.1") {
            return Err(SendError::Connect(
                "the upstream chose HTTP/1.1 by ALPN; protocol \"h2\" needs h2".into(),
            ));
        }
        handshake(counted(tls, slot), self.name.clone()).await
    }
}

/// The connection's I/O, holding its permit.
fn counted<IO>(io: IO, slot: OwnedSemaphorePermit) -> Counted<IO> {
    Counted {
        io,
        read_any: Arc::new(AtomicBool::new(false)),
        _slot: slot,
    }
}

/// Performs the HTTP/2 handshake on `io` and spawns the connection's task,
/// which also keeps the connection's stream limit current.
async fn handshake<IO>(io: IO, name: String) -> Result<H2Conn, SendError>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sender, connection) = http2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        .handshake(TokioIo::new(io))
        .await?;
    let limit = Arc::new(AtomicUsize::new(connection.current_max_send_streams()));
    let watched = Arc::clone(&limit);
    tokio::spawn(async move {
        let mut connection = std::pin::pin!(connection);
        let done = std::future::poll_fn(|cx| {
            let polled = connection.as_mut().poll(cx);
            watched.store(connection.current_max_send_streams(), Ordering::Relaxed);
            polled
        });
        if let Err(e) = done.await {
            tracing::debug!(upstream = %name, error = %e, "h2 upstream connection closed");
        }
    });
    Ok(H2Conn {
        sender,
        open: Arc::new(AtomicUsize::new(0)),
        limit,
    })
}
