//! The [`KeyStore`]: one key set over time, shared by the snapshots whose
//! issuer has the same key source. Fetches (scheduled, before a swap, or
//! after an unknown kid) are single-flight, go through discovery when the
//! source is a discovery document, and install only a good answer; the
//! refresh loop backs off while fetches fail.

use arc_swap::ArcSwap;
use futures_util::future::{BoxFuture, FutureExt, Shared};
use http::Uri;
use opentelemetry::KeyValue;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

use super::{JwtIssuer, MAX_KEY_SET_BYTES};
use crate::auth::jwk::KeySet;
use crate::config::KeySource;
use crate::fetch::{FetchError, HttpFetcher};

/// A `Cache-Control: max-age` in this range replaces `jwks_refresh_s`.
const MAX_AGE_RANGE: (u64, u64) = (60, 86_400);
/// Longest wait between retries of a failing fetch.
const MAX_RETRY: Duration = Duration::from_secs(30);

#[derive(Default)]
pub(super) struct KeyState {
    pub(super) set: Option<Arc<KeySet>>,
    /// When the current set was fetched.
    pub(super) last_good: Option<Instant>,
    /// The latest fetch failed.
    pub(super) failing: bool,
    /// Bumped on every good fetch.
    pub(super) generation: u64,
}

pub(super) type RefreshResult = Result<Option<Duration>, FetchError>;
pub(super) type SharedRefresh = Shared<BoxFuture<'static, RefreshResult>>;

#[derive(Default)]
pub(super) struct MissState {
    pub(super) last: Option<Instant>,
    pub(super) inflight: Option<SharedRefresh>,
}

/// The key set over time, shared by every snapshot whose issuer has the
/// same key source. Its refresh loop ends when the last snapshot using it
/// is dropped.
pub struct KeyStore {
    /// The configuration of the snapshot started last: the key source and
    /// the fetch settings (`jwks_timeout`, `jwks_refresh`).
    pub(super) settings: ArcSwap<JwtIssuer>,
    pub(super) state: ArcSwap<KeyState>,
    pub(super) miss: Mutex<MissState>,
    pub(super) fetcher: HttpFetcher,
    pub(super) started: AtomicBool,
    /// Wakes the refresh loop when the settings change.
    pub(super) wake: Arc<Notify>,
    /// The key set URL found through discovery.
    pub(super) discovered: ArcSwap<Option<Uri>>,
}

impl KeyStore {
    /// Fetches once and installs the result if it is good; returns the
    /// `max-age` the response asked for.
    async fn refresh(&self) -> RefreshResult {
        let settings = self.settings.load_full();
        let span = crate::trace::child(
            "key set fetch",
            KeyValue::new("tokengate.issuer", settings.name.clone()),
        );
        let result = self.fetch(&settings).await;
        if let (Some(span), Err(e)) = (&span, &result) {
            span.failed(e.label());
        }
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
        let set = KeySet::from_json(&doc).map_err(|_| FetchError::NotKeySet)?;
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
            return Err(FetchError::IssuerMismatch);
        }
        let uri: Uri = doc
            .get("jwks_uri")
            .and_then(|v| v.as_str())
            .and_then(|s| s.parse().ok())
            .ok_or(FetchError::BadDiscovery)?;
        crate::config::fetch_scheme(&uri).map_err(|_| FetchError::BadDiscovery)?;
        Ok(uri)
    }

    /// Joins the fetch in flight or starts one. Every refresh (scheduled,
    /// before a swap, or after a miss) goes through here, so fetches never
    /// overlap and an older answer can never overwrite a newer one. The
    /// fetch runs as its own task: it completes (and clears `inflight`) even
    /// if every waiter gives up.
    pub(super) fn join_or_start(self: &Arc<Self>, miss: &mut MissState) -> SharedRefresh {
        if let Some(inflight) = &miss.inflight {
            return inflight.clone();
        }
        let this = Arc::clone(self);
        // A fetch started for a request is a span of that request's trace.
        let task = tokio::spawn(crate::trace::in_current_context(async move {
            let result = this.refresh().await;
            if let Ok(mut miss) = this.miss.lock() {
                miss.inflight = None;
            }
            result
        }));
        let fut = async move { task.await.unwrap_or(Err(FetchError::Failed)) }
            .boxed()
            .shared();
        miss.inflight = Some(fut.clone());
        fut
    }

    /// A refresh now (joining one in flight).
    pub(super) async fn refresh_now(self: &Arc<Self>) -> RefreshResult {
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
pub(super) async fn refresh_loop(weak: Weak<KeyStore>, wake: Arc<Notify>) {
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
}
