//! Test clients: HTTP/1.1 or h2 (prior knowledge on plain TCP, ALPN over
//! TLS), one connection per request so nothing lingers in a pool, and the
//! request bodies they send (empty, fixed, or generated on the fly).

use bytes::Bytes;
use futures_util::stream;
use http::{HeaderMap, Request, Response, StatusCode, Uri, Version};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls_pki_types::ServerName;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use super::{within, Pki};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body type every test request uses.
pub type Body = BoxBody<Bytes, BoxError>;

pub fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed()
}

pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// A body of `total` bytes made on the fly from one shared 64 KiB chunk,
/// so a 50 MB upload never exists in memory.
pub fn generated(total: u64) -> Body {
    const CHUNK: u64 = 64 * 1024;
    let chunk = Bytes::from(vec![b'x'; CHUNK as usize]);
    let frames = stream::iter((0..total.div_ceil(CHUNK)).map(move |i| {
        let len = CHUNK.min(total - i * CHUNK) as usize;
        Ok::<_, BoxError>(Frame::data(chunk.slice(..len)))
    }));
    StreamBody::new(frames).boxed()
}

/// Counts a body's bytes frame by frame, without buffering it.
pub async fn count_body(mut body: Incoming) -> Result<u64, hyper::Error> {
    let mut n = 0u64;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            n += data.len() as u64;
        }
    }
    Ok(n)
}

/// A whole answer, read.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub version: Version,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub async fn read(resp: Response<Incoming>) -> Reply {
        let (parts, body) = resp.into_parts();
        let body = within("response body", body.collect())
            .await
            .expect("response body")
            .to_bytes();
        Reply {
            status: parts.status,
            version: parts.version,
            headers: parts.headers,
            body,
        }
    }

    /// The header's only (or first) value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(name)
            .map(|v| v.to_str().expect("ASCII header"))
    }

    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .get_all(name)
            .iter()
            .map(|v| v.to_str().expect("ASCII header"))
            .collect()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {:?}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// Asserts the shape of every gateway-generated error (behavior.md
    /// section 2) and returns the JSON body.
    pub fn gateway_error(&self, status: u16) -> serde_json::Value {
        assert_eq!(
            self.status.as_u16(),
            status,
            "body: {:?}",
            String::from_utf8_lossy(&self.body)
        );
        assert_eq!(self.header("content-type"), Some("application/json"));
        assert_eq!(self.header("cache-control"), Some("no-store"));
        let json = self.json();
        assert!(json["error_description"].is_string(), "{json}");
        json
    }
}

/// HTTP/1.1 or h2, over plain TCP or TLS; one connection per request.
#[derive(Clone)]
pub struct Client {
    h2: bool,
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl Client {
    pub fn h1() -> Client {
        Client {
            h2: false,
            tls: None,
        }
    }

    /// h2 with prior knowledge on plain TCP (h2c), or via ALPN with [`Client::tls`].
    pub fn h2() -> Client {
        Client {
            h2: true,
            tls: None,
        }
    }

    /// Speaks TLS trusting `pki`'s CA, offering only the client's protocol in ALPN.
    pub fn tls(mut self, pki: &Pki) -> Client {
        let alpn: &[u8] = if self.h2 { b"h2" } else { b"http/1.1" };
        self.tls = Some(pki.client_config(&[alpn]));
        self
    }

    /// Speaks TLS with `config` (its ALPN as given): e.g. a client that
    /// presents a certificate.
    pub fn tls_config(mut self, config: Arc<rustls::ClientConfig>) -> Client {
        self.tls = Some(config);
        self
    }

    pub async fn fetch(&self, addr: SocketAddr, req: Request<Body>) -> Reply {
        Reply::read(self.send(addr, req).await).await
    }

    pub async fn send(&self, addr: SocketAddr, req: Request<Body>) -> Response<Incoming> {
        self.try_send(addr, req).await.expect("request failed")
    }

    /// Connects and sends; a relative URI is made absolute (h2) or given a
    /// `Host` (HTTP/1.1) for `addr`.
    pub async fn try_send(
        &self,
        addr: SocketAddr,
        req: Request<Body>,
    ) -> Result<Response<Incoming>, hyper::Error> {
        let tcp = within("connect", TcpStream::connect(addr))
            .await
            .expect("connect");
        match &self.tls {
            None => send_on(tcp, self.h2, "http", &addr.to_string(), req).await,
            Some(config) => {
                let tls = tls_connect(tcp, config.clone()).await;
                let authority = format!("localhost:{}", addr.port());
                send_on(tls, self.h2, "https", &authority, req).await
            }
        }
    }
}

/// A TLS handshake as `localhost`; panics on failure.
pub async fn tls_connect(
    tcp: TcpStream,
    config: Arc<rustls::ClientConfig>,
) -> TlsStream<TcpStream> {
    let name = ServerName::try_from("localhost").expect("server name");
    within(
        "TLS handshake",
        TlsConnector::from(config).connect(name, tcp),
    )
    .await
    .expect("TLS handshake")
}

/// Sends one request on an established connection.
pub async fn send_on<IO>(
    io: IO,
    h2: bool,
    scheme: &str,
    authority: &str,
    mut req: Request<Body>,
) -> Result<Response<Incoming>, hyper::Error>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let io = TokioIo::new(io);
    let pq = req
        .uri()
        .path_and_query()
        .map_or_else(|| "/".to_string(), |pq| pq.as_str().to_string());
    if h2 {
        if req.uri().authority().is_none() {
            *req.uri_mut() = Uri::builder()
                .scheme(scheme)
                .authority(authority)
                .path_and_query(pq)
                .build()
                .expect("absolute URI");
        }
        let (mut sender, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), io).await?;
        tokio::spawn(conn);
        within("h2 response head", sender.send_request(req)).await
    } else {
        if !req.headers().contains_key(http::header::HOST) {
            let host = req
                .uri()
                .authority()
                .map_or_else(|| authority.to_string(), |a| a.to_string());
            req.headers_mut()
                .insert(http::header::HOST, host.parse().expect("host header"));
        }
        *req.uri_mut() = pq.parse().expect("origin-form URI");
        let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await?;
        tokio::spawn(conn);
        within("HTTP/1.1 response head", sender.send_request(req)).await
    }
}
