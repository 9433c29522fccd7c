//! Forwarding to an upstream (docs/behavior.md sections 8 and 15): a pooled
//! client per upstream (HTTP/1.1, or HTTP/2 with `protocol = "h2"`), a
//! freshly built upstream request, bodies and trailers streamed both ways,
//! 502 on connection failure, 504 when the response head is late, and
//! WebSocket tunnels. Makes no auth decisions: it is handed the identity
//! headers to add.

pub mod body;
pub mod error;
pub mod headers;
pub mod pool;
pub mod tunnel;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, HOST};
use http::uri::PathAndQuery;
use http::{Request, Response, StatusCode, Uri, Version};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use ipnet::IpNet;
use std::net::SocketAddr;
use std::sync::Arc;

use crate::config::{ConfigError, UpstreamConfig};
use crate::trace::{TRACEPARENT, TRACESTATE};
use body::{BodyState, BodyWatch, RequestBody};
pub use error::UpstreamError;
use pool::{Pool, PooledBody, SendError};

/// What the gateway answers with: the upstream's streamed body, or its own.
pub type ResponseBody = Either<PooledBody, Full<Bytes>>;

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// One configured upstream with its connection pool.
pub struct Upstream {
    pub config: UpstreamConfig,
    pool: Arc<Pool>,
    host_header: HeaderValue,
    /// Time to the upstream's response head.
    duration: metrics::Histogram,
}

impl Upstream {
    /// Builds the connection pool; reads `ca_file`, so it may fail on a bad
    /// file.
    pub fn new(config: &UpstreamConfig) -> Result<Upstream, ConfigError> {
        let pool = Arc::new(Pool::new(config)?);
        let host_header = HeaderValue::from_str(config.authority.as_str()).map_err(|_| {
            ConfigError::new(
                format!("upstreams.{}.url", config.name),
                "invalid authority",
            )
        })?;
        Ok(Upstream {
            config: config.clone(),
            pool,
            host_header,
            duration: crate::telemetry::upstream_duration(&config.name),
        })
    }
}

/// Everything about the incoming request that forwarding needs besides the
/// request itself.
pub struct Forwarded<'a> {
    pub peer: SocketAddr,
    /// `peer`'s address as a header value.
    pub peer_ip: &'a HeaderValue,
    pub tls: bool,
    /// The Host (or h2 `:authority`) the client sent.
    pub original_host: Option<HeaderValue>,
    /// The normalised path, already checked by routing.
    pub path: &'a str,
    pub strip_prefix: Option<&'a str>,
    /// The route matches ASCII case-insensitively, and so is its prefix
    /// stripped.
    pub case_insensitive: bool,
    pub request_id: HeaderValue,
    pub trusted_proxies: &'a [IpNet],
    /// The peer is one of `trusted_proxies`.
    pub peer_trusted: bool,
    /// Identity headers to add (already stripped from the incoming request).
    pub identity: Vec<(HeaderName, HeaderValue)>,
    /// The time left until the verified token's `exp`: a WebSocket tunnel
    /// it opened is closed then.
    pub token_left: Option<std::time::Duration>,
    pub policy: headers::RequestPolicy<'a>,
    /// Also removes `access_token` query parameters.
    pub strip_authorization: bool,
    /// The upstream's own `Authorization` (`[upstreams.NAME.oauth]`),
    /// sent instead of the caller's.
    pub authorization: Option<HeaderValue>,
    pub body_read_timeout: std::time::Duration,
    /// The trace context the upstream receives (`traceparent`, and the
    /// caller's `tracestate` only with the caller's valid `traceparent`).
    pub trace: crate::trace::UpstreamTrace,
}

