//! Connections to one upstream: HTTP/1.1 over TCP or TLS, kept open and
//! reused (docs/behavior.md section 8); for `protocol = "h2"`, streams
//! multiplexed over few HTTP/2 connections instead ([`multiplex`], section
//! 15), under the same cap and connect timeout. What follows is the HTTP/1.1
//! pool. Built on hyper's connection-level
//! client (`client::conn::http1`), so the request path pays for one
//! connection's dispatch and nothing else: no pool keys, no checkout futures.
//!
//! **Reuse.** A connection goes back to the pool when the response body it
//! carried has been read to its end (see [`PooledBody`]); a response dropped
//! half-read takes its connection with it. Idle connections are reused
//! newest first. An idle connection is closed once it has been idle for
//! `pool_idle_timeout_ms`, by a timer: a sweeper task per pool that runs only
//! while the pool holds idle connections and is aborted when the pool is
//! dropped (a reload leaves no task behind). The pool keeps at most
//! `pool_max_idle_per_host` idle connections, dropping the oldest.
//!
//! **Workers.** With several worker threads ([`crate::worker`]), each
//! worker has its own idle list: a connection is opened by a request on
//! one worker, its task runs on that worker's runtime, and it goes back to
//! that worker's list, so a request reuses only connections of its own
//! thread and no wake-up crosses threads. `pool_max_idle_per_host` applies
//! to each list. Only at the cap, when no permit is left to open one, does
//! a request take an idle connection of another worker rather than wait.
//!
//! **Cap.** At most `max_connections` connections to the upstream are open,
//! idle and busy together. Each holds a permit of the pool's semaphore inside
//! its I/O object, so the permit comes back whenever that object is dropped,
//! whatever the reason: the upstream closed it, an error, a response
//! abandoned half-read, the pool closing an idle connection, or the end of a
//! WebSocket tunnel (which owns the I/O after a `101`). A request that finds
//! neither an idle connection nor a free permit waits up to
//! `connect_timeout_ms` for either, then fails with [`SendError::Saturated`]
//! (a 503 with `Retry-After`): without a cap, a slow upstream makes the
//! gateway open connections until it runs out of file descriptors.
//!
//! **Retry.** An upstream may close an idle connection (its keep-alive
//! timeout, a restart) at the moment the gateway sends a request on it. A
//! request that failed on a reused connection is sent once more, on a fresh
//! connection, when
//! - none of it was written (hyper hands the request back), or
//! - it is idempotent and has no body (GET, HEAD, OPTIONS, PUT, DELETE; RFC
//!   9110 section 9.2.2) and no byte of an answer arrived.
//!
//! For the second case the request head (method, target, headers) is copied
//! before it is sent, only for such requests and only on a reused connection:
//! a fresh connection has no keep-alive race. Nothing else is retried: a body
//! that was sent cannot be replayed, and a non-idempotent request must not be.

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{Either, Empty};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::AbortHandle;
use tokio_rustls::TlsConnector;

use crate::config::{ConfigError, Scheme, UpstreamConfig, UpstreamProtocol};
use idle::{sweep, Idle, IdleList};
use replay::Replay;
use wire::Counted;
pub use wire::PooledBody;

mod idle;
mod multiplex;
mod replay;
mod wire;

/// The body of a request handed to [`Pool::send`].
type ReqBody = super::body::RequestBody;

/// What goes on the wire: the client's body, or none for a replayed head.
type WireBody = Either<ReqBody, Empty<Bytes>>;

/// Why no response head came back.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// No connection could be opened (refused, unresolvable, TLS failure,
    /// `connect_timeout_ms`).
    #[error("cannot connect: {0}")]
    Connect(String),
    /// `max_connections` connections were open and none came free within
    /// `connect_timeout_ms`.
    #[error("all {0} connections busy for connect_timeout_ms")]
    Saturated(usize),
    /// The connection failed after the request was handed to it, or the
    /// answer was not HTTP.
    #[error("{0}")]
    Protocol(#[from] hyper::Error),
}

