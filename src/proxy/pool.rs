//! Connections to one upstream: HTTP/1.1 over TCP or TLS, kept open and
//! reused (behavior contract section 6). Built on hyper's connection-level
//! client (`client::conn::http1`), so the request path pays for one
//! connection's dispatch and nothing else: no pool keys, no checkout futures.
//!
//! A connection goes back to the pool when the response body it carried has
//! been read to its end (see [`PooledBody`]); a response dropped half-read
//! takes its connection with it. Idle connections are reused newest first
//! and are closed once older than `pool_idle_timeout_ms` (checked whenever
//! the pool is touched) or when the pool already holds
//! `pool_max_idle_per_host`.

use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::body::RequestBody;
use crate::config::{ConfigError, Scheme, UpstreamConfig};

/// Why no response head came back.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// No connection could be opened (refused, unresolvable, TLS failure,
    /// `connect_timeout_ms`).
    #[error("cannot connect: {0}")]
    Connect(String),
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
    idle: Mutex<Vec<Idle>>,
}

struct Idle {
    sender: SendRequest<RequestBody>,
    since: Instant,
}

impl Pool {
    /// Reads `ca_file` for an `https` upstream, so it may fail.
    pub fn new(config: &UpstreamConfig) -> Result<Pool, ConfigError> {
        let host = config.authority.host().to_string();
        let tls = match config.scheme {
            Scheme::Http => None,
            Scheme::Https => {
                let key = |k: &str| format!("upstreams.{}.{k}", config.name);
                let mut tls = crate::tls::client_config(config.ca_file.as_deref())
                    .map_err(|reason| ConfigError::new(key("ca_file"), reason))?;
                tls.alpn_protocols = vec![b"http/1.1".to_vec()];
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
            idle: Mutex::new(Vec::new()),
        })
    }

    /// Sends `req` on an idle connection, or a new one, and returns the
    /// response head. A request that an idle connection closed before it
    /// could take is sent again on a fresh connection.
    pub async fn send(
        self: &Arc<Self>,
        mut req: Request<RequestBody>,
    ) -> Result<Response<PooledBody>, SendError> {
        while let Some(mut sender) = self.checkout() {
            if sender.ready().await.is_err() {
                continue;
            }
            match sender.try_send_request(req).await {
                Ok(resp) => return Ok(self.attach(sender, resp)),
                Err(mut e) => match e.take_message() {
                    Some(unsent) => req = unsent,
                    None => return Err(SendError::Protocol(e.into_error())),
                },
            }
        }
        // Boxed: connecting (TCP, perhaps TLS) is the rare path, and its
        // state would otherwise make every request's future larger.
        let mut sender = Box::pin(self.connect()).await?;
        let resp = sender.send_request(req).await?;
        Ok(self.attach(sender, resp))
    }

    /// The newest idle connection that is still open.
    fn checkout(&self) -> Option<SendRequest<RequestBody>> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        self.evict_expired(&mut idle, Instant::now());
        while let Some(Idle { sender, .. }) = idle.pop() {
            if !sender.is_closed() {
                return Some(sender);
            }
        }
        None
    }

    fn checkin(&self, sender: SendRequest<RequestBody>) {
        if sender.is_closed() || self.max_idle == 0 {
            return;
        }
        let now = Instant::now();
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        self.evict_expired(&mut idle, now);
        if idle.len() >= self.max_idle {
            idle.remove(0);
        }
        idle.push(Idle { sender, since: now });
    }

    /// Drops idle connections older than the idle timeout (the oldest are
    /// first in the list).
    fn evict_expired(&self, idle: &mut Vec<Idle>, now: Instant) {
        let expired = idle
            .iter()
            .take_while(|i| now.duration_since(i.since) >= self.idle_timeout)
            .count();
        if expired > 0 {
            idle.drain(..expired);
        }
    }

    fn attach(
        self: &Arc<Self>,
        sender: SendRequest<RequestBody>,
        resp: Response<Incoming>,
    ) -> Response<PooledBody> {
        let upgrading = resp.status() == http::StatusCode::SWITCHING_PROTOCOLS;
        resp.map(|body| {
            let mut pooled = PooledBody {
                body,
                home: (!upgrading).then(|| (sender, Arc::clone(self))),
            };
            pooled.return_if_done();
            pooled
        })
    }

    async fn connect(&self) -> Result<SendRequest<RequestBody>, SendError> {
        let connected = tokio::time::timeout(self.connect_timeout, self.open()).await;
        match connected {
            Ok(result) => result,
            Err(_) => Err(SendError::Connect(format!(
                "no connection within {} ms",
                self.connect_timeout.as_millis()
            ))),
        }
    }

    async fn open(&self) -> Result<SendRequest<RequestBody>, SendError> {
        let connect_error = |e: std::io::Error| SendError::Connect(e.to_string());
        let tcp = TcpStream::connect((self.host_for_connect(), self.port))
            .await
            .map_err(connect_error)?;
        let _ = tcp.set_nodelay(true);
        match &self.tls {
            None => self.handshake(tcp).await,
            Some((connector, name)) => {
                let tls = connector
                    .connect(name.clone(), tcp)
                    .await
                    .map_err(connect_error)?;
                self.handshake(tls).await
            }
        }
    }

    fn host_for_connect(&self) -> &str {
        self.host.trim_start_matches('[').trim_end_matches(']')
    }

    async fn handshake<IO>(&self, io: IO) -> Result<SendRequest<RequestBody>, SendError>
    where
        IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let (sender, connection) = http1::Builder::new().handshake(TokioIo::new(io)).await?;
        let name = self.name.clone();
        tokio::spawn(async move {
            if let Err(e) = connection.with_upgrades().await {
                tracing::debug!(upstream = %name, error = %e, "upstream connection closed");
            }
        });
        Ok(sender)
    }
}

/// An upstream response body that hands its connection back to the pool
/// once it has been read to the end.
pub struct PooledBody {
    body: Incoming,
    home: Option<(SendRequest<RequestBody>, Arc<Pool>)>,
}

impl PooledBody {
    /// The body, for a `101` whose connection becomes a tunnel.
    pub fn into_inner(self) -> Incoming {
        self.body
    }

    fn return_if_done(&mut self) {
        if self.body.is_end_stream() {
            if let Some((sender, pool)) = self.home.take() {
                pool.checkin(sender);
            }
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
            Poll::Ready(None) => {
                if let Some((sender, pool)) = self.home.take() {
                    pool.checkin(sender);
                }
            }
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
