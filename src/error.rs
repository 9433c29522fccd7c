//! The one place where a refused or failed request becomes an HTTP answer:
//! status, `WWW-Authenticate` challenge (RFC 6750 section 3), JSON body,
//! headers, the outcome label used in logs and metrics, the log level (by
//! blame: client faults at debug, upstream faults at warn, ours at error),
//! and the one log line of the failure. Phases report what happened
//! ([`AuthError`], [`UpstreamError`], [`TargetError`], a refusing rate-limit
//! [`Verdict`]); one exhaustive match in `Rejection::answer` maps every
//! variant.
//!
//! Every description is a `&'static str` from a fixed list, so nothing a
//! client sent (a token, a claim, a kid, an alg) can be echoed back.

use bytes::Bytes;
use http::header::{
    HeaderName, HeaderValue, ALLOW, CACHE_CONTROL, CONNECTION, CONTENT_TYPE, RETRY_AFTER,
    WWW_AUTHENTICATE,
};
use http::{Method, Response, StatusCode};
use http_body_util::Full;

use crate::auth::dpop::DPOP_NONCE;
use crate::auth::error::{AuthError, IntrospectionFailure};
use crate::config::TokenBinding;
use crate::proxy::error::UpstreamError;
use crate::ratelimit::Verdict;
use crate::target::TargetError;
use crate::upstream_auth::TokenFailure;

static GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");
static GRPC_MESSAGE: HeaderName = HeaderName::from_static("grpc-message");

/// `Retry-After` while an issuer cannot be consulted.
const RETRY_ISSUER_S: u32 = 5;
/// `Retry-After` while an upstream's connections are all busy.
const RETRY_UPSTREAM_S: u32 = 1;
/// The description of every answer given while an issuer cannot be consulted.
const ISSUER_UNAVAILABLE: &str = "the token issuer cannot be consulted";
/// The description of every 503 while an upstream's token endpoint cannot
/// be consulted.
const TOKEN_ENDPOINT_UNAVAILABLE: &str = "the upstream's token endpoint cannot be consulted";

/// Why the gateway answers instead of the upstream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("bad request target: {0}")]
    BadTarget(TargetError),
    #[error("no route")]
    NotFound,
    #[error("method not allowed")]
    MethodNotAllowed(Vec<Method>),
    /// A transfer coding other than `chunked` (RFC 9112 section 6.1).
    #[error("unsupported transfer coding")]
    UnsupportedTransferCoding,
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    /// The route's rate limit is exhausted for this caller (extensions
    /// section 12); the verdict carries the headers that say so.
    #[error("rate limited")]
    RateLimited(Verdict),
}

/// What a challenge says besides the refusal: the realm, for a route that
/// protects a resource its metadata URL (RFC 9728 section 5.1, sent with
/// every 401 and 403 challenge), and with `[dpop]` what decides the DPoP
/// challenge.
#[derive(Debug, Clone, Copy, Default)]
pub struct Challenge<'a> {
    pub realm: &'a str,
    pub resource_metadata: Option<&'a str>,
    pub dpop: Option<DpopChallenge<'a>>,
}

/// The DPoP side of challenges (extensions section 9).
#[derive(Debug, Clone, Copy)]
pub struct DpopChallenge<'a> {
    /// `dpop.algorithms`, space-separated.
    pub algs: &'a str,
    /// The matched route's `token_binding`, if a route matched.
    pub route: Option<TokenBinding>,
    /// The request's credential used the DPoP scheme.
    pub used_dpop: bool,
    /// A fresh server nonce, sent as `DPoP-Nonce` with `use_dpop_nonce`.
    pub nonce: Option<&'a HeaderValue>,
}

/// Who is to blame, which decides the log level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blame {
    Client,
    Upstream,
    Gateway,
}

/// The `WWW-Authenticate` challenge an answer carries (RFC 6750 section 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme<'a> {
    None,
    /// `Bearer realm=".."`: no credential was sent.
    Plain,
    /// With `error` and `error_description`.
    Error,
    /// With `error`, `error_description` and the route's `scope`.
    Scope(&'a str),
}

