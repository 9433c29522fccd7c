//! One issuer's signing keys over time (docs/behavior.md section 5, "Key
//! sets"): loaded from a file at build, or fetched (directly or through
//! discovery) in the background; replaced atomically only by a good
//! response; kept while refreshes fail up to `jwks_max_stale_s`; refetched
//! on an unknown kid at most once per `jwks_miss_cooldown_s`, single-flight.
//!
//! Readers take the current set from an `ArcSwap` without locking; the only
//! lock guards the miss bookkeeping and is never held across I/O (waiters
//! share one in-flight fetch future instead).
//!
//! An [`IssuerKeys`] belongs to one runtime snapshot and holds that
//! snapshot's issuer configuration; the key set, its refresh loop and the
//! miss bookkeeping live in a [`KeyStore`] that a reload carries over to the
//! next snapshot whenever the key source is unchanged ([`IssuerKeys::carry`]),
//! so changing `leeway_s` or `audiences` never empties the key set. The
//! fetch settings (`jwks_timeout_ms`, `jwks_refresh_s`) of the snapshot
//! started last are the ones the store uses; the loop wakes to apply them.
//! A changed source gets a new store, fetched before the swap
//! ([`IssuerKeys::prefetch`]).
//!
//! `store` holds the key store itself; this module the per-snapshot view.

mod store;

use arc_swap::ArcSwap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

use super::jwk::KeySet;
use crate::config::{ConfigError, IssuerConfig, JwtRules, KeySource};
use crate::fetch::HttpFetcher;
use store::{refresh_loop, KeyState, MissState, RefreshResult};

pub use store::KeyStore;

/// A key set document larger than this is a failed fetch.
pub const MAX_KEY_SET_BYTES: usize = 1 << 20;

/// Why an issuer's keys cannot be used right now (answered 503).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unusable {
    NotLoaded,
    /// The set loaded, but every key in it was skipped (or it was empty).
    NoUsableKey,
    Stale,
}

impl Unusable {
    pub fn reason(self) -> &'static str {
        match self {
            Unusable::NotLoaded => "key set not loaded yet",
            Unusable::NoUsableKey => "key set has no usable key",
            Unusable::Stale => "key set refreshes failing for longer than jwks_max_stale_s",
        }
    }
}

/// What an issuer's key set is kept by: the issuer's name (for logs and
/// metrics), its `iss` (a discovery document must name it) and its JWT
/// rules.
#[derive(Debug, Clone, PartialEq)]
pub struct JwtIssuer {
    pub name: String,
    pub issuer: String,
    pub jwt: JwtRules,
}

impl JwtIssuer {
    /// The JWT side of `config`, if it verifies JWTs.
    pub fn of(config: &IssuerConfig) -> Option<JwtIssuer> {
        config.jwt.as_ref().map(|jwt| JwtIssuer {
            name: config.name.clone(),
            issuer: config.issuer.clone(),
            jwt: jwt.clone(),
        })
    }
}

/// One issuer's key set for one runtime snapshot: that snapshot's issuer
/// configuration over a [`KeyStore`] that may outlive it.
pub struct IssuerKeys {
    pub config: JwtIssuer,
    store: Arc<KeyStore>,
}

fn is_remote(config: &JwtIssuer) -> bool {
    matches!(
        config.jwt.key_source,
        KeySource::Url(_) | KeySource::Discovery(_)
    )
}

/// Whether two definitions fetch the same key set: the same remote source,
/// and for discovery the same issuer (the discovery document must name it).
/// A `jwks_file` is never shared: it is re-read on every reload.
fn same_remote_source(a: &JwtIssuer, b: &JwtIssuer) -> bool {
    let same_issuer = a.issuer == b.issuer;
    match (&a.jwt.key_source, &b.jwt.key_source) {
        (KeySource::Url(x), KeySource::Url(y)) => x == y,
        (KeySource::Discovery(x), KeySource::Discovery(y)) => x == y && same_issuer,
        _ => false,
    }
}

