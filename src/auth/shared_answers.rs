//! Introspection answers shared by the fleet through Redis (extensions
//! section 11): the answer document (never the token) under
//! `{prefix}introspection:<hex SHA-256 of endpoint and token>` with the
//! local cache's lifetime, and a lock key beside it that one instance holds
//! while it asks the endpoint, so that N instances receiving one new token
//! make one call. Each instance judges a shared document by its own rules.
//! Every Redis failure degrades to the instance's own cache and calls.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::time::Duration;

use crate::fleet::client::Redis;

/// How often a waiting instance looks for the answer another one is
/// getting.
const POLL: Duration = Duration::from_millis(10);

/// What is stored: the endpoint's answer and when it stops being used
/// (epoch seconds).
#[derive(Debug, Serialize, Deserialize)]
pub struct StoredAnswer {
    pub doc: Map<String, Value>,
    pub until: f64,
}

/// The shared entry of one token.
pub struct SharedAnswers<'a> {
    redis: &'a Redis,
    key: String,
    lock: String,
    /// How long the lock holder may take: the introspection timeout.
    call_timeout: Duration,
}

impl<'a> SharedAnswers<'a> {
    pub fn new(redis: &'a Redis, digest: &[u8; 32], call_timeout: Duration) -> SharedAnswers<'a> {
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        SharedAnswers {
            key: redis.key(&format!("introspection:{hex}")),
            lock: redis.key(&format!("introspection:{hex}:lock")),
            redis,
            call_timeout,
        }
    }

    pub async fn get(&self) -> Option<StoredAnswer> {
        let cmd = redis::cmd("GET").arg(&self.key).clone();
        let text: Option<String> = self.redis.query("introspection_get", &cmd).await?;
        serde_json::from_str(&text?).ok()
    }

    /// Takes the lock; `true` also when Redis cannot say (then every
    /// instance asks for itself).
    pub async fn lock(&self) -> bool {
        let ms = self.call_timeout.as_millis().max(1) as u64 + 500;
        let cmd = redis::cmd("SET")
            .arg(&self.lock)
            .arg("1")
            .arg("NX")
            .arg("PX")
            .arg(ms)
            .clone();
        match self
            .redis
            .query::<Option<String>>("introspection_lock", &cmd)
            .await
        {
            Some(Some(_)) | None => true,
            Some(None) => false,
        }
    }

    pub async fn unlock(&self) {
        let cmd = redis::cmd("DEL").arg(&self.lock).clone();
        let _: Option<i64> = self.redis.query("introspection_lock", &cmd).await;
    }

    /// Waits, up to the lock holder's call timeout, for its answer.
    pub async fn wait(&self) -> Option<StoredAnswer> {
        let deadline = tokio::time::Instant::now() + self.call_timeout;
        while tokio::time::Instant::now() < deadline {
            tokio::time::sleep(POLL).await;
            if let Some(answer) = self.get().await {
                return Some(answer);
            }
            let cmd = redis::cmd("EXISTS").arg(&self.lock).clone();
            if self.redis.query::<i64>("introspection_lock", &cmd).await != Some(1) {
                // The holder gave up (a failure is never shared): look
                // once more, then ask ourselves.
                return self.get().await;
            }
        }
        None
    }

    /// Shares an answer until `until`.
    pub async fn store(&self, doc: &Map<String, Value>, until: f64, now: f64) {
        let ms = ((until - now) * 1000.0).floor();
        if ms < 1.0 {
            return;
        }
        let stored = StoredAnswer {
            doc: doc.clone(),
            until,
        };
        let Ok(text) = serde_json::to_string(&stored) else {
            return;
        };
        let cmd = redis::cmd("SET")
            .arg(&self.key)
            .arg(text)
            .arg("PX")
            .arg(ms.min(u64::MAX as f64) as u64)
            .clone();
        let _: Option<String> = self.redis.query("introspection_set", &cmd).await;
    }
}
