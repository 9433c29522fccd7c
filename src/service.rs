//! The request path, top to bottom in one place: target, route, credential,
//! verification, policy, rate limit, forward. Every refusal is a
//! [`Rejection`] rendered by `error`; nothing here returns an error to
//! hyper. One access-log event per request.

use http::header::{HeaderName, HOST, TRANSFER_ENCODING};
use http::{HeaderValue, Method, Request, Response, Version};
use http_body_util::Either;
use hyper::body::Incoming;
use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use crate::access_log;
use crate::arena;
use crate::auth::bearer::{self, Credential};
use crate::auth::binding::{self, Evidence};
use crate::auth::dpop::DPOP_NONCE;
use crate::auth::AuthError;
use crate::auth::Principal;
use crate::config::{AuthMode, RouteConfig};
use crate::error::{Challenge, DpopChallenge, Rejection};
use crate::evidence;
use crate::metadata::{self, ResourceMetadata};
use crate::policy;
use crate::proxy::headers::{is_grpc, sane_request_id, websocket_upgrade, RequestPolicy};
use crate::proxy::{self, Forwarded, ResponseBody, UpstreamError, X_REQUEST_ID};
use crate::ratelimit::{Caller, Verdict};
use crate::route::Match;
use crate::runtime::{CompiledRoute, Runtime};
use crate::target::{normalize_host, normalize_path, TargetError};
use crate::trace::RequestSpan;
use crate::upstream_auth::{CallerToken, TokenSource};

/// What the gateway knows about the connection a request came on.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    pub tls: bool,
    /// The peer's address as an `X-Forwarded-For` element, made once per
    /// connection.
    pub peer_ip: HeaderValue,
    /// The thumbprint of the client certificate of this TLS connection's
    /// handshake (base64url SHA-256 of its DER), if one was presented.
    pub client_cert: Option<Arc<str>>,
}

impl ConnInfo {
    pub fn new(peer: SocketAddr, tls: bool) -> ConnInfo {
        let ip = peer.ip().to_canonical().to_string();
        ConnInfo {
            peer,
            tls,
            peer_ip: HeaderValue::from_str(&ip).expect("an IP address is a header value"),
            client_cert: None,
        }
    }
}

/// Handles one request against one runtime snapshot.
pub async fn handle(
    rt: &Runtime,
    conn: &ConnInfo,
    req: Request<Incoming>,
) -> Response<ResponseBody> {
    let start = Instant::now();
    let request_id = match req.headers().get(&X_REQUEST_ID) {
        Some(v) if sane_request_id(v) => v.clone(),
        _ => new_request_id(),
    };
    let method = req.method().clone();
    let grpc = is_grpc(req.headers());
    let mut trace = Trace::default();
    let span = rt.tracing.begin(req.headers());
    let running = pipeline(rt, conn, req, request_id.clone(), &mut trace, &span);
    let result = span.instrument(running).await;
    let (mut resp, outcome) = match result {
        Ok(mut resp) => {
            if let (true, Some(d)) = (trace.used_dpop, &rt.auth.dpop) {
                if d.config.require_nonce {
                    resp.headers_mut().insert(&DPOP_NONCE, d.nonce());
                }
            }
            (resp, trace.answered.unwrap_or("forwarded"))
        }
        Err(rejection) => {
            rejection.log();
            let outcome = rejection.outcome();
            let nonce = match (&rejection, &rt.auth.dpop) {
                (Rejection::Auth(AuthError::UseDpopNonce), Some(d)) => Some(d.nonce()),
                _ => None,
            };
            let challenge = Challenge {
                realm: &rt.config.server.realm,
                resource_metadata: trace
                    .route
                    .and_then(|r| r.resource.as_deref())
                    .map(|m| m.config.metadata_url.as_str()),
                dpop: rt.auth.dpop.as_ref().map(|d| DpopChallenge {
                    algs: &d.algs,
                    route: trace.route.map(|r| r.config.token_binding),
                    used_dpop: trace.used_dpop,
                    nonce: nonce.as_ref(),
                }),
            };
            let resp = match grpc {
                false => rejection.into_response(&challenge),
                true => rejection.into_grpc_response(&challenge),
            };
            (resp.map(Either::Right), outcome)
        }
    };
    resp.headers_mut()
        .entry(&X_REQUEST_ID)
        .or_insert(request_id.clone());
    let elapsed = start.elapsed();
    rt.route_metrics(trace.route).record(outcome, elapsed);
    let route = trace.route.map(|r| r.config.path.as_str());
    span.finish(route, &method, resp.status().as_u16(), outcome);
    access_log::record(&access_log::Entry {
        method: &method,
        route,
        subject: trace
            .principal
            .as_deref()
            .and_then(|p| p.subject.as_deref().or(p.client_id.as_deref())),
        status: resp.status().as_u16(),
        outcome,
        latency_us: elapsed.as_micros() as u64,
        request_id: &request_id,
        peer: conn.peer,
    });
    resp
}

