//! Rate limits (extensions section 12): the state of every
//! `[rate_limits.NAME]`, the decision for one request, and the headers that
//! report it (`RateLimit-Policy` and `RateLimit`, from the IETF httpapi
//! rate-limit draft). The request path asks [`Limit::check`] after
//! authentication and scopes; the 429 itself is rendered by `error`.
//!
//! Each limit counts requests per key (a `client_id` or `sub` of one
//! issuer, the client address, or the token) with GCRA ([`gcra`]). With
//! `[redis]` the state is shared by the fleet ([`shared`]); without it, and
//! whenever Redis is unavailable, each instance decides from its own state
//! ([`local`]). Keys are SHA-256 digests: neither Redis nor memory holds a
//! token, and a claim value cannot make a key long.

pub mod gcra;
pub mod local;
pub mod shared;

use aws_lc_rs::digest::{Context, SHA256};
use http::{HeaderMap, HeaderName, HeaderValue};
use std::fmt::Write as _;
use std::sync::Arc;

use crate::clock::Clock;
use crate::config::{RateLimitConfig, RateLimitKey};
use crate::fleet::client::Redis;
use gcra::{ceil_secs, Decision, Gcra};
use local::Local;

/// The policy header: `"<name>";q=<requests>;w=<window_s>`.
pub static RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
/// The state header: `"<name>";r=<remaining>;t=<seconds until a request passes>`.
pub static RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// The SHA-256 digest a request is counted under.
pub type Key = [u8; 32];

/// Every configured limit, in configuration order (routes refer to them by
/// index).
#[derive(Default)]
pub struct RateLimits {
    limits: Vec<Arc<Limit>>,
}

impl RateLimits {
    /// The limits of `configs`; an unchanged limit keeps `previous`'s
    /// local state, so a reload does not hand out fresh allowances.
    pub fn new(configs: &[RateLimitConfig], previous: Option<&RateLimits>) -> RateLimits {
        let limits = configs
            .iter()
            .map(|config| {
                previous
                    .and_then(|p| p.limits.iter().find(|l| l.config == *config))
                    .cloned()
                    .unwrap_or_else(|| Arc::new(Limit::new(config)))
            })
            .collect();
        RateLimits { limits }
    }

    /// The limit at `index` of [`crate::config::Config::rate_limits`].
    pub fn get(&self, index: usize) -> Option<&Limit> {
        self.limits.get(index).map(|l| &**l)
    }
}

/// One `[rate_limits.NAME]` with its state.
pub struct Limit {
    pub config: RateLimitConfig,
    gcra: Gcra,
    local: Local,
    /// `RateLimit-Policy`, made once.
    policy: HeaderValue,
}

/// Who a request is counted as: what the verified token and the
/// connection show. `None` where there is no token, or no such claim.
#[derive(Debug, Clone, Copy)]
pub struct Caller<'a> {
    /// The name of the issuer that verified the token: `sub` and
    /// `client_id` are unique per issuer only.
    pub issuer: Option<&'a str>,
    pub subject: Option<&'a str>,
    pub client_id: Option<&'a str>,
    pub token: Option<&'a str>,
    /// The client address after `trusted_proxies`.
    pub ip: &'a [u8],
}

/// The answer for one request, with the headers that report it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub allowed: bool,
    /// `Retry-After` of a refusal: whole seconds, at least 1.
    pub retry_after_s: u64,
    /// `RateLimit-Policy`.
    pub policy: HeaderValue,
    /// `RateLimit`.
    pub state: HeaderValue,
}

impl Limit {
    fn new(config: &RateLimitConfig) -> Limit {
        let policy = format!(
            "\"{}\";q={};w={}",
            config.name,
            config.requests,
            config.window.as_secs()
        );
        Limit {
            gcra: Gcra::new(config.requests, config.window),
            local: Local::new(config.window),
            // Names are validated at load to be tokens a header can carry.
            policy: HeaderValue::from_str(&policy)
                .unwrap_or_else(|_| HeaderValue::from_static("\"-\"")),
            config: config.clone(),
        }
    }

