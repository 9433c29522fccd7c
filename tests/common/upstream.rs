//! A real upstream on 127.0.0.1:0 that records every request it receives
//! (method, target, version, headers, body length; bodies are counted
//! frame by frame, never buffered) and answers according to the last path
//! segment:
//!
//! | path ends with | answer |
//! |---|---|
//! | `/slow` | waits 30 s, then echoes (longer than any test `timeout_ms`) |
//! | `/big` | 200 with a 50 MiB body generated on the fly |
//! | `/headers` | 200 with hop-by-hop, `Connection`-named and `Proxy-Authenticate` headers |
//! | `/hold` | signals [`Upstream::arrived`], waits for [`Upstream::release`], then echoes |
//! | `/status/NNN` | echoes with status NNN |
//! | `/sleep/MS` | waits MS milliseconds, then echoes |
//! | anything else | 200 echo: a JSON description of the request |
//!
//! [`Upstream::websocket_echo`] instead accepts WebSocket handshakes and
//! echoes every text and binary message.

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Uri, Version};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use super::client::{count_body, full, generated, Body};
use super::{within, Pki};

/// The size of the `/big` answer.
pub const BIG_BODY: u64 = 50 * 1024 * 1024;

/// One request as the upstream received it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: Method,
    /// The request target as received (origin-form path and query).
    pub uri: Uri,
    pub version: Version,
    pub headers: HeaderMap,
    pub body_len: u64,
}

impl Seen {
    /// `path?query` as received.
    pub fn target(&self) -> &str {
        self.uri.path_and_query().map_or("", |pq| pq.as_str())
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(name)
            .map(|v| v.to_str().expect("ASCII header"))
    }

    pub fn has(&self, name: &str) -> bool {
        self.headers.contains_key(name)
    }
}

#[derive(Default)]
struct State {
    hits: AtomicUsize,
    connections: AtomicUsize,
    seen: Mutex<Vec<Seen>>,
    arrived: Notify,
    release: Notify,
}

impl State {
    fn record(&self, seen: Seen) {
        self.seen.lock().expect("lock").push(seen);
    }
}

pub struct Upstream {
    addr: SocketAddr,
    scheme: &'static str,
    state: Arc<State>,
    task: JoinHandle<()>,
}

impl Upstream {
    /// The recording echo upstream over plain HTTP (HTTP/1.1 and h2c).
    pub async fn echo() -> Upstream {
        Upstream::spawn(None).await
    }

    /// The same over TLS with `pki`'s `localhost` certificate.
    pub async fn echo_tls(pki: &Pki) -> Upstream {
        Upstream::echo_tls_alpn(pki, &[b"http/1.1"]).await
    }

    /// The same, offering these ALPN protocols.
    pub async fn echo_tls_alpn(pki: &Pki, alpn: &[&[u8]]) -> Upstream {
        let acceptor = TlsAcceptor::from(pki.server_config(alpn));
        Upstream::spawn(Some(acceptor)).await
    }

    async fn spawn(tls: Option<TlsAcceptor>) -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind upstream");
        let addr = listener.local_addr().expect("upstream addr");
        let state = Arc::new(State::default());
        let scheme = if tls.is_some() { "https" } else { "http" };
        let task = tokio::spawn(accept_loop(listener, state.clone(), tls));
        Upstream {
            addr,
            scheme,
            state,
            task,
        }
    }

    /// A WebSocket server that records each handshake and echoes messages.
    pub async fn websocket_echo() -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind upstream");
        let addr = listener.local_addr().expect("upstream addr");
        let state = Arc::new(State::default());
        let task = tokio::spawn(websocket_loop(listener, state.clone()));
        Upstream {
            addr,
            scheme: "http",
            state,
            task,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http(s)://127.0.0.1:PORT`, for an `[upstreams.*] url`.
    pub fn url(&self) -> String {
        format!("{}://{}", self.scheme, self.addr)
    }

    /// Requests that reached the upstream, counted on arrival.
    pub fn hits(&self) -> usize {
        self.state.hits.load(Ordering::SeqCst)
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.state.connections.load(Ordering::SeqCst)
    }

    /// Every request received so far, once its body was read.
    pub fn requests(&self) -> Vec<Seen> {
        self.state.seen.lock().expect("lock").clone()
    }

    /// The most recent request; panics when there was none.
    pub fn last(&self) -> Seen {
        self.requests()
            .pop()
            .expect("the upstream received no request")
    }

    /// Waits until a `/hold` request has arrived.
    pub async fn arrived(&self) {
        within(
            "a /hold request at the upstream",
            self.state.arrived.notified(),
        )
        .await;
    }

    /// Lets one held `/hold` request answer.
    pub fn release(&self) {
        self.state.release.notify_one();
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept_loop(listener: TcpListener, state: Arc<State>, tls: Option<TlsAcceptor>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        state.connections.fetch_add(1, Ordering::SeqCst);
        let state = state.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                None => serve_connection(stream, state).await,
                Some(acceptor) => {
                    if let Ok(Ok(stream)) =
                        tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream)).await
                    {
                        serve_connection(stream, state).await;
                    }
                }
            }
        });
    }
}

