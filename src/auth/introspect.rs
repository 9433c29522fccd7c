//! Opaque tokens: RFC 7662 introspection (docs/behavior.md section 6).
//!
//! One [`Introspector`] per issuer with `[introspection]`. A lookup is a
//! `POST` of `token` and `token_type_hint=access_token` with the gateway's
//! client authentication (`client_secret_basic`, id and secret
//! form-urlencoded before base64 per RFC 6749 section 2.3.1, or
//! `client_secret_post`), `Accept: application/json`; the token is never put
//! in a URL.
//!
//! Answers are cached under a SHA-256 of the endpoint and the token: active
//! for `min(cache_ttl_s, exp - now)`, inactive (and active-but-refused) for
//! `negative_cache_ttl_s`, failures never. Concurrent lookups of one token
//! share one call (moka `try_get_with`). At most `max_concurrent` calls are
//! in flight per issuer; past that, a fast 503 protects the identity
//! provider from a flood of random tokens. Every failure to get an answer
//! (timeout, 5xx, 401/403 for our own credentials, non-JSON) is a 503: a
//! token that cannot be checked is never forwarded.
//!
//! With `[redis]`, answers are also shared by the fleet
//! ([`super::shared_answers`]): a second-level cache behind the local one,
//! with the same TTL rules, and a short Redis lock so that N instances
//! receiving one new token make one call.