/// A header beyond the fixed ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Extra<'a> {
    None,
    Allow(&'a [Method]),
    RetryAfter(u32),
    /// The exchange cannot continue on this connection: a failed upgrade,
    /// or a body left half-read.
    Close,
    /// `DPoP-Nonce` with the fresh nonce of the context.
    DpopNonce,
    /// `Retry-After`, `RateLimit-Policy` and `RateLimit`.
    RateLimited(&'a Verdict),
}

/// Everything an answer is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Answer<'a> {
    status: StatusCode,
    /// The `outcome` label of logs and metrics.
    outcome: &'static str,
    blame: Blame,
    /// The JSON body's `error`; none for a missing token.
    code: Option<&'static str>,
    description: &'static str,
    challenge: Scheme<'a>,
    extra: Extra<'a>,
}

impl<'a> Answer<'a> {
    fn new(
        status: u16,
        outcome: &'static str,
        blame: Blame,
        code: &'static str,
        description: &'static str,
    ) -> Self {
        Answer {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            outcome,
            blame,
            code: Some(code),
            description,
            challenge: Scheme::None,
            extra: Extra::None,
        }
    }

    fn challenge(self, challenge: Scheme<'a>) -> Self {
        Answer { challenge, ..self }
    }

    fn extra(self, extra: Extra<'a>) -> Self {
        Answer { extra, ..self }
    }

    /// 503 `temporarily_unavailable` with `Retry-After`.
    fn unavailable(blame: Blame, description: &'static str, retry_after_s: u32) -> Self {
        Answer::new(
            503,
            "unavailable",
            blame,
            "temporarily_unavailable",
            description,
        )
        .extra(Extra::RetryAfter(retry_after_s))
    }

    /// 502 `bad_gateway`.
    fn bad_gateway(blame: Blame, description: &'static str) -> Self {
        Answer::new(502, "upstream_error", blame, "bad_gateway", description)
    }
}

impl Rejection {
    /// Every variant's answer: the one table of the gateway's refusals.
    fn answer(&self) -> Answer<'_> {
        use Blame::Client;
        match self {
            Rejection::BadTarget(e) => Answer::new(
                400,
                "invalid_request",
                Client,
                "invalid_request",
                e.description(),
            ),
            Rejection::NotFound => Answer::new(
                404,
                "not_found",
                Client,
                "not_found",
                "no route matches the request path",
            ),
            Rejection::MethodNotAllowed(methods) => Answer::new(
                405,
                "method_not_allowed",
                Client,
                "method_not_allowed",
                "the route does not allow this method",
            )
            .extra(Extra::Allow(methods)),
            Rejection::UnsupportedTransferCoding => Answer::new(
                501,
                "invalid_request",
                Client,
                "not_implemented",
                "only the chunked transfer coding is supported",
            )
            .extra(Extra::Close),
            Rejection::Auth(e) => auth_answer(e),
            Rejection::Upstream(e) => upstream_answer(e),
            Rejection::RateLimited(verdict) => Answer::new(
                429,
                "rate_limited",
                Client,
                "rate_limited",
                "the rate limit of this route is exhausted; retry later",
            )
            .extra(Extra::RateLimited(verdict)),
        }
    }

    /// The outcome label of logs and metrics.
    pub fn outcome(&self) -> &'static str {
        self.answer().outcome
    }

    pub fn blame(&self) -> Blame {
        self.answer().blame
    }

    pub fn status(&self) -> StatusCode {
        self.answer().status
    }

    /// The failure's one log line, at the level its blame decides.
    pub fn log(&self) {
        match self.blame() {
            Blame::Client => tracing::debug!(reason = %self, "request refused"),
            Blame::Upstream => tracing::warn!(reason = %self, "request failed"),
            Blame::Gateway => tracing::error!(reason = %self, "request failed"),
        }
    }

    /// Renders the answer. The realm and the metadata URL are validated at
    /// load to need no escaping.
    pub fn into_response(self, context: &Challenge) -> Response<Full<Bytes>> {
        let answer = self.answer();
        let body = match answer.code {
            Some(code) => {
                serde_json::json!({ "error": code, "error_description": answer.description })
            }
            None => serde_json::json!({ "error_description": answer.description }),
        };
        let mut resp = Response::new(Full::new(Bytes::from(body.to_string())));
        *resp.status_mut() = answer.status;
        let headers = resp.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        for challenge in challenges(&answer, context) {
            if let Ok(v) = HeaderValue::from_str(&challenge) {
                headers.append(WWW_AUTHENTICATE, v);
            }
        }
        match answer.extra {
            Extra::None => {}
            Extra::Allow(methods) => {
                let allow: Vec<&str> = methods.iter().map(Method::as_str).collect();
                if let Ok(v) = HeaderValue::from_str(&allow.join(", ")) {
                    headers.insert(ALLOW, v);
                }
            }
            Extra::RetryAfter(seconds) => {
                headers.insert(RETRY_AFTER, HeaderValue::from(seconds));
            }
            Extra::Close => {
                headers.insert(CONNECTION, HeaderValue::from_static("close"));
            }
            Extra::DpopNonce => {
                if let Some(nonce) = context.dpop.and_then(|d| d.nonce) {
                    headers.insert(&DPOP_NONCE, nonce.clone());
                }
            }
            Extra::RateLimited(verdict) => {
                headers.insert(RETRY_AFTER, HeaderValue::from(verdict.retry_after_s));
                verdict.add_to(headers);
            }
        }
        resp
    }

    /// Renders the answer for a gRPC client (extensions section 13): a
    /// trailers-only answer, HTTP 200 with `grpc-status` and the
    /// percent-encoded description in `grpc-message`, no body. The headers
    /// of the HTTP answer that a client acts on (`WWW-Authenticate`,
    /// `Retry-After`, the rate-limit fields, `DPoP-Nonce`) are kept.
    pub fn into_grpc_response(self, context: &Challenge) -> Response<Full<Bytes>> {
        let description = self.answer().description;
        let http = self.into_response(context);
        let code = grpc_status(http.status());
        let (parts, _) = http.into_parts();
        let mut resp = Response::new(Full::new(Bytes::new()));
        let headers = resp.headers_mut();
        *headers = parts.headers;
        headers.remove(CACHE_CONTROL);
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
        headers.insert(&GRPC_STATUS, HeaderValue::from(u16::from(code)));
        headers.insert(&GRPC_MESSAGE, grpc_message(description));
        resp
    }
}

