//! Targets and connections: a resolved `--url`, the tokens to send,
//! TLS client setup, and HTTP/1.1 or h2 connections opened one by one or
//! in batches.

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONNECTION, HOST};
use http::{HeaderName, HeaderValue, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::Path;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio_rustls::TlsConnector;

use crate::cli::TargetArgs;
use crate::{BoxError, CONNECT_BATCH};

/// A resolved `--url` with everything a request needs, built once.
pub(crate) struct Target {
    pub(crate) addr: SocketAddr,
    /// The Host header (HTTP/1.1).
    pub(crate) authority: HeaderValue,
    /// Path and query (HTTP/1.1) or the absolute URI (h2).
    pub(crate) request_uri: Uri,
    pub(crate) h2: bool,
    pub(crate) tls: Option<(TlsConnector, ServerName<'static>)>,
    /// `Bearer ...` values, used in turn; with DPoP, one `DPoP ...` value.
    pub(crate) tokens: Vec<HeaderValue>,
    /// DPoP proofs, one per request, used in turn.
    pub(crate) proofs: Vec<HeaderValue>,
    /// gRPC unary calls instead of `GET`s.
    pub(crate) grpc: bool,
}

/// The message of every gRPC call: uncompressed, 11 bytes (field 1, the
/// string "benchmark"), behind gRPC's 5-byte length prefix.
const GRPC_CALL: &[u8] = b"\0\0\0\0\x0b\x0a\x09benchmark";
static GRPC_CONTENT_TYPE: HeaderValue = HeaderValue::from_static("application/grpc");
static TRAILERS: HeaderValue = HeaderValue::from_static("trailers");

impl Target {
    pub(crate) fn new(args: &TargetArgs, resumption: bool) -> Result<Target, BoxError> {
        let uri: Uri = args.url.parse()?;
        let https = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => return Err(format!("{}: the URL must be http or https", args.url).into()),
        };
        let host = uri.host().ok_or("the URL has no host")?;
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let addr = (host.trim_matches(['[', ']']), port)
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| format!("{host} does not resolve"))?;
        let authority = HeaderValue::from_str(uri.authority().map_or(host, |a| a.as_str()))?;
        let request_uri = if args.h2 {
            uri.clone()
        } else {
            uri.path_and_query()
                .map_or("/", |p| p.as_str())
                .parse::<Uri>()?
        };
        let tls = if https {
            let ca = args
                .tls_ca
                .as_deref()
                .ok_or("an https URL needs --tls-ca")?;
            let alpn: &[u8] = if args.h2 { b"h2" } else { b"http/1.1" };
            let config = client_tls(ca, alpn, resumption)?;
            let name = ServerName::try_from(host.trim_matches(['[', ']']).to_string())?;
            Some((TlsConnector::from(config), name))
        } else {
            None
        };
        let tokens = match &args.tokens {
            Some(path) => read_tokens(path)?,
            None => Vec::new(),
        };
        let (scheme, proofs) = match (&args.dpop_key, tokens.as_slice()) {
            (None, _) => ("Bearer", Vec::new()),
            (Some(key), [token]) => {
                let proofs = crate::dpop::proofs(key, &args.url, token, args.dpop_proofs.max(1))?;
                ("DPoP", proofs)
            }
            (Some(_), _) => return Err("--dpop-key needs exactly one token in --tokens".into()),
        };
        let tokens = tokens
            .iter()
            .map(|t| HeaderValue::from_str(&format!("{scheme} {t}")))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Target {
            addr,
            authority,
            request_uri,
            h2: args.h2,
            tls,
            tokens,
            grpc: args.grpc,
            proofs,
        })
    }

    /// A GET (or a gRPC call) with the `n`th token (in turn); `close` asks
    /// the server to close the connection after answering (HTTP/1.1).
    pub(crate) fn request(&self, n: usize, close: bool) -> Request<Full<Bytes>> {
        let mut req = Request::new(Full::new(Bytes::new()));
        *req.uri_mut() = self.request_uri.clone();
        if self.grpc {
            *req.method_mut() = http::Method::POST;
            *req.body_mut() = Full::new(Bytes::from_static(GRPC_CALL));
            req.headers_mut()
                .insert(http::header::CONTENT_TYPE, GRPC_CONTENT_TYPE.clone());
            req.headers_mut().insert(http::header::TE, TRAILERS.clone());
        }
        let headers = req.headers_mut();
        if !self.h2 {
            headers.insert(HOST, self.authority.clone());
            if close {
                headers.insert(CONNECTION, HeaderValue::from_static("close"));
            }
        }
        if !self.tokens.is_empty() {
            headers.insert(AUTHORIZATION, self.tokens[n % self.tokens.len()].clone());
        }
        if !self.proofs.is_empty() {
            headers.insert(&DPOP, self.proofs[n % self.proofs.len()].clone());
        }
        req
    }
}