use aws_lc_rs::digest::{Context, SHA256};
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use moka::future::Cache;
use opentelemetry::KeyValue;
use serde_json::{Map, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

use super::error::{AuthError, IntrospectionFailure};
use super::shared_answers::{SharedAnswers, StoredAnswer};
use super::{claims, Principal};
use crate::clock::Clock;
use crate::config::{ClientAuthMethod, IntrospectionRules, IssuerConfig};
pub use crate::fetch::form_encode;
use crate::fetch::{ClientAuth, HttpFetcher};
use crate::fleet::client::Redis;

/// An introspection answer larger than this is a failure.
const MAX_ANSWER_BYTES: usize = 256 * 1024;
/// A cached answer.
#[derive(Clone, Debug)]
pub enum Answer {
    Active(Arc<Principal>),
    /// Inactive, or active but refused (expired, foreign issuer...).
    Refused(&'static str),
}

/// A cached answer and the time (epoch seconds, on the introspector's
/// clock) it stops being used: the positive or negative TTL, and for an
/// active token no later than its `exp`.
#[derive(Clone)]
struct Cached {
    answer: Answer,
    until: f64,
}

/// Frees a cached answer's memory once its `until` passed; whether an
/// answer is still used is decided on read, by the clock.
struct AnswerExpiry(Clock);

impl moka::Expiry<[u8; 32], Cached> for AnswerExpiry {
    fn expire_after_create(&self, _: &[u8; 32], cached: &Cached, _: Instant) -> Option<Duration> {
        Some(self.0.until(cached.until))
    }
}

pub struct Introspector {
    issuer: usize,
    name: String,
    config: IntrospectionRules,
    expected_issuer: String,
    audiences: Vec<String>,
    scope_claims: Vec<String>,
    /// The issuer's `leeway_s`, for `nbf`.
    leeway: f64,
    forward_claims: Vec<String>,
    client: ClientAuth,
    fetcher: HttpFetcher,
    cache: Cache<[u8; 32], Cached>,
    in_flight: Arc<Semaphore>,
    cache_counters: crate::telemetry::CacheCounters,
    clock: Clock,
    shared: Option<Arc<Redis>>,
}

impl Introspector {
    pub fn new(
        index: usize,
        issuer: &IssuerConfig,
        config: &IntrospectionRules,
        forward_claims: Vec<String>,
        fetcher: HttpFetcher,
        clock: Clock,
        shared: Option<Arc<Redis>>,
    ) -> Introspector {
        let client = ClientAuth::new(
            config.auth_method == ClientAuthMethod::ClientSecretBasic,
            &config.client_id,
            config.client_secret.expose(),
        );
        let cache = Cache::builder()
            .max_capacity(100_000)
            .expire_after(AnswerExpiry(clock.clone()))
            .build();
        Introspector {
            issuer: index,
            name: issuer.name.clone(),
            config: config.clone(),
            expected_issuer: issuer.issuer.clone(),
            audiences: issuer.audiences.clone(),
            scope_claims: issuer.scope_claims.clone(),
            leeway: issuer.leeway.as_secs_f64(),
            forward_claims,
            client,
            fetcher,
            cache,
            in_flight: Arc::new(Semaphore::new(config.max_concurrent)),
            cache_counters: crate::telemetry::CacheCounters::new("introspection"),
            clock,
            shared,
        }
    }

    fn cache_key(&self, token: &str) -> [u8; 32] {
        let mut h = Context::new(&SHA256);
        h.update(self.config.endpoint.to_string().as_bytes());
        h.update(&[0]);
        h.update(token.as_bytes());
        let mut key = [0; 32];
        key.copy_from_slice(h.finish().as_ref());
        key
    }

    /// The verified principal for an opaque `token`.
    pub async fn lookup(&self, token: &str) -> Result<Arc<Principal>, AuthError> {
        let key = self.cache_key(token);
        if let Some(cached) = self.cache.get(&key).await {
            if self.clock.now() < cached.until {
                self.cache_counters.hits.increment(1);
                return cached.answer.into_result();
            }
            self.cache.invalidate(&key).await;
        }
        self.cache_counters.misses.increment(1);
        let cached = self
            .cache
            .try_get_with(key, self.call(token, key))
            .await
            .map_err(|e| (*e).clone())?;
        cached.answer.into_result()
    }

    /// The answer for a token the local cache does not have: from the
    /// fleet's cache, or from the endpoint (at most one instance at a time
    /// per token, while Redis answers).
    async fn call(&self, token: &str, key: [u8; 32]) -> Result<Cached, AuthError> {
        let Some(redis) = &self.shared else {
            return self.call_endpoint(token).await.map(|(c, _)| c);
        };
        let shared = SharedAnswers::new(redis, &key, self.config.timeout);
        let now = self.clock.now();
        if let Some(cached) = self.shared_answer(&shared, now).await {
            return Ok(cached);
        }
        let held = shared.lock().await;
        if !held {
            // Another instance is asking: wait for its answer, then ask
            // ourselves if none came.
            if let Some(doc) = shared.wait().await {
                if let Some(cached) = self.rejudge(doc, self.clock.now()) {
                    return Ok(cached);
                }
            }
        }
        let result = self.call_endpoint(token).await;
        if let Ok((cached, doc)) = &result {
            shared.store(doc, cached.until, self.clock.now()).await;
        }
        if held {
            shared.unlock().await;
        }
        result.map(|(c, _)| c)
    }

    async fn shared_answer(&self, shared: &SharedAnswers<'_>, now: f64) -> Option<Cached> {
        let doc = shared.get().await?;
        self.rejudge(doc, now)
    }

    /// A shared answer judged here, by this issuer's rules, with its
    /// remaining lifetime.
    fn rejudge(&self, stored: StoredAnswer, now: f64) -> Option<Cached> {
        (stored.until > now).then(|| Cached {
            answer: self.judge(&stored.doc, now),
            until: stored.until,
        })
    }

    /// One endpoint call; also returns the answer document, for sharing.
    async fn call_endpoint(&self, token: &str) -> Result<(Cached, Map<String, Value>), AuthError> {
        let now = self.clock.now();
        let span = crate::trace::child(
            "introspection",
            KeyValue::new("tokengate.issuer", self.name.clone()),
        );
        let result = self.exchange(token, now).await;
        let label = match &result {
            Ok((Answer::Active(_), _)) => "active",
            Ok((Answer::Refused(_), _)) => "inactive",
            Err(cause) => cause.label(),
        };
        if let (Some(span), Err(_)) = (&span, &result) {
            span.failed(label);
        }
        self.count(label);
        let (answer, doc) = result.map_err(|cause| AuthError::Introspection {
            issuer: self.name.clone(),
            cause,
        })?;
        let until = match &answer {
            Answer::Active(p) => p.expires_at.min(now + self.config.cache_ttl.as_secs_f64()),
            Answer::Refused(_) => now + self.config.negative_cache_ttl.as_secs_f64(),
        };
        Ok((Cached { answer, until }, doc))
    }

    /// One call to the endpoint, judged; with the answer document.
    async fn exchange(
        &self,
        token: &str,
        now: f64,
    ) -> Result<(Answer, Map<String, Value>), IntrospectionFailure> {
        let Ok(_permit) = self.in_flight.try_acquire() else {
            return Err(IntrospectionFailure::Overloaded);
        };
        let request = self.request(token)?;
        let fetched = self
            .fetcher
            .send(request, self.config.timeout, MAX_ANSWER_BYTES)
            .await
            .map_err(IntrospectionFailure::Fetch)?;
        match fetched.status {
            StatusCode::OK => {}
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                return Err(IntrospectionFailure::CredentialsRefused(
                    fetched.status.as_u16(),
                ))
            }
            status => return Err(IntrospectionFailure::Status(status.as_u16())),
        }
        // Strict: a duplicated member (`"active"` twice) is not an answer.
        let doc = super::json::parse_object(&fetched.body).ok_or(IntrospectionFailure::NotJson)?;
        Ok((self.judge(&doc, now), doc))
    }

    fn count(&self, result: &'static str) {
        metrics::counter!("tokengate_introspection_requests_total", "issuer" => self.name.clone(), "result" => result).increment(1);
    }

    fn request(&self, token: &str) -> Result<Request<Full<Bytes>>, IntrospectionFailure> {
        let form = format!("token={}&token_type_hint=access_token", form_encode(token));
        self.client
            .form_post(&self.config.endpoint, form)
            .map_err(|_| IntrospectionFailure::Request)
    }

    /// Decides an introspection answer (RFC 7662 section 2.2) at `now`.
    pub fn judge(&self, doc: &Map<String, Value>, now: f64) -> Answer {
        match self.principal(doc, now) {
            Ok(p) => Answer::Active(Arc::new(p)),
            Err(reason) => Answer::Refused(reason),
        }
    }

    fn principal(&self, doc: &Map<String, Value>, now: f64) -> Result<Principal, &'static str> {
        if doc.get("active") != Some(&Value::Bool(true)) {
            return Err("token is not active");
        }
        let expires_at = match doc.get("exp") {
            None => f64::MAX,
            Some(Value::Number(n)) => n.as_f64().ok_or("token time claim is invalid")?,
            Some(_) => return Err("token time claim is not a number"),
        };
        if now >= expires_at {
            return Err("token expired");
        }
        // RFC 7662 section 2.2: `nbf` is "not to be used before"; an active
        // answer does not override it. Same rule and leeway as a JWT's.
        match doc.get("nbf") {
            None => {}
            Some(Value::Number(n)) => {
                let nbf = n.as_f64().ok_or("token time claim is invalid")?;
                if now < nbf - self.leeway {
                    return Err("token not yet valid");
                }
            }
            Some(_) => return Err("token time claim is not a number"),
        }
        match doc.get("iss") {
            None => {}
            Some(Value::String(iss)) if *iss == self.expected_issuer => {}
            Some(_) => return Err("token issuer is not accepted"),
        }
        let audience_ok = |a: &Value| {
            a.as_str()
                .is_some_and(|a| self.audiences.iter().any(|w| w == a))
        };
        match doc.get("aud") {
            None => {}
            Some(Value::Array(items)) if items.iter().any(audience_ok) => {}
            Some(a) if audience_ok(a) => {}
            Some(_) => return Err("token audience is not accepted"),
        }
        let binding = super::binding::from_cnf(doc.get("cnf"))?;
        let dpop_bound = binding.as_ref().is_some_and(|b| b.jkt.is_some());
        match doc.get("token_type") {
            None => {}
            Some(Value::String(t)) if t.eq_ignore_ascii_case("Bearer") => {}
            Some(Value::String(t)) if t.eq_ignore_ascii_case("DPoP") && dpop_bound => {}
            Some(_) => return Err("token type is not accepted"),
        }
        let text = |name: &str| doc.get(name).and_then(Value::as_str).map(String::from);
        Ok(Principal {
            issuer: self.issuer,
            key: None,
            expires_at,
            scopes: claims::scopes(doc, &self.scope_claims)?,
            subject: text("sub"),
            client_id: text("client_id"),
            token_id: text("jti"),
            issued_at: doc.get("iat").and_then(Value::as_f64),
            audiences: claims::audience_values(doc.get("aud")),
            binding,
            forwarded: Principal::forwarded_claims(&self.forward_claims, doc),
        })
    }
}