/// Reads and parses a `jwks_file`, logging its counts as a fetch does;
/// errors name the key.
fn load_file(config: &JwtIssuer, path: &std::path::Path) -> Result<KeySet, ConfigError> {
    let key = format!("issuers.{}.jwks_file", config.name);
    let text =
        std::fs::read(path).map_err(|e| ConfigError::new(&key, format!("cannot read: {e}")))?;
    let doc = serde_json::from_slice(&text).map_err(|_| ConfigError::new(&key, "not JSON"))?;
    let set = KeySet::from_json(&doc).map_err(|r| ConfigError::new(&key, r))?;
    let file = path.display();
    if set.is_empty() {
        tracing::warn!(issuer = %config.name, %file, keys = 0, skipped = set.skipped, "key set has no usable key; the issuer is not ready");
    } else {
        tracing::info!(issuer = %config.name, %file, keys = set.len(), skipped = set.skipped, "key set loaded");
    }
    Ok(set)
}

impl IssuerKeys {
    /// Loads a file key source now; remote sources load after [`start`]
    /// (or [`prefetch`]).
    ///
    /// [`start`]: IssuerKeys::start
    /// [`prefetch`]: IssuerKeys::prefetch
    pub fn new(config: JwtIssuer, fetcher: HttpFetcher) -> Result<IssuerKeys, ConfigError> {
        let mut state = KeyState::default();
        if let KeySource::File(path) = &config.jwt.key_source {
            state.set = Some(Arc::new(load_file(&config, path)?));
            state.last_good = Some(Instant::now());
            state.generation = 1;
        }
        let store = KeyStore {
            settings: ArcSwap::from_pointee(config.clone()),
            state: ArcSwap::from_pointee(state),
            miss: Mutex::new(MissState::default()),
            fetcher,
            started: AtomicBool::new(false),
            wake: Arc::new(Notify::new()),
            discovered: ArcSwap::from_pointee(None),
        };
        Ok(IssuerKeys {
            config,
            store: Arc::new(store),
        })
    }

    /// `config` over `previous`'s key set, when both fetch the same remote
    /// key source; `None` otherwise. Nothing changes for `previous` until
    /// the new snapshot is started.
    pub fn carry(config: &JwtIssuer, previous: &IssuerKeys) -> Option<IssuerKeys> {
        same_remote_source(config, &previous.config).then(|| IssuerKeys {
            config: config.clone(),
            store: Arc::clone(&previous.store),
        })
    }

    /// Whether `self` and `other` share one key set (a reload carried it).
    pub fn shares_key_set(&self, other: &IssuerKeys) -> bool {
        Arc::ptr_eq(&self.store, &other.store)
    }

    /// Usable keys in the current set, or `None` before the first load.
    pub fn key_count(&self) -> Option<usize> {
        self.store.state.load().set.as_ref().map(|s| s.len())
    }

    fn is_remote(&self) -> bool {
        is_remote(&self.config)
    }

    /// Seconds since the current key set was fetched (or loaded).
    pub fn age(&self, now: Instant) -> Option<Duration> {
        self.store
            .state
            .load()
            .last_good
            .map(|t| now.saturating_duration_since(t))
    }

    /// The current key set, if it may be used at `now`: loaded, with at
    /// least one usable key, and not stale.
    pub fn usable(&self, now: Instant) -> Result<(Arc<KeySet>, u64), Unusable> {
        let state = self.store.state.load();
        let set = state.set.clone().ok_or(Unusable::NotLoaded)?;
        if set.is_empty() {
            return Err(Unusable::NoUsableKey);
        }
        let too_old = state
            .last_good
            .is_some_and(|t| now.saturating_duration_since(t) > self.config.jwt.jwks_max_stale);
        if self.is_remote() && state.failing && too_old {
            return Err(Unusable::Stale);
        }
        Ok((set, state.generation))
    }

