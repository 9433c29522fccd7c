//! One issuer's signing keys over time (behavior contract section 3, "Key
//! sets"): loaded from a file at build, or fetched (directly or through
//! discovery) in the background; replaced atomically only by a good
//! response; kept while refreshes fail up to `jwks_max_stale_s`; refetched
//! on an unknown kid at most once per `jwks_miss_cooldown_s`, single-flight.
//!
//! Readers take the current set from an `ArcSwap` without locking; the only
//! lock guards the miss bookkeeping and is never held across I/O (waiters
//! share one in-flight fetch future instead).

use arc_swap::ArcSwap;
use futures_util::future::{BoxFuture, FutureExt, Shared};
use http::Uri;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use super::jwk::KeySet;
use crate::config::{ConfigError, IssuerConfig, KeySource};
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
    Stale,
}

impl Unusable {
    pub fn reason(self) -> &'static str {
        match self {
            Unusable::NotLoaded => "key set not loaded yet",
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

pub struct IssuerKeys {
    pub config: IssuerConfig,
    state: ArcSwap<KeyState>,
    miss: Mutex<MissState>,
    fetcher: HttpFetcher,
    started: AtomicBool,
    /// The key set URL found through discovery.
    discovered: ArcSwap<Option<Uri>>,
}

impl IssuerKeys {
    /// Loads a file key source now; remote sources load after [`start`].
    pub fn new(config: IssuerConfig, fetcher: HttpFetcher) -> Result<IssuerKeys, ConfigError> {
        let mut state = KeyState::default();
        if let Some(KeySource::File(path)) = &config.key_source {
            let key = format!("issuers.{}.jwks_file", config.name);
            let text = std::fs::read(path)
                .map_err(|e| ConfigError::new(&key, format!("cannot read: {e}")))?;
            let doc =
                serde_json::from_slice(&text).map_err(|_| ConfigError::new(&key, "not JSON"))?;
            let set = KeySet::from_json(&doc).map_err(|r| ConfigError::new(&key, r))?;
            state.set = Some(Arc::new(set));
            state.last_good = Some(Instant::now());
            state.generation = 1;
        }
        Ok(IssuerKeys {
            config,
            state: ArcSwap::from_pointee(state),
            miss: Mutex::new(MissState::default()),
            fetcher,
            started: AtomicBool::new(false),
            discovered: ArcSwap::from_pointee(None),
        })
    }

    fn is_remote(&self) -> bool {
        matches!(
            self.config.key_source,
            Some(KeySource::Url(_) | KeySource::Discovery(_))
        )
    }

    /// Seconds since the current key set was fetched (or loaded).
    pub fn age(&self, now: Instant) -> Option<Duration> {
        self.state
            .load()
            .last_good
            .map(|t| now.saturating_duration_since(t))
    }

    /// The current key set, if it may be used at `now`.
    pub fn usable(&self, now: Instant) -> Result<(Arc<KeySet>, u64), Unusable> {
        let state = self.state.load();
        let set = state.set.clone().ok_or(Unusable::NotLoaded)?;
        let too_old = state
            .last_good
            .is_some_and(|t| now.saturating_duration_since(t) > self.config.jwks_max_stale);
        if self.is_remote() && state.failing && too_old {
            return Err(Unusable::Stale);
        }
        Ok((set, state.generation))
    }

    /// Starts the background fetch loop once (needs a tokio runtime). The
    /// loop ends when this issuer is dropped (after a reload).
    pub fn start(self: &Arc<Self>) {
        if !self.is_remote() || self.started.swap(true, Ordering::SeqCst) {
            return;
        }
        let weak = Arc::downgrade(self);
        tokio::spawn(refresh_loop(weak));
    }

    /// Fetches once and installs the result if it is good; returns the
    /// `max-age` the response asked for.
    async fn refresh(&self) -> RefreshResult {
        let result = self.fetch().await;
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
        metrics::counter!("tokengate_jwks_fetches_total", "issuer" => self.config.name.clone(), "result" => label)
            .increment(1);
        match result {
            Ok((set, max_age)) => {
                tracing::info!(issuer = %self.config.name, keys = set.len(), skipped = set.skipped, "key set loaded");
                Ok(max_age)
            }
            Err(e) => {
                tracing::warn!(issuer = %self.config.name, error = %e, "key set fetch failed");
                Err(e)
            }
        }
    }

    async fn fetch(&self) -> Result<(Arc<KeySet>, Option<Duration>), FetchError> {
        let timeout = self.config.jwks_timeout;
        let uri = match &self.config.key_source {
            Some(KeySource::Url(uri)) => uri.clone(),
            Some(KeySource::Discovery(doc_uri)) => match self.discovered.load().as_ref() {
                Some(uri) => uri.clone(),
                None => {
                    let uri = self.discover(doc_uri, timeout).await?;
                    self.discovered.store(Arc::new(Some(uri.clone())));
                    uri
                }
            },
            _ => return Err(FetchError::Failed),
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

    async fn discover(&self, doc_uri: &Uri, timeout: Duration) -> Result<Uri, FetchError> {
        let (doc, _) = self
            .fetcher
            .get_json(doc_uri, timeout, MAX_KEY_SET_BYTES)
            .await?;
        if doc.get("issuer").and_then(|v| v.as_str()) != Some(self.config.issuer.as_str()) {
            tracing::warn!(issuer = %self.config.name, "discovery document names another issuer");
            return Err(FetchError::NotJson);
        }
        let uri: Uri = doc
            .get("jwks_uri")
            .and_then(|v| v.as_str())
            .and_then(|s| s.parse().ok())
            .ok_or(FetchError::NotJson)?;
        let loopback = uri.host().is_some_and(crate::config::is_loopback_host);
        match uri.scheme_str() {
            Some("https") => Ok(uri),
            Some("http") if loopback => Ok(uri),
            _ => Err(FetchError::NotJson),
        }
    }

    /// Joins the fetch in flight or starts one. Every refresh (scheduled or
    /// after a miss) goes through here, so fetches never overlap and an
    /// older answer can never overwrite a newer one. The fetch runs as its
    /// own task: it completes (and clears `inflight`) even if every waiter
    /// gives up.
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
    pub async fn refresh_now(self: &Arc<Self>) -> RefreshResult {
        let fetch = match self.miss.lock() {
            Ok(mut miss) => self.join_or_start(&mut miss),
            Err(_) => return Err(FetchError::Failed),
        };
        fetch.await
    }

    /// After an unknown kid: refetch unless the set changed since
    /// `seen_generation` or the cooldown has not passed; concurrent callers
    /// share one fetch.
    pub async fn refetch_on_miss(self: &Arc<Self>, seen_generation: u64) {
        if !self.is_remote() {
            return;
        }
        let fetch = {
            let Ok(mut miss) = self.miss.lock() else {
                return;
            };
            if self.state.load().generation != seen_generation {
                return;
            }
            if miss.inflight.is_none() {
                if miss
                    .last
                    .is_some_and(|t| t.elapsed() < self.config.jwks_miss_cooldown)
                {
                    return;
                }
                miss.last = Some(Instant::now());
            }
            self.join_or_start(&mut miss)
        };
        let _ = fetch.await;
    }
}

async fn refresh_loop(weak: Weak<IssuerKeys>) {
    let mut failures: u32 = 0;
    loop {
        let Some(keys) = weak.upgrade() else { return };
        let refresh = keys.config.jwks_refresh;
        let wait = match keys.refresh_now().await {
            Ok(max_age) => {
                failures = 0;
                max_age.unwrap_or(refresh)
            }
            Err(_) => {
                failures = failures.saturating_add(1);
                let backoff = Duration::from_millis(250).saturating_mul(1 << failures.min(8));
                backoff.min(refresh).min(MAX_RETRY)
            }
        };
        drop(keys);
        tokio::time::sleep(wait).await;
    }
}
