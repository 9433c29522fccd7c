//! The accept loop and connection lifecycle: connection limit, TLS handshake
//! with a timeout, hyper-util's `auto` builder (HTTP/1.1 and h2, upgrades),
//! header-read and idle timeouts, and graceful drain on shutdown.
//!
//! [`run`] is the library's entry point: it takes already-bound listeners, a
//! validated configuration and a shutdown future, so tests and benchmarks run
//! the real server on port 0.

use futures_util::future::Either;
use futures_util::task::AtomicWaker;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio_rustls::TlsAcceptor;

use crate::config::{Config, ConfigErrors, ServerConfig};
use crate::proxy::ResponseBody;
use crate::runtime::{self, Runtime, SharedRuntime};
use crate::service::{self, ConnInfo};

/// Where the server is in its life; connections watch it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Running,
    /// Finish in-flight requests, accept no new ones.
    Draining,
    /// The grace period is over: drop whatever is left.
    Closed,
}

/// Resolves once the server has reached `phase` (or gone away).
pub async fn until(rx: &mut watch::Receiver<Phase>, phase: Phase) {
    let reached = |p: &Phase| match phase {
        Phase::Running => true,
        Phase::Draining => *p != Phase::Running,
        Phase::Closed => *p == Phase::Closed,
    };
    let _ = rx.wait_for(reached).await;
}

/// The sockets the gateway serves on, bound by the caller.
pub struct Listeners {
    pub gateway: TcpListener,
    pub admin: Option<TcpListener>,
}

/// Builds the runtime from `config` and serves until `shutdown` resolves.
pub async fn run(
    config: Config,
    listeners: Listeners,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ConfigErrors> {
    let shared = runtime::shared(Runtime::build(config)?);
    serve(shared, listeners, shutdown).await;
    Ok(())
}

/// Serves with an existing shared runtime (which a caller may swap to reload).
pub async fn serve(
    shared: SharedRuntime,
    listeners: Listeners,
    shutdown: impl Future<Output = ()> + Send,
) {
    shared.load().start();
    let (stop_tx, stop_rx) = watch::channel(Phase::Running);
    let (done_tx, mut done_rx) = mpsc::channel::<()>(1);
    if let Some(admin) = listeners.admin {
        tokio::spawn(crate::admin::serve(
            admin,
            shared.clone(),
            stop_rx.clone(),
            done_tx.clone(),
        ));
    }
    let mut watch_stop = stop_rx.clone();
    tokio::spawn(runtime::watch_config(shared.clone(), async move {
        until(&mut watch_stop, Phase::Draining).await
    }));
    let limit = Arc::new(Semaphore::new(shared.load().config.server.max_connections));
    tokio::select! {
        _ = accept_loop(&listeners.gateway, &shared, &limit, &stop_rx, &done_tx) => {}
        _ = shutdown => {}
    }
    drop(listeners.gateway);
    let grace = shared.load().config.server.shutdown_grace;
    tracing::info!(
        grace_ms = grace.as_millis() as u64,
        "shutting down: draining connections"
    );
    let _ = stop_tx.send(Phase::Draining);
    drop(done_tx);
    if tokio::time::timeout(grace, done_rx.recv()).await.is_err() {
        tracing::warn!("shutdown grace period over; closing remaining connections");
        let _ = stop_tx.send(Phase::Closed);
        // Connection tasks drop their connections as soon as they see Closed.
        let _ = tokio::time::timeout(Duration::from_secs(1), done_rx.recv()).await;
    }
}

async fn accept_loop(
    listener: &TcpListener,
    shared: &SharedRuntime,
    limit: &Arc<Semaphore>,
    stop_rx: &watch::Receiver<Phase>,
    done_tx: &mpsc::Sender<()>,
) {
    let mut backoff = AcceptBackoff::default();
    loop {
        let Ok(permit) = limit.clone().acquire_owned().await else {
            return;
        };
        let (stream, peer) = match listener.accept().await {
            Ok(pair) => pair,
            Err(e) if is_connection_error(&e) => {
                // One connection's trouble, not the listener's.
                tracing::debug!(error = %e, "connection failed before accept");
                continue;
            }
            Err(e) => {
                // Typically EMFILE or ENFILE: nothing will change until
                // connections close, so back off instead of spinning.
                let (pause, log) = backoff.failed();
                if log {
                    tracing::error!(
                        error = %e,
                        failures = backoff.failures,
                        pause_ms = pause.as_millis() as u64,
                        "accept failed; backing off"
                    );
                }
                drop(permit);
                tokio::time::sleep(pause).await;
                continue;
            }
        };
        let failures = backoff.succeeded();
        if failures > 0 {
            tracing::info!(failures, "accepting again");
        }
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        let stop_rx = stop_rx.clone();
        let done = done_tx.clone();
        tokio::spawn(async move {
            let open = crate::telemetry::open_connections();
            open.increment(1.0);
            connection(shared, stream, peer, stop_rx).await;
            open.decrement(1.0);
            drop(permit);
            drop(done);
        });
    }
}

/// Accept errors of one connection (it was reset or aborted while queued),
/// which say nothing about the listener.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
    )
}