/// The gRPC status of a refusal (extensions section 13); statuses the
/// table does not name follow gRPC's HTTP mapping (13 INTERNAL for a 5xx
/// of ours, 2 UNKNOWN otherwise).
fn grpc_status(status: StatusCode) -> u8 {
    match status.as_u16() {
        400 | 408 => 3,
        401 => 16,
        403 => 7,
        404 | 405 | 501 => 12,
        413 | 429 => 8,
        502 | 503 => 14,
        504 => 4,
        500..=599 => 13,
        _ => 2,
    }
}

/// `grpc-message` as the gRPC wire format wants it: bytes outside
/// printable ASCII, and `%`, percent-encoded.
fn grpc_message(text: &str) -> HeaderValue {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        match b {
            b' '..=b'~' if b != b'%' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    HeaderValue::from_str(&out).unwrap_or_else(|_| HeaderValue::from_static("refused"))
}

fn auth_answer(e: &AuthError) -> Answer<'_> {
    use Blame::{Client, Gateway, Upstream};
    match e {
        AuthError::MissingToken => Answer {
            code: None,
            ..Answer::new(
                401,
                "missing_token",
                Client,
                "",
                "a bearer token is required",
            )
        }
        .challenge(Scheme::Plain),
        AuthError::InvalidRequest(d) => {
            Answer::new(400, "invalid_request", Client, "invalid_request", d)
                .challenge(Scheme::Error)
        }
        AuthError::InvalidToken(d) => {
            Answer::new(401, "invalid_token", Client, "invalid_token", d).challenge(Scheme::Error)
        }
        AuthError::InvalidDpopProof(d) => {
            Answer::new(401, "invalid_token", Client, "invalid_dpop_proof", d)
                .challenge(Scheme::Error)
        }
        AuthError::UseDpopNonce => Answer::new(
            401,
            "invalid_token",
            Client,
            "use_dpop_nonce",
            "the DPoP proof must carry the server's nonce",
        )
        .challenge(Scheme::Error)
        .extra(Extra::DpopNonce),
        AuthError::InsufficientScope(scopes) => Answer::new(
            403,
            "insufficient_scope",
            Client,
            "insufficient_scope",
            "the token lacks a scope the route requires",
        )
        .challenge(Scheme::Scope(scopes)),
        AuthError::KeysUnusable { .. } => {
            Answer::unavailable(Upstream, ISSUER_UNAVAILABLE, RETRY_ISSUER_S)
        }
        AuthError::Introspection { cause, .. } => match cause {
            IntrospectionFailure::Overloaded => {
                Answer::unavailable(Upstream, "too many token checks in flight", RETRY_ISSUER_S)
            }
            IntrospectionFailure::Fetch(_)
            | IntrospectionFailure::Status(_)
            | IntrospectionFailure::NotJson => {
                Answer::unavailable(Upstream, ISSUER_UNAVAILABLE, RETRY_ISSUER_S)
            }
            // Our configuration is wrong: the client secret, or the endpoint.
            IntrospectionFailure::CredentialsRefused(_) | IntrospectionFailure::Request => {
                Answer::unavailable(Gateway, ISSUER_UNAVAILABLE, RETRY_ISSUER_S)
            }
        },
    }
}

