//! Authentication: from a bearer credential to a verified [`Principal`].
//!
//! | module | owns |
//! |---|---|
//! | [`bearer`] | the `Authorization` header grammar (RFC 6750, and the DPoP scheme) |
//! | [`binding`] | what a token is bound to (`cnf`) and the per-request check of it |
//! | [`dpop`] | DPoP proofs (RFC 9449): verification, replay cache, nonces |
//! | [`jws`] | JWT structure and header rules, before any crypto |
//! | [`json`] | strict JSON (no duplicate names) |
//! | [`claims`] | claim types and values, scopes |
//! | [`jwk`] | JWK Set parsing, filtering and key selection |
//! | [`keys`] | one issuer's key set over time: fetch, refresh, stale, miss |
//! | [`introspect`] | opaque tokens: RFC 7662 calls, their cache and limits |
//! | [`principal`] | the verified identity |
//! | [`shared_answers`] | introspection answers shared by the fleet through Redis |
//!
//! [`Authenticator::authenticate`] dispatches by token shape (a JWT to the
//! issuer its `iss` names; an opaque token to the first of the route's
//! issuers with introspection; never one mode after the other), verifies, and
//! remembers verified JWT identities (keyed by a SHA-256 of the token, never the
//! token) until their `exp`. A cached identity is re-checked on every use:
//! still unexpired, its issuer trusted by the route, its signing key still in
//! the issuer's latest key set. Failures are never cached.

pub mod bearer;
pub mod binding;
pub mod claims;
pub mod dpop;
pub mod error;
pub mod introspect;
pub mod json;
pub mod jwk;
pub mod jws;
pub mod keys;
pub mod principal;
pub mod shared_answers;

pub use error::AuthError;
pub use principal::Principal;

use aws_lc_rs::digest::{digest, SHA256};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use moka::sync::Cache;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::clock::Clock;
use crate::config::{Algorithm, Config, ConfigError, IssuerConfig};
use crate::fetch::HttpFetcher;
use crate::fleet::client::Redis;
use introspect::Introspector;
use keys::{IssuerKeys, JwtIssuer, Unusable};

type TokenHash = [u8; 32];

/// Verifies tokens for one runtime snapshot.
pub struct Authenticator {
    /// Parallel to `Config::issuers`.
    pub issuers: Vec<IssuerConfig>,
    /// Parallel to `issuers`: the key set of an issuer that verifies JWTs.
    pub keys: Vec<Option<Arc<IssuerKeys>>>,
    /// Parallel to `issuers`: the issuer's introspection client, if any.
    introspectors: Vec<Option<Arc<Introspector>>>,
    cache: Option<Cache<TokenHash, Arc<Principal>>>,
    cache_size: u64,
    cache_counters: crate::telemetry::CacheCounters,
    forward_claims: Vec<String>,
    /// DPoP proof state, when `[dpop]` is configured.
    pub dpop: Option<dpop::Dpop>,
    /// The fleet's Redis: a second-level introspection cache and the
    /// fleet-wide DPoP replay check.
    shared: Option<Arc<Redis>>,
    clock: Clock,
}

/// Expires a cached identity at its `exp`.
struct ExpireAtExp(Clock);

impl moka::Expiry<TokenHash, Arc<Principal>> for ExpireAtExp {
    fn expire_after_create(
        &self,
        _: &TokenHash,
        p: &Arc<Principal>,
        _: Instant,
    ) -> Option<Duration> {
        Some(self.0.until(p.expires_at))
    }
}

/// The issuer's key set is not usable now.
fn unusable(issuer: &IssuerKeys) -> impl Fn(Unusable) -> AuthError + '_ {
    move |why| AuthError::KeysUnusable {
        issuer: issuer.config.name.clone(),
        why,
    }
}