/// What the access log reports besides status and outcome.
#[derive(Default)]
struct Trace<'a> {
    /// The matched route.
    route: Option<&'a CompiledRoute>,
    /// The verified identity, for its `sub` (else `client_id`).
    principal: Option<Arc<Principal>>,
    /// The outcome of an answer the gateway gave itself without an error
    /// (resource metadata); `None`: forwarded.
    answered: Option<&'static str>,
    /// The credential used the DPoP scheme (with `[dpop]`).
    used_dpop: bool,
}

async fn pipeline<'a>(
    rt: &'a Runtime,
    conn: &ConnInfo,
    req: Request<Incoming>,
    request_id: HeaderValue,
    trace: &mut Trace<'a>,
    span: &RequestSpan,
) -> Result<Response<ResponseBody>, Rejection> {
    check_framing(&req)?;
    let (host, original_host) = request_host(&req).map_err(Rejection::BadTarget)?;
    let path = normalize_path(req.uri().path()).map_err(Rejection::BadTarget)?;
    if let Some(found) = metadata::find(&rt.resources, host.as_deref(), &path, req.uri().query()) {
        trace.answered = Some("metadata");
        return resource_metadata(found, &req);
    }
    let compiled = match rt.routes.find(host.as_deref(), &path, req.method()) {
        Match::Found(i) => &rt.compiled[i],
        Match::NotFound => return Err(Rejection::NotFound),
        Match::MethodNotAllowed(allow) => return Err(Rejection::MethodNotAllowed(allow)),
    };
    let route = &compiled.config;
    trace.route = Some(compiled);
    let server = &rt.config.server;
    let peer_trusted = !server.trusted_proxies.is_empty()
        && proxy::is_trusted(&server.trusted_proxies, conn.peer.ip().to_canonical());
    trace.used_dpop = rt.auth.dpop.is_some() && bearer::uses_dpop_scheme(req.headers());
    let sender = Sender {
        conn,
        peer_trusted,
        host: original_host.as_ref(),
        path: &path,
    };
    let verified = authenticate(rt, compiled, &req, &sender).await?;
    let principal = verified.as_ref().map(|v| v.principal.clone());
    // Known from here on, also when the scope check refuses the request.
    trace.principal = principal.clone();
    if let Some(p) = &principal {
        if !policy::allows(route, &p.scopes) {
            return Err(AuthError::InsufficientScope(compiled.challenge.clone()).into());
        }
    }
    let rate = rate_limit(rt, route, verified.as_ref(), &req, &sender).await;
    if let Some(refused) = rate.as_ref().filter(|v| !v.allowed) {
        return Err(Rejection::RateLimited(refused.clone()));
    }
    let authorization = match &compiled.credentials {
        None => None,
        // Boxed: only routes with upstream credentials wait here, and the
        // token request's state would otherwise make every request's
        // future larger (3.9 KB of its 4.8 KB), which hyper moves into place.
        Some(source) => Some(Box::pin(upstream_token(compiled, source, verified.as_ref())).await?),
    };
    let identity = principal
        .as_deref()
        .map(|p| identity_headers(rt, p))
        .unwrap_or_default();
    let upgrade = (req.version() == Version::HTTP_11 && req.method() == Method::GET)
        .then(|| websocket_upgrade(req.headers()))
        .flatten();
    let path = path.into_owned();
    let (upstream_trace, call) = span.upstream_call(&compiled.upstream.config.name);
    let fwd = Forwarded {
        peer: conn.peer,
        peer_ip: &conn.peer_ip,
        tls: conn.tls,
        original_host,
        path: &path,
        strip_prefix: route.strip_prefix.as_deref(),
        case_insensitive: !route.case_sensitive,
        request_id,
        trusted_proxies: &server.trusted_proxies,
        peer_trusted,
        identity,
        token_left: principal.as_deref().map(|p| rt.clock.until(p.expires_at)),
        policy: RequestPolicy {
            identity_headers: &rt.identity_headers,
            allow_underscore_headers: server.allow_underscore_headers,
            peer_trusted,
            upgrade,
        },
        // The caller's credential never reaches an upstream with its own token.
        strip_authorization: rt.config.forward.strip_authorization || authorization.is_some(),
        authorization,
        body_read_timeout: server.body_read_timeout,
        trace: upstream_trace,
    };
    // Boxed: the forwarding future is large, and hyper moves the service
    // future into place; a small outer future keeps those moves cheap.
    let forwarded = Box::pin(proxy::forward(&compiled.upstream, req, fwd)).await;
    if let Some(call) = call {
        call.answered(forwarded.as_ref().ok().map(|r| r.status().as_u16()));
    }
    let mut resp = forwarded?;
    if let Some(verdict) = &rate {
        verdict.add_to(resp.headers_mut());
    }
    Ok(resp)
}