fn upstream_answer(e: &UpstreamError) -> Answer<'_> {
    use Blame::{Client, Gateway, Upstream};
    match e {
        UpstreamError::Connect { .. } => {
            Answer::bad_gateway(Upstream, "the upstream could not be reached")
        }
        UpstreamError::Saturated { .. } => Answer::unavailable(
            Upstream,
            "the upstream has no free connection",
            RETRY_UPSTREAM_S,
        ),
        UpstreamError::Timeout { .. } => Answer::new(
            504,
            "upstream_error",
            Upstream,
            "gateway_timeout",
            "the upstream did not answer in time",
        ),
        UpstreamError::Protocol { .. } | UpstreamError::UnaskedUpgrade { .. } => {
            Answer::bad_gateway(Upstream, "the upstream failed to answer")
        }
        UpstreamError::BadUpgrade { .. } => Answer::bad_gateway(
            Upstream,
            "the upstream did not complete the WebSocket handshake",
        )
        .extra(Extra::Close),
        UpstreamError::BadTarget { .. } => {
            Answer::bad_gateway(Gateway, "the upstream failed to answer")
        }
        UpstreamError::WrongProtocol { reason, .. } => Answer::bad_gateway(Gateway, reason),
        UpstreamError::MalformedBody => Answer::new(
            400,
            "invalid_request",
            Client,
            "invalid_request",
            "the request body is malformed",
        )
        .extra(Extra::Close),
        UpstreamError::BodyTimeout => Answer::new(
            408,
            "request_timeout",
            Client,
            "request_timeout",
            "the request body did not arrive in time",
        )
        .extra(Extra::Close),
        UpstreamError::Credentials { cause, .. } => credentials_answer(*cause),
    }
}

/// The upstream's own token could not be had (extensions section 14): a
/// refusal (our credentials or configuration) or an unusable answer is a
/// 502; an endpoint that cannot be consulted, a 503 to retry.
fn credentials_answer(cause: TokenFailure) -> Answer<'static> {
    use Blame::{Gateway, Upstream};
    match cause {
        TokenFailure::Refused(_) | TokenFailure::NoSubjectToken => Answer::bad_gateway(
            Gateway,
            "the upstream's token endpoint refused the gateway's token request",
        ),
        TokenFailure::NotBearer | TokenFailure::NoAccessToken => Answer::bad_gateway(
            Upstream,
            "the upstream's token endpoint did not issue a bearer token",
        ),
        TokenFailure::Unavailable(_) | TokenFailure::Interrupted => {
            Answer::unavailable(Upstream, TOKEN_ENDPOINT_UNAVAILABLE, RETRY_ISSUER_S)
        }
    }
}

/// The auth schemes an answer challenges with (extensions section 9):
/// Bearer alone without `[dpop]`; with it, a request without a credential
/// is offered what its route accepts (DPoP on a `dpop` route, Bearer on an
/// `mtls` route, both otherwise), and any other refusal answers in the
/// scheme the request used, always DPoP on a `dpop` route.
fn schemes(answer: &Answer, context: &Challenge) -> &'static [&'static str] {
    const BEARER: &[&str] = &["Bearer"];
    const DPOP: &[&str] = &["DPoP"];
    let Some(dpop) = context.dpop else {
        return BEARER;
    };
    match (answer.challenge, dpop.route) {
        (_, Some(TokenBinding::Dpop)) => DPOP,
        (_, _) if dpop.used_dpop => DPOP,
        (Scheme::Plain, Some(TokenBinding::Any | TokenBinding::Bound)) => &["Bearer", "DPoP"],
        _ => BEARER,
    }
}

