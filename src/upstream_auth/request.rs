//! One token request and the judgement of its answer: the form of RFC 6749
//! section 4.4.2 (`client_credentials`) or RFC 8693 section 2.1 (token
//! exchange, the caller's token as `subject_token`), with the gateway's
//! client authentication ([`ClientAuth`]) and the configured `resource`
//! (RFC 8707) and `scope`; the answer of RFC 6749 section 5.1 (a Bearer
//! `access_token`, `expires_in`) or 5.2 (an `error` code).
//!
//! Every failure is a [`TokenFailure`] from a fixed list: nothing the
//! token endpoint sent is kept but a known error code.

use http::{HeaderValue, StatusCode, Uri};
use opentelemetry::KeyValue;
use serde_json::{Map, Value};
use std::time::Duration;

use crate::clock::Clock;
use crate::config::{ClientAuthMethod, Grant, UpstreamOAuth};
use crate::fetch::{form_encode, ClientAuth, FetchError, HttpFetcher};

/// An answer larger than this is a failure.
const MAX_ANSWER_BYTES: usize = 64 * 1024;
/// The lifetime assumed when a successful answer has no `expires_in`
/// (RFC 6749 section 5.1 only recommends it).
pub(super) const DEFAULT_LIFETIME_S: f64 = 60.0;
/// RFC 8693 section 2.1.
const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
/// RFC 8693 section 3: the caller's token is an access token.
const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
/// The error codes of RFC 6749 section 5.2 and RFC 8693 section 2.2.2.
const ERROR_CODES: [&str; 7] = [
    "invalid_request",
    "invalid_client",
    "invalid_grant",
    "unauthorized_client",
    "unsupported_grant_type",
    "invalid_scope",
    "invalid_target",
];

/// Why no token came back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenFailure {
    /// An error answer: its RFC 6749 section 5.2 code, or
    /// `unrecognized_error` for a code outside the list (or none).
    #[error("the token endpoint refused the request: {0}")]
    Refused(&'static str),
    /// Unreachable, too slow, a 5xx (or other unexpected status), an answer
    /// that is not JSON or too large.
    #[error("the token endpoint cannot be consulted: {0}")]
    Unavailable(FetchError),
    /// A 200 whose `token_type` is not Bearer.
    #[error("the token endpoint's answer is not a Bearer token")]
    NotBearer,
    /// A 200 without a non-empty `access_token` that fits in a header.
    #[error("the token endpoint's answer has no usable access_token")]
    NoAccessToken,
    /// Token exchange without a caller token (cannot happen on a route
    /// that requires one, which configuration enforces).
    #[error("there is no caller token to exchange")]
    NoSubjectToken,
    /// The request task ended without an answer (the runtime is stopping).
    #[error("the token request was interrupted")]
    Interrupted,
}

impl TokenFailure {
    /// The `result` label of `tokengate_upstream_token_requests_total`.
    pub fn label(self) -> &'static str {
        match self {
            TokenFailure::Refused(code) => code,
            TokenFailure::Unavailable(e) => e.label(),
            TokenFailure::NotBearer => "not_bearer",
            TokenFailure::NoAccessToken => "no_access_token",
            TokenFailure::NoSubjectToken => "no_subject_token",
            TokenFailure::Interrupted => "interrupted",
        }
    }
}

/// A token the gateway holds: the whole `Authorization` value (marked
/// sensitive), when it stops being used, and when it expires.
#[derive(Debug, Clone)]
pub(super) struct Token {
    pub(super) authorization: HeaderValue,
    /// After this (epoch seconds) a new token is fetched.
    pub(super) renew_at: f64,
    /// The token's own end, `now + expires_in`.
    pub(super) expires_at: f64,
}

/// Everything one upstream's token requests need.
pub(super) struct TokenClient {
    pub(super) upstream: String,
    endpoint: Uri,
    grant: Grant,
    auth: ClientAuth,
    /// `&resource=..&scope=..`, the configured parameters that are set.
    extra: String,
    skew: f64,
    timeout: Duration,
    fetcher: HttpFetcher,
    pub(super) clock: Clock,
}

