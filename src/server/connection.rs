//! One client connection: the TLS handshake (bounded by
//! `server.tls_handshake_timeout_ms`), the protocol (h2 by its preface,
//! else HTTP/1.1), the header-read and idle timeouts, and a graceful end
//! when the gateway drains.
//!
//! h2 goes to hyper-util's `auto` builder. HTTP/1.1 is served by hyper's
//! HTTP/1.1 connection in **sessions**, so that a connection can be
//! parked: once it has been quiet (no request in flight,
//! no response being sent, no byte moved) for [`PARK_AFTER`], or half the
//! header-read timeout when shorter ([`park_after`]), its I/O wrapper answers hyper's
//! next read with end-of-stream, hyper's connection ends (its shutdown of
//! the socket is ignored while parked), and
//! [`hyper::server::conn::http1::UpgradeableConnection::into_parts`] gives
//! back the socket and any bytes hyper had read but not used. hyper's read
//! and write buffers, its header map and the request future's slot are
//! freed; the parked connection is this task, its timers and the socket.
//! The first readable byte starts a new session on the same socket, with
//! the saved bytes first. A parked connection keeps about 3.6 KiB of heap
//! instead of about 30 KiB (an unoptimized build, tests/idle_connections.rs),
//! 3.7 KiB resident in the optimized binary with 10,000 of them.
//!
//! Parking never loses or reorders bytes: hyper is only told end-of-stream
//! when the socket itself has nothing to read, and whatever hyper buffered
//! comes back through `into_parts`. It is never done mid-request, while a
//! response is being written, or while a request head is arriving (which
//! would restart hyper's header-read timer). Upgrades (WebSocket) are
//! hyper's own: an upgraded session gives no parts back.

use bytes::Bytes;
use futures_util::future::Either;
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use super::prioritized::Prioritized;
use crate::config::ServerConfig;
use crate::proxy::ResponseBody;
use crate::runtime::{Runtime, SharedRuntime};
use crate::service::{self, ConnInfo};
use crate::shutdown::{Phase, Watcher};

/// How long an HTTP/1.1 connection stays quiet before it is parked.
/// Long enough that a client sending requests back to back never pays
/// for a new hyper connection; short against any idle timeout.
pub const PARK_AFTER: Duration = Duration::from_secs(1);

/// The HTTP/2 client preface (RFC 9113 section 3.4).
const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

pub(super) async fn serve(
    shared: SharedRuntime,
    stream: TcpStream,
    peer: SocketAddr,
    stop: Watcher,
) {
    let rt = shared.load_full();
    match &rt.tls {
        None => drive(&rt, shared, stream, ConnInfo::new(peer, false), stop).await,
        // Boxed: a TLS session is kilobytes, and inline it would size every
        // plain connection's task (resident per idle connection) as well.
        Some(acceptor) => {
            let tls = tls_connection(&rt, shared, acceptor, stream, peer, stop);
            Box::pin(tls).await
        }
    }
}

/// The TLS handshake (bounded by `tls_handshake_timeout`), then the
/// connection over the TLS stream.
async fn tls_connection(
    rt: &Runtime,
    shared: SharedRuntime,
    acceptor: &TlsAcceptor,
    stream: TcpStream,
    peer: SocketAddr,
    stop: Watcher,
) {
    let timeout = rt.config.server.tls_handshake_timeout;
    match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => {
            let mut info = ConnInfo::new(peer, true);
            info.client_cert = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|chain| chain.first())
                .map(|leaf| Arc::from(crate::tls::cert_thumbprint(leaf)));
            drive(rt, shared, tls, info, stop).await
        }
        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
    }
}

/// A client stream: TCP or TLS over TCP, with a way to wait for bytes
/// without reading them (a parked connection holds no buffer).
pub(super) trait ClientStream: AsyncRead + AsyncWrite + Unpin + Send + 'static {
    fn readable(&self) -> impl Future<Output = io::Result<()>> + Send + '_;
}

impl ClientStream for TcpStream {
    fn readable(&self) -> impl Future<Output = io::Result<()>> + Send + '_ {
        TcpStream::readable(self)
    }
}