    /// Counts one request of `caller` and decides it: through `redis` when
    /// it is configured and available, else (or when it fails to answer)
    /// from this instance's state.
    pub async fn check(
        &self,
        caller: &Caller<'_>,
        redis: Option<&Redis>,
        clock: &Clock,
    ) -> Verdict {
        let key = key_of(self.config.key, caller);
        let shared = match redis.filter(|r| r.available()) {
            Some(r) => shared::check(r, &self.gcra, &self.redis_key(r, &key)).await,
            None => None,
        };
        let now = clock.now_micros().saturating_mul(1_000);
        let decision = match shared {
            Some(d) => {
                if d.allowed {
                    self.local.charge(&self.gcra, key, now);
                }
                d
            }
            None => self.local.check(&self.gcra, key, now),
        };
        self.verdict(&decision)
    }

    /// `{prefix}rl:{<name>:<hex digest>}`: one hash tag per state.
    fn redis_key(&self, redis: &Redis, key: &Key) -> String {
        let mut name = format!("rl:{{{}:", self.config.name);
        for b in key {
            let _ = write!(name, "{b:02x}");
        }
        name.push('}');
        redis.key(&name)
    }

    fn verdict(&self, d: &Decision) -> Verdict {
        let wait_s = ceil_secs(d.wait);
        let state = format!(
            "\"{}\";r={};t={}",
            self.config.name,
            d.remaining,
            if d.allowed { wait_s } else { wait_s.max(1) }
        );
        Verdict {
            allowed: d.allowed,
            retry_after_s: wait_s.max(1),
            policy: self.policy.clone(),
            state: HeaderValue::from_str(&state).unwrap_or_else(|_| self.policy.clone()),
        }
    }
}

impl Verdict {
    /// Adds `RateLimit-Policy` and `RateLimit` to `headers`, after any
    /// the upstream sent (both are lists; each item names its policy).
    pub fn add_to(&self, headers: &mut HeaderMap) {
        headers.append(&RATELIMIT_POLICY, self.policy.clone());
        headers.append(&RATELIMIT, self.state.clone());
    }
}