async fn serve_connection<IO>(io: IO, state: Arc<State>)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let svc = service_fn(move |req| {
        let state = state.clone();
        async move { Ok::<_, Infallible>(answer(&state, req).await) }
    });
    let _ = auto::Builder::new(TokioExecutor::new())
        .serve_connection(TokioIo::new(io), svc)
        .await;
}

async fn answer(state: &State, req: Request<Incoming>) -> Response<Body> {
    state.hits.fetch_add(1, Ordering::SeqCst);
    let (parts, body) = req.into_parts();
    let body_len = count_body(body).await.unwrap_or(0);
    let seen = Seen {
        method: parts.method,
        uri: parts.uri,
        version: parts.version,
        headers: parts.headers,
        body_len,
    };
    state.record(seen.clone());
    let mut segments = seen.uri.path().rsplit('/');
    let last = segments.next().unwrap_or("");
    let before_last = segments.next().unwrap_or("");
    match (before_last, last) {
        (_, "slow") => {
            tokio::time::sleep(Duration::from_secs(30)).await;
            echo(&seen, StatusCode::OK)
        }
        (_, "big") => Response::new(generated(BIG_BODY)),
        (_, "headers") => hop_by_hop_response(),
        (_, "hold") => {
            state.arrived.notify_one();
            state.release.notified().await;
            echo(&seen, StatusCode::OK)
        }
        ("sleep", ms) => {
            tokio::time::sleep(Duration::from_millis(ms.parse().unwrap_or(0))).await;
            echo(&seen, StatusCode::OK)
        }
        ("status", code) => {
            let status = code.parse().ok().and_then(|c| StatusCode::from_u16(c).ok());
            echo(&seen, status.unwrap_or(StatusCode::BAD_REQUEST))
        }
        _ => echo(&seen, StatusCode::OK),
    }
}

/// A JSON description of the request, with `x-upstream: echo`.
fn echo(seen: &Seen, status: StatusCode) -> Response<Body> {
    let mut headers = serde_json::Map::new();
    for name in seen.headers.keys() {
        let values: Vec<String> = seen
            .headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect();
        headers.insert(name.to_string(), values.into());
    }
    let body = serde_json::json!({
        "method": seen.method.as_str(),
        "target": seen.target(),
        "version": format!("{:?}", seen.version),
        "headers": headers,
        "body_bytes": seen.body_len,
    });
    let mut resp = Response::new(full(Bytes::from(body.to_string())));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    resp.headers_mut()
        .insert("x-upstream", HeaderValue::from_static("echo"));
    resp
}

/// An answer carrying every header a proxy must drop, next to ordinary ones.
fn hop_by_hop_response() -> Response<Body> {
    let mut resp = Response::new(full("headers"));
    let h = resp.headers_mut();
    for (name, value) in [
        ("connection", "x-hop-secret, x-hop-other"),
        ("x-hop-secret", "1"),
        ("x-hop-other", "2"),
        ("keep-alive", "timeout=5"),
        ("proxy-connection", "keep-alive"),
        ("proxy-authenticate", "Basic realm=\"upstream\""),
        ("trailer", "x-checksum"),
        ("upgrade", "h2c"),
        ("te", "trailers"),
        ("x-normal", "kept"),
        ("set-cookie", "a=1"),
        ("set-cookie", "b=2"),
        ("www-authenticate", "Basic realm=\"upstream\""),
    ] {
        h.append(name, HeaderValue::from_static(value));
    }
    resp
}

async fn websocket_loop(listener: TcpListener, state: Arc<State>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(websocket_connection(stream, state.clone()));
    }
}

async fn websocket_connection(stream: TcpStream, state: Arc<State>) {
    use tokio_tungstenite::tungstenite::handshake::server::{
        Request as WsRequest, Response as WsResponse,
    };
    use tokio_tungstenite::tungstenite::Message;

    // tungstenite's callback signature fixes the (large) error type.
    #[allow(clippy::result_large_err)]
    let record = |req: &WsRequest, resp: WsResponse| {
        state.hits.fetch_add(1, Ordering::SeqCst);
        state.record(Seen {
            method: req.method().clone(),
            uri: req.uri().clone(),
            version: req.version(),
            headers: req.headers().clone(),
            body_len: 0,
        });
        Ok(resp)
    };
    let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(stream, record).await else {
        return;
    };
    while let Some(Ok(msg)) = ws.next().await {
        if msg.is_close() {
            return;
        }
        let echo = matches!(msg, Message::Text(_) | Message::Binary(_));
        if echo && ws.send(msg).await.is_err() {
            return;
        }
    }
}
