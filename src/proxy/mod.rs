//! Forwarding to an upstream (behavior contract section 6): a pooled client
//! per upstream, a freshly built upstream request, bodies streamed both ways,
//! 502 on connection failure, 504 when the response head is late, and
//! WebSocket tunnels. Makes no auth decisions: it is handed the identity
//! headers to add.

pub mod headers;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, HOST};
use http::uri::{PathAndQuery, Scheme as UriScheme};
use http::{Request, Response, StatusCode, Uri, Version};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use ipnet::IpNet;
use std::net::SocketAddr;
use std::sync::Arc;

use crate::config::{ConfigError, Scheme, UpstreamConfig};
use crate::error::Rejection;

/// What the gateway answers with: the upstream's streamed body, or its own.
pub type ResponseBody = Either<Incoming, Full<Bytes>>;

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// One configured upstream with its connection pool.
pub struct Upstream {
    pub config: UpstreamConfig,
    client: Client<HttpsConnector<HttpConnector>, Incoming>,
    scheme: UriScheme,
    host_header: HeaderValue,
    /// Time to the upstream's response head.
    duration: metrics::Histogram,
}

impl Upstream {
    /// Builds the client; reads `ca_file`, so it may fail on a bad file.
    pub fn new(config: &UpstreamConfig) -> Result<Upstream, ConfigError> {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(config.connect_timeout));
        let tls = crate::tls::client_config(config.ca_file.as_deref()).map_err(|reason| {
            ConfigError::new(format!("upstreams.{}.ca_file", config.name), reason)
        })?;
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(config.pool_idle_timeout)
            .pool_max_idle_per_host(config.pool_max_idle_per_host)
            .build(connector);
        let scheme = match config.scheme {
            Scheme::Http => UriScheme::HTTP,
            Scheme::Https => UriScheme::HTTPS,
        };
        let host_header = HeaderValue::from_str(config.authority.as_str()).map_err(|_| {
            ConfigError::new(
                format!("upstreams.{}.url", config.name),
                "invalid authority",
            )
        })?;
        Ok(Upstream {
            config: config.clone(),
            client,
            scheme,
            host_header,
            duration: crate::telemetry::upstream_duration(&config.name),
        })
    }
}

/// Everything about the incoming request that forwarding needs besides the
/// request itself.
pub struct Forwarded<'a> {
    pub peer: SocketAddr,
    pub tls: bool,
    /// The Host (or h2 `:authority`) the client sent.
    pub original_host: Option<HeaderValue>,
    /// The normalised path, already checked by routing.
    pub path: &'a str,
    pub strip_prefix: Option<&'a str>,
    pub request_id: HeaderValue,
    pub trusted_proxies: &'a [IpNet],
    /// Identity headers to add (already stripped from the incoming request).
    pub identity: Vec<(HeaderName, HeaderValue)>,
    pub policy: headers::RequestPolicy<'a>,
    pub strip_authorization: bool,
}

/// Sends `req` to `upstream` and returns its answer with cleaned headers.
pub async fn forward(
    upstream: &Upstream,
    mut req: Request<Incoming>,
    fwd: Forwarded<'_>,
) -> Result<Response<ResponseBody>, Rejection> {
    let client_upgrade = fwd
        .policy
        .upgrade
        .is_some()
        .then(|| hyper::upgrade::on(&mut req));
    let (parts, body) = req.into_parts();
    let uri = upstream_uri(upstream, &fwd, parts.uri.query())?;
    let mut out = Request::new(body);
    *out.method_mut() = parts.method;
    *out.uri_mut() = uri;
    *out.version_mut() = Version::HTTP_11;
    let mut headers = parts.headers;
    headers::clean_request(&mut headers, &fwd.policy);
    if fwd.strip_authorization {
        headers.remove(http::header::AUTHORIZATION);
    }
    add_forwarding_headers(&mut headers, upstream, &fwd);
    *out.headers_mut() = headers;

    let started = std::time::Instant::now();
    let sent = tokio::time::timeout(upstream.config.timeout, upstream.client.request(out)).await;
    upstream.duration.record(started.elapsed().as_secs_f64());
    let mut resp = match sent {
        Err(_) => return Err(Rejection::UpstreamTimeout),
        Ok(Err(e)) if e.is_connect() => {
            tracing::warn!(upstream = %upstream.config.name, error = %e, "upstream connection failed");
            return Err(Rejection::UpstreamConnect);
        }
        Ok(Err(e)) => {
            tracing::warn!(upstream = %upstream.config.name, error = %e, "upstream request failed");
            return Err(Rejection::UpstreamProtocol);
        }
        Ok(Ok(resp)) => resp,
    };
    let switching = resp.status() == StatusCode::SWITCHING_PROTOCOLS;
    if switching {
        match client_upgrade {
            Some(client_upgrade) => spawn_tunnel(client_upgrade, hyper::upgrade::on(&mut resp)),
            None => return Err(Rejection::UpstreamProtocol),
        }
    }
    headers::clean_response(resp.headers_mut(), switching);
    Ok(resp.map(Either::Left))
}