/// One upstream's connections.
pub struct Pool {
    name: String,
    host: String,
    port: u16,
    tls: Option<(TlsConnector, rustls_pki_types::ServerName<'static>)>,
    connect_timeout: Duration,
    idle_timeout: Duration,
    max_idle: usize,
    max_connections: usize,
    /// One permit per connection that may be opened.
    slots: Arc<Semaphore>,
    /// Signalled when a connection goes back to the idle list, for requests
    /// waiting at the cap.
    returned: Notify,
    /// One idle list per worker.
    idle: Box<[Mutex<IdleList>]>,
    /// `protocol = "h2"`: the multiplexed connections; the idle list and
    /// its sweeper are then unused.
    h2: Option<multiplex::Multiplexed>,
}

/// A connection's sending half, and whether its I/O has read anything since
/// the last request was handed to it.
struct Conn {
    sender: SendRequest<WireBody>,
    read_any: Arc<AtomicBool>,
    /// The worker whose runtime drives the connection: its idle list.
    home: usize,
}

/// How to get a connection once the pool is at its cap.
enum Free {
    Slot(OwnedSemaphorePermit),
    Idle(Conn),
}

/// What came of a request sent on a reused connection.
enum Reused {
    Answered(Response<PooledBody>),
    /// Safe to send again on a fresh connection.
    Retry(Request<WireBody>),
    Failed(hyper::Error),
}

impl Pool {
    /// Reads `ca_file` for an `https` upstream, so it may fail.
    pub fn new(config: &UpstreamConfig) -> Result<Pool, ConfigError> {
        Pool::with_workers(config, crate::worker::count())
    }

    /// [`Pool::new`] with one idle list for each of `workers`.
    fn with_workers(config: &UpstreamConfig, workers: usize) -> Result<Pool, ConfigError> {
        let host = config.authority.host().to_string();
        let tls = match config.scheme {
            Scheme::Http => None,
            Scheme::Https => {
                let key = |k: &str| format!("upstreams.{}.{k}", config.name);
                let mut tls = crate::tls::client_config(config.ca_file.as_deref())
                    .map_err(|reason| ConfigError::new(key("ca_file"), reason))?;
                tls.alpn_protocols = match config.protocol {
                    UpstreamProtocol::Http1 => vec![b"http/1.1".to_vec()],
                    UpstreamProtocol::H2 => vec![b"h2".to_vec()],
                };
                let bare = host.trim_start_matches('[').trim_end_matches(']');
                let name = rustls_pki_types::ServerName::try_from(bare.to_string())
                    .map_err(|_| ConfigError::new(key("url"), "not a TLS server name"))?;
                Some((TlsConnector::from(Arc::new(tls)), name))
            }
        };
        let port = config.authority.port_u16().unwrap_or(match config.scheme {
            Scheme::Http => 80,
            Scheme::Https => 443,
        });
        Ok(Pool {
            name: config.name.clone(),
            host,
            port,
            tls,
            connect_timeout: config.connect_timeout,
            idle_timeout: config.pool_idle_timeout,
            max_idle: config.pool_max_idle_per_host,
            max_connections: config.max_connections,
            slots: Arc::new(Semaphore::new(config.max_connections)),
            returned: Notify::new(),
            idle: (0..workers.max(1))
                .map(|_| Mutex::new(IdleList::default()))
                .collect(),
            h2: (config.protocol == UpstreamProtocol::H2).then(multiplex::Multiplexed::default),
        })
    }

    /// The upstream speaks HTTP/2.
    pub fn is_h2(&self) -> bool {
        self.h2.is_some()
    }

    /// Sends `req` on an idle connection, or a new one, and returns the
    /// response head. At the cap, waits for a connection to come free. A
    /// request that a reused connection failed is sent once more on a fresh
    /// one when that is safe (see the module doc).
    pub async fn send(
        self: &Arc<Self>,
        req: Request<ReqBody>,
    ) -> Result<Response<PooledBody>, SendError> {
        if let Some(h2) = &self.h2 {
            return Box::pin(self.send_multiplexed(h2, req)).await;
        }
        let req = req.map(Either::Left);
        let conn = match self.checkout(self.own_list()) {
            Some(conn) => conn,
            None => match self.slots.clone().try_acquire_owned() {
                Ok(slot) => return self.send_fresh(slot, req).await,
                // Boxed: waiting is the rare path, and its state would
                // otherwise make every request's future larger.
                Err(_) => match Box::pin(self.wait_for_free()).await? {
                    Free::Slot(slot) => return self.send_fresh(slot, req).await,
                    Free::Idle(conn) => conn,
                },
            },
        };
        match self.send_reused(conn, req).await {
            Reused::Answered(resp) => Ok(resp),
            Reused::Failed(e) => Err(SendError::Protocol(e)),
            Reused::Retry(req) => {
                let slot = Box::pin(self.slot()).await?;
                self.send_fresh(slot, req).await
            }
        }
    }