/// Counts the request against the route's rate limit, if it has one
/// (extensions section 12): only requests that passed authentication and
/// scopes get here. The key comes from the verified token, or the client
/// address (after `trusted_proxies`) when the request cannot give one.
async fn rate_limit(
    rt: &Runtime,
    route: &RouteConfig,
    verified: Option<&Verified<'_>>,
    req: &Request<Incoming>,
    sender: &Sender<'_>,
) -> Option<Verdict> {
    let limit = rt.rate_limits.get(route.rate_limit?)?;
    let server = &rt.config.server;
    let ip = proxy::client_address(
        req.headers(),
        &sender.conn.peer_ip,
        &server.trusted_proxies,
        sender.peer_trusted,
    );
    let principal = verified.map(|v| &*v.principal);
    let caller = Caller {
        issuer: principal.map(|p| rt.config.issuers[p.issuer].name.as_str()),
        subject: principal.and_then(|p| p.subject.as_deref()),
        client_id: principal.and_then(|p| p.client_id.as_deref()),
        token: verified.map(|v| v.token),
        ip: ip.as_bytes(),
    };
    Some(
        limit
            .check(&caller, rt.fleet.redis.as_deref(), &rt.clock)
            .await,
    )
}

/// The upstream's own `Authorization` (extensions section 14): the
/// gateway's client-credentials token, or the token exchanged for the
/// caller's verified one.
async fn upstream_token(
    compiled: &CompiledRoute,
    source: &TokenSource,
    verified: Option<&Verified<'_>>,
) -> Result<HeaderValue, UpstreamError> {
    let caller = verified.map(|v| CallerToken {
        token: v.token,
        expires_at: v.principal.expires_at,
    });
    source
        .authorization(caller)
        .await
        .map_err(|cause| UpstreamError::Credentials {
            upstream: compiled.upstream.config.name.clone(),
            cause,
        })
}

/// What the request shows about its sender, for bound tokens.
struct Sender<'a> {
    conn: &'a ConnInfo,
    peer_trusted: bool,
    /// The `Host` (or h2 `:authority`) as sent.
    host: Option<&'a HeaderValue>,
    /// The normalised path.
    path: &'a str,
}