impl TokenClient {
    pub(super) fn new(
        upstream: &str,
        oauth: &UpstreamOAuth,
        fetcher: HttpFetcher,
        clock: Clock,
    ) -> TokenClient {
        let mut extra = String::new();
        for (name, value) in [("resource", &oauth.resource), ("scope", &oauth.scope)] {
            if let Some(value) = value {
                extra.push_str(&format!("&{name}={}", form_encode(value)));
            }
        }
        TokenClient {
            upstream: upstream.to_string(),
            endpoint: oauth.token_endpoint.clone(),
            grant: oauth.grant,
            auth: ClientAuth::new(
                oauth.auth_method == ClientAuthMethod::ClientSecretBasic,
                &oauth.client_id,
                oauth.client_secret.expose(),
            ),
            extra,
            skew: oauth.refresh_skew.as_secs_f64(),
            timeout: oauth.timeout,
            fetcher,
            clock,
        }
    }

    /// The form body (before client authentication).
    fn form(&self, subject_token: Option<&str>) -> Result<String, TokenFailure> {
        let mut form = match (self.grant, subject_token) {
            (Grant::ClientCredentials, _) => "grant_type=client_credentials".to_string(),
            (Grant::TokenExchange, Some(token)) => format!(
                "grant_type={}&subject_token={}&subject_token_type={}",
                form_encode(TOKEN_EXCHANGE),
                form_encode(token),
                form_encode(ACCESS_TOKEN_TYPE)
            ),
            (Grant::TokenExchange, None) => return Err(TokenFailure::NoSubjectToken),
        };
        form.push_str(&self.extra);
        Ok(form)
    }

    /// One token request, counted in `tokengate_upstream_token_requests_total`.
    pub(super) async fn fetch(&self, subject_token: Option<&str>) -> Result<Token, TokenFailure> {
        let span = crate::trace::child(
            "upstream token request",
            KeyValue::new("tokengate.upstream", self.upstream.clone()),
        );
        let result = self.exchange(subject_token).await;
        let label = match &result {
            Ok(_) => "ok",
            Err(e) => e.label(),
        };
        if let (Some(span), Err(_)) = (&span, &result) {
            span.failed(label);
        }
        crate::telemetry::upstream_token_request(&self.upstream, label);
        result
    }

    async fn exchange(&self, subject_token: Option<&str>) -> Result<Token, TokenFailure> {
        let form = self.form(subject_token)?;
        let request = self
            .auth
            .form_post(&self.endpoint, form)
            .map_err(TokenFailure::Unavailable)?;
        let fetched = self
            .fetcher
            .send(request, self.timeout, MAX_ANSWER_BYTES)
            .await
            .map_err(TokenFailure::Unavailable)?;
        judge(fetched.status, &fetched.body, self.clock.now(), self.skew)
    }
}

/// The token in an answer received at `now`, or why there is none. It is
/// renewed `skew` before it expires, but never before half its lifetime,
/// so a short-lived token is not renewed on every request.
pub(super) fn judge(
    status: StatusCode,
    body: &[u8],
    now: f64,
    skew: f64,
) -> Result<Token, TokenFailure> {
    let doc = serde_json::from_slice::<Value>(body).ok();
    let object = doc.as_ref().and_then(Value::as_object);
    match status.as_u16() {
        200 => {}
        400..=499 => {
            let doc = doc
                .as_ref()
                .ok_or(TokenFailure::Unavailable(FetchError::NotJson))?;
            return Err(TokenFailure::Refused(error_code(doc)));
        }
        other => return Err(TokenFailure::Unavailable(FetchError::Status(other))),
    }
    let doc = object.ok_or(TokenFailure::Unavailable(FetchError::NotJson))?;
    let bearer = doc
        .get("token_type")
        .and_then(Value::as_str)
        .is_some_and(|t| t.eq_ignore_ascii_case("Bearer"));
    if !bearer {
        return Err(TokenFailure::NotBearer);
    }
    let token = doc
        .get("access_token")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .ok_or(TokenFailure::NoAccessToken)?;
    let mut authorization = HeaderValue::from_str(&format!("Bearer {token}"))
        .map_err(|_| TokenFailure::NoAccessToken)?;
    authorization.set_sensitive(true);
    let lifetime = expires_in(doc).unwrap_or(DEFAULT_LIFETIME_S);
    Ok(Token {
        authorization,
        renew_at: now + lifetime - skew.min(lifetime / 2.0),
        expires_at: now + lifetime,
    })
}

