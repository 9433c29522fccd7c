//! The deny-list in Redis: one hash (`{prefix}revocations`, entry id →
//! entry JSON) that is the fleet's truth, a pub/sub channel of the same name
//! that pushes every change to every instance within milliseconds, and a
//! full resync every `revocation.sync_interval_s` (and after every
//! reconnection of the subscriber) that repairs anything a push missed.
//!
//! Changes made while Redis is away are applied locally at once and kept
//! as pending; the resync, which runs every second while changes wait or
//! Redis cannot be read, writes them first, so nothing is lost. A Redis
//! that lost the list (restarted without persistence) is noticed by the
//! hash's epoch field and refilled from the instances' own lists.

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use super::{DenyList, Entry, Pending};
use crate::clock::Clock;
use crate::fleet::client::Redis;

/// The hash and the channel, under the key prefix.
const NAME: &str = "revocations";

/// A pushed change.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Event {
    Add(Entry),
    Delete(String),
}

/// Writes an entry to Redis and pushes it; `false` when Redis did not take
/// it (the caller defers it).
pub async fn add(redis: &Redis, entry: &Entry) -> bool {
    let Ok(json) = serde_json::to_string(entry) else {
        return false;
    };
    let hset = redis::cmd("HSET")
        .arg(redis.key(NAME))
        .arg(&entry.id)
        .arg(&json)
        .clone();
    if redis
        .query::<i64>("revocation_write", &hset)
        .await
        .is_none()
    {
        return false;
    }
    publish(redis, &Event::Add(entry.clone())).await;
    true
}

/// Removes an entry from Redis and pushes the removal.
pub async fn delete(redis: &Redis, id: &str) -> bool {
    let hdel = redis::cmd("HDEL").arg(redis.key(NAME)).arg(id).clone();
    if redis
        .query::<i64>("revocation_write", &hdel)
        .await
        .is_none()
    {
        return false;
    }
    publish(redis, &Event::Delete(id.to_string())).await;
    true
}

async fn publish(redis: &Redis, event: &Event) {
    if let Ok(json) = serde_json::to_string(event) {
        let cmd = redis::cmd("PUBLISH").arg(redis.key(NAME)).arg(json).clone();
        let _: Option<i64> = redis.query("revocation_publish", &cmd).await;
    }
}

/// Starts the subscriber and the periodic resync; both end when the last
/// handle on `redis` is dropped.
pub fn start(redis: &Arc<Redis>, deny: &Arc<DenyList>, every: Duration, clock: &Clock) {
    let resync_now = Arc::new(tokio::sync::Notify::new());
    tokio::spawn(resync_loop(
        Arc::downgrade(redis),
        deny.clone(),
        every,
        clock.clone(),
        resync_now.clone(),
    ));
    tokio::spawn(subscribe_loop(
        Arc::downgrade(redis),
        deny.clone(),
        resync_now,
    ));
}

/// The field of the hash that names its incarnation: a Redis that lost
/// the list (restarted without persistence, flushed, failed over to an
/// empty node) has none, or another one.
const EPOCH: &str = "_epoch";

/// What the resync remembers between runs.
#[derive(Debug, Default)]
pub struct SyncState {
    /// The hash's epoch at the last successful resync.
    epoch: Option<String>,
}

/// Writes pending changes, then replaces the local list with Redis's. When
/// Redis lost the list (no epoch, or another one than last time), this
/// instance first writes its live entries back, so that a revocation
/// outlives a Redis restart; `false` when Redis could not be read.
pub async fn resync(redis: &Redis, deny: &DenyList, state: &mut SyncState, now: f64) -> bool {
    let pending = deny.pending();
    let mut written = 0;
    for change in &pending {
        let ok = match change {
            Pending::Add(e) => add(redis, e).await,
            Pending::Delete(id) => delete(redis, id).await,
        };
        if !ok {
            break;
        }
        written += 1;
    }
    deny.written(written);
    let Some(mut all) = read_all(redis).await else {
        return false;
    };
    let epoch = all.remove(EPOCH);
    if epoch.is_none() || epoch != state.epoch && state.epoch.is_some() {
        restore(redis, deny, now).await;
        let Some(again) = read_all(redis).await else {
            return false;
        };
        all = again;
        state.epoch = all.remove(EPOCH);
    } else {
        state.epoch = epoch;
    }
    let mut entries = Vec::with_capacity(all.len());
    let mut expired = Vec::new();
    for (id, json) in all {
        match serde_json::from_str::<Entry>(&json) {
            Ok(e) if e.expires_at > now => entries.push(e),
            _ => expired.push(id),
        }
    }
    if !expired.is_empty() {
        let hdel = redis::cmd("HDEL")
            .arg(redis.key(NAME))
            .arg(&expired)
            .clone();
        let _: Option<i64> = redis.query("revocation_write", &hdel).await;
    }
    deny.replace(entries, now);
    true
}