/// A parked TLS connection has no plaintext left in rustls (hyper's last
/// read found nothing), so new bytes arrive on the TCP socket first.
impl ClientStream for TlsStream<TcpStream> {
    fn readable(&self) -> impl Future<Output = io::Result<()>> + Send + '_ {
        self.get_ref().0.readable()
    }
}

/// Serves one connection until it closes, idles out, or the server stops.
async fn drive<IO: ClientStream>(
    rt: &Runtime,
    shared: SharedRuntime,
    io: IO,
    conn: ConnInfo,
    mut stop: Watcher,
) {
    let state = Arc::new(ConnState {
        shared,
        activity: Activity::new(),
        info: conn,
    });
    let mut io = ActivityIo::new(io, state.clone());
    let server = &rt.config.server;
    let detected = {
        let limits = limits(&state.activity, &mut stop, server, false);
        let first = std::pin::pin!(starts_with_h2_preface(&mut io));
        Prioritized::new(first, limits).await
    };
    match detected {
        Either::Left(Ok(true)) => serve_auto(rt, io, &state, stop).await,
        Either::Left(Ok(false)) => serve_h1(rt, io, &state, stop).await,
        Either::Left(Err(e)) => {
            tracing::debug!(peer = %state.info.peer, error = %e, "connection ended before a request")
        }
        Either::Right(_) => {
            tracing::debug!(peer = %state.info.peer, "no request head in time; connection closed")
        }
    }
}