fn upstream_uri(
    upstream: &Upstream,
    fwd: &Forwarded,
    query: Option<&str>,
) -> Result<Uri, Rejection> {
    let mut path = fwd.path;
    if let Some(prefix) = fwd.strip_prefix {
        if path == prefix {
            path = "/";
        } else if path.len() > prefix.len()
            && path.starts_with(prefix)
            && path.as_bytes()[prefix.len()] == b'/'
        {
            path = &path[prefix.len()..];
        }
    }
    let base = &upstream.config.base_path;
    let mut pq = String::with_capacity(base.len() + path.len() + query.map_or(0, |q| q.len() + 1));
    pq.push_str(base);
    pq.push_str(path);
    if let Some(q) = query {
        pq.push('?');
        pq.push_str(q);
    }
    let pq = PathAndQuery::try_from(pq).map_err(|_| Rejection::UpstreamProtocol)?;
    Uri::builder()
        .scheme(upstream.scheme.clone())
        .authority(upstream.config.authority.clone())
        .path_and_query(pq)
        .build()
        .map_err(|_| Rejection::UpstreamProtocol)
}

fn add_forwarding_headers(headers: &mut http::HeaderMap, upstream: &Upstream, fwd: &Forwarded) {
    let host = match (&fwd.original_host, upstream.config.preserve_host) {
        (Some(original), true) => original.clone(),
        _ => upstream.host_header.clone(),
    };
    headers.insert(HOST, host);
    let peer_ip = fwd.peer.ip().to_canonical();
    let trusted = fwd.trusted_proxies.iter().any(|net| net.contains(&peer_ip));
    let incoming_xff: Vec<String> = headers
        .get_all(&X_FORWARDED_FOR)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(str::to_string)
        .collect();
    let xff = if trusted && !incoming_xff.is_empty() {
        format!("{}, {peer_ip}", incoming_xff.join(", "))
    } else {
        peer_ip.to_string()
    };
    if let Ok(v) = HeaderValue::from_str(&xff) {
        headers.insert(&X_FORWARDED_FOR, v);
    }
    let proto = if fwd.tls { "https" } else { "http" };
    headers.insert(&X_FORWARDED_PROTO, HeaderValue::from_static(proto));
    match &fwd.original_host {
        Some(h) => {
            headers.insert(&X_FORWARDED_HOST, h.clone());
        }
        None => {
            headers.remove(&X_FORWARDED_HOST);
        }
    }
    headers.insert(&X_REQUEST_ID, fwd.request_id.clone());
    for (name, value) in &fwd.identity {
        headers.insert(name, value.clone());
    }
}

/// Joins the client's and the upstream's upgraded connections.
fn spawn_tunnel(client: hyper::upgrade::OnUpgrade, upstream: hyper::upgrade::OnUpgrade) {
    tokio::spawn(async move {
        let (client, upstream) = match tokio::try_join!(client, upstream) {
            Ok(pair) => pair,
            Err(e) => {
                tracing::debug!(error = %e, "upgrade failed");
                return;
            }
        };
        let mut client = TokioIo::new(client);
        let mut upstream = TokioIo::new(upstream);
        if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
            tracing::debug!(error = %e, "tunnel closed with an error");
        }
    });
}

/// Shared so that runtime snapshots can be cheaply cloned.
pub type SharedUpstream = Arc<Upstream>;