/// Reads the whole hash in pages of [`PAGE`] entries (`HSCAN`), so that
/// each Redis operation stays small and within `redis.timeout_ms` however
/// long the list is (one `HGETALL` of 100,000 entries takes longer than
/// the default 100 ms). An entry added or removed during the scan may be
/// missed; its push, or the next resync, brings it.
async fn read_all(redis: &Redis) -> Option<HashMap<String, String>> {
    let key = redis.key(NAME);
    let mut all = HashMap::new();
    let mut cursor: u64 = 0;
    loop {
        let cmd = redis::cmd("HSCAN")
            .arg(&key)
            .arg(cursor)
            .arg("COUNT")
            .arg(PAGE)
            .clone();
        let (next, page): (u64, Vec<(String, String)>) =
            redis.query("revocation_sync", &cmd).await?;
        all.extend(page);
        if next == 0 {
            return Some(all);
        }
        cursor = next;
    }
}

/// Entries per `HSCAN` page.
const PAGE: usize = 1000;

/// Writes this instance's live entries into the hash and gives it an
/// epoch (unless another instance just did).
async fn restore(redis: &Redis, deny: &DenyList, now: f64) {
    let live = deny.list(now);
    if !live.is_empty() {
        tracing::warn!(
            entries = live.len(),
            "redis lost the revocation list; writing this instance's entries back"
        );
    }
    for entry in live {
        if let Ok(json) = serde_json::to_string(&*entry) {
            let cmd = redis::cmd("HSET")
                .arg(redis.key(NAME))
                .arg(&entry.id)
                .arg(json)
                .clone();
            let _: Option<i64> = redis.query("revocation_write", &cmd).await;
        }
    }
    let epoch = format!("{:032x}", rand::random::<u128>());
    let cmd = redis::cmd("HSETNX")
        .arg(redis.key(NAME))
        .arg(EPOCH)
        .arg(epoch)
        .clone();
    let _: Option<i64> = redis.query("revocation_write", &cmd).await;
}

/// Resyncs every `every`, and every second while the last attempt failed
/// or changes wait for Redis; at once when the subscriber (re)connects,
/// since pushes sent meanwhile were lost.
async fn resync_loop(
    weak: Weak<Redis>,
    deny: Arc<DenyList>,
    every: Duration,
    clock: Clock,
    now_please: Arc<tokio::sync::Notify>,
) {
    let mut state = SyncState::default();
    let mut last_ok = false;
    let mut next_full = tokio::time::Instant::now();
    let mut requested = true;
    loop {
        let Some(redis) = weak.upgrade() else {
            return;
        };
        let due = tokio::time::Instant::now() >= next_full;
        if requested || due || !last_ok || !deny.pending().is_empty() {
            last_ok = resync(&redis, &deny, &mut state, clock.now()).await;
            if last_ok {
                next_full = tokio::time::Instant::now() + every;
            }
        }
        drop(redis);
        requested = tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => false,
            _ = now_please.notified() => true,
        };
    }
}

/// Applies pushed changes; reconnects (trying each server in turn) every
/// second after a failure, and asks for a resync after each connection,
/// since pushes sent meanwhile were lost.
async fn subscribe_loop(weak: Weak<Redis>, deny: Arc<DenyList>, resync: Arc<tokio::sync::Notify>) {
    let mut attempt = 0usize;
    loop {
        let Some(redis) = weak.upgrade() else {
            return;
        };
        let clients = redis.pubsub_clients();
        let channel = redis.key(NAME);
        let timeout = redis.config.timeout.max(Duration::from_millis(500));
        drop(redis);
        if let Some(client) = clients.get(attempt % clients.len().max(1)) {
            let connected = tokio::time::timeout(timeout, client.get_async_pubsub()).await;
            if let Ok(Ok(mut pubsub)) = connected {
                if pubsub.subscribe(&channel).await.is_ok() {
                    resync.notify_one();
                    let mut messages = pubsub.on_message();
                    while let Some(msg) = messages.next().await {
                        if weak.strong_count() == 0 {
                            return;
                        }
                        if let Ok(text) = msg.get_payload::<String>() {
                            apply(&deny, &text);
                        }
                    }
                    tracing::debug!("revocation subscription ended; reconnecting");
                }
            }
        }
        attempt += 1;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

fn apply(deny: &DenyList, text: &str) {
    match serde_json::from_str::<Event>(text) {
        Ok(Event::Add(entry)) => deny.insert(entry),
        Ok(Event::Delete(id)) => {
            deny.remove(&id);
        }
        Err(e) => tracing::debug!(error = %e, "ignoring a malformed revocation push"),
    }
}