    async fn send_reused(self: &Arc<Self>, mut conn: Conn, req: Request<WireBody>) -> Reused {
        if conn.sender.ready().await.is_err() {
            return Reused::Retry(req);
        }
        let replay = Replay::of(&req);
        conn.read_any.store(false, Ordering::Relaxed);
        let mut e = match conn.sender.try_send_request(req).await {
            Ok(resp) => return Reused::Answered(self.attach(conn, resp)),
            Err(e) => e,
        };
        if let Some(unsent) = e.take_message() {
            return Reused::Retry(unsent);
        }
        // The error came through hyper's channel after whatever the
        // connection task read, so the flag is up to date.
        let answered = conn.read_any.load(Ordering::Relaxed);
        let e = e.into_error();
        match replay {
            Some(replay) if !answered => {
                tracing::debug!(upstream = %self.name, error = %e, "reused connection failed; retrying on a fresh one");
                Reused::Retry(replay.into_request())
            }
            _ => Reused::Failed(e),
        }
    }

    async fn send_fresh(
        self: &Arc<Self>,
        slot: OwnedSemaphorePermit,
        req: Request<WireBody>,
    ) -> Result<Response<PooledBody>, SendError> {
        // Boxed: connecting (TCP, perhaps TLS) is the rare path.
        let mut conn = Box::pin(self.connect(slot)).await?;
        let resp = conn.sender.send_request(req).await?;
        Ok(self.attach(conn, resp))
    }

    /// Waits, up to the connect timeout, for a connection to come back to
    /// the idle list or for a permit to open one.
    async fn wait_for_free(&self) -> Result<Free, SendError> {
        let wait = async {
            loop {
                // Registered before the idle list is checked, so a
                // connection returned in between is not missed.
                let returned = self.returned.notified();
                tokio::pin!(returned);
                returned.as_mut().enable();
                if let Some(conn) = self.checkout_any() {
                    return Ok(Free::Idle(conn));
                }
                tokio::select! {
                    slot = self.slots.clone().acquire_owned() => {
                        return slot.map(Free::Slot).map_err(|_| self.saturated());
                    }
                    () = &mut returned => {}
                }
            }
        };
        tokio::time::timeout(self.connect_timeout, wait)
            .await
            .unwrap_or_else(|_| Err(self.saturated()))
    }

    /// A permit to open a connection, waiting up to the connect timeout.
    async fn slot(&self) -> Result<OwnedSemaphorePermit, SendError> {
        if let Ok(slot) = self.slots.clone().try_acquire_owned() {
            return Ok(slot);
        }
        match tokio::time::timeout(self.connect_timeout, self.slots.clone().acquire_owned()).await {
            Ok(Ok(slot)) => Ok(slot),
            Ok(Err(_)) | Err(_) => Err(self.saturated()),
        }
    }

    fn saturated(&self) -> SendError {
        SendError::Saturated(self.max_connections)
    }

    /// This worker's idle list.
    fn own_list(&self) -> usize {
        crate::worker::index() % self.idle.len()
    }

    fn lock_idle(&self, list: usize) -> MutexGuard<'_, IdleList> {
        self.idle[list].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// An idle connection from this worker's list, else from another's.
    fn checkout_any(&self) -> Option<Conn> {
        let own = self.own_list();
        let n = self.idle.len();
        (0..n).find_map(|i| self.checkout((own + i) % n))
    }

    /// The newest idle connection of `list` that is still open.
    fn checkout(&self, list: usize) -> Option<Conn> {
        let mut idle = self.lock_idle(list);
        idle.evict_expired(Instant::now(), self.idle_timeout);
        while let Some(Idle { conn, .. }) = idle.conns.pop() {
            if !conn.sender.is_closed() {
                return Some(conn);
            }
        }
        None
    }

