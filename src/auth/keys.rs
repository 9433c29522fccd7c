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

use arc_swap::ArcSwap;
use futures_util::future::{BoxFuture, FutureExt, Shared};
use http::Uri;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

use super::jwk::KeySet;
use crate::config::{ConfigError, IssuerConfig, JwtRules, KeySource};
use crate::fetch::{FetchError, HttpFetcher};

/// A key set document larger than this is a failed fetch.
pub const MAX_KEY_SET_BYTES: usize = 1 << 20;
/// A `Cache-Control: max-age` in this range replaces `jwks_refresh_s`.
const MAX_AGE_RANGE: (u64, u64) = (60, 86_400);
/// Longest wait between retries of a failing fetch.
const MAX_RETRY: Duration = Duration::from_secs(30);

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

#[derive(Default)]
struct KeyState {
    set: Option<Arc<KeySet>>,
    /// When the current set was fetched.
    last_good: Option<Instant>,
    /// The latest fetch failed.
    failing: bool,
    /// Bumped on every good fetch.
    generation: u64,
}

type RefreshResult = Result<Option<Duration>, FetchError>;
type SharedRefresh = Shared<BoxFuture<'static, RefreshResult>>;

#[derive(Default)]
struct MissState {
    last: Option<Instant>,
    inflight: Option<SharedRefresh>,
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

/// The key set over time, shared by every snapshot whose issuer has the
/// same key source. Its refresh loop ends when the last snapshot using it
/// is dropped.
pub struct KeyStore {
    /// The configuration of the snapshot started last: the key source and
    /// the fetch settings (`jwks_timeout`, `jwks_refresh`).
    settings: ArcSwap<JwtIssuer>,
    state: ArcSwap<KeyState>,
    miss: Mutex<MissState>,
    fetcher: HttpFetcher,
    started: AtomicBool,
    /// Wakes the refresh loop when the settings change.
    wake: Arc<Notify>,
    /// The key set URL found through discovery.
    discovered: ArcSwap<Option<Uri>>,
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

impl KeyStore {
    /// Fetches once and installs the result if it is good; returns the
    /// `max-age` the response asked for.
    async fn refresh(&self) -> RefreshResult {
        let settings = self.settings.load_full();
        let result = self.fetch(&settings).await;
        let current = self.state.load_full();
        let next = match &result {
            Ok((set, _)) => KeyState {
                set: Some(Arc::clone(set)),
                last_good: Some(Instant::now()),
                failing: false,
                generation: current.generation + 1,
            },
            Err(_) => KeyState {
                set: current.set.clone(),
                last_good: current.last_good,
                failing: true,
                generation: current.generation,
            },
        };
        self.state.store(Arc::new(next));
        let label = result.as_ref().map_or_else(|e| e.label(), |_| "ok");
        metrics::counter!("tokengate_jwks_fetches_total", "issuer" => settings.name.clone(), "result" => label)
            .increment(1);
        match result {
            Ok((set, max_age)) if set.is_empty() => {
                tracing::warn!(issuer = %settings.name, keys = 0, skipped = set.skipped, "key set has no usable key; the issuer is not ready");
                Ok(max_age)
            }
            Ok((set, max_age)) => {
                tracing::info!(issuer = %settings.name, keys = set.len(), skipped = set.skipped, "key set loaded");
                Ok(max_age)
            }
            Err(e) => {
                tracing::warn!(issuer = %settings.name, error = %e, "key set fetch failed");
                Err(e)
            }
        }
    }

    async fn fetch(
        &self,
        settings: &JwtIssuer,
    ) -> Result<(Arc<KeySet>, Option<Duration>), FetchError> {
        let timeout = settings.jwt.jwks_timeout;
        let uri = match &settings.jwt.key_source {
            KeySource::Url(uri) => uri.clone(),
            KeySource::Discovery(doc_uri) => match self.discovered.load().as_ref() {
                Some(uri) => uri.clone(),
                None => {
                    let uri = self.discover(settings, doc_uri).await?;
                    self.discovered.store(Arc::new(Some(uri.clone())));
                    uri
                }
            },
            KeySource::File(_) => return Err(FetchError::Failed),
        };
        let result = self
            .fetcher
            .get_json(&uri, timeout, MAX_KEY_SET_BYTES)
            .await;
        if result.is_err() {
            // The document may have moved: discover again next time.
            self.discovered.store(Arc::new(None));
        }
        let (doc, fetched) = result?;
        let set = KeySet::from_json(&doc).map_err(|_| FetchError::NotJson)?;
        let max_age = fetched
            .max_age()
            .filter(|a| (MAX_AGE_RANGE.0..=MAX_AGE_RANGE.1).contains(&a.as_secs()));
        Ok((Arc::new(set), max_age))
    }

