//! The client-credentials token: one token for every request to the
//! upstream, held in a [`Slot`].
//!
//! A token is used until its `renew_at`. From then until it expires it is
//! still sent while one renewal runs in the background; past `expires_at`
//! (or before the first token) requests wait for the renewal. Every
//! renewal goes through [`renew`]: one request at a time, its result shared
//! by every waiter, run as its own task so it completes (and clears the
//! slot's flight) even if every waiter gives up. After the first token, a
//! background loop renews at each `renew_at`, so traffic does not wait at
//! expiry at all.

use arc_swap::ArcSwapOption;
use futures_util::future::{self, BoxFuture, FutureExt, Shared};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use super::request::{Token, TokenClient, TokenFailure};

/// A renewal in flight, awaited by every request that needs it.
type Renewal = Shared<BoxFuture<'static, Result<Arc<Token>, TokenFailure>>>;

/// The first wait after a failed renewal; it doubles up to [`RETRY_MAX`].
const RETRY_MIN: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(30);

/// The current token and the renewal in flight.
#[derive(Default)]
pub(super) struct Slot {
    current: ArcSwapOption<Token>,
    renewal: Mutex<Option<Renewal>>,
    /// While the current token is still valid, no renewal starts before
    /// this (epoch microseconds): a failing endpoint is not asked on
    /// every request.
    retry_after: AtomicU64,
    /// The background loop runs.
    scheduled: AtomicBool,
}

/// The token for a request now.
pub(super) async fn token(
    client: &Arc<TokenClient>,
    slot: &Arc<Slot>,
) -> Result<Arc<Token>, TokenFailure> {
    if let Some(current) = slot.current.load_full() {
        let now = client.clock.now();
        if now < current.renew_at {
            return Ok(current);
        }
        if now < current.expires_at {
            if client.clock.now_micros() >= slot.retry_after.load(Ordering::Relaxed) {
                // Runs on by itself: this request goes on with the current token.
                drop(renew(client, slot));
            }
            return Ok(current);
        }
    }
    renew(client, slot).await
}

/// Joins the renewal in flight or starts one; a renewal that finished
/// while this request waited for the lock is not repeated.
fn renew(client: &Arc<TokenClient>, slot: &Arc<Slot>) -> Renewal {
    let mut renewal = slot.renewal.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(in_flight) = renewal.as_ref() {
        return in_flight.clone();
    }
    let fresh = slot
        .current
        .load_full()
        .filter(|t| client.clock.now() < t.renew_at);
    if let Some(fresh) = fresh {
        return future::ready(Ok(fresh)).boxed().shared();
    }
    // The request's trace context goes along: the token request is a
    // span of the request that needed it.
    let task = tokio::spawn(crate::trace::in_current_context(fetch(
        client.clone(),
        slot.clone(),
    )));
    let shared = async move { task.await.unwrap_or(Err(TokenFailure::Interrupted)) }
        .boxed()
        .shared();
    *renewal = Some(shared.clone());
    shared
}

/// Clears the slot's renewal when the renewal task ends, however it ends.
struct Finished<'a>(&'a Slot);

impl Drop for Finished<'_> {
    fn drop(&mut self) {
        *self
            .0
            .renewal
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = None;
    }
}

/// The renewal task: one token request; a new token replaces the current
/// one before the flight is cleared.
async fn fetch(client: Arc<TokenClient>, slot: Arc<Slot>) -> Result<Arc<Token>, TokenFailure> {
    let _finished = Finished(&slot);
    match client.fetch(None).await {
        Ok(token) => {
            let token = Arc::new(token);
            slot.current.store(Some(token.clone()));
            if !slot.scheduled.swap(true, Ordering::Relaxed) {
                tokio::spawn(renewal_loop(client.clone(), Arc::downgrade(&slot)));
            }
            Ok(token)
        }
        Err(cause) => {
            let retry = client.clock.now_micros() + RETRY_MIN.as_micros() as u64;
            slot.retry_after.store(retry, Ordering::Relaxed);
            Err(cause)
        }
    }
}

/// Renews the token at each `renew_at` (at least [`RETRY_MIN`] apart),
/// and after a failure with a backoff, until the slot is dropped (its
/// runtime snapshot was replaced).
async fn renewal_loop(client: Arc<TokenClient>, slot: Weak<Slot>) {
    let mut backoff = RETRY_MIN;
    loop {
        let wait = {
            let Some(slot) = slot.upgrade() else { return };
            let current = slot.current.load_full();
            current.map_or(Duration::ZERO, |t| client.clock.until(t.renew_at))
        };
        tokio::time::sleep(wait.max(RETRY_MIN)).await;
        let Some(strong) = slot.upgrade() else { return };
        let renewal = renew(&client, &strong);
        drop(strong);
        match renewal.await {
            Ok(_) => backoff = RETRY_MIN,
            Err(cause) => {
                log_failure(&client.upstream, cause);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(RETRY_MAX);
            }
        }
    }
}

/// A background renewal's failure, which no request reports: a refusal
/// is our configuration's fault (error), anything else the endpoint's.
fn log_failure(upstream: &str, cause: TokenFailure) {
    match cause {
        TokenFailure::Refused(code) => {
            tracing::error!(
                upstream,
                code,
                "token renewal refused by the token endpoint"
            )
        }
        other => tracing::warn!(upstream, cause = %other, "token renewal failed"),
    }
}