/// Reads the first bytes (kept in `io` for hyper) until they differ from
/// the h2 preface or complete it. End-of-stream before a first byte is an
/// error.
async fn starts_with_h2_preface<IO: ClientStream>(io: &mut ActivityIo<IO>) -> io::Result<bool> {
    let mut first = [0u8; 24];
    let mut n = 0;
    while n < first.len() && first[..n] == H2_PREFACE[..n] {
        match io.inner.read(&mut first[n..]).await? {
            0 => break,
            read => n += read,
        }
    }
    if n == 0 {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    io.state.activity.touch();
    io.prefix = Bytes::copy_from_slice(&first[..n]);
    Ok(n == first.len() && first == *H2_PREFACE)
}

/// The request handler hyper calls, for both protocols.
fn service(
    state: &Arc<ConnState>,
) -> impl hyper::service::Service<
    Request<Incoming>,
    Response = Response<Tracked>,
    Error = Infallible,
    Future = impl Future<Output = Result<Response<Tracked>, Infallible>> + Send,
> + Clone
       + Unpin {
    let state = state.clone();
    service_fn(move |req: Request<Incoming>| {
        let state = state.clone();
        async move {
            let in_flight = state.activity.begin();
            let rt = state.shared.load_full();
            let resp = service::handle(&rt, &state.info, req).await;
            drop(in_flight);
            Ok::<_, Infallible>(resp.map(|body| Tracked::new(body, state.clone())))
        }
    })
}

/// h2 (and anything else hyper-util's `auto` builder detects) until the
/// client closes, the connection idles out, or the gateway drains.
async fn serve_auto<IO: ClientStream>(
    rt: &Runtime,
    io: ActivityIo<IO>,
    state: &Arc<ConnState>,
    mut stop: Watcher,
) {
    // Boxed: hyper's connection lives on the heap only while it runs.
    let mut connection = Box::pin(
        rt.http
            .serve_connection_with_upgrades(TokioIo::new(io), service(state)),
    );
    let server = &rt.config.server;
    let ended = {
        let limits = limits(&state.activity, &mut stop, server, false);
        Prioritized::new(connection.as_mut(), limits).await
    };
    match ended {
        Either::Left(res) => {
            if let Err(e) = res {
                tracing::debug!(peer = %state.info.peer, error = %e, "connection ended with an error");
            }
            return;
        }
        Either::Right(Stop::NoRequestHead) => {
            tracing::debug!(peer = %state.info.peer, "no request head in time; connection closed");
            return;
        }
        Either::Right(Stop::Idle) => {
            tracing::debug!(peer = %state.info.peer, "idle connection closed");
        }
        Either::Right(Stop::Drain) => {}
    }
    connection.as_mut().graceful_shutdown();
    tokio::select! {
        _ = connection.as_mut() => {}
        _ = stop.until(Phase::Closed) => {}
    }
}

/// HTTP/1.1: hyper sessions on one socket, parked between them when the
/// connection is quiet.
async fn serve_h1<IO: ClientStream>(
    rt: &Runtime,
    mut io: ActivityIo<IO>,
    state: &Arc<ConnState>,
    mut stop: Watcher,
) {
    let server = &rt.config.server;
    let svc = service(state);
    loop {
        io.parkable = true;
        // Boxed: hyper's state lives on the heap only while a session runs.
        let mut session = Box::new(
            rt.http1
                .serve_connection(TokioIo::new(io), svc.clone())
                .with_upgrades(),
        );
        let outcome = {
            let limits = limits(&state.activity, &mut stop, server, true);
            Prioritized::new(Pin::new(&mut *session), limits).await
        };
        let ended = match outcome {
            Either::Left(res) => res,
            Either::Right(Stop::NoRequestHead) => {
                tracing::debug!(peer = %state.info.peer, "no request head in time; connection closed");
                return;
            }
            Either::Right(stop_as) => {
                if let Stop::Idle = stop_as {
                    tracing::debug!(peer = %state.info.peer, "idle connection closed");
                }
                Pin::new(&mut *session).graceful_shutdown();
                tokio::select! {
                    _ = Pin::new(&mut *session) => {}
                    _ = stop.until(Phase::Closed) => {}
                }
                return;
            }
        };
        // `None`: upgraded, the socket is the tunnel's now.
        let Some(parts) = session.into_parts() else {
            return;
        };
        io = parts.io.into_inner();
        io.prefix = unused_bytes(parts.read_buf);
        io.parkable = false;
        if !std::mem::take(&mut io.parked) {
            // Ended by the client or by hyper (which shut the socket down).
            if let Err(e) = ended {
                tracing::debug!(peer = %state.info.peer, error = %e, "connection ended with an error");
            }
            return;
        }
        // Parked: this task, its timers and the socket, until bytes come.
        state.activity.park.store(false, Ordering::Relaxed);
        super::release::parked();
        let woke = {
            let readable = std::pin::pin!(io.inner.readable());
            Prioritized::new(readable, limits(&state.activity, &mut stop, server, false)).await
        };
        match woke {
            Either::Left(Ok(())) => continue,
            Either::Left(Err(e)) => {
                tracing::debug!(peer = %state.info.peer, error = %e, "parked connection failed");
                return;
            }
            Either::Right(Stop::Idle) => {
                tracing::debug!(peer = %state.info.peer, "idle connection closed");
                return;
            }
            // Nothing in flight: a drain just closes it.
            Either::Right(_) => return,
        }
    }
}

/// The bytes hyper read but did not use, in an allocation of their own:
/// `read_buf` shares hyper's whole read buffer (8 KiB or more), even when
/// empty, and a parked connection must not keep that alive.
fn unused_bytes(read_buf: Bytes) -> Bytes {
    Bytes::copy_from_slice(&read_buf)
}

/// The connection's limits, polled beside hyper: the drain, the idle and
/// first-request timeouts and, for an HTTP/1.1 session, the quiet time
/// after which it is parked.
async fn limits(
    activity: &Activity,
    stop: &mut Watcher,
    server: &ServerConfig,
    park: bool,
) -> Stop {
    tokio::select! {
        _ = stop.until(Phase::Draining) => Stop::Drain,
        _ = activity.idle(server.idle_timeout) => Stop::Idle,
        // hyper's header timer starts only once a session reads: a
        // client that never completes a first request head is cut here.
        _ = activity.no_first_request(server.header_read_timeout) => Stop::NoRequestHead,
        never = activity.ask_to_park(park_after(server.header_read_timeout)), if park => match never {},
    }
}

/// The quiet time after which a session parks: [`PARK_AFTER`], or half the
/// header-read timeout when that is shorter. hyper's header timer starts
/// when a session waits for its next head, so the session must end before
/// that timer does: the wait for the next request is the idle timeout's.
fn park_after(header_read_timeout: Duration) -> Duration {
    PARK_AFTER.min(header_read_timeout / 2)
}

/// Why a connection stops before its client closes it.
enum Stop {
    Drain,
    Idle,
    NoRequestHead,
}

/// What one connection's request handlers and I/O share.
struct ConnState {
    shared: SharedRuntime,
    activity: Activity,
    info: ConnInfo,
}

/// Last I/O time and in-flight request count of one connection.
struct Activity {
    base: Instant,
    last_ms: AtomicU64,
    in_flight: AtomicUsize,
    /// Response bodies hyper still sends.
    responding: AtomicUsize,
    /// A request head has been received on this connection.
    started: AtomicBool,
    /// Bytes arrived since the last request head was complete: possibly
    /// the start of the next head.
    head_pending: AtomicBool,
    /// The connection has been quiet for [`PARK_AFTER`]: park it at the
    /// next chance.
    park: AtomicBool,
}

struct InFlight<'a>(&'a Activity);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.0.touch();
    }
}

