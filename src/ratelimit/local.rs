//! One limit's state in this instance: the theoretical arrival time of each
//! key, in nanoseconds since the epoch, in a bounded moka cache. It decides
//! alone without `[redis]` and while Redis is unavailable; while Redis
//! decides, it is charged with the requests Redis allowed here, so a
//! fallback starts from this instance's own recent traffic instead of a
//! fresh allowance.
//!
//! An entry is worth keeping only until its TAT has passed (a key without
//! an entry starts afresh, exactly as one whose TAT is in the past); a TAT
//! is never more than one window (plus at most `requests` nanoseconds of
//! rounding) ahead of its write, so entries expire one window and one
//! second after their last write.

use moka::ops::compute::Op;
use moka::sync::Cache;
use std::time::Duration;

use super::gcra::{Decision, Gcra};
use super::Key;

/// Keys remembered per limit; beyond it moka evicts the least valuable
/// (TinyLFU), whose next request then starts afresh.
const MAX_KEYS: u64 = 100_000;

#[derive(Clone)]
pub struct Local {
    /// Key digest → TAT (ns since the epoch).
    tats: Cache<Key, u64>,
}

impl Local {
    pub fn new(window: Duration) -> Local {
        Local {
            tats: Cache::builder()
                .max_capacity(MAX_KEYS)
                .time_to_live(window + Duration::from_secs(1))
                .build(),
        }
    }

    /// Decides a request of `key` arriving at `now` (ns since the epoch)
    /// and records it when allowed; one atomic step per key.
    pub fn check(&self, gcra: &Gcra, key: Key, now: u64) -> Decision {
        let mut decision = None;
        self.tats.entry(key).and_compute_with(|entry| {
            let debt = entry.map_or(0, |e| e.into_value().saturating_sub(now));
            let (d, after) = gcra.decide(debt);
            decision = Some(d);
            match after {
                Some(debt) => Op::Put(now + debt),
                None => Op::Nop,
            }
        });
        // The closure always runs; a refusal is the safe answer regardless.
        decision.unwrap_or(Decision {
            allowed: false,
            remaining: 0,
            wait: gcra.interval(),
        })
    }

    /// Records a request of `key` that the shared state allowed at `now`.
    pub fn charge(&self, gcra: &Gcra, key: Key, now: u64) {
        self.tats.entry(key).and_compute_with(|entry| {
            let debt = entry.map_or(0, |e| e.into_value().saturating_sub(now));
            Op::Put(now + gcra.charge(debt))
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Clock;

    const S: u64 = 1_000_000_000;

    /// Steps a manual clock and sends requests of one key: `(advance_ms,
    /// allowed?)` per request, against `requests` per `window_s`.
    fn run(requests: u64, window_s: u64, steps: &[(u64, bool)]) {
        let gcra = Gcra::new(requests, Duration::from_secs(window_s));
        let local = Local::new(Duration::from_secs(window_s));
        let clock = Clock::manual(1_700_000_000.0);
        for (i, &(advance_ms, want)) in steps.iter().enumerate() {
            clock.advance(Duration::from_millis(advance_ms));
            let d = local.check(&gcra, [7; 32], clock.now_micros() * 1000);
            assert_eq!(d.allowed, want, "step {i} of {steps:?}");
        }
    }

    #[test]
    fn check_sequences_table() {
        // 3 per 60 s: interval 20 s.
        run(3, 60, &[(0, true), (0, true), (0, true), (0, false)]);
        // The allowance refills one interval at a time, not all at once at
        // a window boundary: no second burst right after the first.
        run(
            3,
            60,
            &[
                (0, true),
                (0, true),
                (0, true),
                (19_999, false),
                (1, true),
                (0, false),
                (60_000, true),
                (0, true),
                (0, true),
                (0, false),
            ],
        );
        // Steady traffic at the configured rate always passes.
        run(
            2,
            60,
            &[(0, true), (30_000, true), (30_000, true), (30_000, true)],
        );
        // Refused requests cost nothing: hammering does not push the
        // next allowance away.
        run(
            1,
            60,
            &[
                (0, true),
                (10_000, false),
                (10_000, false),
                (39_999, false),
                (1, true),
            ],
        );
    }

    #[test]
    fn check_counts_keys_apart_and_reports_remaining_and_wait() {
        let gcra = Gcra::new(2, Duration::from_secs(60));
        let local = Local::new(Duration::from_secs(60));
        let now = 1_700_000_000 * S;
        let a = local.check(&gcra, [1; 32], now);
        assert_eq!((a.allowed, a.remaining, a.wait), (true, 1, 0));
        let a = local.check(&gcra, [1; 32], now);
        assert_eq!((a.allowed, a.remaining, a.wait), (true, 0, 30 * S));
        let a = local.check(&gcra, [1; 32], now + 10 * S);
        assert_eq!((a.allowed, a.remaining, a.wait), (false, 0, 20 * S));
        let b = local.check(&gcra, [2; 32], now);
        assert_eq!((b.allowed, b.remaining), (true, 1));
    }

    #[test]
    fn charge_counts_toward_a_later_local_decision() {
        let gcra = Gcra::new(2, Duration::from_secs(60));
        let local = Local::new(Duration::from_secs(60));
        let now = 1_700_000_000 * S;
        local.charge(&gcra, [1; 32], now);
        local.charge(&gcra, [1; 32], now);
        assert!(!local.check(&gcra, [1; 32], now).allowed);
        assert!(local.check(&gcra, [1; 32], now + 30 * S).allowed);
    }
}
