//! Token revocation (extensions section 11): the deny-list every request
//! is checked against, locally and without I/O, also when the identity came
//! from the identity cache.
//!
//! An entry names exactly one of a token id (`jti`), a subject (`sub`) or a
//! client (`client_id`), optionally one issuer (by configuration name), and
//! lives for `ttl_s`. A `jti` entry refuses that token; a `sub` or
//! `client_id` entry refuses tokens of that subject or client issued
//! before the entry was made (`iat` earlier than its creation, or no
//! `iat`), so tokens issued afterwards work again.
//!
//! | module | owns |
//! |---|---|
//! | [`api`] | the admin endpoints: `POST`/`GET /revocations`, `DELETE /revocations/{id}` |
//! | [`sync`] | the list in Redis: writes, pub/sub pushes, the periodic full resync |

pub mod api;
pub mod sync;

use arc_swap::ArcSwap;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::auth::Principal;

/// What an entry revokes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    Jti(String),
    Sub(String),
    ClientId(String),
}

/// One revocation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub id: String,
    #[serde(flatten)]
    pub target: Target,
    /// The issuer's configuration name; `None`: every issuer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// Seconds since the epoch.
    pub created_at: f64,
    pub expires_at: f64,
}

impl Entry {
    fn live(&self, now: f64) -> bool {
        self.expires_at > now
    }

    /// Whether this entry refuses `p`, issued by the issuer named `issuer`.
    fn refuses(&self, p: &Principal, issuer: &str, now: f64) -> bool {
        if !self.live(now) || self.issuer.as_deref().is_some_and(|i| i != issuer) {
            return false;
        }
        match &self.target {
            Target::Jti(_) => true,
            Target::Sub(_) | Target::ClientId(_) => {
                p.issued_at.is_none_or(|iat| iat < self.created_at)
            }
        }
    }
}

type ByValue = HashMap<String, Vec<Arc<Entry>>>;

/// The entries, indexed by what they revoke; rebuilt on every change.
#[derive(Debug, Default)]
struct Index {
    by_id: HashMap<String, Arc<Entry>>,
    jti: ByValue,
    sub: ByValue,
    client_id: ByValue,
}

impl Index {
    fn from_entries(entries: impl IntoIterator<Item = Arc<Entry>>) -> Index {
        let mut index = Index::default();
        for e in entries {
            let (map, value) = match &e.target {
                Target::Jti(v) => (&mut index.jti, v),
                Target::Sub(v) => (&mut index.sub, v),
                Target::ClientId(v) => (&mut index.client_id, v),
            };
            map.entry(value.clone()).or_default().push(e.clone());
            index.by_id.insert(e.id.clone(), e);
        }
        index
    }
}

/// A change waiting to be written to Redis (made while it was away).
#[derive(Debug, Clone)]
pub enum Pending {
    Add(Entry),
    Delete(String),
}

/// The deny-list of this instance: the fleet's, as last synchronised, plus
/// its own changes not yet written to Redis.
#[derive(Debug, Default)]
pub struct DenyList {
    index: ArcSwap<Index>,
    /// Serialises writers (adds, deletes, resyncs); readers never wait.
    write: Mutex<()>,
    pending: Mutex<Vec<Pending>>,
}

impl DenyList {
    pub fn new() -> Arc<DenyList> {
        Arc::default()
    }

    /// Whether `p` (from the issuer named `issuer`) is revoked at `now`:
    /// at most three hash lookups; nothing when the list is empty.
    pub fn revoked(&self, p: &Principal, issuer: &str, now: f64) -> bool {
        let index = self.index.load();
        if index.by_id.is_empty() {
            return false;
        }
        let refused_by = |map: &ByValue, value: &Option<String>| {
            value
                .as_deref()
                .and_then(|v| map.get(v))
                .is_some_and(|entries| entries.iter().any(|e| e.refuses(p, issuer, now)))
        };
        refused_by(&index.jti, &p.token_id)
            || refused_by(&index.sub, &p.subject)
            || refused_by(&index.client_id, &p.client_id)
    }

    /// Live entries, oldest first.
    pub fn list(&self, now: f64) -> Vec<Arc<Entry>> {
        let mut live: Vec<Arc<Entry>> = self
            .index
            .load()
            .by_id
            .values()
            .filter(|e| e.live(now))
            .cloned()
            .collect();
        live.sort_by(|a, b| a.created_at.total_cmp(&b.created_at).then(a.id.cmp(&b.id)));
        live
    }

    pub fn get(&self, id: &str) -> Option<Arc<Entry>> {
        self.index.load().by_id.get(id).cloned()
    }

    /// Adds (or replaces) an entry.
    pub fn insert(&self, entry: Entry) {
        let _w = self.write.lock().unwrap_or_else(|e| e.into_inner());
        let current = self.index.load();
        let id = entry.id.clone();
        let entries = current
            .by_id
            .values()
            .filter(|e| e.id != id)
            .cloned()
            .chain([Arc::new(entry)]);
        self.index.store(Arc::new(Index::from_entries(entries)));
    }

    /// Removes an entry; whether it was there.
    pub fn remove(&self, id: &str) -> bool {
        let _w = self.write.lock().unwrap_or_else(|e| e.into_inner());
        let current = self.index.load();
        if !current.by_id.contains_key(id) {
            return false;
        }
        let entries = current.by_id.values().filter(|e| e.id != id).cloned();
        self.index.store(Arc::new(Index::from_entries(entries)));
        true
    }

    /// Replaces the list with `entries` (a full resync), keeping changes
    /// still waiting for Redis, and dropping expired entries.
    pub fn replace(&self, entries: Vec<Entry>, now: f64) {
        let _w = self.write.lock().unwrap_or_else(|e| e.into_inner());
        let pending = self.pending();
        let mut by_id: HashMap<String, Arc<Entry>> = entries
            .into_iter()
            .filter(|e| e.live(now))
            .map(|e| (e.id.clone(), Arc::new(e)))
            .collect();
        for change in pending {
            match change {
                Pending::Add(e) => {
                    by_id.insert(e.id.clone(), Arc::new(e));
                }
                Pending::Delete(id) => {
                    by_id.remove(&id);
                }
            }
        }
        self.index
            .store(Arc::new(Index::from_entries(by_id.into_values())));
    }

    /// Records a change Redis has not taken yet.
    pub fn defer(&self, change: Pending) {
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(change);
    }

    /// The changes waiting for Redis.
    pub fn pending(&self) -> Vec<Pending> {
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Drops the first `n` waiting changes, once written.
    pub fn written(&self, n: usize) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let n = n.min(pending.len());
        pending.drain(..n);
    }

    pub fn len(&self) -> usize {
        self.index.load().by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests;