/// `expires_in` in seconds: a non-negative number, or such a number as a
/// string (some providers send one); `None` when absent or unusable.
fn expires_in(doc: &Map<String, Value>) -> Option<f64> {
    let seconds = match doc.get("expires_in")? {
        Value::Number(n) => n.as_f64()?,
        Value::String(s) => s.trim().parse().ok()?,
        _ => return None,
    };
    (seconds.is_finite() && seconds >= 0.0).then_some(seconds.min(365.0 * 86_400.0))
}

/// The answer's `error`, if it is one of the known codes.
fn error_code(doc: &Value) -> &'static str {
    let code = doc.get("error").and_then(Value::as_str);
    ERROR_CODES
        .into_iter()
        .find(|known| Some(*known) == code)
        .unwrap_or("unrecognized_error")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: f64 = 1_700_000_000.0;

    /// The `Authorization` value, and `renew_at` and `expires_at` from now.
    type Judged = Result<(String, f64, f64), TokenFailure>;

    fn judged(status: u16, body: &str) -> Judged {
        let status = StatusCode::from_u16(status).unwrap();
        judge(status, body.as_bytes(), NOW, 30.0).map(|t| {
            let value = t.authorization.to_str().unwrap().to_string();
            (value, t.renew_at - NOW, t.expires_at - NOW)
        })
    }

    /// Extensions section 14: which answers give a token, and every
    /// failure's kind.
    #[test]
    fn judge_table() {
        use TokenFailure::*;
        let ok = |renew: f64, expires: f64| Ok(("Bearer t".to_string(), renew, expires));
        let cases: Vec<(u16, String, Judged)> = vec![
            (
                200,
                json!({"access_token": "t", "token_type": "Bearer", "expires_in": 300}).to_string(),
                ok(270.0, 300.0),
            ),
            (
                200,
                json!({"access_token": "t", "token_type": "bearer", "expires_in": "300"})
                    .to_string(),
                ok(270.0, 300.0),
            ),
            // Short-lived: renewed at half its lifetime, not at once.
            (
                200,
                json!({"access_token": "t", "token_type": "BEARER", "expires_in": 40}).to_string(),
                ok(20.0, 40.0),
            ),
            (
                200,
                json!({"access_token": "t", "token_type": "Bearer"}).to_string(),
                ok(30.0, 60.0),
            ),
            (
                200,
                json!({"access_token": "t", "token_type": "Bearer", "expires_in": -5}).to_string(),
                ok(30.0, 60.0),
            ),
            (
                200,
                json!({"access_token": "t", "token_type": "DPoP", "expires_in": 300}).to_string(),
                Err(NotBearer),
            ),
            (
                200,
                json!({"access_token": "t", "token_type": "N_A", "expires_in": 300}).to_string(),
                Err(NotBearer),
            ),
            (
                200,
                json!({"access_token": "t", "expires_in": 300}).to_string(),
                Err(NotBearer),
            ),
            (
                200,
                json!({"token_type": "Bearer", "expires_in": 300}).to_string(),
                Err(NoAccessToken),
            ),
            (
                200,
                json!({"access_token": "", "token_type": "Bearer"}).to_string(),
                Err(NoAccessToken),
            ),
            (
                200,
                json!({"access_token": 7, "token_type": "Bearer"}).to_string(),
                Err(NoAccessToken),
            ),
            (
                200,
                json!({"access_token": "a\nb", "token_type": "Bearer"}).to_string(),
                Err(NoAccessToken),
            ),
            (
                200,
                "<html>sign in</html>".into(),
                Err(Unavailable(FetchError::NotJson)),
            ),
            (200, "[1]".into(), Err(Unavailable(FetchError::NotJson))),
            (
                400,
                json!({"error": "invalid_grant"}).to_string(),
                Err(Refused("invalid_grant")),
            ),
            (
                401,
                json!({"error": "invalid_client"}).to_string(),
                Err(Refused("invalid_client")),
            ),
            (
                400,
                json!({"error": "invalid_scope"}).to_string(),
                Err(Refused("invalid_scope")),
            ),
            (
                400,
                json!({"error": "unauthorized_client"}).to_string(),
                Err(Refused("unauthorized_client")),
            ),
            (
                400,
                json!({"error": "unsupported_grant_type"}).to_string(),
                Err(Refused("unsupported_grant_type")),
            ),
            (
                400,
                json!({"error": "invalid_target"}).to_string(),
                Err(Refused("invalid_target")),
            ),
            (
                400,
                json!({"error": "made_up\"code"}).to_string(),
                Err(Refused("unrecognized_error")),
            ),
            (
                400,
                json!({}).to_string(),
                Err(Refused("unrecognized_error")),
            ),
            (
                404,
                "not found".into(),
                Err(Unavailable(FetchError::NotJson)),
            ),
            (
                500,
                json!({"error": "server_error"}).to_string(),
                Err(Unavailable(FetchError::Status(500))),
            ),
            (503, "".into(), Err(Unavailable(FetchError::Status(503)))),
            (302, "".into(), Err(Unavailable(FetchError::Status(302)))),
        ];
        for (status, body, want) in cases {
            assert_eq!(judged(status, &body), want, "{status} {body}");
        }
    }

    fn client(grant: &str, method: &str, extra: &str) -> TokenClient {
        let text = format!(
            "[upstreams.u]\nurl = \"http://127.0.0.1:1\"\n[upstreams.u.oauth]\ngrant = \"{grant}\"\n\
             token_endpoint = \"http://127.0.0.1:9/token\"\nclient_id = \"gate way\"\n\
             client_secret = \"p@ss:w/rd\"\nauth_method = \"{method}\"\n{extra}"
        );
        let c =
            crate::config::Config::from_toml(&text, std::path::Path::new("."), Vec::new()).unwrap();
        let oauth = c.upstreams[0].oauth.as_ref().unwrap();
        TokenClient::new("u", oauth, HttpFetcher::new().unwrap(), Clock::system())
    }

    #[test]
    fn form_client_credentials_sends_only_set_parameters() {
        let c = client("client_credentials", "client_secret_basic", "");
        assert_eq!(c.form(None).unwrap(), "grant_type=client_credentials");
        let c = client(
            "client_credentials",
            "client_secret_basic",
            "scope = \"a b\"\nresource = \"https://api.test/x?y=1\"",
        );
        assert_eq!(
            c.form(Some("ignored")).unwrap(),
            "grant_type=client_credentials&resource=https%3A%2F%2Fapi.test%2Fx%3Fy%3D1&scope=a+b"
        );
    }

    #[test]
    fn form_token_exchange_carries_the_subject_token() {
        let c = client("token_exchange", "client_secret_post", "scope = \"s\"");
        assert_eq!(
            c.form(Some("ab.c+d")).unwrap(),
            "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange\
             &subject_token=ab.c%2Bd\
             &subject_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Aaccess_token&scope=s"
        );
        assert_eq!(c.form(None), Err(TokenFailure::NoSubjectToken));
    }

    #[test]
    fn token_authorization_is_sensitive() {
        let body = json!({"access_token": "t", "token_type": "Bearer"}).to_string();
        let t = judge(StatusCode::OK, body.as_bytes(), NOW, 30.0).unwrap();
        assert!(t.authorization.is_sensitive());
    }
}
