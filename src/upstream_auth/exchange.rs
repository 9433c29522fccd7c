//! Token exchange (RFC 8693): one token per caller token, cached under a
//! SHA-256 of the caller's token until the exchanged token's `renew_at`,
//! and never past the caller token's own `exp`, so an exchanged token
//! never outlives the credential it stands for. The cache is bounded
//! ([`MAX_CALLERS`]); concurrent requests with one caller token share one
//! token request (moka `try_get_with`); failures are never cached.

use aws_lc_rs::digest::{digest, SHA256};
use moka::future::Cache;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::request::{Token, TokenClient, TokenFailure};
use crate::clock::Clock;

/// Caller tokens whose exchanged token is remembered at most.
pub(super) const MAX_CALLERS: u64 = 10_000;

/// Frees an entry's memory once its `renew_at` passed; whether an entry
/// is still used is decided on read, by the clock.
struct UntilRenewal(Clock);

impl moka::Expiry<[u8; 32], Arc<Token>> for UntilRenewal {
    fn expire_after_create(
        &self,
        _: &[u8; 32],
        token: &Arc<Token>,
        _: Instant,
    ) -> Option<Duration> {
        Some(self.0.until(token.renew_at))
    }
}

pub(super) struct Exchanged {
    cache: Cache<[u8; 32], Arc<Token>>,
}

impl Exchanged {
    pub(super) fn new(clock: &Clock) -> Exchanged {
        Exchanged {
            cache: Cache::builder()
                .max_capacity(MAX_CALLERS)
                .expire_after(UntilRenewal(clock.clone()))
                .build(),
        }
    }

    /// The token exchanged for `caller` (which expires at `caller_exp`).
    pub(super) async fn token(
        &self,
        client: &TokenClient,
        caller: &str,
        caller_exp: f64,
    ) -> Result<Arc<Token>, TokenFailure> {
        let mut key = [0; 32];
        key.copy_from_slice(digest(&SHA256, caller.as_bytes()).as_ref());
        if let Some(cached) = self.cache.get(&key).await {
            if client.clock.now() < cached.renew_at {
                return Ok(cached);
            }
            self.cache.invalidate(&key).await;
        }
        let exchange = async {
            let mut token = client.fetch(Some(caller)).await?;
            token.renew_at = token.renew_at.min(caller_exp);
            Ok(Arc::new(token))
        };
        self.cache
            .try_get_with(key, exchange)
            .await
            .map_err(|e: Arc<TokenFailure>| *e)
    }
}