impl Authenticator {
    /// Builds issuer state (reading key files); no network I/O. State of
    /// `previous` (a reload's running snapshot) is carried over where it
    /// still holds: an issuer's key set and its refresh loop whenever its
    /// remote key source is unchanged (whatever else changed: the new
    /// settings apply once this snapshot is started), the introspection
    /// caches when the issuer's definition did not change, and the identity
    /// cache when no issuer changed. File key sets are always re-read.
    pub fn new(
        config: &Config,
        fetcher: &HttpFetcher,
        previous: Option<&Authenticator>,
        clock: &Clock,
        shared: Option<&Arc<Redis>>,
    ) -> Result<Authenticator, Vec<ConfigError>> {
        let forward_claims: Vec<String> = config
            .forward
            .claims
            .iter()
            .map(|(c, _)| c.clone())
            .collect();
        let same = |index: usize| -> Option<&Authenticator> {
            let prev = previous?;
            let old = prev.issuers.get(index)?;
            let same_redis = match (&prev.shared, shared) {
                (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                (None, None) => true,
                _ => false,
            };
            (*old == config.issuers[index] && prev.forward_claims == forward_claims && same_redis)
                .then_some(prev)
        };
        let mut keys = Vec::new();
        let mut errors = Vec::new();
        for issuer in &config.issuers {
            let Some(jwt) = JwtIssuer::of(issuer) else {
                keys.push(None);
                continue;
            };
            let carried = previous
                .and_then(|p| p.keys.iter().flatten().find(|k| k.config.name == jwt.name))
                .and_then(|old| IssuerKeys::carry(&jwt, old));
            match carried.map_or_else(|| IssuerKeys::new(jwt, fetcher.clone()), Ok) {
                Ok(set) => keys.push(Some(Arc::new(set))),
                Err(e) => errors.push(e),
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let introspectors = config
            .issuers
            .iter()
            .enumerate()
            .map(|(index, issuer)| {
                let cfg = issuer.introspection.as_ref()?;
                match same(index).and_then(|prev| prev.introspectors[index].clone()) {
                    Some(kept) => Some(kept),
                    None => Some(Arc::new(Introspector::new(
                        index,
                        issuer,
                        cfg,
                        forward_claims.clone(),
                        fetcher.clone(),
                        clock.clone(),
                        shared.cloned(),
                    ))),
                }
            })
            .collect();
        let size = config.server.identity_cache_size;
        let all_same = previous.is_some_and(|p| p.issuers.len() == config.issuers.len())
            && (0..config.issuers.len()).all(|i| same(i).is_some());
        let kept_cache = previous
            .filter(|p| all_same && p.cache_size == size)
            .and_then(|p| p.cache.clone());
        let cache = kept_cache.or_else(|| {
            (size > 0).then(|| {
                Cache::builder()
                    .max_capacity(size)
                    .expire_after(ExpireAtExp(clock.clone()))
                    .build()
            })
        });
        let dpop = config.dpop.as_ref().map(|d| {
            let previous = previous.and_then(|p| p.dpop.as_ref());
            dpop::Dpop::new(d, previous, clock, shared.cloned())
        });
        Ok(Authenticator {
            dpop,
            shared: shared.cloned(),
            issuers: config.issuers.clone(),
            keys,
            introspectors,
            cache,
            cache_size: size,
            cache_counters: crate::telemetry::CacheCounters::new("identity"),
            forward_claims,
            clock: clock.clone(),
        })
    }

    /// Before a reload's swap: fetches the key sets of remote sources that
    /// have never loaded (new or changed), concurrently, each bounded by its
    /// `jwks_timeout_ms`.
    pub async fn prefetch(&self) {
        futures_util::future::join_all(self.keys.iter().flatten().map(|k| k.prefetch())).await;
    }

    /// Applies this snapshot's key-set settings and starts background
    /// key-set fetches.
    pub fn start(&self) {
        for keys in self.keys.iter().flatten() {
            keys.start();
        }
    }

    /// Sets `tokengate_jwks_age_seconds` for every issuer with keys.
    pub fn record_key_set_ages(&self) {
        let now = Instant::now();
        for keys in self.keys.iter().flatten() {
            if let Some(age) = keys.age(now) {
                metrics::gauge!("tokengate_jwks_age_seconds", "issuer" => keys.config.name.clone())
                    .set(age.as_secs_f64());
            }
        }
    }

    /// Issuers whose keys cannot be used now, with the reason.
    pub fn not_ready(&self) -> Vec<(String, &'static str)> {
        let now = Instant::now();
        self.keys
            .iter()
            .flatten()
            .filter_map(|i| {
                i.usable(now)
                    .err()
                    .map(|why| (i.config.name.clone(), why.reason()))
            })
            .collect()
    }

    /// Verifies `token` for a route trusting `route_issuers`.
    pub async fn authenticate(
        &self,
        token: &str,
        route_issuers: &[usize],
    ) -> Result<Arc<Principal>, AuthError> {
        let principal = if jws::is_jwt_shaped(token) {
            self.cached_jwt(token, route_issuers).await?
        } else {
            let introspector = route_issuers
                .iter()
                .find_map(|&i| self.introspectors[i].as_ref())
                .ok_or(AuthError::InvalidToken(
                    "no configured issuer can verify this token",
                ))?;
            // Boxed: the introspection call's state (4.3 KB) would
            // otherwise make every verification's future that large, JWTs
            // included, and it is moved into place on every request.
            Box::pin(introspector.lookup(token)).await?
        };
        self.recheck(&principal, route_issuers)?;
        Ok(principal)
    }

    /// A verified JWT identity, from the cache when it is there. Concurrent
    /// first uses of one token are not coalesced: verification depends on
    /// the route's issuers, and a shared attempt could hand one route the
    /// answer meant for another.
    async fn cached_jwt(
        &self,
        token: &str,
        route_issuers: &[usize],
    ) -> Result<Arc<Principal>, AuthError> {
        let Some(cache) = &self.cache else {
            return self.verify_jwt(token, route_issuers).await.map(Arc::new);
        };
        let mut hash: TokenHash = [0; 32];
        hash.copy_from_slice(digest(&SHA256, token.as_bytes()).as_ref());
        if let Some(p) = cache.get(&hash) {
            self.cache_counters.hits.increment(1);
            return Ok(p);
        }
        self.cache_counters.misses.increment(1);
        let principal = Arc::new(self.verify_jwt(token, route_issuers).await?);
        cache.insert(hash, principal.clone());
        Ok(principal)
    }

    /// The checks that must hold on every use, cached or not.
    fn recheck(&self, p: &Principal, route_issuers: &[usize]) -> Result<(), AuthError> {
        if !route_issuers.contains(&p.issuer) {
            return Err(AuthError::InvalidToken("token issuer is not accepted"));
        }
        if self.clock.now() >= p.expires_at + self.issuers[p.issuer].leeway.as_secs_f64() {
            return Err(AuthError::InvalidToken("token expired"));
        }
        if let (Some(fingerprint), Some(keys)) = (&p.key, &self.keys[p.issuer]) {
            let (set, _) = keys.usable(Instant::now()).map_err(unusable(keys))?;
            if !set.contains_fingerprint(fingerprint) {
                return Err(AuthError::InvalidToken("token signing key was withdrawn"));
            }
        }
        Ok(())
    }

    /// Verifies a JWT with the keys of the one route issuer its `iss` names.
    async fn verify_jwt(
        &self,
        token: &str,
        route_issuers: &[usize],
    ) -> Result<Principal, AuthError> {
        let jwt = jws::parse(token).map_err(AuthError::InvalidToken)?;
        let iss = jwt.claims.get("iss").and_then(|v| v.as_str());
        let (index, issuer) = route_issuers
            .iter()
            .find_map(|&i| {
                let keys = self.keys[i].as_ref()?;
                (Some(keys.config.issuer.as_str()) == iss).then_some((i, keys))
            })
            .ok_or(AuthError::InvalidToken("token issuer is not accepted"))?;
        let config = &self.issuers[index];
        let rules = &issuer.config.jwt;
        let alg = Algorithm::from_name(&jwt.alg)
            .filter(|a| rules.algorithms.contains(a))
            .ok_or(AuthError::InvalidToken("token algorithm is not accepted"))?;
        claims::check_typ(jwt.typ.as_deref(), rules.profile).map_err(AuthError::InvalidToken)?;
        let mut principal = claims::validate(
            &jwt.claims,
            config,
            rules,
            index,
            &self.forward_claims,
            self.clock.now(),
        )
        .map_err(AuthError::InvalidToken)?;
        let (mut set, generation) = issuer.usable(Instant::now()).map_err(unusable(issuer))?;
        if matches!(
            set.select(jwt.kid.as_deref(), alg),
            Err(jwk::KeyMiss::UnknownKid)
        ) {
            issuer.refetch_on_miss(generation).await;
            set = issuer.usable(Instant::now()).map_err(unusable(issuer))?.0;
        }
        let key = set.select(jwt.kid.as_deref(), alg).map_err(|miss| {
            AuthError::InvalidToken(match miss {
                jwk::KeyMiss::UnknownKid => "token signing key is unknown",
                jwk::KeyMiss::NoFit => "token signing key does not fit its algorithm",
                jwk::KeyMiss::Ambiguous => "token names no key and the issuer has several",
            })
        })?;
        let signature = URL_SAFE_NO_PAD.decode(jwt.signature).unwrap_or_default();
        let valid = key.verify(alg, jwt.signing_input.as_bytes(), &signature);
        if !valid {
            return Err(AuthError::InvalidToken("token signature is invalid"));
        }
        principal.key = Some(key.fingerprint);
        Ok(principal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn authenticator(issuers: &str, previous: Option<&Authenticator>) -> Authenticator {
        authenticator_at(issuers, previous, &Clock::system())
    }

    fn authenticator_at(
        issuers: &str,
        previous: Option<&Authenticator>,
        clock: &Clock,
    ) -> Authenticator {
        crate::tls::install_default_provider();
        let text = format!("[upstreams.a]\nurl = \"http://127.0.0.1:1\"\n{issuers}");
        let config = Config::from_toml(&text, Path::new("."), Vec::new()).expect("config");
        let fetcher = HttpFetcher::new().expect("fetcher");
        Authenticator::new(&config, &fetcher, previous, clock, None).expect("authenticator")
    }

    /// A cached identity is refused once the clock passes `exp` plus the
    /// leeway, without waiting: the test steps the clock.
    #[test]
    fn recheck_refuses_an_identity_once_the_clock_passes_exp_and_leeway() {
        let clock = Clock::manual(1_000_000.0);
        let m = issuer("m", "jwks_uri = \"https://idp/jwks\"", "leeway_s = 5");
        let auth = authenticator_at(&m, None, &clock);
        let p = Principal {
            expires_at: 1_000_010.0,
            ..Principal::default()
        };
        let expired = Err(AuthError::InvalidToken("token expired"));
        for (step_s, want) in [
            (0, Ok(())),
            (14, Ok(())),
            (1, expired.clone()),
            (60, expired),
        ] {
            clock.advance(Duration::from_secs(step_s));
            assert_eq!(auth.recheck(&p, &[0]), want, "at {}", clock.now());
        }
        assert_eq!(
            auth.recheck(&p, &[1]),
            Err(AuthError::InvalidToken("token issuer is not accepted"))
        );
    }

    /// The verification future is moved into place on every request: the
    /// introspection call's state (boxed) must not make it as large as
    /// itself (4.3 KB in an optimized build before it was boxed).
    #[test]
    fn authenticate_future_is_small_whatever_the_token() {
        let clock = Clock::manual(1_000_000.0);
        let m = issuer("m", "jwks_uri = \"https://idp/jwks\"", "");
        let auth = authenticator_at(&m, None, &clock);
        let verifying = auth.authenticate("a.b.c", &[0]);
        let size = std::mem::size_of_val(&verifying);
        let limit = if cfg!(debug_assertions) { 2048 } else { 1024 };
        assert!(size <= limit, "{size} bytes");
    }

    fn issuer(name: &str, source: &str, extra: &str) -> String {
        format!("[issuers.{name}]\nissuer = \"https://{name}/\"\naudiences = [\"api\"]\n{source}\n{extra}\n")
    }

    #[test]
    fn new_carries_key_sets_by_name_while_the_remote_source_is_unchanged() {
        let url = "jwks_uri = \"https://idp/jwks\"";
        let old = authenticator(&issuer("m", url, ""), None);
        let cases = [
            (
                issuer("m", url, "leeway_s = 5\nalgorithms = [\"ES256\"]"),
                true,
            ),
            (
                issuer("a", url, "") + &issuer("m", url, "jwks_refresh_s = 9"),
                true,
            ),
            (issuer("m", "jwks_uri = \"https://idp/other\"", ""), false),
            (issuer("m", "discovery = true", ""), false),
            (issuer("n", url, ""), false),
        ];
        for (issuers, carried) in cases {
            let next = authenticator(&issuers, Some(&old));
            let m = next.issuers.iter().position(|i| i.issuer == "https://m/");
            let old_keys = old.keys[0].as_ref().expect("a key set");
            let shares = m.is_some_and(|m| {
                next.keys[m]
                    .as_ref()
                    .is_some_and(|k| k.shares_key_set(old_keys))
            });
            assert_eq!(shares, carried, "{issuers}");
            if let Some(m) = m {
                assert_eq!(
                    next.issuers[m].leeway.as_secs() == 5,
                    issuers.contains("leeway_s = 5")
                );
            }
        }
    }
}