    fn checkin(self: &Arc<Self>, conn: Conn) {
        if conn.sender.is_closed() || self.max_idle == 0 {
            return;
        }
        let now = Instant::now();
        {
            let list = conn.home % self.idle.len();
            let mut idle = self.lock_idle(list);
            idle.evict_expired(now, self.idle_timeout);
            if idle.conns.len() >= self.max_idle {
                idle.conns.remove(0);
            }
            idle.conns.push(Idle { conn, since: now });
            if idle.sweeper.is_none() {
                // Spawned under the lock, so the sweeper cannot clear the
                // field before it is set.
                idle.sweeper = self.spawn_sweeper(list);
            }
        }
        self.returned.notify_one();
    }

    fn spawn_sweeper(self: &Arc<Self>, list: usize) -> Option<AbortHandle> {
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        let task = runtime.spawn(sweep(Arc::downgrade(self), list));
        Some(task.abort_handle())
    }

    fn attach(self: &Arc<Self>, conn: Conn, resp: Response<Incoming>) -> Response<PooledBody> {
        let upgrading = resp.status() == http::StatusCode::SWITCHING_PROTOCOLS;
        resp.map(|body| {
            let mut pooled = PooledBody {
                body,
                home: (!upgrading).then(|| (conn, Arc::clone(self))),
                _stream: None,
            };
            pooled.return_if_done();
            pooled
        })
    }

    async fn connect(&self, slot: OwnedSemaphorePermit) -> Result<Conn, SendError> {
        let connected = tokio::time::timeout(self.connect_timeout, self.open(slot)).await;
        match connected {
            Ok(result) => result,
            Err(_) => Err(SendError::Connect(format!(
                "no connection within {} ms",
                self.connect_timeout.as_millis()
            ))),
        }
    }

    async fn open(&self, slot: OwnedSemaphorePermit) -> Result<Conn, SendError> {
        let tcp = self.tcp().await?;
        match &self.tls {
            None => self.handshake(tcp, slot).await,
            Some((connector, name)) => {
                let tls = connector
                    .connect(name.clone(), tcp)
                    .await
                    .map_err(connect_error)?;
                self.handshake(tls, slot).await
            }
        }
    }

    async fn tcp(&self) -> Result<TcpStream, SendError> {
        let tcp = TcpStream::connect((self.host_for_connect(), self.port))
            .await
            .map_err(connect_error)?;
        let _ = tcp.set_nodelay(true);
        Ok(tcp)
    }

    fn host_for_connect(&self) -> &str {
        self.host.trim_start_matches('[').trim_end_matches(']')
    }

    async fn handshake<IO>(&self, io: IO, slot: OwnedSemaphorePermit) -> Result<Conn, SendError>
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let read_any = Arc::new(AtomicBool::new(false));
        let io = Counted {
            io,
            read_any: Arc::clone(&read_any),
            _slot: slot,
        };
        let (sender, connection) = http1::Builder::new().handshake(TokioIo::new(io)).await?;
        let name = self.name.clone();
        tokio::spawn(async move {
            if let Err(e) = connection.with_upgrades().await {
                tracing::debug!(upstream = %name, error = %e, "upstream connection closed");
            }
        });
        Ok(Conn {
            sender,
            read_any,
            home: crate::worker::index(),
        })
    }
}

fn connect_error(e: io::Error) -> SendError {
    SendError::Connect(e.to_string())
}