/// The pause after each failed accept in a run of failures: exponential
/// from [`AcceptBackoff::FIRST`] up to [`AcceptBackoff::MAX`], so a process
/// out of file descriptors neither spins nor stops accepting for long once
/// descriptors are free again. Only the 1st, 2nd, 4th, 8th... failure of a
/// run, and then one in 64, is logged.
#[derive(Debug, Default)]
struct AcceptBackoff {
    failures: u32,
}

impl AcceptBackoff {
    const FIRST: Duration = Duration::from_millis(5);
    const MAX: Duration = Duration::from_secs(1);

    /// Records a failure: how long to pause, and whether to log it.
    fn failed(&mut self) -> (Duration, bool) {
        self.failures = self.failures.saturating_add(1);
        let doublings = (self.failures - 1).min(16);
        let pause = Self::FIRST.saturating_mul(1 << doublings).min(Self::MAX);
        let log = self.failures.is_power_of_two() || self.failures.is_multiple_of(64);
        (pause, log)
    }

    /// Records a success; returns how many failures it ended.
    fn succeeded(&mut self) -> u32 {
        std::mem::take(&mut self.failures)
    }
}

/// The HTTP server settings for a configuration.
pub fn http_builder(server: &ServerConfig) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(server.header_read_timeout)
        .max_buf_size(server.max_header_bytes)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(server.max_header_bytes).unwrap_or(u32::MAX))
        .max_concurrent_streams(server.h2.max_concurrent_streams)
        .max_pending_accept_reset_streams(server.h2.max_pending_accept_reset_streams)
        .max_local_error_reset_streams(server.h2.max_local_error_reset_streams);
    builder
}

async fn connection(
    shared: SharedRuntime,
    stream: TcpStream,
    peer: SocketAddr,
    stop_rx: watch::Receiver<Phase>,
) {
    let rt = shared.load_full();
    match &rt.tls {
        None => drive(&rt, shared, stream, ConnInfo::new(peer, false), stop_rx).await,
        // Boxed: a TLS session is kilobytes, and inline it would size every
        // plain connection's task (resident per idle connection) as well.
        Some(acceptor) => {
            let tls = tls_connection(&rt, shared, acceptor, stream, peer, stop_rx);
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
    stop_rx: watch::Receiver<Phase>,
) {
    let timeout = rt.config.server.tls_handshake_timeout;
    match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => drive(rt, shared, tls, ConnInfo::new(peer, true), stop_rx).await,
        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
    }
}

/// Serves one connection until it closes, idles out, or the server stops.
async fn drive<IO>(
    rt: &Runtime,
    shared: SharedRuntime,
    io: IO,
    conn: ConnInfo,
    mut stop_rx: watch::Receiver<Phase>,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let state = Arc::new(ConnState {
        shared,
        activity: Activity::new(),
        info: conn,
    });
    let io = TokioIo::new(ActivityIo {
        inner: io,
        state: state.clone(),
    });
    let svc_state = state.clone();
    let svc = service_fn(move |req: Request<Incoming>| {
        let state = svc_state.clone();
        async move {
            let _in_flight = state.activity.begin();
            let rt = state.shared.load_full();
            Ok::<Response<ResponseBody>, Infallible>(service::handle(&rt, &state.info, req).await)
        }
    });
    let (activity, conn) = (&state.activity, &state.info);
    // Pinned where it is made: `tokio::pin!` on a local would keep two slots
    // of it in this future, which every idle connection holds.
    let mut connection = std::pin::pin!(rt.http.serve_connection_with_upgrades(io, svc));
    let server = &rt.config.server;
    let limits = async {
        tokio::select! {
            _ = until(&mut stop_rx, Phase::Draining) => Stop::Drain,
            _ = activity.idle(server.idle_timeout) => Stop::Idle,
            // hyper's header timer starts only once the protocol is detected:
            // a client that never completes a first request head is cut here.
            _ = activity.no_first_request(server.header_read_timeout) => Stop::NoRequestHead,
        }
    };
    match Prioritized::new(connection.as_mut(), limits).await {
        Either::Left(res) => {
            if let Err(e) = res {
                tracing::debug!(peer = %conn.peer, error = %e, "connection ended with an error");
            }
            return;
        }
        Either::Right(Stop::NoRequestHead) => {
            tracing::debug!(peer = %conn.peer, "no request head in time; connection closed");
            return;
        }
        Either::Right(Stop::Idle) => {
            tracing::debug!(peer = %conn.peer, "idle connection closed");
        }
        Either::Right(Stop::Drain) => {}
    }
    connection.as_mut().graceful_shutdown();
    tokio::select! {
        _ = connection.as_mut() => {}
        _ = until(&mut stop_rx, Phase::Closed) => {}
    }
}

/// Why a connection stops before its client closes it.
enum Stop {
    Drain,
    Idle,
    NoRequestHead,
}

/// Runs `main` and `side` until either completes, polling `side` only when
/// one of its own wake-ups fired. A connection's task is woken for every
/// request; its timers and the shutdown signal almost never, and polling
/// them on every wake-up would cost each request a few timer and channel
/// checks.
struct Prioritized<M, S> {
    main: M,
    side: Pin<Box<S>>,
    side_wake: Arc<SideWake>,
    side_waker: Waker,
}

/// Remembers that `side` was woken, then wakes the task.
struct SideWake {
    woken: AtomicBool,
    task: AtomicWaker,
}

impl Wake for SideWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        self.task.wake();
    }
}