    async fn discover(&self, settings: &JwtIssuer, doc_uri: &Uri) -> Result<Uri, FetchError> {
        let (doc, _) = self
            .fetcher
            .get_json(doc_uri, settings.jwt.jwks_timeout, MAX_KEY_SET_BYTES)
            .await?;
        if doc.get("issuer").and_then(|v| v.as_str()) != Some(settings.issuer.as_str()) {
            tracing::warn!(issuer = %settings.name, "discovery document names another issuer");
            return Err(FetchError::NotJson);
        }
        let uri: Uri = doc
            .get("jwks_uri")
            .and_then(|v| v.as_str())
            .and_then(|s| s.parse().ok())
            .ok_or(FetchError::NotJson)?;
        crate::config::fetch_scheme(&uri).map_err(|_| FetchError::NotJson)?;
        Ok(uri)
    }

    /// Joins the fetch in flight or starts one. Every refresh (scheduled,
    /// before a swap, or after a miss) goes through here, so fetches never
    /// overlap and an older answer can never overwrite a newer one. The
    /// fetch runs as its own task: it completes (and clears `inflight`) even
    /// if every waiter gives up.
    fn join_or_start(self: &Arc<Self>, miss: &mut MissState) -> SharedRefresh {
        if let Some(inflight) = &miss.inflight {
            return inflight.clone();
        }
        let this = Arc::clone(self);
        let task = tokio::spawn(async move {
            let result = this.refresh().await;
            if let Ok(mut miss) = this.miss.lock() {
                miss.inflight = None;
            }
            result
        });
        let fut = async move { task.await.unwrap_or(Err(FetchError::Failed)) }
            .boxed()
            .shared();
        miss.inflight = Some(fut.clone());
        fut
    }

    /// A refresh now (joining one in flight).
    async fn refresh_now(self: &Arc<Self>) -> RefreshResult {
        let fetch = match self.miss.lock() {
            Ok(mut miss) => self.join_or_start(&mut miss),
            Err(_) => return Err(FetchError::Failed),
        };
        fetch.await
    }

    /// Whether the current set loaded without a usable key.
    fn has_no_usable_key(&self) -> bool {
        self.state.load().set.as_ref().is_some_and(|s| s.is_empty())
    }
}

/// The wait before the next fetch: `max-age` or `jwks_refresh_s` after a
/// good fetch; after `failures` failed ones in a row, an exponential
/// backoff from 500 ms, capped by both.
fn retry_wait(refresh: Duration, failures: u32, max_age: Option<Duration>) -> Duration {
    if failures == 0 {
        return max_age.unwrap_or(refresh);
    }
    let backoff = Duration::from_millis(250).saturating_mul(1 << failures.min(8));
    backoff.min(refresh).min(MAX_RETRY)
}

/// Fetches when due, until the store is dropped. A store that already has
/// a set (fetched before the swap) waits a full interval first. A settings
/// change wakes it to recompute the due time. A set without a usable key
/// is retried like a failed fetch: a retry may fix it.
async fn refresh_loop(weak: Weak<KeyStore>, wake: Arc<Notify>) {
    let mut failures: u32 = 0;
    let mut max_age = None;
    let mut last_attempt = weak.upgrade().and_then(|s| s.state.load().last_good);
    loop {
        loop {
            let Some(store) = weak.upgrade() else { return };
            let wait = retry_wait(store.settings.load().jwt.jwks_refresh, failures, max_age);
            drop(store);
            let Some(due) = last_attempt.map(|t| t + wait) else {
                break;
            };
            if due <= Instant::now() {
                break;
            }
            tokio::select! {
                _ = tokio::time::sleep_until(due.into()) => break,
                _ = wake.notified() => {}
            }
        }
        let Some(store) = weak.upgrade() else { return };
        let result = store.refresh_now().await;
        let no_key = store.has_no_usable_key();
        drop(store);
        last_attempt = Some(Instant::now());
        match result {
            Ok(age) if !no_key => {
                failures = 0;
                max_age = age;
            }
            _ => failures = failures.saturating_add(1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_wait_table() {
        let s = Duration::from_secs;
        let ms = Duration::from_millis;
        let cases = [
            // (refresh, failures, max_age) -> wait
            ((s(300), 0, None), s(300)),
            ((s(300), 0, Some(s(120))), s(120)),
            ((s(300), 1, None), ms(500)),
            ((s(300), 1, Some(s(120))), ms(500)),
            ((s(300), 3, None), s(2)),
            ((s(300), 30, None), s(30)),
            ((s(1), 5, None), s(1)),
        ];
        for ((refresh, failures, max_age), want) in cases {
            assert_eq!(
                retry_wait(refresh, failures, max_age),
                want,
                "{refresh:?} {failures} {max_age:?}"
            );
        }
    }

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
