//! Fleet state (extensions sections 11 and 12): the Redis that instances
//! share. [`Fleet`] lives across reloads; a reload that changes `[redis]`
//! gets a new client. What is shared through it (the deny-list, caches,
//! rate-limit counters) belongs to the modules that use it.

pub mod client;

use std::sync::Arc;

use crate::config::Config;
use client::Redis;

/// The connection to the fleet's shared state.
#[derive(Debug, Default)]
pub struct Fleet {
    /// `None` without `[redis]`.
    pub redis: Option<Arc<Redis>>,
}

impl Fleet {
    /// Fleet state for `config`, keeping `previous`'s client while
    /// `[redis]` is unchanged.
    pub fn new(config: &Config, previous: Option<&Fleet>) -> Fleet {
        let redis = config.redis.as_ref().map(|c| {
            previous
                .and_then(|p| p.redis.clone())
                .filter(|r| r.config == *c)
                .unwrap_or_else(|| Redis::new(c))
        });
        Fleet { redis }
    }

    /// `/readyz`'s `redis` member: `None` without `[redis]`.
    pub fn redis_status(&self) -> Option<&'static str> {
        self.redis
            .as_ref()
            .map(|r| if r.available() { "ok" } else { "unavailable" })
    }
}