/// A verified token: the identity it proves, and the token itself (for a
/// rate limit keyed by it; never logged or kept).
struct Verified<'r> {
    principal: Arc<Principal>,
    token: &'r str,
}

/// Applies the route's `auth` mode: `none` forwards without a look at the
/// credential; `optional` forwards anonymously without one but rejects a bad
/// one exactly like `required`. A DPoP credential's proof is checked before
/// the token (it needs no network), and the token's binding and the route's
/// `token_binding` after it, on every request, cached identity or not. The
/// caller checks the verified principal against the route's scopes.
async fn authenticate<'r>(
    rt: &Runtime,
    compiled: &CompiledRoute,
    req: &'r Request<Incoming>,
    sender: &Sender<'_>,
) -> Result<Option<Verified<'r>>, AuthError> {
    let route = &compiled.config;
    if route.auth == AuthMode::None {
        return Ok(None);
    }
    let dpop = rt.auth.dpop.as_ref();
    let credential = bearer::extract_with(
        req.headers(),
        req.uri().query(),
        rt.config.server.max_token_bytes,
        dpop.is_some(),
    )?;
    let (token, used_dpop) = match (credential, route.auth) {
        (Credential::Bearer(token), _) => (token, false),
        (Credential::Dpop(token), _) => (token, true),
        (Credential::None, AuthMode::Optional) => return Ok(None),
        (Credential::None, _) => return Err(AuthError::MissingToken),
    };
    let proof = match dpop.filter(|_| used_dpop) {
        Some(d) => {
            let target = evidence::target_uri(
                sender.conn.tls,
                req.headers(),
                sender.peer_trusted,
                sender.host,
                sender.path,
            );
            Some(d.verify(req.headers(), req.method(), &target, token)?)
        }
        None => None,
    };
    let principal = rt.auth.authenticate(token, &route.issuers).await?;
    let issuer = &rt.config.issuers[principal.issuer].name;
    if rt.revocations.revoked(&principal, issuer, rt.clock.now()) {
        return Err(AuthError::InvalidToken("the token has been revoked"));
    }
    let bound_to_cert = principal.binding.as_ref().is_some_and(|b| b.x5t.is_some());
    let cert = bound_to_cert
        .then(|| {
            evidence::client_cert(
                sender.conn.client_cert.as_deref(),
                req.headers(),
                rt.config.server.client_certs.header.as_ref(),
                sender.peer_trusted,
            )
        })
        .flatten();
    let shown = Evidence {
        dpop_on: dpop.is_some(),
        used_dpop,
        proof_jkt: proof.as_ref().map(|p| p.thumbprint.as_str()),
        cert: cert.as_deref(),
    };
    binding::check(principal.binding.as_ref(), &shown, route.token_binding)?;
    if let Some(resource) = &compiled.resource {
        let identifier = &resource.config.resource;
        if !principal.audiences.iter().any(|a| a == identifier) {
            return Err(AuthError::InvalidToken(
                "token audience does not include the resource",
            ));
        }
    }
    if let (Some(d), Some(proof)) = (dpop, &proof) {
        d.remember(proof).await?;
    }
    Ok(Some(Verified { principal, token }))
}

/// `GET`/`HEAD` of a resource's metadata URL (RFC 9728), before routing and
/// without authentication; 405 for another method. Other paths under the
/// well-known prefix are routed like any path.
fn resource_metadata(
    found: &ResourceMetadata,
    req: &Request<Incoming>,
) -> Result<Response<ResponseBody>, Rejection> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return Err(Rejection::MethodNotAllowed(vec![Method::GET, Method::HEAD]));
    }
    Ok(found.response().map(Either::Right))
}