impl Activity {
    fn new() -> Self {
        Activity {
            base: Instant::now(),
            last_ms: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            responding: AtomicUsize::new(0),
            started: AtomicBool::new(false),
            head_pending: AtomicBool::new(false),
            park: AtomicBool::new(false),
        }
    }

    fn touch(&self) {
        self.last_ms
            .store(self.base.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    fn begin(&self) -> InFlight<'_> {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.started.store(true, Ordering::Relaxed);
        self.head_pending.store(false, Ordering::Relaxed);
        self.park.store(false, Ordering::Relaxed);
        InFlight(self)
    }

    /// No request in flight and no response being sent.
    fn at_rest(&self) -> bool {
        self.in_flight.load(Ordering::Relaxed) == 0 && self.responding.load(Ordering::Relaxed) == 0
    }

    /// Each time the connection has been quiet for `after` (see
    /// [`park_after`]), raises the park flag and has the task polled once,
    /// so that hyper reads again and the I/O wrapper can park the session;
    /// tries again after another `after` if it could not (a response still
    /// on its way, for one).
    async fn ask_to_park(&self, after: Duration) -> std::convert::Infallible {
        loop {
            self.idle(after).await;
            self.park.store(true, Ordering::Relaxed);
            tokio::task::yield_now().await;
            tokio::time::sleep(after).await;
        }
    }

    /// Resolves after `timeout` if no request has started by then.
    async fn no_first_request(&self, timeout: Duration) {
        tokio::time::sleep(timeout).await;
        if self.started.load(Ordering::Relaxed) {
            std::future::pending::<()>().await;
        }
    }

    /// Resolves once no request is in flight and no byte moved for `timeout`.
    async fn idle(&self, timeout: Duration) {
        loop {
            let last = self.base + Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
            let deadline = last + timeout;
            let now = Instant::now();
            if now >= deadline && self.in_flight.load(Ordering::Relaxed) == 0 {
                return;
            }
            let wake = if now >= deadline {
                now + timeout
            } else {
                deadline
            };
            tokio::time::sleep_until(wake.into()).await;
        }
    }
}

/// A response body that counts as "being sent" until hyper drops it.
pub(super) struct Tracked {
    inner: ResponseBody,
    state: Arc<ConnState>,
}

impl Tracked {
    fn new(inner: ResponseBody, state: Arc<ConnState>) -> Tracked {
        state.activity.responding.fetch_add(1, Ordering::Relaxed);
        Tracked { inner, state }
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.state
            .activity
            .responding
            .fetch_sub(1, Ordering::Relaxed);
    }
}

impl Body for Tracked {
    type Data = <ResponseBody as Body>::Data;
    type Error = <ResponseBody as Body>::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The client stream as hyper sees it: records when bytes last moved,
/// serves bytes read before hyper took over (`prefix`), and parks an
/// HTTP/1.1 session by answering a read with end-of-stream when the
/// connection is quiet and the socket has nothing to read.
struct ActivityIo<IO> {
    inner: IO,
    state: Arc<ConnState>,
    /// Bytes read from the socket that hyper has not seen yet.
    prefix: Bytes,
    /// This session may be parked (HTTP/1.1 through hyper's parts).
    parkable: bool,
    /// hyper was told end-of-stream to park the session.
    parked: bool,
    /// The last write or flush could not complete: hyper holds bytes.
    write_blocked: bool,
}

impl<IO> ActivityIo<IO> {
    fn new(inner: IO, state: Arc<ConnState>) -> Self {
        ActivityIo {
            inner,
            state,
            prefix: Bytes::new(),
            parkable: false,
            parked: false,
            write_blocked: false,
        }
    }

