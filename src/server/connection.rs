//! One client connection: the TLS handshake (bounded by
//! `server.tls_handshake_timeout_ms`), hyper-util's `auto` builder from the
//! runtime snapshot (HTTP/1.1 and h2, upgrades), the header-read and idle
//! timeouts, and a graceful end when the gateway drains.

use futures_util::future::Either;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;

use super::prioritized::Prioritized;
use crate::proxy::ResponseBody;
use crate::runtime::{Runtime, SharedRuntime};
use crate::service::{self, ConnInfo};
use crate::shutdown::{Phase, Watcher};

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

/// Serves one connection until it closes, idles out, or the server stops.
async fn drive<IO>(rt: &Runtime, shared: SharedRuntime, io: IO, conn: ConnInfo, mut stop: Watcher)
where
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
            _ = stop.until(Phase::Draining) => Stop::Drain,
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
        _ = stop.until(Phase::Closed) => {}
    }
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
    use crate::config::Config;
    use crate::runtime;
    use std::path::Path;
    use tokio::net::TcpListener;

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