impl Answer {
    fn into_result(self) -> Result<Arc<Principal>, AuthError> {
        match self {
            Answer::Active(p) => Ok(p),
            Answer::Refused(reason) => Err(AuthError::InvalidToken(reason)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;
    use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
    use serde_json::json;
    use std::path::Path;

    fn introspector(method: &str) -> Introspector {
        let text = format!(
            "[upstreams.a]\nurl = \"http://127.0.0.1:1\"\n[issuers.i]\nissuer = \"https://idp/\"\naudiences = [\"api\"]\n[issuers.i.introspection]\nendpoint = \"http://127.0.0.1:9/introspect\"\nclient_id = \"gate way\"\nclient_secret = \"p@ss:w/rd\"\nauth_method = \"{method}\"\n"
        );
        let c = Config::from_toml(&text, Path::new("."), Vec::new()).unwrap();
        let i = &c.issuers[0];
        Introspector::new(
            0,
            i,
            i.introspection.as_ref().unwrap(),
            vec!["sub".into()],
            HttpFetcher::new().unwrap(),
            Clock::system(),
            None,
        )
    }

    const NOW: f64 = 1_700_000_000.0;

    fn judge(doc: Value) -> Result<Vec<String>, &'static str> {
        match introspector("client_secret_basic").judge(doc.as_object().unwrap(), NOW) {
            Answer::Active(p) => Ok(p.scopes.clone()),
            Answer::Refused(r) => Err(r),
        }
    }

    #[test]
    fn judge_table() {
        let cases: Vec<(Value, Result<Vec<String>, &str>)> = vec![
            (
                json!({"active": true, "scope": "a b"}),
                Ok(vec!["a".into(), "b".into()]),
            ),
            (json!({"active": false}), Err("token is not active")),
            (json!({"active": "true"}), Err("token is not active")),
            (json!({"active": 1}), Err("token is not active")),
            (json!({"scope": "a"}), Err("token is not active")),
            (
                json!({"active": true, "exp": NOW - 1.0}),
                Err("token expired"),
            ),
            (json!({"active": true, "exp": NOW + 10.0}), Ok(vec![])),
            (json!({"active": true, "nbf": NOW}), Ok(vec![])),
            (json!({"active": true, "nbf": NOW + 60.0}), Ok(vec![])),
            (
                json!({"active": true, "nbf": NOW + 61.0}),
                Err("token not yet valid"),
            ),
            (
                json!({"active": true, "nbf": "later"}),
                Err("token time claim is not a number"),
            ),
            (
                json!({"active": true, "exp": "soon"}),
                Err("token time claim is not a number"),
            ),
            (
                json!({"active": true, "iss": "https://other/"}),
                Err("token issuer is not accepted"),
            ),
            (json!({"active": true, "iss": "https://idp/"}), Ok(vec![])),
            (json!({"active": true, "aud": ["x", "api"]}), Ok(vec![])),
            (
                json!({"active": true, "aud": "x"}),
                Err("token audience is not accepted"),
            ),
            (
                json!({"active": true, "token_type": "DPoP"}),
                Err("token type is not accepted"),
            ),
            (json!({"active": true, "token_type": "bearer"}), Ok(vec![])),
            // A cnf binds an opaque token as it binds a JWT; `DPoP` as the
            // token_type needs cnf.jkt.
            (json!({"active": true, "cnf": {"jkt": "x"}}), Ok(vec![])),
            (
                json!({"active": true, "token_type": "dpop", "cnf": {"jkt": "x"}}),
                Ok(vec![]),
            ),
            (
                json!({"active": true, "token_type": "DPoP", "cnf": {"x5t#S256": "x"}}),
                Err("token type is not accepted"),
            ),
            (
                json!({"active": true, "cnf": {}}),
                Err("token confirmation (cnf) is malformed"),
            ),
        ];
        for (doc, want) in cases {
            assert_eq!(judge(doc.clone()), want, "{doc}");
        }
    }

    #[test]
    fn request_basic_encodes_credentials_before_base64() {
        let i = introspector("client_secret_basic");
        let req = i.request("tok en+/").unwrap();
        let auth = req.headers()[AUTHORIZATION].to_str().unwrap().to_string();
        let decoded = String::from_utf8(
            STANDARD
                .decode(auth.strip_prefix("Basic ").unwrap())
                .unwrap(),
        )
        .unwrap();
        assert_eq!(decoded, "gate+way:p%40ss%3Aw%2Frd");
        assert_eq!(
            req.headers()[CONTENT_TYPE],
            "application/x-www-form-urlencoded"
        );
        assert_eq!(req.headers()[ACCEPT], "application/json");
        assert_eq!(req.uri().query(), None);
    }

    #[test]
    fn request_post_puts_credentials_in_the_body() {
        let i = introspector("client_secret_post");
        let req = i.request("t").unwrap();
        assert!(!req.headers().contains_key(AUTHORIZATION));
    }

    #[test]
    fn form_encode_table() {
        assert_eq!(form_encode("a b+c/d=e&f~"), "a+b%2Bc%2Fd%3De%26f%7E");
        assert_eq!(form_encode("AZaz09*-._"), "AZaz09*-._");
    }
}