/// The digest a request is counted under for a limit keyed by `kind`; a key
/// the request cannot give (no token on an `optional` route, no such claim)
/// falls back to the client address. The kind is part of the digest, so a
/// `sub` that reads like an address is not that address.
fn key_of(kind: RateLimitKey, caller: &Caller) -> Key {
    let issuer = caller.issuer.unwrap_or_default().as_bytes();
    let derived: Option<(&str, &[u8], &[u8])> = match kind {
        RateLimitKey::ClientId => caller
            .client_id
            .map(|v| ("client_id", issuer, v.as_bytes())),
        RateLimitKey::Sub => caller.subject.map(|v| ("sub", issuer, v.as_bytes())),
        RateLimitKey::Token => caller.token.map(|t| ("token", &b""[..], t.as_bytes())),
        RateLimitKey::Ip => None,
    };
    let (label, scope, value) = derived.unwrap_or(("ip", b"", caller.ip));
    let mut ctx = Context::new(&SHA256);
    for part in [label.as_bytes(), b"\0", scope, b"\0", value] {
        ctx.update(part);
    }
    let mut key = [0u8; 32];
    key.copy_from_slice(ctx.finish().as_ref());
    key
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn config(key: RateLimitKey, requests: u64, window_s: u64) -> RateLimitConfig {
        RateLimitConfig {
            name: "per_client".into(),
            key,
            requests,
            window: Duration::from_secs(window_s),
        }
    }

    fn caller<'a>(subject: Option<&'a str>, token: Option<&'a str>, ip: &'a str) -> Caller<'a> {
        Caller {
            issuer: token.map(|_| "corp"),
            subject,
            client_id: subject.map(|_| "app-1"),
            token,
            ip: ip.as_bytes(),
        }
    }

    /// Which requests share a state, per kind of key.
    #[test]
    fn key_of_table() {
        use RateLimitKey::*;
        let alice = caller(Some("alice"), Some("t1"), "10.0.0.1");
        let alice_elsewhere = caller(Some("alice"), Some("t2"), "10.0.0.2");
        let bob_same_ip = caller(Some("bob"), Some("t3"), "10.0.0.1");
        let anonymous = caller(None, None, "10.0.0.1");
        let sub_like_ip = caller(Some("10.0.0.1"), Some("t4"), "10.0.0.9");
        let other_issuer = Caller {
            issuer: Some("partner"),
            ..alice
        };
        let cases = [
            // (kind, a, b, same state?)
            (Sub, alice, alice_elsewhere, true),
            (Sub, alice, bob_same_ip, false),
            (Sub, alice, other_issuer, false),
            (Sub, anonymous, bob_same_ip, false),
            (Sub, anonymous, caller(None, None, "10.0.0.1"), true),
            (Sub, sub_like_ip, anonymous, false),
            (ClientId, alice, bob_same_ip, true),
            (ClientId, alice, other_issuer, false),
            (Ip, alice, bob_same_ip, true),
            (Ip, alice, alice_elsewhere, false),
            (Ip, anonymous, alice, true),
            (Token, alice, alice_elsewhere, false),
            (
                Token,
                alice,
                Caller {
                    ip: b"10.9.9.9",
                    ..alice
                },
                true,
            ),
            // No token: the address, for every kind.
            (Token, anonymous, caller(None, None, "10.0.0.1"), true),
        ];
        for (i, (kind, a, b, same)) in cases.into_iter().enumerate() {
            assert_eq!(key_of(kind, &a) == key_of(kind, &b), same, "case {i}");
        }
        // The fallback is the address's own state, whatever the kind.
        assert_eq!(key_of(Sub, &anonymous), key_of(Ip, &anonymous));
    }

    #[tokio::test]
    async fn check_without_redis_reports_the_draft_headers() {
        let clock = Clock::manual(1_700_000_000.0);
        let limit = Limit::new(&config(RateLimitKey::Sub, 2, 60));
        let who = caller(Some("alice"), Some("t"), "10.0.0.1");
        let mut states = Vec::new();
        for _ in 0..3 {
            let v = limit.check(&who, None, &clock).await;
            assert_eq!(v.policy, "\"per_client\";q=2;w=60");
            states.push((v.allowed, v.retry_after_s, v.state));
        }
        assert_eq!(
            states,
            [
                (true, 1, HeaderValue::from_static("\"per_client\";r=1;t=0")),
                (
                    true,
                    30,
                    HeaderValue::from_static("\"per_client\";r=0;t=30")
                ),
                (
                    false,
                    30,
                    HeaderValue::from_static("\"per_client\";r=0;t=30")
                ),
            ]
        );
        clock.advance(Duration::from_millis(29_500));
        let v = limit.check(&who, None, &clock).await;
        assert_eq!((v.allowed, v.retry_after_s), (false, 1));
        assert_eq!(v.state, "\"per_client\";r=0;t=1");
        clock.advance(Duration::from_millis(500));
        assert!(limit.check(&who, None, &clock).await.allowed);
    }

    #[test]
    fn new_keeps_the_state_of_unchanged_limits_only() {
        let a = config(RateLimitKey::Sub, 2, 60);
        let b = RateLimitConfig {
            name: "other".into(),
            ..a.clone()
        };
        let first = RateLimits::new(&[a.clone(), b.clone()], None);
        let changed = RateLimitConfig {
            requests: 3,
            ..b.clone()
        };
        let next = RateLimits::new(&[a, changed], Some(&first));
        assert!(Arc::ptr_eq(&first.limits[0], &next.limits[0]));
        assert!(!Arc::ptr_eq(&first.limits[1], &next.limits[1]));
        assert!(next.get(2).is_none());
    }

    #[test]
    fn verdict_add_to_appends_after_the_upstream_s_own() {
        let limit = Limit::new(&config(RateLimitKey::Ip, 5, 10));
        let v = limit.verdict(&Decision {
            allowed: true,
            remaining: 4,
            wait: 0,
        });
        let mut headers = HeaderMap::new();
        headers.insert(&RATELIMIT, HeaderValue::from_static("\"upstream\";r=9;t=0"));
        v.add_to(&mut headers);
        let states: Vec<_> = headers.get_all(&RATELIMIT).iter().collect();
        assert_eq!(states, ["\"upstream\";r=9;t=0", "\"per_client\";r=4;t=0"]);
        assert_eq!(headers[&RATELIMIT_POLICY], "\"per_client\";q=5;w=10");
    }
}