impl<M: Future + Unpin, S: Future> Prioritized<M, S> {
    fn new(main: M, side: S) -> Self {
        let side_wake = Arc::new(SideWake {
            // Polled once at the start, to arm its timers.
            woken: AtomicBool::new(true),
            task: AtomicWaker::new(),
        });
        Prioritized {
            main,
            side: Box::pin(side),
            side_waker: Waker::from(side_wake.clone()),
            side_wake,
        }
    }
}

impl<M: Future + Unpin, S: Future> Future for Prioritized<M, S> {
    type Output = Either<M::Output, S::Output>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        this.side_wake.task.register(cx.waker());
        if let Poll::Ready(out) = Pin::new(&mut this.main).poll(cx) {
            return Poll::Ready(Either::Left(out));
        }
        if this.side_wake.woken.swap(false, Ordering::AcqRel) {
            let mut side_cx = Context::from_waker(&this.side_waker);
            if let Poll::Ready(out) = this.side.as_mut().poll(&mut side_cx) {
                return Poll::Ready(Either::Right(out));
            }
        }
        Poll::Pending
    }
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
    /// A request head has been received on this connection.
    started: AtomicBool,
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
            started: AtomicBool::new(false),
        }
    }

    fn touch(&self) {
        self.last_ms
            .store(self.base.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    fn begin(&self) -> InFlight<'_> {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.started.store(true, Ordering::Relaxed);
        InFlight(self)
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

/// An I/O stream that records when bytes last moved.
struct ActivityIo<IO> {
    inner: IO,
    state: Arc<ConnState>,
}

impl<IO: AsyncRead + Unpin> AsyncRead for ActivityIo<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let res = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.state.activity.touch();
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
        if matches!(res, Poll::Ready(Ok(n)) if n > 0) {
            self.state.activity.touch();
        }
        res
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let res = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(res, Poll::Ready(Ok(n)) if n > 0) {
            self.state.activity.touch();
        }
        res
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn accept_backoff_grows_caps_logs_sparsely_and_resets() {
        let mut backoff = AcceptBackoff::default();
        let runs: Vec<(Duration, bool)> = (0..200).map(|_| backoff.failed()).collect();
        let ms = |i: usize| runs[i].0.as_millis();
        assert_eq!(
            (0..10).map(ms).collect::<Vec<_>>(),
            [5, 10, 20, 40, 80, 160, 320, 640, 1000, 1000]
        );
        assert!(runs.iter().all(|(pause, _)| *pause <= AcceptBackoff::MAX));
        let logged: Vec<usize> = (0..200).filter(|&i| runs[i].1).map(|i| i + 1).collect();
        assert_eq!(logged, [1, 2, 4, 8, 16, 32, 64, 128, 192]);
        assert_eq!(backoff.succeeded(), 200);
        assert_eq!(backoff.failed(), (Duration::from_millis(5), true));
    }

    #[test]
    fn accept_backoff_survives_a_very_long_run() {
        let mut backoff = AcceptBackoff {
            failures: u32::MAX - 1,
        };
        assert_eq!(backoff.failed().0, AcceptBackoff::MAX);
        assert_eq!(backoff.failed().0, AcceptBackoff::MAX);
    }

    #[test]
    fn is_connection_error_table() {
        let cases = [
            (io::ErrorKind::ConnectionAborted, true),
            (io::ErrorKind::ConnectionReset, true),
            (io::ErrorKind::ConnectionRefused, true),
            // EMFILE and ENFILE surface as `Other` (or `Uncategorized`).
            (io::ErrorKind::Other, false),
            (io::ErrorKind::OutOfMemory, false),
            (io::ErrorKind::PermissionDenied, false),
        ];
        for (kind, want) in cases {
            assert_eq!(
                is_connection_error(&io::Error::from(kind)),
                want,
                "{kind:?}"
            );
        }
        let emfile = io::Error::from_raw_os_error(24);
        assert!(!is_connection_error(&emfile));
    }

    /// Every open connection holds this future for as long as it is open,
    /// idle or not, so a plain connection must not carry the TLS session
    /// inline (5.8 KiB in a test build when it did; about 2 KiB without).
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
        let (_stop_tx, stop_rx) = watch::channel(Phase::Running);
        let task = connection(shared, stream, peer, stop_rx);
        let size = std::mem::size_of_val(&task);
        assert!(size <= 4096, "a connection's task is {size} bytes");
        drop((task, client));
    }
}
