//! A pool's idle connections: newest reused first, the oldest dropped past
//! `pool_max_idle_per_host`, and a sweeper task that closes each once it
//! has been idle for `pool_idle_timeout_ms` and ends when none is left.

use std::sync::Weak;
use std::time::{Duration, Instant};
use tokio::task::AbortHandle;

use super::{Conn, Pool};

#[derive(Default)]
pub(super) struct IdleList {
    /// Oldest first.
    pub(super) conns: Vec<Idle>,
    /// The task closing expired connections, while `conns` is not empty.
    pub(super) sweeper: Option<AbortHandle>,
}

pub(super) struct Idle {
    pub(super) conn: Conn,
    pub(super) since: Instant,
}

impl IdleList {
    /// Drops idle connections idle for `timeout` or longer (the oldest are
    /// first in the list).
    pub(super) fn evict_expired(&mut self, now: Instant, timeout: Duration) {
        let expired = expired_count(self.conns.iter().map(|i| i.since), now, timeout);
        if expired > 0 {
            self.conns.drain(..expired);
        }
    }
}

/// How many of `since` (oldest first) are `timeout` old or older at `now`.
fn expired_count(since: impl Iterator<Item = Instant>, now: Instant, timeout: Duration) -> usize {
    since
        .take_while(|since| now.saturating_duration_since(*since) >= timeout)
        .count()
}

/// Closes the idle connections of one worker's `list` as they expire. Ends
/// when the list is empty (the next checkin starts another) or the pool is
/// gone.
pub(super) async fn sweep(pool: Weak<Pool>, list: usize) {
    loop {
        let next = {
            let Some(pool) = pool.upgrade() else {
                return;
            };
            let mut idle = pool.lock_idle(list);
            idle.evict_expired(Instant::now(), pool.idle_timeout);
            match idle.conns.first() {
                Some(oldest) => oldest.since + pool.idle_timeout,
                None => {
                    idle.sweeper = None;
                    return;
                }
            }
        };
        tokio::time::sleep_until(next.into()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expired_count_counts_the_old_prefix() {
        let now = Instant::now() + Duration::from_secs(100);
        let ago = |ms: u64| now - Duration::from_millis(ms);
        let timeout = Duration::from_millis(1000);
        let cases: Vec<(Vec<Instant>, usize)> = vec![
            (vec![], 0),
            (vec![ago(10)], 0),
            (vec![ago(999)], 0),
            (vec![ago(1000)], 1),
            (vec![ago(5000), ago(2000), ago(10)], 2),
            (vec![ago(5000), ago(2000), ago(1000)], 3),
            // A connection checked in "after" now (a clock read race) is
            // not expired.
            (vec![now + Duration::from_millis(5)], 0),
        ];
        for (since, want) in cases {
            assert_eq!(
                expired_count(since.iter().copied(), now, timeout),
                want,
                "{since:?}"
            );
        }
    }
}
