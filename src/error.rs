//! The one place where a refused or failed request becomes an HTTP answer:
//! status, `WWW-Authenticate` challenge (RFC 6750 section 3), JSON body,
//! headers, the outcome label used in logs and metrics, and the log level
//! (by blame: client faults at debug, upstream faults at warn, ours at error).
//!
//! Every description is a `&'static str` from a fixed list, so nothing a
//! client sent (a token, a claim, a kid, an alg) can be echoed back.

use bytes::Bytes;
use http::header::{
    HeaderValue, ALLOW, CACHE_CONTROL, CONNECTION, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE,
};
use http::{Method, Response, StatusCode};
use http_body_util::Full;

use crate::target::TargetError;

/// Why the gateway answers instead of the upstream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("bad request target: {0}")]
    BadTarget(TargetError),
    #[error("no route")]
    NotFound,
    #[error("method not allowed")]
    MethodNotAllowed(Vec<Method>),
    #[error("no bearer token")]
    MissingToken,
    #[error("malformed credential: {0}")]
    InvalidRequest(&'static str),
    #[error("invalid token: {0}")]
    InvalidToken(&'static str),
    /// The route's required scopes, space-separated.
    #[error("insufficient scope")]
    InsufficientScope(String),
    #[error("unavailable: {description}")]
    Unavailable {
        description: &'static str,
        retry_after_s: u32,
    },
    #[error("upstream connection failed")]
    UpstreamConnect,
    #[error("upstream timed out")]
    UpstreamTimeout,
    #[error("upstream failed")]
    UpstreamProtocol,
    /// A `101` that does not answer the WebSocket handshake that was asked
    /// for; the client's connection is closed after the 502.
    #[error("upstream answered the upgrade wrongly: {0}")]
    UpstreamBadUpgrade(&'static str),
    /// A transfer coding other than `chunked` (RFC 9112 section 6.1).
    #[error("unsupported transfer coding")]
    UnsupportedTransferCoding,
    /// The client's body broke its framing (a malformed chunk) or its stream.
    #[error("malformed request body")]
    MalformedBody,
    /// The client's body did not arrive within `body_read_timeout_ms`.
    #[error("request body timed out")]
    BodyTimeout,
}

/// Who is to blame, which decides the log level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blame {
    Client,
    Upstream,
    Gateway,
}

impl Rejection {
    /// The outcome label of logs and metrics.
    pub fn outcome(&self) -> &'static str {
        match self {
            Rejection::BadTarget(_)
            | Rejection::InvalidRequest(_)
            | Rejection::UnsupportedTransferCoding
            | Rejection::MalformedBody => "invalid_request",
            Rejection::BodyTimeout => "request_timeout",
            Rejection::NotFound => "not_found",
            Rejection::MethodNotAllowed(_) => "method_not_allowed",
            Rejection::MissingToken => "missing_token",
            Rejection::InvalidToken(_) => "invalid_token",
            Rejection::InsufficientScope(_) => "insufficient_scope",
            Rejection::Unavailable { .. } => "unavailable",
            Rejection::UpstreamConnect
            | Rejection::UpstreamTimeout
            | Rejection::UpstreamProtocol
            | Rejection::UpstreamBadUpgrade(_) => "upstream_error",
        }
    }

    pub fn blame(&self) -> Blame {
        match self {
            Rejection::BadTarget(_)
            | Rejection::NotFound
            | Rejection::MethodNotAllowed(_)
            | Rejection::MissingToken
            | Rejection::InvalidRequest(_)
            | Rejection::InvalidToken(_)
            | Rejection::InsufficientScope(_)
            | Rejection::UnsupportedTransferCoding
            | Rejection::MalformedBody
            | Rejection::BodyTimeout => Blame::Client,
            Rejection::Unavailable { .. }
            | Rejection::UpstreamConnect
            | Rejection::UpstreamTimeout
            | Rejection::UpstreamProtocol
            | Rejection::UpstreamBadUpgrade(_) => Blame::Upstream,
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Rejection::BadTarget(_) | Rejection::InvalidRequest(_) | Rejection::MalformedBody => {
                StatusCode::BAD_REQUEST
            }
            Rejection::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            Rejection::UnsupportedTransferCoding => StatusCode::NOT_IMPLEMENTED,
            Rejection::NotFound => StatusCode::NOT_FOUND,
            Rejection::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Rejection::MissingToken | Rejection::InvalidToken(_) => StatusCode::UNAUTHORIZED,
            Rejection::InsufficientScope(_) => StatusCode::FORBIDDEN,
            Rejection::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Rejection::UpstreamConnect
            | Rejection::UpstreamProtocol
            | Rejection::UpstreamBadUpgrade(_) => StatusCode::BAD_GATEWAY,
            Rejection::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    /// `(error code, description)` of the JSON body; no code for a missing token.
    fn body_fields(&self) -> (Option<&'static str>, &'static str) {
        match self {
            Rejection::BadTarget(e) => (Some("invalid_request"), e.description()),
            Rejection::NotFound => (Some("not_found"), "no route matches the request path"),
            Rejection::MethodNotAllowed(_) => (
                Some("method_not_allowed"),
                "the route does not allow this method",
            ),
            Rejection::MissingToken => (None, "a bearer token is required"),
            Rejection::InvalidRequest(d) => (Some("invalid_request"), d),
            Rejection::InvalidToken(d) => (Some("invalid_token"), d),
            Rejection::InsufficientScope(_) => (
                Some("insufficient_scope"),
                "the token lacks a scope the route requires",
            ),
            Rejection::Unavailable { description, .. } => {
                (Some("temporarily_unavailable"), description)
            }
            Rejection::UpstreamConnect => {
                (Some("bad_gateway"), "the upstream could not be reached")
            }
            Rejection::UpstreamProtocol => (Some("bad_gateway"), "the upstream failed to answer"),
            Rejection::UpstreamBadUpgrade(_) => (
                Some("bad_gateway"),
                "the upstream did not complete the WebSocket handshake",
            ),
            Rejection::UnsupportedTransferCoding => (
                Some("not_implemented"),
                "only the chunked transfer coding is supported",
            ),
            Rejection::MalformedBody => (Some("invalid_request"), "the request body is malformed"),
            Rejection::BodyTimeout => (
                Some("request_timeout"),
                "the request body did not arrive in time",
            ),
            Rejection::UpstreamTimeout => (
                Some("gateway_timeout"),
                "the upstream did not answer in time",
            ),
        }
    }

    /// The RFC 6750 challenge, if this answer carries one.
    fn challenge(&self, realm: &str) -> Option<String> {
        let (code, description) = self.body_fields();
        match self {
            Rejection::MissingToken => Some(format!("Bearer realm=\"{realm}\"")),
            Rejection::InvalidRequest(_) | Rejection::InvalidToken(_) => Some(format!(
                "Bearer realm=\"{realm}\", error=\"{}\", error_description=\"{description}\"",
                code.unwrap_or_default()
            )),
            Rejection::InsufficientScope(scopes) => Some(format!(
                "Bearer realm=\"{realm}\", error=\"insufficient_scope\", error_description=\"{description}\", scope=\"{scopes}\""
            )),
            Rejection::BadTarget(_)
            | Rejection::NotFound
            | Rejection::MethodNotAllowed(_)
            | Rejection::Unavailable { .. }
            | Rejection::UpstreamConnect
            | Rejection::UpstreamTimeout
            | Rejection::UpstreamProtocol
            | Rejection::UpstreamBadUpgrade(_)
            | Rejection::UnsupportedTransferCoding
            | Rejection::MalformedBody
            | Rejection::BodyTimeout => None,
        }
    }

    /// Renders the answer. `realm` is validated at load to need no escaping.
    pub fn into_response(self, realm: &str) -> Response<Full<Bytes>> {
        let (code, description) = self.body_fields();
        let body = match code {
            Some(code) => serde_json::json!({ "error": code, "error_description": description }),
            None => serde_json::json!({ "error_description": description }),
        };
        let mut resp = Response::new(Full::new(Bytes::from(body.to_string())));
        *resp.status_mut() = self.status();
        let headers = resp.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Some(challenge) = self.challenge(realm) {
            if let Ok(v) = HeaderValue::from_str(&challenge) {
                headers.insert(WWW_AUTHENTICATE, v);
            }
        }
        match &self {
            Rejection::MethodNotAllowed(methods) => {
                let allow: Vec<&str> = methods.iter().map(Method::as_str).collect();
                if let Ok(v) = HeaderValue::from_str(&allow.join(", ")) {
                    headers.insert(ALLOW, v);
                }
            }
            Rejection::Unavailable { retry_after_s, .. } => {
                headers.insert(RETRY_AFTER, HeaderValue::from(*retry_after_s));
            }
            // The exchange cannot continue on this connection: a failed
            // upgrade, or a body left half-read.
            Rejection::UpstreamBadUpgrade(_)
            | Rejection::MalformedBody
            | Rejection::BodyTimeout
            | Rejection::UnsupportedTransferCoding => {
                headers.insert(CONNECTION, HeaderValue::from_static("close"));
            }
            _ => {}
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(resp: &Response<Full<Bytes>>, name: http::header::HeaderName) -> Option<String> {
        resp.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
    }

    #[test]
    fn into_response_table_matches_section_2() {
        let cases: Vec<(Rejection, u16, Option<&str>)> = vec![
            (Rejection::MissingToken, 401, Some("Bearer realm=\"r\"")),
            (
                Rejection::InvalidRequest("malformed"),
                400,
                Some("Bearer realm=\"r\", error=\"invalid_request\", error_description=\"malformed\""),
            ),
            (
                Rejection::InvalidToken("expired"),
                401,
                Some("Bearer realm=\"r\", error=\"invalid_token\", error_description=\"expired\""),
            ),
            (
                Rejection::InsufficientScope("a b".into()),
                403,
                Some("Bearer realm=\"r\", error=\"insufficient_scope\", error_description=\"the token lacks a scope the route requires\", scope=\"a b\""),
            ),
            (Rejection::Unavailable { description: "x", retry_after_s: 5 }, 503, None),
            (Rejection::UpstreamConnect, 502, None),
            (Rejection::UpstreamTimeout, 504, None),
            (Rejection::NotFound, 404, None),
            (Rejection::BadTarget(TargetError::DotSegment), 400, None),
            (Rejection::BadTarget(TargetError::MissingHost), 400, None),
            (Rejection::UpstreamBadUpgrade("no accept"), 502, None),
            (Rejection::UnsupportedTransferCoding, 501, None),
            (Rejection::MalformedBody, 400, None),
            (Rejection::BodyTimeout, 408, None),
        ];
        for (rej, status, challenge) in cases {
            let resp = rej.clone().into_response("r");
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
        let resp = Rejection::Unavailable {
            description: "x",
            retry_after_s: 7,
        }
        .into_response("r");
        assert_eq!(header(&resp, RETRY_AFTER).as_deref(), Some("7"));
    }

    #[test]
    fn into_response_method_not_allowed_lists_allow() {
        let resp = Rejection::MethodNotAllowed(vec![Method::GET, Method::HEAD]).into_response("r");
        assert_eq!(header(&resp, ALLOW).as_deref(), Some("GET, HEAD"));
    }
}