    /// Whether an empty socket read may end the session now.
    fn may_park(&self) -> bool {
        let activity = &self.state.activity;
        self.parkable
            && !self.write_blocked
            && activity.park.load(Ordering::Relaxed)
            && !activity.head_pending.load(Ordering::Relaxed)
            && activity.at_rest()
    }

    fn wrote<T>(&mut self, res: &Poll<io::Result<T>>, moved: bool) {
        match res {
            Poll::Pending => self.write_blocked = true,
            Poll::Ready(_) => {
                self.write_blocked = false;
                if moved {
                    self.state.activity.touch();
                }
            }
        }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for ActivityIo<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            let saved = self.prefix.split_to(n);
            buf.put_slice(&saved);
            // What else the socket has goes in the same read: hyper then
            // sees the whole head at once and keeps its first buffer.
            if self.prefix.is_empty() && buf.remaining() > 0 {
                let _ = self.read_socket(cx, buf);
            }
            return Poll::Ready(Ok(()));
        }
        let res = self.read_socket(cx, buf);
        if res.is_pending() && self.may_park() {
            self.parked = true;
            return Poll::Ready(Ok(()));
        }
        res
    }
}

impl<IO: AsyncRead + Unpin> ActivityIo<IO> {
    /// A read from the socket, noting the activity.
    fn read_socket(&mut self, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let res = Pin::new(&mut self.inner).poll_read(cx, buf);
        match res {
            Poll::Ready(Ok(())) if buf.filled().len() > before => {
                let activity = &self.state.activity;
                activity.touch();
                if activity.at_rest() {
                    activity.head_pending.store(true, Ordering::Relaxed);
                }
            }
            _ => {}
        }
        res
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for ActivityIo<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let res = Pin::new(&mut self.inner).poll_write(cx, buf);
        let moved = matches!(res, Poll::Ready(Ok(n)) if n > 0);
        self.wrote(&res, moved);
        res
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let res = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        let moved = matches!(res, Poll::Ready(Ok(n)) if n > 0);
        self.wrote(&res, moved);
        res
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let res = Pin::new(&mut self.inner).poll_flush(cx);
        self.wrote(&res, false);
        res
    }

    /// hyper shuts the socket down when its connection ends; a parked
    /// session's socket stays open.
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.parked {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::runtime;
    use std::path::Path;
    use tokio::net::TcpListener;

    #[test]
    fn park_after_comes_before_the_header_read_timeout() {
        let ms = Duration::from_millis;
        for (header_read_timeout, want) in [
            (ms(10_000), PARK_AFTER),
            (ms(2_000), PARK_AFTER),
            (ms(1_000), ms(500)),
            (ms(100), ms(50)),
        ] {
            assert_eq!(
                park_after(header_read_timeout),
                want,
                "{header_read_timeout:?}"
            );
        }
    }

    /// Every open connection holds this future for as long as it is open,
    /// idle or not, so a plain connection must not carry the TLS session
    /// inline.
    #[tokio::test]
    async fn a_plain_connection_task_stays_small() {
        let config = Config::from_toml(
            "[server]\nlisten = \"127.0.0.1:0\"\n\
             [upstreams.up]\nurl = \"http://127.0.0.1:9\"\n\
             [[routes]]\npath = \"/**\"\nupstream = \"up\"\nauth = \"none\"\n",
            Path::new("."),
            Vec::new(),
        )
        .expect("config");
        let shared = runtime::shared(Runtime::build(config).expect("runtime"));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap());
        let (client, accepted) = tokio::join!(client, listener.accept());
        let (stream, peer) = accepted.unwrap();
        let shutdown = crate::shutdown::Shutdown::new();
        let task = serve(shared, stream, peer, shutdown.watcher());
        let size = std::mem::size_of_val(&task);
        assert!(size <= 4096, "a connection's task is {size} bytes");
        drop((task, client));
    }
}