    /// Makes this snapshot's fetch settings the store's, and starts the
    /// background fetch loop once (needs a tokio runtime). The loop ends
    /// when no snapshot uses the store any more.
    pub fn start(&self) {
        if !self.is_remote() {
            return;
        }
        let store = &self.store;
        if **store.settings.load() != self.config {
            store.settings.store(Arc::new(self.config.clone()));
            store.wake.notify_one();
        }
        if store.started.swap(true, Ordering::SeqCst) {
            return;
        }
        tokio::spawn(refresh_loop(Arc::downgrade(store), Arc::clone(&store.wake)));
    }

    /// Before a reload's swap: a remote key set that has never loaded (a
    /// new or changed source) is fetched now, waiting at most
    /// `jwks_timeout_ms`. A failure is left to readiness and the refresh
    /// loop, as at start.
    pub async fn prefetch(&self) {
        if !self.is_remote() || self.store.state.load().set.is_some() {
            return;
        }
        let fetch = self.store.refresh_now();
        let _ = tokio::time::timeout(self.config.jwt.jwks_timeout, fetch).await;
    }

    /// A refresh now (joining one in flight).
    pub async fn refresh_now(&self) -> RefreshResult {
        self.store.refresh_now().await
    }

    /// After an unknown kid: refetch unless the set changed since
    /// `seen_generation` or the cooldown has not passed; concurrent callers
    /// share one fetch.
    pub async fn refetch_on_miss(&self, seen_generation: u64) {
        if !self.is_remote() {
            return;
        }
        let store = &self.store;
        let fetch = {
            let Ok(mut miss) = store.miss.lock() else {
                return;
            };
            if store.state.load().generation != seen_generation {
                return;
            }
            if miss.inflight.is_none() {
                if miss
                    .last
                    .is_some_and(|t| t.elapsed() < self.config.jwt.jwks_miss_cooldown)
                {
                    return;
                }
                miss.last = Some(Instant::now());
            }
            store.join_or_start(&mut miss)
        };
        let _ = fetch.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issuer(lines: &str) -> JwtIssuer {
        let text = format!(
            "[upstreams.a]\nurl = \"http://127.0.0.1:1\"\n[issuers.i]\naudiences = [\"api\"]\n{lines}\n"
        );
        let c = crate::config::Config::from_toml(&text, std::path::Path::new("."), Vec::new())
            .expect("config");
        JwtIssuer::of(&c.issuers[0]).expect("a key source")
    }

    #[test]
    fn same_remote_source_table() {
        let url = "issuer = \"https://idp/\"\njwks_uri = \"https://idp/jwks\"";
        let disc = "issuer = \"https://idp/\"\ndiscovery = true";
        let file = "issuer = \"https://idp/\"\njwks_file = \"Cargo.toml\"";
        let cases = [
            (url, url, true),
            (
                url,
                "issuer = \"https://idp/\"\njwks_uri = \"https://idp/jwks\"\nleeway_s = 5\n\
                 jwks_refresh_s = 10\njwks_timeout_ms = 100\nalgorithms = [\"ES256\"]",
                true,
            ),
            (
                url,
                "issuer = \"https://other/\"\njwks_uri = \"https://idp/jwks\"",
                true,
            ),
            (
                url,
                "issuer = \"https://idp/\"\njwks_uri = \"https://idp/jwks2\"",
                false,
            ),
            (url, disc, false),
            (disc, disc, true),
            (
                disc,
                "issuer = \"https://idp/\"\ndiscovery = true\nleeway_s = 1",
                true,
            ),
            (disc, "issuer = \"https://idp\"\ndiscovery = true", false),
            (disc, "issuer = \"https://idp2/\"\ndiscovery = true", false),
            (file, file, false),
        ];
        for (a, b, want) in cases {
            assert_eq!(
                same_remote_source(&issuer(a), &issuer(b)),
                want,
                "{a} | {b}"
            );
        }
    }
}
