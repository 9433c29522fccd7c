//! One limit's state in Redis, shared by the fleet (extensions section 11):
//! one Lua script per request, so a decision is one round trip and atomic
//! however many instances ask at once.
//!
//! The script is [`super::gcra`] in Lua. It reads the time from Redis
//! (`TIME`), so instances' clocks never meet; it keeps the state as
//! "`<µs of the last update> <debt in ns>`" rather than an absolute TAT in
//! nanoseconds, which Lua's doubles could not hold exactly. The key is
//! `{key_prefix}rl:{<limit>:<key digest>}`: the hash tag keeps a cluster
//! from refusing it, and it expires when its debt has drained.

use redis::Script;
use std::sync::LazyLock;

use super::gcra::{Decision, Gcra};
use crate::fleet::client::Redis;

/// KEYS[1]: the state; ARGV[1]: the interval (ns); ARGV[2]: the tolerance
/// (ns). Returns `{allowed (0|1), remaining, wait (ns)}`.
const GCRA_LUA: &str = r#"
redis.replicate_commands()
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local debt = 0
local state = redis.call('GET', KEYS[1])
if state then
  local last, owed = string.match(state, '^(%d+) (%d+)$')
  if last then
    local elapsed = math.max(0, now - tonumber(last)) * 1000
    debt = math.max(0, tonumber(owed) - elapsed)
  end
end
if debt > tolerance then
  return {0, 0, debt - tolerance}
end
debt = debt + interval
redis.call('SET', KEYS[1], string.format('%.0f %.0f', now, debt),
  'PX', math.ceil(debt / 1000000))
if debt > tolerance then
  return {1, 0, debt - tolerance}
end
return {1, math.floor((tolerance - debt) / interval) + 1, 0}
"#;

static GCRA: LazyLock<Script> = LazyLock::new(|| Script::new(GCRA_LUA));

/// The shared decision for the state at `key` (already prefixed); `None`
/// when Redis did not answer (counted by the client), or answered nonsense.
pub async fn check(redis: &Redis, gcra: &Gcra, key: &str) -> Option<Decision> {
    let numbers = [gcra.interval().to_string(), gcra.tolerance().to_string()];
    let args = numbers.each_ref().map(String::as_str);
    let reply: Vec<i64> = redis.script("rate_limit", &GCRA, &[key], &args).await?;
    let [allowed, remaining, wait] = reply[..] else {
        return None;
    };
    Some(Decision {
        allowed: allowed == 1,
        remaining: u64::try_from(remaining).ok()?,
        wait: u64::try_from(wait).ok()?,
    })
}
