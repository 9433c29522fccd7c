//! The one Redis client of the fleet (extensions section 11): a single
//! server through the `redis` crate's [`ConnectionManager`] (multiplexed,
//! reconnects by itself) or a Redis Cluster through its cluster client
//! (slot routing, failover). Every operation is bounded by
//! `redis.timeout_ms`; a failure or a timeout counts in
//! `tokengate_redis_errors_total{op}` and marks Redis unavailable until an
//! operation succeeds again. Nothing here ever blocks a request for longer
//! than one timeout, and nothing here panics when Redis is away: callers get
//! `None` and fall back to their local state.
//!
//! Connecting happens in the background ([`Redis::start`]), so an instance
//! starts and serves while Redis is down, and recovers without a restart.

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, FromRedisValue, Script};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use crate::config::{RedisConfig, RedisServers};

/// How often the background task pings Redis (and retries connecting).
const PING_EVERY: Duration = Duration::from_secs(1);

#[derive(Clone)]
enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

/// A shared handle; clones share one connection.
pub struct Redis {
    pub config: RedisConfig,
    conn: OnceLock<Conn>,
    available: AtomicBool,
    started: AtomicBool,
}

impl std::fmt::Debug for Redis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redis")
            .field("servers", &self.config.servers)
            .field("available", &self.available())
            .finish()
    }
}

impl Redis {
    /// A handle for `config`; no I/O until [`Redis::start`].
    pub fn new(config: &RedisConfig) -> Arc<Redis> {
        Arc::new(Redis {
            config: config.clone(),
            conn: OnceLock::new(),
            available: AtomicBool::new(false),
            started: AtomicBool::new(false),
        })
    }

    /// Connects in the background, then pings every second so that
    /// availability is known without traffic. The task ends when the last
    /// handle is dropped. Only the first call starts it: `true` then.
    pub fn start(self: &Arc<Self>) -> bool {
        if self.started.swap(true, Ordering::SeqCst) {
            return false;
        }
        let weak = Arc::downgrade(self);
        tokio::spawn(async move { keep_connected(weak).await });
        true
    }

    /// Whether the last operation succeeded.
    pub fn available(&self) -> bool {
        self.available.load(Ordering::Relaxed)
    }

    /// `name` under the configured prefix.
    pub fn key(&self, name: &str) -> String {
        format!("{}{name}", self.config.key_prefix)
    }

    /// Runs `cmd`; `None` (counted under `op`) on any failure.
    pub async fn query<T: FromRedisValue>(&self, op: &'static str, cmd: &Cmd) -> Option<T> {
        let conn = self.connection(op)?;
        let result = match conn {
            Conn::Single(mut c) => {
                tokio::time::timeout(self.config.timeout, cmd.query_async::<T>(&mut c)).await
            }
            Conn::Cluster(mut c) => {
                tokio::time::timeout(self.config.timeout, cmd.query_async::<T>(&mut c)).await
            }
        };
        self.settle(op, result)
    }

    /// Runs a Lua script with `keys` and `args` (all keys of one call share
    /// a hash tag, so a cluster runs it on one node).
    pub async fn script<T: FromRedisValue>(
        &self,
        op: &'static str,
        script: &Script,
        keys: &[&str],
        args: &[&str],
    ) -> Option<T> {
        let conn = self.connection(op)?;
        let mut invocation = script.prepare_invoke();
        for k in keys {
            invocation.key(*k);
        }
        for a in args {
            invocation.arg(*a);
        }
        let timeout = self.config.timeout;
        let result = match conn {
            Conn::Single(mut c) => {
                tokio::time::timeout(timeout, invocation.invoke_async::<T>(&mut c)).await
            }
            Conn::Cluster(mut c) => {
                tokio::time::timeout(timeout, invocation.invoke_async::<T>(&mut c)).await
            }
        };
        self.settle(op, result)
    }

    /// A plain client for pub/sub: the server, or the first cluster seed
    /// (classic pub/sub messages reach every node of a cluster).
    pub fn pubsub_clients(&self) -> Vec<redis::Client> {
        let urls: Vec<&str> = match &self.config.servers {
            RedisServers::Single(url) => vec![url.expose()],
            RedisServers::Cluster(urls) => urls.iter().map(|u| u.expose()).collect(),
        };
        urls.into_iter()
            .filter_map(|u| redis::Client::open(u).ok())
            .collect()
    }

    fn connection(&self, op: &'static str) -> Option<Conn> {
        let conn = self.conn.get().cloned();
        if conn.is_none() {
            self.failed(op);
        }
        conn
    }

    fn settle<T>(
        &self,
        op: &'static str,
        result: Result<redis::RedisResult<T>, tokio::time::error::Elapsed>,
    ) -> Option<T> {
        match result {
            Ok(Ok(value)) => {
                self.available.store(true, Ordering::Relaxed);
                Some(value)
            }
            Ok(Err(e)) => {
                tracing::debug!(op, error = %e, "redis operation failed");
                self.failed(op);
                None
            }
            Err(_) => {
                tracing::debug!(op, "redis operation timed out");
                self.failed(op);
                None
            }
        }
    }

    fn failed(&self, op: &'static str) {
        if self.available.swap(false, Ordering::Relaxed) {
            tracing::warn!(op, "redis is unavailable; serving from local state");
        }
        metrics::counter!("tokengate_redis_errors_total", "op" => op).increment(1);
    }

    async fn connect(&self) -> redis::RedisResult<Conn> {
        let timeout = self.config.timeout.max(Duration::from_millis(500));
        match &self.config.servers {
            RedisServers::Single(url) => {
                let client = redis::Client::open(url.expose())?;
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(timeout))
                    .set_response_timeout(Some(self.config.timeout))
                    .set_number_of_retries(1)
                    .set_max_delay(Duration::from_secs(1));
                let manager = ConnectionManager::new_with_config(client, config).await?;
                Ok(Conn::Single(manager))
            }
            RedisServers::Cluster(urls) => {
                let client = ClusterClientBuilder::new(urls.iter().map(|u| u.expose()))
                    .connection_timeout(timeout)
                    .response_timeout(self.config.timeout)
                    .retries(2)
                    .build()?;
                Ok(Conn::Cluster(client.get_async_connection().await?))
            }
        }
    }
}

/// Connects (retrying every second), then pings every second.
async fn keep_connected(weak: Weak<Redis>) {
    loop {
        let Some(redis) = weak.upgrade() else {
            return;
        };
        if redis.conn.get().is_none() {
            match redis.connect().await {
                Ok(conn) => {
                    let _ = redis.conn.set(conn);
                    tracing::info!("connected to redis");
                }
                Err(e) => {
                    tracing::debug!(error = %e, "cannot connect to redis yet");
                    redis.failed("connect");
                }
            }
        }
        if redis.conn.get().is_some() {
            let _: Option<String> = redis.query("ping", &redis::cmd("PING")).await;
        }
        drop(redis);
        tokio::time::sleep(PING_EVERY).await;
    }
}
