//! Fleet state in the configuration (extensions sections 11 and 12):
//! `[redis]` (one server or a cluster), `[revocation]`, the admin API token,
//! and `[rate_limits.NAME]`.

use std::collections::BTreeMap;
use std::time::Duration;

use super::builder::Builder;
use super::raw::{Keyword, RawRateLimit, RawRedis, RawRevocation};
use super::{RateLimitConfig, RedisConfig, RedisServers, RevocationConfig, Secret};

/// `[redis]` → [`RedisConfig`]; `None` when the table is absent.
pub(super) fn redis(b: &mut Builder, raw: Option<&RawRedis>) -> Option<RedisConfig> {
    let r = raw?;
    for (n, url) in r.cluster_urls.iter().enumerate() {
        check_url(b, &format!("redis.cluster_urls[{n}]"), url);
    }
    let servers = match (r.url.is_empty(), r.cluster_urls.is_empty()) {
        (false, true) => {
            check_url(b, "redis.url", &r.url);
            RedisServers::Single(Secret::new(r.url.clone()))
        }
        (true, false) => {
            RedisServers::Cluster(r.cluster_urls.iter().cloned().map(Secret::new).collect())
        }
        (true, true) => {
            b.err("redis.url", "is required (or redis.cluster_urls)");
            RedisServers::Cluster(Vec::new())
        }
        (false, false) => {
            b.err("redis.url", "set url or cluster_urls, not both");
            RedisServers::Cluster(Vec::new())
        }
    };
    if r.key_prefix
        .chars()
        .any(|c| c.is_whitespace() || c.is_control())
    {
        b.err("redis.key_prefix", "must not contain white space");
    }
    if r.timeout_ms > 60_000 {
        b.err("redis.timeout_ms", "must be at most 60000");
    }
    Some(RedisConfig {
        servers,
        key_prefix: r.key_prefix.clone(),
        timeout: b.ms("redis.timeout_ms", r.timeout_ms),
    })
}

/// A `redis://` or `rediss://` URL the client accepts; the reason never
/// repeats the URL, which may hold a password.
fn check_url(b: &mut Builder, key: &str, url: &str) {
    let scheme_ok = url.starts_with("redis://") || url.starts_with("rediss://");
    if !scheme_ok {
        b.err(key, "must be a redis:// or rediss:// URL");
    } else if ::redis::Client::open(url).is_err() {
        b.err(key, "is not a valid Redis URL");
    }
}

pub(super) fn revocation(b: &mut Builder, r: &RawRevocation) -> RevocationConfig {
    if r.sync_interval_s > 86_400 {
        b.err("revocation.sync_interval_s", "must be at most 86400");
    }
    RevocationConfig {
        sync_interval: b.secs("revocation.sync_interval_s", r.sync_interval_s, 1),
    }
}

/// The admin API token: at least 16 characters when set.
pub(super) fn api_token(b: &mut Builder, token: &str) -> Option<Secret> {
    if token.is_empty() {
        return None;
    }
    let printable = token.bytes().all(|c| (0x21..0x7f).contains(&c));
    if token.len() < 16 || !printable {
        b.err(
            "admin.api_token",
            "must be at least 16 printable ASCII characters without spaces",
        );
    }
    Some(Secret::new(token.to_string()))
}

pub(super) fn rate_limits(
    b: &mut Builder,
    raw: &BTreeMap<String, RawRateLimit>,
) -> Vec<RateLimitConfig> {
    raw.iter()
        .map(|(name, r)| {
            let k = |field: &str| format!("rate_limits.{name}.{field}");
            // The name travels in the RateLimit headers' quoted strings.
            let plain = |c: char| c.is_ascii_alphanumeric() || "_-.".contains(c);
            if name.is_empty() || name.len() > 64 || !name.chars().all(plain) {
                b.err(
                    format!("rate_limits.{name}"),
                    "the name must be 1 to 64 letters, digits, '_', '-' or '.'",
                );
            }
            let key = match &r.key {
                Keyword::Known(key) => *key,
                Keyword::Unknown(other) => {
                    b.err(
                        k("key"),
                        format!("{other:?} is not \"client_id\", \"sub\", \"ip\" or \"token\""),
                    );
                    super::RateLimitKey::Ip
                }
            };
            if !(1..=1_000_000_000).contains(&r.requests) {
                b.err(k("requests"), "must be 1 to 1000000000");
            }
            if !(1..=86_400).contains(&r.window_s) {
                b.err(k("window_s"), "must be 1 to 86400");
            }
            RateLimitConfig {
                name: name.clone(),
                key,
                requests: r.requests,
                window: Duration::from_secs(r.window_s),
            }
        })
        .collect()
}