/// Refuses a transfer coding other than `chunked` (RFC 9112 section 6.1:
/// 501). hyper has already decoded the final `chunked`; any other coding
/// would be silently lost on the way to the upstream.
fn check_framing(req: &Request<Incoming>) -> Result<(), Rejection> {
    let mut codings = req.headers().get_all(TRANSFER_ENCODING).iter();
    let only_chunked = codings.all(|v| {
        v.to_str().is_ok_and(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .all(|c| c.eq_ignore_ascii_case("chunked"))
        })
    });
    if only_chunked {
        Ok(())
    } else {
        Err(Rejection::UnsupportedTransferCoding)
    }
}

/// The `forward.claims` headers for a principal, from the values rendered
/// when it was verified: absent claims and values that cannot be a header
/// are not sent.
fn identity_headers(rt: &Runtime, p: &Principal) -> Vec<(HeaderName, HeaderValue)> {
    rt.config
        .forward
        .claims
        .iter()
        .filter_map(|(claim, header)| Some((header.clone(), p.forwarded_value(claim)?.clone())))
        .collect()
}

/// The host to match routes on (lower case, no port) and the value to pass
/// on as `X-Forwarded-Host`. Absolute-form targets must name the Host.
fn request_host(
    req: &Request<Incoming>,
) -> Result<(Option<Cow<'_, str>>, Option<HeaderValue>), TargetError> {
    let mut hosts = req.headers().get_all(HOST).iter();
    let host_header = hosts.next();
    if hosts.next().is_some() {
        return Err(TargetError::BadHost);
    }
    let uri = req.uri();
    let authority = uri.authority();
    // The host's text, borrowed from the request, and the value passed on.
    let named = if req.version() == Version::HTTP_2 {
        match (authority, host_header) {
            (Some(a), _) => {
                let value = HeaderValue::from_str(a.as_str()).map_err(|_| TargetError::BadHost)?;
                Some((a.as_str(), value))
            }
            (None, h) => h.map(host_text).transpose()?,
        }
    } else {
        match (uri.scheme(), authority, host_header) {
            // RFC 9112 section 3.2: a server MUST answer 400 to an HTTP/1.1
            // request without Host (HTTP/1.0 predates the requirement).
            (None, None, None) if req.version() == Version::HTTP_11 => {
                return Err(TargetError::MissingHost)
            }
            (None, None, h) => h.map(host_text).transpose()?,
            (Some(_), Some(a), Some(h))
                if a.as_str().eq_ignore_ascii_case(h.to_str().unwrap_or("")) =>
            {
                Some(host_text(h)?)
            }
            (Some(_), Some(_), _) => return Err(TargetError::AuthorityMismatch),
            _ => return Err(TargetError::NotOriginForm),
        }
    };
    let Some((text, original)) = named else {
        return Ok((None, None));
    };
    Ok((Some(normalize_host(text)?), Some(original)))
}

/// A Host header's text (borrowed) and the header itself.
fn host_text(h: &HeaderValue) -> Result<(&str, HeaderValue), TargetError> {
    let text = h.to_str().map_err(|_| TargetError::BadHost)?;
    Ok((text, h.clone()))
}

/// 128 random bits as 32 lower-case hex digits, carved (see [`arena`]).
fn new_request_id() -> HeaderValue {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let id: u128 = rand::random();
    let mut text = [0u8; 32];
    for (i, digit) in text.iter_mut().enumerate() {
        *digit = HEX[((id >> (124 - 4 * i)) & 0xf) as usize];
    }
    HeaderValue::from_maybe_shared(arena::concat(&[&text]))
        .unwrap_or_else(|_| HeaderValue::from_static("-"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_request_id_is_hex_and_carved_from_one_block() {
        let a = new_request_id();
        let b = new_request_id();
        for id in [&a, &b] {
            assert_eq!(id.len(), 32);
            assert!(id.as_bytes().iter().all(|c| c.is_ascii_hexdigit()));
        }
        assert_ne!(a, b);
        // No allocation of its own: the second id follows the first in the
        // thread's block.
        assert_eq!(
            a.as_bytes().as_ptr().wrapping_add(32),
            b.as_bytes().as_ptr()
        );
    }
}