/// The `DPoP` request header.
static DPOP: HeaderName = HeaderName::from_static("dpop");

/// The tokens of `path`, one a line.
pub(crate) fn read_tokens(path: &Path) -> Result<Vec<String>, BoxError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let tokens: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    if tokens.is_empty() {
        return Err(format!("no token in {}", path.display()).into());
    }
    Ok(tokens)
}

/// A client trusting only `ca`, offering one ALPN protocol and only the
/// X25519 key exchange: nginx and HAProxy (OpenSSL 3.0) have no
/// post-quantum hybrid, and rustls would otherwise pick X25519MLKEM768 with
/// tokengate, so every proxy does the same handshake.
pub(crate) fn client_tls(
    ca: &Path,
    alpn: &[u8],
    resumption: bool,
) -> Result<Arc<rustls::ClientConfig>, BoxError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca)? {
        roots.add(cert?)?;
    }
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    provider.kx_groups = vec![rustls::crypto::aws_lc_rs::kx_group::X25519];
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    if !resumption {
        config.resumption = rustls::client::Resumption::disabled();
    }
    Ok(Arc::new(config))
}

/// One client connection, either protocol.
pub(crate) enum Sender {
    H1(hyper::client::conn::http1::SendRequest<Full<Bytes>>),
    H2(hyper::client::conn::http2::SendRequest<Full<Bytes>>),
}

impl Sender {
    /// Sends `req` and reads the whole answer; the status, or why not. A
    /// gRPC call whose trailers lack `grpc-status: 0` is an error.
    pub(crate) async fn round_trip(
        &mut self,
        req: Request<Full<Bytes>>,
    ) -> Result<StatusCode, BoxError> {
        let grpc = req.headers().contains_key(http::header::TE);
        let resp: Response<Incoming> = match self {
            Sender::H1(s) => {
                s.ready().await?;
                s.send_request(req).await?
            }
            Sender::H2(s) => {
                s.ready().await?;
                s.send_request(req).await?
            }
        };
        let status = resp.status();
        let grpc_status = resp.headers().get("grpc-status").cloned();
        let body = resp.into_body().collect().await?;
        if grpc {
            let code = body.trailers().and_then(|t| t.get("grpc-status").cloned());
            match code.or(grpc_status) {
                Some(code) if code == "0" => {}
                code => return Err(format!("gRPC call failed: grpc-status {code:?}").into()),
            }
        }
        Ok(status)
    }
}

/// Opens a connection to `target` (TCP, TLS if https, the HTTP handshake);
/// its driver runs as a task on the caller's runtime.
pub(crate) async fn connect(target: &Target) -> Result<Sender, BoxError> {
    let tcp = TcpStream::connect(target.addr).await?;
    tcp.set_nodelay(true)?;
    match &target.tls {
        None => handshake(tcp, target.h2).await,
        Some((connector, name)) => {
            let stream = connector.connect(name.clone(), tcp).await?;
            let alpn = stream.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
            let wanted: &[u8] = if target.h2 { b"h2" } else { b"http/1.1" };
            if alpn.as_deref().is_some_and(|p| p != wanted) || (target.h2 && alpn.is_none()) {
                return Err("the server did not agree to the ALPN protocol offered".into());
            }
            handshake(stream, target.h2).await
        }
    }
}

pub(crate) async fn handshake<T>(io: T, h2: bool) -> Result<Sender, BoxError>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let io = TokioIo::new(io);
    if h2 {
        let (sender, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), io).await?;
        tokio::spawn(conn);
        Ok(Sender::H2(sender))
    } else {
        let (sender, conn) = hyper::client::conn::http1::handshake(io).await?;
        tokio::spawn(conn);
        Ok(Sender::H1(sender))
    }
}

/// Opens `n` connections, at most [`CONNECT_BATCH`] at a time; each one's
/// result, in order.
pub(crate) async fn connect_many(target: &Arc<Target>, n: usize) -> Vec<Result<Sender, BoxError>> {
    let permits = Arc::new(Semaphore::new(CONNECT_BATCH));
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let (target, permits) = (target.clone(), permits.clone());
            tokio::spawn(async move {
                let _permit = permits.acquire().await?;
                connect(&target).await
            })
        })
        .collect();
    let mut out = Vec::with_capacity(n);
    for task in tasks {
        out.push(task.await.map_err(BoxError::from).and_then(|r| r));
    }
    out
}