impl Drop for Pool {
    fn drop(&mut self) {
        for idle in self.idle.iter_mut() {
            let idle = idle.get_mut().unwrap_or_else(|e| e.into_inner());
            if let Some(sweeper) = idle.sweeper.take() {
                sweeper.abort();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpListener;

    fn upstream_config(addr: std::net::SocketAddr, extra: &str) -> UpstreamConfig {
        let toml = format!(
            "[upstreams.up]\nurl = \"http://{addr}\"\n{extra}\n\
             [[routes]]\npath = \"/**\"\nupstream = \"up\"\nauth = \"none\"\n"
        );
        let config = Config::from_toml(&toml, std::path::Path::new("."), Vec::new());
        config.expect("config").upstreams.remove(0)
    }

    /// Opens a connection and puts it in the idle list; returns the
    /// upstream's end.
    async fn idle_connection(pool: &Arc<Pool>, listener: &TcpListener) -> TcpStream {
        let slot = pool.slot().await.expect("slot");
        let (accepted, conn) = tokio::join!(listener.accept(), pool.connect(slot));
        pool.checkin(conn.expect("connect"));
        accepted.expect("accept").0
    }

    /// Bytes read before the end of the stream (which must come soon).
    async fn closed(upstream_end: &mut TcpStream) -> usize {
        let mut byte = [0u8; 1];
        let read = tokio::time::timeout(Duration::from_secs(5), upstream_end.read(&mut byte));
        read.await.expect("closed in time").expect("read")
    }

    fn sweeper(pool: &Pool) -> Option<AbortHandle> {
        pool.lock_idle(0).sweeper.clone()
    }

    #[tokio::test]
    async fn sweeper_closes_an_expired_connection_then_ends() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let config = upstream_config(listener.local_addr().unwrap(), "pool_idle_timeout_ms = 50");
        let pool = Arc::new(Pool::new(&config).unwrap());
        let mut upstream_end = idle_connection(&pool, &listener).await;
        assert!(
            sweeper(&pool).is_some(),
            "no sweeper while a connection is idle"
        );
        assert_eq!(pool.slots.available_permits(), 1023);

        // No request comes: the timer alone closes the connection.
        assert_eq!(closed(&mut upstream_end).await, 0);
        // Its permit came back, and the sweeper ended with nothing to watch.
        assert_eq!(pool.slots.available_permits(), 1024);
        assert!(sweeper(&pool).is_none());
        assert!(pool.lock_idle(0).conns.is_empty());

        // The next idle connection starts another.
        let _upstream_end = idle_connection(&pool, &listener).await;
        assert!(sweeper(&pool).is_some());
    }

    #[tokio::test]
    async fn each_worker_reuses_its_own_idle_connections() {
        use crate::worker::as_worker;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let config = upstream_config(listener.local_addr().unwrap(), "");
        let pool = Arc::new(Pool::with_workers(&config, 2).unwrap());
        // Opened on worker 0 (this thread): it goes to worker 0's list.
        let _upstream_end = idle_connection(&pool, &listener).await;
        assert_eq!(pool.lock_idle(0).conns.len(), 1);
        assert!(as_worker(1, || pool.checkout(pool.own_list())).is_none());
        let mut conn = pool
            .checkout(pool.own_list())
            .expect("worker 0's connection");

        // A connection whose task runs on worker 1 goes back to worker 1's
        // list (with its own sweeper), whichever worker used it last.
        conn.home = 1;
        pool.checkin(conn);
        assert!(pool.lock_idle(0).conns.is_empty());
        assert!(pool.lock_idle(1).sweeper.is_some());
        assert!(pool.checkout(pool.own_list()).is_none());
        assert!(as_worker(1, || pool.checkout(pool.own_list())).is_some());
    }

    #[tokio::test]
    async fn at_the_cap_a_worker_takes_another_workers_idle_connection() {
        use crate::worker::as_worker;
        use futures_util::FutureExt;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let config = upstream_config(listener.local_addr().unwrap(), "max_connections = 1");
        let pool = Arc::new(Pool::with_workers(&config, 2).unwrap());
        let _upstream_end = idle_connection(&pool, &listener).await;
        assert_eq!(pool.slots.available_permits(), 0);
        // Worker 1 has no idle connection and no permit to open one: it
        // takes worker 0's at once instead of waiting connect_timeout_ms.
        let free = as_worker(1, || pool.wait_for_free().now_or_never());
        match free {
            Some(Ok(Free::Idle(conn))) => assert_eq!(conn.home, 0),
            Some(Ok(Free::Slot(_))) => panic!("a permit beyond the cap"),
            Some(Err(e)) => panic!("{e}"),
            None => panic!("worker 1 waited with an idle connection in the pool"),
        }
    }

    #[tokio::test]
    async fn sweeper_is_aborted_when_its_pool_is_dropped() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let config = upstream_config(listener.local_addr().unwrap(), "");
        let pool = Arc::new(Pool::new(&config).unwrap());
        let mut upstream_end = idle_connection(&pool, &listener).await;
        let sweeper = sweeper(&pool).expect("a sweeper");
        // Let the sweeper run up to its sleep (a sweeper that first runs
        // after the drop ends by itself, which would prove nothing).
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert!(!sweeper.is_finished());
        drop(pool);
        // The idle connection is closed with its pool, and the sweeper
        // (which would otherwise sleep for pool_idle_timeout_ms) is gone.
        assert_eq!(closed(&mut upstream_end).await, 0);
        for _ in 0..100 {
            if sweeper.is_finished() {
                return;
            }
            tokio::task::yield_now().await;
        }
        panic!("the sweeper outlived its pool");
    }
}