/// The `WWW-Authenticate` challenges (RFC 6750 section 3, RFC 9449 section
/// 7.1), if this answer carries any, with `algs` in a DPoP challenge and
/// `resource_metadata` on a 401 or 403 of a route with a resource.
fn challenges(answer: &Answer, context: &Challenge) -> Vec<String> {
    let (code, description) = (answer.code.unwrap_or_default(), answer.description);
    let realm = context.realm;
    let params = match answer.challenge {
        Scheme::None => return Vec::new(),
        Scheme::Plain => format!("realm=\"{realm}\""),
        Scheme::Error => {
            format!("realm=\"{realm}\", error=\"{code}\", error_description=\"{description}\"")
        }
        Scheme::Scope(scopes) => format!(
            "realm=\"{realm}\", error=\"{code}\", error_description=\"{description}\", scope=\"{scopes}\""
        ),
    };
    let status = answer.status.as_u16();
    let metadata = match (context.resource_metadata, status) {
        (Some(url), 401 | 403) => format!(", resource_metadata=\"{url}\""),
        _ => String::new(),
    };
    let algs = context.dpop.map(|d| d.algs).unwrap_or_default();
    schemes(answer, context)
        .iter()
        .map(|scheme| match *scheme {
            "DPoP" => format!("DPoP {params}, algs=\"{algs}\"{metadata}"),
            other => format!("{other} {params}{metadata}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::keys::Unusable;

    fn realm_r() -> Challenge<'static> {
        Challenge {
            realm: "r",
            resource_metadata: None,
            dpop: None,
        }
    }

    fn unusable() -> Rejection {
        AuthError::KeysUnusable {
            issuer: "i".into(),
            why: Unusable::Stale,
        }
        .into()
    }

    fn credentials(cause: TokenFailure) -> Rejection {
        UpstreamError::Credentials {
            upstream: "billing".into(),
            cause,
        }
        .into()
    }

    /// Extensions section 14: body code, Retry-After, outcome and log level
    /// of each way the upstream's own token can fail.
    #[test]
    fn credentials_failure_table() {
        use crate::fetch::FetchError;
        let cases: Vec<(TokenFailure, &str, Option<&str>, &str, Blame)> = vec![
            (
                TokenFailure::Refused("invalid_grant"),
                "bad_gateway",
                None,
                "upstream_error",
                Blame::Gateway,
            ),
            (
                TokenFailure::NotBearer,
                "bad_gateway",
                None,
                "upstream_error",
                Blame::Upstream,
            ),
            (
                TokenFailure::NoAccessToken,
                "bad_gateway",
                None,
                "upstream_error",
                Blame::Upstream,
            ),
            (
                TokenFailure::Unavailable(FetchError::Connect),
                "temporarily_unavailable",
                Some("5"),
                "unavailable",
                Blame::Upstream,
            ),
            (
                TokenFailure::Unavailable(FetchError::Status(500)),
                "temporarily_unavailable",
                Some("5"),
                "unavailable",
                Blame::Upstream,
            ),
            (
                TokenFailure::Unavailable(FetchError::NotJson),
                "temporarily_unavailable",
                Some("5"),
                "unavailable",
                Blame::Upstream,
            ),
        ];
        for (cause, code, retry, outcome, blame) in cases {
            let rejection = credentials(cause);
            assert_eq!(rejection.outcome(), outcome, "{cause:?}");
            assert_eq!(rejection.blame(), blame, "{cause:?}");
            let text = rejection.to_string();
            assert!(text.starts_with("upstream billing: "), "{text}");
            let resp = rejection.into_response(&realm_r());
            assert_eq!(header(&resp, RETRY_AFTER).as_deref(), retry, "{cause:?}");
            assert_eq!(header(&resp, WWW_AUTHENTICATE), None, "{cause:?}");
            let body = futures_util::FutureExt::now_or_never(http_body_util::BodyExt::collect(
                resp.into_body(),
            ))
            .unwrap()
            .unwrap()
            .to_bytes();
            let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(json["error"], code, "{cause:?}");
        }
        let refused = credentials(TokenFailure::Refused("invalid_client")).to_string();
        assert!(
            refused.contains("invalid_client"),
            "the log names the code: {refused}"
        );
    }

    fn header(resp: &Response<Full<Bytes>>, name: http::header::HeaderName) -> Option<String> {
        resp.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
    }

    /// Extensions section 13: each refusal's gRPC status, with the HTTP
    /// answer's challenge and retry headers kept and no body.
    #[test]
    fn into_grpc_response_table_matches_section_13() {
        let verdict = Verdict {
            allowed: false,
            retry_after_s: 3,
            policy: HeaderValue::from_static("\"p\";q=1;w=60"),
            state: HeaderValue::from_static("\"p\";r=0;t=3"),
        };
        let cases: Vec<(Rejection, &str)> = vec![
            (AuthError::MissingToken.into(), "16"),
            (AuthError::InvalidToken("expired").into(), "16"),
            (AuthError::InsufficientScope("a".into()).into(), "7"),
            (AuthError::InvalidRequest("malformed").into(), "3"),
            (Rejection::BadTarget(TargetError::DotSegment), "3"),
            (Rejection::NotFound, "12"),
            (Rejection::MethodNotAllowed(vec![Method::GET]), "12"),
            (Rejection::RateLimited(verdict), "8"),
            (
                UpstreamError::Connect {
                    upstream: "u".into(),
                    cause: "refused".into(),
                }
                .into(),
                "14",
            ),
            (
                UpstreamError::Saturated {
                    upstream: "u".into(),
                }
                .into(),
                "14",
            ),
            (unusable(), "14"),
            (
                UpstreamError::Timeout {
                    upstream: "u".into(),
                }
                .into(),
                "4",
            ),
        ];
        for (rejection, want) in cases {
            let http_status = rejection.status();
            let description = rejection.answer().description.to_string();
            let http = rejection.clone().into_response(&realm_r());
            let resp = rejection.into_grpc_response(&realm_r());
            assert_eq!(resp.status(), 200, "{http_status}");
            assert_eq!(
                header(&resp, CONTENT_TYPE).as_deref(),
                Some("application/grpc")
            );
            assert_eq!(
                header(&resp, GRPC_STATUS.clone()).as_deref(),
                Some(want),
                "{http_status}"
            );
            assert_eq!(
                header(&resp, GRPC_MESSAGE.clone()),
                Some(description),
                "{http_status}"
            );
            assert_eq!(http_body::Body::size_hint(resp.body()).exact(), Some(0));
            assert_eq!(
                header(&resp, WWW_AUTHENTICATE),
                header(&http, WWW_AUTHENTICATE),
                "{http_status}"
            );
            if matches!(http_status.as_u16(), 401 | 403) {
                assert!(
                    resp.headers().contains_key(WWW_AUTHENTICATE),
                    "{http_status}"
                );
            }
            if http_status == 503 || http_status == 429 {
                assert!(resp.headers().contains_key(RETRY_AFTER), "{http_status}");
            }
        }
    }

    #[test]
    fn grpc_message_percent_encodes_outside_printable_ascii_and_percent() {
        assert_eq!(grpc_message("plain text: ok"), "plain text: ok");
        assert_eq!(grpc_message("100% sure"), "100%25 sure");
        assert_eq!(grpc_message("a\nb"), "a%0Ab");
        assert_eq!(grpc_message("ünï"), "%C3%BCn%C3%AF");
    }

    #[test]
    fn into_response_table_matches_section_2() {
        let cases: Vec<(Rejection, u16, Option<&str>)> = vec![
            (AuthError::MissingToken.into(), 401, Some("Bearer realm=\"r\"")),
            (
                AuthError::InvalidRequest("malformed").into(),
                400,
                Some("Bearer realm=\"r\", error=\"invalid_request\", error_description=\"malformed\""),
            ),
            (
                AuthError::InvalidToken("expired").into(),
                401,
                Some("Bearer realm=\"r\", error=\"invalid_token\", error_description=\"expired\""),
            ),
            (
                AuthError::InsufficientScope("a b".into()).into(),
                403,
                Some("Bearer realm=\"r\", error=\"insufficient_scope\", error_description=\"the token lacks a scope the route requires\", scope=\"a b\""),
            ),
            (unusable(), 503, None),
            (UpstreamError::Connect { upstream: "u".into(), cause: "refused".into() }.into(), 502, None),
            (UpstreamError::Timeout { upstream: "u".into() }.into(), 504, None),
            (Rejection::NotFound, 404, None),
            (Rejection::BadTarget(TargetError::DotSegment), 400, None),
            (Rejection::BadTarget(TargetError::MissingHost), 400, None),
            (UpstreamError::BadUpgrade { upstream: "u".into(), reason: "no accept" }.into(), 502, None),
            (Rejection::UnsupportedTransferCoding, 501, None),
            (UpstreamError::MalformedBody.into(), 400, None),
            (UpstreamError::BodyTimeout.into(), 408, None),
            (credentials(TokenFailure::Refused("invalid_client")), 502, None),
            (credentials(TokenFailure::NotBearer), 502, None),
            (credentials(TokenFailure::NoAccessToken), 502, None),
            (credentials(TokenFailure::Unavailable(crate::fetch::FetchError::Timeout)), 503, None),
        ];
        for (rej, status, challenge) in cases {
            let resp = rej.clone().into_response(&realm_r());
            assert_eq!(resp.status().as_u16(), status, "{rej:?}");
            assert_eq!(
                header(&resp, WWW_AUTHENTICATE).as_deref(),
                challenge,
                "{rej:?}"
            );
            assert_eq!(
                header(&resp, CONTENT_TYPE).as_deref(),
                Some("application/json")
            );
            assert_eq!(header(&resp, CACHE_CONTROL).as_deref(), Some("no-store"));
        }
    }

    #[test]
    fn into_response_unavailable_has_retry_after_and_code() {
        let resp = unusable().into_response(&realm_r());
        assert_eq!(header(&resp, RETRY_AFTER).as_deref(), Some("5"));
        let resp = Rejection::from(UpstreamError::Saturated {
            upstream: "u".into(),
        })
        .into_response(&realm_r());
        assert_eq!(header(&resp, RETRY_AFTER).as_deref(), Some("1"));
    }

    #[test]
    fn into_response_rate_limited_is_429_with_the_verdict_s_headers() {
        let verdict = Verdict {
            allowed: false,
            retry_after_s: 12,
            policy: HeaderValue::from_static("\"per_client\";q=100;w=60"),
            state: HeaderValue::from_static("\"per_client\";r=0;t=12"),
        };
        let rejection = Rejection::RateLimited(verdict);
        assert_eq!(rejection.outcome(), "rate_limited");
        assert_eq!(rejection.blame(), Blame::Client);
        let resp = rejection.into_response(&realm_r());
        assert_eq!(resp.status().as_u16(), 429);
        assert_eq!(header(&resp, WWW_AUTHENTICATE), None);
        assert_eq!(header(&resp, RETRY_AFTER).as_deref(), Some("12"));
        assert_eq!(
            header(&resp, crate::ratelimit::RATELIMIT_POLICY.clone()).as_deref(),
            Some("\"per_client\";q=100;w=60")
        );
        assert_eq!(
            header(&resp, crate::ratelimit::RATELIMIT.clone()).as_deref(),
            Some("\"per_client\";r=0;t=12")
        );
    }

    #[test]
    fn into_response_method_not_allowed_lists_allow() {
        let resp =
            Rejection::MethodNotAllowed(vec![Method::GET, Method::HEAD]).into_response(&realm_r());
        assert_eq!(header(&resp, ALLOW).as_deref(), Some("GET, HEAD"));
    }

    /// Each blame is produced by some variant, so each log level is reachable.
    #[test]
    fn blame_table_reaches_every_level() {
        let cases: Vec<(Rejection, Blame)> = vec![
            (Rejection::NotFound, Blame::Client),
            (AuthError::MissingToken.into(), Blame::Client),
            (UpstreamError::MalformedBody.into(), Blame::Client),
            (unusable(), Blame::Upstream),
            (
                AuthError::Introspection {
                    issuer: "i".into(),
                    cause: IntrospectionFailure::Overloaded,
                }
                .into(),
                Blame::Upstream,
            ),
            (
                UpstreamError::Timeout {
                    upstream: "u".into(),
                }
                .into(),
                Blame::Upstream,
            ),
            (
                AuthError::Introspection {
                    issuer: "i".into(),
                    cause: IntrospectionFailure::CredentialsRefused(401),
                }
                .into(),
                Blame::Gateway,
            ),
            (
                UpstreamError::BadTarget {
                    upstream: "u".into(),
                }
                .into(),
                Blame::Gateway,
            ),
        ];
        for (rejection, blame) in cases {
            assert_eq!(rejection.blame(), blame, "{rejection:?}");
        }
    }

    fn challenges_of(resp: &Response<Full<Bytes>>) -> Vec<String> {
        resp.headers()
            .get_all(WWW_AUTHENTICATE)
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect()
    }

    /// Extensions section 9: which scheme each refusal challenges with,
    /// on each kind of route, with `algs` in every DPoP challenge.
    #[test]
    fn dpop_challenge_table() {
        use TokenBinding::*;
        const B: &str = "Bearer realm=\"r\"";
        const D: &str = "DPoP realm=\"r\", algs=\"ES256 EdDSA\"";
        const B_INVALID: &str =
            "Bearer realm=\"r\", error=\"invalid_token\", error_description=\"x\"";
        const D_INVALID: &str = "DPoP realm=\"r\", error=\"invalid_token\", error_description=\"x\", algs=\"ES256 EdDSA\"";
        let missing = || Rejection::from(AuthError::MissingToken);
        let invalid = || Rejection::from(AuthError::InvalidToken("x"));
        let proof = || Rejection::from(AuthError::InvalidDpopProof("p"));
        let cases: Vec<(Rejection, Option<TokenBinding>, bool, Vec<&str>)> = vec![
            (missing(), Some(Any), false, vec![B, D]),
            (missing(), Some(Bound), false, vec![B, D]),
            (missing(), Some(Dpop), false, vec![D]),
            (missing(), Some(Mtls), false, vec![B]),
            (invalid(), Some(Any), false, vec![B_INVALID]),
            (invalid(), Some(Any), true, vec![D_INVALID]),
            (invalid(), Some(Dpop), false, vec![D_INVALID]),
            (invalid(), Some(Mtls), false, vec![B_INVALID]),
            (invalid(), Some(Mtls), true, vec![D_INVALID]),
            (
                proof(),
                Some(Any),
                true,
                vec!["DPoP realm=\"r\", error=\"invalid_dpop_proof\", error_description=\"p\", algs=\"ES256 EdDSA\""],
            ),
            (
                AuthError::InsufficientScope("a".into()).into(),
                Some(Any),
                true,
                vec!["DPoP realm=\"r\", error=\"insufficient_scope\", error_description=\"the token lacks a scope the route requires\", scope=\"a\", algs=\"ES256 EdDSA\""],
            ),
            (
                AuthError::InvalidRequest("m").into(),
                Some(Any),
                true,
                vec!["DPoP realm=\"r\", error=\"invalid_request\", error_description=\"m\", algs=\"ES256 EdDSA\""],
            ),
            (Rejection::NotFound, None, true, vec![]),
            (unusable(), Some(Dpop), true, vec![]),
        ];
        for (i, (rejection, route, used_dpop, want)) in cases.into_iter().enumerate() {
            let context = Challenge {
                dpop: Some(DpopChallenge {
                    algs: "ES256 EdDSA",
                    route,
                    used_dpop,
                    nonce: None,
                }),
                ..realm_r()
            };
            let resp = rejection.into_response(&context);
            assert_eq!(challenges_of(&resp), want, "case {i}");
        }
    }

    #[test]
    fn use_dpop_nonce_carries_a_fresh_nonce_and_resource_metadata() {
        let nonce = HeaderValue::from_static("n0nce");
        let context = Challenge {
            resource_metadata: Some("https://a/.well-known/oauth-protected-resource"),
            dpop: Some(DpopChallenge {
                algs: "ES256",
                route: Some(TokenBinding::Any),
                used_dpop: true,
                nonce: Some(&nonce),
            }),
            ..realm_r()
        };
        let resp = Rejection::from(AuthError::UseDpopNonce).into_response(&context);
        assert_eq!(resp.status().as_u16(), 401);
        assert_eq!(
            challenges_of(&resp),
            vec!["DPoP realm=\"r\", error=\"use_dpop_nonce\", error_description=\"the DPoP proof must carry the server's nonce\", algs=\"ES256\", resource_metadata=\"https://a/.well-known/oauth-protected-resource\""]
        );
        assert_eq!(header(&resp, DPOP_NONCE.clone()).as_deref(), Some("n0nce"));
        let other = Rejection::from(AuthError::InvalidToken("x")).into_response(&context);
        assert_eq!(header(&other, DPOP_NONCE.clone()), None);
    }
}