/// Sends `req` to `upstream` and returns its answer with cleaned headers.
pub async fn forward(
    upstream: &Upstream,
    mut req: Request<Incoming>,
    fwd: Forwarded<'_>,
) -> Result<Response<ResponseBody>, UpstreamError> {
    let h2 = upstream.pool.is_h2();
    check_protocol(upstream, &req, &fwd, h2)?;
    let handshake = fwd
        .policy
        .upgrade
        .is_some()
        .then(|| tunnel::Handshake::new(&mut req));
    let (parts, body) = req.into_parts();
    let uri = upstream_uri(upstream, &fwd, parts.uri.query())?;
    let (body, watch) = RequestBody::new(body, fwd.body_read_timeout);
    let mut out = Request::new(body);
    *out.method_mut() = parts.method;
    let mut headers = parts.headers;
    let trailers = h2 && headers::asks_for_trailers(&headers);
    headers::clean_request(&mut headers, &fwd.policy);
    if fwd.strip_authorization {
        headers.remove(http::header::AUTHORIZATION);
    }
    if let Some(authorization) = &fwd.authorization {
        headers.insert(http::header::AUTHORIZATION, authorization.clone());
    }
    add_forwarding_headers(&mut headers, upstream, &fwd);
    headers.insert(&TRACEPARENT, fwd.trace.traceparent.clone());
    if !fwd.trace.keep_tracestate {
        headers.remove(&TRACESTATE);
    }
    if h2 {
        // The authority travels as `:authority`, not as a Host field
        // (RFC 9113 section 8.3.1).
        let host = headers.remove(HOST);
        *out.uri_mut() = absolute(upstream, uri, host)?;
        *out.version_mut() = Version::HTTP_2;
        if trailers {
            headers.insert(http::header::TE, HeaderValue::from_static("trailers"));
        }
    } else {
        *out.uri_mut() = uri;
        *out.version_mut() = Version::HTTP_11;
        if parts.version == Version::HTTP_2 {
            headers::join_cookies(&mut headers);
        }
    }
    *out.headers_mut() = headers;

    let started = std::time::Instant::now();
    let sent = tokio::time::timeout(upstream.config.timeout, upstream.pool.send(out)).await;
    upstream.duration.record(started.elapsed().as_secs_f64());
    let mut resp = match sent {
        Ok(Ok(resp)) => resp,
        Ok(Err(e)) => return Err(send_failure(upstream, watch.as_deref(), e)),
        // The upstream cannot answer before it has the whole request: a
        // body still being read is the client's delay, not the upstream's.
        Err(_) => match watch.map(|w| w.state()) {
            Some(BodyState::Reading | BodyState::TimedOut) => {
                return Err(UpstreamError::BodyTimeout)
            }
            _ => {
                return Err(UpstreamError::Timeout {
                    upstream: upstream.config.name.clone(),
                })
            }
        },
    };
    if let (true, Some(watch)) = (h2, &watch) {
        // A stream may go on as long as both ends keep it open (gRPC
        // streaming): once the upstream has answered, the body deadline no
        // longer holds anything the gateway needs back.
        watch.open_ended();
    }
    let switching = resp.status() == StatusCode::SWITCHING_PROTOCOLS;
    if switching {
        let Some(handshake) = handshake else {
            return Err(UpstreamError::UnaskedUpgrade {
                upstream: upstream.config.name.clone(),
            });
        };
        handshake
            .accepts(resp.headers())
            .map_err(|reason| UpstreamError::BadUpgrade {
                upstream: upstream.config.name.clone(),
                reason,
            })?;
        handshake.spawn(hyper::upgrade::on(&mut resp), fwd.token_left);
    }
    // An HTTP/1.1 client gets trailers only in a chunked body that declared
    // them in `Trailer` (which hop-by-hop cleaning removes): declared again
    // after it.
    let declared = (trailers && parts.version != Version::HTTP_2)
        .then(|| headers::trailer_declaration(resp.headers()))
        .flatten();
    headers::clean_response(resp.headers_mut(), switching);
    if let Some(declared) = declared {
        // Only a chunked body has trailers, even when its length is known.
        let headers = resp.headers_mut();
        headers.remove(http::header::CONTENT_LENGTH);
        headers.insert(
            http::header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        headers.insert(http::header::TRAILER, declared);
    }
    // The client gets its own protocol version, whatever the upstream spoke
    // (an HTTP/1.0 upstream must not turn the client's keep-alive off).
    *resp.version_mut() = match parts.version {
        Version::HTTP_2 => Version::HTTP_2,
        _ => Version::HTTP_11,
    };
    Ok(resp.map(Either::Left))
}

/// Why the upstream exchange failed, with the blame where it belongs: a
/// client body that broke or stalled is the client's fault.
fn send_failure(upstream: &Upstream, watch: Option<&BodyWatch>, e: SendError) -> UpstreamError {
    let name = || upstream.config.name.clone();
    match (watch.map(BodyWatch::state), e) {
        (Some(BodyState::Malformed), _) => UpstreamError::MalformedBody,
        (Some(BodyState::TimedOut), _) => UpstreamError::BodyTimeout,
        (_, SendError::Saturated(_)) => UpstreamError::Saturated { upstream: name() },
        (_, e @ SendError::Connect(_)) => UpstreamError::Connect {
            upstream: name(),
            cause: e.to_string(),
        },
        (_, e) => UpstreamError::Protocol {
            upstream: name(),
            cause: e.to_string(),
        },
    }
}

/// Refuses what the upstream's protocol cannot carry: gRPC needs HTTP/2
/// (its status travels in trailers), a WebSocket upgrade needs HTTP/1.1.
fn check_protocol(
    upstream: &Upstream,
    req: &Request<Incoming>,
    fwd: &Forwarded,
    h2: bool,
) -> Result<(), UpstreamError> {
    let reason = match h2 {
        false if headers::is_grpc(req.headers()) => "gRPC needs an upstream with protocol \"h2\"",
        true if fwd.policy.upgrade.is_some() => {
            "a WebSocket upgrade needs an upstream with protocol \"http1\""
        }
        _ => return Ok(()),
    };
    Err(UpstreamError::WrongProtocol {
        upstream: upstream.config.name.clone(),
        reason,
    })
}

/// The absolute URI an HTTP/2 request carries: the upstream's scheme, the
/// authority the Host field would have named, and the origin-form target.
fn absolute(
    upstream: &Upstream,
    target: Uri,
    host: Option<HeaderValue>,
) -> Result<Uri, UpstreamError> {
    let authority = host
        .and_then(|h| http::uri::Authority::try_from(h.as_bytes()).ok())
        .unwrap_or_else(|| upstream.config.authority.clone());
    let scheme = match upstream.config.scheme {
        crate::config::Scheme::Http => http::uri::Scheme::HTTP,
        crate::config::Scheme::Https => http::uri::Scheme::HTTPS,
    };
    let mut parts = target.into_parts();
    parts.scheme = Some(scheme);
    parts.authority = Some(authority);
    Uri::from_parts(parts).map_err(|_| UpstreamError::BadTarget {
        upstream: upstream.config.name.clone(),
    })
}

fn upstream_uri(
    upstream: &Upstream,
    fwd: &Forwarded,
    query: Option<&str>,
) -> Result<Uri, UpstreamError> {
    let mut path = fwd.path;
    if let Some(prefix) = fwd.strip_prefix {
        let head_is_prefix = |len: usize| {
            path.get(..len)
                .is_some_and(|head| match fwd.case_insensitive {
                    false => head == prefix,
                    true => head.eq_ignore_ascii_case(prefix),
                })
        };
        if path.len() == prefix.len() && head_is_prefix(prefix.len()) {
            path = "/";
        } else if path.len() > prefix.len()
            && path.as_bytes()[prefix.len()] == b'/'
            && head_is_prefix(prefix.len())
        {
            path = &path[prefix.len()..];
        }
    }
    let stripped;
    let query = match query {
        Some(q) if fwd.strip_authorization => {
            stripped = crate::auth::bearer::without_access_token(q);
            stripped.as_deref()
        }
        q => q,
    };
    let base = upstream.config.base_path.as_bytes();
    let pq = match query {
        Some(q) => crate::arena::concat(&[base, path.as_bytes(), b"?", q.as_bytes()]),
        None => crate::arena::concat(&[base, path.as_bytes()]),
    };
    // Origin form: the connection already goes to the upstream.
    let pq = PathAndQuery::from_maybe_shared(pq).map_err(|_| UpstreamError::BadTarget {
        upstream: upstream.config.name.clone(),
    })?;
    Ok(Uri::from(pq))
}

fn add_forwarding_headers(headers: &mut http::HeaderMap, upstream: &Upstream, fwd: &Forwarded) {
    let host = match (&fwd.original_host, upstream.config.preserve_host) {
        (Some(original), true) => original.clone(),
        _ => upstream.host_header.clone(),
    };
    headers.insert(HOST, host);
    // A trusted proxy's own X-Real-IP passes as it came.
    let real_ip = (!(fwd.peer_trusted && headers.contains_key(&X_REAL_IP)))
        .then(|| client_address(headers, fwd.peer_ip, fwd.trusted_proxies, fwd.peer_trusted));
    let xff = match forwarded_for_chain(headers, fwd) {
        Some(chain) => HeaderValue::from_str(&chain).unwrap_or_else(|_| fwd.peer_ip.clone()),
        None => fwd.peer_ip.clone(),
    };
    headers.insert(&X_FORWARDED_FOR, xff);
    if let Some(ip) = real_ip {
        headers.insert(&X_REAL_IP, ip);
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

/// The incoming `X-Forwarded-For` chain with the peer appended, when the
/// peer is a trusted proxy that sent one; `None` means the peer alone.
fn forwarded_for_chain(headers: &http::HeaderMap, fwd: &Forwarded) -> Option<String> {
    if !fwd.peer_trusted {
        return None;
    }
    let incoming = headers.get_all(&X_FORWARDED_FOR).iter();
    let mut chain = String::new();
    for value in incoming.filter_map(|v| v.to_str().ok()) {
        chain.push_str(value);
        chain.push_str(", ");
    }
    if chain.is_empty() {
        return None;
    }
    chain.push_str(fwd.peer_ip.to_str().unwrap_or_default());
    Some(chain)
}

/// Whether `ip` (canonical: an IPv4-mapped IPv6 address as IPv4) is in
/// one of the trusted proxy networks.
pub fn is_trusted(trusted_proxies: &[IpNet], ip: std::net::IpAddr) -> bool {
    trusted_proxies.iter().any(|net| net.contains(&ip))
}

/// The client's address, as the upstream learns it in `X-Real-IP` (and as
/// rate limits count it): the peer; or, when the peer is a trusted proxy,
/// its own `X-Real-IP`, else the nearest address in its `X-Forwarded-For`
/// that is not itself a trusted proxy, else the peer. Reads the request's
/// headers as they arrived.
pub fn client_address(
    headers: &http::HeaderMap,
    peer_ip: &HeaderValue,
    trusted_proxies: &[IpNet],
    peer_trusted: bool,
) -> HeaderValue {
    if !peer_trusted {
        return peer_ip.clone();
    }
    if let Some(stated) = headers.get(&X_REAL_IP) {
        return stated.clone();
    }
    // Nearest first: the last field line, read from its end.
    let chain = headers
        .get_all(&X_FORWARDED_FOR)
        .iter()
        .rev()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.rsplit(','))
        .map(str::trim);
    for hop in chain {
        let Ok(ip) = hop.parse::<std::net::IpAddr>() else {
            break;
        };
        let ip = ip.to_canonical();
        if !is_trusted(trusted_proxies, ip) {
            return HeaderValue::from_str(&ip.to_string()).unwrap_or_else(|_| peer_ip.clone());
        }
    }
    peer_ip.clone()
}

/// Shared so that runtime snapshots can be cheaply cloned.
pub type SharedUpstream = Arc<Upstream>;

#[cfg(test)]
mod tests {
    use super::*;

    /// What `X-Real-IP` says and rate limits count, per peer and headers.
    #[test]
    fn client_address_table() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let peer = HeaderValue::from_static("10.0.0.1");
        type Headers = &'static [(&'static str, &'static str)];
        let cases: &[(Headers, bool, &str)] = &[
            (&[], false, "10.0.0.1"),
            (&[("x-forwarded-for", "203.0.113.9")], false, "10.0.0.1"),
            (&[("x-real-ip", "203.0.113.9")], false, "10.0.0.1"),
            (&[], true, "10.0.0.1"),
            (&[("x-real-ip", "198.51.100.1")], true, "198.51.100.1"),
            (
                &[("x-forwarded-for", "203.0.113.9, 10.0.0.5")],
                true,
                "203.0.113.9",
            ),
            (
                &[("x-forwarded-for", "192.0.2.1, 203.0.113.9")],
                true,
                "203.0.113.9",
            ),
            // Two field lines are one list, the last line nearest.
            (
                &[
                    ("x-forwarded-for", "192.0.2.1"),
                    ("x-forwarded-for", "203.0.113.9, 10.1.1.1"),
                ],
                true,
                "203.0.113.9",
            ),
            (
                &[
                    ("x-forwarded-for", "192.0.2.1"),
                    ("x-forwarded-for", "10.1.1.1"),
                ],
                true,
                "192.0.2.1",
            ),
            (
                &[("x-forwarded-for", "::ffff:203.0.113.9")],
                true,
                "203.0.113.9",
            ),
            // Garbage nearer than any untrusted address: the peer.
            (
                &[("x-forwarded-for", "203.0.113.9, junk")],
                true,
                "10.0.0.1",
            ),
            (&[("x-forwarded-for", "10.2.2.2")], true, "10.0.0.1"),
        ];
        for (i, (headers, peer_trusted, want)) in cases.iter().enumerate() {
            let mut map = http::HeaderMap::new();
            for (name, value) in headers.iter() {
                map.append(
                    HeaderName::from_static(name),
                    HeaderValue::from_static(value),
                );
            }
            let got = client_address(&map, &peer, &trusted, *peer_trusted);
            assert_eq!(got, *want, "case {i}");
        }
    }
}
